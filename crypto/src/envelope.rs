//! Envelopes: content sealed once, its key wrapped for each recipient by HPKE
//! (RFC 9180, base mode), the whole signed by the sender over the exact bytes sent.
//!
//! Layout (byte-exact in PROTOCOL.md):
//! `version || u32 header_len || header || u32 stanzas_len || stanzas || body || signature`.
//! The header lists each recipient with the hash of its key stanza, and the signature
//! covers the header and the body but not the stanzas, so a relay can hand each
//! recipient only its own stanza (`trim_for_recipient`) and the signature still holds.

use std::io::{Read, Write};

use hkdf::Hkdf;
use hpke::aead::ChaCha20Poly1305 as HpkeChaCha;
use hpke::kdf::HkdfSha256;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::context::{self, STANZA_INFO};
use crate::error::{Error, Result};
use crate::identity::{Identity, IdentityKey, PublicIdentity};
use crate::stream::{self, Stream};

/// The envelope format version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// Most recipients one envelope may name.
pub const MAX_RECIPIENTS: usize = 1024;
/// Longest incident id, in bytes of printable ASCII.
pub const MAX_INCIDENT_ID: usize = 64;
/// Largest body, in plaintext bytes (1 TiB).
pub const MAX_BODY_LEN: u64 = 1 << 40;
/// Fixed part of the header, before the recipient entries.
const HEADER_FIXED_LEN: usize = 1 + 1 + 16 + 32 + 8 + 1 + 1 + 1 + 1 + 32 + 8 + 2;
/// One recipient entry: identity key, encryption-record hash, stanza hash.
pub const RECIPIENT_ENTRY_LEN: usize = 96;
/// Largest header.
pub const MAX_HEADER_LEN: usize = HEADER_FIXED_LEN + MAX_INCIDENT_ID + MAX_RECIPIENTS * RECIPIENT_ENTRY_LEN;
/// Length of the wrapped content key inside a stanza (32-byte key + 16-byte tag).
const WRAPPED_KEY_LEN: usize = 48;
/// Ed25519 signature length.
pub const SIGNATURE_LEN: usize = 64;

const FLAG_EXERCISE: u8 = 0x01;

/// The HPKE suite that wraps content keys. Both use HKDF-SHA256 and ChaCha20-Poly1305.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// DHKEM(X25519, HKDF-SHA256), KEM id 0x0020.
    X25519 = 1,
    /// X-Wing (X25519 + ML-KEM-768), KEM id 0x647a. The default.
    XWing = 2,
}

impl Suite {
    /// Parses a suite id.
    pub fn from_u8(v: u8) -> Result<Self> {
        match v {
            1 => Ok(Suite::X25519),
            2 => Ok(Suite::XWing),
            other => Err(Error::UnknownSuite(other)),
        }
    }
    /// Bytes of one key stanza: the KEM encapsulation then the wrapped content key.
    pub fn stanza_len(self) -> usize {
        match self {
            Suite::X25519 => 32 + WRAPPED_KEY_LEN,
            Suite::XWing => 1120 + WRAPPED_KEY_LEN,
        }
    }
}

/// What the content is; receivers dispatch on it after opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// A person-to-person message.
    Message = 1,
    /// A large attachment body, referenced from a message.
    Attachment = 2,
    /// A signed receipt carried end to end.
    Receipt = 3,
    /// An escalation alert.
    Alert = 4,
    /// A contact-verification round challenge.
    RoundChallenge = 5,
    /// A response to a round challenge.
    RoundResponse = 6,
    /// A directory (key log) entry.
    DirectoryEntry = 7,
    /// A national policy document: a signed `PolicyPublish` statement and the file as an
    /// attachment envelope, from a state's national authority.
    Policy = 8,
}

impl ContentType {
    /// Parses a content type byte.
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            1 => ContentType::Message,
            2 => ContentType::Attachment,
            3 => ContentType::Receipt,
            4 => ContentType::Alert,
            5 => ContentType::RoundChallenge,
            6 => ContentType::RoundResponse,
            7 => ContentType::DirectoryEntry,
            8 => ContentType::Policy,
            _ => return Err(Error::NonCanonical("unknown content type")),
        })
    }
}

/// FIRST Traffic Light Protocol 2.0 marking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tlp {
    /// TLP:CLEAR — no limit on disclosure.
    Clear = 1,
    /// TLP:GREEN — the community.
    Green = 2,
    /// TLP:AMBER — the recipients' organisations and their clients, need to know.
    Amber = 3,
    /// TLP:AMBER+STRICT — the recipients' organisations only.
    AmberStrict = 4,
    /// TLP:RED — the named recipients only.
    Red = 5,
}

