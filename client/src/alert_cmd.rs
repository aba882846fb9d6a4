//! `pocnet alert ...`, `pocnet forward` and `pocnet incident`.

use std::path::PathBuf;

use clap::Subcommand;
use pocnet_client::app::Client;
use pocnet_client::ops::alerts::{AlertView, FollowUp, RaiseArgs};
use pocnet_client::render::{self, line};
use pocnet_client::{now_ms, Error};
use pocnet_core::alert::{AlertBody, Category, Certainty, Lang, MsgType, ResponseType, Severity, Urgency};
use pocnet_crypto::Tlp;

use crate::print_json;

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum AlertCmd {
    /// Raise an alert to every POC of the given states: sealed now for all ranks, released
    /// by the relay to the primary now, to the alternate if nobody in that state
    /// acknowledges within --ack-within, then to further ranks, then repeated to the whole
    /// state --repeat times. You may go offline once it is accepted.
    Raise {
        /// ISO 3166-1 alpha-2 codes of the states to alert.
        #[arg(long, required = true, num_args = 1..)]
        to: Vec<String>,
        /// One line: what is happening.
        #[arg(long)]
        headline: String,
        /// What is known (or --description-file).
        #[arg(long, conflicts_with = "description_file")]
        description: Option<String>,
        /// Read the description from this file.
        #[arg(long)]
        description_file: Option<PathBuf>,
        /// What the recipients should do.
        #[arg(long, default_value = "")]
        instruction: String,
        /// How long a state's POC has to acknowledge before the next one is called
        /// (e.g. 90s, 15m, 2h).
        #[arg(long, default_value = "15m")]
        ack_within: String,
        /// After the last rank, call the whole state again this many times (0 to 9).
        #[arg(long = "repeat", default_value_t = 2)]
        repeat: u8,
        /// Incident identifier (printable ASCII, no spaces).
        #[arg(long)]
        incident: Option<String>,
        /// FIRST TLP 2.0 marking: clear, green, amber, amber+strict, red.
        #[arg(long, default_value = "amber")]
        tlp: String,
        /// CAP category (repeatable): Security, Infra, Transport, Safety, ...
        #[arg(long = "category", default_values_t = vec!["Security".to_string()])]
        category: Vec<String>,
        /// CAP severity: Extreme, Severe, Moderate, Minor, Unknown.
        #[arg(long, default_value = "Severe")]
        severity: String,
        /// CAP urgency: Immediate, Expected, Future, Past, Unknown.
        #[arg(long, default_value = "Immediate")]
        urgency: String,
        /// CAP certainty: Observed, Likely, Possible, Unlikely, Unknown.
        #[arg(long, default_value = "Observed")]
        certainty: String,
        /// CAP response type (repeatable): Prepare, Execute, Monitor, Assess, ...
        #[arg(long = "response-type", default_values_t = vec!["Monitor".to_string()])]
        response_type: Vec<String>,
        /// Drill traffic: shown as EXERCISE everywhere, never as a real incident.
        #[arg(long)]
        exercise: bool,
    },
    /// Acknowledge an alert you received: stops escalation for your state. Kept and sent
    /// later if the relay cannot be reached now.
    Ack {
        id: String,
        /// A note for the sender (sent as a CAP Ack).
        #[arg(long)]
        note: Option<String>,
    },
    /// Where an alert you raised stands, per state and per POC.
    Status {
        id: String,
        /// Keep showing changes until every state has acknowledged or is unreached.
        #[arg(long)]
        follow: bool,
    },
    /// Send new information about an alert you raised to every POC already called
    /// (--all-clear ends the incident and stops escalation).
    Update {
        id: String,
        #[arg(long)]
        description: String,
        #[arg(long, default_value = "")]
        instruction: String,
        #[arg(long)]
        all_clear: bool,
    },
    /// Withdraw an alert you raised (sent in error): stops escalation and tells everyone
    /// already called.
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Write an alert as OASIS CAP 1.2 XML.
    Export {
        id: String,
        /// CAP 1.2 XML (the only format).
        #[arg(long, required = true)]
        cap: bool,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Alerts you received, open ones first.
    List,
}

#[derive(Subcommand)]
pub enum IncidentCmd {
    /// One timeline of an incident from the signed records you hold: messages, alerts,
    /// acknowledgements, updates and cancellations.
    Show {
        id: String,
        /// md (default), json or html.
        #[arg(long, default_value = "md")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `15m`, `90s`, `2h`, `1d` (or plain seconds) as milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, Error> {
    let s = s.trim();
    let bad = || Error::Usage(format!("`{}` is not a duration: use e.g. 90s, 15m, 2h", line(s)));
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

fn parse_word<T>(what: &str, s: &str, f: impl Fn(&str) -> Option<T>, allowed: &str) -> Result<T, Error> {
    f(s).ok_or_else(|| Error::Usage(format!("{what} `{}` is not one of: {allowed}", line(s))))
}

fn allowed<T: std::fmt::Display>(all: &[T]) -> String {
    all.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
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

/// Minutes and seconds, for "time left".
fn left(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// The alert as a POC sees it: above everything, in its language for the structured
/// fields, with the free text exactly as written (neutralised).
pub fn banner(v: &AlertView, lang: Lang, now: u64) -> String {
    use pocnet_core::alert::i18n::{label, Label};
    let b = &v.body;
    let mut out = String::new();
    let bar = "=".repeat(72);
    out.push_str(&bar);
    out.push('\n');
    if v.exercise {
        // In the POC's language, and the English word too: a drill is never misread.
        let tag = label(lang, Label::Exercise);
        if lang == Lang::En {
            out.push_str(&format!("*** {tag} ***\n"));
        } else {
            out.push_str(&format!("*** {tag} (EXERCISE) ***\n"));
        }
    }
    let kind = match b.msg_type {
        MsgType::Alert => label(lang, Label::Alert),
        MsgType::Update if b.is_all_clear() => label(lang, Label::AllClear),
        MsgType::Update => label(lang, Label::Update),
        MsgType::Cancel => label(lang, Label::Cancelled),
        MsgType::Ack => label(lang, Label::Acknowledgement),
    };
    out.push_str(&format!("{kind} [{}]  {}\n", v.tlp.label(), line(&b.headline)));
    out.push_str(&format!("  {}\n", label(lang, Label::TlpMeaning(v.tlp))));
    out.push_str(&format!(
        "  {}: {}    id {}\n",
        label(lang, Label::From),
        line(&v.from),
        &v.id[..16.min(v.id.len())]
    ));
    if let Some(inc) = &v.incident {
        out.push_str(&format!("  {}: {}\n", label(lang, Label::Incident), line(inc)));
    }
    out.push_str(&format!(
        "  {}: {}   {}: {}   {}: {}\n",
        label(lang, Label::SeverityName),
        label(lang, Label::Severity(b.severity)),
        label(lang, Label::UrgencyName),
        label(lang, Label::Urgency(b.urgency)),
        label(lang, Label::CertaintyName),
        label(lang, Label::Certainty(b.certainty)),
    ));
    if !b.category.is_empty() {
        let cats: Vec<&str> = b.category.iter().map(|c| label(lang, Label::Category(*c))).collect();
        out.push_str(&format!(
            "  {}: {}\n",
            label(lang, Label::CategoryName),
            cats.join(", ")
        ));
    }
    if !b.response_type.is_empty() {
        let r: Vec<&str> = b
            .response_type
            .iter()
            .map(|c| label(lang, Label::Response(*c)))
            .collect();
        out.push_str(&format!("  {}: {}\n", label(lang, Label::ResponseName), r.join(", ")));
    }
    if let Some(r) = &v.release {
        if r.repeat > 0 {
            out.push_str(&format!("  {} {}\n", label(lang, Label::Repeat), r.repeat));
        }
        if r.late() {
            out.push_str(&format!(
                "  {} ({} {})\n",
                label(lang, Label::LateRelease),
                render::fmt_time(r.due_ms),
                "→"
            ));
        }
    }
    out.push('\n');
    for l in render::text(&b.description).lines() {
        out.push_str(&format!("  {l}\n"));
    }
    if !b.instruction.is_empty() {
        out.push_str(&format!("\n  {}:\n", label(lang, Label::Instruction)));
        for l in render::text(&b.instruction).lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out.push('\n');
    match (v.acked_at, v.escalates_at()) {
        (Some(at), _) => out.push_str(&format!(
            "  {} {}\n",
            label(lang, Label::AcknowledgedAt),
            render::fmt_time(at)
        )),
        (None, Some(at)) if b.msg_type == MsgType::Alert => {
            let l = if at > now { left(at - now) } else { "0m00s".into() };
            out.push_str(&format!(
                "  {} {l} ({}) — {}\n",
                label(lang, Label::AcknowledgeWithin),
                render::fmt_time(at),
                label(lang, Label::TimeLeft)
            ));
        }
        _ => {}
    }
    if v.acked_at.is_none() && b.msg_type == MsgType::Alert {
        out.push_str(&format!(
            "  {}: pocnet alert ack {}\n",
            label(lang, Label::AcknowledgeWith),
            &v.id[..16.min(v.id.len())]
        ));
    }
    out.push_str(&bar);
    out.push('\n');
    out
}

pub async fn alert(c: &Client, json: bool, what: AlertCmd) -> Result<(), Error> {
    match what {
        AlertCmd::Raise {
            to,
            headline,
            description,
            description_file,
            instruction,
            ack_within,
            repeat,
            incident,
            tlp,
            category,
            severity,
            urgency,
            certainty,
            response_type,
            exercise,
        } => {
            let description = match (description, description_file) {
                (Some(d), _) => d,
                (None, Some(f)) => std::fs::read_to_string(&f).map_err(|e| Error::Io {
                    context: format!("cannot read {}", f.display()),
                    source: e,
                })?,
                (None, None) => return Err(Error::Usage("give --description or --description-file".into())),
            };
            let tlp = Tlp::parse(&tlp)
                .ok_or_else(|| Error::Usage("--tlp must be clear, green, amber, amber+strict or red".into()))?;
            let body = AlertBody {
                version: pocnet_core::alert::ALERT_VERSION,
                msg_type: MsgType::Alert,
                references: Vec::new(),
                headline,
                description,
                instruction,
                category: category
                    .iter()
                    .map(|c| parse_word("category", c, Category::parse_cli, &allowed(Category::ALL)))
                    .collect::<Result<_, _>>()?,
                severity: parse_word("severity", &severity, Severity::parse_cli, &allowed(Severity::ALL))?,
                urgency: parse_word("urgency", &urgency, Urgency::parse_cli, &allowed(Urgency::ALL))?,
                certainty: parse_word("certainty", &certainty, Certainty::parse_cli, &allowed(Certainty::ALL))?,
                response_type: response_type
                    .iter()
                    .map(|c| parse_word("response type", c, ResponseType::parse_cli, &allowed(ResponseType::ALL)))
                    .collect::<Result<_, _>>()?,
                ack_within_ms: parse_duration(&ack_within)?,
                repeats: repeat,
                targets: Vec::new(),
                sent_ms: 0,
                sender_handle: String::new(),
            };
            let s = c.connect().await?;
            let r = c
                .alert_raise(
                    &s,
                    RaiseArgs {
                        states: to,
                        body,
                        tlp,
                        incident,
                        exercise,
                    },
                )
                .await;
            s.close().await;
            let r = r?;
            if json {
                print_json(&r);
            } else {
                println!(
                    "{}alert {} accepted by the relay at {} for {} POCs; you may go offline.",
                    if exercise { "EXERCISE " } else { "" },
                    r.id,
                    render::fmt_time(r.accepted_ms),
                    r.recipients
                );
                for (st, ranks) in &r.states {
                    let shown: Vec<String> = ranks.iter().map(|h| h.join("+")).collect();
                    println!("  {st}: {}", shown.join(" → "));
                }
                for l in &r.left_out {
                    eprintln!("  not reached through this relay: {}", line(l));
                }
                println!("follow it with: pocnet alert status {} --follow", &r.id[..16]);
            }
        }
        AlertCmd::Ack { id, note } => {
            let s = c.connect().await;
            let sent = match &s {
                Ok(s) => c.alert_ack(Some(s), &id, note.as_deref()).await,
                Err(_) => c.alert_ack(None, &id, None).await,
            };
            if let Ok(s) = s {
                s.close().await;
            } else if note.is_some() {
                eprintln!("the note was not sent: the relay is unreachable; send it with `pocnet send` later");
            }
            let sent = sent?;
            if json {
                print_json(&serde_json::json!({ "acknowledged": true, "delivered_to_relay": sent }));
            } else if sent {
                println!("acknowledged: escalation stops for your state and the sender sees it.");
            } else {
                println!(
                    "acknowledged HERE, but the relay cannot be reached: the acknowledgement is kept and sent by \
                     the next `pocnet watch`, `inbox` or `alert ack`. Until then your alternate may be called: phone the sender."
                );
            }
        }
        AlertCmd::Status { id, follow } => {
            let s = c.connect().await?;
            let mut last = String::new();
            let result = loop {
                let st = match c.alert_status(&s, &id).await {
                    Ok(st) => st,
                    Err(e) => break Err(e),
                };
                let now = now_ms();
                // With --json and --follow: one line per change (NDJSON).
                let text = if json {
                    render::json(&st.to_json(), !follow)
                } else {
                    st.render_text(now)
                };
                if text != last {
                    if follow && !json {
                        println!("---- {} ----", render::fmt_time(now));
                    }
                    println!("{text}");
                    last = text;
                }
                if !follow || st.finished() {
                    break Ok(());
                }
                // Wake on the next delivery (a receipt) or after a second, whichever first.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(1), c.sync(&s, true, Some(1), |_, _| {})).await;
            };
            s.close().await;
            result?;
        }
        AlertCmd::Update {
            id,
            description,
            instruction,
            all_clear,
        } => {
            let s = c.connect().await?;
            let r = c
                .alert_follow_up(
                    &s,
                    &id,
                    FollowUp::Update {
                        description,
                        instruction,
                        all_clear,
                    },
                )
                .await;
            s.close().await;
            let r = r?;
            if json {
                print_json(&r);
            } else {
                println!(
                    "{} {} sent to every POC already called{}.",
                    if all_clear { "all-clear" } else { "update" },
                    r.id,
                    if all_clear {
                        "; escalation stopped, the incident is closed"
                    } else {
                        ""
                    }
                );
            }
        }
        AlertCmd::Cancel { id, reason } => {
            let s = c.connect().await?;
            let r = c.alert_follow_up(&s, &id, FollowUp::Cancel { reason }).await;
            s.close().await;
            let r = r?;
            if json {
                print_json(&r);
            } else {
                println!(
                    "cancellation {} sent to every POC already called; escalation stopped.",
                    r.id
                );
            }
        }
        AlertCmd::Export { id, cap: _, out } => {
            let xml = c.alert_cap(&id)?;
            write_out(out.as_ref(), &xml)?;
        }
        AlertCmd::List => {
            let lang = c.own_language();
            let mut all = c.alerts_received()?;
            all.sort_by_key(|a| (a.acked_at.is_some(), std::cmp::Reverse(a.accepted_ms)));
            if json {
                print_json(
                    &all.iter()
                        .map(|a| {
                            serde_json::json!({
                                "id": a.id, "from": a.from, "tlp": a.tlp.label(), "exercise": a.exercise,
                                "msg_type": a.body.msg_type.as_cap(), "headline": a.body.headline,
                                "incident": a.incident, "acknowledged_at": a.acked_at, "rings": a.rings,
                                "escalates_at": a.escalates_at(),
                                "release": a.release.map(|r| serde_json::json!({
                                    "rank": r.rank, "repeat": r.repeat, "due_ms": r.due_ms,
                                    "released_ms": r.released_ms, "late": r.late(),
                                })),
                            })
                        })
                        .collect::<Vec<_>>(),
                );
            } else if all.is_empty() {
                println!("no alerts received");
            } else {
                let now = now_ms();
                for a in &all {
                    print!("{}", banner(a, lang, now));
                }
            }
        }
    }
    Ok(())
}

pub fn incident(c: &Client, json: bool, what: IncidentCmd) -> Result<(), Error> {
    match what {
        IncidentCmd::Show { id, format, out } => {
            let t = c.incident(&id)?;
            let text = match (json, format.as_str()) {
                (true, _) | (_, "json") => render::json(&t.json(), true) + "\n",
                (_, "md") => t.markdown(),
                (_, "html") => t.html(),
                (_, other) => {
                    return Err(Error::Usage(format!(
                        "--format `{}`: use md, json or html",
                        line(other)
                    )))
                }
            };
            write_out(out.as_ref(), &text)
        }
    }
}
