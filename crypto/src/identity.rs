//! Identities: a long-term Ed25519 identity key that signs rotating encryption-key
//! records (X25519 and X-Wing public keys with a validity window).
//!
//! A POC *is* its identity key. Everything else (names, states, ranks) is directory
//! data bound to the key by signatures, outside this crate.

use std::fmt;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Deserializable, Kem, Serializable};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::codec::{Reader, Writer};
use crate::context::{self, SigningContext};
use crate::error::{Error, Result};

/// Length of an X25519 public key.
pub const X25519_PUBLIC_LEN: usize = 32;
/// Length of an X-Wing (X25519 + ML-KEM-768) public key.
pub const XWING_PUBLIC_LEN: usize = 1216;
/// Length of an encoded [`EncryptionKeyRecord`].
pub const ENC_RECORD_LEN: usize = 1 + 32 + 4 + 8 + 8 + X25519_PUBLIC_LEN + XWING_PUBLIC_LEN + 64;
/// Length of an encoded [`PublicIdentity`].
pub const PUBLIC_IDENTITY_LEN: usize = 1 + ENC_RECORD_LEN;

const RECORD_VERSION: u8 = 1;
const PUBLIC_IDENTITY_VERSION: u8 = 1;
const SECRET_VERSION: u8 = 1;
/// At most this many encryption keys are kept in one identity (current + not yet deleted).
pub const MAX_ENCRYPTION_KEYS: usize = 16;

/// A validated Ed25519 identity public key (not weak, canonical).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityKey {
    bytes: [u8; 32],
    key: VerifyingKey,
}

impl IdentityKey {
    /// Parses and validates a 32-byte Ed25519 public key; weak (small-order) keys are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Error::WeakKey("not a valid Ed25519 point"))?;
        if key.is_weak() {
            return Err(Error::WeakKey("small-order Ed25519 key"));
        }
        Ok(IdentityKey { bytes: *bytes, key })
    }
    /// The 32 raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
    /// The stable fingerprint of this key.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(context::FINGERPRINT);
        h.update(self.bytes);
        Fingerprint(h.finalize().into())
    }
    /// Verifies a domain-separated signature with `verify_strict`.
    pub fn verify(&self, ctx: SigningContext, message: &[u8], signature: &[u8; 64], what: &'static str) -> Result<()> {
        self.verify_parts(ctx, &[message], signature, what)
    }
    pub(crate) fn verify_parts(
        &self,
        ctx: SigningContext,
        parts: &[&[u8]],
        signature: &[u8; 64],
        what: &'static str,
    ) -> Result<()> {
        let sig = Signature::from_bytes(signature);
        let msg = ctx.message(parts);
        self.key
            .verify_strict(&msg, &sig)
            .map_err(|_| Error::BadSignature(what))
    }
    /// Verifies a raw Ed25519 signature (no pocnet context) over C2SP signed-note bytes,
    /// with `verify_strict`. See [`Identity::sign_note`] for why this is safe; a `message`
    /// containing a NUL byte is refused, as it cannot be note text.
    pub fn verify_note(&self, message: &[u8], signature: &[u8; 64], what: &'static str) -> Result<()> {
        if message.contains(&0) {
            return Err(Error::BadSignature(what));
        }
        self.key
            .verify_strict(message, &Signature::from_bytes(signature))
            .map_err(|_| Error::BadSignature(what))
    }
    /// The 30-digit code read aloud to confirm this key over the telephone (PROTOCOL.md §11.4).
    pub fn voice_code(&self) -> VoiceCode {
        let mut h = Sha512::new();
        h.update(context::VOICE_CODE);
        h.update(self.bytes);
        let digest = h.finalize();
        let mut out = String::with_capacity(VOICE_CODE_DIGITS);
        for chunk in digest[..30].chunks(5) {
            let v = chunk.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
            out.push_str(&format!("{:05}", v % 100_000));
        }
        VoiceCode(out)
    }
}

/// Number of digits in a [`VoiceCode`].
pub const VOICE_CODE_DIGITS: usize = 30;

/// Thirty decimal digits derived from one identity key, for reading the key aloud
/// (language-neutral, unlike word lists). Displayed as six groups of five digits.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VoiceCode(String);

