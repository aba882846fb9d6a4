//! The relay's durable store: SQLite (WAL, `synchronous=FULL`) owned by one writer
//! thread that commits requests in groups.
//!
//! Every write request is sent to the writer with a reply channel. The writer takes
//! all requests waiting (up to `batch_max`), applies each inside its own savepoint,
//! commits once, and only then replies: "accepted" always means "on disk", while one
//! fsync serves the whole group. New queue items are announced to live watchers
//! after the commit. The rest of the relay sees only [`StoreHandle`]; a second
//! backend would implement the same calls.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use pocnet_wire::{Delivery, Key, Member, MessageId};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::oneshot;

/// Store failures. `Full` and `Io` mean nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (disk full, I/O error, corruption).
    #[error("relay storage failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A recipient's queue is at its quota.
    #[error("the queue of recipient {0} is full")]
    QuotaExceeded(String),
    /// The invite code is not known.
    #[error("invite code not recognised")]
    BadInvite,
    /// The invite code has expired.
    #[error("invite code expired")]
    InviteExpired,
    /// The invite code was used already.
    #[error("invite code already used")]
    InviteUsed,
    /// The key is enrolled already.
    #[error("this key is already enrolled as {0}")]
    AlreadyEnrolled(String),
    /// The handle is held by another active key.
    #[error("handle {0} is held by another key; revoke it first")]
    HandleTaken(String),
    /// A message id this sender already used for a different envelope.
    #[error("this message id was already used for a different envelope")]
    IdReused,
    /// The writer thread has stopped.
    #[error("the relay store has shut down")]
    Closed,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A queue item as committed, announced to watchers.
#[derive(Clone, Debug)]
pub struct QueuedItem {
    /// Recipient key.
    pub recipient: Key,
    /// The delivery (envelopes untrimmed).
    pub delivery: Delivery,
}

/// Outcome of storing an envelope.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// When it was first stored (Unix ms).
    pub stored_at_ms: u64,
    /// It had been stored before (an idempotent retry).
    pub duplicate: bool,
}

/// An envelope to store for its recipients.
pub struct NewEnvelope {
    /// Sender key (the authenticated connection's).
    pub sender: Key,
    /// Message id from the signed header.
    pub message_id: MessageId,
    /// Envelope hash.
    pub envelope_hash: [u8; 32],
    /// The full envelope bytes.
    pub bytes: Vec<u8>,
    /// Recipient keys.
    pub recipients: Vec<Key>,
    /// Now, Unix ms.
    pub now_ms: u64,
    /// Expiry, Unix ms.
    pub expires_at_ms: u64,
}

enum Cmd {
    Accept(NewEnvelope, Reply<Accepted>),
    QueueReceipt {
        to: Key,
        from: Key,
        receipt: Vec<u8>,
        expires_at_ms: u64,
        reply: Reply<()>,
    },
    Pending {
        recipient: Key,
        after_seq: u64,
        limit: u32,
        now_ms: u64,
        reply: Reply<Vec<Delivery>>,
    },
    Ack {
        recipient: Key,
        seqs: Vec<u64>,
        reply: Reply<u64>,
    },
    Expire {
        now_ms: u64,
        reply: Reply<u64>,
    },
    Enrol {
        code: String,
        key: Key,
        fingerprint: String,
        public_identity: Vec<u8>,
        now_ms: u64,
        reply: Reply<Member>,
    },
    PutBlob {
        message_id: MessageId,
        sender: Key,
        total_len: u64,
        recipients: Vec<Key>,
        now_ms: u64,
        reply: Reply<()>,
    },
    ExpireBlobs {
        stored_before_ms: u64,
        reply: Reply<Vec<MessageId>>,
    },
}

/// Announces committed queue items to whoever watches a recipient.
#[derive(Clone, Default)]
pub struct Hub {
    watchers: Arc<Mutex<HashMap<Key, Vec<tokio::sync::mpsc::Sender<Delivery>>>>>,
}

