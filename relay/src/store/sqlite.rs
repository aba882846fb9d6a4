//! The SQLite backend: WAL, `synchronous=FULL`, one writer thread committing requests in
//! groups.
//!
//! Every write is sent to the writer with a reply channel. The writer takes all requests
//! waiting (up to `batch_max`), applies each inside its own savepoint, commits once, and
//! only then replies: "accepted" always means "on disk", while one fsync serves the whole
//! group. New queue items are announced to live watchers after the commit and before the
//! replies. Reads use a second connection. No rusqlite type or error leaves this file:
//! failures become [`StoreError`] here (a full disk or the `max_page_count` cap is
//! `SQLITE_FULL`, matched by code).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use pocnet_wire::{Key, Member, MessageId, Release, StepReport};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::oneshot;

use super::{
    Accepted, BlobInfo, BlobLimits, Conflict, EscalationRecord, Hold, Hub, Item, LogAppend, MemberRecord, NewEnvelope,
    NewEscalation, Quota, StoreError, StoredCheckpoint, Subscription, UploadStart,
};

/// Schema migrations, applied in order; `PRAGMA user_version` is how many have run.
/// Append only. Version 1 is the schema of protocol 1 (its `IF NOT EXISTS` adopts
/// databases created before versioning).
const MIGRATIONS: &[&str] = &[
    // 1: members, invites, envelopes, queue, blobs.
    "
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
CREATE TABLE IF NOT EXISTS queue(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient BLOB NOT NULL, kind INTEGER NOT NULL,
    envelope_id INTEGER, payload BLOB, peer BLOB, message_id BLOB,
    state INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS queue_by_recipient ON queue(recipient, seq);
CREATE INDEX IF NOT EXISTS queue_by_expiry ON queue(expires_at);
CREATE TABLE IF NOT EXISTS blobs(
    message_id BLOB PRIMARY KEY, sender BLOB NOT NULL, total_len INTEGER NOT NULL,
    recipients BLOB NOT NULL, stored_at INTEGER NOT NULL);
",
    // 2: partial uploads are recorded (and reserved against quotas) when they start.
    "
ALTER TABLE blobs ADD COLUMN complete INTEGER NOT NULL DEFAULT 1;
CREATE INDEX blobs_by_sender ON blobs(sender);
",
    // 3: acks look up whether any queue row still needs an envelope.
    "
CREATE INDEX queue_by_envelope ON queue(envelope_id);
",
    // 4 (protocol 3): the directory log is the only admission. Invite enrolments end (their
    // members must be listed in the log); the operator's blocks get their own column.
    "
DROP TABLE invites;
DELETE FROM members;
ALTER TABLE members ADD COLUMN blocked_at INTEGER;
CREATE TABLE log_leaves(idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL);
CREATE TABLE log_checkpoint(id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL, note TEXT NOT NULL);
CREATE TABLE log_cosignatures(size INTEGER NOT NULL, witness BLOB NOT NULL, line TEXT NOT NULL,
    PRIMARY KEY(size, witness));
CREATE TABLE registrations(key BLOB PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE,
    public_identity BLOB NOT NULL, at INTEGER NOT NULL);
CREATE TABLE submissions(id INTEGER PRIMARY KEY AUTOINCREMENT, author BLOB NOT NULL,
    statement BLOB NOT NULL, hash BLOB NOT NULL UNIQUE, at INTEGER NOT NULL);
CREATE INDEX submissions_by_author ON submissions(author);
",
    // 5: held deliveries. A held item is a queue row with `state = 1` and its due time in
    // `not_before`; its cancel rule is here. Released, it becomes a new `state = 0` row.
    "
CREATE TABLE holds(seq INTEGER PRIMARY KEY, cancel_id BLOB NOT NULL, signers BLOB NOT NULL);
CREATE INDEX holds_by_cancel ON holds(cancel_id);
CREATE INDEX queue_held ON queue(not_before) WHERE state = 1;
CREATE INDEX queue_held_by_recipient ON queue(recipient, not_before) WHERE state = 1;
",
    // 6: escalation alerts. Each step is a queue row (held with a `holds` cancel rule until
    // due, like any held item); its record here says when it fell due and whether it was
    // released or cancelled, and by whom. `seq` is its queue row: the held one, then the
    // released one (a seq no longer in the queue was acknowledged or expired).
    "
CREATE TABLE escalations(sender BLOB NOT NULL, message_id BLOB NOT NULL, plan BLOB NOT NULL,
    accepted_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY(sender, message_id));
CREATE INDEX escalations_by_expiry ON escalations(expires_at);
CREATE TABLE escalation_steps(sender BLOB NOT NULL, message_id BLOB NOT NULL, recipient BLOB NOT NULL,
    rank INTEGER NOT NULL, repeat INTEGER NOT NULL, due INTEGER NOT NULL, released INTEGER,
    cancelled INTEGER, cancelled_by BLOB, seq INTEGER,
    PRIMARY KEY(sender, message_id, recipient, repeat));
CREATE INDEX escalation_steps_by_seq ON escalation_steps(seq);
",
];

/// Queue row states as stored.
const QUEUED: i64 = 0;
const HELD: i64 = 1;

/// Queue item kinds as stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Envelope = 1,
    Receipt = 2,
    Expired = 3,
}

/// Internal failure: a database error (mapped once, at the boundary) or a store decision.
enum Fail {
    Db(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Db(e)
    }
}
impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

fn neutral(e: rusqlite::Error) -> StoreError {
    neutral_ref(&e)
}

fn neutral_ref(e: &rusqlite::Error) -> StoreError {
    if is_full(e) {
        StoreError::Full
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<Fail> for StoreError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Db(e) => neutral(e),
            Fail::Store(e) => e,
        }
    }
}

