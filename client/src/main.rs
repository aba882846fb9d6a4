//! `pocnet`: the command line for Points of Contact and the Secretariat.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use pocnet_client::app::{Client, Outgoing};
use pocnet_client::db::StoredMessage;
use pocnet_client::profile::{default_home, passphrase, Profile};
use pocnet_client::render::{self, InboxView, MessageView, SavedView, SentView, StatusView, VerifyView};
use pocnet_client::types::Direction;
use pocnet_client::Error;
use pocnet_crypto::{safety_number, ContentType, KdfParams, Tlp};
use serde::Serialize;
use zeroize::Zeroizing;

/// pocnet: secure, acknowledged messages between cyber-policy Points of Contact.
///
/// Your key lives in a profile directory (--home, POCNET_HOME, or the XDG data dir),
/// encrypted under a passphrase read from POCNET_PASSPHRASE, POCNET_PASSPHRASE_FILE,
/// --passphrase-file, or a prompt. Every listing takes --json.
///
/// Exit codes: 0 success, 1 local failure (disk, store), 2 usage, 3 passphrase or key
/// file, 4 no or damaged profile / not enrolled here, 5 key not enrolled or revoked at the
/// relay, 6 relay key or signature wrong, 7 relay unreachable or transfer interrupted,
/// 8 relay refused or broke the protocol, 9 a contact's key CHANGED, 10 no such contact
/// or message, 11 refused as too large or failing verification.
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
        /// The one-time invite code, or `-` to read it from standard input. Note that
        /// command-line arguments are visible to other local users (ps, /proc): prefer
        /// `--invite -` or `--invite-file`.
        #[arg(long, conflicts_with = "invite_file", required_unless_present = "invite_file")]
        invite: Option<String>,
        /// Read the invite code from this file (first line).
        #[arg(long)]
        invite_file: Option<PathBuf>,
    },
    /// Send a message. TO is a handle (CL.primary), a state code (CL: all its POCs)
    /// or a fingerprint prefix. The body is --message, --text-file or standard input.
    Send {
        #[arg(required = true)]
        to: Vec<String>,
        #[arg(long, short, default_value = "")]
        subject: String,
        /// FIRST TLP 2.0 marking: clear, green, amber, amber+strict, red.
        #[arg(long, default_value = "amber")]
        tlp: String,
        /// Message text (otherwise --text-file or standard input). Visible to other local
        /// users while the command runs, as every argument is.
        #[arg(long, short, conflicts_with = "text_file")]
        message: Option<String>,
        /// Read the message text from this file.
        #[arg(long)]
        text_file: Option<PathBuf>,
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
    /// Show a message (and tell its sender you read it). Received attachments are kept
    /// encrypted in the profile; --save writes them, decrypted, into DIR.
    Read {
        id: String,
        /// Write the message's attachments into this directory.
        #[arg(long, value_name = "DIR")]
        save: Option<PathBuf>,
    },
    /// Stay connected and print messages as they arrive.
    Watch {
        /// Run this shell command for each message (fields in POCNET_* variables, body on
        /// stdin). The hook does not inherit POCNET_PASSPHRASE or POCNET_PASSPHRASE_FILE.
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

fn print_json<T: Serialize>(v: &T) {
    println!("{}", render::json(v, true));
}

/// The first line of a file, or of standard input for `-`.
fn first_line(source: &Path, what: &str) -> Result<Zeroizing<String>, Error> {
    let mut text = Zeroizing::new(String::new());
    let read = if source == Path::new("-") {
        if std::io::stdin().is_terminal() {
            eprintln!("Paste the {what} and press Enter, then Ctrl-D.");
        }
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(source).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| Error::Io {
        context: format!("cannot read the {what} from {}", source.display()),
        source: e,
    })?;
    Ok(Zeroizing::new(text.lines().next().unwrap_or("").trim().to_string()))
}

/// Runs a `--exec` hook for one message. The hook gets the fields in variables
/// (single-line, neutralised) and the body on standard input, and never our secrets.
fn run_hook(cmd: &str, m: &MessageView) {
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env_remove("POCNET_PASSPHRASE")
        .env_remove("POCNET_PASSPHRASE_FILE")
        .env("POCNET_MESSAGE_ID", m.id.to_hex())
        .env("POCNET_FROM", render::line(&m.peer))
        .env("POCNET_SUBJECT", render::line(&m.subject))
        .env("POCNET_TLP", m.tlp)
        .env("POCNET_EXERCISE", if m.exercise { "1" } else { "0" })
        .env("POCNET_UNVERIFIED", if m.peer_unverified { "1" } else { "0" })
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

async fn run(cli: Cli) -> Result<(), Error> {
    let home = cli.home.clone().unwrap_or_else(default_home);
    let pass = || passphrase(cli.passphrase_file.as_deref(), false);
    match cli.command {
        Command::Init => {
            let p = passphrase(cli.passphrase_file.as_deref(), true)?;
            let (_, id) = Profile::create(&home, p.as_bytes(), KdfParams::DEFAULT)?;
            if cli.json {
                print_json(&serde_json::json!({ "home": home, "fingerprint": id.fingerprint().to_hex() }));
            } else {
                println!("identity created in {}", home.display());
                println!("fingerprint: {}", id.fingerprint().grouped());
                println!("Read this fingerprint to the Secretariat, then: pocnet enrol --relay HOST:PORT --relay-key RELAY_FINGERPRINT --invite-file FILE");
            }
        }
        Command::Enrol {
            relay,
            relay_key,
            invite,
            invite_file,
        } => {
            let code = match (invite, invite_file) {
                (Some(c), None) if c == "-" => first_line(Path::new("-"), "invite code")?,
                (Some(c), None) => Zeroizing::new(c),
                (None, Some(f)) => first_line(&f, "invite code")?,
                _ => {
                    return Err(Error::Usage(
                        "give the invite with --invite CODE, --invite - or --invite-file PATH".into(),
                    ))
                }
            };
            if code.is_empty() {
                return Err(Error::Usage("the invite code is empty".into()));
            }
            let mut c = Client::open(&home, pass()?.as_bytes())?;
            let m = c.enrol(&relay, &relay_key, &code).await?;
            if cli.json {
                print_json(&m.handle);
            } else {
                println!(
                    "enrolled as {} ({}) at {}",
                    render::line(&m.handle),
                    render::line(&m.name),
                    render::line(&relay)
                );
            }
        }
        Command::Send {
            to,
            subject,
            tlp,
            message,
            text_file,
            attach,
            incident,
        } => {
            let tlp = Tlp::parse(&tlp)
                .ok_or_else(|| Error::Usage(format!("--tlp {tlp:?}: use clear, green, amber, amber+strict or red")))?;
            let text = match (message, text_file) {
                (Some(m), _) => m,
                (None, Some(f)) => std::fs::read_to_string(&f).map_err(|e| Error::Io {
                    context: format!("cannot read --text-file {}", f.display()),
                    source: e,
                })?,
                (None, None) => {
                    if std::io::stdin().is_terminal() {
                        eprintln!("Type the message; end with Ctrl-D.");
                    }
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).map_err(|e| Error::Io {
                        context: "cannot read the message from standard input".into(),
                        source: e,
                    })?;
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
                .await;
            s.close().await;
            let view = SentView(sent?);
            if cli.json {
                print_json(&view);
            } else {
                print!("{}", view.text());
            }
        }
        Command::Inbox { offline } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let mut fetched = None;
            if !offline {
                let s = c.connect().await?;
                let r = c.sync(&s, false, None, |_, _| {}).await;
                s.close().await;
                fetched = Some(r?);
            }
            let view = InboxView {
                fetched,
                messages: c.list(Direction::In)?.iter().map(MessageView::from).collect(),
            };
            if cli.json {
                print_json(&view.messages);
            } else {
                if let Some(summary) = view.summary() {
                    eprintln!("{summary}");
                }
                print!("{}", view.text());
            }
        }
        Command::Read { id, save } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let s = c.connect().await.ok();
            let m = c.read(&id, s.as_ref()).await;
            if let Some(s) = s {
                s.close().await;
            }
            let m = m?;
            let saved = match &save {
                Some(dir) => Some(SavedView(c.save_attachments(&m, dir)?)),
                None => None,
            };
            let view = MessageView::from(&m);
            if cli.json {
                // The message itself, with what was saved beside its fields.
                #[derive(Serialize)]
                struct ReadView<'a> {
                    #[serde(flatten)]
                    message: &'a MessageView,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    saved: Option<&'a SavedView>,
                }
                print_json(&ReadView {
                    message: &view,
                    saved: saved.as_ref(),
                });
            } else {
                print!("{}", view.text());
                if let Some(saved) = saved {
                    print!("{}", saved.text());
                }
            }
        }
        Command::Watch { exec, count } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let s = c.connect().await?;
            let json = cli.json;
            let result = {
                let on = |m: &StoredMessage, ct: ContentType| {
                    let view = MessageView::from(m);
                    if json {
                        println!("{}", render::json(&view, false));
                    } else {
                        if ct == ContentType::Alert {
                            print!("\x07");
                        }
                        print!("{}", view.text());
                        println!("----");
                    }
                    let _ = std::io::stdout().flush();
                    if let Some(cmd) = &exec {
                        run_hook(cmd, &view);
                    }
                };
                let handle = render::line(c.handle().unwrap_or("?"));
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
                if let Err(e) = c.sync(&s, false, None, |_, _| {}).await {
                    tracing::warn!("could not fetch new receipts: {}", render::line(&e.to_string()));
                }
                s.close().await;
            }
            let view = StatusView(c.status(&id)?);
            if cli.json {
                print_json(&view);
            } else {
                print!("{}", view.text());
            }
        }
        Command::Verify { handle, accept } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let s = c.connect().await?;
            let found = c.verify_contact(&s, &handle, accept).await;
            s.close().await;
            let (m, pi, previous) = found?;
            let sn = safety_number(c.identity.public_key(), pi.key());
            let view = VerifyView {
                handle: m.handle,
                name: m.name,
                fingerprint: pi.fingerprint().to_hex(),
                fingerprint_grouped: pi.fingerprint().grouped(),
                safety_number: sn.digits().to_string(),
                key_changed_from: previous.map(|k| k.fingerprint().to_hex()),
                key_changed_from_grouped: previous.map(|k| k.fingerprint().grouped()),
                accepted: accept,
            };
            if cli.json {
                print_json(&view);
            } else {
                print!("{}", view.text());
            }
        }
        Command::Whoami => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let handle = c.handle().unwrap_or("(not enrolled)").to_string();
            if cli.json {
                print_json(&serde_json::json!({ "handle": handle, "fingerprint": c.identity.fingerprint().to_hex() }));
            } else {
                println!("{}\n{}", render::line(&handle), c.identity.fingerprint().grouped());
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
        // Every variant's text includes its cause. It can carry another party's words (a
        // relay's message, a handle): neutralised like any of them.
        eprintln!("pocnet: {}", render::line(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}
