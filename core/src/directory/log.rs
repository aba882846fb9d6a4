//! The verified log: every leaf applied to a [`Directory`], the RFC 9162 tree over the
//! leaves, and the newest checkpoint the Secretariat signed (with its witness cosignatures).
//!
//! Sans-IO: the caller fetches leaves, notes and proofs and hands them in.
//!
//! * First sync ([`LogState::verify_all`]): every leaf is applied from Genesis, the tree's
//!   root must equal the checkpoint's, the checkpoint must be signed by the Secretariat key
//!   in force at its size, and carry the witness quorum of the policy in force at its size.
//! * Later ([`LogState::extend`]): a newer checkpoint is accepted only with a consistency
//!   proof from ours, its new leaves applied in order, its root matching, its signature by
//!   the key in force at its size, and the witness quorum of the policy in force at *our*
//!   checkpoint (so new leaves cannot lower the bar for the checkpoint that carries them).
//! * Two validly signed checkpoints that cannot both be true are a [`ForkEvidence`]: the
//!   same size with different roots, or a newer one that is not an extension of ours. A
//!   checkpoint that does not verify under the Secretariat key is merely invalid.

use pocnet_crypto::note::{Checkpoint, NoteVerifier, SignedNote, Witness};
use pocnet_crypto::tlog::{self, Frontier, Hash};
use pocnet_crypto::IdentityKey;
use thiserror::Error;

use super::entry::ActionKind;
use super::state::{Applied, Directory, Refusal, WitnessPolicy};

/// What a client is installed with: the log's origin and the Secretariat's genesis key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The log's origin (checkpoint origin line, and the Secretariat's note key name).
    pub origin: String,
    /// The key that must sign Genesis (leaf 0).
    pub key: IdentityKey,
}

impl Anchor {
    /// From the Secretariat's C2SP verifier key text `<origin>+<key id>+<key>`.
    pub fn from_vkey(vkey: &str) -> Result<Self, LogError> {
        let v = NoteVerifier::parse_vkey(vkey.trim()).map_err(|e| LogError::BadAnchor(e.to_string()))?;
        Ok(Anchor {
            origin: v.name,
            key: v.key,
        })
    }
    /// The verifier key text.
    pub fn vkey(&self) -> String {
        NoteVerifier {
            name: self.origin.clone(),
            key: self.key,
        }
        .vkey()
    }
}

/// Two signed checkpoints that cannot both be true: keep both, raise the alarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkEvidence {
    /// Our verified checkpoint, as note text.
    pub ours: String,
    /// The conflicting checkpoint, as note text.
    pub theirs: String,
}

/// What a peer's 32-byte log head says about our log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadCheck {
    /// The same size and root as ours.
    Same,
    /// An older size whose root matches our tree's at that size: fine.
    Older,
    /// A larger size: we are behind; sync (then check again).
    Behind(u64),
    /// A size we hold with another root: a split view. Fetch their checkpoint as evidence.
    Fork,
}

/// Why a log or checkpoint was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LogError {
    /// A leaf breaks a directory rule.
    #[error("log entry {index} refused: {reason}")]
    Invalid {
        /// The leaf's index.
        index: u64,
        /// Why.
        reason: Refusal,
    },
    /// The Secretariat's verifier key does not parse.
    #[error("the Secretariat's verifier key is not valid: {0}")]
    BadAnchor(String),
    /// The checkpoint does not parse, names another log, or is not signed by the Secretariat
    /// key in force. Nobody we trust signed it: not a fork.
    #[error("invalid checkpoint: {0}")]
    BadCheckpoint(String),
    /// The number of leaves supplied does not match the checkpoint.
    #[error("the checkpoint needs {need} new entries but {have} were supplied")]
    LeafCount {
        /// Leaves the checkpoint needs.
        need: u64,
        /// Leaves supplied.
        have: u64,
    },
    /// The leaves do not hash to the checkpoint's root.
    #[error("the {size} entries supplied do not hash to the checkpoint's root; fetch them again")]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    /// The consistency proof does not verify, though the leaves match the checkpoint.
    #[error("the consistency proof from {old} to {new} entries does not verify: {reason}")]
    BadProof {
        /// Our size.
        old: u64,
        /// The new checkpoint's size.
        new: u64,
        /// What failed.
        reason: String,
    },
    /// Too few witnesses cosigned the checkpoint.
    #[error("the checkpoint has {have} valid witness cosignatures but the policy needs {need}")]
    Quorum {
        /// Distinct policy witnesses with a valid cosignature.
        have: u32,
        /// The policy's quorum.
        need: u32,
    },
    /// The checkpoint is valid and consistent with ours, but not newer.
    #[error("the checkpoint ({theirs} entries) is not newer than ours ({ours} entries)")]
    NotNewer {
        /// Our size.
        ours: u64,
        /// Its size.
        theirs: u64,
    },
    /// Two validly signed checkpoints that cannot both be true.
    #[error("FORK: the Secretariat signed two conflicting views of the directory log; both checkpoints are kept as evidence")]
    Fork(Box<ForkEvidence>),
}

