//! The after-action report: a pure function of the drill record (PROTOCOL.md §15.4 has the
//! definitions).
//!
//! Times: the relay's signed acceptance time of each envelope, the POC's signed time on each
//! receipt, the relay's acceptance of each round answer. Every duration is given in real
//! (wall-clock) milliseconds and in drill milliseconds (× the scenario's clock rate).
//! Positions on the drill clock ("T+") are `(t − started − time paused before t) × rate`,
//! with pauses from the runner's (unsigned) Pause/Resume events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pocnet_crypto::{Header, ReceiptKind};
use serde::Serialize;

use super::bundle::{receipt_fields, DrillBundle, DrillError, DrillEventKind, ReceiptFields};
use super::scenario::{fmt_drill_time, InjectKind, Participant, Scenario};
use super::sim::{question_number, Profile};
use crate::alert::{Lang, PlanKind, SignedPlan};
use crate::directory::Anchor;
use crate::round::report::median;
use crate::round::{Bundle, Report, Request, SignedAnswer};

/// Why a POC that was alerted did not acknowledge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Its profile is offline, or an `offline` inject took it offline before its release,
    /// and no Delivered receipt came.
    Offline,
    /// No Delivered receipt otherwise: its device never fetched the alert.
    NeverFetched,
    /// Its device fetched it (Delivered receipt) but nobody acknowledged.
    DeliveredNotAcknowledged,
    /// Its state has a single rank in the plan and did not acknowledge.
    NoAlternate,
    /// Its directory record had not been confirmed for 365 days at the drill's start.
    StaleRecord,
}

impl Reason {
    /// Words for the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Offline => "offline",
            Reason::NeverFetched => "never fetched",
            Reason::DeliveredNotAcknowledged => "delivered, not acknowledged",
            Reason::NoAlternate => "no alternate",
            Reason::StaleRecord => "stale record",
        }
    }
}

/// How an alerted state ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateOutcome {
    /// A key of the state signed an Acknowledged receipt.
    Acknowledged,
    /// No acknowledgement by the time its last repeat's window closed.
    Unreached,
    /// The sender stopped the escalation (all-clear) before the state acknowledged or was
    /// unreached.
    Stopped,
    /// The drill ended first.
    Pending,
}

impl StateOutcome {
    /// Words for the report.
    pub fn as_str(self) -> &'static str {
        match self {
            StateOutcome::Acknowledged => "acknowledged",
            StateOutcome::Unreached => "unreached after the last repeat",
            StateOutcome::Stopped => "stopped by the all-clear",
            StateOutcome::Pending => "no acknowledgement when the drill ended",
        }
    }
}

/// One alerted state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateLine {
    /// ISO 3166-1 alpha-2 code.
    pub state: String,
    /// Ranks in the plan.
    pub ranks: u8,
    /// How it ended.
    pub outcome: StateOutcome,
    /// Handle of the first POC to acknowledge.
    pub acknowledged_by: Option<String>,
    /// First acknowledgement's time − the relay's acceptance of the alert (real ms).
    pub time_to_ack_ms: Option<u64>,
    /// The same in drill ms.
    pub time_to_ack_drill_ms: Option<u64>,
    /// Deepest escalation step due before the acknowledgement (or the stop, or the end):
    /// rank `i` → `i`, repeat `j` → `ranks − 1 + j`.
    pub depth: u8,
    /// `primary`, `alternate`, `further1`… or `repeat 1`…
    pub depth_label: String,
}

/// One alert, update or all-clear.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertReport {
    /// Position in the record (1-based).
    pub index: usize,
    /// Message id, hex.
    pub alert_id: String,
    /// `alert`, `update` or `all-clear`.
    pub kind: &'static str,
    /// The scenario's headline.
    pub headline: String,
    /// The sender's handle.
    pub sender: String,
    /// The alert it follows (update, all-clear), hex.
    pub follows: Option<String>,
    /// The relay's acceptance (Unix ms).
    pub accepted_ms: u64,
    /// The same on the drill clock (T+ drill ms).
    pub at_drill_ms: u64,
    /// The plan's window (real ms; 0 for a follow-up).
    pub window_ms: u64,
    /// The window in drill ms.
    pub window_drill_ms: u64,
    /// The plan's repeats.
    pub repeats: u8,
    /// Recipients of the envelope.
    pub recipients: u32,
    /// Recipients with a Delivered receipt.
    pub delivered: u32,
    /// With a Read receipt.
    pub read: u32,
    /// With an Acknowledged receipt.
    pub acknowledged: u32,
    /// When an all-clear stopped it (the relay's acceptance of the all-clear).
    pub stopped_ms: Option<u64>,
    /// Alerted states (alerts only), by code.
    pub states: Vec<StateLine>,
    /// States acknowledged.
    pub states_acknowledged: u32,
    /// States unreached.
    pub states_unreached: u32,
    /// Median time to acknowledge over the acknowledged states (real ms).
    pub median_ack_ms: Option<u64>,
    /// The same in drill ms.
    pub median_ack_drill_ms: Option<u64>,
}