type R<T> = Result<T, Fail>;
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;
/// A write applied by the writer thread inside its own savepoint of a group.
type WriteFn = Box<dyn FnOnce(&Transaction<'_>) -> R<()> + Send>;

/// Opens (creating and migrating if needed) the database at `path` with the relay's pragmas.
fn open_db(path: &Path) -> R<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> R<()> {
    let have: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if have as usize > MIGRATIONS.len() {
        return Err(StoreError::Unavailable(format!(
            "the database is at schema version {have}, newer than this relay ({}); run the newer relay",
            MIGRATIONS.len()
        ))
        .into());
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// How an envelope is stored.
enum How {
    /// Queued for every recipient.
    Queue,
    /// Held for its one recipient.
    Hold(Hold),
    /// An alert with its escalation.
    Escalate(NewEscalation),
    /// A follow-up of an escalating alert.
    FollowUp { of: MessageId, stop: bool },
}

enum Cmd {
    Accept(NewEnvelope, How, Reply<Accepted>),
    QueueReceipt {
        to: Key,
        from: Key,
        receipt: Vec<u8>,
        now_ms: u64,
        expires_at_ms: u64,
        cancel: Option<MessageId>,
        reply: Reply<u64>,
    },
    Release {
        now_ms: u64,
        reply: Reply<u64>,
    },
    Pending {
        recipient: Key,
        after_seq: u64,
        limit: u32,
        now_ms: u64,
        reply: Reply<Vec<Item>>,
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
    Write(WriteFn, Reply<()>),
}

/// The SQLite store; cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    tx: mpsc::Sender<Cmd>,
    read: Arc<Mutex<Connection>>,
    hub: Hub,
}

impl SqliteStore {
    /// Opens the database at `path` (creating and migrating it) and starts the writer.
    /// `max_bytes` caps the database: past it, writes fail with [`StoreError::Full`].
    pub fn open(path: &Path, batch_max: usize, queue_quota: u64, max_bytes: Option<u64>) -> Result<Self, StoreError> {
        Self::open_inner(path, batch_max, queue_quota, max_bytes).map_err(StoreError::from)
    }

    fn open_inner(path: &Path, batch_max: usize, queue_quota: u64, max_bytes: Option<u64>) -> R<Self> {
        let writer = open_db(path)?;
        if let Some(max) = max_bytes {
            let page: i64 = writer.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = (max / page.max(512) as u64).max(1);
            writer.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        }
        let read = open_db(path)?;
        let (tx, rx) = mpsc::channel();
        let hub = Hub::default();
        let counts = load_counts(&writer)?;
        let w = Writer {
            conn: writer,
            hub: hub.clone(),
            batch_max: batch_max.max(1),
            queue_quota,
            counts,
        };
        thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer: {e}")))?;
        Ok(SqliteStore {
            tx,
            read: Arc::new(Mutex::new(read)),
            hub,
        })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let closed = || StoreError::Unavailable("the store writer has stopped".into());
        self.tx.send(make(reply)).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn write(&self, f: impl FnOnce(&Transaction<'_>) -> R<()> + Send + 'static) -> Result<(), StoreError> {
        self.call(|reply| Cmd::Write(Box::new(f), reply)).await
    }

    /// Write that returns a value through a slot (the writer's generic command returns `()`).
    async fn write_value<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> R<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let slot = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        self.write(move |tx| {
            let v = f(tx)?;
            *s2.lock().expect("slot") = Some(v);
            Ok(())
        })
        .await?;
        let v = slot.lock().expect("slot").take();
        v.ok_or_else(|| StoreError::Unavailable("write produced no value".into()))
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> R<T>) -> Result<T, StoreError> {
        let c = self.read.lock().expect("read lock");
        f(&c).map_err(StoreError::from)
    }
}

impl super::Queue for SqliteStore {
    async fn accept(&self, env: NewEnvelope) -> Result<Accepted, StoreError> {
        self.call(|r| Cmd::Accept(env, How::Queue, r)).await
    }
    async fn hold(&self, env: NewEnvelope, hold: Hold) -> Result<Accepted, StoreError> {
        if env.recipients.len() != 1 {
            return Err(StoreError::Unavailable(
                "a held envelope has exactly one recipient".into(),
            ));
        }
        self.call(|r| Cmd::Accept(env, How::Hold(hold), r)).await
    }
    async fn escalate(&self, env: NewEnvelope, esc: NewEscalation) -> Result<Accepted, StoreError> {
        self.call(|r| Cmd::Accept(env, How::Escalate(esc), r)).await
    }
    async fn follow_up(&self, env: NewEnvelope, of: MessageId, stop: bool) -> Result<Accepted, StoreError> {
        self.call(|r| Cmd::Accept(env, How::FollowUp { of, stop }, r)).await
    }
    async fn escalation(&self, sender: Key, alert: MessageId) -> Result<Option<EscalationRecord>, StoreError> {
        self.read(|c| {
            let head: Option<(Vec<u8>, i64)> = c
                .prepare_cached("SELECT plan, accepted_at FROM escalations WHERE sender = ?1 AND message_id = ?2")?
                .query_row(params![sender.as_slice(), alert.as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let Some((plan, accepted_at)) = head else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT recipient, rank, repeat, due, released, cancelled, cancelled_by FROM escalation_steps
                 WHERE sender = ?1 AND message_id = ?2 ORDER BY due, rowid",
            )?;
            let steps = stmt
                .query_map(params![sender.as_slice(), alert.as_slice()], |r| {
                    Ok(StepReport {
                        recipient: to_key(&r.get::<_, Vec<u8>>(0)?),
                        rank: r.get::<_, i64>(1)? as u8,
                        repeat: r.get::<_, i64>(2)? as u8,
                        due_ms: r.get::<_, i64>(3)? as u64,
                        released_ms: r.get::<_, Option<i64>>(4)?.map(|t| t as u64),
                        cancelled_ms: r.get::<_, Option<i64>>(5)?.map(|t| t as u64),
                        cancelled_by: r.get::<_, Option<Vec<u8>>>(6)?.map(|k| to_key(&k)),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(EscalationRecord {
                plan,
                accepted_ms: accepted_at as u64,
                steps,
            }))
        })
    }
    async fn queue_receipt(
        &self,
        to: Key,
        from: Key,
        receipt: Vec<u8>,
        now_ms: u64,
        expires_at_ms: u64,
        cancel: Option<MessageId>,
    ) -> Result<u64, StoreError> {
        self.call(|reply| Cmd::QueueReceipt {
            to,
            from,
            receipt,
            now_ms,
            expires_at_ms,
            cancel,
            reply,
        })
        .await
    }
    async fn release(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.call(|reply| Cmd::Release { now_ms, reply }).await
    }
    async fn pending(&self, recipient: Key, after_seq: u64, limit: u32, now_ms: u64) -> Result<Vec<Item>, StoreError> {
        // Through the writer, not the read connection: an item whose accept ran before a
        // watcher subscribed was not announced to it (nobody watched), and a read on another
        // connection could miss it while its group's commit is still in flight. The writer
        // reads after that commit. (Tried and reverted: it lost one delivery in the probe.)
        self.call(|reply| Cmd::Pending {
            recipient,
            after_seq,
            limit,
            now_ms,
            reply,
        })
        .await
    }
    async fn ack(&self, recipient: Key, seqs: Vec<u64>) -> Result<u64, StoreError> {
        self.call(|reply| Cmd::Ack { recipient, seqs, reply }).await
    }
    async fn expire(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.call(|reply| Cmd::Expire { now_ms, reply }).await
    }
    async fn has_envelope(
        &self,
        sender: Key,
        message_id: MessageId,
        envelope_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT 1 FROM envelopes WHERE sender = ?1 AND message_id = ?2 AND envelope_hash = ?3",
            )?
            .query_row(
                params![sender.as_slice(), message_id.as_slice(), envelope_hash.as_slice()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }
}

const MEMBER_COLS: &str =
    "handle, state, role, name, public_identity, revoked_at IS NOT NULL OR blocked_at IS NOT NULL, key, fingerprint";

fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemberRecord> {
    Ok(MemberRecord {
        member: Member {
            handle: r.get(0)?,
            state: r.get(1)?,
            role: r.get(2)?,
            name: r.get(3)?,
            public_identity: r.get(4)?,
            revoked: r.get(5)?,
        },
        key: to_key(&r.get::<_, Vec<u8>>(6)?),
        fingerprint: r.get(7)?,
    })
}

impl super::Members for SqliteStore {
    async fn member(&self, key: Key) -> Result<Option<Member>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {MEMBER_COLS} FROM members WHERE key = ?1"))?;
            Ok(stmt
                .query_row([key.as_slice()], member_row)
                .optional()?
                .map(|m| m.member))
        })
    }
    async fn lookup(&self, query: String) -> Result<Vec<Member>, StoreError> {
        let q = query.trim();
        // A state or `*` names POCs: the people a message goes to. Authorities, witnesses
        // and the Secretariat are admitted members but no one's recipients.
        let (sql, arg) = if q == "*" {
            ("revoked_at IS NULL AND ?1 = ?1 AND role NOT IN ('authority', 'witness', 'secretariat') ORDER BY handle", String::new())
        } else if q.contains('.') || q == "secretariat" {
            ("revoked_at IS NULL AND handle = ?1", q.to_string())
        } else if q.len() == 2 && q.chars().all(|c| c.is_ascii_alphabetic()) {
            (
                "revoked_at IS NULL AND state = ?1 AND role NOT IN ('authority', 'witness', 'secretariat') ORDER BY handle",
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
            ("revoked_at IS NULL AND fingerprint LIKE ?1 || '%'", hex)
        };
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {MEMBER_COLS} FROM members WHERE {sql}"))?;
            let rows = stmt.query_map([arg], member_row)?;
            Ok(rows.map(|r| r.map(|m| m.member)).collect::<Result<Vec<_>, _>>()?)
        })
    }
    async fn revoke(&self, who: String, now_ms: u64) -> Result<Result<MemberRecord, usize>, StoreError> {
        self.write_value(move |tx| {
            let matches: Vec<MemberRecord> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {MEMBER_COLS} FROM members WHERE revoked_at IS NULL AND blocked_at IS NULL AND (handle = ?1 OR (length(?2) >= 8 AND fingerprint LIKE ?2 || '%'))"
                ))?;
                let rows = stmt.query_map(params![who, who.to_ascii_lowercase()], member_row)?;
                rows.collect::<Result<_, _>>()?
            };
            if matches.len() != 1 {
                return Ok(Err(matches.len()));
            }
            let mut m = matches.into_iter().next().expect("one");
            tx.execute(
                "UPDATE members SET blocked_at = ?1 WHERE key = ?2",
                params![now_ms as i64, m.key.as_slice()],
            )?;
            m.member.revoked = true;
            Ok(Ok(m))
        })
        .await
    }
    fn is_revoked_now(&self, key: &Key) -> Result<bool, StoreError> {
        self.read(|c| {
            let r = c
                .prepare_cached("SELECT revoked_at IS NOT NULL OR blocked_at IS NOT NULL FROM members WHERE key = ?1")?
                .query_row([key.as_slice()], |r| r.get::<_, bool>(0))
                .optional()?;
            Ok(r.unwrap_or(false))
        })
    }
    async fn members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {MEMBER_COLS} FROM members ORDER BY handle, enrolled_at"
            ))?;
            let rows = stmt.query_map([], member_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

impl super::Log for SqliteStore {
    async fn log_leaves(&self, from: u64, limit: u32, max_bytes: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT leaf FROM log_leaves WHERE idx >= ?1 ORDER BY idx LIMIT ?2")?;
            let mut rows = stmt.query(params![from as i64, limit as i64])?;
            let (mut out, mut bytes) = (Vec::new(), 0usize);
            while let Some(r) = rows.next()? {
                let leaf: Vec<u8> = r.get(0)?;
                bytes += leaf.len();
                if !out.is_empty() && bytes > max_bytes {
                    break;
                }
                out.push(leaf);
            }
            Ok(out)
        })
    }
    async fn log_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(|c| {
            let cp: Option<(i64, String)> = c
                .prepare_cached("SELECT size, note FROM log_checkpoint WHERE id = 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((size, note)) = cp else { return Ok(None) };
            let mut stmt = c.prepare_cached("SELECT line FROM log_cosignatures WHERE size = ?1 ORDER BY witness")?;
            let cosignatures = stmt
                .query_map([size], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(StoredCheckpoint {
                size: size as u64,
                note,
                cosignatures,
            }))
        })
    }
    async fn log_append(&self, a: LogAppend) -> Result<(), StoreError> {
        self.write(move |tx| {
            let have: i64 = tx.query_row("SELECT count(*) FROM log_leaves", [], |r| r.get(0))?;
            if have as u64 != a.first {
                return Err(StoreError::Conflict(Conflict::LogMoved(have as u64)).into());
            }
            {
                let mut ins = tx.prepare_cached("INSERT INTO log_leaves(idx, leaf) VALUES (?1, ?2)")?;
                for (i, leaf) in a.leaves.iter().enumerate() {
                    ins.execute(params![(a.first + i as u64) as i64, leaf])?;
                }
            }
            let size = a.first + a.leaves.len() as u64;
            tx.execute(
                "INSERT INTO log_checkpoint(id, size, note) VALUES (1, ?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET size = excluded.size, note = excluded.note",
                params![size as i64, a.checkpoint],
            )?;
            tx.execute("DELETE FROM log_cosignatures WHERE size < ?1", [size as i64])?;
            // Unlist every changed key first, then list the current ones: a handle moving
            // between keys never meets itself in the unique index.
            let now = a.now_ms as i64;
            for (key, _) in &a.members {
                tx.execute(
                    "UPDATE members SET revoked_at = ?1 WHERE key = ?2 AND revoked_at IS NULL",
                    params![now, key.as_slice()],
                )?;
            }
            for (key, listed) in &a.members {
                let Some(l) = listed else { continue };
                let m = &l.member;
                tx.execute(
                    "INSERT INTO members(key, fingerprint, handle, state, role, name, public_identity, enrolled_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT(key) DO UPDATE SET handle = excluded.handle, state = excluded.state,
                       role = excluded.role, name = excluded.name, public_identity = excluded.public_identity,
                       revoked_at = NULL",
                    params![
                        key.as_slice(),
                        pocnet_crypto::IdentityKey::from_bytes(key)
                            .map(|k| k.fingerprint().to_hex())
                            .unwrap_or_default(),
                        m.handle,
                        m.state,
                        m.role,
                        m.name,
                        m.public_identity,
                        now
                    ],
                )?;
                tx.execute("DELETE FROM registrations WHERE key = ?1", [key.as_slice()])?;
            }
            for h in &a.published {
                tx.execute("DELETE FROM submissions WHERE hash = ?1", [h.as_slice()])?;
            }
            Ok(())
        })
        .await
    }
    async fn log_cosign(&self, size: u64, witness: Key, line: String) -> Result<bool, StoreError> {
        self.write_value(move |tx| {
            let current: Option<i64> = tx
                .query_row("SELECT size FROM log_checkpoint WHERE id = 1", [], |r| r.get(0))
                .optional()?;
            if current != Some(size as i64) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO log_cosignatures(size, witness, line) VALUES (?1, ?2, ?3)
                 ON CONFLICT(size, witness) DO UPDATE SET line = excluded.line",
                params![size as i64, witness.as_slice(), line],
            )?;
            Ok(true)
        })
        .await
    }
    async fn register(
        &self,
        key: Key,
        fingerprint: String,
        public_identity: Vec<u8>,
        now_ms: u64,
        max: u64,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            let known: Option<i64> = tx
                .query_row("SELECT 1 FROM registrations WHERE key = ?1", [key.as_slice()], |r| {
                    r.get(0)
                })
                .optional()?;
            if known.is_none() {
                let n: i64 = tx.query_row("SELECT count(*) FROM registrations", [], |r| r.get(0))?;
                if n as u64 >= max {
                    return Err(StoreError::Quota(Quota::Waiting(
                        "the relay holds as many registrations as it allows; the Secretariat must clear some first",
                    ))
                    .into());
                }
            }
            tx.execute(
                "INSERT INTO registrations(key, fingerprint, public_identity, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(key) DO UPDATE SET public_identity = excluded.public_identity, at = excluded.at",
                params![key.as_slice(), fingerprint, public_identity, now_ms as i64],
            )?;
            Ok(())
        })
        .await
    }
    async fn registration(&self, fingerprint: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT public_identity FROM registrations WHERE fingerprint = ?1")?
                    .query_row([fingerprint.to_ascii_lowercase()], |r| r.get(0))
                    .optional()?,
            )
        })
    }
    async fn submit(&self, author: Key, statement: Vec<u8>, now_ms: u64, per_author: u64) -> Result<u64, StoreError> {
        use sha2::{Digest, Sha256};
        let hash: [u8; 32] = Sha256::digest(&statement).into();
        self.write_value(move |tx| {
            let dup: Option<i64> = tx
                .query_row("SELECT 1 FROM submissions WHERE hash = ?1", [hash.as_slice()], |r| {
                    r.get(0)
                })
                .optional()?;
            if dup.is_some() {
                return Err(StoreError::Conflict(Conflict::Duplicate).into());
            }
            let n: i64 = tx.query_row(
                "SELECT count(*) FROM submissions WHERE author = ?1",
                [author.as_slice()],
                |r| r.get(0),
            )?;
            if n as u64 >= per_author {
                return Err(StoreError::Quota(Quota::Waiting(
                    "this key already has as many statements waiting for the Secretariat as the relay allows",
                ))
                .into());
            }
            tx.execute(
                "INSERT INTO submissions(author, statement, hash, at) VALUES (?1, ?2, ?3, ?4)",
                params![author.as_slice(), statement, hash.as_slice(), now_ms as i64],
            )?;
            Ok(tx.last_insert_rowid() as u64)
        })
        .await
    }
    async fn submissions(&self, after: u64, limit: u32) -> Result<Vec<pocnet_wire::Submission>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, statement, at FROM submissions WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let rows = stmt.query_map(params![after as i64, limit as i64], |r| {
                Ok(pocnet_wire::Submission {
                    id: r.get::<_, i64>(0)? as u64,
                    statement: r.get(1)?,
                    received_ms: r.get::<_, i64>(2)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
    async fn dismiss(&self, ids: Vec<u64>) -> Result<(), StoreError> {
        self.write(move |tx| {
            for id in ids {
                tx.execute("DELETE FROM submissions WHERE id = ?1", [id as i64])?;
            }
            Ok(())
        })
        .await
    }
    async fn expire_waiting(&self, before_ms: u64) -> Result<u64, StoreError> {
        self.write_value(move |tx| {
            let a = tx.execute("DELETE FROM registrations WHERE at < ?1", [before_ms as i64])?;
            let b = tx.execute("DELETE FROM submissions WHERE at < ?1", [before_ms as i64])?;
            Ok((a + b) as u64)
        })
        .await
    }
}

impl super::Blobs for SqliteStore {
    async fn begin_upload(
        &self,
        sender: Key,
        message_id: MessageId,
        total_len: u64,
        limits: BlobLimits,
        now_ms: u64,
    ) -> Result<UploadStart, StoreError> {
        self.write_value(move |tx| {
            let existing: Option<(Vec<u8>, i64, bool)> = tx
                .query_row(
                    "SELECT sender, total_len, complete FROM blobs WHERE message_id = ?1",
                    [message_id.as_slice()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((owner, len, complete)) = existing {
                if owner != sender {
                    return Err(StoreError::Conflict(Conflict::BlobOwned).into());
                }
                if complete {
                    return Ok(UploadStart::Complete);
                }
                if len as u64 == total_len {
                    return Ok(UploadStart::Reserved);
                }
                // Another length would free the reservation while the bytes stay on disk.
                return Err(StoreError::Conflict(Conflict::UploadLength).into());
            }
            let mine: i64 = tx.query_row(
                "SELECT COALESCE(SUM(total_len), 0) FROM blobs WHERE sender = ?1",
                [sender.as_slice()],
                |r| r.get(0),
            )?;
            let needed = (mine as u64).saturating_add(total_len);
            if needed > limits.per_member {
                return Err(StoreError::Quota(Quota::Uploads {
                    needed,
                    limit: limits.per_member,
                })
                .into());
            }
            let all: i64 = tx.query_row("SELECT COALESCE(SUM(total_len), 0) FROM blobs", [], |r| r.get(0))?;
            if (all as u64).saturating_add(total_len) > limits.total {
                return Err(StoreError::Quota(Quota::Storage).into());
            }
            tx.execute(
                "INSERT INTO blobs(message_id, sender, total_len, recipients, stored_at, complete) VALUES (?1, ?2, ?3, x'', ?4, 0)",
                params![message_id.as_slice(), sender.as_slice(), total_len as i64, now_ms as i64],
            )?;
            Ok(UploadStart::Reserved)
        })
        .await
    }
    async fn complete_upload(
        &self,
        sender: Key,
        message_id: MessageId,
        recipients: Vec<Key>,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE blobs SET complete = 1, recipients = ?1 WHERE message_id = ?2 AND sender = ?3",
                params![recipients.concat(), message_id.as_slice(), sender.as_slice()],
            )?;
            Ok(())
        })
        .await
    }
    async fn abandon_upload(&self, sender: Key, message_id: MessageId) -> Result<(), StoreError> {
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM blobs WHERE message_id = ?1 AND sender = ?2 AND complete = 0",
                params![message_id.as_slice(), sender.as_slice()],
            )?;
            Ok(())
        })
        .await
    }
    async fn blob(&self, message_id: MessageId) -> Result<Option<BlobInfo>, StoreError> {
        self.read(|c| {
            let row = c
                .prepare_cached("SELECT sender, total_len, recipients, complete FROM blobs WHERE message_id = ?1")?
                .query_row([message_id.as_slice()], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                })
                .optional()?;
            Ok(row.map(|(s, n, rs, complete)| BlobInfo {
                sender: to_key(&s),
                total_len: n as u64,
                recipients: rs.chunks_exact(32).map(to_key).collect(),
                complete,
            }))
        })
    }
    async fn expire_blobs(&self, before_ms: u64) -> Result<Vec<(Key, MessageId)>, StoreError> {
        self.write_value(move |tx| {
            let ids: Vec<(Vec<u8>, Vec<u8>)> = {
                let mut st = tx.prepare("SELECT sender, message_id FROM blobs WHERE stored_at < ?1")?;
                let rows = st.query_map([before_ms as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            tx.execute("DELETE FROM blobs WHERE stored_at < ?1", [before_ms as i64])?;
            Ok(ids
                .iter()
                .filter_map(|(s, m)| Some((to_key(s), <[u8; 16]>::try_from(m.as_slice()).ok()?)))
                .collect())
        })
        .await
    }
}

impl super::Notifier for SqliteStore {
    fn subscribe(&self, recipient: Key, max_per_key: usize) -> Result<Subscription, StoreError> {
        self.hub.subscribe(recipient, max_per_key)
    }
    fn is_watched(&self, recipient: &Key) -> bool {
        self.hub.is_watched(recipient)
    }
}

/// Queue sizes: `(recipient, ALL)` is a recipient's total, `(recipient, sender)` what one
/// sender holds of it.
type Counts = HashMap<(Key, Key), u64>;
/// The "every sender" slot of [`Counts`] (no identity key is all zeros).
const ALL: Key = [0; 32];

/// A sender may hold at most this share of a recipient's queue, so one insider cannot fill
/// it and lock out everyone else's messages.
fn sender_quota(queue_quota: u64) -> u64 {
    (queue_quota / 4).max(1)
}

/// Pending items per recipient and per (recipient, sender), as stored.
fn load_counts(conn: &Connection) -> R<Counts> {
    let mut counts = HashMap::new();
    let mut stmt = conn.prepare("SELECT recipient, peer, COUNT(*) FROM queue GROUP BY recipient, peer")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, Option<Vec<u8>>>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (k, peer, n) = row?;
        let k = to_key(&k);
        *counts.entry((k, ALL)).or_default() += n as u64;
        *counts.entry((k, to_key(&peer.unwrap_or_default()))).or_default() += n as u64;
    }
    Ok(counts)
}

fn to_key(b: &[u8]) -> Key {
    let mut k = [0u8; 32];
    if b.len() == 32 {
        k.copy_from_slice(b);
    }
    k
}

fn to_id(b: &[u8]) -> MessageId {
    let mut k = [0u8; 16];
    if b.len() == 16 {
        k.copy_from_slice(b);
    }
    k
}

struct Writer {
    conn: Connection,
    hub: Hub,
    batch_max: usize,
    queue_quota: u64,
    counts: Counts,
}

/// A reply to send once the group is committed.
enum Done {
    Accept(Reply<Accepted>, R<Accepted>),
    Unit(Reply<()>, R<()>),
    Count(Reply<u64>, R<u64>),
    Items(Reply<Vec<Item>>, R<Vec<Item>>),
}

impl Done {
    /// The neutral form of this request's error, if it failed (read, not taken: the
    /// whole group is then answered with it).
    fn error(&self) -> Option<StoreError> {
        let f = match self {
            Done::Accept(_, Err(f)) => f,
            Done::Unit(_, Err(f)) | Done::Count(_, Err(f)) => f,
            Done::Items(_, Err(f)) => f,
            _ => return None,
        };
        Some(match f {
            Fail::Db(e) => neutral_ref(e),
            Fail::Store(e) => e.clone(),
        })
    }
    fn send(self, override_err: Option<&StoreError>) {
        fn out<T>(r: R<T>, o: Option<&StoreError>) -> Result<T, StoreError> {
            match o {
                Some(e) => Err(e.clone()),
                None => r.map_err(StoreError::from),
            }
        }
        let _ = match self {
            Done::Accept(r, v) => r.send(out(v, override_err)).is_ok(),
            Done::Unit(r, v) => r.send(out(v, override_err)).is_ok(),
            Done::Count(r, v) => r.send(out(v, override_err)).is_ok(),
            Done::Items(r, v) => r.send(out(v, override_err)).is_ok(),
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
        let mut done: Vec<Done> = Vec::with_capacity(batch.len());
        let mut announced = Vec::new();
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                let e = neutral(e);
                for cmd in batch {
                    as_done(cmd).send(Some(&e));
                }
                return;
            }
        };
        // SQLite may roll back the whole transaction on some errors (a full disk): then
        // nothing of this group is stored, and the rest of the group must not run outside it.
        let mut aborted: Option<StoreError> = None;
        for cmd in batch {
            if let Some(e) = &aborted {
                as_done(cmd).send(Some(e));
                continue;
            }
            let d = apply(&tx, cmd, &mut self.counts, self.queue_quota, &mut announced, &self.hub);
            if tx.is_autocommit() {
                aborted = Some(
                    d.error()
                        .unwrap_or_else(|| StoreError::Unavailable("transaction rolled back".into())),
                );
            }
            done.push(d);
        }
        let result = match aborted {
            Some(e) => {
                drop(tx);
                Err(e)
            }
            None => tx.commit().map_err(neutral),
        };
        match result {
            Ok(()) => {
                // Announce before answering: by the time a sender hears "accepted", every
                // live watcher of its recipients already has the item.
                self.hub.publish(announced);
                for d in done {
                    d.send(None);
                }
            }
            Err(e) => {
                // Disk full or I/O error: nothing in this group was stored. Say so to everyone,
                // and re-read the queue sizes (the rare path pays, not every group).
                if let Ok(counts) = load_counts(&self.conn) {
                    self.counts = counts;
                }
                tracing::error!("store commit failed: {e}");
                for d in done {
                    d.send(Some(&e));
                }
            }
        }
    }
}

