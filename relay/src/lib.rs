//! # pocnet-relay
//!
//! Stores and forwards end-to-end encrypted, signed envelopes between enrolled POCs
//! over QUIC. It never holds a plaintext or a POC's secret key; it answers "accepted"
//! only after the envelope is committed to disk. See ARCHITECTURE.md.
#![forbid(unsafe_code)]

pub mod admin;
pub mod clock;
pub mod config;
pub mod directory;
pub mod ratelimit;
pub mod server;
pub mod service;
pub mod store;

pub use config::Config;
pub use server::{start, Running};