/// The reachability figure of one alert: of the states whose primary rank did not
/// acknowledge within one window but which have a live alternate (a POC of a later rank
/// whose profile is not offline or silent and that no inject took offline), how many
/// acknowledged within two windows. Target: all of them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reachability {
    /// The alert, hex.
    pub alert_id: String,
    /// States whose primary rank did not acknowledge within one window.
    pub primary_silent: Vec<String>,
    /// Of those, the states with a live alternate.
    pub eligible: Vec<String>,
    /// Of those, the states that acknowledged within two windows.
    pub within_two_windows: Vec<String>,
    /// Eligible states that did not.
    pub missed: Vec<String>,
    /// `within_two_windows / eligible` (none when nothing is eligible).
    pub rate: Option<f64>,
    /// Every eligible state acknowledged within two windows (the 100% target).
    pub target_met: bool,
}

/// A POC alerted but not acknowledging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    /// The alert, hex.
    pub alert_id: String,
    /// Its handle.
    pub handle: String,
    /// Its state.
    pub state: String,
    /// Its profile label.
    pub profile: String,
    /// When its first release fell due (T+ drill ms).
    pub released_drill_ms: u64,
    /// Why (one or more).
    pub reasons: Vec<Reason>,
}

/// One verification round.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundSummary {
    /// Position in the record (1-based).
    pub index: usize,
    /// Round id, hex.
    pub round_id: String,
    /// `question` or `confirm`.
    pub kind: &'static str,
    /// The question, or `confirm details`.
    pub request: String,
    /// The round's start (Unix ms).
    pub started_ms: u64,
    /// The same on the drill clock.
    pub at_drill_ms: u64,
    /// Targets.
    pub targets: u32,
    /// Answered in pocnet (late included).
    pub answered: u32,
    /// Answered after the deadline.
    pub late: u32,
    /// `answered / targets`.
    pub rate: f64,
    /// Median time to answer (real ms).
    pub median_ms: Option<u64>,
    /// The same in drill ms.
    pub median_drill_ms: Option<u64>,
    /// Reminders released, in all.
    pub reminders_released: u32,
    /// States with no answer in pocnet.
    pub states_without_answer: Vec<String>,
}

/// One answer to an injected question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnswerLine {
    /// The answering POC's state.
    pub state: String,
    /// Its handle.
    pub handle: String,
    /// The language the answer is written in, as detected from its words (`en`, `es`, `fr`,
    /// `pt`), if clear. Answers are never translated.
    pub language: Option<&'static str>,
    /// The answer, exactly as signed (party text: escaped wherever shown).
    pub text: String,
    /// Time to answer in drill ms.
    pub time_to_answer_drill_ms: Option<u64>,
    /// Accepted after the deadline.
    pub late: bool,
}

/// The answers to one injected question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuestionReport {
    /// The round's position in the record (1-based).
    pub round: usize,
    /// Which of the four seed questions it is (1..=4), if recognised.
    pub number: Option<u8>,
    /// The question.
    pub question: String,
    /// The answers, by state then handle.
    pub answers: Vec<AnswerLine>,
    /// Participating states with no answer.
    pub states_without_answer: Vec<String>,
}

/// One message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageReport {
    /// Position in the record (1-based).
    pub index: usize,
    /// Message id, hex.
    pub id: String,
    /// Sender handle.
    pub from: String,
    /// The scenario's subject.
    pub subject: String,
    /// The relay's acceptance (Unix ms).
    pub accepted_ms: u64,
    /// The same on the drill clock.
    pub at_drill_ms: u64,
    /// Recipients.
    pub recipients: u32,
    /// With a Delivered receipt.
    pub delivered: u32,
    /// With a Read receipt.
    pub read: u32,
}

/// What a human participant did about one alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HumanAlert {
    /// The alert, hex.
    pub alert_id: String,
    /// `alert`, `update`, `all-clear`.
    pub kind: &'static str,
    /// First Delivered receipt (Unix ms).
    pub delivered_ms: Option<u64>,
    /// First Read receipt.
    pub read_ms: Option<u64>,
    /// First Acknowledged receipt.
    pub acknowledged_ms: Option<u64>,
    /// Acknowledgement − the relay's acceptance, drill ms.
    pub time_to_ack_drill_ms: Option<u64>,
}

