//! What travels *inside* a message envelope (plaintext, end-to-end): the message body
//! and references to attachment envelopes.

use serde::{Deserialize, Serialize};

use crate::MessageId;

/// Plaintext of a `ContentType::Message` envelope (postcard-encoded).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageBody {
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub text: String,
    /// Attachments, each its own envelope stored at the relay.
    pub attachments: Vec<AttachmentRef>,
}

/// Points at an attachment envelope and pins its exact bytes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachmentRef {
    /// The attachment envelope's message id.
    pub message_id: MessageId,
    /// Its envelope hash (checked after download).
    pub envelope_hash: [u8; 32],
    /// File name (no directories).
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
}
