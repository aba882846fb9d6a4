//! # pocnet-wire
//!
//! The client–relay protocol, shared by `pocnet-relay` and `pocnet`: framing, the
//! request/response messages, the content carried inside message envelopes, and the
//! TLS configuration that authenticates both ends by their raw Ed25519 identity keys
//! (RFC 7250). No sockets here: frames are bytes in, values out (see PROTOCOL.md).
#![forbid(unsafe_code)]

pub mod accept;
pub mod content;
pub mod frame;
pub mod messages;
pub mod tls;

pub use frame::{decode, encode, FrameDecoder, FrameError, MAX_FRAME};
pub use messages::*;

/// QUIC ALPN protocol id; the version is part of it.
pub const ALPN: &[u8] = b"pocnet/3";
/// Protocol version carried in `Hello`.
pub const PROTOCOL_VERSION: u16 = 3;
/// TLS server name clients present (the relay is authenticated by its pinned key, not a name).
pub const SERVER_NAME: &str = "pocnet-relay";

pub use accept::{verify_acceptance, AcceptProof, ProofError};

/// Largest first frame on a stream from a key that is not enrolled: room for `Enrol`
/// (an invite code and a public identity with its X-Wing key), nothing more.
pub const MAX_UNENROLLED_FRAME: usize = 8 * 1024;
