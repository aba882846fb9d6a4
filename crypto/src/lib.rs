//! # pocnet-crypto
//!
//! Identities, sealed and signed envelopes, receipts, passphrase-encrypted key
//! files, and the Merkle log and signed-note primitives of the directory, for pocnet. Pure: no sockets, no files, no clock — callers pass time and
//! randomness in, so every function is deterministic under a fixed RNG.
//!
//! The byte formats are specified in `PROTOCOL.md` at the repository root.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
pub mod context;
pub mod envelope;
mod error;
pub mod identity;
pub mod keyfile;
pub mod note;
pub mod receipt;
pub mod stream;
pub mod tlog;

pub use envelope::{
    claimed_sender, open, open_stream, seal, seal_stream, trim_for_recipient, verify, verify_from, verify_stream,
    ContentType, Header, HeaderFields, Opened, Sealed, Suite, Tlp,
};
pub use error::{Error, Result};
pub use identity::{
    safety_number, EncryptionKeyRecord, Fingerprint, Identity, IdentityKey, PublicIdentity, SafetyNumber, VoiceCode,
};
pub use keyfile::KdfParams;
pub use note::{cosign, sign_note, Checkpoint, NoteSignature, NoteVerifier, SignedNote, Witness};
pub use receipt::{Receipt, ReceiptKind};

/// Re-exported so callers name the same RNG traits.
pub use rand_core;

/// The operating system's random number generator.
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Hex encoding (lowercase), for ids in messages and logs.
pub fn to_hex(bytes: &[u8]) -> String {
    identity::hex_encode(bytes)
}

/// Hex decoding; `None` for odd length or a non-hex character.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    identity::hex_decode(s)
}
