//! Escalation alerts: the sender's signed plan that the relay reads, and everything around it
//! that only the clients see.
//!
//! - [`plan`]: the signed escalation plan ([`SignedPlan`]) and its schedule — the only part of
//!   an alert the relay reads;
//! - [`machine`]: [`Escalation`], the sans-IO state machine of one alert's releases;
//! - [`content`]: [`AlertBody`], the sealed plaintext with CAP 1.2's structured fields;
//! - [`status`]: where an alert stands, per state and per POC, from the relay's report and
//!   the signed receipts;
//! - [`i18n`]: the structured fields in English, Spanish, French or Portuguese;
//! - [`tlp`]: TLP 2.0 forwarding rules;
//! - [`incident`]: one timeline of an incident in Markdown, JSON and HTML;
//! - [`cap`]: OASIS CAP 1.2 XML export.
//!
//! Pure: no I/O, no clock. Byte formats: PROTOCOL.md §14.

pub mod cap;
pub mod content;
pub mod i18n;
pub mod incident;
pub mod machine;
pub mod plan;
pub mod status;
pub mod tlp;

pub use crate::signed::FormatError;
pub use cap::{to_cap_xml, CapAlert, CapStatus};
pub use content::{
    AlertBody, Category, Certainty, MsgType, ResponseType, Severity, Urgency, ALERT_VERSION, MAX_ALERT_BODY,
};
pub use i18n::{label, Label, Lang};
pub use incident::{Event, EventKind, Timeline};
pub use machine::{AckOutcome, Escalation, StateProgress, StepState};
pub use plan::{
    Plan, PlanKind, SignedPlan, StatePlan, Step, LATE_AFTER_MS, MAX_PLAN_LEN, MAX_PLAN_STATES, MAX_RANKS, MAX_REPEATS,
    MAX_STATE_KEYS, MAX_WINDOW_MS, MIN_WINDOW_MS, PLAN_VERSION,
};
pub use status::{compute, AlertStatus, PocState, PocStatus, StateStatus, StepReport};
pub use tlp::{check_forward, forward_note, ForwardRefusal};
