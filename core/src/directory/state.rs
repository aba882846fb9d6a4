//! The directory state machine: applies statements in log order, refusing any that breaks a
//! rule, and answers lookups from the result.
//!
//! Every refusal is a [`DirectoryError`] naming the log entry index, and leaves the
//! directory exactly as it was before that entry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pocnet_crypto::{Fingerprint, IdentityKey, PublicIdentity};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::entry::{
    Action, ActionKind, Category, Contact, EntryError, Handle, PolicyKind, Rank, Statement, WitnessKey,
};

/// A record not confirmed for longer than this is stale (365 days, in milliseconds).
pub const STALE_AFTER_MS: u64 = 365 * 24 * 60 * 60 * 1000;

/// Fewest hex digits accepted for a fingerprint-prefix lookup.
pub const MIN_PREFIX_DIGITS: usize = 8;

/// A listed POC.
#[derive(Clone, Debug)]
pub struct Poc {
    /// The POC's identity key: the POC *is* this key.
    pub key: IdentityKey,
    /// The current public identity (encryption key record).
    pub public: PublicIdentity,
    /// The current handle.
    pub handle: Handle,
    /// Contact details.
    pub contact: Contact,
    /// The national authority key that signed the nomination.
    pub nominated_by: IdentityKey,
    /// Log entry of the approval that listed this key.
    pub enrolled_index: u64,
    /// Log entry that gave the POC its current handle (the approval or a rank change).
    pub handle_index: u64,
    /// When it got its current handle (that entry's time, Unix milliseconds).
    pub handle_ms: u64,
    /// Log entry that last changed this record.
    pub updated_index: u64,
    /// When the Secretariat approved (Unix milliseconds).
    pub enrolled_ms: u64,
    /// When the details were last confirmed: approval, contact update or confirmation.
    pub confirmed_ms: u64,
    /// When the Secretariat heard the fingerprint read aloud.
    pub voice_checked_ms: u64,
}

impl Poc {
    /// The handle as text, such as `CL.primary`.
    pub fn handle_text(&self) -> String {
        self.handle.to_string()
    }
    /// The POC's state (ISO 3166-1 alpha-2).
    pub fn state(&self) -> &str {
        self.handle.state().unwrap_or_default()
    }
    /// The POC's category and rank.
    pub fn category_rank(&self) -> (Category, Rank) {
        match &self.handle {
            Handle::Poc { category, rank, .. } => (*category, *rank),
            _ => unreachable!("a POC always has a POC handle"),
        }
    }
    /// The identity key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.key.fingerprint()
    }
    /// Whether the record was last confirmed more than 365 days before `now_ms`.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.confirmed_ms) > STALE_AFTER_MS
    }
}

/// A state's enrolled national authority.
#[derive(Clone, Debug)]
pub struct Authority {
    /// ISO 3166-1 alpha-2 code.
    pub state: String,
    /// The authority's key.
    pub key: IdentityKey,
    /// Name of the authority.
    pub name: String,
    /// Its institution.
    pub institution: String,
    /// Log entry that enrolled this key.
    pub enrolled_index: u64,
    /// When this key was first enrolled for the state (that entry's time, Unix ms).
    pub enrolled_ms: u64,
}

/// One version of a policy document, as the log lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    /// ISO 3166-1 alpha-2 code of the publishing state.
    pub state: String,
    /// The document's stable id.
    pub document: [u8; 16],
    /// The version (1, 2, ...).
    pub version: u32,
    /// What kind of document.
    pub kind: PolicyKind,
    /// The document's own date, `YYYY-MM-DD`.
    pub date: String,
    /// The document's language (ISO 639-1).
    pub language: String,
    /// (language, title) pairs; the first is in `language`.
    pub titles: Vec<(String, String)>,
    /// The file's name.
    pub file_name: String,
    /// Its media type.
    pub media_type: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the plaintext file.
    pub sha256: [u8; 32],
    /// The log entry that published this version.
    pub index: u64,
    /// The statement's time (Unix milliseconds).
    pub time_ms: u64,
    /// The national authority key that signed it.
    pub author: IdentityKey,
}

impl PolicyVersion {
    /// The title in `lang` (ISO 639-1), or the first title if there is none in it.
    pub fn title_in(&self, lang: &str) -> &str {
        self.titles
            .iter()
            .find(|(l, _)| l == lang)
            .or(self.titles.first())
            .map(|(_, t)| t.as_str())
            .unwrap_or_default()
    }
}

/// A POC no longer listed: removed by its authority, or its key revoked.
#[derive(Clone, Debug)]
pub struct Former {
    /// The key that was listed.
    pub key: IdentityKey,
    /// The handle it held.
    pub handle: Handle,
    /// Log entry that removed or revoked it.
    pub index: u64,
    /// The reason given.
    pub reason: String,
    /// Whether the key was revoked (it can never be listed again) rather than removed.
    pub revoked: bool,
}

