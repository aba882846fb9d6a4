//! Drills: a scenario file, simulated POCs, the signed drill record and the after-action
//! report — the pure part of `pocnet drill` and `pocnet demo`.
//!
//! - [`scenario`](mod@scenario): the TOML scenario ([`Scenario::parse`]), the roster
//!   ([`Scenario::roster`]) and what each inject sends (header fields — always EXERCISE —,
//!   alert bodies, plans, round challenges); the shipped scenarios via [`builtin`];
//! - [`sim`]: response profiles and [`react`], what a simulated POC does and when;
//! - [`bundle`]: the signed drill record ([`DrillBundle`]), its builder and
//!   [`verify_drill`];
//! - [`report`]: the after-action report ([`AfterAction`]), a pure function of the record;
//! - [`render`]: Markdown, JSON and self-contained HTML with inline SVG.
//!
//! Pure: no I/O, no clock, no randomness source (the scenario's seed is an input). Formats
//! and definitions: PROTOCOL.md §15.

pub mod bundle;
pub mod render;
pub mod report;
pub mod scenario;
pub mod sim;

pub use bundle::{
    receipt_fields, verify_drill, AlertEvidence, DrillBundle, DrillBundleBuilder, DrillError, DrillEvent,
    DrillEventKind, MessageEvidence, ReceiptFields, DRILL_VERSION, MAX_DRILL_LEN,
};
pub use report::{
    detect_language, AfterAction, AlertReport, AnswerLine, HumanReport, MessageReport, ParticipantCounts,
    QuestionReport, Reachability, Reason, RoundSummary, StateLine, StateOutcome, TimelineEntry, Unreachable,
};
pub use scenario::{
    fmt_drill_time, parse_drill_duration, AlertInject, AlertTargets, FollowUpInject, Inject, InjectKind, MessageInject,
    MessageTarget, Participant, ProfileChoice, RosterEntry, RoundInject, Scenario, ScenarioError, StateSelection,
    MAX_SCENARIO_LEN,
};
pub use sim::{canned_answer, question_number, react, splitmix64, Profile, Reaction, Stimulus};

/// The names of the shipped scenarios, in the order a newcomer should try them.
pub const BUILTIN: [&str; 3] = ["airport", "contact-check", "silent-state"];

/// The text of a shipped scenario (`airport`, `contact-check`, `silent-state`), embedded
/// from `scenarios/` at the repository root.
pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "airport" => Some(include_str!("../../../scenarios/airport.toml")),
        "contact-check" => Some(include_str!("../../../scenarios/contact-check.toml")),
        "silent-state" => Some(include_str!("../../../scenarios/silent-state.toml")),
        _ => None,
    }
}