impl LogError {
    fn invalid(e: super::state::DirectoryError) -> Self {
        LogError::Invalid {
            index: e.index,
            reason: e.refusal,
        }
    }
}

/// A verified log: the directory, the leaf hashes, and our newest checkpoint.
#[derive(Clone, Debug)]
pub struct LogState {
    anchor: Anchor,
    directory: Directory,
    leaves: Vec<Hash>,
    frontier: Frontier,
    note: SignedNote,
    checkpoint: Checkpoint,
    /// `(size, key)`: the Secretariat key in force for checkpoints of at least `size` leaves.
    keys: Vec<(u64, IdentityKey)>,
}

fn parse_checkpoint(anchor: &Anchor, note: &SignedNote) -> Result<Checkpoint, LogError> {
    let cp = note.checkpoint().map_err(|e| LogError::BadCheckpoint(e.to_string()))?;
    if cp.origin != anchor.origin {
        return Err(LogError::BadCheckpoint(format!(
            "it is for log {:?}, not {:?}",
            cp.origin, anchor.origin
        )));
    }
    Ok(cp)
}

fn check_signature(origin: &str, key: &IdentityKey, note: &SignedNote) -> Result<(), LogError> {
    NoteVerifier {
        name: origin.to_string(),
        key: *key,
    }
    .verify(note)
    .map_err(|e| {
        LogError::BadCheckpoint(format!(
            "not signed by the Secretariat key {} in force at its size: {e}",
            key.fingerprint().short()
        ))
    })
}

/// Distinct policy witnesses with a valid cosignature on `note`.
fn cosignatures(policy: &WitnessPolicy, note: &SignedNote) -> u32 {
    policy
        .witnesses
        .iter()
        .filter(|(name, key)| {
            Witness {
                name: name.clone(),
                key: *key,
            }
            .verify_in(note)
            .is_ok()
        })
        .count() as u32
}

fn check_quorum(policy: &WitnessPolicy, note: &SignedNote) -> Result<(), LogError> {
    if policy.quorum == 0 {
        return Ok(());
    }
    let have = cosignatures(policy, note);
    if have < policy.quorum {
        return Err(LogError::Quorum {
            have,
            need: policy.quorum,
        });
    }
    Ok(())
}

/// Records Secretariat rotations among `applied` into the key history.
fn record_rotations(keys: &mut Vec<(u64, IdentityKey)>, applied: &Applied, dir: &Directory) {
    if applied.kind == ActionKind::SecretariatRotate {
        keys.push((applied.index + 1, *dir.secretariat()));
    }
}

impl LogState {
    /// First sync: applies every leaf from Genesis and checks the checkpoint against them.
    /// An empty log (size 0) is refused: a log starts with its Genesis.
    pub fn verify_all(anchor: &Anchor, leaves: &[Vec<u8>], note: &SignedNote) -> Result<Self, LogError> {
        Self::verify_all_observed(anchor, leaves, note, &mut |_, _| {})
    }

