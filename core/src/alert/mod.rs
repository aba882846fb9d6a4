//! Escalation alerts: the sender's signed plan that the relay reads, and everything around it
//! that only the clients see.
//!
//! - [`plan`]: the signed escalation plan ([`SignedPlan`]) and its schedule — the only part of
//!   an alert the relay reads;
//! - [`machine`]: [`Escalation`], the sans-IO state machine of one alert's releases.
//!
//! Pure: no I/O, no clock. Byte formats: PROTOCOL.md §14.

pub mod machine;
pub mod plan;

pub use crate::signed::FormatError;
pub use machine::{AckOutcome, Escalation, StateProgress, StepState};
pub use plan::{
    Plan, PlanKind, SignedPlan, StatePlan, Step, LATE_AFTER_MS, MAX_PLAN_LEN, MAX_PLAN_STATES, MAX_RANKS, MAX_REPEATS,
    MAX_STATE_KEYS, MAX_WINDOW_MS, MIN_WINDOW_MS, PLAN_VERSION,
};
