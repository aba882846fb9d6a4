//! The round bundle: everything a state needs to re-verify a round and recompute its report,
//! in one postcard file (`pocnet round bundle` writes it, `pocnet round verify` reads it).
//!
//! Why postcard and not JSON: every other signed pocnet format is postcard, so the bundle
//! carries signed objects (answers, outcomes, the manifest, receipts) as their exact bytes
//! without a second encoding; postcard has one canonical encoding, which the parser
//! enforces, so a bundle has exactly one byte form; and hashes, keys and signatures stay raw
//! bytes instead of hex or base64 strings with their own ambiguities. The *report* is the
//! human- and tool-readable output, in JSON among others.
//!
//! What the verifier can and cannot prove:
//! - every answer is signed by its target's key, for this round and that target's
//!   challenge (a forged, moved or replayed answer fails);
//! - every challenge and answer envelope hash carries the relay's signed acceptance time,
//!   and timing uses only those times, so nobody without the relay key can back-date;
//! - the Secretariat's signed manifest lists every target and the hash of its answer and
//!   outcome, so removing, adding or altering one after the Secretariat signed fails;
//! - it cannot open envelopes, so that an answer's envelope (named by hash) carried that
//!   answer is the Secretariat's word, bound by its manifest signature; and a Secretariat
//!   that leaves out an answer before signing is caught only by the POC holding its own
//!   acceptance proof.

use std::collections::{BTreeMap, HashSet};

use pocnet_crypto::note::{NoteVerifier, SignedNote, MAX_NOTE_LEN};
use pocnet_crypto::{Identity, IdentityKey, Receipt, ReceiptKind};
use pocnet_wire::accept::{self, AcceptProof, MAX_GROUP, RELAY_ACCEPT_ROOT};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::format::{
    field, sha256, text, Challenge, Manifest, ManifestEntry, RoundError, RoundId, SignedAnswer, SignedManifest,
    SignedOutcome, MAX_ANSWER_LEN, MAX_OUTCOME_LEN, MAX_TARGETS, ROUND_VERSION,
};
use super::report::Report;
use crate::directory::entry::{MAX_HANDLE, MAX_NAME};
use crate::directory::{Category, Handle, Poc, Rank};

/// Largest bundle file, in bytes.
pub const MAX_BUNDLE_LEN: usize = 64 * 1024 * 1024;

/// A target as the directory listed it when the round started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Its handle, such as `CL.primary`.
    pub handle: String,
    /// The contact's name as listed (for the report; party text, escaped wherever shown).
    pub name: String,
    /// Its identity key.
    pub key: [u8; 32],
    /// Its state (ISO 3166-1 alpha-2), as in the handle.
    pub state: String,
    /// Its category, as in the handle.
    pub category: Category,
    /// Its rank, as in the handle.
    pub rank: Rank,
    /// Its record was stale (not confirmed for over 365 days) at the start.
    pub stale: bool,
}

impl Target {
    /// The snapshot of a listed POC at `now_ms`.
    pub fn from_poc(poc: &Poc, now_ms: u64) -> Self {
        let (category, rank) = poc.category_rank();
        Target {
            handle: poc.handle_text(),
            name: poc.contact.name.clone(),
            key: *poc.key.as_bytes(),
            state: poc.state().to_string(),
            category,
            rank,
            stale: poc.is_stale(now_ms),
        }
    }

    /// Checks that the handle is a POC handle and agrees with state, category and rank.
    pub fn check(&self) -> Result<(), RoundError> {
        text("handle", &self.handle, 1, MAX_HANDLE, false)?;
        text("name", &self.name, 0, MAX_NAME, false)?;
        match self.handle.parse::<Handle>() {
            Ok(Handle::Poc { state, category, rank })
                if state == self.state && category == self.category && rank == self.rank =>
            {
                Ok(())
            }
            Ok(Handle::Poc { .. }) => Err(field("target", "state, category or rank disagree with the handle")),
            _ => Err(field("target", format!("{:?} is not a POC handle", self.handle))),
        }
    }
}