    /// As [`LogState::verify_all`], calling `observe` after each leaf is applied with what it
    /// changed and the directory as it then stands (how a drill record learns which keys
    /// ever held which handle, and how fresh each record was when the drill started). The
    /// observations are only to be trusted once this returns `Ok`.
    pub fn verify_all_observed(
        anchor: &Anchor,
        leaves: &[Vec<u8>],
        note: &SignedNote,
        observe: &mut dyn FnMut(&Applied, &Directory),
    ) -> Result<Self, LogError> {
        let cp = parse_checkpoint(anchor, note)?;
        if cp.size == 0 {
            return Err(LogError::BadCheckpoint(
                "the log is empty; it must start with Genesis".into(),
            ));
        }
        if cp.size != leaves.len() as u64 {
            return Err(LogError::LeafCount {
                need: cp.size,
                have: leaves.len() as u64,
            });
        }
        // Hash first: cheap, and a wrong leaf set is reported as such before any signature work.
        let hashes: Vec<Hash> = leaves.iter().map(|l| tlog::leaf_hash(l)).collect();
        let mut frontier = Frontier::new();
        for h in &hashes {
            frontier.push(*h);
        }
        if frontier.root() != cp.root {
            return Err(LogError::RootMismatch { size: cp.size });
        }
        let mut directory = Directory::new(anchor.origin.clone(), anchor.key);
        let mut keys = vec![(0, anchor.key)];
        for leaf in leaves {
            let applied = directory.apply(leaf).map_err(LogError::invalid)?;
            record_rotations(&mut keys, &applied, &directory);
            observe(&applied, &directory);
        }
        check_signature(&anchor.origin, directory.secretariat(), note)?;
        check_quorum(directory.witness_policy(), note)?;
        Ok(LogState {
            anchor: anchor.clone(),
            directory,
            leaves: hashes,
            frontier,
            note: note.clone(),
            checkpoint: cp,
            keys,
        })
    }

    /// Accepts a newer checkpoint: `new_leaves` are the leaves after ours, `consistency` the
    /// RFC 9162 proof from our checkpoint to `note`'s. Returns what each new leaf changed.
    /// On any error nothing changes.
    ///
    /// A checkpoint of our size or older is checked too: if validly signed with another root
    /// than ours at that size, that is a [`LogError::Fork`]; if it matches, our own size is
    /// `Ok` with no change and an older one is [`LogError::NotNewer`].
    pub fn extend(
        &mut self,
        new_leaves: &[Vec<u8>],
        note: &SignedNote,
        consistency: &[Hash],
    ) -> Result<Vec<Applied>, LogError> {
        let cp = parse_checkpoint(&self.anchor, note)?;
        let ours = self.size();
        if cp.size <= ours {
            check_signature(&self.anchor.origin, self.key_at(cp.size), note)?;
            if self.root_at(cp.size) != Some(cp.root) {
                return Err(self.fork(note));
            }
            if !new_leaves.is_empty() {
                return Err(LogError::LeafCount {
                    need: 0,
                    have: new_leaves.len() as u64,
                });
            }
            return if cp.size == ours {
                Ok(Vec::new())
            } else {
                Err(LogError::NotNewer { ours, theirs: cp.size })
            };
        }
        if new_leaves.len() as u64 != cp.size - ours {
            return Err(LogError::LeafCount {
                need: cp.size - ours,
                have: new_leaves.len() as u64,
            });
        }
        let hashes: Vec<Hash> = new_leaves.iter().map(|l| tlog::leaf_hash(l)).collect();
        let mut frontier = self.frontier.clone();
        for h in &hashes {
            frontier.push(*h);
        }
        let leaves_match = frontier.root() == cp.root;
        let proof = tlog::verify_consistency(ours, cp.size, &self.checkpoint.root, &cp.root, consistency);
        match (proof, leaves_match) {
            (Ok(()), true) => {}
            (Ok(()), false) => return Err(LogError::RootMismatch { size: cp.size }),
            (Err(e), true) => {
                return Err(LogError::BadProof {
                    old: ours,
                    new: cp.size,
                    reason: e.to_string(),
                })
            }
            (Err(_), false) => {
                // Not an extension of our tree. A fork if the Secretariat signed it (under the
                // key in force now, or the one its own leaves would install).
                let signed_now = check_signature(&self.anchor.origin, self.directory.secretariat(), note).is_ok();
                let signed_after = || {
                    let mut d = self.directory.clone();
                    new_leaves.iter().all(|l| d.apply(l).is_ok())
                        && check_signature(&self.anchor.origin, d.secretariat(), note).is_ok()
                };
                if signed_now || signed_after() {
                    return Err(self.fork(note));
                }
                return Err(LogError::BadCheckpoint(format!(
                    "it is not an extension of our log and not signed by the Secretariat key {}",
                    self.directory.secretariat().fingerprint().short()
                )));
            }
        }
        let mut directory = self.directory.clone();
        let mut keys = self.keys.clone();
        let mut applied = Vec::with_capacity(new_leaves.len());
        for leaf in new_leaves {
            let a = directory.apply(leaf).map_err(LogError::invalid)?;
            record_rotations(&mut keys, &a, &directory);
            applied.push(a);
        }
        check_signature(&self.anchor.origin, directory.secretariat(), note)?;
        check_quorum(self.directory.witness_policy(), note)?;
        self.directory = directory;
        self.keys = keys;
        self.leaves.extend_from_slice(&hashes);
        self.frontier = frontier;
        self.note = note.clone();
        self.checkpoint = cp;
        Ok(applied)
    }

