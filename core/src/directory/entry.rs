//! Directory statements: one log leaf is one signed statement, in exact bytes.
//!
//! ```text
//! 0x01 (version) || postcard(StatementBody) || author key [32] || Ed25519 signature [64]
//! signature over "pocnet/v1/directory\0" || every byte before the signature
//! ```
//!
//! Parsing is strict: the version byte, a postcard body in its one canonical encoding followed
//! by exactly 96 bytes, at most [`MAX_STATEMENT_LEN`] bytes in all, every string inside its
//! bound and free of control characters, every key a valid Ed25519 key, and the signature
//! checked with `verify_strict`. Whether the *author* may make the statement is the
//! [`Directory`](super::Directory)'s business, not this module's.

use std::fmt;
use std::str::FromStr;

use pocnet_crypto::context;
use pocnet_crypto::{Identity, IdentityKey, PublicIdentity};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::iso3166;

/// The statement format version this build writes and reads.
pub const STATEMENT_VERSION: u8 = 1;
/// Largest statement, in bytes, including version, author key and signature.
pub const MAX_STATEMENT_LEN: usize = 16 * 1024;
/// Author key and signature after the body.
const TAIL_LEN: usize = 32 + 64;

/// Bound on names: key and witness names, person, position, institution, authority names.
pub const MAX_NAME: usize = 200;
/// Bound on an e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL: usize = 254;
/// At most this many phone numbers.
pub const MAX_PHONES: usize = 10;
/// Bound on one phone number.
pub const MAX_PHONE: usize = 32;
/// At most this many languages.
pub const MAX_LANGUAGES: usize = 8;
/// Bound on one language tag (the longest BCP 47 tag a registry must store).
pub const MAX_LANGUAGE: usize = 35;
/// Bound on a time zone name.
pub const MAX_TIME_ZONE: usize = 64;
/// Bound on the working-hours text.
pub const MAX_HOURS: usize = 200;
/// Bound on a removal or revocation reason.
pub const MAX_REASON: usize = 500;
/// Bound on a handle's text.
pub const MAX_HANDLE: usize = 32;
/// At most this many witnesses in a policy.
pub const MAX_WITNESSES: usize = 32;
/// At most this many titles on a policy document (one per language).
pub const MAX_POLICY_TITLES: usize = 8;
/// Bound on one policy document title.
pub const MAX_POLICY_TITLE: usize = 500;
/// Bound on a policy document's file name (as attachment names).
pub const MAX_FILE_NAME: usize = 255;
/// Bound on a policy document's media type (RFC 6838: 127 + `/` + 127).
pub const MAX_MEDIA_TYPE: usize = 255;
/// Largest policy document, in plaintext bytes (the envelope body limit).
pub const MAX_POLICY_SIZE: u64 = pocnet_crypto::envelope::MAX_BODY_LEN;

/// What a statement says: signer, time and action, before the author key and signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementBody {
    /// The log's origin (its checkpoint origin line); must equal the log's.
    pub origin: String,
    /// When the author signed, in Unix milliseconds.
    pub time_ms: u64,
    /// What the statement does.
    pub action: Action,
}

/// A witness named in a policy: its note key name and Ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessKey {
    /// The witness's note key name (no whitespace, no `+`).
    pub name: String,
    /// The witness's Ed25519 public key.
    pub key: [u8; 32],
}

/// A POC's category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Category {
    /// A cyber policy contact: handle `{STATE}.{rank}`.
    CyberPolicy,
    /// A foreign affairs contact: handle `{STATE}.fa-{rank}`.
    ForeignAffairs,
}

/// A POC's rank within its state and category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rank {
    /// `primary`.
    Primary,
    /// `alternate`.
    Alternate,
    /// `further1` to `further9`.
    Further(u8),
}

impl Rank {
    fn check(&self) -> Result<(), EntryError> {
        match self {
            Rank::Further(n) if !(1..=9).contains(n) => Err(field("rank", "further rank must be 1 to 9")),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Rank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rank::Primary => f.write_str("primary"),
            Rank::Alternate => f.write_str("alternate"),
            Rank::Further(n) => write!(f, "further{n}"),
        }
    }
}

/// What kind of document a policy publication is. The variant order is the wire format:
/// append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PolicyKind {
    /// A national cyber (security) strategy.
    Strategy,
    /// A white paper.
    WhitePaper,
    /// A law.
    Law,
    /// A regulation.
    Regulation,
    /// Anything else.
    Other,
}