impl Tlp {
    /// Parses a TLP byte.
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            1 => Tlp::Clear,
            2 => Tlp::Green,
            3 => Tlp::Amber,
            4 => Tlp::AmberStrict,
            5 => Tlp::Red,
            _ => return Err(Error::NonCanonical("unknown TLP marking")),
        })
    }
    /// The label as TLP 2.0 writes it, e.g. `TLP:AMBER+STRICT`.
    pub fn label(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }
    /// Parses `clear`, `green`, `amber`, `amber+strict`, `red` (any case, `TLP:` optional).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        Some(match s.strip_prefix("tlp:").unwrap_or(&s) {
            "clear" => Tlp::Clear,
            "green" => Tlp::Green,
            "amber" => Tlp::Amber,
            "amber+strict" => Tlp::AmberStrict,
            "red" => Tlp::Red,
            _ => return None,
        })
    }
}

/// Header fields the sender chooses.
#[derive(Clone, Debug)]
pub struct HeaderFields {
    /// Suite for the key stanzas.
    pub suite: Suite,
    /// What the body is.
    pub content_type: ContentType,
    /// TLP marking shown on every display.
    pub tlp: Tlp,
    /// Marks drill traffic; never to be shown as real.
    pub exercise: bool,
    /// Incident this belongs to (printable ASCII, at most 64 bytes).
    pub incident_id: Option<String>,
    /// The sender's directory-log head, when the directory exists.
    pub log_head: Option<[u8; 32]>,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: u64,
}

impl HeaderFields {
    /// A plain message at `created_at_ms` with the default suite (X-Wing), TLP:AMBER.
    pub fn message(created_at_ms: u64) -> Self {
        HeaderFields {
            suite: Suite::XWing,
            content_type: ContentType::Message,
            tlp: Tlp::Amber,
            exercise: false,
            incident_id: None,
            log_head: None,
            created_at_ms,
        }
    }
}

/// One entry of the signed recipient list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientEntry {
    /// The recipient's identity key (raw bytes; compared, not used for verification).
    pub key: [u8; 32],
    /// Hash of the encryption key record the content key was wrapped to.
    pub record_hash: [u8; 32],
    /// SHA-256 of the recipient's key stanza.
    pub stanza_hash: [u8; 32],
}

