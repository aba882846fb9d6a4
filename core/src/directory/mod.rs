//! The POC directory: statements ([`entry`]), the state they build ([`state`]), the
//! verified log that carries them ([`log`]) and the Secretariat's side that writes it
//! ([`publish`]).

pub mod entry;
pub mod log;
pub mod publish;
pub mod state;

pub use entry::{
    Action, ActionKind, Author, Category, Contact, EntryError, Handle, PolicyKind, Rank, Statement, StatementBody,
    WitnessKey,
};
pub use log::{Anchor, ForkEvidence, HeadCheck, LogError, LogState};
pub use publish::{vkey, Publisher};
pub use state::{
    Applied, Authority, Directory, DirectoryError, Former, LookupError, Poc, PolicyVersion, Refusal, WitnessPolicy,
    STALE_AFTER_MS,
};