impl PolicyKind {
    /// Every kind, in wire order.
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::Strategy,
        PolicyKind::WhitePaper,
        PolicyKind::Law,
        PolicyKind::Regulation,
        PolicyKind::Other,
    ];
    /// The kind as the CLI spells it: `strategy`, `white-paper`, `law`, `regulation`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Strategy => "strategy",
            PolicyKind::WhitePaper => "white-paper",
            PolicyKind::Law => "law",
            PolicyKind::Regulation => "regulation",
            PolicyKind::Other => "other",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PolicyKind {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Self, EntryError> {
        let t = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.name() == t || (t == "whitepaper" && *k == PolicyKind::WhitePaper))
            .ok_or_else(|| field("policy type", "must be strategy, white-paper, law, regulation or other"))
    }
}

/// A POC's contact details, for out-of-band contact and display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The person's name.
    pub name: String,
    /// Position held.
    pub position: String,
    /// Institution (ministry, agency).
    pub institution: String,
    /// E-mail address.
    pub email: String,
    /// Phone numbers, most preferred first.
    pub phones: Vec<String>,
    /// Languages (BCP 47 tags such as `es`, `en-GB`).
    pub languages: Vec<String>,
    /// Time zone (IANA name such as `America/Santiago`).
    pub time_zone: String,
    /// Working hours, free text.
    pub working_hours: String,
}

impl Contact {
    /// Checks every bound: non-empty name and e-mail (with an `@`), at least one phone.
    pub fn check(&self) -> Result<(), EntryError> {
        text("contact name", &self.name, 1, MAX_NAME)?;
        text("contact position", &self.position, 0, MAX_NAME)?;
        text("contact institution", &self.institution, 0, MAX_NAME)?;
        text("contact email", &self.email, 3, MAX_EMAIL)?;
        if !self.email.contains('@') || self.email.chars().any(char::is_whitespace) {
            return Err(field("contact email", "must be one address with an @ and no spaces"));
        }
        list("contact phones", &self.phones, 1, MAX_PHONES, MAX_PHONE)?;
        list("contact languages", &self.languages, 0, MAX_LANGUAGES, MAX_LANGUAGE)?;
        text("contact time zone", &self.time_zone, 0, MAX_TIME_ZONE)?;
        text("contact working hours", &self.working_hours, 0, MAX_HOURS)?;
        Ok(())
    }
}