/// A parsed, signed envelope header.
#[derive(Clone, Debug)]
pub struct Header {
    /// Suite of the key stanzas.
    pub suite: Suite,
    /// Random message id.
    pub message_id: [u8; 16],
    /// The sender's identity key.
    pub sender: IdentityKey,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Content type.
    pub content_type: ContentType,
    /// TLP marking.
    pub tlp: Tlp,
    /// Drill traffic.
    pub exercise: bool,
    /// Incident id.
    pub incident_id: Option<String>,
    /// Sender's directory-log head.
    pub log_head: Option<[u8; 32]>,
    /// Plaintext body length.
    pub body_len: u64,
    /// Recipients in signed order.
    pub recipients: Vec<RecipientEntry>,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let inc = self.incident_id.as_deref().unwrap_or("");
        let mut w = Writer::with_capacity(HEADER_FIXED_LEN + inc.len() + self.recipients.len() * RECIPIENT_ENTRY_LEN);
        w.u8(ENVELOPE_VERSION)
            .u8(self.suite as u8)
            .bytes(&self.message_id)
            .bytes(self.sender.as_bytes())
            .u64(self.created_at_ms)
            .u8(self.content_type as u8)
            .u8(self.tlp as u8)
            .u8(if self.exercise { FLAG_EXERCISE } else { 0 })
            .u8(inc.len() as u8)
            .bytes(inc.as_bytes())
            .bytes(&self.log_head.unwrap_or([0; 32]))
            .u64(self.body_len)
            .u16(self.recipients.len() as u16);
        for r in &self.recipients {
            w.bytes(&r.key).bytes(&r.record_hash).bytes(&r.stanza_hash);
        }
        w.into_vec()
    }

    /// Parses header bytes strictly: known version, suite, type and TLP; no reserved
    /// flags; canonical incident id; 1..=1024 distinct recipients; no trailing bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_from(bytes, None)
    }

    /// As `parse`, but when the sender is already known (and verified the signature),
    /// compare bytes instead of decompressing the key a second time.
    fn parse_from(bytes: &[u8], known_sender: Option<&IdentityKey>) -> Result<Self> {
        if bytes.len() > MAX_HEADER_LEN {
            return Err(Error::TooLarge {
                field: "header",
                len: bytes.len() as u64,
                max: MAX_HEADER_LEN as u64,
            });
        }
        let mut r = Reader::new(bytes, "envelope header");
        let version = r.u8()?;
        if version != ENVELOPE_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "envelope",
                found: version,
            });
        }
        let suite = Suite::from_u8(r.u8()?)?;
        let message_id = r.array()?;
        let sender_bytes: [u8; 32] = r.array()?;
        let sender = match known_sender {
            Some(k) if k.as_bytes() == &sender_bytes => *k,
            Some(_) => return Err(Error::WrongSender),
            None => IdentityKey::from_bytes(&sender_bytes)?,
        };
        let created_at_ms = r.u64()?;
        let content_type = ContentType::from_u8(r.u8()?)?;
        let tlp = Tlp::from_u8(r.u8()?)?;
        let flags = r.u8()?;
        if flags & !FLAG_EXERCISE != 0 {
            return Err(Error::NonCanonical("reserved header flag set"));
        }
        let inc_len = r.u8()? as usize;
        if inc_len > MAX_INCIDENT_ID {
            return Err(Error::TooLarge {
                field: "incident id",
                len: inc_len as u64,
                max: MAX_INCIDENT_ID as u64,
            });
        }
        let inc = r.take(inc_len)?;
        if !inc.iter().all(|b| b.is_ascii_graphic()) {
            return Err(Error::NonCanonical(
                "incident id must be printable ASCII without spaces",
            ));
        }
        let incident_id = (inc_len > 0).then(|| String::from_utf8_lossy(inc).into_owned());
        let head: [u8; 32] = r.array()?;
        let log_head = (head != [0; 32]).then_some(head);
        let body_len = r.u64()?;
        if body_len > MAX_BODY_LEN {
            return Err(Error::TooLarge {
                field: "body",
                len: body_len,
                max: MAX_BODY_LEN,
            });
        }
        let n = r.u16()? as usize;
        if n == 0 || n > MAX_RECIPIENTS {
            return Err(Error::TooLarge {
                field: "recipient count (1..=1024)",
                len: n as u64,
                max: MAX_RECIPIENTS as u64,
            });
        }
        let mut recipients = Vec::with_capacity(n);
        for _ in 0..n {
            recipients.push(RecipientEntry {
                key: r.array()?,
                record_hash: r.array()?,
                stanza_hash: r.array()?,
            });
        }
        r.finish()?;
        let mut keys: Vec<&[u8; 32]> = recipients.iter().map(|e| &e.key).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::NonCanonical("recipient listed twice"));
        }
        Ok(Header {
            suite,
            message_id,
            sender,
            created_at_ms,
            content_type,
            tlp,
            exercise: flags & FLAG_EXERCISE != 0,
            incident_id,
            log_head,
            body_len,
            recipients,
        })
    }

    /// Index of `key` in the recipient list.
    pub fn recipient_index(&self, key: &[u8; 32]) -> Option<usize> {
        self.recipients.iter().position(|e| &e.key == key)
    }
}

/// The result of sealing.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// The full envelope (all stanzas).
    pub bytes: Vec<u8>,
    /// The message id.
    pub message_id: [u8; 16],
    /// The envelope hash receipts refer to.
    pub envelope_hash: [u8; 32],
}

/// What a recipient learns from an envelope.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The verified header.
    pub header: Header,
    /// The plaintext (empty for [`open_stream`], which writes it out).
    pub plaintext: Vec<u8>,
    /// The envelope hash receipts refer to.
    pub envelope_hash: [u8; 32],
}

/// Envelope hash: SHA-256 over exactly what the sender signed.
fn envelope_hash(header_hash: &[u8; 32], body_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(context::ENVELOPE.as_bytes());
    h.update(header_hash);
    h.update(body_hash);
    h.finalize().into()
}

fn stanza_info(message_id: &[u8; 16], sender: &[u8; 32], record_hash: &[u8; 32]) -> Vec<u8> {
    let mut info = Vec::with_capacity(STANZA_INFO.len() + 80);
    info.extend_from_slice(STANZA_INFO);
    info.extend_from_slice(message_id);
    info.extend_from_slice(sender);
    info.extend_from_slice(record_hash);
    info
}

fn payload_key(content_key: &[u8; 32], header_hash: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(header_hash), content_key);
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand(context::PAYLOAD_INFO, out.as_mut())
        .expect("32 bytes is a valid HKDF length");
    out
}

fn hpke_err(e: hpke::HpkeError) -> Error {
    Error::BadRecipientKey(e.to_string())
}

/// From this many recipients on, the per-recipient KEMs run on every core.
pub const PARALLEL_SEAL_MIN: usize = 16;