/// Items a watcher may fall behind by before it is dropped (it then re-reads from the store).
pub const WATCH_BACKLOG: usize = 4096;

impl Hub {
    /// Watch `recipient`; items committed from now on arrive on the receiver.
    /// A watcher that falls `WATCH_BACKLOG` items behind is dropped: its receiver ends.
    pub fn subscribe(&self, recipient: Key) -> tokio::sync::mpsc::Receiver<Delivery> {
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BACKLOG);
        self.watchers
            .lock()
            .expect("hub lock")
            .entry(recipient)
            .or_default()
            .push(tx);
        rx
    }
    fn publish(&self, items: Vec<QueuedItem>) {
        if items.is_empty() {
            return;
        }
        let mut w = self.watchers.lock().expect("hub lock");
        for item in items {
            if let Some(list) = w.get_mut(&item.recipient) {
                list.retain(|tx| tx.try_send(item.delivery.clone()).is_ok());
            }
        }
    }
    /// Whether anyone watches `recipient` (only then are committed items copied for it).
    fn is_watched(&self, recipient: &Key) -> bool {
        self.watchers
            .lock()
            .expect("hub lock")
            .get(recipient)
            .is_some_and(|l| l.iter().any(|tx| !tx.is_closed()))
    }
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Cmd>,
    read: Arc<Mutex<Connection>>,
    /// Live watchers of recipients.
    pub hub: Hub,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members(
    key BLOB PRIMARY KEY, fingerprint TEXT NOT NULL, handle TEXT NOT NULL, state TEXT NOT NULL,
    role TEXT NOT NULL, name TEXT NOT NULL, public_identity BLOB NOT NULL,
    enrolled_at INTEGER NOT NULL, revoked_at INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS members_active_handle ON members(handle) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS invites(
    code_hash BLOB PRIMARY KEY, state TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER, used_by BLOB);
CREATE TABLE IF NOT EXISTS envelopes(
    id INTEGER PRIMARY KEY, sender BLOB NOT NULL, message_id BLOB NOT NULL, envelope_hash BLOB NOT NULL,
    bytes BLOB NOT NULL, stored_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    UNIQUE(sender, message_id));
-- kind: 1 envelope, 2 receipt, 3 expiry notice. state: 0 pending (1 held, for escalation, later).
CREATE TABLE IF NOT EXISTS queue(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient BLOB NOT NULL, kind INTEGER NOT NULL,
    envelope_id INTEGER, payload BLOB, peer BLOB, message_id BLOB,
    state INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS queue_by_recipient ON queue(recipient, seq);
CREATE INDEX IF NOT EXISTS queue_by_expiry ON queue(expires_at);
CREATE TABLE IF NOT EXISTS blobs(
    message_id BLOB PRIMARY KEY, sender BLOB NOT NULL, total_len INTEGER NOT NULL,
    recipients BLOB NOT NULL, stored_at INTEGER NOT NULL);
";

/// Opens (creating if needed) the database at `path` with the relay's pragmas.
pub fn open_db(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

impl StoreHandle {
    /// Starts the writer thread over the database at `path`.
    pub fn open(path: &Path, batch_max: usize, queue_quota: u64) -> Result<Self, StoreError> {
        Self::open_limited(path, batch_max, queue_quota, None)
    }

    /// As [`StoreHandle::open`], with the database capped at `max_bytes`: past it, writes
    /// fail as on a full disk (nothing of the failing request is stored).
    pub fn open_limited(
        path: &Path,
        batch_max: usize,
        queue_quota: u64,
        max_bytes: Option<u64>,
    ) -> Result<Self, StoreError> {
        let writer = open_db(path)?;
        if let Some(max) = max_bytes {
            let page: i64 = writer.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = (max / page.max(512) as u64).max(1);
            writer.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        }
        let read = open_db(path)?;
        let (tx, rx) = mpsc::channel();
        let hub = Hub::default();
        let hub2 = hub.clone();
        let counts = load_counts(&writer)?;
        thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                Writer {
                    conn: writer,
                    hub: hub2,
                    batch_max: batch_max.max(1),
                    queue_quota,
                    counts,
                }
                .run(rx)
            })
            .map_err(|_| StoreError::Closed)?;
        Ok(StoreHandle {
            tx,
            read: Arc::new(Mutex::new(read)),
            hub,
        })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stores an envelope and queues it for every recipient; returns once committed.
    pub async fn accept(&self, env: NewEnvelope) -> Result<Accepted, StoreError> {
        self.call(|r| Cmd::Accept(env, r)).await
    }
    /// Queues a receipt for `to`.
    pub async fn queue_receipt(
        &self,
        to: Key,
        from: Key,
        receipt: Vec<u8>,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        self.call(|reply| Cmd::QueueReceipt {
            to,
            from,
            receipt,
            expires_at_ms,
            reply,
        })
        .await
    }
    /// Pending items for `recipient` after `after_seq`, oldest first.
    pub async fn pending(
        &self,
        recipient: Key,
        after_seq: u64,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.call(|reply| Cmd::Pending {
            recipient,
            after_seq,
            limit,
            now_ms,
            reply,
        })
        .await
    }
    /// Removes acknowledged items of `recipient`; returns how many were removed.
    pub async fn ack(&self, recipient: Key, seqs: Vec<u64>) -> Result<u64, StoreError> {
        self.call(|reply| Cmd::Ack { recipient, seqs, reply }).await
    }
    /// Expires queue items past their TTL, telling each sender; returns how many.
    pub async fn expire(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.call(|reply| Cmd::Expire { now_ms, reply }).await
    }
    /// Enrols `key` with a one-time invite.
    pub async fn enrol(
        &self,
        code: String,
        key: Key,
        fingerprint: String,
        public_identity: Vec<u8>,
        now_ms: u64,
    ) -> Result<Member, StoreError> {
        self.call(|reply| Cmd::Enrol {
            code,
            key,
            fingerprint,
            public_identity,
            now_ms,
            reply,
        })
        .await
    }
    /// Forgets attachments stored before `stored_before_ms`; returns their ids so the
    /// caller can delete the files.
    pub async fn expire_blobs(&self, stored_before_ms: u64) -> Result<Vec<MessageId>, StoreError> {
        self.call(|reply| Cmd::ExpireBlobs {
            stored_before_ms,
            reply,
        })
        .await
    }
    /// Records a complete, verified attachment.
    pub async fn put_blob(
        &self,
        message_id: MessageId,
        sender: Key,
        total_len: u64,
        recipients: Vec<Key>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.call(|reply| Cmd::PutBlob {
            message_id,
            sender,
            total_len,
            recipients,
            now_ms,
            reply,
        })
        .await
    }

    /// The member record of `key` (revoked ones included).
    pub fn member(&self, key: &Key) -> Result<Option<Member>, StoreError> {
        let c = self.read.lock().expect("read lock");
        let mut stmt = c.prepare_cached(&format!("SELECT {MEMBER_COLS} FROM members WHERE key = ?1"))?;
        Ok(stmt.query_row([key.as_slice()], member_row).optional()?)
    }
    /// Members matching a query: `*`, a state code, a handle or a fingerprint prefix.
    pub fn lookup(&self, query: &str) -> Result<Vec<Member>, StoreError> {
        let c = self.read.lock().expect("read lock");
        let q = query.trim();
        let (sql, arg) = if q == "*" {
            (
                format!("SELECT {MEMBER_COLS} FROM members WHERE revoked_at IS NULL AND ?1 = ?1 ORDER BY handle"),
                String::new(),
            )
        } else if q.contains('.') {
            (
                format!("SELECT {MEMBER_COLS} FROM members WHERE revoked_at IS NULL AND handle = ?1"),
                q.to_string(),
            )
        } else if q.len() == 2 && q.chars().all(|c| c.is_ascii_alphabetic()) {
            (
                format!("SELECT {MEMBER_COLS} FROM members WHERE revoked_at IS NULL AND state = ?1 ORDER BY handle"),
                q.to_ascii_uppercase(),
            )
        } else {
            let hex: String = q
                .chars()
                .filter(|c| c.is_ascii_hexdigit())
                .collect::<String>()
                .to_ascii_lowercase();
            if hex.len() < 8 {
                return Ok(Vec::new());
            }
            (
                format!("SELECT {MEMBER_COLS} FROM members WHERE fingerprint LIKE ?1 || '%'"),
                hex,
            )
        };
        let mut stmt = c.prepare(&sql)?;
        let rows = stmt.query_map([arg], member_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
    /// A stored attachment: (sender, total length, recipients).
    pub fn blob(&self, message_id: &MessageId) -> Result<Option<(Key, u64, Vec<Key>)>, StoreError> {
        let c = self.read.lock().expect("read lock");
        let row = c
            .query_row(
                "SELECT sender, total_len, recipients FROM blobs WHERE message_id = ?1",
                [message_id.as_slice()],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?)),
            )
            .optional()?;
        Ok(row.map(|(s, n, rs)| (to_key(&s), n as u64, rs.chunks_exact(32).map(to_key).collect())))
    }
}

/// Pending items per recipient, as stored.
fn load_counts(conn: &Connection) -> Result<HashMap<Key, u64>, StoreError> {
    let mut counts = HashMap::new();
    let mut stmt = conn.prepare("SELECT recipient, COUNT(*) FROM queue GROUP BY recipient")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (k, n) = row?;
        if let Ok(k) = <[u8; 32]>::try_from(k.as_slice()) {
            counts.insert(k, n as u64);
        }
    }
    Ok(counts)
}

const MEMBER_COLS: &str = "handle, state, role, name, public_identity, revoked_at IS NOT NULL";

fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        handle: r.get(0)?,
        state: r.get(1)?,
        role: r.get(2)?,
        name: r.get(3)?,
        public_identity: r.get(4)?,
        revoked: r.get(5)?,
    })
}

