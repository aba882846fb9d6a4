//! `pocnet drill ...` and `pocnet demo`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use pocnet_client::drill::network::{HumanInvite, Network};
use pocnet_client::drill::runner::{self, Finished, Ui};
use pocnet_client::render::line;
use pocnet_client::Error;
use pocnet_core::drill::{fmt_drill_time, Scenario};

/// The 35 OAS member states: the network a scenario with `all = true` runs on here.
pub const OAS_35: [&str; 35] = [
    "AG", "AR", "BS", "BB", "BZ", "BO", "BR", "CA", "CL", "CO", "CR", "CU", "DM", "DO", "EC", "SV", "GD", "GT", "GY",
    "HT", "HN", "JM", "MX", "NI", "PA", "PY", "PE", "KN", "LC", "VC", "SR", "TT", "US", "UY", "VE",
];

/// Marks a directory as a drill's own (so a rerun may replace it).
const MARKER: &str = ".pocnet-drill";

#[derive(Subcommand)]
pub enum DrillCmd {
    /// Run a scenario (a shipped one: airport, contact-check, silent-state; or a TOML file):
    /// starts a local relay, enrols a simulated network through the real Secretariat and
    /// national-authority flows, runs the injects at the scenario's clock, and writes the
    /// signed drill record and the after-action report (Markdown, JSON, HTML).
    Run {
        scenario: String,
        /// Where the network, the relay and the report go (replaced if a drill made it).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Drill seconds per wall-clock second (overrides the scenario's clock_rate).
        #[arg(long)]
        rate: Option<u32>,
    },
    /// Pause a running drill (no injects, no simulated answers; the relay's escalation
    /// timers keep running).
    Pause {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Resume a paused drill.
    Resume {
        #[arg(long)]
        dir: PathBuf,
    },
    /// End a running drill now; the report is still written.
    End {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Re-derive the after-action report from a signed drill record (anyone can).
    Verify {
        record: PathBuf,
        /// The directory key you trust (otherwise the record's own is used, and said so).
        #[arg(long)]
        directory: Option<String>,
        /// md (default), json or html.
        #[arg(long, default_value = "md")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the shipped scenarios.
    Scenarios,
}

fn scenario_text(name: &str) -> Result<String, Error> {
    if let Some(t) = pocnet_core::drill::builtin(name) {
        return Ok(t.to_string());
    }
    std::fs::read_to_string(name).map_err(|e| Error::Io {
        context: format!(
            "`{}` is neither a shipped scenario ({}) nor a readable file",
            line(name),
            pocnet_core::drill::BUILTIN.join(", ")
        ),
        source: e,
    })
}

fn prepare_dir(dir: &Path) -> Result<(), Error> {
    if dir.exists() {
        if dir.join(MARKER).exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::Io {
                context: format!("cannot clear the earlier drill in {}", dir.display()),
                source: e,
            })?;
        } else if std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
            return Err(Error::Usage(format!(
                "{} exists and was not made by a drill; choose another --dir",
                dir.display()
            )));
        }
    }
    pocnet_client::profile::private_dir(dir)?;
    std::fs::write(dir.join(MARKER), b"made by pocnet drill; safe to delete\n").map_err(|e| Error::Io {
        context: format!("cannot write in {}", dir.display()),
        source: e,
    })
}

/// Terminal output: a progress bar redrawn in place, events on their own lines.
struct Screen {
    tty: bool,
    last_bar: String,
}

impl Screen {
    fn bar(&mut self, at: u64, total: u64, paused: bool) {
        if !self.tty {
            return;
        }
        let width = 30usize;
        let filled = if total == 0 {
            width
        } else {
            ((at as f64 / total as f64) * width as f64).round() as usize
        }
        .min(width);
        let s = format!(
            "\r[{}{}] {} / {}{}",
            "#".repeat(filled),
            "-".repeat(width - filled),
            fmt_drill_time(at),
            fmt_drill_time(total),
            if paused { "  PAUSED" } else { "" }
        );
        if s != self.last_bar {
            eprint!("{s}\x1b[K");
            let _ = std::io::stderr().flush();
            self.last_bar = s;
        }
    }

    fn event(&mut self, at: u64, text: &str) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!("  T+{:<8} {}", fmt_drill_time(at), line(text));
        self.last_bar.clear();
    }
}