fn as_done(cmd: Cmd) -> Done {
    fn e<T>() -> R<T> {
        Err(Fail::Store(StoreError::Unavailable("not applied".into())))
    }
    match cmd {
        Cmd::Accept(_, _, r) => Done::Accept(r, e()),
        Cmd::Write(_, reply) => Done::Unit(reply, e()),
        Cmd::Pending { reply, .. } => Done::Items(reply, e()),
        Cmd::QueueReceipt { reply, .. }
        | Cmd::Release { reply, .. }
        | Cmd::Ack { reply, .. }
        | Cmd::Expire { reply, .. } => Done::Count(reply, e()),
    }
}

/// Runs `f` inside a savepoint so one failing request does not undo the group.
fn in_savepoint<T>(tx: &Transaction<'_>, f: impl FnOnce(&Transaction<'_>) -> R<T>) -> R<T> {
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
    counts: &mut Counts,
    quota: u64,
    announced: &mut Vec<(Key, Arc<Item>)>,
    hub: &Hub,
) -> Done {
    match cmd {
        Cmd::Accept(env, how, reply) => {
            let mut local = Vec::new();
            let mut c = CountsTx::new(counts);
            let r = in_savepoint(tx, |tx| {
                let mut w = Put {
                    tx,
                    counts: &mut c,
                    quota,
                    announced: &mut local,
                    hub,
                };
                match &how {
                    How::Queue => accept(&mut w, &env, None),
                    How::Hold(h) => accept(&mut w, &env, Some(h)),
                    How::Escalate(esc) => escalate(&mut w, &env, esc),
                    How::FollowUp { of, stop } => follow_up(&mut w, &env, of, *stop),
                }
            });
            if r.is_ok() {
                c.keep();
                announced.append(&mut local);
            }
            Done::Accept(reply, r)
        }
        Cmd::QueueReceipt {
            to,
            from,
            receipt,
            now_ms,
            expires_at_ms,
            cancel,
            reply,
        } => {
            let mut local = Vec::new();
            let mut c = CountsTx::new(counts);
            let r = in_savepoint(tx, |tx| {
                check_room(&c, &to, &from, quota)?;
                tx.prepare_cached(
                    "INSERT INTO queue(recipient, kind, payload, peer, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    to.as_slice(),
                    Kind::Receipt as i64,
                    receipt,
                    from.as_slice(),
                    expires_at_ms as i64
                ])?;
                let seq = tx.last_insert_rowid() as u64;
                c.add(to, from, 1);
                local.push((to, Arc::new(Item::Receipt { seq, from, receipt })));
                match cancel {
                    Some(m) => cancel_held(tx, &to, &m, CancelBy::Signer(&from), now_ms, &mut c),
                    None => Ok(0),
                }
            });
            if r.is_ok() {
                c.keep();
                // Announced only if committed (a failed cancel undoes the receipt too).
                announced.append(&mut local);
            }
            Done::Count(reply, r)
        }
        Cmd::Release { now_ms, reply } => {
            let mut local = Vec::new();
            let r = in_savepoint(tx, |tx| release(tx, None, now_ms, &mut local, hub));
            if r.is_ok() {
                announced.append(&mut local);
            }
            Done::Count(reply, r)
        }
        Cmd::Pending {
            recipient,
            after_seq,
            limit,
            now_ms,
            reply,
        } => {
            // Due held items of this recipient join its queue first (and are announced to
            // its other watchers), so a reader never waits for the release tick.
            let mut local = Vec::new();
            let r = in_savepoint(tx, |tx| {
                release(tx, Some(&recipient), now_ms, &mut local, hub)?;
                pending(tx, &recipient, after_seq, limit, now_ms)
            });
            if r.is_ok() {
                announced.append(&mut local);
            }
            Done::Items(reply, r)
        }
        Cmd::Ack { recipient, seqs, reply } => {
            let mut c = CountsTx::new(counts);
            let r = in_savepoint(tx, |tx| {
                let mut n = 0;
                // One statement per item: delete it and learn its envelope and sender.
                let mut delete = tx.prepare_cached(
                    "DELETE FROM queue WHERE recipient = ?1 AND seq = ?2 AND state = 0 RETURNING envelope_id, peer",
                )?;
                // Once every recipient has acknowledged an envelope, its ciphertext is dropped;
                // the row stays (id and hash) so a retried send is still recognised.
                let mut drop_bytes = tx.prepare_cached(
                    "UPDATE envelopes SET bytes = x'' WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue WHERE envelope_id = ?1)",
                )?;
                for s in seqs {
                    let row: Option<(Option<i64>, Option<Vec<u8>>)> = delete
                        .query_row(params![recipient.as_slice(), s as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    if let Some((envelope, peer)) = row {
                        n += 1;
                        c.add(recipient, to_key(&peer.unwrap_or_default()), -1);
                        if let Some(id) = envelope {
                            drop_bytes.execute([id])?;
                        }
                    }
                }
                Ok(n)
            });
            if r.is_ok() {
                c.keep();
            }
            Done::Count(reply, r)
        }
        Cmd::Expire { now_ms, reply } => {
            let mut local = Vec::new();
            let mut c = CountsTx::new(counts);
            let r = in_savepoint(tx, |tx| expire(tx, now_ms, &mut c, &mut local));
            if r.is_ok() {
                c.keep();
                announced.append(&mut local);
            }
            Done::Count(reply, r)
        }
        Cmd::Write(f, reply) => Done::Unit(reply, in_savepoint(tx, f)),
    }
}

/// Queue-size changes made inside one savepoint, applied only if it is released. Summed per
/// key, so a write of many rows (an alert's steps) checks each in constant time.
struct CountsTx<'a> {
    counts: &'a mut Counts,
    delta: HashMap<(Key, Key), i64>,
}

