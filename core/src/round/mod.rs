//! Contact verification rounds: the Secretariat's signed, timed check that every POC still
//! answers, and the report any state can recompute from the round's bundle.
//!
//! - [`format`](mod@format): the challenge (content type 5; a reminder is the challenge with
//!   `reminder: Some(n)`), the POC's signed answer (carried in content type 6), the
//!   Secretariat's signed outcome of an answer outside pocnet, and its signed manifest;
//! - [`bundle`]: the bundle file, its builder and [`verify_bundle`];
//! - [`report`]: the figures, a pure function of the bundle;
//! - [`render`]: Markdown, JSON, CSV and self-contained HTML.
//!
//! Pure: no I/O, no clock. Byte formats: PROTOCOL.md §13.

pub mod bundle;
pub mod format;
pub mod render;
pub mod report;

pub use bundle::{
    secretariat_of, verify_bundle, Acceptance, AnswerRecord, Bundle, BundleBuilder, BundleError, Target, TargetRecord,
    MAX_BUNDLE_LEN,
};
pub use format::{
    sha256, Answer, Challenge, Manifest, ManifestEntry, Outcome, Request, RoundError, RoundId, SignedAnswer,
    SignedManifest, SignedOutcome, ROUND_VERSION,
};
pub use report::{OutsideAnswer, PocReport, Report, StateReport, Status, Totals};