async fn run_scenario(text: String, dir: &Path, rate: Option<u32>, json: bool) -> Result<Finished, Error> {
    let t_start = std::time::Instant::now();
    let text = match rate {
        Some(r) => runner::with_clock_rate(&text, r),
        None => text,
    };
    let scenario = Scenario::parse(&text).map_err(|e| Error::Usage(format!("scenario: {e}")))?;
    prepare_dir(dir)?;
    let all: Vec<String> = OAS_35.iter().map(|s| s.to_string()).collect();
    let (states, ranks) = runner::network_needs(&scenario, &all);
    let humans = scenario.participants.humans.clone();
    let mut screen = Screen {
        tty: std::io::stderr().is_terminal(),
        last_bar: String::new(),
    };
    eprintln!(
        "EXERCISE — {}: {} states × {} ranks, clock ×{} (one drill minute = {:.1} s)",
        line(&scenario.name),
        states.len(),
        ranks.len(),
        scenario.clock_rate,
        60.0 / scenario.clock_rate as f64
    );
    eprintln!("enrolling the simulated network through the Secretariat and national authorities …");
    let t0 = std::time::Instant::now();
    let tty = screen.tty;
    let mut net = Network::build(
        &dir.join("network"),
        &states,
        &ranks,
        &humans,
        |who, n, total| {
            if tty {
                eprint!("\r  {n}/{total} listed ({})\x1b[K", line(who));
            }
        },
        ask_human,
    )
    .await?;
    if screen.tty {
        eprint!("\r\x1b[K");
    }
    let enrol_ms = t0.elapsed().as_millis() as u64;
    eprintln!(
        "{} POCs listed in {:.0} s; relay on {} ; running the scenario …",
        net.members.len(),
        t0.elapsed().as_secs_f64(),
        net.relay.addr
    );
    eprintln!(
        "(pause, resume or end it from another terminal: pocnet drill pause|resume|end --dir {})",
        dir.join("network").display()
    );
    let local = tokio::task::LocalSet::new();
    let out = dir.join("report");
    let r = local
        .run_until(runner::run(&mut net, &text, &out, |u| match u {
            Ui::Progress { at, total, paused } => screen.bar(at, total, paused),
            Ui::Event { at, text } => screen.event(at, &text),
        }))
        .await;
    if screen.tty {
        eprint!("\r\x1b[K");
    }
    net.relay.stop();
    let f = r?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "record": f.record, "markdown": f.markdown, "json": f.json, "html": f.html,
                "ended_early": f.ended_early, "pocs": net.members.len(), "stats": f.stats,
                "enrol_ms": enrol_ms, "total_ms": t_start.elapsed().as_millis() as u64,
            })
        );
    } else {
        print_summary(&f);
    }
    Ok(f)
}

/// Asks the drill officer, on the terminal, for a human participant's fingerprint and the
/// voice code heard on the phone (the real voice check).
fn ask_human(inv: &HumanInvite) -> Result<(String, String), Error> {
    use std::io::BufRead;
    eprintln!();
    eprintln!(
        "HUMAN PARTICIPANT {}: on their machine, with their own profile, they run",
        line(&inv.handle)
    );
    eprintln!(
        "  pocnet enrol --relay {} --relay-key {} --directory {}",
        inv.relay, inv.relay_key, inv.vkey
    );
    eprintln!("then read you their fingerprint and, on the phone, their voice code.");
    let read = |prompt: &str| -> Result<String, Error> {
        eprint!("{prompt}: ");
        let _ = std::io::stderr().flush();
        let mut l = String::new();
        std::io::stdin().lock().read_line(&mut l).map_err(|e| Error::Io {
            context: "cannot read the answer".into(),
            source: e,
        })?;
        if l.is_empty() {
            return Err(Error::Usage(
                "no answer on standard input for a human participant".into(),
            ));
        }
        Ok(l.trim().to_string())
    };
    let fp = read(&format!("{} fingerprint", inv.handle))?;
    let heard = read(&format!("{} voice code heard", inv.handle))?;
    Ok((fp, heard))
}

