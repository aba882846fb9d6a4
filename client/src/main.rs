//! `pocnet`: the command line for Points of Contact and the Secretariat.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod alert_cmd;
mod commands;
mod drill_cmd;
mod policy_cmd;
use alert_cmd::{AlertCmd, IncidentCmd};
use commands::cli_ctx;
use pocnet_client::app::{Client, Enrolment, Outgoing};
use pocnet_client::db::StoredMessage;
use pocnet_client::profile::{default_home, passphrase, Profile};
use pocnet_client::render::{self, InboxView, MessageView, SavedView, SentView, StatusView, VerifyView};
use pocnet_client::types::Direction;
use pocnet_client::Error;
use pocnet_core::directory::Contact;
use pocnet_crypto::{safety_number, ContentType, KdfParams, Tlp};
use serde::Serialize;

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
/// or message, 11 refused as too large or failing verification, 12 DIRECTORY FORK
/// detected (evidence kept: `pocnet directory forks`), 13 refused by the directory rules
/// or the voice check (nothing was signed or published), 14 refused by TLP 2.0 (nothing
/// was forwarded).
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
    /// Join: pin the relay and the directory; offer your key to the Secretariat if the
    /// directory does not list you yet (then read your voice code to the Secretariat on
    /// the phone, and run this again once approved).
    Enrol {
        /// Relay address, HOST:PORT.
        #[arg(long)]
        relay: String,
        /// The relay's fingerprint, as its operator gave it to you.
        #[arg(long)]
        relay_key: String,
        /// The directory key, as the Secretariat gave it to you (<origin>+<id>+<key>).
        /// Not needed by the Secretariat itself after `secretariat genesis`.
        #[arg(long)]
        directory: Option<String>,
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
    /// Show the safety number to compare by voice with a contact. With --accept NUMBER
    /// (the number you both read), mark the contact's current key voice-verified (also
    /// after a key change, which blocks sending until then).
    Verify {
        handle: String,
        /// The safety number you compared on the call.
        #[arg(long, value_name = "NUMBER")]
        accept: Option<String>,
    },
    /// Print your handle, fingerprint and voice code (read the voice code to the
    /// Secretariat when it phones you).
    Whoami,
    /// The POC directory: list, show and search (from the verified log), sync, audit.
    Directory {
        #[command(subcommand)]
        what: Option<DirCmd>,
    },
    /// For the Secretariat: begin the directory, enrol national authorities, approve
    /// nominations after a voice check, publish updates.
    Secretariat {
        #[command(subcommand)]
        what: SecCmd,
    },
    /// For a national authority: nominate, remove, re-rank and revoke your state's POCs.
    National {
        #[command(subcommand)]
        what: NatCmd,
    },
    /// Rotate your encryption key: publishes the new one; run again after the
    /// Secretariat publishes it to delete the old private key.
    Rotate,
    /// Contact verification rounds: the Secretariat checks that every POC still answers;
    /// POCs answer; anyone re-verifies the report from its bundle.
    Round {
        #[command(subcommand)]
        what: RoundCmd,
    },
    /// Escalation alerts: raise one to states (released rank by rank until a POC of each
    /// state acknowledges), acknowledge, follow, update, cancel, export as CAP 1.2.
    Alert {
        #[command(subcommand)]
        what: AlertCmd,
    },
    /// Forward a message or alert (TLP 2.0 is enforced: TLP:RED only to those already on
    /// it, TLP:AMBER+STRICT only inside your own state).
    Forward {
        id: String,
        #[arg(required = true)]
        to: Vec<String>,
        /// A note above the forwarded text.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// The policy repository: national cyber policies, strategies, laws and regulations,
    /// signed by each state's national authority and listed on the directory log.
    Policy {
        #[command(subcommand)]
        what: policy_cmd::PolicyCmd,
    },
    /// Incidents: one timeline from the signed records (md, json, html).
    Incident {
        #[command(subcommand)]
        what: IncidentCmd,
    },
    /// Drills: run a scenario on a simulated network of real clients (EXERCISE traffic
    /// only), pause/resume/end it, and re-verify its after-action report.
    Drill {
        #[command(subcommand)]
        what: drill_cmd::DrillCmd,
    },
    /// The airport-attack drill on a local 35-state network, with live progress, in about
    /// two minutes; writes the after-action report and prints its path.
    Demo {
        /// Where the network and the report go (replaced if a drill made it).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Drill seconds per wall-clock second (120: one drill minute every half second).
        #[arg(long, default_value_t = 120)]
        rate: u32,
    },
    /// The portal: this profile in a web browser, served on 127.0.0.1 only. Prints a
    /// sign-in link that works once; keep this running while you use it (Ctrl-C stops it).
    Portal {
        /// Open the link in the default browser.
        #[arg(long)]
        open: bool,
        /// Port on 127.0.0.1 (default: a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// A folder of drill records (`*.record`) or one record to list under Drills
        /// (repeatable).
        #[arg(long)]
        drills: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RoundCmd {
    /// Secretariat: challenge POCs (all, or by --state/--category/--rank), with reminders
    /// sealed now and held by the relay for those who have not answered.
    Start {
        /// ISO 3166-1 alpha-2 state (repeatable; default: all).
        #[arg(long = "state")]
        states: Vec<String>,
        /// cyber or foreign (repeatable; default: both).
        #[arg(long = "category")]
        categories: Vec<String>,
        /// primary, alternate, further1..9 (repeatable; default: all).
        #[arg(long = "rank")]
        ranks: Vec<String>,
        /// Hours until answers are due.
        #[arg(long, default_value_t = 72.0)]
        deadline_hours: f64,
        /// Ask a question instead of "confirm your details".
        #[arg(long)]
        question: Option<String>,
        /// When to remind, as a fraction of the window (repeatable; default 0.5 and 0.9).
        #[arg(long = "reminder")]
        reminders: Vec<f64>,
    },
    /// POC: the contact checks waiting for your answer.
    Pending,
    /// POC: answer a contact check (unlocks your key: the answer is yours). Without contact
    /// flags your details are confirmed as they are; with them, they are updated.
    Answer {
        /// Which round (id prefix), if several wait.
        #[arg(long)]
        round: Option<String>,
        /// A short note, or the answer to the round's question.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        contact: ContactArgs,
    },
    /// Secretariat: rounds started, with how many answered.
    List,
    /// Secretariat: a round's report: md (default), json, csv or html.
    Report {
        round: String,
        #[arg(long, default_value = "md")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Secretariat: record that a POC answered outside pocnet (phone, e-mail).
    Outcome {
        round: String,
        handle: String,
        /// phone, e-mail, ...
        #[arg(long)]
        how: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Secretariat: write the round's signed bundle for anyone to re-verify.
    Bundle {
        round: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Secretariat: check every POC every N days (then run `pocnet round due` daily, from
    /// cron or a systemd timer; it starts a round when one is due).
    Schedule {
        #[arg(long)]
        every_days: u32,
        #[arg(long, default_value_t = 72.0)]
        deadline_hours: f64,
        #[arg(long = "reminder")]
        reminders: Vec<f64>,
    },
    /// Secretariat: start the scheduled round if it is due (safe to run as often as you like).
    Due,
    /// Anyone: re-verify a bundle and recompute its report (md, json, csv or html).
    Verify {
        bundle: PathBuf,
        #[arg(long, default_value = "md")]
        format: String,
    },
}

#[derive(Subcommand)]
enum DirCmd {
    /// List POCs (all, or matching a handle, state code, fingerprint prefix or name).
    List { query: Option<String> },
    /// Everything the directory says about one POC.
    Show { handle: String },
    /// Fetch and verify new directory entries.
    Sync,
    /// Re-verify the whole log from the first entry, as fetched again from the relay.
    Audit,
    /// Show recorded fork evidence.
    Forks,
    /// Confirm your directory details are still correct (the yearly update).
    Confirm,
    /// Publish new contact details (fields not given stay as they are).
    Update {
        #[command(flatten)]
        contact: ContactArgs,
    },
    /// Witness: cosign the directory's latest checkpoint after verifying it.
    Witness {
        /// Your witness name, as in the key you gave the Secretariat.
        #[arg(long)]
        name: String,
    },
    /// Print your witness key (for the Secretariat's witness list).
    WitnessKey {
        #[arg(long)]
        name: String,
    },
}

#[derive(clap::Args, Default)]
struct ContactArgs {
    /// Full name.
    #[arg(long)]
    name: Option<String>,
    /// Position held.
    #[arg(long)]
    position: Option<String>,
    /// Institution.
    #[arg(long)]
    institution: Option<String>,
    /// E-mail for out-of-band contact.
    #[arg(long)]
    email: Option<String>,
    /// Phone number (repeatable; most preferred first).
    #[arg(long = "phone")]
    phones: Vec<String>,
    /// Language, BCP 47 (repeatable: es, en, fr, pt-BR).
    #[arg(long = "language")]
    languages: Vec<String>,
    /// Time zone (IANA), e.g. America/Santiago.
    #[arg(long)]
    time_zone: Option<String>,
    /// Working hours, e.g. "Mon-Fri 09:00-18:00".
    #[arg(long)]
    hours: Option<String>,
}

#[derive(Subcommand)]
enum SecCmd {
    /// Begin the directory log (once, offline) and print the directory key to give to
    /// the relay operator and every member.
    Genesis {
        /// The log's name, e.g. oas.example/cicte-poc.
        #[arg(long)]
        origin: String,
        /// A witness key (repeatable), as `pocnet directory witness-key` prints it.
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// How many witnesses must cosign each checkpoint before clients accept it.
        #[arg(long, default_value_t = 0)]
        quorum: u32,
    },
    /// Enrol a state's national authority after phoning it and hearing its voice code.
    Authority {
        /// ISO 3166-1 alpha-2 code.
        #[arg(long)]
        state: String,
        /// The authority key's fingerprint (from its `pocnet init`).
        #[arg(long)]
        fingerprint: String,
        /// Name of the authority.
        #[arg(long)]
        name: String,
        /// Its institution.
        #[arg(long)]
        institution: String,
        /// The voice code you heard (otherwise you are asked for it).
        #[arg(long)]
        heard: Option<String>,
    },
    /// List what waits for you: nominations (approve after a phone call) and updates.
    Pending,
    /// Approve nomination ID: phone the nominee, ask them to read the voice code that
    /// `pocnet whoami` shows, and type the digits you heard.
    Approve {
        id: u64,
        /// The voice code you heard (otherwise you are asked for it).
        #[arg(long)]
        heard: Option<String>,
    },
    /// Publish every waiting update that needs no phone call (removals, rank changes,
    /// revocations, key rotations, contact updates, confirmations).
    Publish,
    /// Refuse a waiting statement.
    Dismiss { id: u64 },
    /// Revoke a POC's key at once (lost or compromised).
    Revoke {
        handle: String,
        #[arg(long)]
        reason: String,
    },
    /// Hand the directory to a new Secretariat key (a new profile made with `pocnet init`):
    /// signed with this key, after which only the new one publishes. The new profile's
    /// passphrase is read from POCNET_NEW_PASSPHRASE or asked for.
    HandOver {
        /// The new key's profile directory.
        #[arg(long)]
        to_home: PathBuf,
    },
}

#[derive(Subcommand)]
enum NatCmd {
    /// Nominate a POC of your state (the Secretariat then phones them).
    Nominate {
        /// The POC's key fingerprint (64 hex digits from their `pocnet init`).
        #[arg(long)]
        fingerprint: String,
        /// cyber (cyber policy contact) or foreign (foreign affairs contact).
        #[arg(long)]
        category: String,
        /// primary, alternate, or further1..further9.
        #[arg(long)]
        rank: String,
        #[command(flatten)]
        contact: ContactArgs,
    },
    /// Remove one of your state's POCs.
    Remove {
        handle: String,
        #[arg(long)]
        reason: String,
    },
    /// Give one of your state's POCs another rank (or category).
    Rank {
        handle: String,
        #[arg(long)]
        rank: String,
        #[arg(long)]
        category: Option<String>,
    },
    /// Revoke the key of one of your state's POCs (lost or compromised).
    Revoke {
        handle: String,
        #[arg(long)]
        reason: String,
    },
    /// Your state's POCs, with records not confirmed for a year flagged.
    Status,
}

impl ContactArgs {
    fn merge(self, base: Option<Contact>) -> Contact {
        let b = base.unwrap_or(Contact {
            name: String::new(),
            position: String::new(),
            institution: String::new(),
            email: String::new(),
            phones: Vec::new(),
            languages: Vec::new(),
            time_zone: String::new(),
            working_hours: String::new(),
        });
        Contact {
            name: self.name.unwrap_or(b.name),
            position: self.position.unwrap_or(b.position),
            institution: self.institution.unwrap_or(b.institution),
            email: self.email.unwrap_or(b.email),
            phones: if self.phones.is_empty() { b.phones } else { self.phones },
            languages: if self.languages.is_empty() {
                b.languages
            } else {
                self.languages
            },
            time_zone: self.time_zone.unwrap_or(b.time_zone),
            working_hours: self.hours.unwrap_or(b.working_hours),
        }
    }
}

/// Asks for the voice code heard on the phone (or takes --heard).
fn ask_heard(given: Option<String>, who: &str, phones: &[String]) -> Result<String, Error> {
    if let Some(h) = given {
        return Ok(h);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage("give --heard DIGITS (no terminal to ask on)".into()));
    }
    eprintln!("Voice check for {}.", render::line(who));
    if !phones.is_empty() {
        eprintln!(
            "1. Phone them on a number you already trust: {}",
            phones.iter().map(|p| render::line(p)).collect::<Vec<_>>().join(", ")
        );
    } else {
        eprintln!("1. Phone them on a number you already trust.");
    }
    eprintln!("2. Ask them to run `pocnet whoami` and read you the 30-digit voice code.");
    eprintln!("3. Type the digits you heard, then press Enter:");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| Error::Io {
        context: "cannot read what you heard".into(),
        source: e,
    })?;
    Ok(line)
}

fn print_json<T: Serialize>(v: &T) {
    println!("{}", render::json(v, true));
}

/// Runs a `--exec` hook for one message. The hook gets the fields in variables
/// (single-line, neutralised) and the body on standard input, and never our secrets.
fn run_hook(cmd: &str, m: &MessageView, alert: Option<&pocnet_client::ops::alerts::AlertView>) {
    let mut command = std::process::Command::new("sh");
    command.env("POCNET_KIND", if alert.is_some() { "alert" } else { "message" });
    if let Some(a) = alert {
        // What an SMS or voice gateway needs to say, and by when (see README "Bridging alerts").
        command
            .env("POCNET_ALERT_TYPE", a.body.msg_type.as_cap())
            .env("POCNET_SEVERITY", a.body.severity.as_cap())
            .env("POCNET_URGENCY", a.body.urgency.as_cap())
            .env("POCNET_INCIDENT", render::line(a.incident.as_deref().unwrap_or("")))
            .env("POCNET_RINGS", a.rings.to_string())
            .env(
                "POCNET_ACK_BY",
                a.escalates_at().map(render::fmt_time).unwrap_or_default(),
            );
    }
    let child = command
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
                println!("voice code:  {}", id.public_key().voice_code());
                println!(
                    "Give the fingerprint to your national authority; read the voice code to the Secretariat when it"
                );
                println!("phones you. Then: pocnet enrol --relay HOST:PORT --relay-key RELAY_FINGERPRINT --directory DIRECTORY_KEY");
            }
        }
        Command::Enrol {
            relay,
            relay_key,
            directory,
        } => {
            let mut c = Client::open(&home, pass()?.as_bytes())?;
            let e = c.enrol(&relay, &relay_key, directory.as_deref()).await?;
            if cli.json {
                print_json(&e);
            } else {
                match e {
                    Enrolment::Listed { handle } => {
                        println!("enrolled: the directory lists you as {}", render::line(&handle))
                    }
                    Enrolment::Witness { name } => println!(
                        "the directory names this key as witness {}: verify and cosign each new checkpoint with \
                         `pocnet directory witness --name {}`",
                        render::line(&name),
                        render::line(&name)
                    ),
                    Enrolment::Waiting { voice_code } => {
                        println!("Your key is offered to the Secretariat; the directory does not list you yet.");
                        println!("1. Your national authority nominates you (give it your fingerprint:");
                        println!("   {}).", c.identity.fingerprint().grouped());
                        println!("2. The Secretariat phones you. Read it your voice code:");
                        println!("   {voice_code}");
                        println!("3. Once approved, run this command again.");
                    }
                }
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
                if let Err(e) = c.flush_outbox(&s).await {
                    tracing::warn!("acknowledgements still waiting: {}", render::line(&e.to_string()));
                }
                let r = c.sync(&s, false, None, |_, _| {}).await;
                s.close().await;
                if r.is_err() {
                    commands::alarm(&c);
                }
                fetched = Some(r?);
            }
            commands::alarm(&c);
            if !cli.json {
                commands::reminders(&c);
                if let Ok(open) = c.round_unanswered() {
                    if !open.is_empty() {
                        eprintln!(
                            "CONTACT CHECK: {} waiting for your answer: `pocnet round answer` (see `pocnet round pending`)",
                            open.len()
                        );
                    }
                }
            }
            if let Ok(Some(me)) = c.own_record() {
                if me.is_stale(pocnet_client::now_ms()) && !cli.json {
                    eprintln!("{}", render::stale_reminder(&me));
                }
            }
            if !cli.json {
                // Open alerts come above everything else.
                let lang = c.own_language();
                let now = pocnet_client::now_ms();
                for a in c.alerts_open()? {
                    print!("{}", alert_cmd::banner(&a, lang, now));
                }
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
            commands::alarm(&c);
            if let Ok(open) = c.round_unanswered() {
                if !open.is_empty() {
                    eprintln!(
                        "CONTACT CHECK: {} waiting for your answer: `pocnet round answer` (see `pocnet round pending`)",
                        open.len()
                    );
                }
            }
            let s = c.connect().await?;
            if let Err(e) = c.flush_outbox(&s).await {
                tracing::warn!("acknowledgements still waiting: {}", render::line(&e.to_string()));
            }
            let json = cli.json;
            let lang = c.own_language();
            if !json {
                let now = pocnet_client::now_ms();
                for a in c.alerts_open()? {
                    print!("{}", alert_cmd::banner(&a, lang, now));
                }
            }
            let result = {
                let on = |m: &StoredMessage, ct: ContentType| {
                    let view = MessageView::from(m);
                    let alert = if ct == ContentType::Alert {
                        c.alert_view(m).ok().flatten()
                    } else {
                        None
                    };
                    if json {
                        println!("{}", render::json(&view, false));
                    } else if let Some(a) = &alert {
                        // Rings, and comes above everything else.
                        print!("\x07");
                        print!("{}", alert_cmd::banner(a, lang, pocnet_client::now_ms()));
                    } else {
                        print!("{}", view.text());
                        println!("----");
                    }
                    let _ = std::io::stdout().flush();
                    if let Some(cmd) = &exec {
                        run_hook(cmd, &view, alert.as_ref());
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
            let found = c.verify_contact(&s, &handle, accept.as_deref()).await;
            s.close().await;
            let (p, previous, trust) = found?;
            let sn = safety_number(c.identity.public_key(), &p.key);
            let view = VerifyView {
                handle: p.handle_text(),
                name: p.contact.name.clone(),
                fingerprint: p.key.fingerprint().to_hex(),
                fingerprint_grouped: p.key.fingerprint().grouped(),
                safety_number: sn.digits().to_string(),
                key_changed_from: previous.map(|k| k.fingerprint().to_hex()),
                key_changed_from_grouped: previous.map(|k| k.fingerprint().grouped()),
                accepted: accept.is_some(),
                trust: trust.label().to_string(),
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
            let voice = c.identity.public_key().voice_code().to_string();
            if cli.json {
                print_json(&serde_json::json!({
                    "handle": handle,
                    "fingerprint": c.identity.fingerprint().to_hex(),
                    "voice_code": voice,
                }));
            } else {
                println!("handle:      {}", render::line(&handle));
                println!("fingerprint: {}", c.identity.fingerprint().grouped());
                println!("voice code:  {voice}   (read this aloud when the Secretariat phones you)");
                if let Ok(Some(me)) = c.own_record() {
                    if me.is_stale(pocnet_client::now_ms()) {
                        println!("{}", render::stale_reminder(&me));
                    }
                }
            }
        }
        Command::Directory { what } => {
            commands::directory(&cli_ctx(&home, cli.json, cli.passphrase_file.as_deref()), what).await?
        }
        Command::Secretariat { what } => {
            commands::secretariat(&cli_ctx(&home, cli.json, cli.passphrase_file.as_deref()), what).await?
        }
        Command::National { what } => {
            commands::national(&cli_ctx(&home, cli.json, cli.passphrase_file.as_deref()), what).await?
        }
        Command::Rotate => commands::rotate(&cli_ctx(&home, cli.json, cli.passphrase_file.as_deref())).await?,
        Command::Round { what } => {
            commands::round(&cli_ctx(&home, cli.json, cli.passphrase_file.as_deref()), what).await?
        }
        Command::Alert { what } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            alert_cmd::alert(&c, cli.json, what).await?
        }
        Command::Policy { what } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let r = policy_cmd::policy(&c, cli.json, what).await;
            commands::alarm(&c);
            r?
        }
        Command::Drill { what } => drill_cmd::drill(cli.json, what).await?,
        Command::Demo { dir, rate } => drill_cmd::demo(cli.json, dir, rate).await?,
        Command::Portal { open, port, drills } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let running = pocnet_client::portal::start(c, pocnet_client::portal::Options { port, drills }).await?;
            // The link carries the one-time token: stdout only, never a log.
            println!("portal: {}", running.url);
            eprintln!(
                "the portal serves this profile on 127.0.0.1:{} only; the link works once (Ctrl-C stops it)",
                running.addr.port()
            );
            let _ = std::io::stdout().flush();
            if open {
                open_browser(&running.url);
            }
            tokio::select! {
                r = running.wait() => r?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Command::Incident { what } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            alert_cmd::incident(&c, cli.json, what)?
        }
        Command::Forward { id, to, note } => {
            let c = Client::open(&home, pass()?.as_bytes())?;
            let s = c.connect().await?;
            let r = c.forward(&s, &id, &to, &note).await;
            s.close().await;
            let view = SentView(r?);
            if cli.json {
                print_json(&view);
            } else {
                print!("{}", view.text());
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

/// Hands the sign-in link to the desktop's browser (xdg-open, open, or start).
fn open_browser(url: &str) {
    let tries: &[(&str, &[&str])] = if cfg!(target_os = "macos") {
        &[("open", &[])]
    } else if cfg!(windows) {
        &[("cmd", &["/C", "start", ""])]
    } else {
        &[("xdg-open", &[]), ("sensible-browser", &[])]
    };
    for (cmd, pre) in tries {
        if std::process::Command::new(cmd)
            .args(*pre)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
        {
            return;
        }
    }
    eprintln!("could not start a browser: open the link above yourself");
}