fn to_key(b: &[u8]) -> Key {
    let mut k = [0u8; 32];
    if b.len() == 32 {
        k.copy_from_slice(b);
    }
    k
}

struct Writer {
    conn: Connection,
    hub: Hub,
    batch_max: usize,
    queue_quota: u64,
    counts: HashMap<Key, u64>,
}

/// A reply to send once the group is committed.
enum Done {
    Accept(Reply<Accepted>, Result<Accepted, StoreError>),
    Unit(Reply<()>, Result<(), StoreError>),
    Count(Reply<u64>, Result<u64, StoreError>),
    Items(Reply<Vec<Delivery>>, Result<Vec<Delivery>, StoreError>),
    Member(Reply<Member>, Result<Member, StoreError>),
    Ids(Reply<Vec<MessageId>>, Result<Vec<MessageId>, StoreError>),
}

impl Done {
    fn error_text(&self) -> Option<String> {
        match self {
            Done::Accept(_, Err(e)) => Some(e.to_string()),
            Done::Unit(_, Err(e))
            | Done::Count(_, Err(e))
            | Done::Items(_, Err(e))
            | Done::Member(_, Err(e))
            | Done::Ids(_, Err(e)) => Some(e.to_string()),
            _ => None,
        }
    }
    fn fail(self, e: &str) -> Self {
        let err = || StoreError::Sqlite(rusqlite::Error::InvalidParameterName(format!("commit failed: {e}")));
        match self {
            Done::Accept(r, _) => Done::Accept(r, Err(err())),
            Done::Unit(r, _) => Done::Unit(r, Err(err())),
            Done::Count(r, _) => Done::Count(r, Err(err())),
            Done::Items(r, _) => Done::Items(r, Err(err())),
            Done::Member(r, _) => Done::Member(r, Err(err())),
            Done::Ids(r, _) => Done::Ids(r, Err(err())),
        }
    }
    fn send(self) {
        let _ = match self {
            Done::Accept(r, v) => r.send(v).is_ok(),
            Done::Unit(r, v) => r.send(v).is_ok(),
            Done::Count(r, v) => r.send(v).is_ok(),
            Done::Items(r, v) => r.send(v).is_ok(),
            Done::Member(r, v) => r.send(v).is_ok(),
            Done::Ids(r, v) => r.send(v).is_ok(),
        };
    }
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < self.batch_max {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.apply_group(batch);
        }
    }

    fn apply_group(&mut self, batch: Vec<Cmd>) {
        let mut done = Vec::with_capacity(batch.len());
        let mut announced = Vec::new();
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                let msg = e.to_string();
                for cmd in batch {
                    fail_cmd(cmd, &msg);
                }
                return;
            }
        };
        // SQLite may roll back the whole transaction on some errors (a full disk): then
        // nothing of this group is stored, and the rest of the group must not run outside it.
        let mut aborted: Option<String> = None;
        for cmd in batch {
            if let Some(msg) = &aborted {
                fail_cmd(cmd, msg);
                continue;
            }
            let d = apply(&tx, cmd, &mut self.counts, self.queue_quota, &mut announced, &self.hub);
            if tx.is_autocommit() {
                aborted = Some(d.error_text().unwrap_or_else(|| "transaction rolled back".into()));
            }
            done.push(d);
        }
        let result = match aborted {
            Some(msg) => {
                drop(tx);
                Err(msg)
            }
            None => tx.commit().map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => {
                // Announce before answering: by the time a sender hears "accepted", every
                // live watcher of its recipients already has the item.
                self.hub.publish(announced);
                for d in done {
                    d.send();
                }
            }
            Err(msg) => {
                // Disk full or I/O error: nothing in this group was stored. Say so to everyone,
                // and re-read the queue sizes (the rare path pays, not every group).
                if let Ok(counts) = load_counts(&self.conn) {
                    self.counts = counts;
                }
                tracing::error!("store commit failed: {msg}");
                for d in done {
                    d.fail(&msg).send();
                }
            }
        }
    }
}