/// The relay's signed acceptance of one envelope: when it stored it, and the proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// When the relay stored the envelope (Unix ms, the relay's clock).
    pub stored_at_ms: u64,
    /// The relay's proof over `(envelope hash, stored_at_ms)` (PROTOCOL.md §8.2).
    pub proof: AcceptProof,
}

/// An answer in pocnet: the signed answer, and the relay's acceptance of its envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// The exact [`SignedAnswer`] bytes (the envelope's plaintext).
    pub signed: Vec<u8>,
    /// SHA-256 of the answer envelope, as the relay accepted it.
    pub envelope_hash: [u8; 32],
    /// The relay's acceptance of that envelope.
    pub accepted: Acceptance,
}

/// Everything the bundle holds about one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// The target at the round's start.
    pub target: Target,
    /// The message id of its challenge envelope.
    pub challenge_id: [u8; 16],
    /// SHA-256 of its challenge envelope.
    pub challenge_envelope: [u8; 32],
    /// The relay's acceptance of the challenge envelope.
    pub challenge_accepted: Acceptance,
    /// A `Delivered` receipt from the POC about the challenge envelope (exact bytes), if one
    /// came back.
    pub delivered: Option<Vec<u8>>,
    /// Its answer in pocnet, if any.
    pub answer: Option<AnswerRecord>,
    /// How many reminders the relay released to it (the Secretariat's record).
    pub reminders_released: u8,
    /// The Secretariat's [`SignedOutcome`] bytes, if it answered outside pocnet.
    pub outcome: Option<Vec<u8>>,
}

/// What [`TargetRecord::record_hash`] hashes (postcard): the record without relay proofs,
/// with receipts as hashes and the answer as its envelope hash and acceptance time.
#[derive(Serialize)]
struct RecordCore<'a> {
    target: &'a Target,
    challenge_id: &'a [u8; 16],
    challenge_envelope: &'a [u8; 32],
    challenge_stored_at_ms: u64,
    delivered: Option<[u8; 32]>,
    answer: Option<([u8; 32], u64)>,
    reminders_released: u8,
}

impl TargetRecord {
    /// A record for a target whose challenge the relay accepted.
    pub fn new(target: Target, challenge_id: [u8; 16], challenge_envelope: [u8; 32], accepted: Acceptance) -> Self {
        TargetRecord {
            target,
            challenge_id,
            challenge_envelope,
            challenge_accepted: accepted,
            delivered: None,
            answer: None,
            reminders_released: 0,
            outcome: None,
        }
    }

    /// The manifest's `record` hash: SHA-256 of postcard of (target, challenge id, challenge
    /// envelope hash, challenge stored_at, SHA-256 of the receipt or none, (answer envelope
    /// hash, answer stored_at) or none, reminders released).
    pub fn record_hash(&self) -> [u8; 32] {
        let core = RecordCore {
            target: &self.target,
            challenge_id: &self.challenge_id,
            challenge_envelope: &self.challenge_envelope,
            challenge_stored_at_ms: self.challenge_accepted.stored_at_ms,
            delivered: self.delivered.as_deref().map(sha256),
            answer: self.answer.as_ref().map(|a| (a.envelope_hash, a.accepted.stored_at_ms)),
            reminders_released: self.reminders_released,
        };
        sha256(&postcard::to_allocvec(&core).expect("postcard encodes to a Vec"))
    }

    /// The manifest entry for this record.
    pub fn manifest_entry(&self) -> ManifestEntry {
        ManifestEntry {
            poc: self.target.key,
            record: self.record_hash(),
            answer: self.answer.as_ref().map(|a| sha256(&a.signed)),
            outcome: self.outcome.as_deref().map(sha256),
        }
    }
}

/// The bundle file: `postcard(Bundle)`, version byte first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// [`ROUND_VERSION`].
    pub version: u8,
    /// The round (equal to the challenge's).
    pub round_id: RoundId,
    /// The [`Challenge`] bytes as sent (the same plaintext to every target).
    pub challenge: Vec<u8>,
    /// The directory checkpoint note (signed by the Secretariat) the targets were taken from.
    pub checkpoint: String,
    /// The relay's identity key.
    pub relay: [u8; 32],
    /// Every target.
    pub targets: Vec<TargetRecord>,
    /// The Secretariat's [`SignedManifest`] bytes.
    pub manifest: Vec<u8>,
}