/// The witness policy in force: checkpoints need `quorum` distinct cosignatures from these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WitnessPolicy {
    /// Witness note key names and keys.
    pub witnesses: Vec<(String, IdentityKey)>,
    /// How many distinct witnesses must cosign.
    pub quorum: u32,
}

/// What one applied leaf changed, for member tables and "changed" detection.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The leaf's index in the log.
    pub index: u64,
    /// Which action it was.
    pub kind: ActionKind,
    /// Who signed it.
    pub author: IdentityKey,
    /// The statement's time (Unix milliseconds).
    pub time_ms: u64,
    /// POC keys listed by this leaf.
    pub added: Vec<IdentityKey>,
    /// POC keys no longer listed after this leaf (removed or revoked).
    pub removed: Vec<IdentityKey>,
    /// Handles (POC handles, `XX.authority`, `secretariat`) that now name another key
    /// (`Some`) or nobody (`None`), in the order they changed.
    pub handle_moves: Vec<(String, Option<IdentityKey>)>,
    /// A still-listed POC whose record changed in place (public identity, contact details,
    /// confirmation), if any.
    pub updated: Option<IdentityKey>,
}

/// A refused log entry: which one, and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("log entry {index} refused: {refusal}")]
pub struct DirectoryError {
    /// The entry's index in the log.
    pub index: u64,
    /// Why it was refused.
    pub refusal: Refusal,
}

/// Why a statement cannot be applied. Keys are named by their short fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[allow(missing_docs)] // each field is named in its message
pub enum Refusal {
    /// The bytes are not a valid statement.
    #[error("{0}")]
    Malformed(#[from] EntryError),
    /// Entry 0 must be Genesis.
    #[error("the first entry must be Genesis, not {0}")]
    NotGenesis(ActionKind),
    /// Genesis after entry 0.
    #[error("Genesis is allowed only as the first entry")]
    GenesisNotFirst,
    /// Genesis's key name differs from the origin.
    #[error("Genesis names key {found:?} but the Secretariat's note key name must be the origin {origin:?}")]
    KeyName { found: String, origin: String },
    /// The statement names another log.
    #[error("the statement is for log {found:?}, but this log is {expected:?}")]
    WrongOrigin { expected: String, found: String },
    /// Time went backwards for this signer.
    #[error("it is dated {found} ms, before the same key's previous statement in the log ({previous} ms)")]
    TimeBackwards { previous: u64, found: u64 },
    /// These exact bytes are in the log already.
    #[error("this exact statement is in the log already")]
    Replayed,
    /// A statement about a POC signed before that POC held the handle or key it names.
    #[error(
        "it was signed at {signed} ms, before {handle} got its current holder ({since} ms): it cannot be about them"
    )]
    OlderThanTarget { handle: String, signed: u64, since: u64 },
    /// Signed by a key that may not make this statement.
    #[error("{action} must be signed by {expected}, but key {author} signed it")]
    WrongAuthor {
        action: ActionKind,
        expected: String,
        author: String,
    },
    /// A national authority signed for another state.
    #[error("{author_state}'s national authority signed for {state}; an authority signs only for its own state")]
    OtherState { author_state: String, state: String },
    /// The state has no enrolled authority.
    #[error("{0} has no national authority enrolled")]
    NoAuthority(String),
    /// A Nominate outside an Approve.
    #[error("a Nominate is valid only inside the Secretariat's Approve")]
    BareNomination,
    /// The nomination inside an Approve is not a valid statement.
    #[error("the approved nomination is not a valid statement: {0}")]
    Nomination(EntryError),
    /// The statement inside an Approve is not a Nominate.
    #[error("the approved statement is a {0}, not a Nominate")]
    NotANomination(ActionKind),
    /// The nomination is later than its approval.
    #[error("the nomination is signed at {nominated} ms, after its approval at {approved} ms")]
    NominationAfterApproval { nominated: u64, approved: u64 },
    /// The voice check is later than the approval.
    #[error("the voice check at {voice} ms is after the approval at {approved} ms")]
    VoiceCheckAfterApproval { voice: u64, approved: u64 },
    /// The nominated fingerprint is not the public identity's.
    #[error("the nomination names fingerprint {nominated} but the public identity's key has fingerprint {actual}")]
    FingerprintMismatch { nominated: String, actual: String },
    /// The public identity does not parse or verify.
    #[error("the public identity is not valid: {0}")]
    PublicIdentity(String),
    /// This exact nomination was approved before.
    #[error("this nomination was already approved")]
    AlreadyApproved,
    /// The handle is held by another POC.
    #[error("handle {0} is taken")]
    HandleTaken(String),
    /// The POC already holds this handle.
    #[error("the POC already holds handle {0}")]
    SameHandle(String),
    /// No POC holds the handle.
    #[error("no POC holds handle {0}")]
    NoSuchHandle(String),
    /// The key already has a role in the directory.
    #[error("key {key} is already listed as {role}")]
    KeyListed { key: String, role: String },
    /// The key was revoked.
    #[error("key {key} was revoked at log entry {index} and can never be listed again")]
    KeyRevoked { key: String, index: u64 },
    /// The key may not be revoked with Revoke.
    #[error("key {key} is {role}; {what}")]
    NotRevocable {
        key: String,
        role: String,
        what: &'static str,
    },
    /// The author is not a listed POC.
    #[error("{action} must be signed by a listed POC, but key {author} is not one")]
    NotAPoc { action: ActionKind, author: String },
    /// A key rotation publishes another key's identity.
    #[error("the new public identity is for key {found}, not the author's key {author}")]
    RotationKeyMismatch { author: String, found: String },
    /// A key rotation does not advance the encryption key serial.
    #[error("the new encryption key serial {found} is not above the current serial {current}")]
    SerialNotIncreasing { current: u32, found: u32 },
    /// The new Secretariat key is the current one.
    #[error("the new Secretariat key is the current one")]
    SameSecretariatKey,
    /// Version 1 of a policy document whose id is in use.
    #[error("policy document {document} exists already: a new document needs a new id, a new version the next number")]
    PolicyDocumentExists { document: String },
    /// A later version of a document the log does not hold.
    #[error("policy document {document} is not in the log, so there is no version {version} to follow")]
    NoSuchPolicy { document: String, version: u32 },
    /// A version of another state's document.
    #[error("policy document {document} is {owner}'s; {state} cannot publish a version of it")]
    PolicyOtherState {
        document: String,
        owner: String,
        state: String,
    },
    /// A version that is not the next one.
    #[error("policy document {document} is at version {latest}; the next version must be {}, not {found}", latest + 1)]
    PolicyVersion { document: String, latest: u32, found: u32 },
}