/// Wraps the content key to every recipient, in order. Each recipient's KEM is
/// independent, so from [`PARALLEL_SEAL_MIN`] recipients on the work is split across the
/// machine's cores; each thread draws from its own ChaCha20 generator seeded from `rng`
/// (so a fixed `rng` still gives fixed output on a given machine).
fn wrap_all<R: CryptoRng>(
    rng: &mut R,
    suite: Suite,
    recipients: &[PublicIdentity],
    message_id: &[u8; 16],
    sender_key: &[u8; 32],
    at_secs: u64,
    content_key: &Zeroizing<[u8; 32]>,
) -> Result<Vec<(RecipientEntry, Vec<u8>)>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if recipients.len() < PARALLEL_SEAL_MIN || threads < 2 {
        return recipients
            .iter()
            .map(|r| wrap_one(rng, suite, r, message_id, sender_key, at_secs, content_key))
            .collect();
    }
    let per = recipients.len().div_ceil(threads);
    let seeds: Vec<Zeroizing<[u8; 32]>> = recipients
        .chunks(per)
        .map(|_| {
            let mut seed = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(seed.as_mut());
            seed
        })
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = recipients
            .chunks(per)
            .zip(&seeds)
            .map(|(chunk, seed)| {
                scope.spawn(move || {
                    let mut rng = <chacha20::ChaCha20Rng as rand_core::SeedableRng>::from_seed(**seed);
                    chunk
                        .iter()
                        .map(|r| wrap_one(&mut rng, suite, r, message_id, sender_key, at_secs, content_key))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(recipients.len());
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| Error::BadRecipientKey("a sealing thread panicked".into()))??,
            );
        }
        Ok(out)
    })
}

/// Wraps the content key to one recipient: its signed-list entry and its key stanza.
fn wrap_one<R: CryptoRng>(
    rng: &mut R,
    suite: Suite,
    rcpt: &PublicIdentity,
    message_id: &[u8; 16],
    sender_key: &[u8; 32],
    at_secs: u64,
    content_key: &Zeroizing<[u8; 32]>,
) -> Result<(RecipientEntry, Vec<u8>)> {
    let record = rcpt.encryption_record();
    record.check_valid_at(at_secs)?;
    let record_hash = record.hash();
    let info = stanza_info(message_id, sender_key, &record_hash);
    let mut stanza = Vec::with_capacity(suite.stanza_len());
    match suite {
        Suite::X25519 => {
            let (enc, ct) = hpke::single_shot_seal_with_rng::<HpkeChaCha, HkdfSha256, X25519HkdfSha256>(
                &OpModeS::Base,
                record.x25519(),
                &info,
                content_key.as_ref(),
                &[],
                rng,
            )
            .map_err(hpke_err)?;
            stanza.extend_from_slice(&enc.to_bytes());
            stanza.extend_from_slice(&ct);
        }
        Suite::XWing => {
            let (enc, ct) = hpke::single_shot_seal_with_rng::<HpkeChaCha, HkdfSha256, XWing>(
                &OpModeS::Base,
                record.xwing(),
                &info,
                content_key.as_ref(),
                &[],
                rng,
            )
            .map_err(hpke_err)?;
            stanza.extend_from_slice(&enc.to_bytes());
            stanza.extend_from_slice(&ct);
        }
    }
    let entry = RecipientEntry {
        key: *rcpt.key().as_bytes(),
        record_hash,
        stanza_hash: Sha256::digest(&stanza).into(),
    };
    Ok((entry, stanza))
}

/// Everything before the body, and what is needed to seal it.
struct Prepared {
    prefix: Vec<u8>,
    header_hash: [u8; 32],
    payload_key: Zeroizing<[u8; 32]>,
    message_id: [u8; 16],
}

fn prepare<R: CryptoRng>(
    rng: &mut R,
    sender: &Identity,
    recipients: &[PublicIdentity],
    fields: &HeaderFields,
    body_len: u64,
) -> Result<Prepared> {
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(Error::TooLarge {
            field: "recipient count (1..=1024)",
            len: recipients.len() as u64,
            max: MAX_RECIPIENTS as u64,
        });
    }
    if body_len > MAX_BODY_LEN {
        return Err(Error::TooLarge {
            field: "body",
            len: body_len,
            max: MAX_BODY_LEN,
        });
    }
    let inc = fields.incident_id.as_deref().unwrap_or("");
    if inc.len() > MAX_INCIDENT_ID || !inc.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::NonCanonical(
            "incident id must be 1..=64 printable ASCII characters without spaces",
        ));
    }
    let mut message_id = [0u8; 16];
    rng.fill_bytes(&mut message_id);
    let mut content_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(content_key.as_mut());
    let sender_key = sender.public_key().as_bytes();
    let at_secs = fields.created_at_ms / 1000;

    let stanza_len = fields.suite.stanza_len();
    let wrapped = wrap_all(
        rng,
        fields.suite,
        recipients,
        &message_id,
        sender_key,
        at_secs,
        &content_key,
    )?;
    let mut stanzas = Writer::with_capacity(2 + recipients.len() * (2 + stanza_len));
    stanzas.u16(recipients.len() as u16);
    let mut entries = Vec::with_capacity(recipients.len());
    for (i, (entry, stanza)) in wrapped.into_iter().enumerate() {
        debug_assert_eq!(stanza.len(), stanza_len);
        entries.push(entry);
        stanzas.u16(i as u16).bytes(&stanza);
    }
    let header = Header {
        suite: fields.suite,
        message_id,
        sender: *sender.public_key(),
        created_at_ms: fields.created_at_ms,
        content_type: fields.content_type,
        tlp: fields.tlp,
        exercise: fields.exercise,
        incident_id: fields.incident_id.clone().filter(|s| !s.is_empty()),
        log_head: fields.log_head,
        body_len,
        recipients: entries,
    };
    // Rejects duplicate recipients and anything else the reader would refuse.
    let header_bytes = header.encode();
    Header::parse(&header_bytes)?;
    let header_hash: [u8; 32] = Sha256::digest(&header_bytes).into();
    let stanzas = stanzas.into_vec();
    let mut prefix = Writer::with_capacity(9 + header_bytes.len() + stanzas.len());
    prefix
        .u8(ENVELOPE_VERSION)
        .u32(header_bytes.len() as u32)
        .bytes(&header_bytes)
        .u32(stanzas.len() as u32)
        .bytes(&stanzas);
    Ok(Prepared {
        prefix: prefix.into_vec(),
        header_hash,
        payload_key: payload_key(&content_key, &header_hash),
        message_id,
    })
}

