//! Requests and responses. A QUIC bidirectional stream opens with one `Request` frame.
//! `Pipeline` turns the stream into a session channel: from then on the client writes
//! [`Tagged`] requests, as many in flight as it likes, and the relay answers each with a
//! `Tagged` response carrying the same id, in whatever order they complete. Any other
//! first request is answered on its own stream (`Watch` and `GetBlob` with several
//! frames). Variant order is part of the format: append only.

use serde::{Deserialize, Serialize};

/// A 32-byte Ed25519 identity key.
pub type Key = [u8; 32];
/// A 16-byte message id.
pub type MessageId = [u8; 16];

/// Client to relay.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Request {
    /// First call on every connection; the relay says whether the key is enrolled.
    Hello { protocol: u16 },
    /// Protocol 2's invite enrolment. Refused since protocol 3: the directory log is
    /// the only admission (kept so the variant numbers below stay put).
    Enrol { invite: String, public_identity: Vec<u8> },
    /// Look up members by handle (`CL.primary`), state (`CL`), fingerprint prefix or `*`.
    Lookup { query: String },
    /// Store and forward one envelope; answered after it is durable.
    Send { envelope: Vec<u8> },
    /// Stream deliveries: the backlog, then `CaughtUp`, then new items as they arrive.
    /// With `follow = false` the stream ends after `CaughtUp`.
    Watch { follow: bool },
    /// The client has durably processed these queue items.
    Ack { seqs: Vec<u64> },
    /// Forward a signed receipt to the envelope's sender.
    SendReceipt { to: Key, receipt: Vec<u8> },
    /// Upload an attachment envelope from `offset`; the raw bytes follow the frame.
    PutBlob {
        message_id: MessageId,
        total_len: u64,
        offset: u64,
    },
    /// Download an attachment envelope from `offset`; the relay answers `Blob` then raw bytes.
    GetBlob { message_id: MessageId, offset: u64 },
    /// Open a pipelined session channel on this stream (protocol 2).
    Pipeline,
    /// The directory log's latest checkpoint, with the cosignatures the relay holds.
    LogCheckpoint,
    /// Directory log leaves from index `from` (at most `limit`; fewer if a frame fills).
    LogLeaves { from: u64, limit: u32 },
    /// A consistency proof between two tree sizes of the directory log.
    LogProof { old_size: u64, new_size: u64 },
    /// Append leaves to the directory log with the Secretariat's checkpoint over the new
    /// tree. The relay checks every leaf and the signature; it can sign nothing itself.
    LogAppend { leaves: Vec<Vec<u8>>, checkpoint: String },
    /// A witness's cosignature line for the checkpoint of tree size `size`.
    LogCosign { size: u64, cosignature: String },
    /// A key that is not listed yet offers its public identity, so the Secretariat can
    /// put it in the log after the voice check (open to keys that are not enrolled).
    Register { public_identity: Vec<u8> },
    /// The public identity a key registered, by full fingerprint (hex).
    Registration { fingerprint: String },
    /// Offer a signed directory statement (a nomination, removal, rank change, key
    /// rotation, revocation or contact update) for the Secretariat to publish.
    Submit { statement: Vec<u8> },
    /// Submitted statements after id `after` (for the Secretariat).
    Submissions { after: u64 },
    /// Drop submitted statements (the Secretariat published or refused them).
    Dismiss { ids: Vec<u64> },
    /// Store an envelope for exactly one of its recipients, released to it at
    /// `not_before_ms` (a past time means now) unless `cancel` is met first. Answered
    /// `Accepted` (as `Send`) once durable.
    Hold {
        envelope: Vec<u8>,
        recipient: Key,
        not_before_ms: u64,
        cancel: Cancel,
    },
    /// Store an alert envelope with its signed plan (`pocnet_core::alert` `SignedPlan`
    /// bytes, signed by the connection's key). An `Escalate` plan: the relay queues rank 0
    /// now and holds every later step (next ranks, then repeats to the whole state) until
    /// due, dropping a state's held steps when one of its POCs acknowledges. A `FollowUp`
    /// plan (update, cancel, all-clear of an earlier alert): queued now for whoever was
    /// released that alert (see PROTOCOL.md §8). Answered `Accepted` once durable.
    Escalate { envelope: Vec<u8>, plan: Vec<u8> },
    /// The relay's per-step record of alert `alert` (only its sender may ask).
    EscalationStatus { alert: MessageId },
}