fn fail_cmd(cmd: Cmd, msg: &str) {
    let err = || {
        StoreError::Sqlite(rusqlite::Error::InvalidParameterName(format!(
            "transaction failed: {msg}"
        )))
    };
    match cmd {
        Cmd::Accept(_, r) => drop(r.send(Err(err()))),
        Cmd::QueueReceipt { reply, .. } | Cmd::PutBlob { reply, .. } => drop(reply.send(Err(err()))),
        Cmd::Pending { reply, .. } => drop(reply.send(Err(err()))),
        Cmd::Ack { reply, .. } | Cmd::Expire { reply, .. } => drop(reply.send(Err(err()))),
        Cmd::Enrol { reply, .. } => drop(reply.send(Err(err()))),
        Cmd::ExpireBlobs { reply, .. } => drop(reply.send(Err(err()))),
    }
}

/// Runs `f` inside a savepoint so one failing request does not undo the group.
fn in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: parsing SAVEPOINT/RELEASE for every request cost ~10% of the relay's
    // CPU under load (BENCHMARKS.md).
    tx.prepare_cached("SAVEPOINT cmd")?.execute([])?;
    match f(tx) {
        Ok(v) => {
            tx.prepare_cached("RELEASE cmd")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            // If SQLite already rolled the transaction back, there is no savepoint left;
            // the caller sees that and fails the group. Report the original error.
            if !tx.is_autocommit() {
                tx.prepare_cached("ROLLBACK TO cmd")?.execute([])?;
                tx.prepare_cached("RELEASE cmd")?.execute([])?;
            }
            Err(e)
        }
    }
}

