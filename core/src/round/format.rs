//! The round's byte formats: the challenge and the answer that travel inside envelopes, and
//! the three signed objects (answer, outcome, manifest).
//!
//! Every format is postcard whose first field is a version byte (`0x01`), so a reader sees
//! the version before it decodes anything else. Signed objects are
//!
//! ```text
//! postcard(body) || signer key [32] || Ed25519 signature [64]
//! signature over <context> || every byte before the signature
//! ```
//!
//! with their own context each (`pocnet/v1/round-answer\0`, `pocnet/v1/round-outcome\0`,
//! `pocnet/v1/round-manifest\0`). Parsing is strict: a length bound checked before anything
//! is decoded, the version, postcard in its one canonical encoding (re-encoding must give
//! the same bytes), exactly 96 bytes after the body, every text inside its bound, and the
//! signature checked with `verify_strict`. See PROTOCOL.md §13.

use pocnet_crypto::context;
use pocnet_crypto::{Identity, IdentityKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why round bytes were refused, or could not be made (the crate's shared [`FormatError`]).
///
/// [`FormatError`]: crate::signed::FormatError
pub use crate::signed::FormatError as RoundError;
pub(crate) use crate::signed::{decode, encode, field, open_body, sign_body, text, TAIL_LEN};

use crate::directory::entry::MAX_NAME;
use crate::directory::{Action, Statement};

/// The version byte every round format this build writes and reads starts with.
pub const ROUND_VERSION: u8 = 1;
/// A round's id: 16 random bytes chosen by the Secretariat.
pub type RoundId = [u8; 16];
/// Longest question text, in UTF-8 bytes.
pub const MAX_QUESTION: usize = 2000;
/// Longest note on an answer or outcome, in UTF-8 bytes.
pub const MAX_NOTE: usize = 1000;
/// Longest "how" of an outcome (`phone`, `e-mail`, …), in UTF-8 bytes.
pub const MAX_HOW: usize = 64;
/// At most this many reminders per round.
pub const MAX_REMINDERS: usize = 16;
/// At most this many targets in one round (and one bundle).
pub const MAX_TARGETS: usize = 10_000;
/// Largest encoded challenge.
pub const MAX_CHALLENGE_LEN: usize = 8 * 1024;
/// Largest signed answer (an answer may carry a whole contact-update statement).
pub const MAX_ANSWER_LEN: usize = 20 * 1024;
/// Largest signed outcome.
pub const MAX_OUTCOME_LEN: usize = 4 * 1024;
/// Largest signed manifest.
pub const MAX_MANIFEST_LEN: usize = 2 * 1024 * 1024;

/// SHA-256 of `bytes`: how the manifest names answers, outcomes and the challenge.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What a round asks of each POC. The variant order is the wire format: append only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Confirm (or update) your contact details.
    ConfirmDetails,
    /// Answer this question (1..=2000 bytes; lines allowed).
    Question(String),
}

impl Request {
    fn check(&self) -> Result<(), RoundError> {
        match self {
            Request::ConfirmDetails => Ok(()),
            Request::Question(q) => text("question", q, 1, MAX_QUESTION, true),
        }
    }
}

/// Plaintext of a round challenge envelope (content type 5, `RoundChallenge`), sent by the
/// Secretariat to each target in its own envelope. A reminder is the same challenge with
/// `reminder: Some(n)` (the n-th reminder, from 1), sealed in advance and held by the relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// [`ROUND_VERSION`].
    pub version: u8,
    /// The round's random id.
    pub round_id: RoundId,
    /// The directory's origin.
    pub origin: String,
    /// When the round started (Unix ms, the Secretariat's clock; informational).
    pub started_ms: u64,
    /// When answers are due (Unix ms): an answer the relay accepted later is late.
    pub deadline_ms: u64,
    /// What is asked.
    pub request: Request,
    /// When reminders are due (Unix ms, strictly increasing, after the start, not after the
    /// deadline; informational: the relay holds the reminders).
    pub reminders_ms: Vec<u64>,
    /// The directory log size the targets were taken from.
    pub directory_size: u64,
    /// `None` for the challenge itself; `Some(n)` for its n-th reminder (1-based).
    pub reminder: Option<u8>,
}