impl VoiceCode {
    /// The 30 digits with no separators.
    pub fn digits(&self) -> &str {
        &self.0
    }
    /// Whether `heard` is this code: spaces (any whitespace), dashes and dots are ignored;
    /// every one of the 30 digits must be present and equal, and nothing else is allowed.
    pub fn matches(&self, heard: &str) -> bool {
        let mut digits = String::with_capacity(VOICE_CODE_DIGITS);
        for c in heard.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '-' | '.' => {}
                c if c.is_whitespace() => {}
                _ => return false,
            }
        }
        digits == self.0
    }
}

impl fmt::Display for VoiceCode {
    /// Six groups of five digits separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<&str> = (0..6).map(|i| &self.0[i * 5..i * 5 + 5]).collect();
        f.write_str(&groups.join(" "))
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.fingerprint().short())
    }
}

impl std::hash::Hash for IdentityKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state)
    }
}

/// SHA-256 over a context string and the identity key: stable across encryption-key rotation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Full lowercase hex (64 characters), as used for pinning.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }
    /// The first 8 bytes as hex, for compact display (never for pinning).
    pub fn short(&self) -> String {
        hex_encode(&self.0[..8])
    }
    /// Hex in groups of four characters, for reading aloud.
    pub fn grouped(&self) -> String {
        let h = self.to_hex();
        h.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// Parses 64 hex characters; spaces and colons are ignored.
    pub fn parse(s: &str) -> Result<Self> {
        let clean: String = s.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
        let bytes = hex_decode(&clean).ok_or(Error::NonCanonical("fingerprint must be 64 hex characters"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::NonCanonical("fingerprint must be 64 hex characters"))?;
        Ok(Fingerprint(arr))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

pub(crate) fn hex_encode(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(HEX[(x >> 4) as usize] as char);
        s.push(HEX[(x & 15) as usize] as char);
    }
    s
}

pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

/// A signed statement by an identity key: "these are my encryption public keys,
/// valid from `not_before` to `not_after` (Unix seconds)".
#[derive(Clone)]
pub struct EncryptionKeyRecord {
    bytes: Vec<u8>,
    identity: IdentityKey,
    serial: u32,
    not_before: u64,
    not_after: u64,
    x25519: <X25519HkdfSha256 as Kem>::PublicKey,
    xwing: <XWing as Kem>::PublicKey,
    hash: [u8; 32],
}

impl EncryptionKeyRecord {
    /// Signs a record for the given public keys. `Identity` normally calls this; it is public
    /// so that keys held elsewhere (and hostile test records) can be expressed.
    pub fn issue(
        identity: &Identity,
        serial: u32,
        not_before: u64,
        not_after: u64,
        x25519_public: &[u8; X25519_PUBLIC_LEN],
        xwing_public: &[u8],
    ) -> Result<Self> {
        let mut w = Writer::with_capacity(ENC_RECORD_LEN);
        w.u8(RECORD_VERSION)
            .bytes(identity.public_key().as_bytes())
            .u32(serial)
            .u64(not_before)
            .u64(not_after)
            .bytes(x25519_public)
            .bytes(xwing_public);
        let sig = identity.sign(context::ENC_KEY, &w.buf);
        w.bytes(&sig);
        Self::from_bytes(&w.into_vec())
    }

    /// Parses a record and verifies its signature by the identity key it names.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "encryption key record");
        let version = r.u8()?;
        if version != RECORD_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "encryption key record",
                found: version,
            });
        }
        let identity = IdentityKey::from_bytes(&r.array()?)?;
        let serial = r.u32()?;
        let not_before = r.u64()?;
        let not_after = r.u64()?;
        if not_after <= not_before {
            return Err(Error::NonCanonical("encryption key record window is empty"));
        }
        let x = r.take(X25519_PUBLIC_LEN)?;
        let xw = r.take(XWING_PUBLIC_LEN)?;
        let signed_len = r.position();
        let sig: [u8; 64] = r.array()?;
        r.finish()?;
        identity.verify(context::ENC_KEY, &bytes[..signed_len], &sig, "encryption key record")?;
        let x25519 = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(x)
            .map_err(|_| Error::BadRecipientKey("X25519 public key does not parse".into()))?;
        let xwing = <XWing as Kem>::PublicKey::from_bytes(xw)
            .map_err(|_| Error::BadRecipientKey("X-Wing public key does not parse".into()))?;
        Ok(EncryptionKeyRecord {
            hash: Sha256::digest(bytes).into(),
            bytes: bytes.to_vec(),
            identity,
            serial,
            not_before,
            not_after,
            x25519,
            xwing,
        })
    }

    /// The exact signed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// SHA-256 of the record bytes: how envelopes name the key they were sealed to.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
    /// The identity key that signed this record.
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }
    /// Rotation counter, increasing with each new record.
    pub fn serial(&self) -> u32 {
        self.serial
    }
    /// Validity window in Unix seconds, `[not_before, not_after)`.
    pub fn window(&self) -> (u64, u64) {
        (self.not_before, self.not_after)
    }
    /// Whether the record may be used to seal at Unix second `at`.
    pub fn check_valid_at(&self, at: u64) -> Result<()> {
        if at < self.not_before || at >= self.not_after {
            return Err(Error::KeyNotValid {
                at,
                not_before: self.not_before,
                not_after: self.not_after,
            });
        }
        Ok(())
    }
    pub(crate) fn x25519(&self) -> &<X25519HkdfSha256 as Kem>::PublicKey {
        &self.x25519
    }
    pub(crate) fn xwing(&self) -> &<XWing as Kem>::PublicKey {
        &self.xwing
    }
}

