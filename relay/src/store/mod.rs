//! The relay's store interface: what the service needs from durable storage, with
//! backend-neutral types and errors.
//!
//! Four traits — [`Queue`], [`Members`], [`Log`], [`Blobs`] — and the live-delivery
//! [`Notifier`], which a backend shared by several relays implements with its own
//! signalling (PostgreSQL's LISTEN/NOTIFY). [`Store`] is all four. The SQLite backend
//! ([`sqlite::SqliteStore`]) is the only one today; [`conformance`] holds the tests any
//! backend must pass. No backend type or error text crosses this interface: callers
//! match on [`StoreError`].
//!
//! Contracts every backend keeps:
//! - **Committed before answered.** A write's future resolves `Ok` only once the write is
//!   durable; `Err` means nothing of that call was stored.
//! - **Announced before answered.** Items a committed write queues are handed to the
//!   notifier before the write's future resolves, so a sender told "accepted" knows every
//!   live watcher of its recipients has the item.
//! - **Notifications may be lost**, never invented: a watcher that falls behind is cut off
//!   and re-reads from [`Queue::pending`].
//! - **Held items are announced once, when released.** A held item ([`Queue::hold`]) is
//!   invisible until it falls due; it is released (given a new, higher seq, so watchers
//!   that already passed its old one still take it) by [`Queue::release`] or by a
//!   [`Queue::pending`] of its recipient at or after its due time, and announced to live
//!   watchers by the commit that releases it, never again. A reopened store keeps held
//!   items and their due times.
//! - **Escalation steps are held items with a record.** [`Queue::escalate`] stores one
//!   queue item per step (due ones queued, the rest held); the commit that releases or
//!   cancels a step records it on the step, so [`Queue::escalation`] tells exactly what
//!   became of each, also after a reopen (an overdue step is released at once, keeping its
//!   due time, so the lateness shows).

pub mod conformance;
pub mod sqlite;

use std::future::Future;
use std::sync::Arc;

use pocnet_wire::{Key, Member, MessageId, Release, StepReport};

pub use sqlite::SqliteStore;

/// Why a store call failed. Nothing of a failed write was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A limit on what one party may hold.
    #[error("{0}")]
    Quota(Quota),
    /// The call contradicts what is stored.
    #[error("{0}")]
    Conflict(Conflict),
    /// The storage (or its configured cap) is full.
    #[error("the relay's storage is full")]
    Full,
    /// The backend cannot serve the call now (I/O error, stopped, unreachable). The text is
    /// for the operator's log, never for matching.
    #[error("the relay's storage is unavailable: {0}")]
    Unavailable(String),
}

/// Which quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Quota {
    /// A recipient's queue is at its limit.
    #[error("the queue of recipient {} is full", pocnet_crypto::to_hex(&.0[..8]))]
    Queue(Key),
    /// This sender already holds its share (a quarter) of the recipient's queue.
    #[error("this sender already holds its share of the queue of recipient {}", pocnet_crypto::to_hex(&.0[..8]))]
    QueueShare(Key),
    /// A member's attachments and partial uploads would pass its upload quota.
    #[error("attachments of this member would take {needed} bytes, over the quota of {limit}")]
    Uploads { needed: u64, limit: u64 },
    /// All attachments together would pass the relay's storage cap.
    #[error("attachments would pass the relay's attachment storage cap")]
    Storage,
    /// The recipient already has this many live watchers.
    #[error("this key already has {0} live watch streams")]
    Watchers(usize),
    /// A table of things waiting for the Secretariat (registrations, submissions) is full,
    /// for this author or for everyone.
    #[error("{0}")]
    Waiting(&'static str),
}

/// What a write contradicts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// This sender already used the message id for a different envelope.
    #[error("this message id was already used for a different envelope")]
    IdReused,
    /// The key is enrolled already (as the handle given).
    #[error("this key is already enrolled as {0}")]
    AlreadyEnrolled(String),
    /// Another active key holds the handle.
    #[error("handle {0} is held by another key; revoke it first")]
    HandleTaken(String),
    /// Another sender holds this attachment id.
    #[error("another sender holds this attachment id")]
    BlobOwned,
    /// A partial upload of this id exists with another length.
    #[error("an upload of this attachment id is under way with another length; use a new id")]
    UploadLength,
    /// The directory log no longer has the size the append was prepared for.
    #[error("the directory log holds {0} leaves now; fetch them and prepare the append again")]
    LogMoved(u64),
    /// This statement was submitted already.
    #[error("this statement was submitted already")]
    Duplicate,
    /// A follow-up names an alert this sender has no escalation for (never, or expired).
    #[error("no escalating alert of this sender has that id")]
    UnknownAlert,
    /// A follow-up is addressed to a key the alert it follows never named.
    #[error("recipient {} was not alerted by the alert this follows", pocnet_crypto::to_hex(&.0[..8]))]
    NotAlerted(Key),
}

