//! C2SP signed notes (<https://c2sp.org/signed-note>), transparency-log checkpoints
//! (<https://c2sp.org/tlog-checkpoint>) and Ed25519 cosignatures
//! (<https://c2sp.org/tlog-cosignature>, `cosignature/v1`).
//!
//! A signed note is UTF-8 text: body lines each ending in `\n`, one blank line, then one
//! or more signature lines `— <name> <base64(key id || payload)>\n`. Parsing is strict:
//! a text that is not in its one canonical form is refused rather than repaired.
//!
//! Note signatures are raw Ed25519 with no pocnet signing context, as the formats require;
//! see [`Identity::sign_note`] for why this cannot be confused with any other pocnet
//! signature. The byte formats are in PROTOCOL.md §11.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::identity::{Identity, IdentityKey};
use crate::tlog::Hash;

/// Largest signed-note text accepted, in bytes.
pub const MAX_NOTE_LEN: usize = 64 * 1024;
/// Most signature lines accepted in one note.
pub const MAX_SIGNATURES: usize = 64;
/// Signature type of an Ed25519 note signature.
pub const TYPE_ED25519: u8 = 0x01;
/// Signature type of an Ed25519 `cosignature/v1` (timestamped witness cosignature).
pub const TYPE_COSIGNATURE_V1: u8 = 0x04;

/// The signature-line prefix: U+2014 EM DASH and one space.
const SIG_PREFIX: &str = "\u{2014} ";
const ED25519_SIG_LEN: usize = 64;
const COSIG_PAYLOAD_LEN: usize = 8 + ED25519_SIG_LEN;

/// The key id of a signer: the first four bytes of
/// SHA-256(`name` || `\n` || `sig_type` || `public key`).
pub fn key_id(name: &str, sig_type: u8, key: &IdentityKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([sig_type]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Whether `name` may name a key: non-empty, no whitespace, no `+`, no control characters.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// Note text allows no control character except `\n` (so no CR, no tab, no NUL).
fn check_text(text: &str) -> Result<()> {
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::Note("text contains a control character other than newline"));
    }
    Ok(())
}

/// Strict standard base64 with padding: decodes only the one canonical encoding.
fn b64_decode(s: &str, what: &'static str) -> Result<Vec<u8>> {
    let v = STANDARD.decode(s).map_err(|_| Error::Note(what))?;
    if STANDARD.encode(&v) != s {
        return Err(Error::Note(what));
    }
    Ok(v)
}

/// A transparency-log checkpoint: the body of the log's signed note.
///
/// Exactly three lines: `<origin>\n<size>\n<base64 root>\n`; pocnet refuses extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (its unique name).
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// The tree's root hash (RFC 9162).
    pub root: Hash,
}

impl Checkpoint {
    /// The note body: origin, decimal size and standard padded base64 root, one per line.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// Parses a checkpoint body strictly (the inverse of [`Checkpoint::body`]).
    pub fn parse_body(body: &str) -> Result<Self> {
        check_text(body)?;
        let lines = body
            .strip_suffix('\n')
            .ok_or(Error::Note("checkpoint does not end in a newline"))?;
        let mut it = lines.split('\n');
        let (Some(origin), Some(size), Some(root)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::Note("checkpoint has fewer than three lines"));
        };
        if it.next().is_some() {
            return Err(Error::Note("checkpoint has extension lines (not accepted)"));
        }
        if origin.is_empty() {
            return Err(Error::Note("checkpoint origin is empty"));
        }
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || (size.len() > 1 && size.starts_with('0')) {
            return Err(Error::Note(
                "checkpoint size is not a decimal number without leading zeros",
            ));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| Error::Note("checkpoint size does not fit in 64 bits"))?;
        let root: Hash = b64_decode(root, "checkpoint root is not canonical base64")?
            .try_into()
            .map_err(|_| Error::Note("checkpoint root is not 32 bytes"))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The signer's key name.
    pub name: String,
    /// The signer's key id ([`key_id`]).
    pub key_id: [u8; 4],
    /// The bytes after the key id: a 64-byte Ed25519 signature for type 0x01, time (8 bytes,
    /// big-endian) and signature for a `cosignature/v1`, anything for unknown key types.
    pub payload: Vec<u8>,
}