impl fmt::Debug for EncryptionKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeyRecord")
            .field("identity", &self.identity)
            .field("serial", &self.serial)
            .field("window", &(self.not_before, self.not_after))
            .finish()
    }
}

/// What others need to seal to a POC and to check its signatures.
#[derive(Clone, Debug)]
pub struct PublicIdentity {
    record: EncryptionKeyRecord,
}

impl PublicIdentity {
    /// Wraps a verified encryption-key record.
    pub fn new(record: EncryptionKeyRecord) -> Self {
        PublicIdentity { record }
    }
    /// The identity key.
    pub fn key(&self) -> &IdentityKey {
        self.record.identity()
    }
    /// The identity key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.key().fingerprint()
    }
    /// The current encryption key record.
    pub fn encryption_record(&self) -> &EncryptionKeyRecord {
        &self.record
    }
    /// Compact, versioned encoding: `0x01 || record` ([`PUBLIC_IDENTITY_LEN`] bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(PUBLIC_IDENTITY_LEN);
        v.push(PUBLIC_IDENTITY_VERSION);
        v.extend_from_slice(self.record.as_bytes());
        v
    }
    /// Parses and verifies the encoding produced by [`PublicIdentity::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        match bytes.first() {
            None => Err(Error::Truncated("public identity")),
            Some(&PUBLIC_IDENTITY_VERSION) => Ok(PublicIdentity {
                record: EncryptionKeyRecord::from_bytes(&bytes[1..])?,
            }),
            Some(&v) => Err(Error::UnsupportedVersion {
                what: "public identity",
                found: v,
            }),
        }
    }
}

/// The private half of one encryption key record.
pub(crate) struct EncryptionSecret {
    pub(crate) record: EncryptionKeyRecord,
    x25519_seed: Zeroizing<[u8; 32]>,
    xwing_seed: Zeroizing<[u8; 32]>,
    pub(crate) x25519: <X25519HkdfSha256 as Kem>::PrivateKey,
    pub(crate) xwing: <XWing as Kem>::PrivateKey,
}

/// A POC's secret identity: the signing key and every encryption key not yet deleted.
pub struct Identity {
    signing: SigningKey,
    public: IdentityKey,
    enc: Vec<EncryptionSecret>,
}

