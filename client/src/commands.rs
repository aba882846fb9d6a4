//! The directory, Secretariat, national-authority and rotation commands.

use std::path::{Path, PathBuf};

use pocnet_client::app::Client;
use pocnet_client::ops::directory::{date, DirectoryRow, Trust};
use pocnet_client::ops::governance::{parse_category, parse_rank, Pending};
use pocnet_client::profile::passphrase;
use pocnet_client::render::{self, line};
use pocnet_client::{now_ms, Error};
use pocnet_core::directory::Poc;

use crate::{ask_heard, print_json, DirCmd, NatCmd, RoundCmd, SecCmd};

/// What every command here needs from the command line.
pub struct Ctx {
    home: PathBuf,
    json: bool,
    passphrase_file: Option<PathBuf>,
}

/// Builds the context.
pub fn cli_ctx(home: &Path, json: bool, passphrase_file: Option<&Path>) -> Ctx {
    Ctx {
        home: home.to_path_buf(),
        json,
        passphrase_file: passphrase_file.map(Path::to_path_buf),
    }
}

impl Ctx {
    fn open(&self) -> Result<Client, Error> {
        let p = passphrase(self.passphrase_file.as_deref(), false)?;
        Client::open(&self.home, p.as_bytes())
    }
}

/// Reminders a listing carries: a rotation that is due or half done.
pub fn reminders(c: &Client) {
    if let Some(days) = c.rotation_due() {
        if c.identity.encryption_key_count() > 1 {
            eprintln!(
                "reminder: finish your key rotation: run `pocnet rotate` again once the Secretariat has published it"
            );
        } else {
            eprintln!(
                "reminder: your encryption key is {days} days old; run `pocnet rotate` (keys rotate every 90 days)"
            );
        }
    }
}

/// The fork alarm: one line on every listing while evidence is on record.
pub fn alarm(c: &Client) {
    if let Ok(forks) = c.store.forks() {
        if let Some(f) = forks.last() {
            eprintln!(
                "!! DIRECTORY FORK DETECTED on {} ({}). Someone shows different directories to different POCs. \
                 Phone the Secretariat. Evidence: `pocnet directory forks`",
                date(f.at),
                line(&f.how)
            );
        }
    }
}

/// One directory row, as listed (the portal shows the same struct).
type Row = DirectoryRow;

fn row(c: &Client, p: &Poc, now: u64) -> Row {
    let log = c.local_log().ok().flatten();
    let trust = log
        .as_ref()
        .and_then(|l| c.trust(l.directory(), p).ok())
        .unwrap_or(Trust::Attested);
    DirectoryRow::new(p, trust, now)
}

fn print_rows(rows: &[Row]) {
    for r in rows {
        println!(
            "{:<16} {:<28} {:<22} {}{}",
            line(&r.handle),
            line(&r.name),
            r.trust_label(),
            &r.fingerprint[..16],
            if r.stale {
                format!("  STALE: not confirmed since {}", r.confirmed)
            } else {
                String::new()
            }
        );
    }
}

trait TrustLabel {
    fn trust_label(&self) -> &'static str;
}

impl TrustLabel for Row {
    fn trust_label(&self) -> &'static str {
        self.trust.label()
    }
}