/// When a held envelope is dropped unreleased: the relay accepts an `Acknowledged`
/// receipt to the held envelope's sender about `message_id`, signed by any of `signers`
/// (whoever the held envelope's recipient is).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cancel {
    /// The message the receipt must be about.
    pub message_id: MessageId,
    /// Who may cancel (1 to 16 keys).
    pub signers: Vec<Key>,
}

/// When and why the relay released one step of an escalation.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    /// When the plan said the step falls due, Unix ms (by the relay's clock at acceptance).
    pub due_ms: u64,
    /// When the relay released it, Unix ms (later than `due_ms` after downtime: a late
    /// release).
    pub released_ms: u64,
    /// The recipient's rank in its state (0 = primary).
    pub rank: u8,
    /// 0 for the rank's own release, 1..=N for the repeats to the whole state.
    pub repeat: u8,
}

/// The relay's record of one step of an escalation (one recipient, one release).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepReport {
    /// Who the step releases the alert to.
    pub recipient: Key,
    /// The recipient's rank in its state.
    pub rank: u8,
    /// 0 for the rank's own release, 1..=N for repeats.
    pub repeat: u8,
    /// When it falls due, Unix ms.
    pub due_ms: u64,
    /// When the relay released it, if it did.
    pub released_ms: Option<u64>,
    /// When the relay dropped it unreleased, if it did.
    pub cancelled_ms: Option<u64>,
    /// Whose signed acknowledgement (or, for the sender's own stop, the sender's key)
    /// dropped it.
    pub cancelled_by: Option<Key>,
}

/// A statement waiting for the Secretariat.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Submission {
    /// The relay's id for it.
    pub id: u64,
    /// The signed statement bytes.
    pub statement: Vec<u8>,
    /// When it arrived, Unix ms.
    pub received_ms: u64,
}

/// A request or response on a pipelined stream, matched by `id` (chosen by the client,
/// unique among its requests in flight on that stream).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tagged<T> {
    /// Request id.
    pub id: u32,
    /// The request or its answer.
    pub body: T,
}

/// A member of the relay's enrolment list (directory data; trusted only as far as
/// the key it names is verified by the people involved).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    /// `STATE.role`, e.g. `CL.primary`.
    pub handle: String,
    /// ISO 3166-1 alpha-2 code.
    pub state: String,
    /// `primary`, `alternate` or `further`.
    pub role: String,
    /// Display name.
    pub name: String,
    /// Encoded `PublicIdentity`.
    pub public_identity: Vec<u8>,
    /// Whether the key has been revoked.
    pub revoked: bool,
}

/// One queue item handed to a recipient.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Delivery {
    /// An envelope, trimmed to this recipient's key stanza.
    Envelope { seq: u64, envelope: Vec<u8> },
    /// A signed receipt from `from` about a message this client sent.
    Receipt { seq: u64, from: Key, receipt: Vec<u8> },
    /// A message this client sent expired undelivered for `recipient`.
    Expired {
        seq: u64,
        message_id: MessageId,
        recipient: Key,
    },
    /// An envelope, trimmed to this recipient's key stanza, with the relay's acceptance:
    /// when it was stored and the relay's signed proof over `(envelope_hash,
    /// stored_at_ms)`, the statement its sender got (how protocol-3 relays deliver).
    Stored {
        seq: u64,
        envelope: Vec<u8>,
        stored_at_ms: u64,
        proof: crate::accept::AcceptProof,
    },
    /// As `Stored`, for a step of an escalation: when it fell due and when the relay
    /// released it. A repeat is the same envelope again (same message id): a ring, not a
    /// new message.
    Escalated {
        seq: u64,
        envelope: Vec<u8>,
        stored_at_ms: u64,
        proof: crate::accept::AcceptProof,
        release: Release,
    },
}