impl Identity {
    /// A fresh identity whose first encryption key is valid for `[now, now + validity)` seconds.
    pub fn generate<R: CryptoRng>(rng: &mut R, now: u64, validity_secs: u64) -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        let mut id = Self::from_signing_seed(&seed)?;
        id.rotate_encryption_key(rng, now, validity_secs)?;
        Ok(id)
    }

    pub(crate) fn from_signing_seed(seed: &[u8; 32]) -> Result<Self> {
        let signing = SigningKey::from_bytes(seed);
        let public = IdentityKey::from_bytes(&signing.verifying_key().to_bytes())?;
        Ok(Identity {
            signing,
            public,
            enc: Vec::new(),
        })
    }

    /// Adds a new encryption key valid from `now`; earlier keys stay until [`Identity::prune`]
    /// so messages already in flight can still be opened.
    pub fn rotate_encryption_key<R: CryptoRng>(&mut self, rng: &mut R, now: u64, validity_secs: u64) -> Result<()> {
        if self.enc.len() >= MAX_ENCRYPTION_KEYS {
            return Err(Error::TooLarge {
                field: "encryption keys held",
                len: self.enc.len() as u64 + 1,
                max: MAX_ENCRYPTION_KEYS as u64,
            });
        }
        let mut xs = Zeroizing::new([0u8; 32]);
        let mut ws = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(xs.as_mut());
        rng.fill_bytes(ws.as_mut());
        let serial = self.enc.iter().map(|e| e.record.serial() + 1).max().unwrap_or(1);
        let secret = self.derive_secret(serial, now, now.saturating_add(validity_secs), xs, ws)?;
        self.enc.push(secret);
        Ok(())
    }

    fn derive_secret(
        &self,
        serial: u32,
        nb: u64,
        na: u64,
        xs: Zeroizing<[u8; 32]>,
        ws: Zeroizing<[u8; 32]>,
    ) -> Result<EncryptionSecret> {
        let (x_sk, x_pk) = X25519HkdfSha256::derive_keypair(xs.as_ref());
        let (w_sk, w_pk) = XWing::derive_keypair(ws.as_ref());
        let x_pk: [u8; 32] = x_pk.to_bytes().into();
        let record = EncryptionKeyRecord::issue(self, serial, nb, na, &x_pk, &w_pk.to_bytes())?;
        Ok(EncryptionSecret {
            record,
            x25519_seed: xs,
            xwing_seed: ws,
            x25519: x_sk,
            xwing: w_sk,
        })
    }

    /// Deletes the private halves of encryption keys that expired more than `grace_secs`
    /// before `now` (bounded forward secrecy). The newest key is always kept.
    pub fn prune(&mut self, now: u64, grace_secs: u64) -> usize {
        let newest = self.enc.iter().map(|e| e.record.serial()).max();
        let before = self.enc.len();
        self.enc
            .retain(|e| Some(e.record.serial()) == newest || e.record.not_after.saturating_add(grace_secs) > now);
        before - self.enc.len()
    }

    /// Deletes the private halves of every encryption key but the newest (once the newest
    /// is published and nothing sealed to the older ones is still on its way); returns how
    /// many were deleted.
    pub fn retire_superseded(&mut self) -> usize {
        let newest = self.enc.iter().map(|e| e.record.serial()).max();
        let before = self.enc.len();
        self.enc.retain(|e| Some(e.record.serial()) == newest);
        before - self.enc.len()
    }

    /// How many encryption private keys this identity holds.
    pub fn encryption_key_count(&self) -> usize {
        self.enc.len()
    }

    /// The identity key.
    pub fn public_key(&self) -> &IdentityKey {
        &self.public
    }
    /// The fingerprint of the identity key.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }
    /// The public identity with the newest encryption key.
    pub fn public(&self) -> PublicIdentity {
        let newest = self
            .enc
            .iter()
            .max_by_key(|e| e.record.serial())
            .expect("an identity always holds an encryption key");
        PublicIdentity {
            record: newest.record.clone(),
        }
    }
    /// All encryption key records still held, oldest first.
    pub fn encryption_records(&self) -> impl Iterator<Item = &EncryptionKeyRecord> {
        self.enc.iter().map(|e| &e.record)
    }
    pub(crate) fn encryption_secret(&self, record_hash: &[u8; 32]) -> Option<&EncryptionSecret> {
        self.enc.iter().find(|e| &e.record.hash == record_hash)
    }

    /// Signs `context || message` with the identity key.
    pub fn sign(&self, ctx: SigningContext, message: &[u8]) -> [u8; 64] {
        self.sign_parts(ctx, &[message])
    }
    pub(crate) fn sign_parts(&self, ctx: SigningContext, parts: &[&[u8]]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.signing.sign(&ctx.message(parts)).to_bytes()
    }

    /// Signs `message` with raw Ed25519 and **no** pocnet context, as the C2SP signed-note
    /// and tlog-cosignature formats require (see [`crate::note`]).
    ///
    /// Why this cannot be replayed as another pocnet signature: every [`SigningContext`]
    /// ends in a NUL byte, and so does the TLS 1.3 CertificateVerify prefix the identity
    /// key may also sign; note text cannot contain NUL (no control characters), so no note
    /// message is ever a message this key signs under a context, nor the reverse.
    ///
    /// # Panics
    /// If `message` contains a NUL byte: that would break the argument above, and no
    /// valid note text contains one (a programming error, not an input error).
    pub fn sign_note(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        assert!(!message.contains(&0), "signed-note text must not contain a NUL byte");
        self.signing.sign(message).to_bytes()
    }

    /// The 32-byte Ed25519 seed, for transports that authenticate the identity key
    /// (TLS with raw public keys). Handle with care: it is the identity.
    pub fn signing_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// Secret encoding (to be stored only inside an encrypted key file).
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(2 + 32 + self.enc.len() * (ENC_RECORD_LEN + 64));
        w.u8(SECRET_VERSION)
            .bytes(&self.signing.to_bytes())
            .u8(self.enc.len() as u8);
        for e in &self.enc {
            w.bytes(e.record.as_bytes())
                .bytes(e.x25519_seed.as_ref())
                .bytes(e.xwing_seed.as_ref());
        }
        Zeroizing::new(w.into_vec())
    }

    /// Parses [`Identity::to_secret_bytes`], re-deriving and checking every key.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "secret identity");
        let v = r.u8()?;
        if v != SECRET_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "secret identity",
                found: v,
            });
        }
        let seed = Zeroizing::new(r.array::<32>()?);
        let mut id = Self::from_signing_seed(&seed)?;
        let n = r.u8()? as usize;
        if n == 0 || n > MAX_ENCRYPTION_KEYS {
            return Err(Error::NonCanonical("secret identity must hold 1..=16 encryption keys"));
        }
        for _ in 0..n {
            let rec = EncryptionKeyRecord::from_bytes(r.take(ENC_RECORD_LEN)?)?;
            let xs = Zeroizing::new(r.array::<32>()?);
            let ws = Zeroizing::new(r.array::<32>()?);
            let (nb, na) = rec.window();
            let secret = id.derive_secret(rec.serial(), nb, na, xs, ws)?;
            if secret.record.as_bytes() != rec.as_bytes() || rec.identity() != id.public_key() {
                return Err(Error::NonCanonical("stored encryption key does not match its record"));
            }
            id.enc.push(secret);
        }
        r.finish()?;
        Ok(id)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identity({}, {} encryption keys)",
            self.fingerprint().short(),
            self.enc.len()
        )
    }
}

