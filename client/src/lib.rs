//! # pocnet (client library)
//!
//! Profiles, the relay session, the local store and the operations behind the `pocnet`
//! command. The binary is a thin layer of argument parsing and printing over [`app`].
#![forbid(unsafe_code)]

pub mod app;
pub mod db;
pub mod net;
pub mod pipe;
pub mod profile;

/// Encryption keys are valid for a year; rotation arrives with the directory.
pub const ENCRYPTION_KEY_VALIDITY_SECS: u64 = 365 * 24 * 3600;

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