/// Why a lookup found nothing usable.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LookupError {
    /// Fewer than [`MIN_PREFIX_DIGITS`] hex digits.
    #[error("a fingerprint prefix needs at least {MIN_PREFIX_DIGITS} hex digits; {0:?} has fewer")]
    PrefixTooShort(String),
    /// Not hexadecimal.
    #[error("{0:?} is not a hexadecimal fingerprint prefix")]
    NotHex(String),
    /// No listed POC matches.
    #[error("no listed POC has a fingerprint starting {0}")]
    NoMatch(String),
    /// More than one listed POC matches.
    #[error("{count} listed POCs have fingerprints starting {prefix}; give more digits")]
    Ambiguous {
        /// The prefix asked for.
        prefix: String,
        /// How many matched.
        count: usize,
    },
}

/// The directory as the log's statements build it.
#[derive(Clone, Debug)]
pub struct Directory {
    origin: String,
    secretariat: IdentityKey,
    size: u64,
    last_time_ms: u64,
    policy: WitnessPolicy,
    authorities: BTreeMap<String, Authority>,
    authority_keys: BTreeMap<[u8; 32], String>,
    pocs: BTreeMap<[u8; 32], Arc<Poc>>,
    handles: BTreeMap<String, [u8; 32]>,
    revoked: Arc<BTreeMap<[u8; 32], u64>>,
    former: Arc<Vec<Former>>,
    approved: Arc<BTreeSet<[u8; 32]>>,
    /// Each key's latest statement time: a signer's statements never go back in time.
    signed_at: Arc<BTreeMap<[u8; 32], u64>>,
    /// SHA-256 of every statement applied: none appears twice.
    seen: Arc<BTreeSet<[u8; 32]>>,
    /// Every version of every policy document, oldest first, by document id.
    policies: Arc<BTreeMap<[u8; 16], Vec<PolicyVersion>>>,
}

fn short(k: &IdentityKey) -> String {
    k.fingerprint().short()
}

impl Directory {
    /// An empty directory for the log `origin`, whose Genesis must be signed by `genesis_key`
    /// (the Secretariat key the client was installed with).
    pub fn new(origin: impl Into<String>, genesis_key: IdentityKey) -> Self {
        Directory {
            origin: origin.into(),
            secretariat: genesis_key,
            size: 0,
            last_time_ms: 0,
            policy: WitnessPolicy::default(),
            authorities: BTreeMap::new(),
            authority_keys: BTreeMap::new(),
            pocs: BTreeMap::new(),
            handles: BTreeMap::new(),
            revoked: Arc::default(),
            former: Arc::default(),
            approved: Arc::default(),
            signed_at: Arc::default(),
            seen: Arc::default(),
            policies: Arc::default(),
        }
    }