impl<'a> CountsTx<'a> {
    fn new(counts: &'a mut Counts) -> Self {
        CountsTx {
            counts,
            delta: HashMap::new(),
        }
    }
    fn get(&self, k: &(Key, Key)) -> u64 {
        let base = self.counts.get(k).copied().unwrap_or(0) as i64;
        (base + self.delta.get(k).copied().unwrap_or(0)).max(0) as u64
    }
    /// One more (or fewer) item of `sender` for `recipient`.
    fn add(&mut self, recipient: Key, sender: Key, n: i64) {
        *self.delta.entry((recipient, ALL)).or_default() += n;
        *self.delta.entry((recipient, sender)).or_default() += n;
    }
    fn keep(self) {
        for (k, n) in self.delta {
            let c = self.counts.entry(k).or_default();
            *c = (*c as i64 + n).max(0) as u64;
            if *c == 0 {
                self.counts.remove(&k);
            }
        }
    }
}

/// Room for one more item from `sender` in `recipient`'s queue: under the queue's quota and
/// under the sender's share of it.
fn check_room(c: &CountsTx<'_>, recipient: &Key, sender: &Key, quota: u64) -> R<()> {
    if c.get(&(*recipient, ALL)) >= quota {
        return Err(StoreError::Quota(Quota::Queue(*recipient)).into());
    }
    if c.get(&(*recipient, *sender)) >= sender_quota(quota) {
        return Err(StoreError::Quota(Quota::QueueShare(*recipient)).into());
    }
    Ok(())
}

