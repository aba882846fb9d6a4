//! `pocnet`: the command line for Points of Contact and the Secretariat.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pocnet_client::app::{Client, Outgoing};
use pocnet_client::db::MessageRow;
use pocnet_client::profile::{default_home, passphrase, Profile};
use pocnet_crypto::{safety_number, ContentType, KdfParams, Tlp};
use serde::Serialize;

/// pocnet: secure, acknowledged messages between cyber-policy Points of Contact.
///
/// Your key lives in a profile directory (--home, POCNET_HOME, or the XDG data dir),
/// encrypted under a passphrase read from POCNET_PASSPHRASE, POCNET_PASSPHRASE_FILE,
/// --passphrase-file, or a prompt. Every listing takes --json.
#[derive(Parser)]
#[command(name = "pocnet", version)]
struct Cli {
    /// Profile directory.
    #[arg(long, global = true, env = "POCNET_HOME")]
    home: Option<PathBuf>,
    /// Read the key passphrase from this file (first line).
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create your identity and print its fingerprint (read it to the Secretariat).
    Init,
    /// Enrol at a relay with a one-time invite code; pins the relay's key.
    Enrol {
        /// Relay address, HOST:PORT.
        #[arg(long)]
        relay: String,
        /// The relay's fingerprint, as its operator gave it to you.
        #[arg(long)]
        relay_key: String,
        /// The one-time invite code.
        #[arg(long)]
        invite: String,
    },
    /// Send a message. TO is a handle (CL.primary), a state code (CL: all its POCs)
    /// or a fingerprint prefix. The body is --message or standard input.
    Send {
        #[arg(required = true)]
        to: Vec<String>,
        #[arg(long, short, default_value = "")]
        subject: String,
        /// FIRST TLP 2.0 marking: clear, green, amber, amber+strict, red.
        #[arg(long, default_value = "amber")]
        tlp: String,
        /// Message text (otherwise read from standard input).
        #[arg(long, short)]
        message: Option<String>,
        /// Attach a file (repeatable; up to the relay's limit, 100 MiB by default).
        #[arg(long)]
        attach: Vec<PathBuf>,
        /// Incident identifier to file this under.
        #[arg(long)]
        incident: Option<String>,
    },
    /// Fetch new messages from the relay and list the inbox.
    Inbox {
        /// List without contacting the relay.
        #[arg(long)]
        offline: bool,
    },
    /// Show a message (and tell its sender you read it).
    Read { id: String },
    /// Stay connected and print messages as they arrive.
    Watch {
        /// Run this shell command for each message (fields in POCNET_* variables, body on stdin).
        #[arg(long)]
        exec: Option<String>,
        /// Stop after this many new messages (for scripts and tests).
        #[arg(long)]
        count: Option<usize>,
    },
    /// Delivery status of a message you sent: stored at relay, delivered, read.
    Status { id: String },
    /// Show the safety number to compare by voice with a contact; with --accept, pin
    /// the contact's current key as verified (also after a key change).
    Verify {
        handle: String,
        /// The numbers matched on the call: pin this key.
        #[arg(long)]
        accept: bool,
    },
    /// Print your handle and fingerprint.
    Whoami,
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn fmt_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (d, s) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = d as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn show(m: &MessageRow) {
    let banner = if m.exercise {
        "EXERCISE EXERCISE EXERCISE — not a real incident\n"
    } else {
        ""
    };
    println!("{banner}[{}] {}", m.tlp, m.subject);
    println!("id:      {}", m.id);
    println!("from:    {}", m.peer);
    println!("to:      {}", m.recipients.join(", "));
    println!("sent:    {}", fmt_time(m.created_at));
    for a in &m.attachments {
        println!("attached: {a}");
    }
    println!("\n{}\n\n[{}]", m.body, m.tlp);
}

fn run_hook(cmd: &str, m: &MessageRow) {
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("POCNET_MESSAGE_ID", &m.id)
        .env("POCNET_FROM", &m.peer)
        .env("POCNET_SUBJECT", &m.subject)
        .env("POCNET_TLP", &m.tlp)
        .env("POCNET_EXERCISE", if m.exercise { "1" } else { "0" })
        .stdin(std::process::Stdio::piped())
        .spawn();
    match child {
        Ok(mut c) => {
            if let Some(mut stdin) = c.stdin.take() {
                let _ = stdin.write_all(m.body.as_bytes());
            }
            let _ = c.wait();
        }
        Err(e) => eprintln!("pocnet: --exec hook failed to start: {e}"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let home = cli.home.clone().unwrap_or_else(default_home);
    let pass = || passphrase(cli.passphrase_file.as_deref(), false);
    match cli.command {
        Command::Init => {
            let p = passphrase(cli.passphrase_file.as_deref(), true)?;
            let (_, id) = Profile::create(&home, p.as_bytes(), KdfParams::DEFAULT)?;
            if cli.json {
                print_json(&serde_json::json!({ "home": home, "fingerprint": id.fingerprint().to_hex() }))?;
            } else {
                println!("identity created in {}", home.display());
                println!("fingerprint: {}", id.fingerprint().grouped());
                println!("Read this fingerprint to the Secretariat, then: pocnet enrol --relay HOST:PORT --relay-key RELAY_FINGERPRINT --invite CODE");
            }
        }
        Command::Enrol {
            relay,
            relay_key,
            invite,
        } => {
            let mut c = Client::open(&home, pass()?.as_bytes())?;
            let m = c.enrol(&relay, &relay_key, &invite).await?;
            if cli.json {
                print_json(&m.handle)?;
            } else {
                println!("enrolled as {} ({}) at {relay}", m.handle, m.name);
            }
        }
        Command::Send {
            to,
            subject,
            tlp,
            message,
            attach,
            incident,
        } => {
            let tlp = Tlp::parse(&tlp)
                .with_context(|| format!("--tlp {tlp:?}: use clear, green, amber, amber+strict or red"))?;
            let text = match message {
                Some(m) => m,
                None => {
                    if std::io::stdin().is_terminal() {
                        eprintln!("Type the message; end with Ctrl-D.");
                    }
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
            };
            let c = Client::open(&home, pass()?.as_bytes())?;
            let s = c.connect().await?;
            let sent = c
                .send(
                    &s,
                    &to,
                    &Outgoing {
                        subject,
                        text,
                        tlp,
                        attachments: attach,
                        incident_id: incident,
                    },
                )
                .await?;
            s.close().await;
            if cli.json {
                print_json(&sent)?;
            } else {
                println!(
                    "{}  stored at relay {} for {}",
                    sent.id,
                    fmt_time(sent.stored_at),
                    sent.recipients.join(", ")
                );
            }
        }
        Command::Inbox { offline } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let mut fetched = None;
            if !offline {
                let s = c.connect().await?;
                fetched = Some(c.sync(&s, false, None, |_, _| {}).await?);
                s.close().await;
            }
            let rows = pocnet_client::db::list(&c.db, "in")?;
            if cli.json {
                print_json(&rows)?;
            } else {
                if let Some(f) = fetched {
                    eprintln!(
                        "{} new, {} receipts{}",
                        f.new_messages,
                        f.receipts,
                        if f.rejected > 0 {
                            format!(", {} REJECTED (failed verification)", f.rejected)
                        } else {
                            String::new()
                        }
                    );
                }
                for m in rows {
                    let flag = if m.read_at.is_none() { "*" } else { " " };
                    let ex = if m.exercise { " [EXERCISE]" } else { "" };
                    println!(
                        "{flag} {}  {}  {:<14} {:<18} {}{ex}",
                        &m.id[..12],
                        fmt_time(m.created_at),
                        m.peer,
                        m.tlp,
                        m.subject
                    );
                }
            }
        }
        Command::Read { id } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let s = c.connect().await.ok();
            let m = c.read(&id, s.as_ref()).await?;
            if let Some(s) = s {
                s.close().await;
            }
            if cli.json {
                print_json(&m)?;
            } else {
                show(&m);
            }
        }
        Command::Watch { exec, count } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let s = c.connect().await?;
            let json = cli.json;
            let result = {
                let on = |m: &MessageRow, ct: ContentType| {
                    if json {
                        println!("{}", serde_json::to_string(m).unwrap_or_default());
                    } else {
                        if ct == ContentType::Alert {
                            print!("\x07");
                        }
                        show(m);
                        println!("----");
                    }
                    let _ = std::io::stdout().flush();
                    if let Some(cmd) = &exec {
                        run_hook(cmd, m);
                    }
                };
                let handle = c.profile.config.handle.clone().unwrap_or_else(|| "?".into());
                let mut said = false;
                // Say "watching" once the stream is open and the backlog is in, so scripts
                // can wait for it before sending.
                c.sync_with(&s, true, count, on, || {
                    if !said {
                        eprintln!("watching for messages as {handle} (Ctrl-C to stop)");
                        said = true;
                    }
                })
                .await
                .map(|_| ())
            };
            s.close().await;
            result?;
        }
        Command::Status { id } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            if let Ok(s) = c.connect().await {
                let _ = c.sync(&s, false, None, |_, _| {}).await;
                s.close().await;
            }
            let st = c.status(&id)?;
            if cli.json {
                print_json(&st)?;
            } else {
                println!("{}  {}", st.id, st.subject);
                println!(
                    "sent; stored at relay {}",
                    st.stored_at.map(fmt_time).unwrap_or_else(|| "(not confirmed)".into())
                );
                for r in st.recipients {
                    println!(
                        "  {:<16} {:<10} {}",
                        r.handle,
                        r.state,
                        r.at.map(fmt_time).unwrap_or_default()
                    );
                }
            }
        }
        Command::Verify { handle, accept } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let s = c.connect().await?;
            let found = c.verify_contact(&s, &handle, accept).await;
            s.close().await;
            let (m, pi, previous) = found?;
            let sn = safety_number(c.identity.public_key(), pi.key());
            if cli.json {
                print_json(&serde_json::json!({
                    "handle": m.handle, "fingerprint": pi.fingerprint().to_hex(), "safety_number": sn.digits(),
                    "key_changed_from": previous.map(|k| k.fingerprint().to_hex()), "accepted": accept,
                }))?;
            } else {
                if let Some(old) = previous {
                    println!(
                        "WARNING: the key for {} CHANGED (you had {}).",
                        m.handle,
                        old.fingerprint().grouped()
                    );
                }
                println!(
                    "{} ({})\nfingerprint:   {}\nsafety number: {sn}",
                    m.handle,
                    m.name,
                    pi.fingerprint().grouped()
                );
                if accept {
                    println!("Pinned this key for {} as verified.", m.handle);
                } else {
                    println!("Read the safety number aloud on a call with {}; if it matches theirs exactly, run `pocnet verify {} --accept`.", m.handle, m.handle);
                }
            }
        }
        Command::Whoami => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let handle = c
                .profile
                .config
                .handle
                .clone()
                .unwrap_or_else(|| "(not enrolled)".into());
            if cli.json {
                print_json(&serde_json::json!({ "handle": handle, "fingerprint": c.identity.fingerprint().to_hex() }))?;
            } else {
                println!("{handle}\n{}", c.identity.fingerprint().grouped());
            }
        }
    }
    Ok(())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("POCNET_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pocnet: cannot start: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("pocnet: {e:#}");
        std::process::exit(1);
    }
}