fn apply(
    tx: &Transaction<'_>,
    cmd: Cmd,
    counts: &mut HashMap<Key, u64>,
    quota: u64,
    announced: &mut Vec<QueuedItem>,
    hub: &Hub,
) -> Done {
    match cmd {
        Cmd::Accept(env, reply) => {
            let mut local = Vec::new();
            let r = in_savepoint(tx, |tx| accept(tx, &env, counts, quota, &mut local, hub));
            if r.is_ok() {
                announced.append(&mut local);
            }
            Done::Accept(reply, r)
        }
        Cmd::QueueReceipt {
            to,
            from,
            receipt,
            expires_at_ms,
            reply,
        } => {
            let r = in_savepoint(tx, |tx| {
                if counts.get(&to).copied().unwrap_or(0) >= quota {
                    return Err(StoreError::QuotaExceeded(pocnet_crypto::to_hex(&to[..8])));
                }
                tx.execute(
                    "INSERT INTO queue(recipient, kind, payload, peer, expires_at) VALUES (?1, 2, ?2, ?3, ?4)",
                    params![to.as_slice(), receipt, from.as_slice(), expires_at_ms as i64],
                )?;
                let seq = tx.last_insert_rowid() as u64;
                *counts.entry(to).or_default() += 1;
                announced.push(QueuedItem {
                    recipient: to,
                    delivery: Delivery::Receipt {
                        seq,
                        from,
                        receipt: receipt.clone(),
                    },
                });
                Ok(())
            });
            Done::Unit(reply, r)
        }
        Cmd::Pending {
            recipient,
            after_seq,
            limit,
            now_ms,
            reply,
        } => Done::Items(reply, pending(tx, &recipient, after_seq, limit, now_ms)),
        Cmd::Ack { recipient, seqs, reply } => {
            let r = in_savepoint(tx, |tx| {
                let mut n = 0;
                let mut find = tx.prepare_cached("SELECT envelope_id FROM queue WHERE recipient = ?1 AND seq = ?2")?;
                let mut delete = tx.prepare_cached("DELETE FROM queue WHERE recipient = ?1 AND seq = ?2")?;
                // Once every recipient has acknowledged an envelope, its ciphertext is dropped;
                // the row stays (id and hash) so a retried send is still recognised.
                let mut drop_bytes = tx.prepare_cached(
                    "UPDATE envelopes SET bytes = x'' WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue WHERE envelope_id = ?1)",
                )?;
                for s in seqs {
                    let envelope: Option<Option<i64>> = find
                        .query_row(params![recipient.as_slice(), s as i64], |r| r.get(0))
                        .optional()?;
                    n += delete.execute(params![recipient.as_slice(), s as i64])? as u64;
                    if let Some(Some(id)) = envelope {
                        drop_bytes.execute([id])?;
                    }
                }
                if let Some(c) = counts.get_mut(&recipient) {
                    *c = c.saturating_sub(n);
                }
                Ok(n)
            });
            Done::Count(reply, r)
        }
        Cmd::Expire { now_ms, reply } => {
            let mut local = Vec::new();
            let r = in_savepoint(tx, |tx| expire(tx, now_ms, counts, &mut local));
            if r.is_ok() {
                announced.append(&mut local);
            }
            Done::Count(reply, r)
        }
        Cmd::Enrol {
            code,
            key,
            fingerprint,
            public_identity,
            now_ms,
            reply,
        } => Done::Member(
            reply,
            in_savepoint(tx, |tx| enrol(tx, &code, &key, &fingerprint, &public_identity, now_ms)),
        ),
        Cmd::ExpireBlobs {
            stored_before_ms,
            reply,
        } => {
            let r = in_savepoint(tx, |tx| {
                let ids: Vec<Vec<u8>> = {
                    let mut st = tx.prepare("SELECT message_id FROM blobs WHERE stored_at < ?1")?;
                    let rows = st.query_map([stored_before_ms as i64], |r| r.get(0))?;
                    rows.collect::<Result<_, _>>()?
                };
                tx.execute("DELETE FROM blobs WHERE stored_at < ?1", [stored_before_ms as i64])?;
                Ok(ids
                    .iter()
                    .filter_map(|v| <[u8; 16]>::try_from(v.as_slice()).ok())
                    .collect())
            });
            Done::Ids(reply, r)
        }
        Cmd::PutBlob {
            message_id,
            sender,
            total_len,
            recipients,
            now_ms,
            reply,
        } => {
            let r = in_savepoint(tx, |tx| {
                tx.execute(
                    "INSERT INTO blobs(message_id, sender, total_len, recipients, stored_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![message_id.as_slice(), sender.as_slice(), total_len as i64, recipients.concat(), now_ms as i64],
                )?;
                Ok(())
            });
            Done::Unit(reply, r)
        }
    }
}