/// What a write that stores an envelope works with.
struct Put<'a, 'c, 't> {
    tx: &'a Transaction<'t>,
    counts: &'a mut CountsTx<'c>,
    quota: u64,
    announced: &'a mut Vec<(Key, Arc<Item>)>,
    hub: &'a Hub,
}

/// The answer to a retry: the first acceptance if `(sender, message_id)` was stored with
/// this hash, `Conflict::IdReused` with another.
fn duplicate(tx: &Transaction<'_>, env: &NewEnvelope) -> R<Option<Accepted>> {
    let existing: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT stored_at, envelope_hash FROM envelopes WHERE sender = ?1 AND message_id = ?2")?
        .query_row(params![env.sender.as_slice(), env.message_id.as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match existing {
        None => Ok(None),
        Some((_, hash)) if hash != env.envelope_hash => Err(StoreError::Conflict(Conflict::IdReused).into()),
        Some((stored_at, _)) => Ok(Some(Accepted {
            stored_at_ms: stored_at as u64,
            duplicate: true,
        })),
    }
}

fn insert_envelope(tx: &Transaction<'_>, env: &NewEnvelope) -> R<i64> {
    tx.prepare_cached("INSERT INTO envelopes(sender, message_id, envelope_hash, bytes, stored_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![
            env.sender.as_slice(),
            env.message_id.as_slice(),
            env.envelope_hash.as_slice(),
            &env.bytes[..],
            env.now_ms as i64,
            env.expires_at_ms as i64
        ])?;
    Ok(tx.last_insert_rowid())
}

/// One queue row of envelope `envelope_id` for `recipient`, queued or (with `held_until`)
/// held, after checking its room; returns its seq.
fn queue_row(
    w: &mut Put<'_, '_, '_>,
    env: &NewEnvelope,
    envelope_id: i64,
    recipient: &Key,
    held_until: Option<u64>,
) -> R<u64> {
    check_room(w.counts, recipient, &env.sender, w.quota)?;
    let (state, not_before) = match held_until {
        Some(t) => (HELD, t),
        None => (QUEUED, 0),
    };
    w.tx.prepare_cached(
        "INSERT INTO queue(recipient, kind, envelope_id, peer, message_id, state, not_before, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        recipient.as_slice(),
        Kind::Envelope as i64,
        envelope_id,
        env.sender.as_slice(),
        env.message_id.as_slice(),
        state,
        not_before as i64,
        env.expires_at_ms as i64
    ])?;
    w.counts.add(*recipient, env.sender, 1);
    Ok(w.tx.last_insert_rowid() as u64)
}