/// What a human participant did in one round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HumanRound {
    /// Round position (1-based).
    pub round: usize,
    /// The relay's acceptance of its answer (Unix ms).
    pub answered_ms: Option<u64>,
    /// Its answer text (question rounds; party text).
    pub text: Option<String>,
    /// It confirmed or updated its details (confirm rounds).
    pub confirmed: bool,
}

/// What a human participant did with one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HumanMessage {
    /// Message position (1-based).
    pub message: usize,
    /// First Delivered receipt.
    pub delivered_ms: Option<u64>,
    /// First Read receipt.
    pub read_ms: Option<u64>,
}

/// A human participant's drill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HumanReport {
    /// Its handle.
    pub handle: String,
    /// Its state.
    pub state: String,
    /// Per alert it received.
    pub alerts: Vec<HumanAlert>,
    /// Per round.
    pub rounds: Vec<HumanRound>,
    /// Per message it received.
    pub messages: Vec<HumanMessage>,
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When (Unix ms).
    pub at_ms: u64,
    /// On the drill clock (T+ drill ms).
    pub drill_ms: u64,
    /// `alert`, `update`, `all-clear`, `ack`, `unreached`, `round`, `answer`, `message`, or
    /// the runner event's kind.
    pub kind: &'static str,
    /// `signed` (a signed record says so), `derived` (computed from signed records: an
    /// unreached state), or `runner` (the runner's own log, unsigned).
    pub source: &'static str,
    /// What happened (contains party text: escaped wherever shown).
    pub text: String,
}

/// Participant counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParticipantCounts {
    /// All participants.
    pub total: u32,
    /// Simulated.
    pub simulated: u32,
    /// Human.
    pub humans: u32,
    /// States.
    pub states: u32,
    /// Stale records at the start.
    pub stale: u32,
    /// Participants whose key was rotated during the drill.
    pub rotated: u32,
    /// Count per profile label.
    pub by_profile: BTreeMap<String, u32>,
}

/// The after-action report of one drill.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AfterAction {
    /// Always `EXERCISE`.
    pub marking: &'static str,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's description.
    pub description: String,
    /// Re-derived by [`super::verify_drill`] from a record whose every signature verified.
    pub verified: bool,
    /// The verifier was given the directory's verifier key to compare.
    pub directory_pinned: bool,
    /// The controller's key (hex), when verified.
    pub controller: Option<String>,
    /// The directory's origin.
    pub directory: String,
    /// Drill seconds per wall second.
    pub clock_rate: u32,
    /// Start (Unix ms).
    pub started_ms: u64,
    /// End (Unix ms).
    pub ended_ms: u64,
    /// Ended before the scenario's end.
    pub ended_early: bool,
    /// End − start, real ms.
    pub duration_ms: u64,
    /// The drill clock at the end.
    pub duration_drill_ms: u64,
    /// The scenario's planned length (drill ms).
    pub planned_drill_ms: u64,
    /// Who took part.
    pub participants: ParticipantCounts,
    /// Every alert, update and all-clear.
    pub alerts: Vec<AlertReport>,
    /// The reachability figure, per alert.
    pub reachability: Vec<Reachability>,
    /// Alerted POCs that did not acknowledge, and why.
    pub unreachable: Vec<Unreachable>,
    /// Verification rounds.
    pub rounds: Vec<RoundSummary>,
    /// The answers to the injected questions.
    pub questions: Vec<QuestionReport>,
    /// Messages.
    pub messages: Vec<MessageReport>,
    /// What each human participant did.
    pub humans: Vec<HumanReport>,
    /// Everything in time order.
    pub timeline: Vec<TimelineEntry>,
}

/// The header of an envelope, parsed without verifying anything (records already verified
/// or built locally).
pub(crate) fn header_of(envelope: &[u8]) -> Option<Header> {
    let len = u32::from_be_bytes(envelope.get(1..5)?.try_into().ok()?) as usize;
    Header::parse(envelope.get(5..5usize.checked_add(len)?)?).ok()
}

/// The language `text` is written in, from common words: `en`, `es`, `fr` or `pt` when one
/// clearly leads (at least two hits and more than any other), else none.
pub fn detect_language(text: &str) -> Option<Lang> {
    const WORDS: [(Lang, &[&str]); 4] = [
        (
            Lang::En,
            &[
                "the", "and", "we", "our", "with", "for", "is", "are", "of", "to", "would",
            ],
        ),
        (
            Lang::Es,
            &[
                "el", "los", "las", "y", "con", "nuestro", "nuestra", "para", "del", "una", "es", "está", "si",
            ],
        ),
        (
            Lang::Fr,
            &[
                "le", "les", "et", "nous", "notre", "avec", "pour", "des", "une", "est", "du", "au", "si",
            ],
        ),
        (
            Lang::Pt,
            &[
                "o", "os", "e", "com", "nossa", "nosso", "do", "da", "não", "uma", "em", "se", "é",
            ],
        ),
    ];
    let mut counts = [0usize; 4];
    for w in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
    {
        for (i, (_, words)) in WORDS.iter().enumerate() {
            if words.contains(&w.as_str()) {
                counts[i] += 1;
            }
        }
    }
    let (best, &n) = counts.iter().enumerate().max_by_key(|(_, n)| **n)?;
    let second = counts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, n)| *n)
        .max()?;
    (n >= 2 && n > second).then_some(WORDS[best].0)
}