/// An envelope to store for its recipients.
#[derive(Clone, Debug)]
pub struct NewEnvelope {
    /// Sender key (the authenticated connection's).
    pub sender: Key,
    /// Message id from the signed header.
    pub message_id: MessageId,
    /// Envelope hash.
    pub envelope_hash: [u8; 32],
    /// The full envelope bytes, shared with whoever is told of it.
    pub bytes: Arc<[u8]>,
    /// Recipient keys.
    pub recipients: Vec<Key>,
    /// Now, Unix ms.
    pub now_ms: u64,
    /// Expiry, Unix ms.
    pub expires_at_ms: u64,
}

/// How an envelope stored with [`Queue::hold`] waits: for one recipient, until a time,
/// unless cancelled first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Released at this time (Unix ms), not before.
    pub not_before_ms: u64,
    /// The message a cancelling receipt must be about.
    pub cancel_message_id: MessageId,
    /// Who may cancel: an `Acknowledged` receipt from any of them (1 to 16 keys).
    pub cancel_signers: Vec<Key>,
}

/// How an alert envelope stored with [`Queue::escalate`] is released: one step per
/// (recipient, release), computed by the caller from the signed plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEscalation {
    /// The signed plan, as the sender sent it (kept for [`Queue::escalation`]).
    pub plan: Vec<u8>,
    /// Every step. A recipient has one step per `repeat` (0 for its rank's release).
    pub steps: Vec<PlannedStep>,
}

/// One release of an escalation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedStep {
    /// Who gets the alert.
    pub recipient: Key,
    /// Its rank in its state.
    pub rank: u8,
    /// 0 for the rank's own release, 1..=N for the repeats.
    pub repeat: u8,
    /// Released at this time (Unix ms); at or before the envelope's `now_ms`: queued at once.
    pub due_ms: u64,
    /// Whose `Acknowledged` receipt about the alert drops it unreleased (the state's keys).
    pub cancel_signers: Vec<Key>,
}

/// What the store holds of an escalation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationRecord {
    /// The signed plan as stored.
    pub plan: Vec<u8>,
    /// When the alert was accepted (Unix ms).
    pub accepted_ms: u64,
    /// Every step, by due time then plan order, with what became of it.
    pub steps: Vec<StepReport>,
}

/// Outcome of storing an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// When it was first stored (Unix ms).
    pub stored_at_ms: u64,
    /// It had been stored before (an idempotent retry).
    pub duplicate: bool,
}

/// One pending queue item of a recipient. Envelope bytes are shared, not copied per
/// recipient or watcher; the edge trims them for the recipient as it sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// An envelope (untrimmed), with what the relay's acceptance of it states.
    Envelope {
        seq: u64,
        envelope: Arc<[u8]>,
        /// When it was first stored (Unix ms).
        stored_at_ms: u64,
        /// Its envelope hash.
        envelope_hash: [u8; 32],
        /// For a released escalation step: when it fell due and was released.
        release: Option<Release>,
    },
    /// A signed receipt from `from`.
    Receipt { seq: u64, from: Key, receipt: Vec<u8> },
    /// A message this recipient sent expired undelivered for `recipient`.
    Expired {
        seq: u64,
        message_id: MessageId,
        recipient: Key,
    },
}

impl Item {
    /// The queue sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Item::Envelope { seq, .. } | Item::Receipt { seq, .. } | Item::Expired { seq, .. } => *seq,
        }
    }
}

/// A member as the directory log lists it: what the relay admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Identity key.
    pub key: Key,
    /// Its member record (`revoked` false).
    pub member: Member,
}

/// The latest checkpoint the relay holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// The Secretariat's signed note.
    pub note: String,
    /// Witness cosignature lines for this checkpoint.
    pub cosignatures: Vec<String>,
}

/// An append to the directory log, with what it changes in the relay's admission list.
#[derive(Clone, Debug)]
pub struct LogAppend {
    /// Index of the first new leaf: the log must hold exactly this many.
    pub first: u64,
    /// The leaves, exact bytes.
    pub leaves: Vec<Vec<u8>>,
    /// The Secretariat's checkpoint over the new tree.
    pub checkpoint: String,
    /// Keys whose listing changed: `Some` is listed now (as given), `None` no longer.
    pub members: Vec<(Key, Option<Listed>)>,
    /// SHA-256 of submitted statements now in the log (dropped from the waiting list).
    pub published: Vec<[u8; 32]>,
    /// Now, Unix ms.
    pub now_ms: u64,
}