impl Bundle {
    /// The file bytes.
    pub fn encode(&self) -> Result<Vec<u8>, RoundError> {
        let b = postcard::to_allocvec(self).map_err(|e| RoundError::Decode {
            what: "bundle",
            reason: e.to_string(),
        })?;
        if b.len() > MAX_BUNDLE_LEN {
            return Err(RoundError::TooLarge {
                what: "bundle",
                len: b.len(),
                max: MAX_BUNDLE_LEN,
            });
        }
        Ok(b)
    }

    /// Parses the file's structure strictly (bound, version, canonical encoding, counts and
    /// sizes); signatures and proofs are [`verify_bundle`]'s business.
    pub fn parse(bytes: &[u8]) -> Result<Self, RoundError> {
        let what = "bundle";
        if bytes.len() > MAX_BUNDLE_LEN {
            return Err(RoundError::TooLarge {
                what,
                len: bytes.len(),
                max: MAX_BUNDLE_LEN,
            });
        }
        match bytes.first() {
            None => return Err(RoundError::TooShort { what, len: 0 }),
            Some(&v) if v != ROUND_VERSION => return Err(RoundError::Version { what, found: v }),
            _ => {}
        }
        let (b, rest) = postcard::take_from_bytes::<Bundle>(bytes).map_err(|e| RoundError::Decode {
            what,
            reason: e.to_string(),
        })?;
        if !rest.is_empty() {
            return Err(RoundError::Tail {
                what,
                len: rest.len(),
                expected: 0,
            });
        }
        if b.encode()? != bytes {
            return Err(RoundError::NonCanonical { what });
        }
        if b.targets.len() > MAX_TARGETS {
            return Err(field("bundle targets", format!("at most {MAX_TARGETS} are allowed")));
        }
        if b.checkpoint.len() > MAX_NOTE_LEN {
            return Err(field("checkpoint", "is longer than a signed note may be"));
        }
        for t in &b.targets {
            if t.answer.as_ref().is_some_and(|a| a.signed.len() > MAX_ANSWER_LEN)
                || t.outcome.as_ref().is_some_and(|o| o.len() > MAX_OUTCOME_LEN)
            {
                return Err(field("bundle target", "holds an answer or outcome over its size bound"));
            }
        }
        Ok(b)
    }

    /// The challenge, decoded and checked (no signature: the manifest signs its hash).
    pub fn challenge(&self) -> Result<Challenge, RoundError> {
        Challenge::parse(&self.challenge)
    }
}

/// Assembles a bundle on the Secretariat's side and signs its manifest.
pub struct BundleBuilder {
    challenge: Challenge,
    challenge_bytes: Vec<u8>,
    checkpoint: String,
    relay: IdentityKey,
    targets: Vec<TargetRecord>,
}

impl BundleBuilder {
    /// A bundle for `challenge`, whose targets were taken from the directory at the signed
    /// `checkpoint` note, and whose envelopes `relay` accepted.
    pub fn new(challenge: &Challenge, checkpoint: &str, relay: &IdentityKey) -> Result<Self, RoundError> {
        if challenge.reminder.is_some() {
            return Err(field("challenge", "is a reminder, not the challenge"));
        }
        Ok(BundleBuilder {
            challenge_bytes: challenge.encode()?,
            challenge: challenge.clone(),
            checkpoint: checkpoint.to_string(),
            relay: *relay,
            targets: Vec::new(),
        })
    }

    /// Adds a target's record.
    pub fn push(&mut self, record: TargetRecord) -> Result<(), RoundError> {
        if self.targets.len() >= MAX_TARGETS {
            return Err(field("bundle targets", format!("at most {MAX_TARGETS} are allowed")));
        }
        record.target.check()?;
        self.targets.push(record);
        Ok(())
    }