/// The cancel rule of held row `seq`.
fn insert_hold(tx: &Transaction<'_>, seq: u64, cancel_id: &MessageId, signers: &[Key]) -> R<()> {
    tx.prepare_cached("INSERT INTO holds(seq, cancel_id, signers) VALUES (?1, ?2, ?3)")?
        .execute(params![seq as i64, cancel_id.as_slice(), signers.concat()])?;
    Ok(())
}

/// Hands a queued row to the recipient's live watchers, if it has any.
fn announce(w: &mut Put<'_, '_, '_>, recipient: &Key, env: &NewEnvelope, seq: u64, release: Option<Release>) {
    if w.hub.is_watched(recipient) {
        w.announced.push((
            *recipient,
            Arc::new(Item::Envelope {
                seq,
                envelope: env.bytes.clone(),
                stored_at_ms: env.now_ms,
                envelope_hash: env.envelope_hash,
                release,
            }),
        ));
    }
}

fn accept(w: &mut Put<'_, '_, '_>, env: &NewEnvelope, hold: Option<&Hold>) -> R<Accepted> {
    if let Some(a) = duplicate(w.tx, env)? {
        return Ok(a);
    }
    for r in &env.recipients {
        check_room(w.counts, r, &env.sender, w.quota)?;
    }
    let id = insert_envelope(w.tx, env)?;
    // A hold already due is queued as it stands (its cancel rule could no longer apply).
    let hold = hold.filter(|h| h.not_before_ms > env.now_ms);
    for r in &env.recipients {
        let seq = queue_row(w, env, id, r, hold.map(|h| h.not_before_ms))?;
        match hold {
            Some(h) => insert_hold(w.tx, seq, &h.cancel_message_id, &h.cancel_signers)?,
            None => announce(w, r, env, seq, None),
        }
    }
    Ok(Accepted {
        stored_at_ms: env.now_ms,
        duplicate: false,
    })
}