/// What a statement does. The variant order is the wire format: append only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Leaf 0 only, by the anchor (Secretariat) key: names the Secretariat's note key and the
    /// first witness policy.
    Genesis {
        /// The Secretariat's note key name; must equal the log origin.
        key_name: String,
        /// Witnesses whose cosignatures count.
        witnesses: Vec<WitnessKey>,
        /// How many distinct witnesses must cosign a checkpoint.
        quorum: u32,
    },
    /// By the current Secretariat key: hands the Secretariat role to a new key.
    SecretariatRotate {
        /// The new Secretariat key.
        new_key: [u8; 32],
    },
    /// By the Secretariat: replaces the witness policy.
    WitnessPolicy {
        /// Witnesses whose cosignatures count.
        witnesses: Vec<WitnessKey>,
        /// How many distinct witnesses must cosign a checkpoint.
        quorum: u32,
    },
    /// By the Secretariat: enrols (or replaces) a state's national authority key.
    AuthorityEnrol {
        /// ISO 3166-1 alpha-2 code.
        state: String,
        /// The national authority's key.
        key: [u8; 32],
        /// Name of the authority (office or person).
        name: String,
        /// Institution it belongs to.
        institution: String,
    },
    /// By the Secretariat: removes a state's national authority.
    AuthorityRemove {
        /// ISO 3166-1 alpha-2 code.
        state: String,
    },
    /// By the Secretariat, after the voice check: approves a nomination, listing the POC.
    Approve {
        /// A complete [`Statement`] whose action is [`Action::Nominate`], by the state's authority.
        nomination: Vec<u8>,
        /// The POC's [`PublicIdentity`] bytes.
        public_identity: Vec<u8>,
        /// When the Secretariat heard the fingerprint read aloud (Unix milliseconds).
        voice_checked_ms: u64,
    },
    /// By a state's authority; valid only inside [`Action::Approve`].
    Nominate {
        /// ISO 3166-1 alpha-2 code.
        state: String,
        /// The POC's category.
        category: Category,
        /// The POC's rank.
        rank: Rank,
        /// The POC's contact details.
        contact: Contact,
        /// The fingerprint of the POC's identity key, as read aloud.
        fingerprint: [u8; 32],
    },
    /// By the authority of the handle's state: removes a POC, freeing its handle.
    Remove {
        /// The POC's handle.
        handle: String,
        /// Why, for the record.
        reason: String,
    },
    /// By the authority of the handle's state: moves a POC to another (free) handle.
    RankChange {
        /// The POC's current handle.
        handle: String,
        /// The new category.
        category: Category,
        /// The new rank.
        rank: Rank,
    },
    /// By the POC itself: replaces its public identity (same identity key, new encryption key).
    KeyRotation {
        /// The new [`PublicIdentity`] bytes.
        public_identity: Vec<u8>,
    },
    /// By the key itself, its state's authority, or the Secretariat: revokes a key forever.
    Revoke {
        /// The revoked key.
        key: [u8; 32],
        /// Why, for the record.
        reason: String,
    },
    /// By the POC itself: new contact details (also confirms them).
    ContactUpdate {
        /// The new contact details.
        contact: Contact,
    },
    /// By the POC itself: the details are still correct.
    Confirm,
    /// By a state's national authority: publishes version `version` of a policy document.
    PolicyPublish {
        /// ISO 3166-1 alpha-2 code; must be the author's state.
        state: String,
        /// Stable id across versions; chosen at random for version 1.
        document: [u8; 16],
        /// 1 for a new document, else exactly the latest listed version + 1.
        version: u32,
        /// What kind of document.
        kind: PolicyKind,
        /// The document's own date, `YYYY-MM-DD` (a real date).
        date: String,
        /// The document's language: ISO 639-1, two lower-case letters.
        language: String,
        /// (ISO 639-1 language, title); the first is in `language`; 1 to 8, languages unique.
        titles: Vec<(String, String)>,
        /// The file's name: no path separators.
        file_name: String,
        /// Its media type, such as `application/pdf`.
        media_type: String,
        /// Plaintext size in bytes.
        size: u64,
        /// SHA-256 of the plaintext file.
        sha256: [u8; 32],
    },
}

/// An [`Action`]'s variant without its data, for reports and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ActionKind {
    Genesis,
    SecretariatRotate,
    WitnessPolicy,
    AuthorityEnrol,
    AuthorityRemove,
    Approve,
    Nominate,
    Remove,
    RankChange,
    KeyRotation,
    Revoke,
    ContactUpdate,
    Confirm,
    PolicyPublish,
}