impl Delivery {
    /// The queue sequence number to acknowledge.
    pub fn seq(&self) -> u64 {
        match self {
            Delivery::Envelope { seq, .. }
            | Delivery::Receipt { seq, .. }
            | Delivery::Expired { seq, .. }
            | Delivery::Stored { seq, .. }
            | Delivery::Escalated { seq, .. } => *seq,
        }
    }
}

/// What went wrong, for the client to act on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ErrorCode {
    /// The directory log does not list this key.
    NotEnrolled,
    /// This key has been revoked.
    Revoked,
    /// Protocol 2 (invite codes); never sent since protocol 3.
    BadInvite,
    /// Protocol 2 (invite codes); never sent since protocol 3.
    InviteExpired,
    /// Protocol 2 (invite codes); never sent since protocol 3.
    InviteUsed,
    /// Over a size limit.
    TooLarge,
    /// The request could not be decoded.
    Malformed,
    /// A recipient is not enrolled (or revoked).
    UnknownRecipient,
    /// A recipient's queue is full.
    QuotaExceeded,
    /// The sender is over its rate limit; retry later.
    RateLimited,
    /// The envelope failed verification.
    BadEnvelope,
    /// The envelope names another sender than the connection's key.
    NotSender,
    /// Nothing matches.
    NotFound,
    /// Not allowed for this key.
    Forbidden,
    /// The relay is shutting down; retry shortly.
    ShuttingDown,
    /// The relay failed (disk full, ...); nothing was stored.
    Internal,
    /// Protocol version not supported.
    UnsupportedVersion,
    /// The relay's storage (or its cap) is full; nothing was stored. Retry later.
    StorageFull,
    /// The relay's store is unavailable; nothing was stored. Retry later.
    Unavailable,
    /// A per-member limit other than rate (watchers, upload storage).
    LimitReached,
    /// A directory statement, leaf or checkpoint was refused (the message says why).
    BadDirectory,
    /// The directory log moved on while this append was prepared: fetch and retry.
    LogMoved,
}