impl NoteSignature {
    /// The signature line, including the leading em dash and the final newline.
    pub fn line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.payload.len());
        raw.extend_from_slice(&self.key_id);
        raw.extend_from_slice(&self.payload);
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(raw))
    }

    fn parse_line(line: &str) -> Result<Self> {
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(Error::Note("signature line does not start with an em dash and a space"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(Error::Note("signature line has no space between name and signature"))?;
        if !is_valid_name(name) {
            return Err(Error::Note("signature line has an invalid key name"));
        }
        let raw = b64_decode(b64, "signature is not canonical base64")?;
        if raw.len() < 5 {
            return Err(Error::Note("signature is shorter than a key id and one byte"));
        }
        Ok(NoteSignature {
            name: name.to_string(),
            key_id: [raw[0], raw[1], raw[2], raw[3]],
            payload: raw[4..].to_vec(),
        })
    }
}

/// A note with its signature lines (not yet verified: see [`NoteVerifier::verify`] and
/// [`Witness::verify_cosignature`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text: every byte before the blank line, including the last `\n`.
    pub body: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses note text strictly: at most [`MAX_NOTE_LEN`] bytes and [`MAX_SIGNATURES`]
    /// signature lines, no control character but `\n` (so no CR), a blank line before the
    /// signatures, canonical base64, and no two lines with the same name and key id.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_NOTE_LEN {
            return Err(Error::TooLarge {
                field: "signed note",
                len: text.len() as u64,
                max: MAX_NOTE_LEN as u64,
            });
        }
        check_text(text)?;
        if !text.ends_with('\n') {
            return Err(Error::Note("text does not end in a newline"));
        }
        // Signature lines are never empty, so the last blank line is the separator.
        let split = text
            .rfind("\n\n")
            .ok_or(Error::Note("no blank line between the text and its signatures"))?;
        let body = &text[..split + 1];
        let sigs = &text[split + 2..];
        if sigs.is_empty() {
            return Err(Error::Note("no signature lines"));
        }
        let mut signatures = Vec::new();
        let mut seen = HashSet::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(Error::TooLarge {
                    field: "signature lines",
                    len: sigs.split('\n').count() as u64 - 1,
                    max: MAX_SIGNATURES as u64,
                });
            }
            let sig = NoteSignature::parse_line(line)?;
            if !seen.insert((sig.name.clone(), sig.key_id)) {
                return Err(Error::Note("two signature lines with the same name and key id"));
            }
            signatures.push(sig);
        }
        Ok(SignedNote {
            body: body.to_string(),
            signatures,
        })
    }

    /// The note text: body, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut s = self.body.clone();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.line());
        }
        s
    }

    /// The body parsed as a checkpoint ([`Checkpoint::parse_body`]).
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        Checkpoint::parse_body(&self.body)
    }

    /// The signature line with this name and key id, if any.
    pub fn find(&self, name: &str, key_id: [u8; 4]) -> Option<&NoteSignature> {
        self.signatures.iter().find(|s| s.name == name && s.key_id == key_id)
    }
}

/// An Ed25519 note signer's public half (signature type 0x01), e.g. a log's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    /// The key name (for a log, normally its origin).
    pub name: String,
    /// The Ed25519 public key.
    pub key: IdentityKey,
}

impl NoteVerifier {
    /// The key id ([`key_id`] with type 0x01).
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, TYPE_ED25519, &self.key)
    }

    /// The C2SP verifier key text: `<name>+<8 hex key id>+<base64(0x01 || key)>`.
    pub fn vkey(&self) -> String {
        let mut raw = vec![TYPE_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            crate::to_hex(&self.key_id()),
            STANDARD.encode(raw)
        )
    }

    /// Parses verifier key text strictly: valid name, lowercase hex key id that matches
    /// the key, type 0x01, a valid (not weak) Ed25519 key.
    pub fn parse_vkey(s: &str) -> Result<Self> {
        let (name, key) = parse_vkey(s, TYPE_ED25519)?;
        Ok(NoteVerifier { name, key })
    }

    /// Checks that `note` carries a valid signature by this key: the line with this name
    /// and key id must verify. Lines by other keys are ignored.
    pub fn verify(&self, note: &SignedNote) -> Result<()> {
        let sig = note
            .find(&self.name, self.key_id())
            .ok_or_else(|| Error::NotSignedBy(self.name.clone()))?;
        let sig: &[u8; ED25519_SIG_LEN] = sig
            .payload
            .as_slice()
            .try_into()
            .map_err(|_| Error::Note("Ed25519 note signature is not 64 bytes"))?;
        self.key.verify_note(note.body.as_bytes(), sig, "signed note")
    }
}

fn parse_vkey(s: &str, sig_type: u8) -> Result<(String, IdentityKey)> {
    check_text(s)?;
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::Note("verifier key is not name+keyid+key"));
    };
    if !is_valid_name(name) {
        return Err(Error::Note("verifier key has an invalid name"));
    }
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(Error::Note("verifier key id is not 8 lowercase hex digits"));
    }
    let raw = b64_decode(b64, "verifier key is not canonical base64")?;
    if raw.first() != Some(&sig_type) {
        return Err(Error::Note("verifier key has the wrong signature type"));
    }
    let bytes: [u8; 32] = raw[1..]
        .try_into()
        .map_err(|_| Error::Note("verifier key is not 32 bytes"))?;
    let key = IdentityKey::from_bytes(&bytes)?;
    if crate::to_hex(&key_id(name, sig_type, &key)) != id {
        return Err(Error::Note("verifier key id does not match its name and key"));
    }
    Ok((name.to_string(), key))
}