impl ActionKind {
    /// The variant's name, as in the format.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Genesis => "Genesis",
            ActionKind::SecretariatRotate => "SecretariatRotate",
            ActionKind::WitnessPolicy => "WitnessPolicy",
            ActionKind::AuthorityEnrol => "AuthorityEnrol",
            ActionKind::AuthorityRemove => "AuthorityRemove",
            ActionKind::Approve => "Approve",
            ActionKind::Nominate => "Nominate",
            ActionKind::Remove => "Remove",
            ActionKind::RankChange => "RankChange",
            ActionKind::KeyRotation => "KeyRotation",
            ActionKind::Revoke => "Revoke",
            ActionKind::ContactUpdate => "ContactUpdate",
            ActionKind::Confirm => "Confirm",
            ActionKind::PolicyPublish => "PolicyPublish",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Action {
    /// The variant without its data.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Genesis { .. } => ActionKind::Genesis,
            Action::SecretariatRotate { .. } => ActionKind::SecretariatRotate,
            Action::WitnessPolicy { .. } => ActionKind::WitnessPolicy,
            Action::AuthorityEnrol { .. } => ActionKind::AuthorityEnrol,
            Action::AuthorityRemove { .. } => ActionKind::AuthorityRemove,
            Action::Approve { .. } => ActionKind::Approve,
            Action::Nominate { .. } => ActionKind::Nominate,
            Action::Remove { .. } => ActionKind::Remove,
            Action::RankChange { .. } => ActionKind::RankChange,
            Action::KeyRotation { .. } => ActionKind::KeyRotation,
            Action::Revoke { .. } => ActionKind::Revoke,
            Action::ContactUpdate { .. } => ActionKind::ContactUpdate,
            Action::Confirm => ActionKind::Confirm,
            Action::PolicyPublish { .. } => ActionKind::PolicyPublish,
        }
    }

    /// Checks every bound that does not need the directory: string lengths and characters,
    /// assigned state codes, valid keys, handle syntax, witness policies.
    pub fn check(&self) -> Result<(), EntryError> {
        match self {
            Action::Genesis {
                key_name,
                witnesses,
                quorum,
            } => {
                note_name("key name", key_name)?;
                witness_policy(witnesses, *quorum)
            }
            Action::SecretariatRotate { new_key } => key("new Secretariat key", new_key).map(drop),
            Action::WitnessPolicy { witnesses, quorum } => witness_policy(witnesses, *quorum),
            Action::AuthorityEnrol {
                state,
                key: k,
                name,
                institution,
            } => {
                state_code(state)?;
                key("authority key", k)?;
                text("authority name", name, 1, MAX_NAME)?;
                text("authority institution", institution, 0, MAX_NAME)
            }
            Action::AuthorityRemove { state } => state_code(state),
            Action::Approve {
                nomination,
                public_identity,
                ..
            } => {
                if nomination.is_empty() {
                    return Err(field("nomination", "is empty"));
                }
                if public_identity.is_empty() {
                    return Err(field("public identity", "is empty"));
                }
                Ok(())
            }
            Action::Nominate {
                state, rank, contact, ..
            } => {
                state_code(state)?;
                rank.check()?;
                contact.check()
            }
            Action::Remove { handle, reason } => {
                poc_handle(handle)?;
                text("reason", reason, 0, MAX_REASON)
            }
            Action::RankChange { handle, rank, .. } => {
                poc_handle(handle)?;
                rank.check()
            }
            Action::KeyRotation { public_identity } => {
                if public_identity.is_empty() {
                    return Err(field("public identity", "is empty"));
                }
                Ok(())
            }
            Action::Revoke { key: k, reason } => {
                key("revoked key", k)?;
                text("reason", reason, 0, MAX_REASON)
            }
            Action::ContactUpdate { contact } => contact.check(),
            Action::Confirm => Ok(()),
            Action::PolicyPublish {
                state,
                version,
                date,
                language,
                titles,
                file_name,
                media_type,
                size,
                ..
            } => {
                state_code(state)?;
                if *version == 0 {
                    return Err(field("policy version", "must be 1 or more"));
                }
                policy_date(date)?;
                language_code("policy language", language)?;
                if titles.is_empty() || titles.len() > MAX_POLICY_TITLES {
                    return Err(field(
                        "policy titles",
                        format!("must be 1 to {MAX_POLICY_TITLES}; there are {}", titles.len()),
                    ));
                }
                for (i, (lang, title)) in titles.iter().enumerate() {
                    language_code("policy title language", lang)?;
                    text("policy title", title, 1, MAX_POLICY_TITLE)?;
                    if titles[..i].iter().any(|(l, _)| l == lang) {
                        return Err(field(
                            "policy titles",
                            format!("give one title per language; {lang} is twice"),
                        ));
                    }
                }
                if &titles[0].0 != language {
                    return Err(field(
                        "policy titles",
                        format!("the first title must be in the document's language {language}"),
                    ));
                }
                file_name_check(file_name)?;
                if media_type.len() > MAX_MEDIA_TYPE
                    || !media_type.bytes().all(|b| b.is_ascii_graphic())
                    || !media_type
                        .split_once('/')
                        .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'))
                {
                    return Err(field(
                        "policy media type",
                        format!("must be type/subtype in printable ASCII, at most {MAX_MEDIA_TYPE} bytes"),
                    ));
                }
                if *size > MAX_POLICY_SIZE {
                    return Err(field(
                        "policy size",
                        format!("is over the limit of {MAX_POLICY_SIZE} bytes"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// `YYYY-MM-DD`, a real calendar date from year 1900 to 9999.
fn policy_date(s: &str) -> Result<(), EntryError> {
    let bad = || field("policy date", format!("{s:?} is not a real date written YYYY-MM-DD"));
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, EntryError> {
        if b[r.clone()].iter().all(u8::is_ascii_digit) {
            Ok(s[r].parse().map_err(|_| bad())?)
        } else {
            Err(bad())
        }
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if y < 1900 || d == 0 || d > days {
        return Err(bad());
    }
    Ok(())
}

/// An ISO 639-1 code: two lower-case ASCII letters.
fn language_code(name: &'static str, s: &str) -> Result<(), EntryError> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(field(
            name,
            format!("{s:?} is not a two-letter ISO 639-1 code such as es or en"),
        ))
    }
}

/// A file name: 1 to 255 bytes, no path separators, not `.` or `..`, no control characters.
fn file_name_check(s: &str) -> Result<(), EntryError> {
    text("policy file name", s, 1, MAX_FILE_NAME)?;
    if s.contains(['/', '\\']) || s == "." || s == ".." {
        return Err(field("policy file name", "must be a plain file name, with no path"));
    }
    Ok(())
}

/// Why a statement's bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EntryError {
    /// Longer than [`MAX_STATEMENT_LEN`].
    #[error("statement is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too short to hold a version, a body, a key and a signature.
    #[error("statement is only {0} bytes, too short to be one")]
    TooShort(usize),
    /// Not version 1.
    #[error("unsupported statement version {0} (this build speaks version 1)")]
    Version(u8),
    /// The body does not decode.
    #[error("statement body does not decode: {0}")]
    Decode(String),
    /// The body is not followed by exactly the author key and signature.
    #[error("statement body is followed by {0} bytes where exactly 96 (author key and signature) belong")]
    Tail(usize),
    /// The body decodes but is not in postcard's one canonical encoding.
    #[error("statement body is not in canonical encoding")]
    NonCanonical,
    /// The author key is not a valid Ed25519 key.
    #[error("author key is not a valid Ed25519 key")]
    BadAuthorKey,
    /// The signature does not verify under the author key.
    #[error("signature does not verify under the statement's author key")]
    BadSignature,
    /// A field breaks its bound or syntax.
    #[error("{field} {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong, in plain words.
        reason: String,
    },
}

fn field(field: &'static str, reason: impl Into<String>) -> EntryError {
    EntryError::Field {
        field,
        reason: reason.into(),
    }
}

/// Bidirectional formatting characters that can make text display as other text.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `s` is `min..=max` bytes of UTF-8 with no control or bidirectional formatting characters.
fn text(name: &'static str, s: &str, min: usize, max: usize) -> Result<(), EntryError> {
    if s.len() > max {
        return Err(field(name, format!("is {} bytes; the limit is {max}", s.len())));
    }
    if s.len() < min {
        return Err(field(
            name,
            if min == 1 {
                "is empty".to_string()
            } else {
                format!("is shorter than {min} bytes")
            },
        ));
    }
    if s.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(field(name, "contains a control or text-direction character"));
    }
    Ok(())
}

fn list(name: &'static str, items: &[String], min: usize, max: usize, each: usize) -> Result<(), EntryError> {
    if items.len() > max {
        return Err(field(name, format!("has {} entries; the limit is {max}", items.len())));
    }
    if items.len() < min {
        return Err(field(name, "is empty"));
    }
    items.iter().try_for_each(|s| text(name, s, 1, each))
}

/// A C2SP note key name: 1..=200 printable ASCII characters, no space, no `+`.
fn note_name(name: &'static str, s: &str) -> Result<(), EntryError> {
    if s.is_empty() || s.len() > MAX_NAME {
        return Err(field(name, format!("must be 1 to {MAX_NAME} characters")));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic() && b != b'+') {
        return Err(field(name, "must be printable ASCII with no spaces and no +"));
    }
    Ok(())
}

fn state_code(s: &str) -> Result<(), EntryError> {
    if iso3166::is_assigned(s) {
        Ok(())
    } else {
        Err(field(
            "state",
            format!("{s:?} is not an assigned ISO 3166-1 alpha-2 code"),
        ))
    }
}

fn key(name: &'static str, k: &[u8; 32]) -> Result<IdentityKey, EntryError> {
    IdentityKey::from_bytes(k).map_err(|_| field(name, "is not a valid Ed25519 key"))
}

fn poc_handle(s: &str) -> Result<(), EntryError> {
    match s.parse::<Handle>()? {
        Handle::Poc { .. } => Ok(()),
        _ => Err(field("handle", format!("{s:?} is not a POC handle"))),
    }
}

fn witness_policy(witnesses: &[WitnessKey], quorum: u32) -> Result<(), EntryError> {
    if witnesses.len() > MAX_WITNESSES {
        return Err(field("witnesses", format!("at most {MAX_WITNESSES} are allowed")));
    }
    for (i, w) in witnesses.iter().enumerate() {
        note_name("witness name", &w.name)?;
        key("witness key", &w.key)?;
        if witnesses[..i].iter().any(|o| o.name == w.name || o.key == w.key) {
            return Err(field(
                "witnesses",
                format!("{:?} is listed twice (by name or key)", w.name),
            ));
        }
    }
    if quorum as usize > witnesses.len() {
        return Err(field(
            "witness quorum",
            format!("{quorum} is more than the {} witnesses listed", witnesses.len()),
        ));
    }
    Ok(())
}

/// A parsed, signature-checked statement with its exact bytes.
#[derive(Clone, Debug)]
pub struct Statement {
    bytes: Vec<u8>,
    body: StatementBody,
    author: IdentityKey,
}

impl Statement {
    /// Parses strictly and verifies the author's signature (see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<Self, EntryError> {
        Self::parse_with(bytes, |_| None)
    }

    /// As [`Statement::parse`], taking the author key from `known` when it holds these bytes
    /// (an already validated key), which saves decoding the point again.
    pub(crate) fn parse_with(
        bytes: &[u8],
        known: impl FnOnce(&[u8; 32]) -> Option<IdentityKey>,
    ) -> Result<Self, EntryError> {
        if bytes.len() > MAX_STATEMENT_LEN {
            return Err(EntryError::TooLarge {
                len: bytes.len(),
                max: MAX_STATEMENT_LEN,
            });
        }
        if bytes.len() < 1 + TAIL_LEN + 1 {
            return Err(EntryError::TooShort(bytes.len()));
        }
        if bytes[0] != STATEMENT_VERSION {
            return Err(EntryError::Version(bytes[0]));
        }
        let (body, rest) =
            postcard::take_from_bytes::<StatementBody>(&bytes[1..]).map_err(|e| EntryError::Decode(e.to_string()))?;
        if rest.len() != TAIL_LEN {
            return Err(EntryError::Tail(rest.len()));
        }
        let body_end = bytes.len() - TAIL_LEN;
        // postcard accepts over-long varints; one meaning must have one encoding.
        let canonical = postcard::to_allocvec(&body).map_err(|e| EntryError::Decode(e.to_string()))?;
        if canonical[..] != bytes[1..body_end] {
            return Err(EntryError::NonCanonical);
        }
        text("origin", &body.origin, 1, MAX_NAME)?;
        body.action.check()?;
        let key_bytes: [u8; 32] = bytes[body_end..body_end + 32].try_into().expect("32 bytes");
        let author = match known(&key_bytes) {
            Some(k) if k.as_bytes() == &key_bytes => k,
            _ => IdentityKey::from_bytes(&key_bytes).map_err(|_| EntryError::BadAuthorKey)?,
        };
        let sig: [u8; 64] = bytes[body_end + 32..].try_into().expect("64 bytes");
        let signed = &bytes[..body_end + 32];
        author
            .verify(context::DIRECTORY, signed, &sig, "directory statement")
            .map_err(|_| EntryError::BadSignature)?;
        Ok(Statement {
            bytes: bytes.to_vec(),
            body,
            author,
        })
    }

    /// Checks the body's bounds, encodes it, and signs it with `author`.
    pub fn sign(author: &Identity, body: StatementBody) -> Result<Self, EntryError> {
        text("origin", &body.origin, 1, MAX_NAME)?;
        body.action.check()?;
        let encoded = postcard::to_allocvec(&body).map_err(|e| EntryError::Decode(e.to_string()))?;
        let mut bytes = Vec::with_capacity(1 + encoded.len() + TAIL_LEN);
        bytes.push(STATEMENT_VERSION);
        bytes.extend_from_slice(&encoded);
        bytes.extend_from_slice(author.public_key().as_bytes());
        let sig = author.sign(context::DIRECTORY, &bytes);
        bytes.extend_from_slice(&sig);
        if bytes.len() > MAX_STATEMENT_LEN {
            return Err(EntryError::TooLarge {
                len: bytes.len(),
                max: MAX_STATEMENT_LEN,
            });
        }
        Ok(Statement {
            bytes,
            body,
            author: *author.public_key(),
        })
    }

    /// The exact bytes (the log leaf).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Consumes the statement, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
    /// What the statement says.
    pub fn body(&self) -> &StatementBody {
        &self.body
    }
    /// The action.
    pub fn action(&self) -> &Action {
        &self.body.action
    }
    /// The origin named in the statement.
    pub fn origin(&self) -> &str {
        &self.body.origin
    }
    /// When the author signed (Unix milliseconds).
    pub fn time_ms(&self) -> u64 {
        self.body.time_ms
    }
    /// The key that signed the statement.
    pub fn author(&self) -> &IdentityKey {
        &self.author
    }
}

/// Signs statements for one log with one identity: the builder for every action.
pub struct Author<'a> {
    identity: &'a Identity,
    origin: String,
}

