//! Runs a scenario on a [`Network`]: every simulated POC is a real client (its own key,
//! store and QUIC connection, watching live), driven by its profile
//! (`pocnet_core::drill::react`); injects go out at their drill times; every envelope
//! carries the EXERCISE flag. At the end (or when ended early) the signed records — alert
//! envelopes and plans with the relay's acceptance proofs, receipts, round bundles, the
//! directory log — become one signed drill record, and the after-action report is computed
//! from it alone.
//!
//! Everything runs on one thread (`tokio::task::LocalSet`): clients hold their SQLite
//! connection, which is not `Sync`, and the relay is another process.

use std::cell::RefCell;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use pocnet_core::alert::MsgType;
use pocnet_core::directory::{Category, Poc, Rank};
use pocnet_core::drill::{
    fmt_drill_time, react, AfterAction, DrillBundleBuilder, DrillEventKind, InjectKind, Participant, Profile, Reaction,
    RosterEntry, Scenario, Stimulus,
};
use pocnet_core::round::Request as RoundRequest;
use pocnet_crypto::{ContentType, HeaderFields, IdentityKey};

use super::network::{open, Network, DRILL_PASSPHRASE};
use crate::app::Client;
use crate::error::{Error, Result};
use crate::net::Session;
use crate::now_ms;
use crate::ops::rounds::Selection;
use crate::types::MessageId;

/// What the runner tells the terminal.
#[derive(Clone, Debug)]
pub enum Ui {
    /// Drill time passed so far and in all (ms), and whether paused.
    Progress {
        /// Drill ms so far.
        at: u64,
        /// Drill ms in all.
        total: u64,
        /// Paused.
        paused: bool,
    },
    /// Something happened (an inject, an acknowledgement, an escalation step).
    Event {
        /// Drill ms.
        at: u64,
        /// What.
        text: String,
    },
}

/// Where a drill's results went.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The signed drill record (`pocnet drill verify` re-derives the report from it).
    pub record: PathBuf,
    /// The report, Markdown.
    pub markdown: PathBuf,
    /// The report, JSON.
    pub json: PathBuf,
    /// The report, self-contained HTML.
    pub html: PathBuf,
    /// The report itself.
    pub report: AfterAction,
    /// Ended before the scenario's end.
    pub ended_early: bool,
    /// What the fleet did.
    pub stats: RunStats,
}

/// Counts of a run, for the drill throughput benchmark.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct RunStats {
    /// Simulated POCs online.
    pub simulated: usize,
    /// Injects carried out.
    pub injects: usize,
    /// Deliveries the simulated POCs received and judged.
    pub stimuli: usize,
    /// Reactions (acknowledgements, answers, confirmations, reads) carried out.
    pub reactions: usize,
    /// Wall-clock ms from start to the end of the drill (before the record is built).
    pub wall_ms: u64,
}

/// A control word a second `pocnet drill pause|resume|end` leaves for a running drill.
pub fn control_file(dir: &Path) -> PathBuf {
    dir.join("control")
}

fn read_control(dir: &Path) -> Option<String> {
    let p = control_file(dir);
    let s = std::fs::read_to_string(&p).ok()?;
    let _ = std::fs::remove_file(&p);
    Some(s.trim().to_string())
}

