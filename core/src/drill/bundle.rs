//! The signed drill record: everything a state needs to re-verify a drill and recompute its
//! after-action report, in one postcard file signed by the drill controller (the
//! Secretariat) under `pocnet/v1/drill-bundle\0` (PROTOCOL.md §15.2).
//!
//! ```text
//! postcard(DrillBundle) || controller key [32] || Ed25519 signature [64]
//! ```
//!
//! It carries signed evidence only as the parties signed it: the directory log and its
//! checkpoint (the Secretariat's), each alert's and message's full sealed envelope (the
//! sender's signature over the header with the EXERCISE flag, and the recipient list; the
//! body stays encrypted), each alert's signed plan (the sender's), the relay's signed
//! acceptances, the POCs' signed receipts, and each round's own bundle (§13.5). The
//! runner's own log ([`DrillEvent`]) is the controller's word only and is shown as such.
//!
//! [`verify_drill`] refuses a record carrying any envelope without the EXERCISE flag: a
//! drill record cannot carry real traffic. Rounds have no exercise flag; the record lists
//! which rounds belong to the drill (its signature covers them).
//!
//! What verification cannot prove: a receipt, answer or envelope *left out* by the
//! controller is not detectable (each is signed on its own; nobody signed the complete
//! set), so a report can understate what POCs did, never overstate it. Receipt times are
//! the POC's clock, under its signature.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use pocnet_crypto::note::SignedNote;
use pocnet_crypto::{context, ContentType, Header, Identity, IdentityKey, Receipt, ReceiptKind};
use pocnet_wire::accept::{verify_acceptance, AcceptProof};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::report::AfterAction;
use super::scenario::{poc_handle, InjectKind, Participant, RosterEntry, Scenario, ScenarioError};
use crate::alert::{PlanKind, SignedPlan, MAX_PLAN_LEN};
use crate::directory::{Anchor, LogState, STALE_AFTER_MS};
use crate::round::format::MAX_TARGETS;
use crate::round::{secretariat_of, verify_bundle, Bundle, Request, MAX_BUNDLE_LEN};
use crate::signed::{decode, encode, open_body, sign_body, FormatError, TAIL_LEN};

/// The version byte of a drill record.
pub const DRILL_VERSION: u8 = 1;
/// Largest drill record, in bytes.
pub const MAX_DRILL_LEN: usize = 64 * 1024 * 1024;
/// Largest envelope in a drill record (an alert to 1,024 recipients with X-Wing stanzas and
/// a 64 KiB body fits).
pub const MAX_DRILL_ENVELOPE: usize = 8 * 1024 * 1024;
/// At most this many alert envelopes (alerts, updates, all-clears).
pub const MAX_DRILL_ALERTS: usize = 256;
/// At most this many message envelopes.
pub const MAX_DRILL_MESSAGES: usize = 1024;
/// At most this many rounds.
pub const MAX_DRILL_ROUNDS: usize = 64;
/// At most this many runner events.
pub const MAX_DRILL_EVENTS: usize = 10_000;
/// At most this many receipts per envelope (three kinds per recipient).
pub const MAX_RECEIPTS: usize = 3 * pocnet_crypto::envelope::MAX_RECIPIENTS;
/// At most this many directory log leaves.
pub const MAX_LOG_LEAVES: usize = 1_000_000;
/// Longest runner event text (one line).
pub const MAX_EVENT_TEXT: usize = 1000;
/// Relay acceptances may fall this far outside `started_ms..=ended_ms` (clock skew between
/// the relay and the runner).
pub const CLOCK_SKEW_MS: u64 = 60_000;

const WHAT: &str = "drill record";

/// One alert envelope (alert, update or all-clear) and what came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvidence {
    /// The full sealed envelope as the sender sent it (every stanza: the verifier checks the
    /// sender's signature, the recipient list and the EXERCISE flag; the body stays sealed).
    pub envelope: Vec<u8>,
    /// The sender's [`SignedPlan`] bytes.
    pub plan: Vec<u8>,
    /// When the relay stored the envelope (Unix ms, the relay's clock).
    pub stored_at_ms: u64,
    /// The relay's acceptance proof over (envelope hash, `stored_at_ms`).
    pub proof: AcceptProof,
    /// Signed receipts (Delivered, Read, Acknowledged) about this envelope, exact bytes; at
    /// most one per (signer, kind).
    pub receipts: Vec<Vec<u8>>,
}

/// One message envelope and what came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEvidence {
    /// The full sealed envelope.
    pub envelope: Vec<u8>,
    /// When the relay stored it.
    pub stored_at_ms: u64,
    /// The relay's acceptance proof.
    pub proof: AcceptProof,
    /// Signed receipts about it, at most one per (signer, kind).
    pub receipts: Vec<Vec<u8>>,
}

/// What a runner event is. The variant order is the format: append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DrillEventKind {
    /// A free note.
    Note,
    /// An inject was carried out.
    Inject,
    /// A participant went offline.
    Offline,
    /// A participant's key was rotated.
    Rotate,
    /// The drill was paused.
    Pause,
    /// The drill was resumed.
    Resume,
    /// The drill ended (early or on time).
    End,
}

impl DrillEventKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DrillEventKind::Note => "note",
            DrillEventKind::Inject => "inject",
            DrillEventKind::Offline => "offline",
            DrillEventKind::Rotate => "rotate",
            DrillEventKind::Pause => "pause",
            DrillEventKind::Resume => "resume",
            DrillEventKind::End => "end",
        }
    }
}

/// One entry of the runner's own log: the controller's word, shown as unsigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillEvent {
    /// When (Unix ms, the runner's clock).
    pub at_ms: u64,
    /// What kind.
    pub kind: DrillEventKind,
    /// What happened, one line, at most [`MAX_EVENT_TEXT`] bytes.
    pub text: String,
}

