//! `pocnet policy`: the policy repository (publish, list, show, get, verify).

use std::path::PathBuf;

use clap::Subcommand;
use pocnet_client::app::Client;
use pocnet_client::ops::policy::{PolicyDraft, PolicyView};
use pocnet_client::render::{fmt_time, line};
use pocnet_client::{now_ms, Error};
use pocnet_core::directory::PolicyKind;

use crate::print_json;

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// National authority: publish FILE as a policy document of your state (signed, listed
    /// on the directory log by the Secretariat, sealed to every POC).
    Publish {
        file: PathBuf,
        /// The title, in the document's language; more with LANG=TITLE (es="Política ...").
        #[arg(long = "title", required = true)]
        titles: Vec<String>,
        /// strategy, white-paper, law, regulation or other.
        #[arg(long = "type")]
        kind: String,
        /// The document's own date, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// The document's language (ISO 639-1, such as es, en, fr, pt).
        #[arg(long)]
        lang: String,
        /// A new version of this document (its id, or at least 4 hex digits of it).
        #[arg(long)]
        supersedes: Option<String>,
    },
    /// Current versions of every listed document (of STATE only, if given), with a reminder
    /// for states due under the annual-update rule.
    List { state: Option<String> },
    /// One document's history, newest first.
    Show { document: String },
    /// Write a document's file (checked against the log) into --out.
    Get {
        document: String,
        #[arg(long)]
        version: Option<u32>,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Who published this file, which version, when (from the log). Exit 13 if none did.
    Verify { file: PathBuf },
}

/// Parses the `--title` values: the first plain (in `lang`) or `LANG=TITLE`, the rest `LANG=TITLE`.
fn titles(lang: &str, given: &[String]) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (i, t) in given.iter().enumerate() {
        let split = t
            .split_once('=')
            .filter(|(l, _)| l.len() == 2 && l.bytes().all(|b| b.is_ascii_alphabetic()));
        match split {
            Some((l, title)) => out.push((l.to_ascii_lowercase(), title.to_string())),
            None if i == 0 => out.push((lang.to_string(), t.clone())),
            None => {
                return Err(Error::Usage(format!(
                    "--title {:?}: give further titles as LANG=TITLE, such as en=\"National Cybersecurity Policy\"",
                    line(t)
                )))
            }
        }
    }
    Ok(out)
}

fn title_for(v: &PolicyView, lang: &str) -> String {
    let t = v
        .titles
        .iter()
        .find(|(l, _)| l == lang)
        .or(v.titles.first())
        .map(|(_, t)| t.as_str())
        .unwrap_or_default();
    line(t)
}

fn row(v: &PolicyView, lang: &str) -> String {
    format!(
        "{}  {}  v{}  {:<11} {}  {}{}{}",
        v.state,
        &v.document[..8],
        v.version,
        v.kind,
        line(&v.date),
        title_for(v, lang),
        if v.superseded { "  [superseded]" } else { "" },
        if v.held { "" } else { "  (file not held)" },
    )
}

/// "XX has published no policy update for N months (the annual-update rule)".
pub fn reminder_line(state: &str, last_ms: u64, now: u64) -> String {
    let months = now.saturating_sub(last_ms) / (30 * 24 * 3600 * 1000);
    format!("{state} has published no policy update for {months} months (the annual-update rule)")
}

/// Best effort, before a listing: the directory log and any documents waiting at the relay.
/// Offline, the listing is the verified log already held.
async fn refresh(c: &Client) {
    let s = match c.connect().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                "offline: listing the directory log already held ({})",
                line(&e.to_string())
            );
            return;
        }
    };
    if let Err(e) = c.sync_directory(&s).await {
        tracing::warn!("directory not refreshed: {}", line(&e.to_string()));
    }
    if let Err(e) = c.sync(&s, false, None, |_, _| {}).await {
        tracing::warn!("new documents not fetched: {}", line(&e.to_string()));
    }
    s.close().await;
}