/// A 60-digit number two people read to each other to confirm they hold each other's
/// identity keys. Symmetric: `safety_number(a, b) == safety_number(b, a)`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SafetyNumber(String);

impl SafetyNumber {
    /// The 60 digits with no separators.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SafetyNumber {
    /// Twelve groups of five digits, as read aloud.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<&str> = (0..12).map(|i| &self.0[i * 5..i * 5 + 5]).collect();
        f.write_str(&groups.join(" "))
    }
}

const SAFETY_ITERATIONS: usize = 5200;

fn safety_half(key: &IdentityKey) -> String {
    let mut h = Sha512::new();
    h.update(context::SAFETY);
    h.update(key.as_bytes());
    let mut digest = h.finalize();
    for _ in 0..SAFETY_ITERATIONS {
        let mut h = Sha512::new();
        h.update(digest);
        h.update(key.as_bytes());
        digest = h.finalize();
    }
    let mut out = String::with_capacity(30);
    for chunk in digest[..30].chunks(5) {
        let v = chunk.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        out.push_str(&format!("{:05}", v % 100_000));
    }
    digest.zeroize();
    out
}

/// Computes the safety number for a pair of identity keys (see PROTOCOL.md).
pub fn safety_number(a: &IdentityKey, b: &IdentityKey) -> SafetyNumber {
    let (x, y) = (safety_half(a), safety_half(b));
    SafetyNumber(if x <= y { x + &y } else { y + &x })
}