fn print_summary(f: &Finished) {
    let r = &f.report;
    println!();
    println!(
        "EXERCISE finished{}: {}",
        if f.ended_early { " EARLY" } else { "" },
        line(&r.scenario)
    );
    for reach in &r.reachability {
        println!(
            "  reachability: {} of {} states whose primary did not answer but had a live alternate acknowledged \
             within two escalation windows ({})",
            reach.within_two_windows.len(),
            reach.eligible.len(),
            if reach.target_met {
                "target 100% met"
            } else {
                "TARGET MISSED"
            }
        );
    }
    println!("  unreachable POCs: {}", r.unreachable.len());
    println!("after-action report (self-contained HTML): {}", f.html.display());
    println!("  also {} and {}", f.markdown.display(), f.json.display());
    println!(
        "signed drill record: {}   (re-derive the report: pocnet drill verify {})",
        f.record.display(),
        f.record.display()
    );
}

fn write_out(out: Option<&PathBuf>, text: &str) -> Result<(), Error> {
    match out {
        Some(p) => std::fs::write(p, text).map_err(|e| Error::Io {
            context: format!("cannot write {}", p.display()),
            source: e,
        }),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn control(dir: &Path, word: &str) -> Result<(), Error> {
    let d = if dir.join("network").is_dir() {
        dir.join("network")
    } else {
        dir.to_path_buf()
    };
    if !d.join("relay").is_dir() {
        return Err(Error::Usage(format!("{} holds no drill", dir.display())));
    }
    std::fs::write(runner::control_file(&d), word).map_err(|e| Error::Io {
        context: format!("cannot write to {}", d.display()),
        source: e,
    })?;
    println!("asked the drill in {} to {word}", d.display());
    Ok(())
}

pub async fn drill(json: bool, what: DrillCmd) -> Result<(), Error> {
    match what {
        DrillCmd::Run { scenario, dir, rate } => {
            let text = scenario_text(&scenario)?;
            let dir = dir.unwrap_or_else(|| PathBuf::from(format!("pocnet-drill-{}", sanitize(&scenario))));
            run_scenario(text, &dir, rate, json).await.map(|_| ())
        }
        DrillCmd::Pause { dir } => control(&dir, "pause"),
        DrillCmd::Resume { dir } => control(&dir, "resume"),
        DrillCmd::End { dir } => control(&dir, "end"),
        DrillCmd::Verify {
            record,
            directory,
            format,
            out,
        } => {
            let bytes = std::fs::read(&record).map_err(|e| Error::Io {
                context: format!("cannot read {}", record.display()),
                source: e,
            })?;
            let (_, report) = pocnet_core::drill::verify_drill(&bytes, directory.as_deref())
                .map_err(|e| Error::DirectoryRefused(format!("the drill record does not verify: {e}")))?;
            eprintln!(
                "drill record verified: the controller's signature, the directory log{}, every alert's \
                 signature, plan and relay acceptance, every receipt and round bundle; every envelope is EXERCISE",
                if directory.is_some() {
                    " (against the key you gave)"
                } else {
                    " (against the key the record names: pass --directory to pin yours)"
                }
            );
            let text = match (json, format.as_str()) {
                (true, _) | (_, "json") => report.to_json(),
                (_, "md") => report.to_markdown(),
                (_, "html") => report.to_html(),
                (_, other) => {
                    return Err(Error::Usage(format!(
                        "--format `{}`: use md, json or html",
                        line(other)
                    )))
                }
            };
            write_out(out.as_ref(), &text)
        }
        DrillCmd::Scenarios => {
            for name in pocnet_core::drill::BUILTIN {
                let s = Scenario::parse(pocnet_core::drill::builtin(name).expect("shipped"))
                    .map_err(|e| Error::Usage(format!("shipped scenario {name}: {e}")))?;
                println!("{name:<14} {}", line(&s.name));
            }
            Ok(())
        }
    }
}

fn sanitize(s: &str) -> String {
    Path::new(s)
        .file_stem()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

/// `pocnet demo`: the airport scenario on a local 35-state network, at an accelerated clock.
pub async fn demo(json: bool, dir: Option<PathBuf>, rate: u32) -> Result<(), Error> {
    let text = pocnet_core::drill::builtin("airport").expect("shipped").to_string();
    let dir = dir.unwrap_or_else(|| PathBuf::from("pocnet-demo"));
    let started = std::time::Instant::now();
    let f = run_scenario(text, &dir, Some(rate), json).await?;
    if !json {
        println!("demo finished in {:.0} s", started.elapsed().as_secs_f64());
        let _ = f;
    }
    Ok(())
}