pub async fn policy(c: &Client, json: bool, what: PolicyCmd) -> Result<(), Error> {
    let lang = c.own_language().tag().to_string();
    match what {
        PolicyCmd::Publish {
            file,
            titles: given,
            kind,
            date,
            lang,
            supersedes,
        } => {
            let kind: PolicyKind = kind
                .parse()
                .map_err(|_| Error::Usage("--type must be strategy, white-paper, law, regulation or other".into()))?;
            let lang = lang.trim().to_ascii_lowercase();
            let draft = PolicyDraft {
                document: supersedes,
                kind,
                date,
                titles: titles(&lang, &given)?,
                language: lang,
            };
            let s = c.connect().await?;
            let r = c.policy_publish(&s, &draft, &file).await;
            s.close().await;
            let v = r?;
            if json {
                print_json(&v);
            } else {
                println!(
                    "{} version {} of policy document {} signed and sent to the Secretariat; the file is sealed to \
                     every listed POC.",
                    v.state, v.version, v.document
                );
                println!("SHA-256 {}  ({} bytes)", v.sha256, v.size);
                println!("It is listed once the Secretariat publishes it (`pocnet secretariat publish`).");
            }
        }
        PolicyCmd::List { state } => {
            refresh(c).await;
            let docs = c.policies(state.as_deref())?;
            let now = now_ms();
            let due: Vec<(String, u64)> = c
                .policy_reminders(now)?
                .into_iter()
                .filter(|(s, _)| state.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(s)))
                .collect();
            if json {
                print_json(&docs.iter().map(|d| &d.current).collect::<Vec<_>>());
            } else {
                if docs.is_empty() {
                    println!("no policy documents listed");
                }
                for d in &docs {
                    println!("{}", row(&d.current, &lang));
                }
            }
            for (s, last) in due {
                eprintln!("reminder: {}", reminder_line(&s, last, now));
            }
        }
        PolicyCmd::Show { document } => {
            refresh(c).await;
            let d = c.policy(&document)?;
            if json {
                print_json(&d);
            } else {
                let cur = &d.current;
                println!("document {}  ({}, {})", cur.document, cur.state, cur.kind);
                for (l, t) in &cur.titles {
                    println!("  title [{}]: {}", line(l), line(t));
                }
                for v in &d.history {
                    println!(
                        "  v{}  dated {}  published {}  log entry {}{}",
                        v.version,
                        line(&v.date),
                        fmt_time(v.published_ms),
                        v.log_index,
                        if v.superseded { "  SUPERSEDED" } else { "  current" }
                    );
                    println!(
                        "      {}  {}  {} bytes  sha256 {}{}",
                        line(&v.file_name),
                        line(&v.media_type),
                        v.size,
                        v.sha256,
                        if v.held { "" } else { "  (file not held)" }
                    );
                }
            }
        }
        PolicyCmd::Get { document, version, out } => {
            refresh(c).await;
            let path = c.policy_save(&document, version, &out)?;
            if json {
                print_json(&serde_json::json!({ "path": path }));
            } else {
                println!("{}", path.display());
            }
        }
        PolicyCmd::Verify { file } => {
            refresh(c).await;
            let check = c.policy_verify(&file)?;
            if json {
                print_json(&check);
            } else {
                for v in &check.listed {
                    let who = format!("{}'s national authority", v.state);
                    println!(
                        "{}: {who} published version {} of document {} ({}) at {}, log entry {}{}",
                        file.display(),
                        v.version,
                        v.document,
                        title_for(v, &lang),
                        fmt_time(v.published_ms),
                        v.log_index,
                        if v.superseded { " (since superseded)" } else { "" }
                    );
                }
            }
            if check.listed.is_empty() {
                return Err(Error::DirectoryRefused(format!(
                    "no directory log entry lists a file with SHA-256 {}: this is not a published policy document \
                     (or it was altered)",
                    check.sha256
                )));
            }
        }
    }
    Ok(())
}