/// A scenario's text with its clock rate replaced (the record keeps the rate used).
pub fn with_clock_rate(text: &str, rate: u32) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut done = false;
    for line in text.lines() {
        if !done && line.trim_start().starts_with("clock_rate") && line.contains('=') {
            out.push_str(&format!("clock_rate = {rate}"));
            done = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The ranks and states a scenario needs built (for [`Network::build`]).
pub fn network_needs(scenario: &Scenario, all_states: &[String]) -> (Vec<String>, Vec<Rank>) {
    let states = match &scenario.participants.states {
        pocnet_core::drill::StateSelection::States(v) => v.clone(),
        _ => all_states.to_vec(),
    };
    let ranks = scenario
        .participants
        .ranks
        .iter()
        .filter_map(|r| crate::ops::governance::parse_rank(r).ok())
        .collect();
    (states, ranks)
}

/// One simulated POC's live client.
struct Sim {
    client: Rc<Client>,
    session: Rc<Session>,
    watch: Option<tokio::task::JoinHandle<()>>,
    offline: bool,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    End,
    Inject(usize),
    React(usize, ReactionKey),
}

/// `Reaction` ordered (the heap needs `Ord`); the index into `reactions`.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
struct ReactionKey(usize);

/// Closes a session no task holds any more (an aborted watch lets go of its copy).
async fn close(s: Rc<Session>) {
    tokio::task::yield_now().await;
    if let Ok(s) = Rc::try_unwrap(s) {
        s.close().await;
    }
}

fn hex(b: &[u8]) -> String {
    pocnet_crypto::to_hex(b)
}

/// What a delivery means to a simulated POC.
fn stimulus_of(c: &Client, m: &crate::db::StoredMessage, ct: ContentType) -> Option<Stimulus> {
    match ct {
        ContentType::Alert => {
            let v = c.alert_view(m).ok()??;
            Some(Stimulus::Alert {
                alert: m.id.0,
                repeat: v.release.map_or(0, |r| r.repeat),
                msg_type: v.body.msg_type,
            })
        }
        ContentType::RoundChallenge => {
            // "CONTACT CHECK 1a2b3c4d: …" or "REMINDER 2: contact check 1a2b3c4d, …"
            let reminder = m
                .subject
                .strip_prefix("REMINDER ")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.trim().parse::<u8>().ok());
            let rid = m
                .subject
                .split(|c: char| !c.is_ascii_hexdigit())
                .find(|w| w.len() == 8)?
                .to_string();
            let p = c
                .store
                .round_pending()
                .ok()?
                .into_iter()
                .find(|p| hex(&p.round_id).starts_with(&rid))?;
            let ch = pocnet_core::round::Challenge::parse(&p.challenge).ok()?;
            Some(match ch.request {
                RoundRequest::Question(q) => Stimulus::Question {
                    round: p.round_id,
                    question: q,
                    reminder,
                },
                RoundRequest::ConfirmDetails => Stimulus::Confirm {
                    round: p.round_id,
                    reminder,
                },
            })
        }
        ContentType::Message => Some(Stimulus::Message { id: m.id.0 }),
        _ => None,
    }
}

fn spawn_watch(
    i: usize,
    client: Rc<Client>,
    session: Rc<Session>,
    tx: tokio::sync::mpsc::UnboundedSender<(usize, Stimulus)>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let c = client.clone();
        let r = client
            .sync_with(
                &session,
                true,
                None,
                |m, ct| {
                    if let Some(st) = stimulus_of(&c, m, ct) {
                        let _ = tx.send((i, st));
                    }
                },
                || {},
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(
                "a simulated POC stopped watching: {}",
                crate::render::line(&e.to_string())
            );
        }
    })
}

async fn start_sim(i: usize, home: &Path, tx: &tokio::sync::mpsc::UnboundedSender<(usize, Stimulus)>) -> Result<Sim> {
    let client = Rc::new(open(home)?);
    let session = Rc::new(client.connect().await?);
    let watch = spawn_watch(i, client.clone(), session.clone(), tx.clone());
    Ok(Sim {
        client,
        session,
        watch: Some(watch),
        offline: false,
    })
}

/// One alert (or follow-up) sent in the drill.
struct SentAlert {
    id: [u8; 16],
    sender: usize,
    headline: String,
    states: Vec<String>,
    last: BTreeMap<String, String>,
}

