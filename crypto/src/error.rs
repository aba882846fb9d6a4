//! One error type for the crate. Every variant names something a caller can act on.

use thiserror::Error;

/// What went wrong in `pocnet-crypto`.
#[derive(Debug, Error)]
#[allow(missing_docs)] // struct-variant fields are named in each message
pub enum Error {
    /// The input ended before a complete structure was read.
    #[error("input truncated while reading {0}")]
    Truncated(&'static str),
    /// Bytes were left over after a complete structure.
    #[error("{0} has {1} unexpected trailing bytes")]
    TrailingBytes(&'static str, usize),
    /// A version byte this implementation does not speak.
    #[error("unsupported {what} version {found} (this build speaks version 1)")]
    UnsupportedVersion { what: &'static str, found: u8 },
    /// An HPKE suite id that is not defined.
    #[error("unknown suite id {0:#04x}")]
    UnknownSuite(u8),
    /// A field violates a limit stated in PROTOCOL.md.
    #[error("{field} is too large: {len} (limit {max})")]
    TooLarge { field: &'static str, len: u64, max: u64 },
    /// A field is syntactically valid but not in its one canonical form.
    #[error("non-canonical encoding: {0}")]
    NonCanonical(&'static str),
    /// The magic bytes at the start of a file or object are wrong.
    #[error("not a {0} (bad magic bytes)")]
    BadMagic(&'static str),

    /// An Ed25519 signature did not verify under the expected key.
    #[error("signature on {0} does not verify under the expected key")]
    BadSignature(&'static str),
    /// A public key is a weak (small-order) Ed25519 key or otherwise unusable.
    #[error("weak or invalid public key: {0}")]
    WeakKey(&'static str),
    /// The envelope names a different sender than the one the caller expected.
    #[error("envelope is from a different sender than expected")]
    WrongSender,
    /// The reader's identity is not in the envelope's signed recipient list.
    #[error("this identity is not a recipient of the envelope")]
    NotARecipient,
    /// The reader is a recipient, but under an encryption key this identity no longer holds.
    #[error("envelope was sealed to encryption key {0} which this identity does not hold (deleted or never ours)")]
    UnknownEncryptionKey(String),
    /// The envelope does not carry the key stanza for this reader.
    #[error("envelope carries no key stanza for this recipient")]
    StanzaMissing,
    /// The stanza does not match the hash the sender signed for it.
    #[error("key stanza does not match the signed recipient list (swapped or altered)")]
    StanzaMismatch,
    /// HPKE could not unwrap the content key.
    #[error("content key could not be unwrapped (HPKE open failed)")]
    UnwrapFailed,
    /// A recipient's encryption key was rejected by HPKE (e.g. all-zero X25519 output).
    #[error("recipient encryption key rejected: {0}")]
    BadRecipientKey(String),
    /// A recipient's encryption key is outside its validity window.
    #[error("encryption key is not valid at {at} (valid {not_before}..{not_after})")]
    KeyNotValid { at: u64, not_before: u64, not_after: u64 },
    /// A body chunk failed authentication: altered, reordered, swapped or truncated.
    #[error("body chunk {0} failed authentication (altered, reordered or truncated)")]
    ChunkCorrupted(u64),
    /// The body has a different length than its signed header says.
    #[error("body length does not match the signed header")]
    BodyLength,

    /// The key file's passphrase is wrong.
    #[error("wrong passphrase for this key file")]
    WrongPassphrase,
    /// The key file is damaged (checksum mismatch).
    #[error("key file is corrupted (checksum mismatch); restore it from backup")]
    KeyFileCorrupted,
    /// Argon2 rejected its parameters.
    #[error("key derivation failed: {0}")]
    Kdf(String),

    /// A Merkle inclusion or consistency proof does not verify, or was asked for outside
    /// the tree.
    #[error("Merkle proof refused: {0}")]
    Proof(&'static str),
    /// Signed-note text (or a checkpoint, verifier key or signature line in it) is not in
    /// its one strict form.
    #[error("malformed signed note: {0}")]
    Note(&'static str),
    /// The note carries no signature line with this signer's name and key id.
    #[error("note carries no signature by {0}")]
    NotSignedBy(String),

    /// Reading or writing a stream failed.
    #[error("I/O error while streaming: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