/// An alert and its steps: those due now queued (and recorded released), the rest held
/// with their cancel rules. A retry must bring the same plan.
fn escalate(w: &mut Put<'_, '_, '_>, env: &NewEnvelope, esc: &NewEscalation) -> R<Accepted> {
    if let Some(a) = duplicate(w.tx, env)? {
        let plan: Option<Vec<u8>> =
            w.tx.prepare_cached("SELECT plan FROM escalations WHERE sender = ?1 AND message_id = ?2")?
                .query_row(params![env.sender.as_slice(), env.message_id.as_slice()], |r| r.get(0))
                .optional()?;
        return match plan {
            Some(p) if p == esc.plan => Ok(a),
            _ => Err(StoreError::Conflict(Conflict::IdReused).into()),
        };
    }
    let id = insert_envelope(w.tx, env)?;
    w.tx.prepare_cached(
        "INSERT INTO escalations(sender, message_id, plan, accepted_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        env.sender.as_slice(),
        env.message_id.as_slice(),
        esc.plan,
        env.now_ms as i64,
        env.expires_at_ms as i64
    ])?;
    for step in &esc.steps {
        let now = step.due_ms <= env.now_ms;
        let seq = queue_row(w, env, id, &step.recipient, (!now).then_some(step.due_ms))?;
        w.tx.prepare_cached(
            "INSERT INTO escalation_steps(sender, message_id, recipient, rank, repeat, due, released, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            env.sender.as_slice(),
            env.message_id.as_slice(),
            step.recipient.as_slice(),
            step.rank as i64,
            step.repeat as i64,
            step.due_ms as i64,
            now.then_some(env.now_ms as i64),
            seq as i64
        ])?;
        if now {
            let release = Release {
                due_ms: step.due_ms,
                released_ms: env.now_ms,
                rank: step.rank,
                repeat: step.repeat,
            };
            announce(w, &step.recipient, env, seq, Some(release));
        } else {
            insert_hold(w.tx, seq, &env.message_id, &step.cancel_signers)?;
        }
    }
    Ok(Accepted {
        stored_at_ms: env.now_ms,
        duplicate: false,
    })
}

/// Where a follow-up goes for one recipient of the alert it follows.
enum FollowTo {
    /// It was released the alert: now.
    Now,
    /// Its steps are held: with the earliest, cancelled by the same rule.
    Held(u64, Vec<Key>),
    /// It will never get the alert (its state acknowledged, or the sender stopped).
    Nothing,
}