fn show(r: &Row) {
    println!("{}  ({})", line(&r.handle), r.trust_label());
    println!("  name:         {}", line(&r.name));
    println!("  position:     {}", line(&r.position));
    println!("  institution:  {}", line(&r.institution));
    println!("  e-mail:       {}", line(&r.email));
    println!(
        "  phones:       {}",
        r.phones.iter().map(|p| line(p)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  languages:    {}",
        r.languages.iter().map(|p| line(p)).collect::<Vec<_>>().join(", ")
    );
    println!("  time zone:    {}", line(&r.time_zone));
    println!("  hours:        {}", line(&r.working_hours));
    println!("  fingerprint:  {}", r.fingerprint);
    println!(
        "  confirmed:    {}{}",
        r.confirmed,
        if r.stale {
            "  (STALE: over a year ago; the POC and its national authority are reminded)"
        } else {
            ""
        }
    );
    println!("  log entry:    {}", r.log_entry);
}

/// `pocnet directory ...`
pub async fn directory(ctx: &Ctx, what: Option<DirCmd>) -> Result<(), Error> {
    let c = ctx.open()?;
    let what = what.unwrap_or(DirCmd::List { query: None });
    let now = now_ms();
    match what {
        DirCmd::Sync => {
            let s = c.connect().await?;
            let r = c.sync_directory(&s).await;
            s.close().await;
            let r = r?;
            alarm(&c);
            if ctx.json {
                print_json(&r);
            } else {
                println!("directory verified: {} entries ({} new)", r.size, r.added);
                if let Some(n) = r.awaiting_witnesses {
                    println!("a newer checkpoint ({n} entries) waits for witness cosignatures");
                }
            }
        }
        DirCmd::Audit => {
            // From scratch: forget nothing locally, fetch everything again, verify from entry 0,
            // and compare with what we had verified.
            let s = c.connect().await?;
            let before = c.local_log()?;
            let r = c.audit(&s).await;
            s.close().await;
            let size = r?;
            alarm(&c);
            if ctx.json {
                print_json(&serde_json::json!({ "verified_entries": size, "ok": true }));
            } else {
                println!(
                    "audit: all {size} entries re-verified from the first; consistent with the {} entries verified before",
                    before.map(|l| l.size()).unwrap_or(0)
                );
            }
        }
        DirCmd::Forks => {
            let forks = c.store.forks()?;
            if ctx.json {
                print_json(&forks);
            } else if forks.is_empty() {
                println!("no fork on record");
            } else {
                for f in forks {
                    println!("== {} {}", date(f.at), line(&f.how));
                    println!("-- our checkpoint --\n{}", render::block(&f.ours));
                    println!("-- the other view --\n{}", render::block(&f.theirs));
                }
            }
        }
        DirCmd::List { query } => {
            if let Ok(s) = c.connect().await {
                if let Err(e) = c.sync_directory(&s).await {
                    s.close().await;
                    alarm(&c);
                    return Err(e);
                }
                s.close().await;
            }
            let log = c.log()?;
            let dir = log.directory();
            let mut pocs: Vec<Poc> = dir.members().into_iter().cloned().collect();
            if let Some(q) = query {
                let ql = q.to_lowercase();
                pocs.retain(|p| {
                    p.handle_text() == q
                        || p.state() == q
                        || p.key.fingerprint().to_hex().starts_with(&ql)
                        || p.contact.name.to_lowercase().contains(&ql)
                        || p.contact.institution.to_lowercase().contains(&ql)
                });
            }
            let rows: Vec<Row> = pocs.iter().map(|p| row(&c, p, now)).collect();
            alarm(&c);
            if ctx.json {
                print_json(&rows);
            } else {
                println!("{} POCs in the verified directory ({} entries)", rows.len(), log.size());
                print_rows(&rows);
                if let Some(me) = dir.by_key(c.identity.public_key()) {
                    if me.is_stale(now) {
                        println!("{}", render::stale_reminder(me));
                    }
                }
            }
        }
        DirCmd::Show { handle } => {
            let log = c.log()?;
            let found = Client::directory_lookup(log.directory(), &handle)?;
            let rows: Vec<Row> = found.iter().map(|p| row(&c, p, now)).collect();
            alarm(&c);
            if ctx.json {
                print_json(&rows);
            } else {
                for r in &rows {
                    show(r);
                }
            }
        }
        DirCmd::Confirm => {
            let s = c.connect().await?;
            let r = c.confirm_details(&s).await;
            s.close().await;
            r?;
            println!("confirmation sent; the Secretariat publishes it");
        }
        DirCmd::Update { contact } => {
            let base = c.own_record()?.map(|p| p.contact);
            let contact = contact.merge(base);
            let s = c.connect().await?;
            let r = c.update_details(&s, contact).await;
            s.close().await;
            r?;
            println!("new details sent; the Secretariat publishes them");
        }
        DirCmd::Witness { name } => {
            let s = c.connect().await?;
            let r = c.cosign(&s, &name).await;
            s.close().await;
            let size = r?;
            println!("cosigned the checkpoint of {size} entries as witness {}", line(&name));
        }
        DirCmd::WitnessKey { name } => {
            let w = pocnet_crypto::note::Witness {
                name: name.clone(),
                key: *c.identity.public_key(),
            };
            println!("{}", w.vkey());
        }
    }
    Ok(())
}

fn print_pending(items: &[Pending]) {
    for p in items {
        println!(
            "[{}] {} by {}: {}{}",
            p.id,
            p.kind,
            line(&p.author),
            line(&p.summary),
            p.problem
                .as_ref()
                .map(|x| format!("  (REFUSED BY THE RULES: {})", line(x)))
                .unwrap_or_default()
        );
        if let Some(n) = &p.nominee {
            println!(
                "      phone {} | e-mail {} | fingerprint {}",
                n.contact.phones.iter().map(|p| line(p)).collect::<Vec<_>>().join(", "),
                line(&n.contact.email),
                n.fingerprint
            );
            println!(
                "      approve after the voice check: pocnet secretariat approve {}",
                p.id
            );
        }
    }
}

/// `pocnet secretariat ...`
pub async fn secretariat(ctx: &Ctx, what: SecCmd) -> Result<(), Error> {
    let mut c = ctx.open()?;
    match what {
        SecCmd::Genesis {
            origin,
            witnesses,
            quorum,
        } => {
            let vkey = c.secretariat_genesis(&origin, &witnesses, quorum)?;
            if ctx.json {
                print_json(&serde_json::json!({ "directory": vkey }));
            } else {
                println!("directory key (give it to the relay operator and to every member):");
                println!("{vkey}");
                println!("then: pocnet-relay init --directory '{vkey}' ..., and pocnet enrol --relay HOST:PORT --relay-key RELAY_FINGERPRINT");
            }
        }
        SecCmd::Authority {
            state,
            fingerprint,
            name,
            institution,
            heard,
        } => {
            let s = c.connect().await?;
            let r = c
                .enrol_authority(&s, &state, &fingerprint, &name, &institution, |who| {
                    ask_heard(heard, who, &[])
                })
                .await;
            s.close().await;
            let size = r?;
            println!(
                "{} national authority enrolled (directory now {size} entries)",
                line(&state.to_ascii_uppercase())
            );
        }
        SecCmd::Pending => {
            let s = c.connect().await?;
            let r = c.pending(&s).await;
            s.close().await;
            let items: Vec<Pending> = r?.into_iter().map(|(p, _)| p).collect();
            alarm(&c);
            if ctx.json {
                print_json(&items);
            } else if items.is_empty() {
                println!("nothing waits");
            } else {
                print_pending(&items);
            }
        }
        SecCmd::Approve { id, heard } => {
            let s = c.connect().await?;
            let r = c
                .approve(&s, id, |n| {
                    ask_heard(heard, &format!("{} ({})", n.contact.name, n.handle), &n.contact.phones)
                })
                .await;
            s.close().await;
            let handle = r?;
            println!("approved: the directory now lists {}", line(&handle));
        }
        SecCmd::Publish => {
            let s = c.connect().await?;
            let r = c.publish_pending(&s).await;
            s.close().await;
            let (ok, bad) = r?;
            if ctx.json {
                print_json(&serde_json::json!({ "published": ok, "refused": bad }));
            } else {
                println!("published {} update(s)", ok.len());
                print_pending(&ok);
                if !bad.is_empty() {
                    println!("refused and dismissed {}:", bad.len());
                    print_pending(&bad);
                }
            }
        }
        SecCmd::Dismiss { id } => {
            let s = c.connect().await?;
            let r = c.dismiss(&s, id).await;
            s.close().await;
            r?;
            println!("dismissed {id}");
        }
        SecCmd::HandOver { to_home } => {
            let pass = match std::env::var("POCNET_NEW_PASSPHRASE") {
                Ok(p) => zeroize::Zeroizing::new(p),
                Err(_) => zeroize::Zeroizing::new(
                    rpassword::prompt_password("Passphrase of the new Secretariat key: ")
                        .map_err(|_| Error::Passphrase("no passphrase for the new key: set POCNET_NEW_PASSPHRASE"))?,
                ),
            };
            let successor = pocnet_client::profile::Profile::open(&to_home)?.unlock(pass.as_bytes())?;
            let s = c.connect().await?;
            let r = c.hand_over(&s, &successor).await;
            s.close().await;
            let size = r?;
            println!(
                "the directory is handed over (log entry {}): from now on only the key in {} publishes; \
                 enrol it with `pocnet --home {} enrol --relay ... --relay-key ... --directory ...`",
                size - 1,
                to_home.display(),
                to_home.display()
            );
        }
        SecCmd::Revoke { handle, reason } => {
            let s = c.connect().await?;
            let r = c.revoke_poc(&s, &handle, &reason).await;
            s.close().await;
            r?;
            println!("revoked {}'s key", line(&handle));
        }
    }
    let _ = &mut c;
    Ok(())
}

/// `pocnet national ...`
pub async fn national(ctx: &Ctx, what: NatCmd) -> Result<(), Error> {
    let c = ctx.open()?;
    let s = c.connect().await?;
    let r = national_on(ctx, &c, &s, what).await;
    s.close().await;
    alarm(&c);
    r
}

async fn national_on(ctx: &Ctx, c: &Client, s: &pocnet_client::net::Session, what: NatCmd) -> Result<(), Error> {
    match what {
        NatCmd::Nominate {
            fingerprint,
            category,
            rank,
            contact,
        } => {
            let contact = contact.merge(None);
            let handle = c
                .nominate(s, parse_category(&category)?, parse_rank(&rank)?, contact, &fingerprint)
                .await?;
            println!(
                "nomination for {} sent; the Secretariat will phone the nominee to hear their voice code",
                line(&handle)
            );
        }
        NatCmd::Remove { handle, reason } => {
            c.remove_poc(s, &handle, &reason).await?;
            println!("removal of {} sent; the Secretariat publishes it", line(&handle));
        }
        NatCmd::Rank { handle, rank, category } => {
            let log = c.log()?;
            let p = Client::directory_lookup(log.directory(), &handle)?;
            let cat = match category {
                Some(cat) => parse_category(&cat)?,
                None => p[0].category_rank().0,
            };
            c.rerank(s, &handle, cat, parse_rank(&rank)?).await?;
            println!("rank change for {} sent; the Secretariat publishes it", line(&handle));
        }
        NatCmd::Revoke { handle, reason } => {
            c.revoke_poc(s, &handle, &reason).await?;
            println!(
                "revocation of {}'s key sent; the Secretariat publishes it",
                line(&handle)
            );
        }
        NatCmd::Status => {
            c.sync_directory(s).await?;
            let log = c.log()?;
            let dir = log.directory();
            let me = dir
                .authorities()
                .find(|a| &a.key == c.identity.public_key())
                .map(|a| a.state.clone())
                .ok_or_else(|| Error::Usage("your key is not a national authority".into()))?;
            let now = now_ms();
            let rows: Vec<Row> = dir.by_state(&me).into_iter().map(|p| row(c, p, now)).collect();
            if ctx.json {
                print_json(&rows);
            } else {
                println!("{me}: {} POCs", rows.len());
                print_rows(&rows);
                let stale = rows.iter().filter(|r| r.stale).count();
                if stale > 0 {
                    println!(
                        "reminder: {stale} record(s) not confirmed for a year; ask those POCs to run `pocnet directory confirm`"
                    );
                }
                if let Some((_, last)) = dir.policy_stale_states(now).into_iter().find(|(s, _)| *s == me) {
                    println!(
                        "reminder: {}; publish with `pocnet policy publish`",
                        crate::policy_cmd::reminder_line(&me, last, now)
                    );
                }
            }
        }
    }
    Ok(())
}

/// `pocnet rotate`: a new encryption key, published through the Secretariat; once the
/// directory lists it (and the inbox is drained), the old private keys are deleted.
pub async fn rotate(ctx: &Ctx) -> Result<(), Error> {
    let pass = passphrase(ctx.passphrase_file.as_deref(), false)?;
    let mut c = Client::open(&ctx.home, pass.as_bytes())?;
    let s = c.connect().await?;
    let r = c.rotate(&s, pass.as_bytes()).await;
    s.close().await;
    match r? {
        pocnet_client::ops::rotation::Rotation::Published { serial } => println!(
            "new encryption key {serial} sent; the Secretariat publishes it. Run `pocnet rotate` again afterwards \
             to delete the old private key"
        ),
        pocnet_client::ops::rotation::Rotation::Retired { removed } => {
            println!("the directory lists your new key; {removed} old private key(s) deleted")
        }
        pocnet_client::ops::rotation::Rotation::Waiting => {
            println!("your new key is not published yet; the Secretariat must run `pocnet secretariat publish`")
        }
    }
    Ok(())
}

fn render_report(r: &pocnet_core::round::Report, format: &str) -> Result<String, Error> {
    Ok(match format {
        "md" | "markdown" => r.to_markdown(),
        "json" => r.to_json(),
        "csv" => r.to_csv(),
        "html" => r.to_html(),
        other => return Err(Error::Usage(format!("--format {other:?}: use md, json, csv or html"))),
    })
}

fn write_out(out: Option<&Path>, text: &str) -> Result<(), Error> {
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

/// `pocnet round ...`
pub async fn round(ctx: &Ctx, what: RoundCmd) -> Result<(), Error> {
    use pocnet_client::ops::rounds::Selection;
    if let RoundCmd::Verify { bundle, format } = &what {
        // Anyone can verify: no profile needed.
        let bytes = std::fs::read(bundle).map_err(|e| Error::Io {
            context: format!("cannot read {}", bundle.display()),
            source: e,
        })?;
        let (_, report) = pocnet_core::round::verify_bundle(&bytes)
            .map_err(|e| Error::DirectoryRefused(format!("the bundle does not verify: {e}")))?;
        eprintln!("bundle verified: every signature, acceptance proof and the Secretariat's manifest check out");
        return write_out(None, &render_report(&report, format)?);
    }
    let mut c = ctx.open()?;
    match what {
        RoundCmd::Schedule {
            every_days,
            deadline_hours,
            reminders,
        } => {
            if every_days == 0 || !(0.01..=24.0 * 366.0).contains(&deadline_hours) {
                return Err(Error::Usage(
                    "--every-days must be at least 1 and --deadline-hours between 0.01 and a year".into(),
                ));
            }
            if deadline_hours > f64::from(every_days) * 24.0 {
                return Err(Error::Usage("each round must end before the next one starts".into()));
            }
            let reminders = if reminders.is_empty() {
                vec![0.5, 0.9]
            } else {
                reminders
            };
            c.profile.config.round_schedule = Some(pocnet_client::profile::RoundSchedule {
                every_days,
                deadline_hours,
                reminders,
            });
            c.profile.save()?;
            println!(
                "every POC will be checked every {every_days} days; run `pocnet round due` daily (cron or a systemd timer)"
            );
        }
        RoundCmd::Due => {
            let Some(sched) = c.profile.config.round_schedule.clone() else {
                return Err(Error::Usage(
                    "no schedule: set one with `pocnet round schedule --every-days N`".into(),
                ));
            };
            let last = c.round_list()?.first().map(|(_, _, _, at)| *at);
            let every = u64::from(sched.every_days) * 86_400_000;
            let now = now_ms();
            if let Some(at) = last.filter(|at| now < at + every) {
                println!(
                    "not due: the last round started {}; the next is due {}",
                    render::fmt_time(at),
                    render::fmt_time(at + every)
                );
                return Ok(());
            }
            let s = c.connect().await?;
            let r = c
                .round_start(
                    &s,
                    &Selection::default(),
                    now + (sched.deadline_hours * 3_600_000.0) as u64,
                    pocnet_core::round::Request::ConfirmDetails,
                    &sched.reminders,
                )
                .await;
            s.close().await;
            let r = r?;
            if ctx.json {
                print_json(&r);
            } else {
                println!("scheduled round {} started: {} POCs challenged", r.round, r.targets);
            }
        }
        RoundCmd::Start {
            states,
            categories,
            ranks,
            deadline_hours,
            question,
            reminders,
        } => {
            let sel = Selection {
                states: states
                    .iter()
                    .map(|s| pocnet_client::ops::governance::parse_state(s))
                    .collect::<Result<_, _>>()?,
                categories: categories.iter().map(|c| parse_category(c)).collect::<Result<_, _>>()?,
                ranks: ranks.iter().map(|r| parse_rank(r)).collect::<Result<_, _>>()?,
                exercise: false,
            };
            let request = match question {
                Some(q) => pocnet_core::round::Request::Question(q),
                None => pocnet_core::round::Request::ConfirmDetails,
            };
            let reminders = if reminders.is_empty() {
                vec![0.5, 0.9]
            } else {
                reminders
            };
            let deadline = now_ms() + (deadline_hours * 3_600_000.0) as u64;
            let s = c.connect().await?;
            let r = c.round_start(&s, &sel, deadline, request, &reminders).await;
            s.close().await;
            let r = r?;
            if ctx.json {
                print_json(&r);
            } else {
                println!(
                    "round {} started: {} POCs challenged, {} reminders held at the relay, answers due {}",
                    r.round,
                    r.targets,
                    r.reminders,
                    render::fmt_time(r.deadline_ms)
                );
            }
        }
        RoundCmd::Pending => {
            let open = c.round_unanswered()?;
            if ctx.json {
                print_json(
                    &open
                        .iter()
                        .map(|p| pocnet_crypto::to_hex(&p.round_id))
                        .collect::<Vec<_>>(),
                );
            } else if open.is_empty() {
                println!("no contact check waits for your answer");
            } else {
                for p in &open {
                    let due = pocnet_core::round::Challenge::parse(&p.challenge)
                        .map(|c| render::fmt_time(c.deadline_ms))
                        .unwrap_or_default();
                    println!(
                        "round {}: answer by {due} with `pocnet round answer`",
                        pocnet_crypto::to_hex(&p.round_id)
                    );
                }
            }
        }
        RoundCmd::Answer { round, note, contact } => {
            let changes = contact.name.is_some()
                || contact.position.is_some()
                || contact.institution.is_some()
                || contact.email.is_some()
                || !contact.phones.is_empty()
                || !contact.languages.is_empty()
                || contact.time_zone.is_some()
                || contact.hours.is_some();
            let update = if changes {
                Some(contact.merge(c.own_record()?.map(|p| p.contact)))
            } else {
                None
            };
            let s = c.connect().await?;
            let r = c.round_answer(&s, round.as_deref(), update, &note).await;
            s.close().await;
            let id = r?;
            println!("answered round {id}; the Secretariat has your signed answer");
        }
        RoundCmd::List => {
            let rounds = c.round_list()?;
            if ctx.json {
                print_json(&rounds);
            } else {
                for (id, targets, answered, at) in rounds {
                    println!("{id}  started {}  {answered}/{targets} answered", render::fmt_time(at));
                }
            }
        }
        RoundCmd::Report { round, format, out } => {
            // Fetch answers first, then report.
            if let Ok(s) = c.connect().await {
                let r = c.sync(&s, false, None, |_, _| {}).await;
                s.close().await;
                if let Err(e) = r {
                    eprintln!("pocnet: could not fetch new answers: {}", line(&e.to_string()));
                }
            }
            let r = c.round_report(&round)?;
            write_out(out.as_deref(), &render_report(&r, &format)?)?;
        }
        RoundCmd::Outcome {
            round,
            handle,
            how,
            note,
        } => {
            c.round_outcome(&round, &handle, &how, &note)?;
            println!("recorded: {} answered by {}", line(&handle), line(&how));
        }
        RoundCmd::Bundle { round, out } => {
            let b = c.round_bundle(&round)?;
            let bytes = b.encode().map_err(|e| Error::DirectoryRefused(e.to_string()))?;
            std::fs::write(&out, bytes).map_err(|e| Error::Io {
                context: format!("cannot write {}", out.display()),
                source: e,
            })?;
            println!(
                "bundle written to {}; anyone re-verifies it with `pocnet round verify`",
                out.display()
            );
        }
        RoundCmd::Verify { .. } => unreachable!("handled above"),
    }
    Ok(())
}