fn accept(
    tx: &Transaction<'_>,
    env: &NewEnvelope,
    counts: &mut HashMap<Key, u64>,
    quota: u64,
    announced: &mut Vec<QueuedItem>,
    hub: &Hub,
) -> Result<Accepted, StoreError> {
    let existing: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT stored_at, envelope_hash FROM envelopes WHERE sender = ?1 AND message_id = ?2")?
        .query_row(params![env.sender.as_slice(), env.message_id.as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((stored_at, hash)) = existing {
        if hash != env.envelope_hash {
            return Err(StoreError::IdReused);
        }
        return Ok(Accepted {
            stored_at_ms: stored_at as u64,
            duplicate: true,
        });
    }
    for r in &env.recipients {
        if counts.get(r).copied().unwrap_or(0) >= quota {
            return Err(StoreError::QuotaExceeded(pocnet_crypto::to_hex(&r[..8])));
        }
    }
    tx.prepare_cached("INSERT INTO envelopes(sender, message_id, envelope_hash, bytes, stored_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![
            env.sender.as_slice(),
            env.message_id.as_slice(),
            env.envelope_hash.as_slice(),
            env.bytes,
            env.now_ms as i64,
            env.expires_at_ms as i64
        ])?;
    let id = tx.last_insert_rowid();
    let bytes = env.bytes.clone();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO queue(recipient, kind, envelope_id, peer, message_id, expires_at) VALUES (?1, 1, ?2, ?3, ?4, ?5)",
    )?;
    for r in &env.recipients {
        stmt.execute(params![
            r.as_slice(),
            id,
            env.sender.as_slice(),
            env.message_id.as_slice(),
            env.expires_at_ms as i64
        ])?;
        let seq = tx.last_insert_rowid() as u64;
        *counts.entry(*r).or_default() += 1;
        if !hub.is_watched(r) {
            continue;
        }
        announced.push(QueuedItem {
            recipient: *r,
            delivery: Delivery::Envelope {
                seq,
                envelope: bytes.clone(),
            },
        });
    }
    Ok(Accepted {
        stored_at_ms: env.now_ms,
        duplicate: false,
    })
}