/// The drill record. The field order is the format (PROTOCOL.md §15.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillBundle {
    /// [`DRILL_VERSION`].
    pub version: u8,
    /// The scenario file, exact text.
    pub scenario: String,
    /// The Secretariat's verifier key `<origin>+<key id>+<key>` (the directory's anchor).
    pub directory_vkey: String,
    /// The checkpoint note over `log_leaves` (signed by the Secretariat), at the drill's end.
    pub checkpoint: String,
    /// Every directory log leaf from Genesis.
    pub log_leaves: Vec<Vec<u8>>,
    /// The relay's identity key.
    pub relay_key: [u8; 32],
    /// When the drill started (Unix ms, the runner's clock).
    pub started_ms: u64,
    /// When it ended.
    pub ended_ms: u64,
    /// Whether it was ended before the scenario's end.
    pub ended_early: bool,
    /// Every participant, sorted by state, rank, handle.
    pub participants: Vec<Participant>,
    /// The k-th alert envelope is the scenario's k-th alert, update or all-clear inject.
    pub alerts: Vec<AlertEvidence>,
    /// The k-th message envelope is the scenario's k-th message inject.
    pub messages: Vec<MessageEvidence>,
    /// Round bundle files (§13.5); the k-th is the scenario's k-th question or round inject.
    pub rounds: Vec<Vec<u8>>,
    /// The runner's log (unsigned events), in time order.
    pub events: Vec<DrillEvent>,
}

