//! The POC directory: statements ([`entry`]), the state they build ([`state`]) and the
//! verified log that carries them ([`log`]).

pub mod entry;
pub mod log;
pub mod state;

pub use entry::{
    Action, ActionKind, Author, Category, Contact, EntryError, Handle, Rank, Statement, StatementBody, WitnessKey,
};
pub use log::{Anchor, ForkEvidence, HeadCheck, LogError, LogState};
pub use state::{
    Applied, Authority, Directory, DirectoryError, Former, LookupError, Poc, Refusal, WitnessPolicy, STALE_AFTER_MS,
};