/// Signs a note body with Ed25519 (type 0x01) under the key name `name`.
///
/// # Panics
/// If `body` contains a NUL byte (see [`Identity::sign_note`]).
pub fn sign_note(body: &str, name: &str, signer: &Identity) -> NoteSignature {
    NoteSignature {
        name: name.to_string(),
        key_id: key_id(name, TYPE_ED25519, signer.public_key()),
        payload: signer.sign_note(body.as_bytes()).to_vec(),
    }
}

/// The message a `cosignature/v1` signs: `cosignature/v1\ntime <t>\n` then the body.
fn cosigned_message(body: &str, time_secs: u64) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time_secs}\n").into_bytes();
    m.extend_from_slice(body.as_bytes());
    m
}

/// A witness's public half: an Ed25519 `cosignature/v1` key (signature type 0x04).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The witness's key name.
    pub name: String,
    /// The witness's Ed25519 public key.
    pub key: IdentityKey,
}

impl Witness {
    /// The key id ([`key_id`] with type 0x04).
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, TYPE_COSIGNATURE_V1, &self.key)
    }

    /// The C2SP verifier key text: `<name>+<8 hex key id>+<base64(0x04 || key)>`.
    pub fn vkey(&self) -> String {
        let mut raw = vec![TYPE_COSIGNATURE_V1];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            crate::to_hex(&self.key_id()),
            STANDARD.encode(raw)
        )
    }

    /// Parses a type 0x04 verifier key (see [`NoteVerifier::parse_vkey`]).
    pub fn parse_vkey(s: &str) -> Result<Self> {
        let (name, key) = parse_vkey(s, TYPE_COSIGNATURE_V1)?;
        Ok(Witness { name, key })
    }

    /// Verifies this witness's cosignature `sig` on the checkpoint `body`; returns the
    /// time (Unix seconds) the witness bound into it. A line with another name or key id
    /// (for example the same key's type 0x01 signature) is refused.
    pub fn verify_cosignature(&self, body: &str, sig: &NoteSignature) -> Result<u64> {
        if sig.name != self.name || sig.key_id != self.key_id() {
            return Err(Error::NotSignedBy(self.name.clone()));
        }
        if sig.payload.len() != COSIG_PAYLOAD_LEN {
            return Err(Error::Note(
                "cosignature is not 8 bytes of time and a 64-byte signature",
            ));
        }
        let (time, s) = sig.payload.split_at(8);
        let time = u64::from_be_bytes(time.try_into().expect("split at 8"));
        let s: &[u8; ED25519_SIG_LEN] = s.try_into().expect("72 - 8 bytes");
        self.key.verify_note(&cosigned_message(body, time), s, "cosignature")?;
        Ok(time)
    }

    /// Finds this witness's line in `note` and verifies it ([`Witness::verify_cosignature`]).
    pub fn verify_in(&self, note: &SignedNote) -> Result<u64> {
        let sig = note
            .find(&self.name, self.key_id())
            .ok_or_else(|| Error::NotSignedBy(self.name.clone()))?;
        self.verify_cosignature(&note.body, sig)
    }
}

/// Cosigns a checkpoint body as witness `name` at `time_secs` (`cosignature/v1`).
///
/// # Panics
/// If `body` contains a NUL byte (see [`Identity::sign_note`]).
pub fn cosign(body: &str, name: &str, signer: &Identity, time_secs: u64) -> NoteSignature {
    let sig = signer.sign_note(&cosigned_message(body, time_secs));
    let mut payload = Vec::with_capacity(COSIG_PAYLOAD_LEN);
    payload.extend_from_slice(&time_secs.to_be_bytes());
    payload.extend_from_slice(&sig);
    NoteSignature {
        name: name.to_string(),
        key_id: key_id(name, TYPE_COSIGNATURE_V1, signer.public_key()),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // golang.org/x/mod/sumdb/note, note.go package documentation ("# Example"): the signer
    // key `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz`
    // is base64(0x01 || Ed25519 seed). Ed25519 is deterministic, so signing must reproduce
    // the published note byte for byte.
    #[test]
    fn sign_note_reproduces_the_go_sumdb_example() {
        let raw = STANDARD.decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap();
        assert_eq!(raw[0], TYPE_ED25519);
        let id = Identity::from_signing_seed(&raw[1..].try_into().unwrap()).unwrap();
        let body = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let note = SignedNote {
            body: body.to_string(),
            signatures: vec![sign_note(body, "PeterNeumann", &id)],
        };
        assert_eq!(
            note.to_text(),
            format!(
                "{body}\n\u{2014} PeterNeumann \
                 x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            )
        );
        let v = NoteVerifier {
            name: "PeterNeumann".into(),
            key: *id.public_key(),
        };
        assert_eq!(
            v.vkey(),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
    }
}