/// Why a drill record was refused (or could not be built). Each names the piece at fault.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DrillError {
    /// The file is not a well-formed drill record, or a bound is broken.
    #[error("drill record is malformed: {0}")]
    Format(FormatError),
    /// The controller's signature does not verify.
    #[error("the drill controller's signature is invalid: {0}")]
    ControllerSignature(FormatError),
    /// The scenario inside does not parse.
    #[error("the drill record's scenario is invalid: {0}")]
    Scenario(ScenarioError),
    /// The directory is not the one expected.
    #[error("the drill record is for directory {found}, not the expected {expected}")]
    VkeyMismatch {
        /// The verifier key expected.
        expected: String,
        /// The one in the record.
        found: String,
    },
    /// The directory log or its checkpoint does not verify.
    #[error("the directory log is invalid: {0}")]
    Directory(String),
    /// The record is not signed by the Secretariat in force at the checkpoint.
    #[error("the drill record is signed by {controller}, not by the directory's Secretariat")]
    ControllerNotSecretariat {
        /// The signing key, hex.
        controller: String,
    },
    /// Start, end or an acceptance time is out of order.
    #[error("drill times are inconsistent: {0}")]
    Times(String),
    /// A participant entry is wrong (not listed with that handle, wrong stale flag, wrong
    /// rotation, wrong profile, duplicate).
    #[error("participant {handle}: {reason}")]
    Participant {
        /// Its handle.
        handle: String,
        /// What is wrong.
        reason: String,
    },
    /// The relay key is not a valid Ed25519 key.
    #[error("the relay key is not a valid Ed25519 key")]
    RelayKey,
    /// An envelope without the EXERCISE flag.
    #[error("{what} is not marked EXERCISE: a drill record cannot carry real traffic")]
    NotExercise {
        /// Which envelope.
        what: String,
    },
    /// An alert envelope or its plan is wrong.
    #[error("alert {index} ({alert}): {reason}")]
    Alert {
        /// Its position in the record (1-based).
        index: usize,
        /// Its message id, hex (or `?` before it is known).
        alert: String,
        /// What is wrong.
        reason: String,
    },
    /// A message envelope is wrong.
    #[error("message {index} ({id}): {reason}")]
    Message {
        /// Its position in the record (1-based).
        index: usize,
        /// Its message id, hex (or `?`).
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A receipt is wrong.
    #[error("{of}: receipt {index} ({signer}): {reason}")]
    Receipt {
        /// The alert or message it is about (`alert 2 (…)`).
        of: String,
        /// Its position among that envelope's receipts (1-based).
        index: usize,
        /// Who signed it (handle, or key hex).
        signer: String,
        /// What is wrong.
        reason: String,
    },
    /// A round bundle is wrong.
    #[error("round {index}: {reason}")]
    Round {
        /// Its position in the record (1-based).
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A runner event is malformed.
    #[error("event {index}: {reason}")]
    Event {
        /// Its position (1-based).
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The builder was used wrongly.
    #[error("cannot build the drill record: {0}")]
    Builder(String),
}

/// A receipt's fields read from its fixed layout (PROTOCOL.md §5) without checking the
/// signature (for reports on records already verified or built locally).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiptFields {
    /// What is stated.
    pub kind: ReceiptKind,
    /// The message id.
    pub message_id: [u8; 16],
    /// The envelope hash.
    pub envelope_hash: [u8; 32],
    /// Who signed.
    pub signer: [u8; 32],
    /// The envelope's sender.
    pub sender: [u8; 32],
    /// When (the signer's clock).
    pub at_ms: u64,
}

/// Reads a receipt's fields (§5 layout: version 1, kind, message id, envelope hash, signer,
/// sender, u64 BE time, signature; 186 bytes). No signature check.
pub fn receipt_fields(b: &[u8]) -> Option<ReceiptFields> {
    if b.len() != pocnet_crypto::receipt::RECEIPT_LEN || b[0] != 1 {
        return None;
    }
    let kind = match b[1] {
        1 => ReceiptKind::Delivered,
        2 => ReceiptKind::Read,
        3 => ReceiptKind::Acknowledged,
        _ => return None,
    };
    Some(ReceiptFields {
        kind,
        message_id: b[2..18].try_into().ok()?,
        envelope_hash: b[18..50].try_into().ok()?,
        signer: b[50..82].try_into().ok()?,
        sender: b[82..114].try_into().ok()?,
        at_ms: u64::from_be_bytes(b[114..122].try_into().ok()?),
    })
}

impl DrillBundle {
    /// The signed file: `postcard(self) || key || signature` by `controller`.
    pub fn sign(&self, controller: &Identity) -> Result<Vec<u8>, DrillError> {
        self.check_bounds()?;
        sign_body(WHAT, context::DRILL_BUNDLE, controller, self, MAX_DRILL_LEN).map_err(DrillError::Format)
    }

    /// Parses a signed drill record strictly (bound, version, canonical postcard, exact tail,
    /// the controller's signature, every count and size bound) and returns it with the
    /// controller's key. Everything else is [`verify_drill`]'s business.
    pub fn open(bytes: &[u8]) -> Result<(DrillBundle, IdentityKey), DrillError> {
        let (b, key) =
            open_body::<DrillBundle>(WHAT, context::DRILL_BUNDLE, bytes, MAX_DRILL_LEN, None).map_err(|e| match e {
                FormatError::BadSignature { .. } | FormatError::BadKey { .. } => DrillError::ControllerSignature(e),
                e => DrillError::Format(e),
            })?;
        if b.version != DRILL_VERSION {
            return Err(DrillError::Format(FormatError::Version {
                what: WHAT,
                found: b.version,
            }));
        }
        b.check_bounds()?;
        Ok((b, key))
    }

    /// Decodes a signed drill record without checking the signature (for a record built
    /// locally).
    pub fn decode_unverified(bytes: &[u8]) -> Result<DrillBundle, DrillError> {
        let b: DrillBundle = decode(WHAT, bytes, MAX_DRILL_LEN, TAIL_LEN).map_err(DrillError::Format)?;
        b.check_bounds()?;
        Ok(b)
    }

    fn check_bounds(&self) -> Result<(), DrillError> {
        let bound = |field: &'static str, n: usize, max: usize| {
            if n > max {
                Err(DrillError::Format(crate::signed::field(
                    field,
                    format!("has {n} entries; at most {max} are allowed"),
                )))
            } else {
                Ok(())
            }
        };
        if self.scenario.len() > super::scenario::MAX_SCENARIO_LEN {
            return Err(DrillError::Format(crate::signed::field("scenario", "is over 256 KiB")));
        }
        if self.checkpoint.len() > pocnet_crypto::note::MAX_NOTE_LEN || self.directory_vkey.len() > 1024 {
            return Err(DrillError::Format(crate::signed::field(
                "directory",
                "checkpoint or verifier key too long",
            )));
        }
        bound("log leaves", self.log_leaves.len(), MAX_LOG_LEAVES)?;
        bound("participants", self.participants.len(), MAX_TARGETS)?;
        bound("alerts", self.alerts.len(), MAX_DRILL_ALERTS)?;
        bound("messages", self.messages.len(), MAX_DRILL_MESSAGES)?;
        bound("rounds", self.rounds.len(), MAX_DRILL_ROUNDS)?;
        bound("events", self.events.len(), MAX_DRILL_EVENTS)?;
        for a in &self.alerts {
            bound("alert envelope", a.envelope.len(), MAX_DRILL_ENVELOPE)?;
            bound("alert plan", a.plan.len(), MAX_PLAN_LEN)?;
            bound("alert receipts", a.receipts.len(), MAX_RECEIPTS)?;
        }
        for m in &self.messages {
            bound("message envelope", m.envelope.len(), MAX_DRILL_ENVELOPE)?;
            bound("message receipts", m.receipts.len(), MAX_RECEIPTS)?;
        }
        for r in &self.rounds {
            bound("round bundle", r.len(), MAX_BUNDLE_LEN)?;
        }
        for (i, e) in self.events.iter().enumerate() {
            crate::signed::text("event text", &e.text, 0, MAX_EVENT_TEXT, false).map_err(|e| DrillError::Event {
                index: i + 1,
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// The record's scenario, parsed.
    pub fn parsed_scenario(&self) -> Result<Scenario, DrillError> {
        Scenario::parse(&self.scenario).map_err(DrillError::Scenario)
    }

    /// The postcard body bytes (unsigned; what [`DrillBundle::sign`] signs).
    pub fn encode_body(&self) -> Result<Vec<u8>, DrillError> {
        encode(WHAT, self).map_err(DrillError::Format)
    }
}

/// What the directory log says about keys and handles, gathered while it is verified.
#[derive(Default)]
struct LogFacts {
    /// Key → every POC handle it held.
    handles_of: HashMap<[u8; 32], Vec<String>>,
    /// Handle → every key that held it, in the order first listed with it.
    keys_of: HashMap<String, Vec<[u8; 32]>>,
    /// Key → `confirmed_ms` as of the last leaf not after the drill's start.
    confirmed_at_start: HashMap<[u8; 32], u64>,
    /// POC handle → key, as listed by the leaves not after the drill's start.
    listed_at_start: BTreeMap<String, [u8; 32]>,
}

impl LogFacts {
    fn state_of(&self, key: &[u8; 32]) -> Option<String> {
        self.handles_of
            .get(key)
            .and_then(|h| h.first())
            .and_then(|h| poc_handle(h))
            .map(|(s, _)| s)
    }
}

fn log_facts(
    vkey: &str,
    checkpoint: &str,
    leaves: &[Vec<u8>],
    started_ms: u64,
) -> Result<(LogState, LogFacts), DrillError> {
    let anchor = Anchor::from_vkey(vkey).map_err(|e| DrillError::Directory(e.to_string()))?;
    let note = SignedNote::parse(checkpoint).map_err(|e| DrillError::Directory(format!("checkpoint: {e}")))?;
    let mut facts = LogFacts::default();
    let state = LogState::verify_all_observed(&anchor, leaves, &note, &mut |a, dir| {
        if a.time_ms <= started_ms {
            for (h, k) in &a.handle_moves {
                if poc_handle(h).is_none() {
                    continue;
                }
                match k {
                    Some(k) => facts.listed_at_start.insert(h.clone(), *k.as_bytes()),
                    None => facts.listed_at_start.remove(h),
                };
            }
        }
        let mut touched = a.added.clone();
        touched.extend(a.updated);
        touched.extend(a.handle_moves.iter().filter_map(|(_, k)| *k));
        for k in touched {
            let Some(p) = dir.by_key(&k) else { continue };
            let h = p.handle_text();
            let kb = *k.as_bytes();
            let hs = facts.handles_of.entry(kb).or_default();
            if !hs.contains(&h) {
                hs.push(h.clone());
            }
            let ks = facts.keys_of.entry(h).or_default();
            if !ks.contains(&kb) {
                ks.push(kb);
            }
            if a.time_ms <= started_ms {
                facts.confirmed_at_start.insert(kb, p.confirmed_ms);
            }
        }
    })
    .map_err(|e| DrillError::Directory(e.to_string()))?;
    Ok((state, facts))
}

/// `stale` and `rotated_to` of a participant, from the log.
fn participant_facts(p: &Participant, facts: &LogFacts, started_ms: u64) -> Result<(bool, Vec<[u8; 32]>), String> {
    let listed = facts
        .keys_of
        .get(&p.handle)
        .and_then(|ks| ks.iter().position(|k| k == &p.key))
        .ok_or_else(|| "its key was never listed with that handle in the directory log".to_string())?;
    let rotated = facts.keys_of[&p.handle][listed + 1..].to_vec();
    let stale = facts
        .confirmed_at_start
        .get(&p.key)
        .is_some_and(|c| started_ms.saturating_sub(*c) > STALE_AFTER_MS);
    Ok((stale, rotated))
}

fn hex(b: &[u8]) -> String {
    pocnet_crypto::to_hex(b)
}

/// Verifies one envelope: signature (by `sender` when known), EXERCISE flag, content type.
fn check_envelope(
    envelope: &[u8],
    sender: Option<&IdentityKey>,
    content: ContentType,
    what: &str,
) -> Result<(Header, [u8; 32]), DrillError> {
    let r = match sender {
        Some(s) => pocnet_crypto::verify_from(envelope, s),
        None => pocnet_crypto::verify(envelope),
    };
    let (header, hash) = r.map_err(|e| DrillError::Builder(format!("{what}: the envelope does not verify: {e}")))?;
    if !header.exercise {
        return Err(DrillError::NotExercise { what: what.to_string() });
    }
    if header.content_type != content {
        return Err(DrillError::Builder(format!(
            "{what}: the envelope is of content type {:?}, not {content:?}",
            header.content_type
        )));
    }
    Ok((header, hash))
}

/// Checks the receipts about one envelope; `name` maps a key to a handle for errors.
fn check_receipts(
    of: &str,
    header: &Header,
    envelope_hash: &[u8; 32],
    receipts: &[Vec<u8>],
    name: &dyn Fn(&[u8; 32]) -> String,
) -> Result<(), DrillError> {
    let recipients: HashSet<[u8; 32]> = header.recipients.iter().map(|r| r.key).collect();
    let mut seen = HashSet::new();
    for (i, r) in receipts.iter().enumerate() {
        let fail = |signer: String, reason: String| DrillError::Receipt {
            of: of.to_string(),
            index: i + 1,
            signer,
            reason,
        };
        let f = receipt_fields(r).ok_or_else(|| fail("?".into(), "it is not a receipt".into()))?;
        let who = name(&f.signer);
        if !recipients.contains(&f.signer) {
            return Err(fail(who, "it is signed by a key that is not a recipient".into()));
        }
        let key = IdentityKey::from_bytes(&f.signer).map_err(|_| fail(who.clone(), "invalid signer key".into()))?;
        Receipt::verify(r, &key).map_err(|e| fail(who.clone(), format!("the signature does not verify: {e}")))?;
        if f.message_id != header.message_id || &f.envelope_hash != envelope_hash {
            return Err(fail(who, "it is about another envelope".into()));
        }
        if &f.sender != header.sender.as_bytes() {
            return Err(fail(who, "it names another sender".into()));
        }
        if !seen.insert((f.signer, f.kind)) {
            return Err(fail(
                who,
                format!("a second {} receipt by the same key", f.kind.as_str()),
            ));
        }
    }
    Ok(())
}

/// Verifies a drill record and recomputes its after-action report.
///
/// In order (the first failure is the answer; each names the piece at fault): the file
/// (bound, version, canonical, the controller's signature); the scenario parses; with
/// `expected_vkey`, the record is for that directory; the directory log verifies against its
/// vkey and checkpoint (`LogState::verify_all`) and the controller is the Secretariat in
/// force at the checkpoint; start ≤ end; every participant is unique, was listed in the log
/// with its handle, its `stale` flag and rotated keys are what the log says, and the
/// participants are exactly the scenario's roster (keys and profiles) over the directory as
/// it stood at `started_ms` (the leaves whose time is not after it); then every alert (envelope signed by the plan's signer, EXERCISE, content
/// type Alert, plan bound to the envelope's id and hash, plan as the matching inject
/// prescribes, recipients as planned, relay acceptance, receipts), every message (likewise,
/// without a plan), every round (`verify_bundle`, signed by the controller, for this
/// directory, the matching inject's request, targets that are participants).
pub fn verify_drill(bytes: &[u8], expected_vkey: Option<&str>) -> Result<(DrillBundle, AfterAction), DrillError> {
    let (b, controller) = DrillBundle::open(bytes)?;
    let scenario = b.parsed_scenario()?;
    if let Some(v) = expected_vkey {
        if v.trim() != b.directory_vkey.trim() {
            return Err(DrillError::VkeyMismatch {
                expected: v.trim().to_string(),
                found: b.directory_vkey.clone(),
            });
        }
    }
    let (log, facts) = log_facts(&b.directory_vkey, &b.checkpoint, &b.log_leaves, b.started_ms)?;
    if log.directory().secretariat() != &controller {
        return Err(DrillError::ControllerNotSecretariat {
            controller: hex(controller.as_bytes()),
        });
    }
    if b.ended_ms < b.started_ms {
        return Err(DrillError::Times(format!(
            "it ends ({}) before it starts ({})",
            b.ended_ms, b.started_ms
        )));
    }
    check_participants(&b, &scenario, &facts)?;
    let relay = IdentityKey::from_bytes(&b.relay_key).map_err(|_| DrillError::RelayKey)?;
    let handle_of = |k: &[u8; 32]| -> String {
        facts
            .handles_of
            .get(k)
            .and_then(|h| h.last().cloned())
            .unwrap_or_else(|| hex(k))
    };
    let in_window = |t: u64| t + CLOCK_SKEW_MS >= b.started_ms && t <= b.ended_ms.saturating_add(CLOCK_SKEW_MS);
    let participant = |h: &str| b.participants.iter().find(|p| p.handle == h);

    // Alerts.
    let alert_injects = scenario.alert_injects();
    if b.alerts.len() > alert_injects.len() {
        return Err(DrillError::Alert {
            index: alert_injects.len() + 1,
            alert: "?".into(),
            reason: format!("the scenario has only {} alert injects", alert_injects.len()),
        });
    }
    // Inject index → (message id, sender key) of the alerts verified so far.
    let mut sent: HashMap<usize, ([u8; 16], [u8; 32])> = HashMap::new();
    let mut ids = HashSet::new();
    for (k, a) in b.alerts.iter().enumerate() {
        let index = k + 1;
        let fail = |alert: String, reason: String| DrillError::Alert { index, alert, reason };
        let sp = SignedPlan::parse(&a.plan, None).map_err(|e| fail("?".into(), format!("the plan is invalid: {e}")))?;
        let plan = sp.plan();
        let id_hex = hex(&plan.alert);
        let what = format!("alert {index} ({id_hex})");
        let (header, env_hash) =
            check_envelope(&a.envelope, Some(sp.signer()), ContentType::Alert, &what).map_err(|e| match e {
                DrillError::Builder(r) => fail(id_hex.clone(), r.trim_start_matches(&format!("{what}: ")).to_string()),
                e => e,
            })?;
        if header.message_id != plan.alert || env_hash != plan.envelope_hash {
            return Err(fail(
                id_hex,
                "the plan is not bound to this envelope (another message id or envelope hash)".into(),
            ));
        }
        if !ids.insert(plan.alert) {
            return Err(fail(id_hex, "the same alert appears twice".into()));
        }
        let sender = *sp.signer().as_bytes();
        let inject_ix = alert_injects[k];
        let inject = &scenario.injects[inject_ix];
        let recipients: BTreeSet<[u8; 32]> = header.recipients.iter().map(|r| r.key).collect();
        match (&inject.kind, &plan.kind) {
            (
                InjectKind::Alert(ai),
                PlanKind::Escalate {
                    ack_within_ms,
                    repeats,
                    states,
                },
            ) => {
                let from = participant(&ai.from)
                    .ok_or_else(|| fail(id_hex.clone(), "its sender is not a participant".into()))?;
                if !from.has_key(&sender) {
                    return Err(fail(
                        id_hex,
                        format!("it is not signed by {}, the inject's sender", ai.from),
                    ));
                }
                if *ack_within_ms != scenario.to_real_ms(ai.window_ms) || *repeats != ai.repeats {
                    return Err(fail(id_hex, "its window or repeats differ from the scenario's".into()));
                }
                let want = scenario
                    .alert_states(inject_ix, &b.participants)
                    .map_err(DrillError::Scenario)?;
                let have: Vec<String> = states.iter().map(|s| s.state.clone()).collect();
                let mut have_sorted = have.clone();
                have_sorted.sort();
                if have_sorted != want {
                    return Err(fail(id_hex, "its plan targets other states than the scenario's".into()));
                }
                let mut planned = BTreeSet::new();
                for s in states {
                    for key in s.ranks.iter().flatten() {
                        if !b.participants.iter().any(|p| p.state == s.state && p.has_key(key)) {
                            return Err(fail(
                                id_hex,
                                format!(
                                    "its plan lists {} under {}, not a participant of that state",
                                    handle_of(key),
                                    s.state
                                ),
                            ));
                        }
                        planned.insert(*key);
                    }
                }
                if planned != recipients {
                    return Err(fail(id_hex, "the envelope's recipients are not the plan's keys".into()));
                }
            }
            (InjectKind::Update(f) | InjectKind::AllClear(f), PlanKind::FollowUp { of, stop }) => {
                let (of_id, of_sender) = sent
                    .get(&f.of)
                    .ok_or_else(|| fail(id_hex.clone(), "it follows an alert the record does not hold".into()))?;
                if of != of_id {
                    return Err(fail(id_hex, "it follows another alert than the scenario's".into()));
                }
                if &sender != of_sender {
                    return Err(fail(id_hex, "it is not signed by the alert's sender".into()));
                }
                if *stop != matches!(inject.kind, InjectKind::AllClear(_)) {
                    return Err(fail(
                        id_hex,
                        "an all-clear must stop the escalation and an update must not".into(),
                    ));
                }
                if let Some(r) = recipients.iter().find(|r| !b.participants.iter().any(|p| p.has_key(r))) {
                    return Err(fail(id_hex, format!("recipient {} is not a participant", handle_of(r))));
                }
            }
            _ => {
                return Err(fail(
                    id_hex,
                    format!(
                        "the scenario's alert inject {index} is a {}, but this plan is not",
                        inject.kind.word()
                    ),
                ))
            }
        }
        verify_acceptance(&relay, &env_hash, a.stored_at_ms, &a.proof)
            .map_err(|e| fail(id_hex.clone(), format!("the relay's acceptance is invalid: {e}")))?;
        if !in_window(a.stored_at_ms) {
            return Err(fail(id_hex, "the relay accepted it outside the drill".into()));
        }
        check_receipts(&what, &header, &env_hash, &a.receipts, &handle_of)?;
        sent.insert(inject_ix, (plan.alert, sender));
    }

    // Messages.
    let message_injects = scenario.message_injects();
    if b.messages.len() > message_injects.len() {
        return Err(DrillError::Message {
            index: message_injects.len() + 1,
            id: "?".into(),
            reason: format!("the scenario has only {} message injects", message_injects.len()),
        });
    }
    for (k, m) in b.messages.iter().enumerate() {
        let index = k + 1;
        let InjectKind::Message(mi) = &scenario.injects[message_injects[k]].kind else {
            unreachable!("message_injects lists messages")
        };
        let from = participant(&mi.from).ok_or_else(|| DrillError::Message {
            index,
            id: "?".into(),
            reason: "its sender is not a participant".into(),
        })?;
        let claimed = pocnet_crypto::claimed_sender(&m.envelope).map_err(|e| DrillError::Message {
            index,
            id: "?".into(),
            reason: format!("the envelope does not parse: {e}"),
        })?;
        let what = format!("message {index}");
        let (header, env_hash) =
            check_envelope(&m.envelope, Some(&claimed), ContentType::Message, &what).map_err(|e| match e {
                DrillError::Builder(r) => DrillError::Message {
                    index,
                    id: "?".into(),
                    reason: r.trim_start_matches(&format!("{what}: ")).to_string(),
                },
                e => e,
            })?;
        let id = hex(&header.message_id);
        let fail = |reason: String| DrillError::Message {
            index,
            id: id.clone(),
            reason,
        };
        if !from.has_key(header.sender.as_bytes()) {
            return Err(fail(format!("it is not signed by {}, the inject's sender", mi.from)));
        }
        if let Some(r) = header
            .recipients
            .iter()
            .find(|r| !b.participants.iter().any(|p| p.has_key(&r.key)))
        {
            return Err(fail(format!("recipient {} is not a participant", handle_of(&r.key))));
        }
        verify_acceptance(&relay, &env_hash, m.stored_at_ms, &m.proof)
            .map_err(|e| fail(format!("the relay's acceptance is invalid: {e}")))?;
        if !in_window(m.stored_at_ms) {
            return Err(fail("the relay accepted it outside the drill".into()));
        }
        if !ids.insert(header.message_id) {
            return Err(fail("the same envelope appears twice".into()));
        }
        check_receipts(
            &format!("message {index} ({id})"),
            &header,
            &env_hash,
            &m.receipts,
            &handle_of,
        )?;
    }

    // Rounds.
    let round_injects = scenario.round_injects();
    if b.rounds.len() > round_injects.len() {
        return Err(DrillError::Round {
            index: round_injects.len() + 1,
            reason: format!(
                "the scenario has only {} question and round injects",
                round_injects.len()
            ),
        });
    }
    let mut round_ids = HashSet::new();
    for (k, bytes) in b.rounds.iter().enumerate() {
        let index = k + 1;
        let fail = |reason: String| DrillError::Round { index, reason };
        let (rb, _) = verify_bundle(bytes).map_err(|e| fail(e.to_string()))?;
        let sec = secretariat_of(&rb).map_err(|e| fail(e.to_string()))?;
        if sec != controller {
            return Err(fail("its manifest is not signed by the drill controller".into()));
        }
        let ch = rb.challenge().map_err(|e| fail(e.to_string()))?;
        if ch.origin != log.directory().origin() {
            return Err(fail("it is for another directory".into()));
        }
        if !round_ids.insert(rb.round_id) {
            return Err(fail("the same round appears twice".into()));
        }
        match (&scenario.injects[round_injects[k]].kind, &ch.request) {
            (InjectKind::Question(r), Request::Question(q)) if r.question.as_deref() == Some(q.as_str()) => {}
            (InjectKind::Round(_), Request::ConfirmDetails) => {}
            (kind, _) => {
                return Err(fail(format!(
                    "its request is not the scenario's {} inject {index}",
                    kind.word()
                )))
            }
        }
        if !in_window(ch.started_ms) {
            return Err(fail("it started outside the drill".into()));
        }
        for t in &rb.targets {
            if !b
                .participants
                .iter()
                .any(|p| p.handle == t.target.handle && p.has_key(&t.target.key))
            {
                return Err(fail(format!(
                    "target {} is not a participant with that key",
                    t.target.handle
                )));
            }
        }
    }

    let mut report = AfterAction::compute(&b)?;
    report.verified = true;
    report.controller = Some(hex(controller.as_bytes()));
    report.directory_pinned = expected_vkey.is_some();
    Ok((b, report))
}

fn check_participants(b: &DrillBundle, scenario: &Scenario, facts: &LogFacts) -> Result<(), DrillError> {
    let mut keys = HashSet::new();
    let mut handles = HashSet::new();
    for p in &b.participants {
        let fail = |reason: String| DrillError::Participant {
            handle: p.handle.clone(),
            reason,
        };
        match poc_handle(&p.handle) {
            Some((s, r)) if s == p.state && r == p.rank => {}
            _ => return Err(fail("its state or rank does not agree with its handle".into())),
        }
        if !handles.insert(p.handle.as_str()) {
            return Err(fail("it appears twice".into()));
        }
        for k in std::iter::once(&p.key).chain(&p.rotated_to) {
            if !keys.insert(*k) {
                return Err(fail(format!("key {} appears twice", hex(k))));
            }
        }
        let (stale, rotated) = participant_facts(p, facts, b.started_ms).map_err(fail)?;
        if stale != p.stale {
            return Err(fail(format!(
                "it is marked {}stale, but the directory log says otherwise",
                if p.stale { "" } else { "not " }
            )));
        }
        if rotated != p.rotated_to {
            return Err(fail("its rotated keys are not the ones the directory log lists".into()));
        }
        if facts.state_of(&p.key).as_deref() != Some(p.state.as_str()) {
            return Err(fail("its key is listed for another state".into()));
        }
    }
    // The participants are the scenario's roster over the directory at the drill's start
    // (every leaf whose time is not after `started_ms`), with the scenario's profiles.
    let entries: Vec<RosterEntry> = facts
        .listed_at_start
        .iter()
        .filter_map(|(h, k)| {
            poc_handle(h).map(|(state, rank)| RosterEntry {
                handle: h.clone(),
                state,
                rank,
                key: *k,
            })
        })
        .collect();
    let roster = scenario.roster(&entries).map_err(|e| DrillError::Participant {
        handle: "?".into(),
        reason: format!("the scenario's roster over the directory at the drill's start fails: {e}"),
    })?;
    let by_handle: BTreeMap<&str, &Participant> = roster.iter().map(|p| (p.handle.as_str(), p)).collect();
    for p in &b.participants {
        let fail = |reason: String| DrillError::Participant {
            handle: p.handle.clone(),
            reason,
        };
        match by_handle.get(p.handle.as_str()) {
            None => {
                return Err(fail(
                    "the scenario does not select it from the directory at the drill's start".into(),
                ))
            }
            Some(r) if r.key != p.key => {
                return Err(fail(
                    "another key held its handle in the directory at the drill's start".into(),
                ))
            }
            Some(r) if r.profile != p.profile => {
                return Err(fail(format!(
                    "its profile is {}, but the scenario gives {}",
                    p.profile, r.profile
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(r) = roster.iter().find(|r| !handles.contains(r.handle.as_str())) {
        return Err(DrillError::Participant {
            handle: r.handle.clone(),
            reason: "the scenario selects it (listed at the drill's start), but the record leaves it out".into(),
        });
    }
    Ok(())
}

/// Assembles a drill record on the controller's side from the runner's records, checking
/// each piece as it comes (an envelope without the EXERCISE flag is refused at once).
///
/// The k-th `add_alert` must be the scenario's k-th alert / update / all-clear inject, the
/// k-th `add_message` its k-th message inject, the k-th `add_round` its k-th question or
/// round inject (the runner carries injects out in order).
pub struct DrillBundleBuilder {
    bundle: DrillBundle,
    scenario: Scenario,
    directory_set: bool,
}

impl DrillBundleBuilder {
    /// A record of the drill of `scenario_text` that started at `started_ms` (Unix ms) with
    /// these participants (from [`Scenario::roster`]), whose envelopes `relay` accepts.
    pub fn new(
        scenario_text: &str,
        relay: &IdentityKey,
        started_ms: u64,
        participants: Vec<Participant>,
    ) -> Result<Self, DrillError> {
        let scenario = Scenario::parse(scenario_text).map_err(DrillError::Scenario)?;
        Ok(DrillBundleBuilder {
            bundle: DrillBundle {
                version: DRILL_VERSION,
                scenario: scenario_text.to_string(),
                directory_vkey: String::new(),
                checkpoint: String::new(),
                log_leaves: Vec::new(),
                relay_key: *relay.as_bytes(),
                started_ms,
                ended_ms: started_ms,
                ended_early: false,
                participants,
                alerts: Vec::new(),
                messages: Vec::new(),
                rounds: Vec::new(),
                events: Vec::new(),
            },
            scenario,
            directory_set: false,
        })
    }

    /// The scenario, parsed.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The directory as it stands at the drill's end: the Secretariat's verifier key, the
    /// checkpoint note over every leaf, and every leaf from Genesis. Call it (again) before
    /// [`DrillBundleBuilder::finish`]; it fills in each participant's `stale` flag and
    /// rotated keys from the log, and checks the participants as [`verify_drill`] will (the
    /// scenario's roster over the directory at the start, with the scenario's profiles).
    pub fn directory(&mut self, vkey: &str, checkpoint: &str, leaves: Vec<Vec<u8>>) -> Result<(), DrillError> {
        let (_, facts) = log_facts(vkey, checkpoint, &leaves, self.bundle.started_ms)?;
        for p in &mut self.bundle.participants {
            let (stale, rotated) =
                participant_facts(p, &facts, self.bundle.started_ms).map_err(|reason| DrillError::Participant {
                    handle: p.handle.clone(),
                    reason,
                })?;
            p.stale = stale;
            p.rotated_to = rotated;
        }
        // What the verifier will check of the participants, checked now.
        check_participants(&self.bundle, &self.scenario, &facts)?;
        self.bundle.directory_vkey = vkey.trim().to_string();
        self.bundle.checkpoint = checkpoint.to_string();
        self.bundle.log_leaves = leaves;
        self.directory_set = true;
        Ok(())
    }

    fn receipts_of(&mut self, id: &[u8; 16]) -> Option<&mut Vec<Vec<u8>>> {
        for a in &mut self.bundle.alerts {
            if receipt_target(&a.envelope) == Some(*id) {
                return Some(&mut a.receipts);
            }
        }
        for m in &mut self.bundle.messages {
            if receipt_target(&m.envelope) == Some(*id) {
                return Some(&mut m.receipts);
            }
        }
        None
    }

    /// Adds an alert, update or all-clear envelope with its signed plan and the relay's
    /// acceptance. Refused if the envelope does not verify under the plan's signer, is not
    /// marked EXERCISE, is not content type Alert, or the plan is not bound to it. Returns
    /// the alert's message id.
    pub fn add_alert(
        &mut self,
        envelope: Vec<u8>,
        plan: Vec<u8>,
        stored_at_ms: u64,
        proof: AcceptProof,
    ) -> Result<[u8; 16], DrillError> {
        let index = self.bundle.alerts.len() + 1;
        if index > MAX_DRILL_ALERTS {
            return Err(DrillError::Builder("too many alerts".into()));
        }
        let sp = SignedPlan::parse(&plan, None).map_err(|e| DrillError::Alert {
            index,
            alert: "?".into(),
            reason: format!("the plan is invalid: {e}"),
        })?;
        let what = format!("alert {index} ({})", hex(&sp.plan().alert));
        let (h, hash) = check_envelope(&envelope, Some(sp.signer()), ContentType::Alert, &what)?;
        if h.message_id != sp.plan().alert || hash != sp.plan().envelope_hash {
            return Err(DrillError::Builder(format!(
                "{what}: the plan is not bound to this envelope"
            )));
        }
        self.bundle.alerts.push(AlertEvidence {
            envelope,
            plan,
            stored_at_ms,
            proof,
            receipts: Vec::new(),
        });
        Ok(h.message_id)
    }

    /// Adds a message envelope with the relay's acceptance. Refused if it does not verify,
    /// is not marked EXERCISE or is not content type Message. Returns its message id.
    pub fn add_message(
        &mut self,
        envelope: Vec<u8>,
        stored_at_ms: u64,
        proof: AcceptProof,
    ) -> Result<[u8; 16], DrillError> {
        let index = self.bundle.messages.len() + 1;
        if index > MAX_DRILL_MESSAGES {
            return Err(DrillError::Builder("too many messages".into()));
        }
        let (h, _) = check_envelope(&envelope, None, ContentType::Message, &format!("message {index}"))?;
        self.bundle.messages.push(MessageEvidence {
            envelope,
            stored_at_ms,
            proof,
            receipts: Vec::new(),
        });
        Ok(h.message_id)
    }

    /// Adds a signed receipt about the alert or message `message_id` (added before). The
    /// signature is checked; of two receipts of one kind by one key the earlier is kept.
    pub fn add_receipt(&mut self, message_id: [u8; 16], receipt: Vec<u8>) -> Result<(), DrillError> {
        let f = receipt_fields(&receipt).ok_or_else(|| DrillError::Builder("not a receipt".into()))?;
        let key =
            IdentityKey::from_bytes(&f.signer).map_err(|_| DrillError::Builder("receipt signer invalid".into()))?;
        Receipt::verify(&receipt, &key).map_err(|e| DrillError::Builder(format!("receipt: {e}")))?;
        if f.message_id != message_id {
            return Err(DrillError::Builder("the receipt is about another message".into()));
        }
        let list = self
            .receipts_of(&message_id)
            .ok_or_else(|| DrillError::Builder(format!("no alert or message {} was added", hex(&message_id))))?;
        match list
            .iter()
            .position(|r| receipt_fields(r).is_some_and(|g| g.signer == f.signer && g.kind == f.kind))
        {
            Some(i) => {
                if receipt_fields(&list[i]).is_some_and(|g| f.at_ms < g.at_ms) {
                    list[i] = receipt;
                }
            }
            None => {
                if list.len() >= MAX_RECEIPTS {
                    return Err(DrillError::Builder("too many receipts".into()));
                }
                list.push(receipt)
            }
        }
        Ok(())
    }

    /// Adds a round's bundle file (§13.5), as `pocnet round bundle` writes it.
    pub fn add_round(&mut self, bundle: Vec<u8>) -> Result<(), DrillError> {
        let index = self.bundle.rounds.len() + 1;
        Bundle::parse(&bundle).map_err(|e| DrillError::Round {
            index,
            reason: e.to_string(),
        })?;
        if index > MAX_DRILL_ROUNDS {
            return Err(DrillError::Builder("too many rounds".into()));
        }
        self.bundle.rounds.push(bundle);
        Ok(())
    }

    /// Logs a note at `at_ms` (shown as unsigned).
    pub fn event(&mut self, at_ms: u64, text: &str) -> Result<(), DrillError> {
        self.event_kind(at_ms, DrillEventKind::Note, text)
    }

    /// Logs an event of `kind` at `at_ms` (shown as unsigned). Control and text-direction
    /// characters are refused; text over 1,000 bytes is cut at a character boundary.
    pub fn event_kind(&mut self, at_ms: u64, kind: DrillEventKind, text: &str) -> Result<(), DrillError> {
        let index = self.bundle.events.len() + 1;
        if index > MAX_DRILL_EVENTS {
            return Err(DrillError::Builder("too many events".into()));
        }
        let mut t = text.to_string();
        if t.len() > MAX_EVENT_TEXT {
            let mut cut = MAX_EVENT_TEXT;
            while !t.is_char_boundary(cut) {
                cut -= 1;
            }
            t.truncate(cut);
        }
        crate::signed::text("event text", &t, 0, MAX_EVENT_TEXT, false).map_err(|e| DrillError::Event {
            index,
            reason: e.to_string(),
        })?;
        self.bundle.events.push(DrillEvent { at_ms, kind, text: t });
        Ok(())
    }

    /// The record as it stands (unsigned), e.g. for a live report.
    pub fn bundle(&self) -> &DrillBundle {
        &self.bundle
    }

    /// Ends the record at `ended_ms` and signs it with the controller's identity (the
    /// Secretariat). Returns the file bytes. Events are sorted by time (stably).
    pub fn finish(mut self, controller: &Identity, ended_ms: u64, ended_early: bool) -> Result<Vec<u8>, DrillError> {
        if !self.directory_set {
            return Err(DrillError::Builder(
                "call directory() with the log at the drill's end first".into(),
            ));
        }
        if ended_ms < self.bundle.started_ms {
            return Err(DrillError::Times("the drill cannot end before it starts".into()));
        }
        self.bundle.ended_ms = ended_ms;
        self.bundle.ended_early = ended_early;
        self.bundle.events.sort_by_key(|e| e.at_ms);
        self.bundle.sign(controller)
    }
}

/// The message id of an envelope (its header's bytes 18..34 after the 5-byte prefix), for
/// matching receipts; no check.
fn receipt_target(envelope: &[u8]) -> Option<[u8; 16]> {
    envelope.get(5 + 2..5 + 18)?.try_into().ok()
}