    /// Applies the next leaf. On refusal nothing changes.
    pub fn apply(&mut self, leaf: &[u8]) -> Result<Applied, DirectoryError> {
        let index = self.size;
        let st = Statement::parse_with(leaf, |k| self.known_key(k)).map_err(|e| DirectoryError {
            index,
            refusal: e.into(),
        })?;
        self.apply_statement(&st)
    }

    /// Applies the next leaf, already parsed. On refusal nothing changes.
    pub fn apply_statement(&mut self, st: &Statement) -> Result<Applied, DirectoryError> {
        let index = self.size;
        let applied = self
            .apply_inner(index, st)
            .map_err(|refusal| DirectoryError { index, refusal })?;
        self.size += 1;
        self.last_time_ms = self.last_time_ms.max(st.time_ms());
        Arc::make_mut(&mut self.signed_at).insert(*st.author().as_bytes(), st.time_ms());
        Arc::make_mut(&mut self.seen).insert(statement_hash(st.as_bytes()));
        Ok(applied)
    }

    /// A statement naming a handle must postdate the handle's current holder getting it.
    fn not_older_than_holder(&self, st: &Statement, handle: &str) -> Result<(), Refusal> {
        let p = self.poc_at(handle)?;
        if st.time_ms() < p.handle_ms {
            return Err(Refusal::OlderThanTarget {
                handle: handle.to_string(),
                signed: st.time_ms(),
                since: p.handle_ms,
            });
        }
        Ok(())
    }

    fn known_key(&self, k: &[u8; 32]) -> Option<IdentityKey> {
        if self.secretariat.as_bytes() == k {
            return Some(self.secretariat);
        }
        if let Some(p) = self.pocs.get(k) {
            return Some(p.key);
        }
        self.authority_keys
            .get(k)
            .and_then(|s| self.authorities.get(s))
            .map(|a| a.key)
    }

    fn role_of(&self, k: &[u8; 32]) -> Option<String> {
        if self.secretariat.as_bytes() == k {
            return Some("the Secretariat".into());
        }
        if let Some(p) = self.pocs.get(k) {
            return Some(format!("POC {}", p.handle));
        }
        self.authority_keys.get(k).map(|s| format!("{s}'s national authority"))
    }

    /// The key may take a new role: not revoked, and no role now.
    fn check_new_key(&self, key: &IdentityKey) -> Result<(), Refusal> {
        if let Some(&index) = self.revoked.get(key.as_bytes()) {
            return Err(Refusal::KeyRevoked { key: short(key), index });
        }
        if let Some(role) = self.role_of(key.as_bytes()) {
            return Err(Refusal::KeyListed { key: short(key), role });
        }
        Ok(())
    }

    fn secretariat_only(&self, st: &Statement) -> Result<(), Refusal> {
        if st.author() != &self.secretariat {
            return Err(Refusal::WrongAuthor {
                action: st.action().kind(),
                expected: format!("the Secretariat key {}", short(&self.secretariat)),
                author: short(st.author()),
            });
        }
        Ok(())
    }

    /// `author` is `state`'s current authority key.
    fn authority_only(&self, action: ActionKind, author: &IdentityKey, state: &str) -> Result<(), Refusal> {
        let Some(auth) = self.authorities.get(state) else {
            return Err(Refusal::NoAuthority(state.into()));
        };
        if &auth.key == author {
            return Ok(());
        }
        if let Some(other) = self.authority_keys.get(author.as_bytes()) {
            return Err(Refusal::OtherState {
                author_state: other.clone(),
                state: state.into(),
            });
        }
        Err(Refusal::WrongAuthor {
            action,
            expected: format!("{state}'s national authority key {}", short(&auth.key)),
            author: short(author),
        })
    }

    fn author_poc(&self, st: &Statement) -> Result<&Arc<Poc>, Refusal> {
        self.pocs.get(st.author().as_bytes()).ok_or_else(|| Refusal::NotAPoc {
            action: st.action().kind(),
            author: short(st.author()),
        })
    }

    fn poc_at(&self, handle: &str) -> Result<&Arc<Poc>, Refusal> {
        self.handles
            .get(handle)
            .and_then(|k| self.pocs.get(k))
            .ok_or_else(|| Refusal::NoSuchHandle(handle.into()))
    }