fn pending(
    tx: &Transaction<'_>,
    recipient: &Key,
    after_seq: u64,
    limit: u32,
    now_ms: u64,
) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT q.seq, q.kind, e.bytes, q.payload, q.peer, q.message_id FROM queue q LEFT JOIN envelopes e ON e.id = q.envelope_id
         WHERE q.recipient = ?1 AND q.seq > ?2 AND q.state = 0 AND q.not_before <= ?3 ORDER BY q.seq LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![recipient.as_slice(), after_seq as i64, now_ms as i64, limit as i64],
        |r| {
            let seq = r.get::<_, i64>(0)? as u64;
            Ok(match r.get::<_, i64>(1)? {
                1 => Delivery::Envelope {
                    seq,
                    envelope: r.get::<_, Option<Vec<u8>>>(2)?.unwrap_or_default(),
                },
                2 => Delivery::Receipt {
                    seq,
                    from: to_key(&r.get::<_, Vec<u8>>(4)?),
                    receipt: r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                },
                _ => {
                    let mid = r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default();
                    let mut message_id = [0u8; 16];
                    if mid.len() == 16 {
                        message_id.copy_from_slice(&mid);
                    }
                    Delivery::Expired {
                        seq,
                        message_id,
                        recipient: to_key(&r.get::<_, Vec<u8>>(4)?),
                    }
                }
            })
        },
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn expire(
    tx: &Transaction<'_>,
    now_ms: u64,
    counts: &mut HashMap<Key, u64>,
    announced: &mut Vec<QueuedItem>,
) -> Result<u64, StoreError> {
    // Envelope items past their TTL: remove, and tell the sender which recipient never got it.
    type Row = (i64, Vec<u8>, i64, Option<Vec<u8>>, Option<Vec<u8>>);
    let expired: Vec<Row> = {
        let mut stmt = tx.prepare("SELECT seq, recipient, kind, peer, message_id FROM queue WHERE expires_at <= ?1")?;
        let rows = stmt.query_map([now_ms as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let notice_ttl = now_ms + 30 * 24 * 3600 * 1000;
    for (seq, recipient, kind, peer, mid) in &expired {
        tx.execute("DELETE FROM queue WHERE seq = ?1", [seq])?;
        let rk = to_key(recipient);
        if let Some(c) = counts.get_mut(&rk) {
            *c = c.saturating_sub(1);
        }
        if *kind == 1 {
            if let (Some(sender), Some(mid)) = (peer, mid) {
                tx.execute(
                    "INSERT INTO queue(recipient, kind, peer, message_id, expires_at) VALUES (?1, 3, ?2, ?3, ?4)",
                    params![sender, recipient, mid, notice_ttl as i64],
                )?;
                let nseq = tx.last_insert_rowid() as u64;
                let sk = to_key(sender);
                *counts.entry(sk).or_default() += 1;
                let mut message_id = [0u8; 16];
                if mid.len() == 16 {
                    message_id.copy_from_slice(mid);
                }
                announced.push(QueuedItem {
                    recipient: sk,
                    delivery: Delivery::Expired {
                        seq: nseq,
                        message_id,
                        recipient: rk,
                    },
                });
            }
        }
    }
    tx.execute("DELETE FROM envelopes WHERE expires_at <= ?1 AND id NOT IN (SELECT envelope_id FROM queue WHERE envelope_id IS NOT NULL)", [now_ms as i64])?;
    Ok(expired.len() as u64)
}

/// SHA-256 of an invite code, as stored (the code itself is never stored).
pub fn invite_hash(code: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    Sha256::digest(normal.as_bytes()).to_vec()
}

fn enrol(
    tx: &Transaction<'_>,
    code: &str,
    key: &Key,
    fingerprint: &str,
    public_identity: &[u8],
    now_ms: u64,
) -> Result<Member, StoreError> {
    let inv: Option<(String, String, String, i64, Option<i64>)> = tx
        .query_row(
            "SELECT state, role, name, expires_at, used_at FROM invites WHERE code_hash = ?1",
            [invite_hash(code)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let (state, role, name, expires_at, used_at) = inv.ok_or(StoreError::BadInvite)?;
    if used_at.is_some() {
        return Err(StoreError::InviteUsed);
    }
    if (expires_at as u64) <= now_ms {
        return Err(StoreError::InviteExpired);
    }
    if let Some(h) = tx
        .query_row("SELECT handle FROM members WHERE key = ?1", [key.as_slice()], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
    {
        return Err(StoreError::AlreadyEnrolled(h));
    }
    let handle = format!("{state}.{role}");
    let taken: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM members WHERE handle = ?1 AND revoked_at IS NULL",
            [&handle],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some() {
        return Err(StoreError::HandleTaken(handle));
    }
    tx.execute(
        "INSERT INTO members(key, fingerprint, handle, state, role, name, public_identity, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![key.as_slice(), fingerprint, handle, state, role, name, public_identity, now_ms as i64],
    )?;
    tx.execute(
        "UPDATE invites SET used_at = ?1, used_by = ?2 WHERE code_hash = ?3",
        params![now_ms as i64, key.as_slice(), invite_hash(code)],
    )?;
    Ok(Member {
        handle,
        state,
        role,
        name,
        public_identity: public_identity.to_vec(),
        revoked: false,
    })
}