/// Relay to client.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Response {
    /// Answer to `Hello`.
    Welcome { relay_time_ms: u64, member: Option<Member> },
    /// Answer to `Enrol`.
    Enrolled { member: Member },
    /// Answer to `Lookup`.
    Directory { members: Vec<Member> },
    /// Answer to `Send`: the envelope is committed. `proof` carries the relay's signature
    /// over the Merkle root of the commit group holding `(envelope_hash, stored_at_ms)`.
    Accepted {
        message_id: MessageId,
        envelope_hash: [u8; 32],
        stored_at_ms: u64,
        duplicate: bool,
        proof: crate::accept::AcceptProof,
    },
    /// One item of a `Watch` stream.
    Deliver(Delivery),
    /// The backlog has been sent.
    CaughtUp,
    /// Answer to `Ack` and `SendReceipt`.
    Done,
    /// Answer to `PutBlob`: bytes stored so far and whether the blob is complete and verified.
    BlobStored { stored: u64, complete: bool },
    /// Answer to `GetBlob`, followed by `total_len - offset` raw bytes.
    Blob { total_len: u64 },
    /// The request failed; nothing was stored.
    Error { code: ErrorCode, message: String },
    /// Answer to `LogCheckpoint`: a C2SP signed note, cosignature lines included.
    Checkpoint { note: String },
    /// Answer to `LogLeaves`.
    Leaves { from: u64, leaves: Vec<Vec<u8>> },
    /// Answer to `LogProof`: the RFC 9162 consistency proof.
    Proof { hashes: Vec<[u8; 32]> },
    /// Answer to `Registration`.
    Registered { public_identity: Vec<u8> },
    /// Answer to `Submissions`.
    Submitted { items: Vec<Submission> },
    /// Answer to `EscalationStatus`: when the relay accepted the alert, its signed plan as
    /// sent, and every step (in due order) with what became of it.
    Escalation {
        accepted_ms: u64,
        plan: Vec<u8>,
        steps: Vec<StepReport>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of PROTOCOL.md §8: variant numbers and field order are the format.
    #[test]
    fn hold_and_stored_encode_as_protocol_md_says() {
        let hold = Request::Hold {
            envelope: vec![0xaa],
            recipient: [0x11; 32],
            not_before_ms: 300,
            cancel: Cancel {
                message_id: [0x22; 16],
                signers: vec![[0x33; 32]],
            },
        };
        let mut want = vec![0, 0, 0, 0x56, 0x14, 0x01, 0xaa];
        want.extend([0x11; 32]);
        want.extend([0xac, 0x02]);
        want.extend([0x22; 16]);
        want.push(0x01);
        want.extend([0x33; 32]);
        assert_eq!(crate::encode(&hold), want);
        let stored = Response::Deliver(Delivery::Stored {
            seq: 1,
            envelope: vec![],
            stored_at_ms: 2,
            proof: crate::AcceptProof {
                tree_size: 1,
                index: 0,
                path: vec![],
                signature: vec![],
            },
        });
        assert_eq!(&crate::encode(&stored)[4..], &[0x04, 0x03, 1, 0, 2, 1, 0, 0, 0]);
    }

    /// The escalation worked example of PROTOCOL.md §8.
    #[test]
    fn escalate_and_escalated_encode_as_protocol_md_says() {
        let escalate = Request::Escalate {
            envelope: vec![0xaa, 0xbb],
            plan: vec![0xcc],
        };
        assert_eq!(
            crate::encode(&escalate),
            vec![0, 0, 0, 6, 0x15, 0x02, 0xaa, 0xbb, 0x01, 0xcc]
        );
        let mut want = vec![0, 0, 0, 17, 0x16];
        want.extend([0x22; 16]);
        assert_eq!(crate::encode(&Request::EscalationStatus { alert: [0x22; 16] }), want);
        let escalated = Response::Deliver(Delivery::Escalated {
            seq: 1,
            envelope: vec![],
            stored_at_ms: 2,
            proof: crate::AcceptProof {
                tree_size: 1,
                index: 0,
                path: vec![],
                signature: vec![],
            },
            release: Release {
                due_ms: 300,
                released_ms: 5300,
                rank: 1,
                repeat: 2,
            },
        });
        assert_eq!(
            &crate::encode(&escalated)[4..],
            &[0x04, 0x04, 1, 0, 2, 1, 0, 0, 0, 0xac, 0x02, 0xb4, 0x29, 0x01, 0x02]
        );
        assert!(matches!(&escalated, Response::Deliver(d) if d.seq() == 1));
        let status = Response::Escalation {
            accepted_ms: 2,
            plan: vec![0xcc],
            steps: vec![StepReport {
                recipient: [0x11; 32],
                rank: 0,
                repeat: 1,
                due_ms: 300,
                released_ms: Some(301),
                cancelled_ms: None,
                cancelled_by: None,
            }],
        };
        let mut want = vec![0x0f, 0x02, 0x01, 0xcc, 0x01];
        want.extend([0x11; 32]);
        want.extend([0x00, 0x01, 0xac, 0x02, 0x01, 0xad, 0x02, 0x00, 0x00]);
        assert_eq!(&crate::encode(&status)[4..], &want[..]);
        // The earlier variants keep their numbers.
        assert_eq!(crate::encode(&Request::Pipeline)[4..], [0x09]);
        assert_eq!(crate::encode(&Response::Submitted { items: vec![] })[4..], [0x0e, 0x00]);
        // Round trip, strictly.
        for r in [escalate, Request::EscalationStatus { alert: [1; 16] }] {
            assert_eq!(crate::decode::<Request>(&crate::encode(&r)[4..]).unwrap(), r);
        }
        for r in [escalated, status] {
            assert_eq!(crate::decode::<Response>(&crate::encode(&r)[4..]).unwrap(), r);
        }
    }

    #[test]
    fn delivery_seq_of_every_kind() {
        assert_eq!(
            Delivery::Expired {
                seq: 5,
                message_id: [0; 16],
                recipient: [0; 32]
            }
            .seq(),
            5
        );
    }
}
