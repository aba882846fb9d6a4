//! # pocnet-core
//!
//! The POC directory: the signed statements that make up the Secretariat's append-only log,
//! the state machine that applies them in order, and the verifier that checks a log against
//! its signed checkpoints; and contact verification rounds ([`round`]): challenges, signed
//! answers, the round bundle and its report. Pure: no sockets, no files, no clock — callers pass time in.
//!
//! The byte formats are specified in `PROTOCOL.md` §12 and §13 at the repository root.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alert;
pub mod directory;
pub mod iso3166;
pub mod round;
pub mod signed;
