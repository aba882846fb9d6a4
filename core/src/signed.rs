//! Helpers shared by every signed object and versioned plaintext format of this crate (round
//! challenges, answers, outcomes and manifests; alert plans and alert bodies).
//!
//! Every format is postcard whose first field is a version byte (`0x01`), so a reader sees the
//! version before it decodes anything else. Signed objects are
//!
//! ```text
//! postcard(body) || signer key [32] || Ed25519 signature [64]
//! signature over <context> || every byte before the signature
//! ```
//!
//! Parsing is strict: a length bound checked before anything is decoded, the version, postcard
//! in its one canonical encoding (re-encoding must give the same bytes), exactly 96 bytes after
//! the body (or none, unsigned), and the signature checked with `verify_strict` through
//! [`IdentityKey::verify`].

use pocnet_crypto::context::SigningContext;
use pocnet_crypto::{Identity, IdentityKey};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// The version byte every format of this crate writes and reads first.
pub(crate) const FORMAT_VERSION: u8 = 1;
/// Signer key and signature after a signed body.
pub(crate) const TAIL_LEN: usize = 32 + 64;

/// Why signed-object or plaintext-format bytes were refused, or could not be made.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FormatError {
    /// Longer than its bound.
    #[error("{what} is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Which object.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too short to hold what it must.
    #[error("{what} is only {len} bytes, too short to be one")]
    TooShort {
        /// Which object.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// Not version 1.
    #[error("unsupported {what} version {found} (this build speaks version 1)")]
    Version {
        /// Which object.
        what: &'static str,
        /// The version byte found.
        found: u8,
    },
    /// Postcard does not decode, or does not encode.
    #[error("{what} does not decode: {reason}")]
    Decode {
        /// Which object.
        what: &'static str,
        /// The decoder's words.
        reason: String,
    },
    /// The body is not followed by exactly the signer key and signature (or, unsigned,
    /// by nothing).
    #[error("{what} has {len} bytes after its body where exactly {expected} belong")]
    Tail {
        /// Which object.
        what: &'static str,
        /// Bytes after the body.
        len: usize,
        /// Bytes that belong there.
        expected: usize,
    },
    /// Decodes, but not from its one canonical encoding.
    #[error("{what} is not in canonical encoding")]
    NonCanonical {
        /// Which object.
        what: &'static str,
    },
    /// The signer key is not a valid Ed25519 key.
    #[error("{what} signer key is not a valid Ed25519 key")]
    BadKey {
        /// Which object.
        what: &'static str,
    },
    /// Signed by a key other than the one expected.
    #[error("{what} is signed by {found}, not by the expected key")]
    Signer {
        /// Which object.
        what: &'static str,
        /// The signer key found, hex.
        found: String,
    },
    /// The signature does not verify.
    #[error("{what} signature does not verify")]
    BadSignature {
        /// Which object.
        what: &'static str,
    },
    /// A field breaks its bound or syntax.
    #[error("{field} {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn field(field: &'static str, reason: impl Into<String>) -> FormatError {
    FormatError::Field {
        field,
        reason: reason.into(),
    }
}

pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `s` is `min..=max` bytes with no control or text-direction character (`\n` allowed only
/// where `lines`).
pub(crate) fn text(name: &'static str, s: &str, min: usize, max: usize, lines: bool) -> Result<(), FormatError> {
    if s.len() > max {
        return Err(field(name, format!("is {} bytes; the limit is {max}", s.len())));
    }
    if s.len() < min {
        return Err(field(name, "is empty"));
    }
    if s.chars()
        .any(|c| (c.is_control() && !(lines && c == '\n')) || is_bidi_control(c))
    {
        return Err(field(name, "contains a control or text-direction character"));
    }
    Ok(())
}

pub(crate) fn encode<T: Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, FormatError> {
    postcard::to_allocvec(v).map_err(|e| FormatError::Decode {
        what,
        reason: e.to_string(),
    })
}

/// Decodes `bytes[..bytes.len() - tail]` strictly: bound, version, canonical, exact tail.
pub(crate) fn decode<T: Serialize + DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
    tail: usize,
) -> Result<T, FormatError> {
    if bytes.len() > max {
        return Err(FormatError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    if bytes.len() < 1 + tail {
        return Err(FormatError::TooShort { what, len: bytes.len() });
    }
    if bytes[0] != FORMAT_VERSION {
        return Err(FormatError::Version { what, found: bytes[0] });
    }
    let (v, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| FormatError::Decode {
        what,
        reason: e.to_string(),
    })?;
    if rest.len() != tail {
        return Err(FormatError::Tail {
            what,
            len: rest.len(),
            expected: tail,
        });
    }
    // postcard accepts over-long varints; one meaning must have one encoding.
    if encode(what, &v)?[..] != bytes[..bytes.len() - tail] {
        return Err(FormatError::NonCanonical { what });
    }
    Ok(v)
}

/// `postcard(body) || key || sig(ctx || all before)`.
pub(crate) fn sign_body<T: Serialize>(
    what: &'static str,
    ctx: SigningContext,
    signer: &Identity,
    body: &T,
    max: usize,
) -> Result<Vec<u8>, FormatError> {
    let mut bytes = encode(what, body)?;
    bytes.extend_from_slice(signer.public_key().as_bytes());
    let sig = signer.sign(ctx, &bytes);
    bytes.extend_from_slice(&sig);
    if bytes.len() > max {
        return Err(FormatError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

/// Parses a signed object and checks its signature. With `expected`, the signer must be that
/// key (checked before the signature, and the already validated key is used).
pub(crate) fn open_body<T: Serialize + DeserializeOwned>(
    what: &'static str,
    ctx: SigningContext,
    bytes: &[u8],
    max: usize,
    expected: Option<&IdentityKey>,
) -> Result<(T, IdentityKey), FormatError> {
    let body = decode::<T>(what, bytes, max, TAIL_LEN)?;
    let body_end = bytes.len() - TAIL_LEN;
    let key_bytes: [u8; 32] = bytes[body_end..body_end + 32].try_into().expect("32 bytes");
    let key = match expected {
        Some(k) if k.as_bytes() == &key_bytes => *k,
        Some(_) => {
            return Err(FormatError::Signer {
                what,
                found: pocnet_crypto::to_hex(&key_bytes),
            })
        }
        None => IdentityKey::from_bytes(&key_bytes).map_err(|_| FormatError::BadKey { what })?,
    };
    let sig: [u8; 64] = bytes[body_end + 32..].try_into().expect("64 bytes");
    key.verify(ctx, &bytes[..body_end + 32], &sig, what)
        .map_err(|_| FormatError::BadSignature { what })?;
    Ok((body, key))
}
