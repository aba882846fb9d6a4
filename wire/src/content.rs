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

/// Longest statement a [`PolicyNotice`] may carry (the directory's statement limit).
pub const MAX_POLICY_STATEMENT: usize = 16 * 1024;
/// Longest attachment name a [`PolicyNotice`] may carry, in bytes.
pub const MAX_POLICY_FILE_NAME: usize = 255;

/// Plaintext of a `ContentType::Policy` envelope (postcard-encoded): a national authority's
/// signed `PolicyPublish` statement, and the attachment envelope carrying the file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyNotice {
    /// The exact signed directory statement (its action is `PolicyPublish`).
    pub statement: Vec<u8>,
    /// The file, as an attachment envelope.
    pub attachment: AttachmentRef,
}

/// Why a [`PolicyNotice`]'s bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyNoticeError {
    /// Not postcard for a notice.
    #[error("policy notice does not decode: {0}")]
    Decode(String),
    /// Bytes after the notice.
    #[error("policy notice is followed by {0} stray bytes")]
    Trailing(usize),
    /// Not postcard's one canonical encoding.
    #[error("policy notice is not in canonical encoding")]
    NonCanonical,
    /// A field over its bound.
    #[error("policy notice {0} is over its bound")]
    TooLarge(&'static str),
}

impl PolicyNotice {
    /// Encodes the notice.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("encoding into memory cannot fail")
    }

    /// Decodes strictly: exactly one canonical notice, every field inside its bound.
    pub fn decode(bytes: &[u8]) -> Result<Self, PolicyNoticeError> {
        if bytes.len() > MAX_POLICY_STATEMENT + MAX_POLICY_FILE_NAME + 128 {
            return Err(PolicyNoticeError::TooLarge("size"));
        }
        let (n, rest) =
            postcard::take_from_bytes::<PolicyNotice>(bytes).map_err(|e| PolicyNoticeError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(PolicyNoticeError::Trailing(rest.len()));
        }
        if n.statement.len() > MAX_POLICY_STATEMENT {
            return Err(PolicyNoticeError::TooLarge("statement"));
        }
        if n.attachment.name.len() > MAX_POLICY_FILE_NAME {
            return Err(PolicyNoticeError::TooLarge("file name"));
        }
        if n.encode() != bytes {
            return Err(PolicyNoticeError::NonCanonical);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    fn notice() -> PolicyNotice {
        PolicyNotice {
            statement: vec![1; 300],
            attachment: AttachmentRef {
                message_id: [2; 16],
                envelope_hash: [3; 32],
                name: "politica.pdf".into(),
                size: 1 << 20,
            },
        }
    }

    #[test]
    fn policy_notice_round_trips_and_decodes_strictly() {
        let b = notice().encode();
        assert_eq!(PolicyNotice::decode(&b).unwrap(), notice());
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(PolicyNotice::decode(&longer), Err(PolicyNoticeError::Trailing(1)));
        assert!(matches!(
            PolicyNotice::decode(&b[..b.len() - 1]),
            Err(PolicyNoticeError::Decode(_))
        ));
        // The statement length 300 as an over-long varint: same meaning, other bytes.
        let mut padded = vec![0xac, 0x82, 0x00];
        padded.extend_from_slice(&b[2..]);
        assert_eq!(PolicyNotice::decode(&padded), Err(PolicyNoticeError::NonCanonical));
        let mut big = notice();
        big.statement = vec![0; MAX_POLICY_STATEMENT + 1];
        assert!(matches!(
            PolicyNotice::decode(&big.encode()),
            Err(PolicyNoticeError::TooLarge(_))
        ));
        let mut long = notice();
        long.attachment.name = "n".repeat(MAX_POLICY_FILE_NAME + 1);
        assert_eq!(
            PolicyNotice::decode(&long.encode()),
            Err(PolicyNoticeError::TooLarge("file name"))
        );
    }
}