/// Runs `text` (a scenario) on `net` and writes the record and report to `out`. `ui` is
/// told the progress and each event. Call inside a `tokio::task::LocalSet`.
pub async fn run(net: &mut Network, text: &str, out: &Path, mut ui: impl FnMut(Ui)) -> Result<Finished> {
    let scenario = Scenario::parse(text).map_err(|e| Error::Usage(format!("scenario: {e}")))?;
    let sec = Rc::new(open(&net.secretariat)?);
    let ss = Rc::new(sec.connect().await?);
    sec.sync_directory(&ss).await?;
    let log = sec.log()?;
    let roster: Vec<RosterEntry> = log
        .directory()
        .members()
        .into_iter()
        .map(RosterEntry::from_poc)
        .collect();
    let mut participants: Vec<Participant> = scenario
        .roster(&roster)
        .map_err(|e| Error::Usage(format!("scenario: {e}")))?;
    let relay_key = sec.profile.relay_key().ok_or(Error::NotEnrolledHere)?;
    let homes: HashMap<String, PathBuf> = net
        .members
        .iter()
        .filter_map(|m| m.home.clone().map(|h| (m.handle.clone(), h)))
        .collect();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Stimulus)>();
    // Rounds to hundreds of POCs take seconds to seal and send: they run beside the loop,
    // which keeps judging deliveries meanwhile, and report here.
    type RoundDone = (usize, Result<([u8; 16], String)>);
    let (round_tx, mut round_rx) = tokio::sync::mpsc::unbounded_channel::<RoundDone>();
    let mut rounds_pending = 0usize;
    let mut sims: HashMap<usize, Sim> = HashMap::new();
    for (i, p) in participants.iter().enumerate() {
        if matches!(p.profile, Profile::Offline | Profile::Human) {
            continue;
        }
        let Some(home) = homes.get(&p.handle) else { continue };
        sims.insert(i, start_sim(i, home, &tx).await?);
    }
    // The drill clock starts once every simulated POC is online and watching.
    let started = now_ms();
    let mut builder = DrillBundleBuilder::new(text, &relay_key, started, participants.clone())
        .map_err(|e| Error::Usage(format!("drill record: {e}")))?;
    ui(Ui::Event {
        at: 0,
        text: format!(
            "EXERCISE started: {} participants ({} simulated online, {} offline or human)",
            participants.len(),
            sims.len(),
            participants.len() - sims.len()
        ),
    });

    let total = scenario.duration_ms;
    // (real due, sequence, action), min-first.
    let mut heap: BinaryHeap<std::cmp::Reverse<(u64, u64, Action)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<_>, due: u64, a: Action| {
        seq += 1;
        heap.push(std::cmp::Reverse((due, seq, a)));
    };
    for (k, inj) in scenario.injects.iter().enumerate() {
        push(&mut heap, started + scenario.to_real_ms(inj.at_ms), Action::Inject(k));
    }
    push(&mut heap, started + scenario.to_real_ms(total), Action::End);
    let mut reactions: Vec<(usize, Reaction)> = Vec::new();
    let mut stats = RunStats {
        simulated: sims.len(),
        ..RunStats::default()
    };
    let mut alerts: Vec<SentAlert> = Vec::new();
    let mut alert_by_inject: HashMap<usize, [u8; 16]> = HashMap::new();
    let mut messages: Vec<(usize, [u8; 16])> = Vec::new();
    let mut rounds: Vec<(usize, [u8; 16])> = Vec::new();
    let mut paused_since: Option<u64> = None;
    let mut paused_total = 0u64;
    let mut ended_early = false;
    let mut last_poll = 0u64;
    let drill_now = |paused_total: u64, paused_since: Option<u64>| {
        let now = paused_since.unwrap_or_else(now_ms);
        scenario.to_drill_ms(now.saturating_sub(started + paused_total))
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let events = Rc::new(RefCell::new(Vec::<(u64, DrillEventKind, String)>::new()));
    let note = |at: u64, kind: DrillEventKind, text: String| {
        events.borrow_mut().push((now_ms(), kind, text.clone()));
        (at, text)
    };

    'run: loop {
        let next_due = heap.peek().map(|std::cmp::Reverse((d, _, _))| *d).unwrap_or(u64::MAX);
        let wait = if paused_since.is_some() {
            250
        } else {
            next_due.saturating_sub(now_ms()).min(250)
        };
        tokio::select! {
            got = rx.recv() => {
                let Some((i, st)) = got else { continue };
                stats.stimuli += 1;
                if paused_since.is_some() || sims.get(&i).is_none_or(|s| s.offline) {
                    continue;
                }
                let p = &participants[i];
                if let Some((delay, r)) = react(&p.profile, &p.state, &st, scenario.seed_for(&p.handle)) {
                    reactions.push((i, r));
                    let key = ReactionKey(reactions.len() - 1);
                    push(&mut heap, now_ms() + scenario.to_real_ms(delay), Action::React(i, key));
                }
            }
            done = round_rx.recv() => {
                let Some((k, r)) = done else { continue };
                rounds_pending -= 1;
                let at = drill_now(paused_total, paused_since);
                match r {
                    Ok((id, what)) => {
                        ui(Ui::Event { at, text: what });
                        rounds.push((k, id));
                    }
                    Err(e) => {
                        let (at, t) = note(at, DrillEventKind::Note, format!("inject {} failed: {}", k + 1, crate::render::line(&e.to_string())));
                        ui(Ui::Event { at, text: t });
                    }
                }
            }
            _ = &mut ctrl_c => {
                let (at, t) = note(drill_now(paused_total, paused_since), DrillEventKind::End, "ended early (interrupted)".into());
                ui(Ui::Event { at, text: t });
                ended_early = true;
                break 'run;
            }
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
        }
        // Controls from `pocnet drill pause|resume|end`.
        if let Some(word) = read_control(&net.dir) {
            let at = drill_now(paused_total, paused_since);
            match word.as_str() {
                "pause" if paused_since.is_none() => {
                    paused_since = Some(now_ms());
                    let (at, t) = note(at, DrillEventKind::Pause, "paused: no injects or simulated answers until resumed (the relay's escalation timers keep running)".into());
                    ui(Ui::Event { at, text: t });
                }
                "resume" => {
                    if let Some(since) = paused_since.take() {
                        let d = now_ms() - since;
                        paused_total += d;
                        // Everything waiting moves on by the pause.
                        let items: Vec<_> = heap.drain().collect();
                        for std::cmp::Reverse((due, s, a)) in items {
                            heap.push(std::cmp::Reverse((due + d, s, a)));
                        }
                        let (at, t) = note(at, DrillEventKind::Resume, "resumed".into());
                        ui(Ui::Event { at, text: t });
                    }
                }
                "end" => {
                    let (at, t) = note(at, DrillEventKind::End, "ended early by the drill officer".into());
                    ui(Ui::Event { at, text: t });
                    ended_early = true;
                    break 'run;
                }
                _ => {}
            }
        }
        let at = drill_now(paused_total, paused_since);
        ui(Ui::Progress {
            at: at.min(total),
            total,
            paused: paused_since.is_some(),
        });
        if paused_since.is_some() {
            continue;
        }
        // Escalation as the senders see it, every two seconds.
        if now_ms() >= last_poll + 2_000 {
            last_poll = now_ms();
            for a in alerts.iter_mut() {
                let Some(sim) = sims.get(&a.sender) else { continue };
                let Ok(st) = sim.client.alert_status_held(&sim.session, &hex(&a.id)).await else {
                    continue;
                };
                for s in &st.states {
                    let word = match (&s.acknowledged_by, s.unreached, s.depth) {
                        (Some(by), _, _) => format!(
                            "{}: acknowledged by {} after {}",
                            s.state,
                            by,
                            fmt_drill_time(scenario.to_drill_ms(s.time_to_ack_ms.unwrap_or(0)))
                        ),
                        (None, true, _) => format!("{}: UNREACHED after the last rank and repeat", s.state),
                        (None, false, 0) => continue,
                        (None, false, d) => format!("{}: no acknowledgement; escalated to step {}", s.state, d + 1),
                    };
                    if a.last.get(&s.state) != Some(&word) {
                        a.last.insert(s.state.clone(), word.clone());
                        ui(Ui::Event { at, text: word });
                    }
                }
                let _ = (&a.headline, &a.states);
            }
        }
        // Whatever is due.
        while let Some(std::cmp::Reverse((due, _, _))) = heap.peek() {
            if *due > now_ms() {
                break;
            }
            let std::cmp::Reverse((_, _, action)) = heap.pop().expect("peeked");
            match action {
                Action::End => break 'run,
                Action::React(i, ReactionKey(k)) => {
                    let at = drill_now(paused_total, paused_since);
                    let Some(sim) = sims.get(&i) else { continue };
                    if sim.offline {
                        continue;
                    }
                    let (c, s) = (sim.client.clone(), sim.session.clone());
                    let handle = participants[i].handle.clone();
                    let r = match &reactions[k].1 {
                        Reaction::Ack { alert, note } => c
                            .alert_ack(Some(&s), &hex(alert), note.as_deref())
                            .await
                            .map(|_| format!("{handle} acknowledged")),
                        Reaction::Answer { round, text } => c
                            .round_answer(&s, Some(&hex(&round[..4])), None, text)
                            .await
                            .map(|_| format!("{handle} answered a question")),
                        Reaction::Confirm { round } => c
                            .round_answer(&s, Some(&hex(&round[..4])), None, "")
                            .await
                            .map(|_| format!("{handle} confirmed its details")),
                        Reaction::Read { id } => c.read(&hex(id), Some(&s)).await.map(|_| String::new()),
                    };
                    stats.reactions += 1;
                    match r {
                        Ok(t) if !t.is_empty() => ui(Ui::Event { at, text: t }),
                        Ok(_) => {}
                        Err(e) => ui(Ui::Event {
                            at,
                            text: format!("{handle}: {}", crate::render::line(&e.to_string())),
                        }),
                    }
                }
                Action::Inject(k) if scenario.injects[k].kind.is_round() => {
                    stats.injects += 1;
                    rounds_pending += 1;
                    let (sec, ss, tx) = (sec.clone(), ss.clone(), round_tx.clone());
                    let (sel, deadline, request, fractions) = round_args(&scenario, k, &participants);
                    tokio::task::spawn_local(async move {
                        let r = async {
                            let started = sec
                                .round_start(&ss, &sel, deadline, request.clone(), &fractions)
                                .await?;
                            let id: [u8; 16] = pocnet_crypto::from_hex(&started.round)
                                .and_then(|b| b.try_into().ok())
                                .ok_or_else(|| Error::Protocol("round id".into()))?;
                            let what = match &request {
                                RoundRequest::Question(q) => format!("QUESTION to {} POCs: {q}", started.targets),
                                RoundRequest::ConfirmDetails => format!("CONTACT CHECK of {} POCs", started.targets),
                            };
                            Ok((id, what))
                        }
                        .await;
                        let _ = tx.send((k, r));
                    });
                }
                Action::Inject(k) => {
                    stats.injects += 1;
                    let at = drill_now(paused_total, paused_since);
                    let inj = &scenario.injects[k];
                    let r = inject(
                        k,
                        inj,
                        &scenario,
                        &mut participants,
                        &sec,
                        &ss,
                        &mut sims,
                        &homes,
                        &tx,
                        &mut builder,
                        &mut alert_by_inject,
                    )
                    .await;
                    match r {
                        Ok(Done::Alert {
                            id,
                            sender,
                            headline,
                            states,
                        }) => {
                            ui(Ui::Event {
                                at,
                                text: format!(
                                    "{} from {}: {}",
                                    inj.kind.word().to_uppercase(),
                                    participants[sender].handle,
                                    headline
                                ),
                            });
                            alerts.push(SentAlert {
                                id,
                                sender,
                                headline,
                                states,
                                last: BTreeMap::new(),
                            });
                        }
                        Ok(Done::FollowUp { id, sender, headline }) => {
                            ui(Ui::Event {
                                at,
                                text: format!(
                                    "{} from {}: {}",
                                    inj.kind.word().to_uppercase(),
                                    participants[sender].handle,
                                    headline
                                ),
                            });
                            messages.push((sender, id));
                        }
                        Ok(Done::Message { id, sender, subject }) => {
                            ui(Ui::Event {
                                at,
                                text: format!("message from {}: {}", participants[sender].handle, subject),
                            });
                            messages.push((sender, id));
                        }
                        Ok(Done::Note(kind, t)) => {
                            let (at, t) = note(at, kind, t);
                            ui(Ui::Event { at, text: t });
                        }
                        Err(e) => {
                            let (at, t) = note(
                                at,
                                DrillEventKind::Note,
                                format!("inject {} failed: {}", k + 1, crate::render::line(&e.to_string())),
                            );
                            ui(Ui::Event { at, text: t });
                        }
                    }
                }
            }
        }
    }

    // Rounds still being sent are finished first (their bundles belong in the record).
    while rounds_pending > 0 {
        match round_rx.recv().await {
            Some((k, Ok((id, _)))) => {
                rounds_pending -= 1;
                rounds.push((k, id));
            }
            Some((_, Err(_))) => rounds_pending -= 1,
            None => break,
        }
    }
    // The record lists rounds in inject order.
    rounds.sort();
    // Wind down: stop watching, collect the signed records.
    let ended = now_ms();
    stats.wall_ms = ended - started;
    for s in sims.values_mut() {
        if let Some(w) = s.watch.take() {
            w.abort();
        }
    }
    // Senders take in the last receipts.
    for a in &alerts {
        if let Some(sim) = sims.get(&a.sender) {
            let _ = sim.client.sync(&sim.session, false, None, |_, _| {}).await;
        }
    }
    for (sender, _) in &messages {
        if let Some(sim) = sims.get(sender) {
            let _ = sim.client.sync(&sim.session, false, None, |_, _| {}).await;
        }
    }
    let _ = sec.sync(&ss, false, None, |_, _| {}).await;
    for a in &alerts {
        let c = &sims[&a.sender].client;
        for r in c.store.receipts_bytes(MessageId(a.id))? {
            builder
                .add_receipt(a.id, r)
                .map_err(|e| Error::Usage(format!("drill record: {e}")))?;
        }
    }
    for (sender, id) in &messages {
        let c = &sims[sender].client;
        for r in c.store.receipts_bytes(MessageId(*id))? {
            builder
                .add_receipt(*id, r)
                .map_err(|e| Error::Usage(format!("drill record: {e}")))?;
        }
    }
    for (_, r) in &rounds {
        let b = sec.round_bundle_at(&hex(&r[..4]), ended)?;
        let bytes = b.encode().map_err(|e| Error::Usage(format!("round bundle: {e}")))?;
        builder
            .add_round(bytes)
            .map_err(|e| Error::Usage(format!("drill record: {e}")))?;
    }
    for (at, kind, text) in events.borrow().iter() {
        builder
            .event_kind(*at, *kind, text)
            .map_err(|e| Error::Usage(format!("drill record: {e}")))?;
    }
    sec.sync_directory(&ss).await?;
    let note_text = sec
        .store
        .log_checkpoint()?
        .ok_or_else(|| Error::Protocol("the Secretariat holds no checkpoint".into()))?;
    builder
        .directory(&net.vkey, &note_text, sec.store.log_leaves()?)
        .map_err(|e| Error::Usage(format!("drill record: {e}")))?;
    let bytes = builder
        .finish(&sec.identity, ended, ended_early)
        .map_err(|e| Error::Usage(format!("drill record: {e}")))?;
    for (_, s) in sims.drain() {
        close(s.session).await;
    }
    close(ss).await;
    let mut f = write_outputs(out, &bytes, ended_early)?;
    f.stats = stats;
    Ok(f)
}