/// A member as the operator lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// The directory entry.
    pub member: Member,
    /// Identity key.
    pub key: Key,
    /// Fingerprint, hex.
    pub fingerprint: String,
}

/// A stored or partly uploaded attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// Who uploads it.
    pub sender: Key,
    /// Declared total length.
    pub total_len: u64,
    /// Who may download it (empty until complete).
    pub recipients: Vec<Key>,
    /// Whether it is complete and verified.
    pub complete: bool,
}

/// Limits on attachment storage, checked when an upload starts, before any byte is kept.
#[derive(Clone, Copy, Debug)]
pub struct BlobLimits {
    /// Most bytes one member's attachments and partial uploads may hold.
    pub per_member: u64,
    /// Most bytes all attachments together may hold.
    pub total: u64,
}

/// Where an upload stands when it (re)starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadStart {
    /// Space is reserved; bytes may follow.
    Reserved,
    /// It is complete already (an idempotent retry).
    Complete,
}

/// Pending queue items per recipient, envelopes with their recipients.
pub trait Queue: Send + Sync {
    /// Stores an envelope and queues it for every recipient; resolves once durable.
    /// A retry with the same `(sender, message_id)` and hash is `duplicate`; another
    /// hash is `Conflict::IdReused`. A full recipient queue — or a sender already holding a
    /// quarter of it (`Quota::QueueShare`) — refuses the whole envelope.
    fn accept(&self, env: NewEnvelope) -> impl Future<Output = Result<Accepted, StoreError>> + Send;
    /// Stores an envelope for one recipient (`env.recipients` holds exactly it), held until
    /// `hold.not_before_ms`; resolves once durable. The same rules as [`Queue::accept`]:
    /// idempotent retries, `Conflict::IdReused`, the queue quota and the sender's share (a
    /// held item takes room like a queued one). Nothing is announced until it is released.
    fn hold(&self, env: NewEnvelope, hold: Hold) -> impl Future<Output = Result<Accepted, StoreError>> + Send;
    /// Stores an alert envelope and its escalation; resolves once durable. Each step is a
    /// queue item of its recipient (taking room like a queued one, as for [`Queue::hold`]):
    /// due at `env.now_ms` — queued and announced now, recorded released — or held until
    /// due, cancellable by an `Acknowledged` receipt about the alert from one of its
    /// `cancel_signers` (see [`Queue::queue_receipt`]). A retry with the same id, hash and
    /// plan is `duplicate` (nothing changes); the id with another hash or plan, or used by an
    /// envelope that is no escalation, is `Conflict::IdReused`.
    fn escalate(
        &self,
        env: NewEnvelope,
        esc: NewEscalation,
    ) -> impl Future<Output = Result<Accepted, StoreError>> + Send;
    /// Stores a follow-up (update, cancel, all-clear) of `sender`'s escalating alert `of`;
    /// resolves once durable. Every recipient must have a step of `of`
    /// (`Conflict::NotAlerted`), and `of` must be an escalation of `env.sender`
    /// (`Conflict::UnknownAlert`). A recipient with a released step of `of` gets it queued
    /// now; one whose steps are all held gets, unless `stop`, a held copy due with its
    /// earliest held step and cancelled by the same rule; one whose steps were all
    /// cancelled gets nothing. With `stop`, every unreleased held item of `of` (its steps,
    /// and earlier follow-ups' held copies) is dropped in the same commit, its steps
    /// recorded cancelled at `env.now_ms` by the sender. Retries as for [`Queue::accept`].
    fn follow_up(
        &self,
        env: NewEnvelope,
        of: MessageId,
        stop: bool,
    ) -> impl Future<Output = Result<Accepted, StoreError>> + Send;
    /// The escalation of `sender`'s alert `alert`, until it expires with its envelope.
    fn escalation(
        &self,
        sender: Key,
        alert: MessageId,
    ) -> impl Future<Output = Result<Option<EscalationRecord>, StoreError>> + Send;
    /// Queues a signed receipt from `from` for `to`. With `cancel = Some(m)`, in the same
    /// commit, drops every unreleased held item that `to` sent whose cancel rule names
    /// message `m` and lists `from` among its signers — whoever its recipient is — and
    /// records escalation steps so dropped as cancelled at `now_ms` by `from`; returns how
    /// many were dropped. Released items are never recalled.
    fn queue_receipt(
        &self,
        to: Key,
        from: Key,
        receipt: Vec<u8>,
        now_ms: u64,
        expires_at_ms: u64,
        cancel: Option<MessageId>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Releases every held item due at `now_ms` into its recipient's queue and announces it
    /// to live watchers before resolving; returns how many were released.
    fn release(&self, now_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Pending items for `recipient` after `after_seq`, oldest first: at most `limit` items,
    /// and no more once the page's envelope bytes reach [`PAGE_BYTES`] (a page always holds
    /// at least one item if any is pending), so a backlog of large envelopes is read in
    /// bounded pieces. Held items of `recipient` due at `now_ms` are released first (see
    /// [`Queue::release`]); those not due are not shown.
    fn pending(
        &self,
        recipient: Key,
        after_seq: u64,
        limit: u32,
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<Item>, StoreError>> + Send;
    /// Removes acknowledged items of `recipient` (others' seqs are ignored); returns how many.
    fn ack(&self, recipient: Key, seqs: Vec<u64>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Removes items past their expiry, queueing an `Expired` notice for each undelivered
    /// envelope's sender, and forgets escalations past theirs; returns how many items
    /// expired.
    fn expire(&self, now_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Whether `sender` stored an envelope with this id and hash that has not expired (a
    /// receipt must be about one).
    fn has_envelope(
        &self,
        sender: Key,
        message_id: MessageId,
        envelope_hash: [u8; 32],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The admission list: the members the directory log lists, as the relay last applied it,
/// plus the operator's local blocks.
pub trait Members: Send + Sync {
    /// The member record of `key`, revoked ones included.
    fn member(&self, key: Key) -> impl Future<Output = Result<Option<Member>, StoreError>> + Send;
    /// Listed members matching `*`, a state code, a handle or a fingerprint prefix (≥ 8
    /// hex). `*` and a state code name POCs only (not authorities, witnesses or the
    /// Secretariat: admitted, but no one's recipients). Members the operator blocked are included with `revoked` set: the client checks
    /// the answer against the directory, and a block is this relay's, not the directory's.
    fn lookup(&self, query: String) -> impl Future<Output = Result<Vec<Member>, StoreError>> + Send;
    /// Blocks at this relay the active member holding handle `who` or whose fingerprint
    /// starts with it (≥ 8 hex digits), whatever the log says, until unblocked by the
    /// operator (the durable remedy is a revocation in the log). `Ok(None)` if none matches; `Ok(Some(n))` with n > 1 matches
    /// revokes nothing.
    fn revoke(
        &self,
        who: String,
        now_ms: u64,
    ) -> impl Future<Output = Result<Result<MemberRecord, usize>, StoreError>> + Send;
    /// Every member, revoked ones included, by handle.
    fn members(&self) -> impl Future<Output = Result<Vec<MemberRecord>, StoreError>> + Send;
    /// Whether `key` is revoked, answered at once (the TLS handshake asks, and cannot wait
    /// on I/O): a networked backend answers from a cache it keeps current.
    fn is_revoked_now(&self, key: &Key) -> Result<bool, StoreError>;
}

/// The directory log as stored (the relay checks everything before it stores it; see
/// `directory.rs`), and what waits for the Secretariat: registrations of keys not yet
/// listed and submitted statements. One writer appends at a time: an append names the
/// size it extends and fails with `Conflict::LogMoved` if another got there first.
pub trait Log: Send + Sync {
    /// Leaves from `from`: at most `limit`, and no more once their bytes pass `max_bytes`
    /// (at least one if any).
    fn log_leaves(
        &self,
        from: u64,
        limit: u32,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, StoreError>> + Send;
    /// The latest checkpoint, if the log has begun.
    fn log_checkpoint(&self) -> impl Future<Output = Result<Option<StoredCheckpoint>, StoreError>> + Send;
    /// Appends leaves, replaces the checkpoint and applies the admission changes, in one
    /// commit.
    fn log_append(&self, append: LogAppend) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds (or replaces) `witness`'s cosignature of the checkpoint of `size`; `Ok(false)`
    /// if the latest checkpoint has another size.
    fn log_cosign(
        &self,
        size: u64,
        witness: Key,
        line: String,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Records (or refreshes) a key's public identity for the Secretariat; at most `max`
    /// registrations wait at once.
    fn register(
        &self,
        key: Key,
        fingerprint: String,
        public_identity: Vec<u8>,
        now_ms: u64,
        max: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A registered public identity by full fingerprint (hex).
    fn registration(&self, fingerprint: String) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    /// Stores a statement for the Secretariat (at most `per_author` waiting per author);
    /// returns its id. The same statement twice is `Conflict::Duplicate`.
    fn submit(
        &self,
        author: Key,
        statement: Vec<u8>,
        now_ms: u64,
        per_author: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Waiting statements after id `after`, oldest first, at most `limit`.
    fn submissions(
        &self,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<pocnet_wire::Submission>, StoreError>> + Send;
    /// Drops waiting statements.
    fn dismiss(&self, ids: Vec<u64>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Forgets registrations and submissions older than `before_ms`.
    fn expire_waiting(&self, before_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Attachment records (the bytes live beside the store, named by message id).
pub trait Blobs: Send + Sync {
    /// Starts or resumes an upload, reserving `total_len` against `limits` first.
    fn begin_upload(
        &self,
        sender: Key,
        message_id: MessageId,
        total_len: u64,
        limits: BlobLimits,
        now_ms: u64,
    ) -> impl Future<Output = Result<UploadStart, StoreError>> + Send;
    /// Marks a verified upload complete, downloadable by `recipients`.
    fn complete_upload(
        &self,
        sender: Key,
        message_id: MessageId,
        recipients: Vec<Key>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Drops a partial upload's reservation (its bytes failed verification).
    fn abandon_upload(&self, sender: Key, message_id: MessageId)
        -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An attachment's record.
    fn blob(&self, message_id: MessageId) -> impl Future<Output = Result<Option<BlobInfo>, StoreError>> + Send;
    /// Forgets attachments and partial uploads started before `before_ms`; returns
    /// `(sender, message_id)` of each so the caller deletes the files.
    fn expire_blobs(&self, before_ms: u64) -> impl Future<Output = Result<Vec<(Key, MessageId)>, StoreError>> + Send;
}

/// Live delivery: committed items for a recipient, pushed to whoever watches it.
pub trait Notifier: Send + Sync {
    /// Watches `recipient`; items committed from now on arrive on the subscription. At
    /// most `max_per_key` subscriptions per recipient are live at once.
    fn subscribe(&self, recipient: Key, max_per_key: usize) -> Result<Subscription, StoreError>;
    /// Whether anyone watches `recipient`.
    fn is_watched(&self, recipient: &Key) -> bool;
}

/// A live subscription: shared items, in commit order. It ends (`None`) if the watcher
/// fell too far behind; the watcher then re-reads from the store.
pub struct Subscription {
    rx: tokio::sync::mpsc::Receiver<Arc<Item>>,
}

impl Subscription {
    /// The next item.
    pub async fn recv(&mut self) -> Option<Arc<Item>> {
        self.rx.recv().await
    }
    /// The next item if one is waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Item>> {
        self.rx.try_recv().ok()
    }
}

/// Everything the relay service needs.
pub trait Store: Queue + Members + Log + Blobs + Notifier + Clone + 'static {}
impl<T: Queue + Members + Log + Blobs + Notifier + Clone + 'static> Store for T {}

/// Envelope bytes after which a [`Queue::pending`] page ends.
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Items a watcher may fall behind by before it is cut off.
pub const WATCH_BACKLOG: usize = 4096;

type Watchers = std::collections::HashMap<Key, Vec<tokio::sync::mpsc::Sender<Arc<Item>>>>;

/// An in-process notifier: what a single relay uses (a shared backend brings its own).
#[derive(Clone, Default)]
pub struct Hub {
    watchers: Arc<std::sync::Mutex<Watchers>>,
}

impl Hub {
    /// See [`Notifier::subscribe`].
    pub fn subscribe(&self, recipient: Key, max_per_key: usize) -> Result<Subscription, StoreError> {
        let mut w = self.watchers.lock().expect("hub lock");
        let list = w.entry(recipient).or_default();
        list.retain(|tx| !tx.is_closed());
        if list.len() >= max_per_key {
            return Err(StoreError::Quota(Quota::Watchers(max_per_key)));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BACKLOG);
        list.push(tx);
        Ok(Subscription { rx })
    }
    /// Hands committed items to their recipients' watchers.
    pub fn publish(&self, items: Vec<(Key, Arc<Item>)>) {
        if items.is_empty() {
            return;
        }
        let mut w = self.watchers.lock().expect("hub lock");
        for (recipient, item) in items {
            if let Some(list) = w.get_mut(&recipient) {
                list.retain(|tx| tx.try_send(item.clone()).is_ok());
                if list.is_empty() {
                    w.remove(&recipient);
                }
            }
        }
    }
    /// See [`Notifier::is_watched`].
    pub fn is_watched(&self, recipient: &Key) -> bool {
        self.watchers
            .lock()
            .expect("hub lock")
            .get(recipient)
            .is_some_and(|l| l.iter().any(|tx| !tx.is_closed()))
    }
}