/// The runner's pauses: closed intervals `[pause, resume)` in real ms.
fn pauses(b: &DrillBundle) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut open: Option<u64> = None;
    let mut ev: Vec<_> = b.events.iter().collect();
    ev.sort_by_key(|e| e.at_ms);
    for e in ev {
        match (e.kind, open) {
            (DrillEventKind::Pause, None) => open = Some(e.at_ms),
            (DrillEventKind::Resume, Some(p)) => {
                out.push((p, e.at_ms.max(p)));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(p) = open {
        out.push((p, b.ended_ms.max(p)));
    }
    out
}

struct Clock<'a> {
    scenario: &'a Scenario,
    started_ms: u64,
    pauses: Vec<(u64, u64)>,
}

impl Clock<'_> {
    /// T+ on the drill clock.
    fn at(&self, t: u64) -> u64 {
        let paused: u64 = self.pauses.iter().map(|(a, z)| t.min(*z).saturating_sub(*a)).sum();
        self.scenario
            .to_drill_ms(t.saturating_sub(self.started_ms).saturating_sub(paused))
    }
}

/// Receipts of one envelope: first time per (signer, kind).
fn first_receipts(receipts: &[Vec<u8>], id: &[u8; 16]) -> HashMap<([u8; 32], ReceiptKind), u64> {
    let mut m: HashMap<([u8; 32], ReceiptKind), u64> = HashMap::new();
    for f in receipts.iter().filter_map(|r| receipt_fields(r)) {
        let ReceiptFields {
            kind,
            message_id,
            signer,
            at_ms,
            ..
        } = f;
        if &message_id != id {
            continue;
        }
        let e = m.entry((signer, kind)).or_insert(at_ms);
        *e = (*e).min(at_ms);
    }
    m
}

fn count_kind(m: &HashMap<([u8; 32], ReceiptKind), u64>, kind: ReceiptKind) -> u32 {
    m.keys().filter(|(_, k)| *k == kind).count() as u32
}

fn rank_label(participants: &[Participant], key: &[u8; 32], i: usize) -> String {
    participants
        .iter()
        .find(|p| p.has_key(key))
        .and_then(|p| p.handle.split_once('.').map(|(_, s)| s.to_string()))
        .unwrap_or_else(|| format!("rank {}", i + 1))
}