/// Seals `plaintext` from `sender` to every recipient. Randomness comes from `rng`
/// (the OS generator in production; a fixed one for known-answer tests).
pub fn seal<R: CryptoRng>(
    rng: &mut R,
    sender: &Identity,
    recipients: &[PublicIdentity],
    fields: &HeaderFields,
    plaintext: &[u8],
) -> Result<Sealed> {
    let mut out = Vec::new();
    let mut input = plaintext;
    let info = seal_stream(
        rng,
        sender,
        recipients,
        fields,
        plaintext.len() as u64,
        &mut input,
        &mut out,
    )?;
    Ok(Sealed {
        bytes: out,
        message_id: info.message_id,
        envelope_hash: info.envelope_hash,
    })
}

/// Identifiers of a streamed envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedInfo {
    /// The message id.
    pub message_id: [u8; 16],
    /// The envelope hash receipts refer to.
    pub envelope_hash: [u8; 32],
    /// Total envelope bytes written.
    pub len: u64,
}

/// Seals exactly `body_len` bytes read from `body` into `out`, one 64 KiB chunk at a time.
pub fn seal_stream<R: CryptoRng>(
    rng: &mut R,
    sender: &Identity,
    recipients: &[PublicIdentity],
    fields: &HeaderFields,
    body_len: u64,
    body: &mut impl Read,
    out: &mut impl Write,
) -> Result<SealedInfo> {
    let prep = prepare(rng, sender, recipients, fields, body_len)?;
    out.write_all(&prep.prefix)?;
    let mut stream = Stream::new(&prep.payload_key, body_len);
    let mut body_hash = blake3::Hasher::new();
    let mut buf = Vec::with_capacity(stream::CHUNK_SIZE + stream::TAG_LEN);
    for index in 0..stream::chunk_count(body_len) {
        let n = stream::chunk_plain_len(body_len, index);
        // Reuse the buffer without zero-filling it again: read_exact overwrites it.
        buf.truncate(n);
        buf.resize(n, 0);
        body.read_exact(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::BodyLength,
            _ => Error::Io(e),
        })?;
        stream.seal_chunk(&mut buf);
        body_hash.update(&buf);
        out.write_all(&buf)?;
    }
    let body_hash: [u8; 32] = body_hash.finalize().into();
    let sig = sender.sign_parts(context::ENVELOPE, &[&prep.header_hash, &body_hash]);
    out.write_all(&sig)?;
    let len = prep.prefix.len() as u64 + stream::ciphertext_len(body_len) + SIGNATURE_LEN as u64;
    Ok(SealedInfo {
        message_id: prep.message_id,
        envelope_hash: envelope_hash(&prep.header_hash, &body_hash),
        len,
    })
}

/// An envelope split into its parts, without any cryptographic check.
struct Parts<'a> {
    header: &'a [u8],
    stanzas: &'a [u8],
    body: &'a [u8],
    signature: [u8; 64],
}

fn split(envelope: &[u8]) -> Result<Parts<'_>> {
    let mut r = Reader::new(envelope, "envelope");
    let version = r.u8()?;
    if version != ENVELOPE_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "envelope",
            found: version,
        });
    }
    let header_len = r.u32()? as usize;
    if header_len > MAX_HEADER_LEN {
        return Err(Error::TooLarge {
            field: "header",
            len: header_len as u64,
            max: MAX_HEADER_LEN as u64,
        });
    }
    let header = r.take(header_len)?;
    let stanzas_len = r.u32()? as usize;
    let stanzas = r.take(stanzas_len)?;
    if r.remaining() < SIGNATURE_LEN {
        return Err(Error::Truncated("envelope"));
    }
    let body = r.take(r.remaining() - SIGNATURE_LEN)?;
    let signature = r.array()?;
    r.finish()?;
    Ok(Parts {
        header,
        stanzas,
        body,
        signature,
    })
}