    fn fork(&self, theirs: &SignedNote) -> LogError {
        LogError::Fork(Box::new(ForkEvidence {
            ours: self.note.to_text(),
            theirs: theirs.to_text(),
        }))
    }

    /// The Secretariat key in force for a checkpoint of `size` leaves.
    fn key_at(&self, size: u64) -> &IdentityKey {
        &self
            .keys
            .iter()
            .rev()
            .find(|(from, _)| *from <= size)
            .unwrap_or(&self.keys[0])
            .1
    }

    /// The root of our tree at `size` leaves, if we hold that many. O(size) hashing except
    /// for our own size.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        if size == self.size() {
            return Some(self.checkpoint.root);
        }
        let n = usize::try_from(size).ok()?;
        self.leaves.get(..n).map(tlog::root)
    }

    /// Our log head for envelope headers: size (u64 big-endian) || the root's first 24 bytes.
    pub fn head(&self) -> [u8; 32] {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&self.size().to_be_bytes());
        h[8..].copy_from_slice(&self.checkpoint.root[..24]);
        h
    }

    /// Compares a peer's log head with our log.
    pub fn check_head(&self, head: [u8; 32]) -> HeadCheck {
        let size = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
        if size > self.size() {
            return HeadCheck::Behind(size);
        }
        match self.root_at(size) {
            Some(root) if root[..24] == head[8..] => {
                if size == self.size() {
                    HeadCheck::Same
                } else {
                    HeadCheck::Older
                }
            }
            _ => HeadCheck::Fork,
        }
    }

    /// An RFC 9162 consistency proof from `old_size` to our size (for peers and witnesses).
    pub fn consistency_proof(&self, old_size: u64) -> Result<Vec<Hash>, LogError> {
        tlog::consistency_proof(&self.leaves, old_size).map_err(|e| LogError::BadProof {
            old: old_size,
            new: self.size(),
            reason: e.to_string(),
        })
    }

    /// An RFC 9162 inclusion proof for leaf `index` in our tree.
    pub fn inclusion_proof(&self, index: u64) -> Result<Vec<Hash>, LogError> {
        tlog::inclusion_proof(&self.leaves, index).map_err(|e| LogError::BadProof {
            old: index,
            new: self.size(),
            reason: e.to_string(),
        })
    }

    /// The directory as of our checkpoint.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }
    /// Our newest verified checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    /// Our newest verified checkpoint's signed note, with its cosignatures.
    pub fn note(&self) -> &SignedNote {
        &self.note
    }
    /// How many leaves we hold.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }
    /// Every leaf hash, in order.
    pub fn leaf_hashes(&self) -> &[Hash] {
        &self.leaves
    }
    /// The anchor this log was verified from.
    pub fn anchor(&self) -> &Anchor {
        &self.anchor
    }
}