impl Challenge {
    /// A new challenge (not a reminder) at version 1.
    pub fn new(
        round_id: RoundId,
        origin: impl Into<String>,
        started_ms: u64,
        deadline_ms: u64,
        request: Request,
        reminders_ms: Vec<u64>,
        directory_size: u64,
    ) -> Self {
        Challenge {
            version: ROUND_VERSION,
            round_id,
            origin: origin.into(),
            started_ms,
            deadline_ms,
            request,
            reminders_ms,
            directory_size,
            reminder: None,
        }
    }

    /// The `n`-th reminder of this challenge (1-based).
    pub fn reminder(&self, n: u8) -> Self {
        Challenge {
            reminder: Some(n),
            ..self.clone()
        }
    }

    /// Checks every bound.
    pub fn check(&self) -> Result<(), RoundError> {
        if self.version != ROUND_VERSION {
            return Err(RoundError::Version {
                what: "challenge",
                found: self.version,
            });
        }
        text("origin", &self.origin, 1, MAX_NAME, false)?;
        if self.deadline_ms <= self.started_ms {
            return Err(field("deadline", "is not after the start"));
        }
        self.request.check()?;
        if self.reminders_ms.len() > MAX_REMINDERS {
            return Err(field("reminders", format!("at most {MAX_REMINDERS} are allowed")));
        }
        let mut prev = self.started_ms;
        for &r in &self.reminders_ms {
            if r <= prev || r > self.deadline_ms {
                return Err(field(
                    "reminders",
                    "must be strictly increasing, after the start and not after the deadline",
                ));
            }
            prev = r;
        }
        if let Some(n) = self.reminder {
            if n == 0 || n as usize > self.reminders_ms.len() {
                return Err(field("reminder", format!("{n} is not one of the round's reminders")));
            }
        }
        Ok(())
    }

    /// The exact plaintext bytes (checked first).
    pub fn encode(&self) -> Result<Vec<u8>, RoundError> {
        self.check()?;
        encode("challenge", self)
    }

    /// Parses strictly (see the module docs) and checks every bound.
    pub fn parse(bytes: &[u8]) -> Result<Self, RoundError> {
        let c: Challenge = decode("challenge", bytes, MAX_CHALLENGE_LEN, 0)?;
        c.check()?;
        Ok(c)
    }
}

/// A POC's answer (placed, signed, as a [`SignedAnswer`] in a content type 6,
/// `RoundResponse`, envelope to the Secretariat).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// [`ROUND_VERSION`].
    pub version: u8,
    /// The round answered.
    pub round_id: RoundId,
    /// The message id of the challenge envelope answered.
    pub challenge_id: [u8; 16],
    /// The details are confirmed as they are.
    pub confirmed: bool,
    /// The details changed: a signed directory `ContactUpdate` statement, exact bytes, by the
    /// same key. Never together with `confirmed`.
    pub update: Option<Vec<u8>>,
    /// A short note (answer to a question), at most 1000 bytes; lines allowed.
    pub note: String,
    /// The answerer's clock (informational; timing uses the relay's acceptance times).
    pub answered_ms: u64,
}

impl Answer {
    /// An answer at version 1 to the challenge envelope `challenge_id` of round `round_id`.
    pub fn new(
        round_id: RoundId,
        challenge_id: [u8; 16],
        confirmed: bool,
        update: Option<Vec<u8>>,
        note: &str,
        answered_ms: u64,
    ) -> Self {
        Answer {
            version: ROUND_VERSION,
            round_id,
            challenge_id,
            confirmed,
            update,
            note: note.into(),
            answered_ms,
        }
    }

    /// Checks the bounds that need no key.
    pub fn check(&self) -> Result<(), RoundError> {
        if self.version != ROUND_VERSION {
            return Err(RoundError::Version {
                what: "answer",
                found: self.version,
            });
        }
        text("note", &self.note, 0, MAX_NOTE, true)?;
        if self.confirmed && self.update.is_some() {
            return Err(field("answer", "both confirms the details and updates them"));
        }
        Ok(())
    }

    /// Signs the answer with the POC's identity key (the update, if any, must be that key's
    /// `ContactUpdate` statement).
    pub fn sign(&self, poc: &Identity) -> Result<SignedAnswer, RoundError> {
        self.check()?;
        let update = check_update(self, poc.public_key())?;
        let bytes = sign_body("answer", context::ROUND_ANSWER, poc, self, MAX_ANSWER_LEN)?;
        Ok(SignedAnswer {
            bytes,
            answer: self.clone(),
            signer: *poc.public_key(),
            update_origin: update.map(|u| u.origin().to_string()),
        })
    }
}

