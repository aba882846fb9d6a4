//! The client's operations, one module per capability, all as methods of
//! [`crate::app::Client`].

pub mod alerts;
pub mod attachments;
pub mod contacts;
pub mod directory;
pub mod governance;
pub mod messaging;
pub mod policy;
pub mod rotation;
pub mod rounds;
pub mod status;