/// Verifies `bytes` as a drill record and writes it with its report into `out`.
pub fn write_outputs(out: &Path, bytes: &[u8], ended_early: bool) -> Result<Finished> {
    let (_, report) = pocnet_core::drill::verify_drill(bytes, None)
        .map_err(|e| Error::DirectoryRefused(format!("the drill record does not verify: {e}")))?;
    std::fs::create_dir_all(out).map_err(|e| Error::Io {
        context: format!("cannot create {}", out.display()),
        source: e,
    })?;
    let w = |name: &str, data: &[u8]| -> Result<PathBuf> {
        let p = out.join(name);
        std::fs::write(&p, data).map_err(|e| Error::Io {
            context: format!("cannot write {}", p.display()),
            source: e,
        })?;
        Ok(p)
    };
    Ok(Finished {
        record: w("drill.record", bytes)?,
        markdown: w("report.md", report.to_markdown().as_bytes())?,
        json: w("report.json", report.to_json().as_bytes())?,
        html: w("report.html", report.to_html().as_bytes())?,
        report,
        ended_early,
        stats: RunStats::default(),
    })
}

enum Done {
    Alert {
        id: [u8; 16],
        sender: usize,
        headline: String,
        states: Vec<String>,
    },
    FollowUp {
        id: [u8; 16],
        sender: usize,
        headline: String,
    },
    Message {
        id: [u8; 16],
        sender: usize,
        subject: String,
    },
    Note(DrillEventKind, String),
}

