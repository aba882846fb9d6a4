//! Typed ids, hashes and the small enums of the client's API, instead of bare byte arrays,
//! strings and numbers.

use std::fmt;

use serde::{Serialize, Serializer};

/// A message (or attachment envelope) id: 16 random bytes chosen by the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageId(pub [u8; 16]);

/// SHA-256 over what the sender signed: what receipts and attachment references pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnvelopeHash(pub [u8; 32]);

impl MessageId {
    /// Lower-case hex, as listings show it.
    pub fn to_hex(&self) -> String {
        pocnet_crypto::to_hex(&self.0)
    }
    /// From a stored or wire value of the right length.
    pub fn from_slice(b: &[u8]) -> Option<MessageId> {
        Some(MessageId(b.try_into().ok()?))
    }
}

impl EnvelopeHash {
    /// From a stored value of the right length.
    pub fn from_slice(b: &[u8]) -> Option<EnvelopeHash> {
        Some(EnvelopeHash(b.try_into().ok()?))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Whether we received or sent a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received.
    In,
    /// Sent.
    Out,
}

impl Direction {
    /// The stored form (`in`/`out`, as in every version of the store).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
    /// From the stored form.
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "in" => Some(Direction::In),
            "out" => Some(Direction::Out),
            _ => None,
        }
    }
}

/// A recipient's delivery state, from the strongest signed receipt we hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Undelivered, and the relay says it expired.
    Expired,
    /// The relay committed it (signed acceptance); no receipt yet.
    Stored,
    /// The recipient's device opened it.
    Delivered,
    /// A person displayed it.
    Read,
    /// A person acknowledged it.
    Acknowledged,
}

impl DeliveryState {
    /// The state a receipt of this kind proves.
    pub fn from_receipt(kind: pocnet_crypto::ReceiptKind) -> DeliveryState {
        match kind {
            pocnet_crypto::ReceiptKind::Delivered => DeliveryState::Delivered,
            pocnet_crypto::ReceiptKind::Read => DeliveryState::Read,
            pocnet_crypto::ReceiptKind::Acknowledged => DeliveryState::Acknowledged,
        }
    }
    /// As listings print it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Expired => "expired",
            DeliveryState::Stored => "stored",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Acknowledged => "acknowledged",
        }
    }
}

/// The stored code of a receipt kind (the number PROTOCOL.md gives it).
pub fn receipt_kind_code(kind: pocnet_crypto::ReceiptKind) -> u8 {
    kind as u8
}

/// A receipt kind from its stored code.
pub fn receipt_kind_from_code(code: u8) -> Option<pocnet_crypto::ReceiptKind> {
    use pocnet_crypto::ReceiptKind as K;
    [K::Delivered, K::Read, K::Acknowledged]
        .into_iter()
        .find(|k| receipt_kind_code(*k) == code)
}

/// How a message's sender is shown: its pinned handle, or why it cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Peer {
    /// The handle pinned to this key.
    Known {
        /// The handle.
        handle: String,
    },
    /// The key is not the one pinned for the handle it claims.
    Unverified {
        /// Short fingerprint of the key that signed.
        fingerprint: String,
        /// The handle the directory gives it.
        claims: String,
    },
    /// The directory does not know the key.
    Unknown {
        /// Short fingerprint.
        fingerprint: String,
    },
}

impl Peer {
    /// The stored (and `--json`) string form, as earlier versions stored it.
    pub fn to_stored(&self) -> String {
        match self {
            Peer::Known { handle } => handle.clone(),
            Peer::Unverified { fingerprint, claims } => format!("UNVERIFIED {fingerprint} (claims {claims})"),
            Peer::Unknown { fingerprint } => format!("UNKNOWN {fingerprint}"),
        }
    }
    /// Whether the sender is not a verified, pinned contact.
    pub fn is_warning(&self) -> bool {
        !matches!(self, Peer::Known { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_codes_round_trip_and_unknown_codes_are_none() {
        for k in [
            pocnet_crypto::ReceiptKind::Delivered,
            pocnet_crypto::ReceiptKind::Read,
            pocnet_crypto::ReceiptKind::Acknowledged,
        ] {
            assert_eq!(receipt_kind_from_code(receipt_kind_code(k)), Some(k));
        }
        assert_eq!(receipt_kind_from_code(0), None);
        assert_eq!(receipt_kind_from_code(9), None);
        assert!(DeliveryState::Acknowledged > DeliveryState::Read);
        assert!(DeliveryState::Read > DeliveryState::Delivered);
    }

    #[test]
    fn direction_parses_only_its_stored_forms() {
        assert_eq!(Direction::parse("in"), Some(Direction::In));
        assert_eq!(Direction::parse("out"), Some(Direction::Out));
        assert_eq!(Direction::parse("IN"), None);
    }
}