fn check_update(a: &Answer, signer: &IdentityKey) -> Result<Option<Statement>, RoundError> {
    let Some(u) = &a.update else { return Ok(None) };
    let st = Statement::parse(u).map_err(|e| field("update", format!("is not a valid statement: {e}")))?;
    if !matches!(st.action(), Action::ContactUpdate { .. }) {
        return Err(field("update", "is not a ContactUpdate statement"));
    }
    if st.author() != signer {
        return Err(field("update", "is signed by another key than the answer"));
    }
    Ok(Some(st))
}

/// An answer signed by a POC: `postcard(Answer) || key || signature` under
/// `pocnet/v1/round-answer\0`.
#[derive(Clone, Debug)]
pub struct SignedAnswer {
    bytes: Vec<u8>,
    answer: Answer,
    signer: IdentityKey,
    update_origin: Option<String>,
}

impl SignedAnswer {
    /// Parses strictly and checks the signature, whoever signed.
    pub fn parse(bytes: &[u8]) -> Result<Self, RoundError> {
        Self::open(bytes, None)
    }

    /// Parses strictly and checks that `poc` signed it (a [`RoundError::Signer`] names
    /// another signer).
    pub fn verify(bytes: &[u8], poc: &IdentityKey) -> Result<Self, RoundError> {
        Self::open(bytes, Some(poc))
    }

    fn open(bytes: &[u8], expected: Option<&IdentityKey>) -> Result<Self, RoundError> {
        let (answer, signer) = open_body::<Answer>("answer", context::ROUND_ANSWER, bytes, MAX_ANSWER_LEN, expected)?;
        answer.check()?;
        let update = check_update(&answer, &signer)?;
        Ok(SignedAnswer {
            bytes: bytes.to_vec(),
            answer,
            signer,
            update_origin: update.map(|u| u.origin().to_string()),
        })
    }

    /// Decodes the answer without checking the signature (for reports on bundles already
    /// verified or built locally).
    pub fn decode_unverified(bytes: &[u8]) -> Result<Answer, RoundError> {
        decode::<Answer>("answer", bytes, MAX_ANSWER_LEN, TAIL_LEN)
    }

    /// The exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Consumes it, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
    /// The answer.
    pub fn answer(&self) -> &Answer {
        &self.answer
    }
    /// Who signed.
    pub fn signer(&self) -> &IdentityKey {
        &self.signer
    }
    /// The directory origin the contact update names, if the answer carries one.
    pub fn update_origin(&self) -> Option<&str> {
        self.update_origin.as_deref()
    }
    /// SHA-256 of the exact bytes (what the manifest lists).
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.bytes)
    }
}

/// The Secretariat's record of an answer given outside pocnet (by phone, by e-mail).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// [`ROUND_VERSION`].
    pub version: u8,
    /// The round.
    pub round_id: RoundId,
    /// The POC's identity key.
    pub poc: [u8; 32],
    /// How the POC answered (`phone`, `e-mail`), 1..=64 bytes.
    pub how: String,
    /// When (Unix ms, the Secretariat's word).
    pub at_ms: u64,
    /// A note, at most 1000 bytes; lines allowed.
    pub note: String,
}

impl Outcome {
    /// An outcome at version 1.
    pub fn new(round_id: RoundId, poc: &IdentityKey, how: &str, at_ms: u64, note: &str) -> Self {
        Outcome {
            version: ROUND_VERSION,
            round_id,
            poc: *poc.as_bytes(),
            how: how.into(),
            at_ms,
            note: note.into(),
        }
    }

    /// Checks every bound.
    pub fn check(&self) -> Result<(), RoundError> {
        if self.version != ROUND_VERSION {
            return Err(RoundError::Version {
                what: "outcome",
                found: self.version,
            });
        }
        text("outcome how", &self.how, 1, MAX_HOW, false)?;
        text("outcome note", &self.note, 0, MAX_NOTE, true)
    }

    /// Signs it with the Secretariat's key.
    pub fn sign(&self, secretariat: &Identity) -> Result<SignedOutcome, RoundError> {
        self.check()?;
        let bytes = sign_body("outcome", context::ROUND_OUTCOME, secretariat, self, MAX_OUTCOME_LEN)?;
        Ok(SignedOutcome {
            bytes,
            outcome: self.clone(),
            signer: *secretariat.public_key(),
        })
    }
}