    /// Signs the manifest with `secretariat` at `created_ms` and returns the bundle.
    pub fn finish(self, secretariat: &Identity, created_ms: u64) -> Result<Bundle, RoundError> {
        let manifest = Manifest {
            version: ROUND_VERSION,
            round_id: self.challenge.round_id,
            challenge: sha256(&self.challenge_bytes),
            checkpoint: sha256(self.checkpoint.as_bytes()),
            relay: *self.relay.as_bytes(),
            created_ms,
            targets: self.targets.iter().map(TargetRecord::manifest_entry).collect(),
        }
        .sign(secretariat)?;
        Ok(Bundle {
            version: ROUND_VERSION,
            round_id: self.challenge.round_id,
            challenge: self.challenge_bytes,
            checkpoint: self.checkpoint,
            relay: *self.relay.as_bytes(),
            targets: self.targets,
            manifest: manifest.as_bytes().to_vec(),
        })
    }
}

/// Why a bundle failed verification. Per-target variants name the target (its handle, or
/// its key in hex when only the manifest knows it).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BundleError {
    /// The file is not a well-formed bundle.
    #[error("bundle is malformed: {0}")]
    Format(RoundError),
    /// The challenge does not parse, is a reminder, or names another round.
    #[error("bundle challenge is invalid: {0}")]
    Challenge(String),
    /// The relay key is not a valid Ed25519 key.
    #[error("bundle relay key is not a valid Ed25519 key")]
    RelayKey,
    /// The manifest does not parse or its signature does not verify.
    #[error("manifest signature is invalid: {0}")]
    ManifestSignature(RoundError),
    /// The manifest names another round, challenge, checkpoint or relay than the bundle.
    #[error("manifest does not match the bundle: {0}")]
    ManifestMismatch(&'static str),
    /// The checkpoint note does not parse, is not the Secretariat's, or names another log.
    #[error("checkpoint is invalid: {0}")]
    Checkpoint(String),
    /// The same target (key or handle) twice.
    #[error("target {target} appears twice")]
    DuplicateTarget {
        /// The target.
        target: String,
    },
    /// A target in the manifest is missing from the bundle.
    #[error("target {target} was removed: the manifest lists it")]
    TargetRemoved {
        /// The target's key, hex.
        target: String,
    },
    /// A target in the bundle is not in the manifest.
    #[error("target {target} was added: the manifest does not list it")]
    TargetAdded {
        /// The target.
        target: String,
    },
    /// A target's record (snapshot, challenge, receipt, reminders, answer envelope or time)
    /// differs from what the manifest signed.
    #[error("target {target} was altered: its record does not match the manifest")]
    TargetAltered {
        /// The target.
        target: String,
    },
    /// A target's snapshot is malformed.
    #[error("target {target}: {reason}")]
    Target {
        /// The target.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The relay's acceptance of the challenge envelope does not verify.
    #[error("target {target}: the relay's acceptance of the challenge is invalid: {reason}")]
    ChallengeAcceptance {
        /// The target.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// An answer the manifest lists is missing.
    #[error("target {target}: its answer was removed (the manifest lists one)")]
    AnswerRemoved {
        /// The target.
        target: String,
    },
    /// An answer the manifest does not list.
    #[error("target {target}: an answer was added (the manifest lists none)")]
    AnswerAdded {
        /// The target.
        target: String,
    },
    /// A validly signed answer, but not the one the manifest lists.
    #[error("target {target}: its answer was replaced (not the one the manifest lists)")]
    AnswerAltered {
        /// The target.
        target: String,
    },
    /// The answer is signed by another key than the target's.
    #[error("target {target}: the answer is signed by another key ({signer})")]
    AnswerSigner {
        /// The target.
        target: String,
        /// The key that signed, hex.
        signer: String,
    },
    /// The answer does not parse or its signature does not verify (altered).
    #[error("target {target}: the answer's signature is invalid: {reason}")]
    AnswerSignature {
        /// The target.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The answer is for another round.
    #[error("target {target}: the answer is for another round")]
    AnswerRound {
        /// The target.
        target: String,
    },
    /// The answer is to another challenge envelope than the target's.
    #[error("target {target}: the answer is to another challenge")]
    AnswerChallenge {
        /// The target.
        target: String,
    },
    /// The answer's contact update names another directory.
    #[error("target {target}: the answer's contact update is for another directory")]
    AnswerUpdate {
        /// The target.
        target: String,
    },
    /// The relay's acceptance of the answer envelope does not verify.
    #[error("target {target}: the relay's acceptance of the answer is invalid: {reason}")]
    AnswerAcceptance {
        /// The target.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The answer was accepted before its challenge was.
    #[error("target {target}: the answer was accepted at {answer_ms}, before its challenge ({challenge_ms})")]
    AnswerBeforeChallenge {
        /// The target.
        target: String,
        /// The answer's acceptance time.
        answer_ms: u64,
        /// The challenge's acceptance time.
        challenge_ms: u64,
    },
    /// The same envelope hash is used twice (a challenge or answer envelope reused).
    #[error("target {target}: an envelope hash appears twice in the bundle")]
    EnvelopeReused {
        /// The target.
        target: String,
    },
    /// The `Delivered` receipt is invalid or about another envelope.
    #[error("target {target}: the delivery receipt is invalid: {reason}")]
    Receipt {
        /// The target.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The outcome does not parse, or is not signed by the Secretariat.
    #[error("target {target}: the outcome's signature is invalid: {reason}")]
    OutcomeSignature {
        /// The target.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The outcome is for another round or POC, or is not the one the manifest lists.
    #[error("target {target}: the outcome does not match: {reason}")]
    OutcomeMismatch {
        /// The target.
        target: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// More reminders released than the round had.
    #[error("target {target}: {released} reminders released, but the round has {scheduled}")]
    Reminders {
        /// The target.
        target: String,
        /// Released.
        released: u8,
        /// Scheduled.
        scheduled: usize,
    },
}

/// Verifies relay acceptances, checking each group signature once.
struct Acceptances {
    relay: IdentityKey,
    verified: HashSet<([u8; 32], u64, [u8; 64])>,
}

impl Acceptances {
    fn check(&mut self, envelope_hash: &[u8; 32], a: &Acceptance) -> Result<(), String> {
        let p = &a.proof;
        if p.tree_size == 0 || p.tree_size > MAX_GROUP || p.path.len() > 64 {
            return Err(format!(
                "malformed proof (index {} of {}, {} path hashes)",
                p.index,
                p.tree_size,
                p.path.len()
            ));
        }
        let leaf = accept::leaf_hash(envelope_hash, a.stored_at_ms);
        let root = accept::root_from_path(&leaf, p.index, p.tree_size, &p.path)
            .ok_or_else(|| "the audit path does not fit its position".to_string())?;
        let sig: [u8; 64] = p
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| "the signature is not 64 bytes".to_string())?;
        let key = (root, p.tree_size, sig);
        if self.verified.contains(&key) {
            return Ok(());
        }
        self.relay
            .verify(
                RELAY_ACCEPT_ROOT,
                &accept::root_statement(&root, p.tree_size),
                &sig,
                "relay acceptance",
            )
            .map_err(|_| "not signed by the relay key (a changed time or envelope hash fails here)".to_string())?;
        self.verified.insert(key);
        Ok(())
    }
}

/// Verifies a bundle file: the challenge, the Secretariat's manifest signature and the
/// checkpoint it signed, and per target its snapshot, the relay's acceptances of the
/// challenge and answer envelopes (each group signature once), the POC's signature on its
/// answer (this round, its challenge), answer accepted no earlier than its challenge, the
/// delivery receipt, the outcome, and every hash the manifest lists. Then computes the
/// report. Relay acceptances in one signed group share one signature check.
///
/// The caller still compares [`SignedManifest::signer`] (returned as the bundle's
/// Secretariat via [`secretariat_of`]) and the checkpoint with its own directory.
pub fn verify_bundle(bytes: &[u8]) -> Result<(Bundle, Report), BundleError> {
    let bundle = Bundle::parse(bytes).map_err(BundleError::Format)?;
    let challenge = bundle.challenge().map_err(|e| BundleError::Challenge(e.to_string()))?;
    if challenge.reminder.is_some() {
        return Err(BundleError::Challenge("it is a reminder, not the challenge".into()));
    }
    if challenge.round_id != bundle.round_id {
        return Err(BundleError::Challenge("it names another round than the bundle".into()));
    }
    let relay = IdentityKey::from_bytes(&bundle.relay).map_err(|_| BundleError::RelayKey)?;
    let signed = SignedManifest::parse(&bundle.manifest, None).map_err(BundleError::ManifestSignature)?;
    let secretariat = *signed.signer();
    let m = signed.manifest();
    if m.round_id != bundle.round_id {
        return Err(BundleError::ManifestMismatch("it names another round"));
    }
    if m.challenge != sha256(&bundle.challenge) {
        return Err(BundleError::ManifestMismatch("it names another challenge"));
    }
    if m.checkpoint != sha256(bundle.checkpoint.as_bytes()) {
        return Err(BundleError::ManifestMismatch("it names another checkpoint"));
    }
    if m.relay != bundle.relay {
        return Err(BundleError::ManifestMismatch("it names another relay"));
    }
    check_checkpoint(&bundle.checkpoint, &challenge, &secretariat).map_err(BundleError::Checkpoint)?;

    let mut listed: BTreeMap<[u8; 32], &ManifestEntry> = BTreeMap::new();
    for e in &m.targets {
        if listed.insert(e.poc, e).is_some() {
            return Err(BundleError::DuplicateTarget {
                target: pocnet_crypto::to_hex(&e.poc),
            });
        }
    }
    let mut seen: HashSet<[u8; 32]> = HashSet::with_capacity(bundle.targets.len());
    let mut handles: HashSet<&str> = HashSet::with_capacity(bundle.targets.len());
    for r in &bundle.targets {
        if !seen.insert(r.target.key) || !handles.insert(&r.target.handle) {
            return Err(BundleError::DuplicateTarget {
                target: r.target.handle.clone(),
            });
        }
    }
    if let Some(e) = m.targets.iter().find(|e| !seen.contains(&e.poc)) {
        return Err(BundleError::TargetRemoved {
            target: pocnet_crypto::to_hex(&e.poc),
        });
    }

    let mut acc = Acceptances {
        relay,
        verified: HashSet::new(),
    };
    let mut envelopes: HashSet<[u8; 32]> = HashSet::with_capacity(2 * bundle.targets.len());
    for r in &bundle.targets {
        verify_target(r, &challenge, &secretariat, &listed, &mut acc, &mut envelopes)?;
    }
    let report = Report::compute(&bundle).map_err(BundleError::Format)?;
    Ok((bundle, report))
}

/// The Secretariat key that signed a bundle's manifest (after [`verify_bundle`]).
pub fn secretariat_of(bundle: &Bundle) -> Result<IdentityKey, RoundError> {
    Ok(*SignedManifest::parse(&bundle.manifest, None)?.signer())
}

fn check_checkpoint(note: &str, challenge: &Challenge, secretariat: &IdentityKey) -> Result<(), String> {
    let n = SignedNote::parse(note).map_err(|e| e.to_string())?;
    NoteVerifier {
        name: challenge.origin.clone(),
        key: *secretariat,
    }
    .verify(&n)
    .map_err(|e| format!("not signed by the manifest's Secretariat key: {e}"))?;
    let cp = n.checkpoint().map_err(|e| e.to_string())?;
    if cp.origin != challenge.origin {
        return Err("it is for another directory than the challenge".into());
    }
    if cp.size != challenge.directory_size {
        return Err(format!(
            "its size {} is not the challenge's directory size {}",
            cp.size, challenge.directory_size
        ));
    }
    Ok(())
}

fn verify_target(
    r: &TargetRecord,
    challenge: &Challenge,
    secretariat: &IdentityKey,
    listed: &BTreeMap<[u8; 32], &ManifestEntry>,
    acc: &mut Acceptances,
    envelopes: &mut HashSet<[u8; 32]>,
) -> Result<(), BundleError> {
    let name = || r.target.handle.clone();
    let entry = listed
        .get(&r.target.key)
        .ok_or_else(|| BundleError::TargetAdded { target: name() })?;
    r.target.check().map_err(|e| BundleError::Target {
        target: name(),
        reason: e.to_string(),
    })?;
    let key = IdentityKey::from_bytes(&r.target.key).map_err(|_| BundleError::Target {
        target: name(),
        reason: "its key is not a valid Ed25519 key".into(),
    })?;
    if r.reminders_released as usize > challenge.reminders_ms.len() {
        return Err(BundleError::Reminders {
            target: name(),
            released: r.reminders_released,
            scheduled: challenge.reminders_ms.len(),
        });
    }
    acc.check(&r.challenge_envelope, &r.challenge_accepted)
        .map_err(|reason| BundleError::ChallengeAcceptance { target: name(), reason })?;
    if !envelopes.insert(r.challenge_envelope) {
        return Err(BundleError::EnvelopeReused { target: name() });
    }
    match (&r.answer, entry.answer) {
        (None, Some(_)) => return Err(BundleError::AnswerRemoved { target: name() }),
        (None, None) => {}
        (Some(a), listed_hash) => {
            let sa = SignedAnswer::verify(&a.signed, &key).map_err(|e| match e {
                RoundError::Signer { found, .. } => BundleError::AnswerSigner {
                    target: name(),
                    signer: found,
                },
                e => BundleError::AnswerSignature {
                    target: name(),
                    reason: e.to_string(),
                },
            })?;
            let ans = sa.answer();
            if ans.round_id != challenge.round_id {
                return Err(BundleError::AnswerRound { target: name() });
            }
            if ans.challenge_id != r.challenge_id {
                return Err(BundleError::AnswerChallenge { target: name() });
            }
            if sa.update_origin().is_some_and(|o| o != challenge.origin) {
                return Err(BundleError::AnswerUpdate { target: name() });
            }
            acc.check(&a.envelope_hash, &a.accepted)
                .map_err(|reason| BundleError::AnswerAcceptance { target: name(), reason })?;
            if a.accepted.stored_at_ms < r.challenge_accepted.stored_at_ms {
                return Err(BundleError::AnswerBeforeChallenge {
                    target: name(),
                    answer_ms: a.accepted.stored_at_ms,
                    challenge_ms: r.challenge_accepted.stored_at_ms,
                });
            }
            if !envelopes.insert(a.envelope_hash) {
                return Err(BundleError::EnvelopeReused { target: name() });
            }
            match listed_hash {
                None => return Err(BundleError::AnswerAdded { target: name() }),
                Some(h) if h != sa.hash() => return Err(BundleError::AnswerAltered { target: name() }),
                Some(_) => {}
            }
        }
    }
    if let Some(d) = &r.delivered {
        let rc = Receipt::verify(d, &key).map_err(|e| BundleError::Receipt {
            target: name(),
            reason: e.to_string(),
        })?;
        let reason = if rc.kind != ReceiptKind::Delivered {
            Some("it is not a Delivered receipt")
        } else if rc.message_id != r.challenge_id || rc.envelope_hash != r.challenge_envelope {
            Some("it is about another envelope than the challenge")
        } else if &rc.sender != secretariat.as_bytes() {
            Some("it names another sender than the Secretariat")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(BundleError::Receipt {
                target: name(),
                reason: reason.into(),
            });
        }
    }
    match (&r.outcome, entry.outcome) {
        (None, None) => {}
        (None, Some(_)) => {
            return Err(BundleError::OutcomeMismatch {
                target: name(),
                reason: "the manifest lists an outcome that was removed",
            })
        }
        (Some(o), listed_hash) => {
            let so = SignedOutcome::parse(o, Some(secretariat)).map_err(|e| BundleError::OutcomeSignature {
                target: name(),
                reason: e.to_string(),
            })?;
            let reason = if so.outcome().round_id != challenge.round_id {
                Some("it is for another round")
            } else if so.outcome().poc != r.target.key {
                Some("it is about another POC")
            } else if listed_hash != Some(so.hash()) {
                Some("it is not the outcome the manifest lists")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(BundleError::OutcomeMismatch { target: name(), reason });
            }
        }
    }
    if r.record_hash() != entry.record {
        return Err(BundleError::TargetAltered { target: name() });
    }
    Ok(())
}