/// Parses a stanza block strictly: 1..=n entries, indices strictly increasing and in range.
fn parse_stanzas(block: &[u8], suite: Suite, n_recipients: usize) -> Result<Vec<(u16, &[u8])>> {
    let mut r = Reader::new(block, "stanza block");
    let count = r.u16()? as usize;
    if count == 0 || count > n_recipients {
        return Err(Error::NonCanonical("stanza count out of range"));
    }
    let mut out = Vec::with_capacity(count);
    let mut prev: Option<u16> = None;
    for _ in 0..count {
        let idx = r.u16()?;
        if idx as usize >= n_recipients || prev.is_some_and(|p| idx <= p) {
            return Err(Error::NonCanonical(
                "stanza indices must be increasing and within the recipient list",
            ));
        }
        prev = Some(idx);
        out.push((idx, r.take(suite.stanza_len())?));
    }
    r.finish()?;
    Ok(out)
}

/// The sender an envelope *claims*, read from its fixed position (byte 23, PROTOCOL.md §4)
/// without parsing anything else: the key under which [`open`] then verifies the signature
/// before it parses the header. Nothing is trusted until `open` succeeds.
pub fn claimed_sender(envelope: &[u8]) -> Result<IdentityKey> {
    let bytes: [u8; 32] = envelope
        .get(5 + 18..5 + 50)
        .ok_or(Error::Truncated("envelope"))?
        .try_into()
        .map_err(|_| Error::Truncated("envelope"))?;
    IdentityKey::from_bytes(&bytes)
}

/// Checks the sender's signature, the header's form and that every listed recipient has
/// its stanza with the signed hash, as a relay does before accepting: returns
/// the header and the envelope hash. No secret is needed.
pub fn verify(envelope: &[u8]) -> Result<(Header, [u8; 32])> {
    verify_inner(envelope, None)
}

/// As [`verify`], for a relay that knows who must have sent it (the connection's key):
/// a different signed sender is `WrongSender`, and the key is not decompressed twice.
pub fn verify_from(envelope: &[u8], sender: &IdentityKey) -> Result<(Header, [u8; 32])> {
    verify_inner(envelope, Some(sender))
}

fn verify_inner(envelope: &[u8], sender: Option<&IdentityKey>) -> Result<(Header, [u8; 32])> {
    let parts = split(envelope)?;
    let header = Header::parse_from(parts.header, sender)?;
    let (hh, bh) = verify_parts(&parts, &header.sender)?;
    if parts.body.len() as u64 != stream::ciphertext_len(header.body_len) {
        return Err(Error::BodyLength);
    }
    // A relay must be able to hand every listed recipient its own stanza: the block must
    // hold one for each, matching the signed hash, or one recipient could be sent an
    // envelope it can never open (and its queue held by it).
    check_complete(parts.stanzas, &header)?;
    Ok((header, envelope_hash(&hh, &bh)))
}

/// Every listed recipient has exactly one stanza and its SHA-256 is the signed one.
fn check_complete(block: &[u8], header: &Header) -> Result<()> {
    let stanzas = parse_stanzas(block, header.suite, header.recipients.len())?;
    if stanzas.len() != header.recipients.len() {
        return Err(Error::StanzaMissing);
    }
    for (i, stanza) in &stanzas {
        let h: [u8; 32] = Sha256::digest(stanza).into();
        if h != header.recipients[*i as usize].stanza_hash {
            return Err(Error::StanzaMismatch);
        }
    }
    Ok(())
}

/// The suite and recipient keys of a header, without validating the sender key (for
/// trimming envelopes the relay verified when it accepted them).
fn recipients_of(header: &[u8]) -> Result<(Suite, Vec<[u8; 32]>)> {
    let mut r = Reader::new(header, "envelope header");
    let version = r.u8()?;
    if version != ENVELOPE_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "envelope",
            found: version,
        });
    }
    let suite = Suite::from_u8(r.u8()?)?;
    r.take(16 + 32 + 8 + 1 + 1 + 1)?;
    let inc = r.u8()? as usize;
    r.take(inc + 32 + 8)?;
    let n = r.u16()? as usize;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        keys.push(r.array()?);
        r.take(64)?;
    }
    r.finish()?;
    Ok((suite, keys))
}

