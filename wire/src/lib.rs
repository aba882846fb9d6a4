//! # pocnet-wire
//!
//! The client–relay protocol, shared by `pocnet-relay` and `pocnet`: framing, the
//! request/response messages, the content carried inside message envelopes, and the
//! TLS configuration that authenticates both ends by their raw Ed25519 identity keys
//! (RFC 7250). No sockets here: frames are bytes in, values out (see PROTOCOL.md).
#![forbid(unsafe_code)]

pub mod content;
pub mod frame;
pub mod messages;
pub mod tls;

pub use frame::{decode, encode, FrameDecoder, FrameError, MAX_FRAME};
pub use messages::*;

/// QUIC ALPN protocol id; the version is part of it.
pub const ALPN: &[u8] = b"pocnet/1";
/// Protocol version carried in `Hello`.
pub const PROTOCOL_VERSION: u16 = 1;
/// TLS server name clients present (the relay is authenticated by its pinned key, not a name).
pub const SERVER_NAME: &str = "pocnet-relay";

/// Context of the relay's signature on `Response::Accepted`: the relay signs
/// `envelope_hash || u64 stored_at_ms`.
pub const RELAY_ACCEPT: pocnet_crypto::context::SigningContext =
    pocnet_crypto::context::SigningContext::new(b"pocnet/v1/relay-accept\0");

/// The bytes the relay signs (under [`RELAY_ACCEPT`]) when it accepts an envelope:
/// `envelope_hash || stored_at_ms (8 bytes, big-endian)`.
pub fn accept_statement(envelope_hash: &[u8; 32], stored_at_ms: u64) -> Vec<u8> {
    [&envelope_hash[..], &stored_at_ms.to_be_bytes()].concat()
}