    fn apply_inner(&mut self, index: u64, st: &Statement) -> Result<Applied, Refusal> {
        if st.origin() != self.origin {
            return Err(Refusal::WrongOrigin {
                expected: self.origin.clone(),
                found: st.origin().into(),
            });
        }
        let kind = st.action().kind();
        if index == 0 && kind != ActionKind::Genesis {
            return Err(Refusal::NotGenesis(kind));
        }
        // Statements reach the log in the order the Secretariat publishes them, not the
        // order they were signed: time is ordered per signer, and no statement twice.
        if let Some(&previous) = self.signed_at.get(st.author().as_bytes()) {
            if st.time_ms() < previous {
                return Err(Refusal::TimeBackwards {
                    previous,
                    found: st.time_ms(),
                });
            }
        }
        if self.seen.contains(&statement_hash(st.as_bytes())) {
            return Err(Refusal::Replayed);
        }
        let mut out = Applied {
            index,
            kind,
            author: *st.author(),
            time_ms: st.time_ms(),
            added: Vec::new(),
            removed: Vec::new(),
            handle_moves: Vec::new(),
            updated: None,
        };
        match st.action() {
            Action::Genesis {
                key_name,
                witnesses,
                quorum,
            } => {
                if index != 0 {
                    return Err(Refusal::GenesisNotFirst);
                }
                self.secretariat_only(st)?;
                if key_name != &self.origin {
                    return Err(Refusal::KeyName {
                        found: key_name.clone(),
                        origin: self.origin.clone(),
                    });
                }
                self.policy = policy(witnesses, *quorum)?;
                out.handle_moves.push(("secretariat".into(), Some(self.secretariat)));
            }
            Action::SecretariatRotate { new_key } => {
                self.secretariat_only(st)?;
                let new_key = key(new_key)?;
                if new_key == self.secretariat {
                    return Err(Refusal::SameSecretariatKey);
                }
                self.check_new_key(&new_key)?;
                self.secretariat = new_key;
                out.handle_moves.push(("secretariat".into(), Some(new_key)));
            }
            Action::WitnessPolicy { witnesses, quorum } => {
                self.secretariat_only(st)?;
                self.policy = policy(witnesses, *quorum)?;
            }
            Action::AuthorityEnrol {
                state,
                key: k,
                name,
                institution,
            } => {
                self.secretariat_only(st)?;
                let k = key(k)?;
                let same = self.authorities.get(state).is_some_and(|a| a.key == k);
                let enrolled_ms = match self.authorities.get(state) {
                    Some(a) if same => a.enrolled_ms,
                    _ => st.time_ms(),
                };
                if !same {
                    self.check_new_key(&k)?;
                }
                if let Some(old) = self.authorities.get(state) {
                    self.authority_keys.remove(old.key.as_bytes());
                }
                self.authority_keys.insert(*k.as_bytes(), state.clone());
                self.authorities.insert(
                    state.clone(),
                    Authority {
                        state: state.clone(),
                        key: k,
                        name: name.clone(),
                        institution: institution.clone(),
                        enrolled_index: index,
                        enrolled_ms,
                    },
                );
                if !same {
                    out.handle_moves.push((format!("{state}.authority"), Some(k)));
                }
            }
            Action::AuthorityRemove { state } => {
                self.secretariat_only(st)?;
                let Some(old) = self.authorities.remove(state) else {
                    return Err(Refusal::NoAuthority(state.clone()));
                };
                self.authority_keys.remove(old.key.as_bytes());
                out.handle_moves.push((format!("{state}.authority"), None));
            }
            Action::Approve {
                nomination,
                public_identity,
                voice_checked_ms,
            } => {
                self.secretariat_only(st)?;
                if *voice_checked_ms > st.time_ms() {
                    return Err(Refusal::VoiceCheckAfterApproval {
                        voice: *voice_checked_ms,
                        approved: st.time_ms(),
                    });
                }
                let nom = Statement::parse_with(nomination, |k| self.known_key(k)).map_err(Refusal::Nomination)?;
                let Action::Nominate {
                    state,
                    category,
                    rank,
                    contact,
                    fingerprint,
                } = nom.action()
                else {
                    return Err(Refusal::NotANomination(nom.action().kind()));
                };
                if nom.origin() != self.origin {
                    return Err(Refusal::WrongOrigin {
                        expected: self.origin.clone(),
                        found: nom.origin().into(),
                    });
                }
                if nom.time_ms() > st.time_ms() {
                    return Err(Refusal::NominationAfterApproval {
                        nominated: nom.time_ms(),
                        approved: st.time_ms(),
                    });
                }
                self.authority_only(ActionKind::Nominate, nom.author(), state)?;
                let public =
                    PublicIdentity::from_bytes(public_identity).map_err(|e| Refusal::PublicIdentity(e.to_string()))?;
                let actual = public.fingerprint();
                if &actual.0 != fingerprint {
                    return Err(Refusal::FingerprintMismatch {
                        nominated: Fingerprint(*fingerprint).short(),
                        actual: actual.short(),
                    });
                }
                let k = *public.key();
                self.check_new_key(&k)?;
                let handle = Handle::poc(state, *category, *rank);
                let handle_text = handle.to_string();
                if self.handles.contains_key(&handle_text) {
                    return Err(Refusal::HandleTaken(handle_text));
                }
                let nomination_hash: [u8; 32] = Sha256::digest(nomination).into();
                if self.approved.contains(&nomination_hash) {
                    return Err(Refusal::AlreadyApproved);
                }
                Arc::make_mut(&mut self.approved).insert(nomination_hash);
                self.handles.insert(handle_text.clone(), *k.as_bytes());
                self.pocs.insert(
                    *k.as_bytes(),
                    Arc::new(Poc {
                        key: k,
                        public,
                        handle,
                        contact: contact.clone(),
                        nominated_by: *nom.author(),
                        enrolled_index: index,
                        handle_index: index,
                        handle_ms: st.time_ms(),
                        updated_index: index,
                        enrolled_ms: st.time_ms(),
                        confirmed_ms: st.time_ms(),
                        voice_checked_ms: *voice_checked_ms,
                    }),
                );
                out.added.push(k);
                out.handle_moves.push((handle_text, Some(k)));
            }
            Action::Nominate { .. } => return Err(Refusal::BareNomination),
            Action::Remove { handle, reason } => {
                let h: Handle = handle.parse()?;
                self.authority_only(kind, st.author(), h.state().unwrap_or_default())?;
                let k = self.poc_at(handle)?.key;
                self.not_older_than_holder(st, handle)?;
                self.handles.remove(handle);
                let poc = self.pocs.remove(k.as_bytes()).expect("handle names a listed POC");
                Arc::make_mut(&mut self.former).push(Former {
                    key: k,
                    handle: poc.handle.clone(),
                    index,
                    reason: reason.clone(),
                    revoked: false,
                });
                out.removed.push(k);
                out.handle_moves.push((handle.clone(), None));
            }
            Action::RankChange { handle, category, rank } => {
                let h: Handle = handle.parse()?;
                let state = h.state().unwrap_or_default().to_string();
                self.authority_only(kind, st.author(), &state)?;
                let k = self.poc_at(handle)?.key;
                self.not_older_than_holder(st, handle)?;
                let new = Handle::poc(&state, *category, *rank);
                let new_text = new.to_string();
                if &new_text == handle {
                    return Err(Refusal::SameHandle(new_text));
                }
                if self.handles.contains_key(&new_text) {
                    return Err(Refusal::HandleTaken(new_text));
                }
                self.handles.remove(handle);
                self.handles.insert(new_text.clone(), *k.as_bytes());
                let poc = Arc::make_mut(self.pocs.get_mut(k.as_bytes()).expect("listed"));
                poc.handle = new;
                poc.handle_index = index;
                poc.handle_ms = st.time_ms();
                poc.updated_index = index;
                out.handle_moves.push((handle.clone(), None));
                out.handle_moves.push((new_text, Some(k)));
                out.updated = Some(k);
            }
            Action::KeyRotation { public_identity } => {
                let current = self.author_poc(st)?;
                let public =
                    PublicIdentity::from_bytes(public_identity).map_err(|e| Refusal::PublicIdentity(e.to_string()))?;
                if public.key() != st.author() {
                    return Err(Refusal::RotationKeyMismatch {
                        author: short(st.author()),
                        found: short(public.key()),
                    });
                }
                let (old, new) = (
                    current.public.encryption_record().serial(),
                    public.encryption_record().serial(),
                );
                if new <= old {
                    return Err(Refusal::SerialNotIncreasing {
                        current: old,
                        found: new,
                    });
                }
                let poc = Arc::make_mut(self.pocs.get_mut(st.author().as_bytes()).expect("listed"));
                poc.public = public;
                poc.updated_index = index;
                out.updated = Some(*st.author());
            }
            Action::Revoke { key: k, reason } => {
                let k = key(k)?;
                if let Some(&at) = self.revoked.get(k.as_bytes()) {
                    return Err(Refusal::KeyRevoked {
                        key: short(&k),
                        index: at,
                    });
                }
                if k == self.secretariat {
                    return Err(Refusal::NotRevocable {
                        key: short(&k),
                        role: "the Secretariat key".into(),
                        what: "replace it with SecretariatRotate",
                    });
                }
                if let Some(state) = self.authority_keys.get(k.as_bytes()) {
                    return Err(Refusal::NotRevocable {
                        key: short(&k),
                        role: format!("{state}'s national authority key"),
                        what: "remove or replace it with AuthorityRemove or AuthorityEnrol",
                    });
                }
                let listed = self.pocs.get(k.as_bytes()).cloned();
                if let Some(p) = &listed {
                    if st.time_ms() < p.enrolled_ms && st.author() != &k {
                        return Err(Refusal::OlderThanTarget {
                            handle: p.handle.to_string(),
                            signed: st.time_ms(),
                            since: p.enrolled_ms,
                        });
                    }
                }
                let author = st.author();
                let allowed = author == &k
                    || author == &self.secretariat
                    || listed
                        .as_ref()
                        .is_some_and(|p| self.authorities.get(p.state()).is_some_and(|a| &a.key == author));
                if !allowed {
                    return Err(Refusal::WrongAuthor {
                        action: kind,
                        expected: if listed.is_some() {
                            "the key itself, its state's national authority or the Secretariat".into()
                        } else {
                            "the key itself or the Secretariat".into()
                        },
                        author: short(author),
                    });
                }
                Arc::make_mut(&mut self.revoked).insert(*k.as_bytes(), index);
                if let Some(poc) = listed {
                    let handle_text = poc.handle.to_string();
                    self.handles.remove(&handle_text);
                    self.pocs.remove(k.as_bytes());
                    Arc::make_mut(&mut self.former).push(Former {
                        key: k,
                        handle: poc.handle.clone(),
                        index,
                        reason: reason.clone(),
                        revoked: true,
                    });
                    out.removed.push(k);
                    out.handle_moves.push((handle_text, None));
                }
            }
            Action::ContactUpdate { contact } => {
                self.author_poc(st)?;
                let poc = Arc::make_mut(self.pocs.get_mut(st.author().as_bytes()).expect("listed"));
                poc.contact = contact.clone();
                poc.confirmed_ms = st.time_ms();
                poc.updated_index = index;
                out.updated = Some(*st.author());
            }
            Action::Confirm => {
                self.author_poc(st)?;
                let poc = Arc::make_mut(self.pocs.get_mut(st.author().as_bytes()).expect("listed"));
                poc.confirmed_ms = st.time_ms();
                poc.updated_index = index;
                out.updated = Some(*st.author());
            }
            Action::PolicyPublish {
                state,
                document,
                version,
                kind: policy_kind,
                date,
                language,
                titles,
                file_name,
                media_type,
                size,
                sha256,
            } => {
                self.authority_only(kind, st.author(), state)?;
                let doc = pocnet_crypto::to_hex(document);
                match self.policies.get(document) {
                    None if *version == 1 => {}
                    None => {
                        return Err(Refusal::NoSuchPolicy {
                            document: doc,
                            version: *version,
                        })
                    }
                    Some(_) if *version == 1 => return Err(Refusal::PolicyDocumentExists { document: doc }),
                    Some(vs) => {
                        let last = vs.last().expect("a listed document has a version");
                        if &last.state != state {
                            return Err(Refusal::PolicyOtherState {
                                document: doc,
                                owner: last.state.clone(),
                                state: state.clone(),
                            });
                        }
                        if *version != last.version + 1 {
                            return Err(Refusal::PolicyVersion {
                                document: doc,
                                latest: last.version,
                                found: *version,
                            });
                        }
                    }
                }
                Arc::make_mut(&mut self.policies)
                    .entry(*document)
                    .or_default()
                    .push(PolicyVersion {
                        state: state.clone(),
                        document: *document,
                        version: *version,
                        kind: *policy_kind,
                        date: date.clone(),
                        language: language.clone(),
                        titles: titles.clone(),
                        file_name: file_name.clone(),
                        media_type: media_type.clone(),
                        size: *size,
                        sha256: *sha256,
                        index,
                        time_ms: st.time_ms(),
                        author: *st.author(),
                    });
            }
        }
        Ok(out)
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// How many leaves have been applied.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The newest applied statement's time (Unix milliseconds), 0 before Genesis.
    pub fn last_time_ms(&self) -> u64 {
        self.last_time_ms
    }
    /// The Secretariat key in force (the genesis key before Genesis).
    pub fn secretariat(&self) -> &IdentityKey {
        &self.secretariat
    }
    /// The witness policy in force.
    pub fn witness_policy(&self) -> &WitnessPolicy {
        &self.policy
    }
    /// A state's national authority, if enrolled.
    pub fn authority(&self, state: &str) -> Option<&Authority> {
        self.authorities.get(state)
    }
    /// Every enrolled national authority, by state code.
    pub fn authorities(&self) -> impl Iterator<Item = &Authority> {
        self.authorities.values()
    }
    /// The POC at exactly this handle (byte for byte: lookalikes find nothing).
    pub fn by_handle(&self, handle: &str) -> Option<&Poc> {
        self.handles.get(handle).and_then(|k| self.pocs.get(k)).map(|p| &**p)
    }
    /// The listed POC with this identity key.
    pub fn by_key(&self, key: &IdentityKey) -> Option<&Poc> {
        self.pocs.get(key.as_bytes()).map(|p| &**p)
    }
    /// Every listed POC of `state` (exact code), in rank order: primary, alternate, further1..9,
    /// the cyber policy contact before the foreign affairs one at each rank.
    pub fn by_state(&self, state: &str) -> Vec<&Poc> {
        let mut v: Vec<&Poc> = self
            .pocs
            .values()
            .filter(|p| p.state() == state)
            .map(|p| &**p)
            .collect();
        v.sort_by_key(|p| {
            let (c, r) = p.category_rank();
            (r, c)
        });
        v
    }
    /// The one listed POC whose fingerprint starts with `prefix` (hex, either case; spaces and
    /// colons ignored; at least [`MIN_PREFIX_DIGITS`] digits).
    pub fn by_fingerprint_prefix(&self, prefix: &str) -> Result<&Poc, LookupError> {
        let clean: String = prefix
            .chars()
            .filter(|c| *c != ' ' && *c != ':')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if !clean.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LookupError::NotHex(prefix.into()));
        }
        if clean.len() < MIN_PREFIX_DIGITS {
            return Err(LookupError::PrefixTooShort(prefix.into()));
        }
        let mut found = self
            .pocs
            .values()
            .filter(|p| p.fingerprint().to_hex().starts_with(&clean));
        let first = found.next();
        let more = found.count();
        match first {
            None => Err(LookupError::NoMatch(clean)),
            Some(p) if more == 0 => Ok(p),
            Some(_) => Err(LookupError::Ambiguous {
                prefix: clean,
                count: more + 1,
            }),
        }
    }
    /// Every listed POC, sorted by handle text.
    pub fn members(&self) -> Vec<&Poc> {
        self.handles
            .values()
            .filter_map(|k| self.pocs.get(k))
            .map(|p| &**p)
            .collect()
    }
    /// How many POCs are listed.
    pub fn member_count(&self) -> usize {
        self.pocs.len()
    }
    /// Whether `key` is a listed POC.
    pub fn is_member(&self, key: &IdentityKey) -> bool {
        self.pocs.contains_key(key.as_bytes())
    }
    /// The log entry that revoked `key`, if it was revoked.
    pub fn revoked_at(&self, key: &IdentityKey) -> Option<u64> {
        self.revoked.get(key.as_bytes()).copied()
    }
    /// POCs removed or revoked, in log order.
    pub fn former(&self) -> &[Former] {
        &self.former
    }
    /// Listed POCs whose records are stale at `now_ms`, sorted by handle.
    pub fn stale(&self, now_ms: u64) -> Vec<&Poc> {
        self.members().into_iter().filter(|p| p.is_stale(now_ms)).collect()
    }
    /// Every policy document: each item is one document's versions, oldest first.
    pub fn policies(&self) -> impl Iterator<Item = &[PolicyVersion]> {
        self.policies.values().map(Vec::as_slice)
    }
    /// One policy document's versions, oldest first.
    pub fn policy(&self, document: &[u8; 16]) -> Option<&[PolicyVersion]> {
        self.policies.get(document).map(Vec::as_slice)
    }
    /// Every listed version whose file has this SHA-256, in log order.
    pub fn policy_by_hash(&self, sha256: &[u8; 32]) -> Vec<&PolicyVersion> {
        let mut v: Vec<&PolicyVersion> = self
            .policies
            .values()
            .flatten()
            .filter(|p| &p.sha256 == sha256)
            .collect();
        v.sort_by_key(|p| p.index);
        v
    }
    /// States with a national authority whose latest policy publication (or, with none, the
    /// authority's enrolment) is more than 365 days before `now_ms`: the annual-update
    /// rule. Each with that time (Unix ms), by state code.
    pub fn policy_stale_states(&self, now_ms: u64) -> Vec<(String, u64)> {
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for p in self.policies.values().flatten() {
            let e = last.entry(p.state.as_str()).or_insert(0);
            *e = (*e).max(p.time_ms);
        }
        self.authorities
            .values()
            .map(|a| {
                let t = last.get(a.state.as_str()).copied().unwrap_or(a.enrolled_ms);
                (a.state.clone(), t)
            })
            .filter(|(_, t)| now_ms.saturating_sub(*t) > STALE_AFTER_MS)
            .collect()
    }
    /// The handle `key` holds now: a POC handle, `XX.authority` or `secretariat`.
    pub fn handle_of(&self, key: &IdentityKey) -> Option<Handle> {
        if key == &self.secretariat {
            return Some(Handle::Secretariat);
        }
        if let Some(p) = self.pocs.get(key.as_bytes()) {
            return Some(p.handle.clone());
        }
        self.authority_keys
            .get(key.as_bytes())
            .map(|s| Handle::Authority { state: s.clone() })
    }
}

fn key(k: &[u8; 32]) -> Result<IdentityKey, Refusal> {
    // Statement parsing has already refused invalid keys; this cannot fail on a parsed statement.
    IdentityKey::from_bytes(k).map_err(|_| {
        Refusal::Malformed(EntryError::Field {
            field: "key",
            reason: "is not a valid Ed25519 key".into(),
        })
    })
}

fn policy(witnesses: &[WitnessKey], quorum: u32) -> Result<WitnessPolicy, Refusal> {
    Ok(WitnessPolicy {
        witnesses: witnesses
            .iter()
            .map(|w| Ok((w.name.clone(), key(&w.key)?)))
            .collect::<Result<_, Refusal>>()?,
        quorum,
    })
}

fn statement_hash(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}