impl<'a> Author<'a> {
    /// Statements for the log `origin`, signed by `identity`.
    pub fn new(identity: &'a Identity, origin: impl Into<String>) -> Self {
        Author {
            identity,
            origin: origin.into(),
        }
    }
    /// The signing identity's key.
    pub fn key(&self) -> &IdentityKey {
        self.identity.public_key()
    }
    /// Signs any action at `time_ms`.
    pub fn sign(&self, time_ms: u64, action: Action) -> Result<Statement, EntryError> {
        Statement::sign(
            self.identity,
            StatementBody {
                origin: self.origin.clone(),
                time_ms,
                action,
            },
        )
    }
    /// Leaf 0: the Secretariat's note key name is the origin.
    pub fn genesis(&self, time_ms: u64, witnesses: Vec<WitnessKey>, quorum: u32) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::Genesis {
                key_name: self.origin.clone(),
                witnesses,
                quorum,
            },
        )
    }
    /// Secretariat: hands the role to `new_key`.
    pub fn secretariat_rotate(&self, time_ms: u64, new_key: &IdentityKey) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::SecretariatRotate {
                new_key: *new_key.as_bytes(),
            },
        )
    }
    /// Secretariat: a new witness policy.
    pub fn witness_policy(
        &self,
        time_ms: u64,
        witnesses: Vec<WitnessKey>,
        quorum: u32,
    ) -> Result<Statement, EntryError> {
        self.sign(time_ms, Action::WitnessPolicy { witnesses, quorum })
    }
    /// Secretariat: enrols `key` as `state`'s national authority.
    pub fn authority_enrol(
        &self,
        time_ms: u64,
        state: &str,
        key: &IdentityKey,
        name: &str,
        institution: &str,
    ) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::AuthorityEnrol {
                state: state.into(),
                key: *key.as_bytes(),
                name: name.into(),
                institution: institution.into(),
            },
        )
    }
    /// Secretariat: removes `state`'s national authority.
    pub fn authority_remove(&self, time_ms: u64, state: &str) -> Result<Statement, EntryError> {
        self.sign(time_ms, Action::AuthorityRemove { state: state.into() })
    }
    /// National authority: nominates the holder of `public` (to be wrapped in an approval).
    pub fn nominate(
        &self,
        time_ms: u64,
        state: &str,
        category: Category,
        rank: Rank,
        contact: Contact,
        public: &PublicIdentity,
    ) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::Nominate {
                state: state.into(),
                category,
                rank,
                contact,
                fingerprint: public.fingerprint().0,
            },
        )
    }
    /// Secretariat: approves `nomination` for `public` after the voice check.
    pub fn approve(
        &self,
        time_ms: u64,
        nomination: &Statement,
        public: &PublicIdentity,
        voice_checked_ms: u64,
    ) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::Approve {
                nomination: nomination.as_bytes().to_vec(),
                public_identity: public.to_bytes(),
                voice_checked_ms,
            },
        )
    }
    /// National authority: removes the POC at `handle`.
    pub fn remove(&self, time_ms: u64, handle: &str, reason: &str) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::Remove {
                handle: handle.into(),
                reason: reason.into(),
            },
        )
    }
    /// National authority: moves the POC at `handle` to `category` and `rank`.
    pub fn rank_change(
        &self,
        time_ms: u64,
        handle: &str,
        category: Category,
        rank: Rank,
    ) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::RankChange {
                handle: handle.into(),
                category,
                rank,
            },
        )
    }
    /// POC: publishes its new public identity.
    pub fn key_rotation(&self, time_ms: u64, public: &PublicIdentity) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::KeyRotation {
                public_identity: public.to_bytes(),
            },
        )
    }
    /// The key itself, its authority or the Secretariat: revokes `key` forever.
    pub fn revoke(&self, time_ms: u64, key: &IdentityKey, reason: &str) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::Revoke {
                key: *key.as_bytes(),
                reason: reason.into(),
            },
        )
    }
    /// POC: new contact details.
    pub fn contact_update(&self, time_ms: u64, contact: Contact) -> Result<Statement, EntryError> {
        self.sign(time_ms, Action::ContactUpdate { contact })
    }
    /// National authority: publishes a version of a policy document of its state.
    #[allow(clippy::too_many_arguments)]
    pub fn policy_publish(
        &self,
        time_ms: u64,
        state: &str,
        document: [u8; 16],
        version: u32,
        kind: PolicyKind,
        date: &str,
        language: &str,
        titles: Vec<(String, String)>,
        file_name: &str,
        media_type: &str,
        size: u64,
        sha256: [u8; 32],
    ) -> Result<Statement, EntryError> {
        self.sign(
            time_ms,
            Action::PolicyPublish {
                state: state.into(),
                document,
                version,
                kind,
                date: date.into(),
                language: language.into(),
                titles,
                file_name: file_name.into(),
                media_type: media_type.into(),
                size,
                sha256,
            },
        )
    }
    /// POC: details still correct.
    pub fn confirm(&self, time_ms: u64) -> Result<Statement, EntryError> {
        self.sign(time_ms, Action::Confirm)
    }
}

