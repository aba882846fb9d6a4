//! The POC directory: statements ([`entry`]), the state they build ([`state`]) and the
//! verified log that carries them ([`log`]).

pub mod entry;
pub mod publish;
pub mod state;

pub use entry::{
    Action, ActionKind, Author, Category, Contact, EntryError, Handle, Rank, Statement, StatementBody, WitnessKey,
};
pub use publish::{vkey, Publisher};
pub use state::{Applied, Authority, Directory, DirectoryError, Former, LookupError, Poc, Refusal, WitnessPolicy};