fn follow_up(w: &mut Put<'_, '_, '_>, env: &NewEnvelope, of: &MessageId, stop: bool) -> R<Accepted> {
    if let Some(a) = duplicate(w.tx, env)? {
        return Ok(a);
    }
    let known: Option<i64> =
        w.tx.prepare_cached("SELECT 1 FROM escalations WHERE sender = ?1 AND message_id = ?2")?
            .query_row(params![env.sender.as_slice(), of.as_slice()], |r| r.get(0))
            .optional()?;
    if known.is_none() {
        return Err(StoreError::Conflict(Conflict::UnknownAlert).into());
    }
    let mut plan = Vec::with_capacity(env.recipients.len());
    for r in &env.recipients {
        // (released, due, signers of a step still held), earliest first.
        type Row = (Option<i64>, i64, Option<Vec<u8>>);
        let steps: Vec<Row> = {
            let mut st = w.tx.prepare_cached(
                "SELECT s.released, s.due, h.signers FROM escalation_steps s
                 LEFT JOIN holds h ON h.seq = s.seq AND s.released IS NULL AND s.cancelled IS NULL
                 WHERE s.sender = ?1 AND s.message_id = ?2 AND s.recipient = ?3 ORDER BY s.due, s.rowid",
            )?;
            let rows = st.query_map(params![env.sender.as_slice(), of.as_slice(), r.as_slice()], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        if steps.is_empty() {
            return Err(StoreError::Conflict(Conflict::NotAlerted(*r)).into());
        }
        let to = if steps.iter().any(|(released, _, _)| released.is_some()) {
            FollowTo::Now
        } else {
            match steps.into_iter().find_map(|(_, due, signers)| Some((due, signers?))) {
                Some((due, signers)) if !stop => {
                    FollowTo::Held(due as u64, signers.chunks_exact(32).map(to_key).collect())
                }
                _ => FollowTo::Nothing,
            }
        };
        plan.push((*r, to));
    }
    // A stop drops what is held first (which frees the sender's room in those queues).
    if stop {
        cancel_held(w.tx, &env.sender, of, CancelBy::Sender, env.now_ms, w.counts)?;
    }
    let id = insert_envelope(w.tx, env)?;
    let mut rows = 0;
    for (r, to) in &plan {
        match to {
            FollowTo::Now => {
                let seq = queue_row(w, env, id, r, None)?;
                announce(w, r, env, seq, None);
            }
            // Held even if overdue, so it is released after the step it goes with (release
            // order is due time, then seq).
            FollowTo::Held(due, signers) => {
                let seq = queue_row(w, env, id, r, Some(*due))?;
                insert_hold(w.tx, seq, of, signers)?;
            }
            FollowTo::Nothing => continue,
        }
        rows += 1;
    }
    if rows == 0 {
        // Kept (id and hash) so a retry is recognised; the ciphertext is for nobody.
        w.tx.prepare_cached("UPDATE envelopes SET bytes = x'' WHERE id = ?1")?
            .execute([id])?;
    }
    Ok(Accepted {
        stored_at_ms: env.now_ms,
        duplicate: false,
    })
}

fn pending(tx: &Transaction<'_>, recipient: &Key, after_seq: u64, limit: u32, now_ms: u64) -> R<Vec<Item>> {
    let mut stmt = tx.prepare_cached(
        "SELECT q.seq, q.kind, e.bytes, q.payload, q.peer, q.message_id, e.stored_at, e.envelope_hash,
                s.due, s.released, s.rank, s.repeat
         FROM queue q LEFT JOIN envelopes e ON e.id = q.envelope_id LEFT JOIN escalation_steps s ON s.seq = q.seq
         WHERE q.recipient = ?1 AND q.seq > ?2 AND q.state = 0 AND q.not_before <= ?3 ORDER BY q.seq LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![recipient.as_slice(), after_seq as i64, now_ms as i64, limit as i64],
        |r| {
            let seq = r.get::<_, i64>(0)? as u64;
            let kind = r.get::<_, i64>(1)?;
            Ok(if kind == Kind::Envelope as i64 {
                let release = match (r.get::<_, Option<i64>>(8)?, r.get::<_, Option<i64>>(9)?) {
                    (Some(due), Some(released)) => Some(Release {
                        due_ms: due as u64,
                        released_ms: released as u64,
                        rank: r.get::<_, i64>(10)? as u8,
                        repeat: r.get::<_, i64>(11)? as u8,
                    }),
                    _ => None,
                };
                Item::Envelope {
                    seq,
                    envelope: r.get::<_, Option<Vec<u8>>>(2)?.unwrap_or_default().into(),
                    stored_at_ms: r.get::<_, Option<i64>>(6)?.unwrap_or_default() as u64,
                    envelope_hash: to_key(&r.get::<_, Option<Vec<u8>>>(7)?.unwrap_or_default()),
                    release,
                }
            } else if kind == Kind::Receipt as i64 {
                Item::Receipt {
                    seq,
                    from: to_key(&r.get::<_, Vec<u8>>(4)?),
                    receipt: r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                }
            } else {
                Item::Expired {
                    seq,
                    message_id: to_id(&r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default()),
                    recipient: to_key(&r.get::<_, Vec<u8>>(4)?),
                }
            })
        },
    )?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for row in rows {
        let item = row?;
        if let Item::Envelope { envelope, .. } = &item {
            bytes += envelope.len();
        }
        out.push(item);
        if bytes >= super::PAGE_BYTES {
            break;
        }
    }
    Ok(out)
}

fn expire(
    tx: &Transaction<'_>,
    now_ms: u64,
    counts: &mut CountsTx<'_>,
    announced: &mut Vec<(Key, Arc<Item>)>,
) -> R<u64> {
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
    // One notice per (sender, message, recipient): an alert's steps (repeats) are several
    // rows of one recipient.
    let mut told = std::collections::HashSet::new();
    for (seq, recipient, kind, peer, mid) in &expired {
        tx.execute("DELETE FROM queue WHERE seq = ?1", [seq])?;
        tx.execute("DELETE FROM holds WHERE seq = ?1", [seq])?;
        let rk = to_key(recipient);
        counts.add(rk, to_key(peer.as_deref().unwrap_or_default()), -1);
        if *kind == Kind::Envelope as i64 {
            if let (Some(sender), Some(mid)) = (peer, mid) {
                if !told.insert((sender.clone(), mid.clone(), rk)) {
                    continue;
                }
                tx.execute(
                    "INSERT INTO queue(recipient, kind, peer, message_id, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![sender, Kind::Expired as i64, recipient, mid, notice_ttl as i64],
                )?;
                let nseq = tx.last_insert_rowid() as u64;
                let sk = to_key(sender);
                counts.add(sk, rk, 1);
                announced.push((
                    sk,
                    Arc::new(Item::Expired {
                        seq: nseq,
                        message_id: to_id(mid),
                        recipient: rk,
                    }),
                ));
            }
        }
    }
    tx.execute("DELETE FROM envelopes WHERE expires_at <= ?1 AND id NOT IN (SELECT envelope_id FROM queue WHERE envelope_id IS NOT NULL)", [now_ms as i64])?;
    // Escalation records go with their alert envelope (TTL after the last step).
    let gone: Vec<(Vec<u8>, Vec<u8>)> = {
        let mut st = tx.prepare_cached("SELECT sender, message_id FROM escalations WHERE expires_at <= ?1")?;
        let rows = st.query_map([now_ms as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (sender, mid) in &gone {
        tx.prepare_cached("DELETE FROM escalation_steps WHERE sender = ?1 AND message_id = ?2")?
            .execute(params![sender, mid])?;
        tx.prepare_cached("DELETE FROM escalations WHERE sender = ?1 AND message_id = ?2")?
            .execute(params![sender, mid])?;
    }
    Ok(expired.len() as u64)
}

/// Moves held items due at `now_ms` (of `recipient` only, if given) into the queue: each
/// becomes a new row with a fresh, higher seq — so a watcher that has passed the held row's
/// seq still takes it — and is announced if watched. An escalation step is recorded
/// released at `now_ms` in the same commit, keeping its due time. Queue sizes do not change.
fn release(
    tx: &Transaction<'_>,
    recipient: Option<&Key>,
    now_ms: u64,
    announced: &mut Vec<(Key, Arc<Item>)>,
    hub: &Hub,
) -> R<u64> {
    let due: Vec<(i64, Vec<u8>, Option<i64>)> = match recipient {
        None => {
            let mut st = tx.prepare_cached(
                "SELECT seq, recipient, envelope_id FROM queue WHERE state = 1 AND not_before <= ?1
                 ORDER BY not_before, seq",
            )?;
            let rows = st.query_map([now_ms as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        }
        Some(k) => {
            let mut st = tx.prepare_cached(
                "SELECT seq, recipient, envelope_id FROM queue WHERE recipient = ?1 AND state = 1 AND not_before <= ?2
                 ORDER BY not_before, seq",
            )?;
            let rows = st.query_map(params![k.as_slice(), now_ms as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<Result<_, _>>()?
        }
    };
    let mut copy = tx.prepare_cached(
        "INSERT INTO queue(recipient, kind, envelope_id, peer, message_id, state, not_before, expires_at)
         SELECT recipient, kind, envelope_id, peer, message_id, 0, not_before, expires_at FROM queue WHERE seq = ?1",
    )?;
    let mut drop_row = tx.prepare_cached("DELETE FROM queue WHERE seq = ?1")?;
    let mut drop_hold = tx.prepare_cached("DELETE FROM holds WHERE seq = ?1")?;
    let mut step = tx.prepare_cached(
        "UPDATE escalation_steps SET released = ?1, seq = ?2 WHERE seq = ?3 RETURNING due, rank, repeat",
    )?;
    let mut envelope = tx.prepare_cached("SELECT bytes, stored_at, envelope_hash FROM envelopes WHERE id = ?1")?;
    // An alert's steps due together share one envelope: read it once per release and hand
    // every watcher the same bytes (as at acceptance), not a copy per step.
    let mut envelopes: HashMap<i64, (Arc<[u8]>, u64, Key)> = HashMap::new();
    for (old, r, envelope_id) in &due {
        copy.execute([old])?;
        let seq = tx.last_insert_rowid();
        drop_row.execute([old])?;
        drop_hold.execute([old])?;
        let release = step
            .query_row(params![now_ms as i64, seq, old], |row| {
                Ok(Release {
                    due_ms: row.get::<_, i64>(0)? as u64,
                    released_ms: now_ms,
                    rank: row.get::<_, i64>(1)? as u8,
                    repeat: row.get::<_, i64>(2)? as u8,
                })
            })
            .optional()?;
        let r = to_key(r);
        if let (true, Some(eid)) = (hub.is_watched(&r), envelope_id) {
            let (bytes, stored_at, hash) = match envelopes.get(eid) {
                Some(e) => e.clone(),
                None => {
                    let (bytes, stored_at, hash): (Vec<u8>, i64, Vec<u8>) =
                        envelope.query_row([eid], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
                    let e = (Arc::<[u8]>::from(bytes), stored_at as u64, to_key(&hash));
                    envelopes.insert(*eid, e.clone());
                    e
                }
            };
            announced.push((
                r,
                Arc::new(Item::Envelope {
                    seq: seq as u64,
                    envelope: bytes,
                    stored_at_ms: stored_at,
                    envelope_hash: hash,
                    release,
                }),
            ));
        }
    }
    Ok(due.len() as u64)
}

/// Who drops held items.
enum CancelBy<'a> {
    /// An `Acknowledged` receipt from this key: only items whose cancel rule lists it.
    Signer(&'a Key),
    /// Their sender stopping the alert: every one.
    Sender,
}

/// Drops the unreleased held items `sender` sent whose cancel rule names `message_id` (and,
/// for a signer, lists it), whoever their recipient; records escalation steps so dropped as
/// cancelled at `now_ms` (by the signer, or by the sender). Returns how many.
fn cancel_held(
    tx: &Transaction<'_>,
    sender: &Key,
    message_id: &MessageId,
    by: CancelBy<'_>,
    now_ms: u64,
    counts: &mut CountsTx<'_>,
) -> R<u64> {
    type Row = (i64, Vec<u8>, Option<i64>, Vec<u8>);
    let held: Vec<Row> = {
        let mut st = tx.prepare_cached(
            "SELECT h.seq, h.signers, q.envelope_id, q.recipient FROM holds h JOIN queue q ON q.seq = h.seq
             WHERE h.cancel_id = ?1 AND q.peer = ?2 AND q.state = 1",
        )?;
        let rows = st.query_map(params![message_id.as_slice(), sender.as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let cancelled_by = match by {
        CancelBy::Signer(k) => *k,
        CancelBy::Sender => *sender,
    };
    let mut envelopes = Vec::new();
    let mut n = 0;
    for (seq, signers, envelope, recipient) in held {
        if let CancelBy::Signer(k) = by {
            if !signers.chunks_exact(32).any(|s| s == k.as_slice()) {
                continue;
            }
        }
        tx.prepare_cached("DELETE FROM queue WHERE seq = ?1")?.execute([seq])?;
        tx.prepare_cached("DELETE FROM holds WHERE seq = ?1")?.execute([seq])?;
        tx.prepare_cached("UPDATE escalation_steps SET cancelled = ?1, cancelled_by = ?2 WHERE seq = ?3")?
            .execute(params![now_ms as i64, cancelled_by.as_slice(), seq])?;
        counts.add(to_key(&recipient), *sender, -1);
        if let Some(id) = envelope {
            if !envelopes.contains(&id) {
                envelopes.push(id);
            }
        }
        n += 1;
    }
    for id in envelopes {
        // The row stays (id and hash) so a retried hold is still recognised.
        tx.prepare_cached(
            "UPDATE envelopes SET bytes = x'' WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue WHERE envelope_id = ?1)",
        )?
        .execute([id])?;
    }
    Ok(n)
}