impl AfterAction {
    /// Computes the report from a drill record. Decodes but does not verify signatures:
    /// use [`super::verify_drill`] on a record from elsewhere (it calls this); the runner
    /// calls this directly on a record it built. Fails only on undecodable content.
    pub fn compute(b: &DrillBundle) -> Result<AfterAction, DrillError> {
        let scenario = b.parsed_scenario()?;
        let directory = Anchor::from_vkey(&b.directory_vkey)
            .map(|a| a.origin)
            .unwrap_or_default();
        let clock = Clock {
            scenario: &scenario,
            started_ms: b.started_ms,
            pauses: pauses(b),
        };
        let ps = &b.participants;
        let who = |k: &[u8; 32]| ps.iter().find(|p| p.has_key(k));
        let handle = |k: &[u8; 32]| {
            who(k)
                .map(|p| p.handle.clone())
                .unwrap_or_else(|| pocnet_crypto::to_hex(&k[..8]))
        };
        let mut timeline: Vec<TimelineEntry> = Vec::new();
        let mut tl = |at_ms: u64, kind: &'static str, source: &'static str, text: String| {
            timeline.push(TimelineEntry {
                at_ms,
                drill_ms: clock.at(at_ms),
                kind,
                source,
                text,
            })
        };

        // Participants.
        let mut counts = ParticipantCounts {
            total: ps.len() as u32,
            ..Default::default()
        };
        let mut states_set = BTreeSet::new();
        for p in ps {
            states_set.insert(p.state.as_str());
            if p.profile == Profile::Human {
                counts.humans += 1;
            } else {
                counts.simulated += 1;
            }
            counts.stale += p.stale as u32;
            counts.rotated += !p.rotated_to.is_empty() as u32;
            *counts.by_profile.entry(p.profile.label()).or_default() += 1;
        }
        counts.states = states_set.len() as u32;
        let participating_states: Vec<String> = states_set.iter().map(|s| s.to_string()).collect();

        // Alerts.
        let alert_injects = scenario.alert_injects();
        let mut plans = Vec::with_capacity(b.alerts.len());
        for (k, a) in b.alerts.iter().enumerate() {
            let sp = SignedPlan::parse(&a.plan, None).map_err(|e| DrillError::Alert {
                index: k + 1,
                alert: "?".into(),
                reason: format!("the plan is invalid: {e}"),
            })?;
            plans.push(sp);
        }
        // Stops: alert id → the relay's acceptance of the first all-clear.
        let mut stops: HashMap<[u8; 16], u64> = HashMap::new();
        for (sp, a) in plans.iter().zip(&b.alerts) {
            if let PlanKind::FollowUp { of, stop: true } = sp.plan().kind {
                let e = stops.entry(of).or_insert(a.stored_at_ms);
                *e = (*e).min(a.stored_at_ms);
            }
        }
        let mut alerts = Vec::new();
        let mut reach = Vec::new();
        let mut unreachable = Vec::new();
        let mut human_alerts: HashMap<String, Vec<HumanAlert>> = HashMap::new();
        for (k, (sp, a)) in plans.iter().zip(&b.alerts).enumerate() {
            let plan = sp.plan();
            let id_hex = pocnet_crypto::to_hex(&plan.alert);
            let inject = alert_injects.get(k).map(|&i| &scenario.injects[i].kind);
            let (kind, headline) = match inject {
                Some(InjectKind::Alert(ai)) => ("alert", ai.headline.clone()),
                Some(InjectKind::Update(f)) => ("update", f.headline.clone()),
                Some(InjectKind::AllClear(f)) => ("all-clear", f.headline.clone()),
                _ => ("alert", String::new()),
            };
            let sender = handle(sp.signer().as_bytes());
            let rc = first_receipts(&a.receipts, &plan.alert);
            let recipients = match &plan.kind {
                PlanKind::Escalate { states, .. } => states.iter().map(|s| s.ranks.iter().flatten().count()).sum(),
                PlanKind::FollowUp { .. } => header_of(&a.envelope).map(|h| h.recipients.len()).unwrap_or(0),
            } as u32;
            let acc = a.stored_at_ms;
            let mut report = AlertReport {
                index: k + 1,
                alert_id: id_hex.clone(),
                kind,
                headline: headline.clone(),
                sender: sender.clone(),
                follows: match plan.kind {
                    PlanKind::FollowUp { of, .. } => Some(pocnet_crypto::to_hex(&of)),
                    _ => None,
                },
                accepted_ms: acc,
                at_drill_ms: clock.at(acc),
                window_ms: 0,
                window_drill_ms: 0,
                repeats: 0,
                recipients,
                delivered: count_kind(&rc, ReceiptKind::Delivered),
                read: count_kind(&rc, ReceiptKind::Read),
                acknowledged: count_kind(&rc, ReceiptKind::Acknowledged),
                stopped_ms: stops.get(&plan.alert).copied(),
                states: Vec::new(),
                states_acknowledged: 0,
                states_unreached: 0,
                median_ack_ms: None,
                median_ack_drill_ms: None,
            };
            tl(
                acc,
                kind,
                "signed",
                format!(
                    "{} {} from {sender}: {headline} ({recipients} recipients)",
                    match kind {
                        "alert" => "Alert",
                        "update" => "Update",
                        _ => "All-clear",
                    },
                    k + 1
                ),
            );
            let mut acks: Vec<(u64, [u8; 32])> = rc
                .iter()
                .filter(|((_, kd), _)| *kd == ReceiptKind::Acknowledged)
                .map(|((s, _), t)| (*t, *s))
                .collect();
            acks.sort();
            for (t, s) in &acks {
                tl(
                    *t,
                    "ack",
                    "signed",
                    format!(
                        "{} acknowledged {kind} {} ({} after it was accepted)",
                        handle(s),
                        k + 1,
                        fmt_drill_time(scenario.to_drill_ms(t.saturating_sub(acc)))
                    ),
                );
            }
            // Humans' view of this envelope.
            let recips: Vec<[u8; 32]> = match &plan.kind {
                PlanKind::Escalate { states, .. } => {
                    states.iter().flat_map(|s| s.ranks.iter().flatten().copied()).collect()
                }
                PlanKind::FollowUp { .. } => header_of(&a.envelope)
                    .map(|h| h.recipients.iter().map(|r| r.key).collect())
                    .unwrap_or_default(),
            };
            for p in ps.iter().filter(|p| p.profile == Profile::Human) {
                let keys: Vec<&[u8; 32]> = recips.iter().filter(|k| p.has_key(k)).collect();
                if keys.is_empty() {
                    continue;
                }
                let first = |kd: ReceiptKind| keys.iter().filter_map(|k| rc.get(&(**k, kd)).copied()).min();
                let ack = first(ReceiptKind::Acknowledged);
                human_alerts.entry(p.handle.clone()).or_default().push(HumanAlert {
                    alert_id: id_hex.clone(),
                    kind,
                    delivered_ms: first(ReceiptKind::Delivered),
                    read_ms: first(ReceiptKind::Read),
                    acknowledged_ms: ack,
                    time_to_ack_drill_ms: ack.map(|t| scenario.to_drill_ms(t.saturating_sub(acc))),
                });
            }

            let PlanKind::Escalate {
                ack_within_ms: w,
                repeats,
                states,
            } = &plan.kind
            else {
                alerts.push(report);
                continue;
            };
            report.window_ms = *w;
            report.window_drill_ms = scenario.to_drill_ms(*w);
            report.repeats = *repeats;
            let schedule = plan.schedule(acc);
            let stop = stops.get(&plan.alert).copied();
            let mut times = Vec::new();
            let mut reach_fig = Reachability {
                alert_id: id_hex.clone(),
                primary_silent: Vec::new(),
                eligible: Vec::new(),
                within_two_windows: Vec::new(),
                missed: Vec::new(),
                rate: None,
                target_met: true,
            };
            for (si, s) in states.iter().enumerate() {
                let r = s.ranks.len();
                let keys: Vec<[u8; 32]> = s.ranks.iter().flatten().copied().collect();
                let ack = keys
                    .iter()
                    .filter_map(|k| rc.get(&(*k, ReceiptKind::Acknowledged)).map(|t| (*t, *k)))
                    .min();
                let unreached_at = plan.unreached_at(si as u16, acc);
                let outcome = match (ack, stop) {
                    (Some(_), _) => StateOutcome::Acknowledged,
                    (None, Some(t)) if t < unreached_at => StateOutcome::Stopped,
                    (None, _) if b.ended_ms >= unreached_at => StateOutcome::Unreached,
                    _ => StateOutcome::Pending,
                };
                let cutoff = match (ack, stop) {
                    (Some((t, _)), _) => t,
                    (None, Some(t)) => t.min(b.ended_ms.saturating_add(1)),
                    (None, None) => b.ended_ms.saturating_add(1),
                };
                let depth = schedule
                    .iter()
                    .filter(|st| st.state == si as u16 && st.due_ms < cutoff)
                    .map(|st| st.depth(r))
                    .max()
                    .unwrap_or(0);
                let depth_label = if (depth as usize) < r {
                    rank_label(ps, &s.ranks[depth as usize][0], depth as usize)
                } else {
                    format!("repeat {}", depth as usize + 1 - r)
                };
                let tta = ack.map(|(t, _)| t.saturating_sub(acc));
                if let Some(t) = tta {
                    times.push(t);
                }
                match outcome {
                    StateOutcome::Acknowledged => report.states_acknowledged += 1,
                    StateOutcome::Unreached => {
                        report.states_unreached += 1;
                        tl(
                            unreached_at,
                            "unreached",
                            "derived",
                            format!("{} unreached after the last repeat of alert {}", s.state, k + 1),
                        );
                    }
                    _ => {}
                }
                report.states.push(StateLine {
                    state: s.state.clone(),
                    ranks: r as u8,
                    outcome,
                    acknowledged_by: ack.map(|(_, k)| handle(&k)),
                    time_to_ack_ms: tta,
                    time_to_ack_drill_ms: tta.map(|t| scenario.to_drill_ms(t)),
                    depth,
                    depth_label,
                });

                // Unreachable POCs of this state.
                for (ri, rank) in s.ranks.iter().enumerate() {
                    for key in rank {
                        if rc.contains_key(&(*key, ReceiptKind::Acknowledged)) {
                            continue;
                        }
                        let due = acc.saturating_add((ri as u64).saturating_mul(*w));
                        if due >= cutoff {
                            continue; // not needed (state acknowledged or stopped first)
                        }
                        let p = who(key);
                        let release_drill = clock.at(due);
                        let mut reasons = Vec::new();
                        if rc.contains_key(&(*key, ReceiptKind::Delivered))
                            || rc.contains_key(&(*key, ReceiptKind::Read))
                        {
                            reasons.push(Reason::DeliveredNotAcknowledged);
                        } else if p.is_some_and(|p| {
                            p.profile == Profile::Offline || scenario.offline_by_inject(&p.handle, release_drill)
                        }) {
                            reasons.push(Reason::Offline);
                        } else {
                            reasons.push(Reason::NeverFetched);
                        }
                        if r == 1 && ack.is_none() {
                            reasons.push(Reason::NoAlternate);
                        }
                        if p.is_some_and(|p| p.stale) {
                            reasons.push(Reason::StaleRecord);
                        }
                        unreachable.push(Unreachable {
                            alert_id: id_hex.clone(),
                            handle: handle(key),
                            state: s.state.clone(),
                            profile: p.map(|p| p.profile.label()).unwrap_or_else(|| "unknown".into()),
                            released_drill_ms: release_drill,
                            reasons,
                        });
                    }
                }

                // Reachability.
                let primary_in_time = s.ranks[0].iter().any(|k| {
                    rc.get(&(*k, ReceiptKind::Acknowledged))
                        .is_some_and(|t| *t <= acc.saturating_add(*w))
                });
                if !primary_in_time {
                    reach_fig.primary_silent.push(s.state.clone());
                    let live = s.ranks[1..].iter().enumerate().any(|(i, rank)| {
                        let due = clock.at(acc.saturating_add((i as u64 + 1).saturating_mul(*w)));
                        rank.iter().any(|k| {
                            who(k).is_some_and(|p| p.profile.is_live() && !scenario.offline_by_inject(&p.handle, due))
                        })
                    });
                    if live {
                        reach_fig.eligible.push(s.state.clone());
                        if tta.is_some_and(|t| t <= w.saturating_mul(2)) {
                            reach_fig.within_two_windows.push(s.state.clone());
                        } else {
                            reach_fig.missed.push(s.state.clone());
                        }
                    }
                }
            }
            report.states.sort_by(|a, b| a.state.cmp(&b.state));
            report.median_ack_ms = median(&mut times);
            report.median_ack_drill_ms = report.median_ack_ms.map(|t| scenario.to_drill_ms(t));
            if !reach_fig.eligible.is_empty() {
                reach_fig.rate = Some(reach_fig.within_two_windows.len() as f64 / reach_fig.eligible.len() as f64);
            }
            reach_fig.target_met = reach_fig.missed.is_empty();
            for v in [
                &mut reach_fig.primary_silent,
                &mut reach_fig.eligible,
                &mut reach_fig.within_two_windows,
                &mut reach_fig.missed,
            ] {
                v.sort();
            }
            reach.push(reach_fig);
            alerts.push(report);
        }
        unreachable.sort_by(|a, b| (&a.alert_id, &a.state, &a.handle).cmp(&(&b.alert_id, &b.state, &b.handle)));

        // Messages.
        let message_injects = scenario.message_injects();
        let mut messages = Vec::new();
        let mut human_messages: HashMap<String, Vec<HumanMessage>> = HashMap::new();
        for (k, m) in b.messages.iter().enumerate() {
            let h = header_of(&m.envelope).ok_or_else(|| DrillError::Message {
                index: k + 1,
                id: "?".into(),
                reason: "the envelope header does not parse".into(),
            })?;
            let rc = first_receipts(&m.receipts, &h.message_id);
            let subject = match message_injects.get(k).map(|&i| &scenario.injects[i].kind) {
                Some(InjectKind::Message(mi)) => mi.subject.clone(),
                _ => String::new(),
            };
            let from = handle(h.sender.as_bytes());
            tl(
                m.stored_at_ms,
                "message",
                "signed",
                format!(
                    "Message {} from {from}: {subject} ({} recipients)",
                    k + 1,
                    h.recipients.len()
                ),
            );
            for p in ps.iter().filter(|p| p.profile == Profile::Human) {
                let keys: Vec<[u8; 32]> = h.recipients.iter().map(|r| r.key).filter(|k| p.has_key(k)).collect();
                if keys.is_empty() {
                    continue;
                }
                let first = |kd: ReceiptKind| keys.iter().filter_map(|k| rc.get(&(*k, kd)).copied()).min();
                human_messages.entry(p.handle.clone()).or_default().push(HumanMessage {
                    message: k + 1,
                    delivered_ms: first(ReceiptKind::Delivered),
                    read_ms: first(ReceiptKind::Read),
                });
            }
            messages.push(MessageReport {
                index: k + 1,
                id: pocnet_crypto::to_hex(&h.message_id),
                from,
                subject,
                accepted_ms: m.stored_at_ms,
                at_drill_ms: clock.at(m.stored_at_ms),
                recipients: h.recipients.len() as u32,
                delivered: count_kind(&rc, ReceiptKind::Delivered),
                read: count_kind(&rc, ReceiptKind::Read),
            });
        }

        // Rounds.
        let mut rounds = Vec::new();
        let mut questions = Vec::new();
        let mut human_rounds: HashMap<String, Vec<HumanRound>> = HashMap::new();
        for (k, bytes) in b.rounds.iter().enumerate() {
            let fail = |e: crate::signed::FormatError| DrillError::Round {
                index: k + 1,
                reason: e.to_string(),
            };
            let rb = Bundle::parse(bytes).map_err(fail)?;
            let rep = Report::compute(&rb).map_err(fail)?;
            let ch = rb.challenge().map_err(fail)?;
            let started = rb
                .targets
                .iter()
                .map(|t| t.challenge_accepted.stored_at_ms)
                .min()
                .unwrap_or(ch.started_ms);
            let (kind, question) = match &ch.request {
                Request::Question(q) => ("question", Some(q.clone())),
                Request::ConfirmDetails => ("confirm", None),
            };
            tl(
                started,
                "round",
                "signed",
                match &question {
                    Some(q) => format!("Question {} to {} participants: {q}", k + 1, rb.targets.len()),
                    None => format!(
                        "Round {} (confirm your details) to {} participants",
                        k + 1,
                        rb.targets.len()
                    ),
                },
            );
            let mut answers = Vec::new();
            for t in &rb.targets {
                let human = ps
                    .iter()
                    .find(|p| p.handle == t.target.handle && p.profile == Profile::Human);
                let mut hr = HumanRound {
                    round: k + 1,
                    answered_ms: None,
                    text: None,
                    confirmed: false,
                };
                if let Some(a) = &t.answer {
                    let ans = SignedAnswer::decode_unverified(&a.signed).map_err(fail)?;
                    let at = a.accepted.stored_at_ms;
                    let tta = at.saturating_sub(t.challenge_accepted.stored_at_ms);
                    tl(
                        at,
                        "answer",
                        "signed",
                        format!(
                            "{} answered {} {}",
                            t.target.handle,
                            if question.is_some() { "question" } else { "round" },
                            k + 1
                        ),
                    );
                    hr.answered_ms = Some(at);
                    hr.confirmed = ans.confirmed || ans.update.is_some();
                    if question.is_some() {
                        hr.text = Some(ans.note.clone());
                        answers.push(AnswerLine {
                            state: t.target.state.clone(),
                            handle: t.target.handle.clone(),
                            language: detect_language(&ans.note).map(|l| l.tag()),
                            text: ans.note,
                            time_to_answer_drill_ms: Some(scenario.to_drill_ms(tta)),
                            late: at > ch.deadline_ms,
                        });
                    }
                }
                if let Some(h) = human {
                    human_rounds.entry(h.handle.clone()).or_default().push(hr);
                }
            }
            if let Some(q) = &question {
                answers.sort_by(|a, b| (&a.state, &a.handle).cmp(&(&b.state, &b.handle)));
                let answered: BTreeSet<&str> = answers.iter().map(|a| a.state.as_str()).collect();
                questions.push(QuestionReport {
                    round: k + 1,
                    number: question_number(q),
                    question: q.clone(),
                    states_without_answer: participating_states
                        .iter()
                        .filter(|s| !answered.contains(s.as_str()))
                        .cloned()
                        .collect(),
                    answers,
                });
            }
            let t = &rep.totals;
            rounds.push(RoundSummary {
                index: k + 1,
                round_id: rep.round_id.clone(),
                kind,
                request: rep.request.clone(),
                started_ms: started,
                at_drill_ms: clock.at(started),
                targets: t.targets,
                answered: t.answered,
                late: t.late,
                rate: if t.targets == 0 {
                    0.0
                } else {
                    t.answered as f64 / t.targets as f64
                },
                median_ms: rep.median_ms,
                median_drill_ms: rep.median_ms.map(|m| scenario.to_drill_ms(m)),
                reminders_released: t.reminders_released,
                states_without_answer: rep.states_without_answer.clone(),
            });
        }

        // Humans.
        let humans = ps
            .iter()
            .filter(|p| p.profile == Profile::Human)
            .map(|p| HumanReport {
                handle: p.handle.clone(),
                state: p.state.clone(),
                alerts: human_alerts.remove(&p.handle).unwrap_or_default(),
                rounds: human_rounds.remove(&p.handle).unwrap_or_default(),
                messages: human_messages.remove(&p.handle).unwrap_or_default(),
            })
            .collect();

        // The runner's log.
        for e in &b.events {
            tl(e.at_ms, e.kind.as_str(), "runner", e.text.clone());
        }
        timeline.sort_by_key(|e| e.at_ms);

        let duration_ms = b.ended_ms.saturating_sub(b.started_ms);
        Ok(AfterAction {
            marking: "EXERCISE",
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            verified: false,
            directory_pinned: false,
            controller: None,
            directory,
            clock_rate: scenario.clock_rate,
            started_ms: b.started_ms,
            ended_ms: b.ended_ms,
            ended_early: b.ended_early,
            duration_ms,
            duration_drill_ms: clock.at(b.ended_ms),
            planned_drill_ms: scenario.duration_ms,
            participants: counts,
            alerts,
            reachability: reach,
            unreachable,
            rounds,
            questions,
            messages,
            humans,
            timeline,
        })
    }
}