/// An outcome signed by the Secretariat under `pocnet/v1/round-outcome\0`.
#[derive(Clone, Debug)]
pub struct SignedOutcome {
    bytes: Vec<u8>,
    outcome: Outcome,
    signer: IdentityKey,
}

impl SignedOutcome {
    /// Parses strictly and checks the signature; with `expected`, the signer must be it.
    pub fn parse(bytes: &[u8], expected: Option<&IdentityKey>) -> Result<Self, RoundError> {
        let (outcome, signer) =
            open_body::<Outcome>("outcome", context::ROUND_OUTCOME, bytes, MAX_OUTCOME_LEN, expected)?;
        outcome.check()?;
        Ok(SignedOutcome {
            bytes: bytes.to_vec(),
            outcome,
            signer,
        })
    }
    /// Decodes without checking the signature.
    pub fn decode_unverified(bytes: &[u8]) -> Result<Outcome, RoundError> {
        decode::<Outcome>("outcome", bytes, MAX_OUTCOME_LEN, TAIL_LEN)
    }
    /// The exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Consumes it, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
    /// The outcome.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }
    /// Who signed.
    pub fn signer(&self) -> &IdentityKey {
        &self.signer
    }
    /// SHA-256 of the exact bytes (what the manifest lists).
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.bytes)
    }
}

/// One target in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The POC's identity key.
    pub poc: [u8; 32],
    /// SHA-256 of the target's record without relay proofs, answer bytes and outcome bytes
    /// (see [`super::TargetRecord::record_hash`]).
    pub record: [u8; 32],
    /// SHA-256 of the POC's [`SignedAnswer`] bytes, if it answered in pocnet.
    pub answer: Option<[u8; 32]>,
    /// SHA-256 of the [`SignedOutcome`] bytes, if one was recorded.
    pub outcome: Option<[u8; 32]>,
}

/// The Secretariat's signed list of a round's targets and what each answered: removing,
/// adding or altering an answer, an outcome or a target breaks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`ROUND_VERSION`].
    pub version: u8,
    /// The round.
    pub round_id: RoundId,
    /// SHA-256 of the challenge bytes.
    pub challenge: [u8; 32],
    /// SHA-256 of the directory checkpoint note text (UTF-8).
    pub checkpoint: [u8; 32],
    /// The relay's identity key (whose acceptances the bundle carries).
    pub relay: [u8; 32],
    /// When the Secretariat made the bundle (Unix ms).
    pub created_ms: u64,
    /// Every target, in the bundle's order.
    pub targets: Vec<ManifestEntry>,
}

impl Manifest {
    /// Checks the bounds.
    pub fn check(&self) -> Result<(), RoundError> {
        if self.version != ROUND_VERSION {
            return Err(RoundError::Version {
                what: "manifest",
                found: self.version,
            });
        }
        if self.targets.len() > MAX_TARGETS {
            return Err(field("manifest targets", format!("at most {MAX_TARGETS} are allowed")));
        }
        Ok(())
    }

    /// Signs it with the Secretariat's key.
    pub fn sign(&self, secretariat: &Identity) -> Result<SignedManifest, RoundError> {
        self.check()?;
        let bytes = sign_body("manifest", context::ROUND_MANIFEST, secretariat, self, MAX_MANIFEST_LEN)?;
        Ok(SignedManifest {
            bytes,
            manifest: self.clone(),
            signer: *secretariat.public_key(),
        })
    }
}

/// A manifest signed by the Secretariat under `pocnet/v1/round-manifest\0`.
#[derive(Clone, Debug)]
pub struct SignedManifest {
    bytes: Vec<u8>,
    manifest: Manifest,
    signer: IdentityKey,
}

impl SignedManifest {
    /// Parses strictly and checks the signature; with `expected`, the signer must be it.
    pub fn parse(bytes: &[u8], expected: Option<&IdentityKey>) -> Result<Self, RoundError> {
        let (manifest, signer) =
            open_body::<Manifest>("manifest", context::ROUND_MANIFEST, bytes, MAX_MANIFEST_LEN, expected)?;
        manifest.check()?;
        Ok(SignedManifest {
            bytes: bytes.to_vec(),
            manifest,
            signer,
        })
    }
    /// The exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// Who signed (the Secretariat).
    pub fn signer(&self) -> &IdentityKey {
        &self.signer
    }
}