/// A directory handle: `CL.primary`, `CL.fa-alternate`, `CL.further2`, `CL.authority`,
/// `secretariat`. ASCII only; parsing is exact (no case folding, no lookalikes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Handle {
    /// A POC's handle.
    Poc {
        /// ISO 3166-1 alpha-2 code.
        state: String,
        /// Category.
        category: Category,
        /// Rank.
        rank: Rank,
    },
    /// A state's national authority: `{STATE}.authority`.
    Authority {
        /// ISO 3166-1 alpha-2 code.
        state: String,
    },
    /// The Secretariat: `secretariat`.
    Secretariat,
}

impl Handle {
    /// A POC handle.
    pub fn poc(state: &str, category: Category, rank: Rank) -> Self {
        Handle::Poc {
            state: state.into(),
            category,
            rank,
        }
    }
    /// The state the handle belongs to (none for the Secretariat).
    pub fn state(&self) -> Option<&str> {
        match self {
            Handle::Poc { state, .. } | Handle::Authority { state } => Some(state),
            Handle::Secretariat => None,
        }
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handle::Poc {
                state,
                category: Category::CyberPolicy,
                rank,
            } => write!(f, "{state}.{rank}"),
            Handle::Poc {
                state,
                category: Category::ForeignAffairs,
                rank,
            } => write!(f, "{state}.fa-{rank}"),
            Handle::Authority { state } => write!(f, "{state}.authority"),
            Handle::Secretariat => f.write_str("secretariat"),
        }
    }
}