/// What `round_start` needs for question or round inject `k`.
fn round_args(scenario: &Scenario, k: usize, participants: &[Participant]) -> (Selection, u64, RoundRequest, Vec<f64>) {
    let r = match &scenario.injects[k].kind {
        InjectKind::Question(r) | InjectKind::Round(r) => r,
        _ => unreachable!("a round inject"),
    };
    let mut states: Vec<String> = participants.iter().map(|p| p.state.clone()).collect();
    states.sort();
    states.dedup();
    let ranks = scenario
        .participants
        .ranks
        .iter()
        .filter_map(|r| crate::ops::governance::parse_rank(r).ok())
        .collect();
    let sel = Selection {
        states,
        categories: vec![Category::CyberPolicy],
        ranks,
        exercise: true,
    };
    let deadline = now_ms() + scenario.to_real_ms(r.deadline_ms);
    let fractions: Vec<f64> = r
        .reminders_ms
        .iter()
        .map(|m| *m as f64 / r.deadline_ms.max(1) as f64)
        .filter(|f| *f > 0.0 && *f < 1.0)
        .collect();
    let request = match &r.question {
        Some(q) => RoundRequest::Question(q.clone()),
        None => RoundRequest::ConfirmDetails,
    };
    (sel, deadline, request, fractions)
}

