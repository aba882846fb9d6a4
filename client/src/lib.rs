//! # pocnet (client library)
//!
//! Profiles, the relay session, the local store and the operations behind the `pocnet`
//! command. The binary is a thin layer of argument parsing and rendering over the
//! [`app::Client`] facade; the operations are in [`ops`], one module per capability,
//! and what they show in [`render`]. Every fallible function returns [`Error`].
#![forbid(unsafe_code)]

pub mod app;
pub mod db;
pub mod drill;
pub mod error;
mod fsutil;
pub mod net;
pub mod ops;
pub mod pipe;
pub mod portal;
pub mod profile;
pub mod render;
pub mod types;

pub use error::{Error, Result};

/// Encryption keys are valid for a year, so a sender with an older directory can still
/// reach a POC that rotated...
pub const ENCRYPTION_KEY_VALIDITY_SECS: u64 = 365 * 24 * 3600;

/// ...but they rotate every 90 days (`pocnet rotate`; every listing reminds when it is
/// due), and the old private key is deleted once the directory lists the new one: a key
/// file stolen later opens at most the last quarter's traffic still held anywhere.
pub const ROTATE_AFTER_SECS: u64 = 90 * 24 * 3600;

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