impl FromStr for Handle {
    type Err = EntryError;

    fn from_str(s: &str) -> Result<Self, EntryError> {
        let bad = || {
            field("handle", format!("{s:?} is not a handle (like CL.primary, CL.fa-alternate, CL.further2, CL.authority or secretariat)"))
        };
        if s.len() > MAX_HANDLE || !s.is_ascii() {
            return Err(bad());
        }
        if s == "secretariat" {
            return Ok(Handle::Secretariat);
        }
        let (state, rest) = s.split_once('.').ok_or_else(bad)?;
        if !iso3166::is_assigned(state) {
            return Err(bad());
        }
        let state = state.to_string();
        if rest == "authority" {
            return Ok(Handle::Authority { state });
        }
        let (category, rank) = match rest.strip_prefix("fa-") {
            Some(r) => (Category::ForeignAffairs, r),
            None => (Category::CyberPolicy, rest),
        };
        let rank = match rank {
            "primary" => Rank::Primary,
            "alternate" => Rank::Alternate,
            r => match r.strip_prefix("further") {
                Some(d) if d.len() == 1 && (b'1'..=b'9').contains(&d.as_bytes()[0]) => {
                    Rank::Further(d.as_bytes()[0] - b'0')
                }
                _ => return Err(bad()),
            },
        };
        Ok(Handle::Poc { state, category, rank })
    }
}
