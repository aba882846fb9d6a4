//! Signed receipts: a recipient's small, signed statement about one envelope.
//!
//! The sender (and the Secretariat, later) verifies a receipt with the recipient's
//! identity key; it names the message id and the envelope hash, so it cannot be
//! moved to another message.

use crate::codec::{Reader, Writer};
use crate::context;
use crate::error::{Error, Result};
use crate::identity::{Identity, IdentityKey};

const RECEIPT_VERSION: u8 = 1;
/// Encoded receipt length.
pub const RECEIPT_LEN: usize = 1 + 1 + 16 + 32 + 32 + 32 + 8 + 64;

/// What the recipient states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReceiptKind {
    /// The envelope reached the recipient's device and opened correctly.
    Delivered = 1,
    /// A person displayed it.
    Read = 2,
    /// A person explicitly acknowledged it (what stops an escalation).
    Acknowledged = 3,
}

impl ReceiptKind {
    fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            1 => ReceiptKind::Delivered,
            2 => ReceiptKind::Read,
            3 => ReceiptKind::Acknowledged,
            _ => return Err(Error::NonCanonical("unknown receipt kind")),
        })
    }
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Read => "read",
            ReceiptKind::Acknowledged => "acknowledged",
        }
    }
}

/// A verified (or freshly signed) receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// What is stated.
    pub kind: ReceiptKind,
    /// The message id.
    pub message_id: [u8; 16],
    /// The envelope hash.
    pub envelope_hash: [u8; 32],
    /// Who signed (the recipient).
    pub signer: [u8; 32],
    /// The envelope's sender.
    pub sender: [u8; 32],
    /// When, Unix milliseconds.
    pub at_ms: u64,
    bytes: Vec<u8>,
}

impl Receipt {
    /// Signs a receipt as `signer`.
    pub fn sign(
        signer: &Identity,
        kind: ReceiptKind,
        message_id: [u8; 16],
        envelope_hash: [u8; 32],
        sender: &IdentityKey,
        at_ms: u64,
    ) -> Self {
        let mut w = Writer::with_capacity(RECEIPT_LEN);
        w.u8(RECEIPT_VERSION)
            .u8(kind as u8)
            .bytes(&message_id)
            .bytes(&envelope_hash)
            .bytes(signer.public_key().as_bytes())
            .bytes(sender.as_bytes())
            .u64(at_ms);
        let sig = signer.sign(context::RECEIPT, &w.buf);
        w.bytes(&sig);
        Receipt {
            kind,
            message_id,
            envelope_hash,
            signer: *signer.public_key().as_bytes(),
            sender: *sender.as_bytes(),
            at_ms,
            bytes: w.into_vec(),
        }
    }

    /// Parses a receipt and verifies it was signed by `signer`.
    pub fn verify(bytes: &[u8], signer: &IdentityKey) -> Result<Self> {
        let mut r = Reader::new(bytes, "receipt");
        let v = r.u8()?;
        if v != RECEIPT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "receipt",
                found: v,
            });
        }
        let kind = ReceiptKind::from_u8(r.u8()?)?;
        let message_id = r.array()?;
        let envelope_hash = r.array()?;
        let signer_bytes: [u8; 32] = r.array()?;
        let sender = r.array()?;
        let at_ms = r.u64()?;
        let signed_len = r.position();
        let sig: [u8; 64] = r.array()?;
        r.finish()?;
        if &signer_bytes != signer.as_bytes() {
            return Err(Error::BadSignature("receipt (signed by another identity)"));
        }
        signer.verify(context::RECEIPT, &bytes[..signed_len], &sig, "receipt")?;
        Ok(Receipt {
            kind,
            message_id,
            envelope_hash,
            signer: signer_bytes,
            sender,
            at_ms,
            bytes: bytes.to_vec(),
        })
    }

    /// The exact signed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}
