//! Delivery status of sent messages, from the relay's signed acceptance and the
//! recipients' signed receipts.

use serde::Serialize;

use crate::app::Client;
use crate::error::{Error, Result};
use crate::types::{DeliveryState, Direction, MessageId};

/// Per-recipient delivery state of a sent message.
#[derive(Clone, Debug, Serialize)]
pub struct RecipientStatus {
    /// Handle.
    pub handle: String,
    /// The strongest state a signed statement proves.
    pub state: DeliveryState,
    /// When (Unix ms).
    pub at: Option<u64>,
}

/// A sent message's status.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The id.
    pub id: MessageId,
    /// Subject.
    pub subject: String,
    /// When the relay committed it.
    pub stored_at: Option<u64>,
    /// Each recipient.
    pub recipients: Vec<RecipientStatus>,
}

impl Client {
    /// Delivery status of a sent message (no network: sync first for fresh receipts).
    pub fn status(&self, id: &str) -> Result<Status> {
        let m = self.store.find(id)?;
        if m.direction != Direction::Out {
            return Err(Error::NotSentByYou(m.id.to_hex()));
        }
        let mut recipients = Vec::new();
        for handle in &m.recipients {
            // A handle with no pinned key has no receipts we could have accepted.
            let (state, at) = match self.store.key_for_handle(handle)? {
                Some(key) => match self.store.best_receipt(m.id, &key)? {
                    Some((kind, at)) => (DeliveryState::from_receipt(kind), Some(at)),
                    None if self.store.is_expired(m.id, &key)? => (DeliveryState::Expired, None),
                    None => (DeliveryState::Stored, m.relay_stored_at),
                },
                None => (DeliveryState::Stored, m.relay_stored_at),
            };
            recipients.push(RecipientStatus {
                handle: handle.clone(),
                state,
                at,
            });
        }
        Ok(Status {
            id: m.id,
            subject: m.subject,
            stored_at: m.relay_stored_at,
            recipients,
        })
    }
}