fn scen(e: impl std::fmt::Display) -> Error {
    Error::Usage(format!("scenario: {e}"))
}

/// Inject `k`'s recipients as the sender's verified directory lists them.
fn recipients(c: &Client, scenario: &Scenario, k: usize, participants: &[Participant]) -> Result<Vec<Poc>> {
    let log = c.log()?;
    let dir = log.directory();
    scenario
        .recipients(k, participants)
        .map_err(scen)?
        .iter()
        .map(|p| {
            let key = IdentityKey::from_bytes(&p.current_key())
                .map_err(|_| Error::Protocol("a participant key is not a key".into()))?;
            dir.by_key(&key)
                .cloned()
                .ok_or_else(|| Error::Usage(format!("{} is not in the directory", key.fingerprint().short())))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn inject(
    k: usize,
    inj: &pocnet_core::drill::Inject,
    scenario: &Scenario,
    participants: &mut [Participant],
    sec: &Rc<Client>,
    ss: &Session,
    sims: &mut HashMap<usize, Sim>,
    homes: &HashMap<String, PathBuf>,
    tx: &tokio::sync::mpsc::UnboundedSender<(usize, Stimulus)>,
    builder: &mut DrillBundleBuilder,
    alert_by_inject: &mut HashMap<usize, [u8; 16]>,
) -> Result<Done> {
    let sender_of = |handle: &str, participants: &[Participant]| -> Result<usize> {
        participants
            .iter()
            .position(|p| p.handle == handle)
            .ok_or_else(|| Error::Usage(format!("scenario: {handle} is not a participant")))
    };
    match &inj.kind {
        InjectKind::Alert(_) | InjectKind::Update(_) | InjectKind::AllClear(_) => {
            let (sender, of) = match &inj.kind {
                InjectKind::Alert(a) => (sender_of(&a.from, participants)?, None),
                InjectKind::Update(f) | InjectKind::AllClear(f) => {
                    let of = *alert_by_inject.get(&f.of).ok_or_else(|| {
                        Error::Usage(format!("scenario: inject {} follows an alert that was not sent", k + 1))
                    })?;
                    let from = match &scenario.injects[f.of].kind {
                        InjectKind::Alert(a) => a.from.clone(),
                        _ => return Err(Error::Usage("scenario: a follow-up of something not an alert".into())),
                    };
                    (sender_of(&from, participants)?, Some(of))
                }
                _ => unreachable!(),
            };
            let sim = sims
                .get(&sender)
                .ok_or_else(|| Error::Usage(format!("{} is not online to send", participants[sender].handle)))?;
            let c = sim.client.clone();
            let s = sim.session.clone();
            let now = now_ms();
            c.sync_directory(&s).await?;
            let to = recipients(&c, scenario, k, participants)?;
            let fields = HeaderFields {
                log_head: Some(c.log()?.head()),
                ..scenario.header_fields(k, now).map_err(scen)?
            };
            let body = scenario.alert_body(k, participants, now, of).map_err(scen)?;
            let sent = c
                .send_alert(&s, &to, &fields, &body, |id, hash| {
                    scenario.plan(k, participants, id, hash, of).map_err(scen)
                })
                .await?;
            let id = sent.id.0;
            builder
                .add_alert(sent.envelope, sent.plan, sent.stored_at_ms, sent.proof)
                .map_err(|e| Error::Usage(format!("drill record: {e}")))?;
            if body.msg_type == MsgType::Alert {
                alert_by_inject.insert(k, id);
                Ok(Done::Alert {
                    id,
                    sender,
                    headline: body.headline,
                    states: body.targets,
                })
            } else {
                Ok(Done::FollowUp {
                    id,
                    sender,
                    headline: body.headline,
                })
            }
        }
        InjectKind::Message(m) => {
            let sender = sender_of(&m.from, participants)?;
            let sim = sims
                .get(&sender)
                .ok_or_else(|| Error::Usage(format!("{} is not online to send", participants[sender].handle)))?;
            let (c, s) = (sim.client.clone(), sim.session.clone());
            c.sync_directory(&s).await?;
            let to = recipients(&c, scenario, k, participants)?;
            // Every message of a drill is EXERCISE (the scenario's header says so too).
            let sent = c
                .send_prepared(
                    &s,
                    to,
                    &crate::ops::messaging::Outgoing {
                        subject: m.subject.clone(),
                        text: m.text.clone(),
                        tlp: m.tlp,
                        attachments: Vec::new(),
                        incident_id: m.incident.clone(),
                    },
                    true,
                )
                .await?;
            builder
                .add_message(sent.envelope, sent.stored_at, sent.proof)
                .map_err(|e| Error::Usage(format!("drill record: {e}")))?;
            Ok(Done::Message {
                id: sent.id.0,
                sender,
                subject: m.subject.clone(),
            })
        }
        InjectKind::Question(_) | InjectKind::Round(_) => unreachable!("rounds run beside the loop"),
        InjectKind::Offline { target } => {
            let i = sender_of(target, participants)?;
            if let Some(sim) = sims.get_mut(&i) {
                sim.offline = true;
                if let Some(w) = sim.watch.take() {
                    w.abort();
                }
            }
            Ok(Done::Note(DrillEventKind::Offline, format!("{target} goes offline")))
        }
        InjectKind::Rotate { target } => {
            let i = sender_of(target, participants)?;
            let home = homes
                .get(target)
                .ok_or_else(|| Error::Usage(format!("{target} is not simulated here")))?;
            if let Some(mut sim) = sims.remove(&i) {
                if let Some(w) = sim.watch.take() {
                    w.abort();
                }
                close(sim.session).await;
            }
            // The key was lost: a new encryption key is published through the directory
            // (the POC's rotation, published by the Secretariat), then the old one retired.
            let mut c = open(home)?;
            let s = c.connect().await?;
            c.rotate(&s, DRILL_PASSPHRASE.as_bytes()).await?;
            sec.publish_pending(ss).await?;
            c.sync_directory(&s).await?;
            let _ = c.rotate(&s, DRILL_PASSPHRASE.as_bytes()).await;
            s.close().await;
            drop(c);
            if !matches!(participants[i].profile, Profile::Offline | Profile::Human) {
                sims.insert(i, start_sim(i, home, tx).await?);
            }
            Ok(Done::Note(
                DrillEventKind::Rotate,
                format!("{target} lost its key: a new encryption key is published through the directory"),
            ))
        }
    }
}
