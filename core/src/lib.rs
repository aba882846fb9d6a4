//! # pocnet-core
//!
//! The POC directory: the signed statements that make up the Secretariat's append-only log,
//! the state machine that applies them in order, and the verifier that checks a log against
//! its signed checkpoints; contact verification rounds ([`round`]): challenges, signed
//! answers, the round bundle and its report; and escalation alerts ([`alert`]): the sender's
//! signed escalation plan (the only part of an alert the relay reads) and its schedule, the
//! sans-IO escalation state machine, the sealed alert body with CAP 1.2's fields, alert
//! status, TLP 2.0 forwarding rules, incident timelines, labels in four languages and CAP 1.2
//! XML export; and drills ([`drill`]): scenario files, simulated POCs, the signed drill
//! record and the after-action report. Pure: no sockets, no files, no clock — callers pass
//! time in.
//!
//! The byte formats are specified in `PROTOCOL.md` §12, §13, §14 and §15 at the repository
//! root.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alert;
pub mod directory;
pub mod drill;
pub mod iso3166;
pub mod round;
pub mod signed;