fn verify_parts(parts: &Parts<'_>, sender: &IdentityKey) -> Result<([u8; 32], [u8; 32])> {
    let hh: [u8; 32] = Sha256::digest(parts.header).into();
    let bh: [u8; 32] = blake3::hash(parts.body).into();
    sender.verify_parts(context::ENVELOPE, &[&hh, &bh], &parts.signature, "envelope")?;
    Ok((hh, bh))
}

/// Keeps only the stanza of recipient `key`: what a relay hands that recipient.
/// The signature still verifies, since it does not cover the stanzas.
pub fn trim_for_recipient(envelope: &[u8], key: &[u8; 32]) -> Result<Vec<u8>> {
    let parts = split(envelope)?;
    let (suite, keys) = recipients_of(parts.header)?;
    let index = keys.iter().position(|k| k == key).ok_or(Error::NotARecipient)?;
    let stanzas = parse_stanzas(parts.stanzas, suite, keys.len())?;
    let (_, stanza) = stanzas
        .iter()
        .find(|(i, _)| *i as usize == index)
        .ok_or(Error::StanzaMissing)?;
    let mut w = Writer::with_capacity(envelope.len() - parts.stanzas.len() + 4 + stanza.len());
    let block_len = 2 + 2 + stanza.len();
    w.u8(ENVELOPE_VERSION)
        .u32(parts.header.len() as u32)
        .bytes(parts.header)
        .u32(block_len as u32)
        .u16(1)
        .u16(index as u16)
        .bytes(stanza)
        .bytes(parts.body)
        .bytes(&parts.signature);
    Ok(w.into_vec())
}

/// Finds this identity's stanza, checks it against the signed list and unwraps the content key.
fn unwrap_content_key(me: &Identity, header: &Header, stanza_block: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let my_key = me.public_key().as_bytes();
    let index = header.recipient_index(my_key).ok_or(Error::NotARecipient)?;
    let entry = &header.recipients[index];
    let stanzas = parse_stanzas(stanza_block, header.suite, header.recipients.len())?;
    let (_, stanza) = stanzas
        .iter()
        .find(|(i, _)| *i as usize == index)
        .ok_or(Error::StanzaMissing)?;
    let stanza_hash: [u8; 32] = Sha256::digest(stanza).into();
    if stanza_hash != entry.stanza_hash {
        return Err(Error::StanzaMismatch);
    }
    let secret = me
        .encryption_secret(&entry.record_hash)
        .ok_or_else(|| Error::UnknownEncryptionKey(crate::identity::hex_encode(&entry.record_hash[..8])))?;
    let info = stanza_info(&header.message_id, header.sender.as_bytes(), &entry.record_hash);
    let enc_len = header.suite.stanza_len() - WRAPPED_KEY_LEN;
    let (enc, wrapped) = stanza.split_at(enc_len);
    let key = match header.suite {
        Suite::X25519 => {
            let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(enc).map_err(|_| Error::UnwrapFailed)?;
            hpke::single_shot_open::<HpkeChaCha, HkdfSha256, X25519HkdfSha256>(
                &OpModeR::Base,
                &secret.x25519,
                &enc,
                &info,
                wrapped,
                &[],
            )
        }
        Suite::XWing => {
            let enc = <XWing as Kem>::EncappedKey::from_bytes(enc).map_err(|_| Error::UnwrapFailed)?;
            hpke::single_shot_open::<HpkeChaCha, HkdfSha256, XWing>(
                &OpModeR::Base,
                &secret.xwing,
                &enc,
                &info,
                wrapped,
                &[],
            )
        }
    }
    .map_err(|_| Error::UnwrapFailed)?;
    let key = Zeroizing::new(key);
    let arr: [u8; 32] = key.as_slice().try_into().map_err(|_| Error::UnwrapFailed)?;
    Ok(Zeroizing::new(arr))
}

/// Opens an envelope held in memory. The signature is verified (with `verify_strict`,
/// under the `sender` the caller expects) before anything else is parsed or decrypted.
pub fn open(me: &Identity, envelope: &[u8], sender: &IdentityKey) -> Result<Opened> {
    let parts = split(envelope)?;
    let (hh, bh) = verify_parts(&parts, sender)?;
    let header = Header::parse_from(parts.header, Some(sender))?;
    if parts.body.len() as u64 != stream::ciphertext_len(header.body_len) {
        return Err(Error::BodyLength);
    }
    let content_key = unwrap_content_key(me, &header, parts.stanzas)?;
    let mut stream = Stream::new(&payload_key(&content_key, &hh), header.body_len);
    let mut plaintext = Vec::with_capacity(header.body_len as usize);
    let mut buf = Vec::with_capacity(stream::CHUNK_SIZE + stream::TAG_LEN);
    let mut rest = parts.body;
    for index in 0..stream::chunk_count(header.body_len) {
        let n = stream::chunk_plain_len(header.body_len, index) + stream::TAG_LEN;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        buf.clear();
        buf.extend_from_slice(chunk);
        stream.open_chunk(&mut buf)?;
        plaintext.extend_from_slice(&buf);
    }
    Ok(Opened {
        header,
        plaintext,
        envelope_hash: envelope_hash(&hh, &bh),
    })
}

/// Reads a length-prefixed section of at most `max` bytes from a stream.
fn read_section(input: &mut impl Read, max: usize, field: &'static str) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    read_exact(input, &mut len, field)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(Error::TooLarge {
            field,
            len: len as u64,
            max: max as u64,
        });
    }
    let mut v = vec![0u8; len];
    read_exact(input, &mut v, field)?;
    Ok(v)
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<()> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::Truncated(what),
        _ => Error::Io(e),
    })
}

/// Reads a streamed envelope up to its body: the parsed header (its sender checked
/// against `sender` when given), the header hash, and the raw stanza block.
fn read_prefix(input: &mut impl Read, sender: Option<&IdentityKey>) -> Result<(Header, [u8; 32], Vec<u8>)> {
    let mut version = [0u8; 1];
    read_exact(input, &mut version, "envelope")?;
    if version[0] != ENVELOPE_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "envelope",
            found: version[0],
        });
    }
    let header_bytes = read_section(input, MAX_HEADER_LEN, "header")?;
    let header = Header::parse_from(&header_bytes, sender)?;
    let stanza_max = 2 + header.recipients.len() * (2 + header.suite.stanza_len());
    let stanzas = read_section(input, stanza_max, "stanza block")?;
    Ok((header, Sha256::digest(&header_bytes).into(), stanzas))
}

/// Reads the signature that ends a streamed envelope; anything after it is an error.
fn read_trailer(input: &mut impl Read) -> Result<[u8; 64]> {
    let mut signature = [0u8; 64];
    read_exact(input, &mut signature, "signature")?;
    let mut extra = [0u8; 1];
    if input.read(&mut extra)? != 0 {
        return Err(Error::TrailingBytes("envelope", 1));
    }
    Ok(signature)
}

/// Opens an envelope from a stream, writing the plaintext to `out` chunk by chunk.
///
/// The signature trails the body, so it is checked last: **the output is provisional
/// until this returns `Ok`** and must be discarded on any error (write to a temporary
/// file, rename on success). Every chunk is still authenticated before it is written.
pub fn open_stream(me: &Identity, input: &mut impl Read, sender: &IdentityKey, out: &mut impl Write) -> Result<Opened> {
    let (header, hh, stanzas) = read_prefix(input, Some(sender))?;
    let content_key = unwrap_content_key(me, &header, &stanzas)?;
    let mut stream = Stream::new(&payload_key(&content_key, &hh), header.body_len);
    let mut body_hash = blake3::Hasher::new();
    let mut buf = Vec::with_capacity(stream::CHUNK_SIZE + stream::TAG_LEN);
    for index in 0..stream::chunk_count(header.body_len) {
        let n = stream::chunk_plain_len(header.body_len, index) + stream::TAG_LEN;
        buf.resize(n, 0);
        read_exact(input, &mut buf, "body chunk")?;
        body_hash.update(&buf);
        stream.open_chunk(&mut buf)?;
        out.write_all(&buf)?;
    }
    let signature = read_trailer(input)?;
    let bh: [u8; 32] = body_hash.finalize().into();
    sender.verify_parts(context::ENVELOPE, &[&hh, &bh], &signature, "envelope")?;
    Ok(Opened {
        header,
        plaintext: Vec::new(),
        envelope_hash: envelope_hash(&hh, &bh),
    })
}

/// Checks a streamed envelope's form and signature without any secret (what a relay
/// does with an uploaded attachment): returns the header and envelope hash.
pub fn verify_stream(input: &mut impl Read) -> Result<(Header, [u8; 32])> {
    let (header, hh, stanzas) = read_prefix(input, None)?;
    check_complete(&stanzas, &header)?;
    let mut body_hash = blake3::Hasher::new();
    let mut remaining = stream::ciphertext_len(header.body_len);
    let mut buf = vec![0u8; stream::CHUNK_SIZE + stream::TAG_LEN];
    while remaining > 0 {
        let n = remaining.min(buf.len() as u64) as usize;
        read_exact(input, &mut buf[..n], "body")?;
        body_hash.update(&buf[..n]);
        remaining -= n as u64;
    }
    let signature = read_trailer(input)?;
    let bh: [u8; 32] = body_hash.finalize().into();
    header
        .sender
        .verify_parts(context::ENVELOPE, &[&hh, &bh], &signature, "envelope")?;
    Ok((header, envelope_hash(&hh, &bh)))
}
