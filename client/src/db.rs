//! The local store (SQLite): contacts as first seen, messages in and out, receipts. Every
//! SQL statement of the client is in this file.
//!
//! A message id is stored once, which is what makes delivery exactly-once for the user
//! although the relay delivers at least once.
//!
//! **Nothing readable at rest.** A message's subject, body and attachment list are sealed
//! with XChaCha20-Poly1305 under a key derived from the unlocked identity (HKDF-SHA256 of
//! the identity's signing seed, info `pocnet/v1/client-store`), with the row's identity
//! (direction, peer key, message id) and the column name as associated data, so a sealed
//! value cannot be moved to another row or column. `PRAGMA user_version` is the schema
//! version: 0 is the plaintext store of earlier releases, migrated in place on first open.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use pocnet_crypto::{ContentType, Identity, IdentityKey, ReceiptKind, Tlp};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::types::{receipt_kind_code, receipt_kind_from_code, Direction, EnvelopeHash, MessageId, Peer};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 6;

/// HKDF info (and AAD prefix) for the store key.
const STORE_LABEL: &[u8] = b"pocnet/v1/client-store";
/// Version byte in front of every sealed value.
const SEALED_V1: u8 = 1;
const NONCE_LEN: usize = 24;

/// The key sealing message contents in the store.
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl StoreKey {
    /// Derives the store key from the unlocked identity.
    pub fn derive(identity: &Identity) -> StoreKey {
        let seed = identity.signing_seed();
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, seed.as_ref());
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand(STORE_LABEL, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        StoreKey(key)
    }

    fn aad(column: &str, row: &RowId) -> Vec<u8> {
        let mut a = Vec::with_capacity(STORE_LABEL.len() + column.len() + 56);
        a.extend_from_slice(STORE_LABEL);
        a.push(0);
        a.extend_from_slice(column.as_bytes());
        a.push(0);
        a.extend_from_slice(row.direction.as_str().as_bytes());
        a.push(0);
        a.extend_from_slice(&row.peer);
        a.extend_from_slice(&row.message_id.0);
        a
    }

    /// Seals `plaintext` for `column` of `row`.
    fn seal(&self, column: &str, row: &RowId, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        pocnet_crypto::rand_core::Rng::fill_bytes(&mut pocnet_crypto::os_rng(), &mut nonce);
        let aead = XChaCha20Poly1305::new(&(*self.0).into());
        let ct = aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &Self::aad(column, row),
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens what [`StoreKey::seal`] sealed for the same column and row.
    fn open(&self, column: &str, row: &RowId, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let damaged = || Error::DamagedStore(format!("{column} of message {} does not decrypt", row.message_id));
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEALED_V1 {
            return Err(damaged());
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().map_err(|_| damaged())?;
        let aead = XChaCha20Poly1305::new(&(*self.0).into());
        aead.decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &sealed[1 + NONCE_LEN..],
                aad: &Self::aad(column, row),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| damaged())
    }

    fn open_string(&self, column: &str, row: &RowId, sealed: &[u8]) -> Result<String> {
        let p = self.open(column, row, sealed)?;
        String::from_utf8(p.to_vec())
            .map_err(|_| Error::DamagedStore(format!("{column} of message {} is not text", row.message_id)))
    }
}

/// What identifies a message row (its primary key).
#[derive(Clone, Copy, Debug)]
struct RowId {
    direction: Direction,
    peer: [u8; 32],
    message_id: MessageId,
}

/// The opened store.
pub struct Store {
    conn: Connection,
    key: StoreKey,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS contacts(
        key BLOB PRIMARY KEY, handle TEXT NOT NULL, name TEXT NOT NULL, public_identity BLOB NOT NULL,
        first_seen INTEGER NOT NULL, verified_at INTEGER);
     CREATE TABLE IF NOT EXISTS messages(
        message_id BLOB NOT NULL, direction TEXT NOT NULL, peer BLOB NOT NULL, peer_handle TEXT NOT NULL,
        recipient_keys TEXT NOT NULL DEFAULT '[]',
        recipients TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL, tlp TEXT NOT NULL,
        exercise INTEGER NOT NULL, content_type INTEGER NOT NULL, created_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL, envelope_hash BLOB NOT NULL, read_at INTEGER,
        relay_stored_at INTEGER, attachments TEXT NOT NULL DEFAULT '[]', incident TEXT,
        PRIMARY KEY(direction, peer, message_id));
     CREATE TABLE IF NOT EXISTS receipts(
        message_id BLOB NOT NULL, signer BLOB NOT NULL, kind INTEGER NOT NULL, at INTEGER NOT NULL,
        bytes BLOB NOT NULL, PRIMARY KEY(message_id, signer, kind));
     CREATE TABLE IF NOT EXISTS expired(message_id BLOB NOT NULL, recipient BLOB NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY(message_id, recipient));
     CREATE TABLE IF NOT EXISTS log_leaves(idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL);
     CREATE TABLE IF NOT EXISTS log_checkpoint(id INTEGER PRIMARY KEY CHECK (id = 1), note TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS rounds(round_id BLOB PRIMARY KEY, state BLOB NOT NULL, started INTEGER NOT NULL);
     CREATE TABLE IF NOT EXISTS round_inbox(round_id BLOB PRIMARY KEY, pending BLOB NOT NULL);
     CREATE TABLE IF NOT EXISTS forks(id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
        how TEXT NOT NULL, ours TEXT NOT NULL, theirs TEXT NOT NULL, UNIQUE(ours, theirs));
     CREATE TABLE IF NOT EXISTS alerts(message_id BLOB NOT NULL, direction TEXT NOT NULL, peer BLOB NOT NULL,
        body BLOB NOT NULL, record TEXT NOT NULL, PRIMARY KEY(direction, peer, message_id));
     CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, to_key BLOB NOT NULL,
        receipt BLOB NOT NULL UNIQUE);
     CREATE TABLE IF NOT EXISTS policy_files(peer BLOB NOT NULL, message_id BLOB NOT NULL, record BLOB NOT NULL,
        received_at INTEGER NOT NULL, PRIMARY KEY(peer, message_id));";

/// A policy document this profile holds (inside the sealed `policy` column of
/// `policy_files`): the national authority's signed statement and the attachment envelope
/// kept in the profile, still encrypted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyFileRecord {
    /// The exact signed `PolicyPublish` statement (hex).
    pub statement: String,
    /// The kept attachment envelope's name (its envelope hash, hex).
    pub envelope: String,
}

/// A held policy document with who sent it.
#[derive(Clone, Debug)]
pub struct HeldPolicy {
    /// The national authority key that sent (and signed) it.
    pub sender: IdentityKey,
    /// The record.
    pub record: PolicyFileRecord,
    /// When it arrived (Unix ms).
    pub received_at: u64,
}

/// An attachment as the store records it (inside the sealed `attachments` column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    /// File name (as the sender gave it: other-party text).
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Where it is.
    pub state: AttachmentState,
}

/// Where an attachment is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum AttachmentState {
    /// We sent it from this path.
    Sent {
        /// The path it was read from.
        path: String,
    },
    /// Received, verified, and kept in the profile as its (encrypted) envelope; saved in
    /// plaintext only where the user asks (`pocnet read ID --save DIR`).
    Kept {
        /// The attachment envelope's hash (hex): the file `attachments/<hash>.env`.
        envelope: String,
    },
    /// Not available (withheld by the relay, or failed verification).
    Missing {
        /// Why.
        reason: String,
    },
    /// Saved in plaintext inside the profile by an earlier release, then sealed to our own
    /// key on the first open by this one (the file `attachments/<hash>.env`, signed by us).
    Resealed {
        /// The envelope's hash (hex).
        envelope: String,
    },
    /// An entry written by an earlier release (a saved path or a note).
    Legacy {
        /// What it said.
        text: String,
    },
}

/// A message as stored, decrypted.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    /// The id.
    pub id: MessageId,
    /// In or out.
    pub direction: Direction,
    /// The sender's key (in) or the first recipient's key (out).
    pub peer_key: IdentityKey,
    /// How the sender (in) or the recipients (out) are shown.
    pub peer: Peer,
    /// Recipient handles.
    pub recipients: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// TLP marking.
    pub tlp: Tlp,
    /// Drill traffic.
    pub exercise: bool,
    /// Content type.
    pub content_type: ContentType,
    /// Sender's creation time (Unix ms).
    pub created_at: u64,
    /// When this device stored it (Unix ms).
    pub received_at: u64,
    /// When a person here read it.
    pub read_at: Option<u64>,
    /// When the relay committed it, by its signed acceptance (sent messages).
    pub relay_stored_at: Option<u64>,
    /// The envelope hash receipts refer to.
    pub envelope_hash: EnvelopeHash,
    /// Attachments.
    pub attachments: Vec<AttachmentRecord>,
    /// Incident id from the signed header.
    pub incident: Option<String>,
}

/// A receipt waiting in the outbox: row id, addressee, receipt bytes.
pub type OutboxItem = (i64, [u8; 32], Vec<u8>);

/// A message to insert.
pub struct NewMessage<'a> {
    /// The id.
    pub id: MessageId,
    /// In or out.
    pub direction: Direction,
    /// Sender (in) or first recipient (out).
    pub peer_key: &'a IdentityKey,
    /// How the peer is shown.
    pub peer: &'a Peer,
    /// Recipient handles.
    pub recipients: &'a [String],
    /// Recipient keys, as the signed header lists them (compared byte for byte with a
    /// receipt's signer).
    pub recipient_keys: &'a [[u8; 32]],
    /// Subject.
    pub subject: &'a str,
    /// Body.
    pub body: &'a str,
    /// Marking.
    pub tlp: Tlp,
    /// Drill.
    pub exercise: bool,
    /// Content type.
    pub content_type: ContentType,
    /// Sender's creation time.
    pub created_at: u64,
    /// Stored here at.
    pub received_at: u64,
    /// Envelope hash.
    pub envelope_hash: EnvelopeHash,
    /// The relay's signed acceptance time (sent messages).
    pub relay_stored_at: Option<u64>,
    /// Attachments.
    pub attachments: &'a [AttachmentRecord],
    /// Incident id from the signed header.
    pub incident: Option<&'a str>,
}

const COLS: &str = "message_id, direction, peer, peer_handle, recipients, subject, body, tlp, exercise, content_type, \
                    created_at, received_at, read_at, relay_stored_at, envelope_hash, attachments, incident";

fn content_type_from(v: u8) -> ContentType {
    ContentType::from_u8(v).unwrap_or(ContentType::Message)
}

/// A contact as first seen.
#[derive(Clone, Debug)]
pub struct Contact {
    /// Its handle.
    pub handle: String,
    /// Its encoded public identity.
    pub public_identity: Vec<u8>,
    /// Whether a person verified it by voice.
    pub verified: bool,
}

fn key_from(v: Vec<u8>) -> Result<IdentityKey> {
    let b: [u8; 32] = v
        .as_slice()
        .try_into()
        .map_err(|_| Error::DamagedStore("a contact key has the wrong length".into()))?;
    IdentityKey::from_bytes(&b).map_err(|_| Error::DamagedStore("a contact key is not a valid key".into()))
}

impl Store {
    /// Opens (creating or migrating) the store at `path` with the key derived from `identity`.
    pub fn open(path: &Path, identity: &Identity) -> Result<Store> {
        let c = Connection::open(path)?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "FULL")?;
        // Deleted and overwritten content is zeroed, not left in free pages.
        c.pragma_update(None, "secure_delete", "ON")?;
        let store = Store {
            conn: c,
            key: StoreKey::derive(identity),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::DamagedStore(format!(
                "the store is schema version {version}, newer than this pocnet ({SCHEMA_VERSION}): upgrade pocnet"
            )));
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let had_messages: bool = self.conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'messages'",
            [],
            |r| r.get::<_, i64>(0),
        )? > 0;
        let tx = self.conn.unchecked_transaction()?;
        tx.execute_batch(SCHEMA)?;
        let has_incident: bool = tx.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('messages') WHERE name = 'incident'",
            [],
            |r| r.get::<_, i64>(0),
        )? > 0;
        if !has_incident {
            // Version 3 and before: no incident column (messages filed before it have none).
            tx.execute_batch("ALTER TABLE messages ADD COLUMN incident TEXT")?;
        }
        // Version 5 and before: listings and lookups scanned every message (the portal's
        // first page at 10,000 messages spent ~20 ms per scan; BENCHMARKS.md).
        let has_content_type: bool = tx.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('messages') WHERE name = 'content_type'",
            [],
            |r| r.get::<_, i64>(0),
        )? > 0;
        tx.execute_batch(
            "CREATE INDEX IF NOT EXISTS messages_by_time ON messages(direction, received_at);
             CREATE INDEX IF NOT EXISTS messages_by_id ON messages(message_id);",
        )?;
        if has_content_type {
            tx.execute_batch(
                "CREATE INDEX IF NOT EXISTS messages_by_type ON messages(direction, content_type, received_at);",
            )?;
        }
        if had_messages && version == 0 {
            // Version 0: subject, body and attachments in plaintext. Seal them in place.
            let mut rows = Vec::new();
            {
                let mut s = tx.prepare(
                    "SELECT direction, peer, message_id, subject, body, attachments, peer_handle FROM messages",
                )?;
                let mut q = s.query([])?;
                while let Some(r) = q.next()? {
                    let dir: String = r.get(0)?;
                    let peer: Vec<u8> = r.get(1)?;
                    let mid: Vec<u8> = r.get(2)?;
                    let (Some(direction), Ok(peer_arr), Some(message_id)) = (
                        Direction::parse(&dir),
                        <[u8; 32]>::try_from(peer.as_slice()),
                        MessageId::from_slice(&mid),
                    ) else {
                        return Err(Error::DamagedStore("a message row has a malformed key".into()));
                    };
                    let legacy: Vec<String> = serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default();
                    let atts: Vec<AttachmentRecord> = legacy
                        .into_iter()
                        .map(|text| AttachmentRecord {
                            name: Path::new(&text)
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                            size: 0,
                            state: AttachmentState::Legacy { text },
                        })
                        .collect();
                    let handle: String = r.get(6)?;
                    rows.push((
                        RowId {
                            direction,
                            peer: peer_arr,
                            message_id,
                        },
                        Zeroizing::new(r.get::<_, String>(3)?),
                        Zeroizing::new(r.get::<_, String>(4)?),
                        atts,
                        legacy_peer(&handle),
                    ));
                }
            }
            for (row, subject, body, atts, peer) in rows {
                tx.execute(
                    "UPDATE messages SET subject = ?1, body = ?2, attachments = ?3, peer_handle = ?4
                     WHERE direction = ?5 AND peer = ?6 AND message_id = ?7",
                    params![
                        self.key.seal("subject", &row, subject.as_bytes()),
                        self.key.seal("body", &row, body.as_bytes()),
                        self.key.seal("attachments", &row, &json(&atts)),
                        String::from_utf8(json(&peer)).unwrap_or_default(),
                        row.direction.as_str(),
                        row.peer.as_slice(),
                        row.message_id.0.as_slice()
                    ],
                )?;
            }
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        if had_messages && version == 0 {
            // Rewrite the file so no page of the plaintext version survives, then empty the WAL.
            self.conn.execute_batch("VACUUM")?;
            self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    fn message(&self, r: &rusqlite::Row<'_>) -> Result<StoredMessage> {
        let mid: Vec<u8> = r.get(0)?;
        let dir: String = r.get(1)?;
        let peer: Vec<u8> = r.get(2)?;
        let bad = |what: &str| Error::DamagedStore(format!("a message row has a malformed {what}"));
        let id = MessageId::from_slice(&mid).ok_or_else(|| bad("id"))?;
        let direction = Direction::parse(&dir).ok_or_else(|| bad("direction"))?;
        let peer_key: [u8; 32] = peer.as_slice().try_into().map_err(|_| bad("peer key"))?;
        let row = RowId {
            direction,
            peer: peer_key,
            message_id: id,
        };
        let handle: String = r.get(3)?;
        let recipients: String = r.get(4)?;
        let subject = self.key.open_string("subject", &row, &r.get::<_, Vec<u8>>(5)?)?;
        let body = self.key.open_string("body", &row, &r.get::<_, Vec<u8>>(6)?)?;
        let tlp: String = r.get(7)?;
        let hash: Vec<u8> = r.get(14)?;
        let atts = self.key.open("attachments", &row, &r.get::<_, Vec<u8>>(15)?)?;
        Ok(StoredMessage {
            id,
            direction,
            peer_key: IdentityKey::from_bytes(&peer_key).map_err(|_| bad("peer key"))?,
            peer: serde_json::from_str(&handle).unwrap_or_else(|_| legacy_peer(&handle)),
            recipients: serde_json::from_str(&recipients).unwrap_or_default(),
            subject,
            body,
            tlp: Tlp::parse(&tlp).ok_or_else(|| bad("TLP marking"))?,
            exercise: r.get(8)?,
            content_type: content_type_from(r.get(9)?),
            created_at: r.get::<_, i64>(10)? as u64,
            received_at: r.get::<_, i64>(11)? as u64,
            read_at: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
            relay_stored_at: r.get::<_, Option<i64>>(13)?.map(|v| v as u64),
            envelope_hash: EnvelopeHash::from_slice(&hash).ok_or_else(|| bad("envelope hash"))?,
            attachments: serde_json::from_slice(&atts).map_err(|_| bad("attachment list"))?,
            incident: r.get(16)?,
        })
    }

    fn messages(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<StoredMessage>> {
        let mut s = self.conn.prepare(sql)?;
        let mut q = s.query(p)?;
        let mut out = Vec::new();
        while let Some(r) = q.next()? {
            out.push(self.message(r)?);
        }
        Ok(out)
    }

    /// Messages of one direction, newest first.
    pub fn list(&self, direction: Direction) -> Result<Vec<StoredMessage>> {
        self.messages(
            &format!("SELECT {COLS} FROM messages WHERE direction = ?1 ORDER BY received_at DESC"),
            [direction.as_str()],
        )
    }

    /// One page of messages of one direction, newest first.
    pub fn list_page(&self, direction: Direction, limit: usize, offset: usize) -> Result<Vec<StoredMessage>> {
        self.messages(
            &format!(
                "SELECT {COLS} FROM messages WHERE direction = ?1 ORDER BY received_at DESC, rowid DESC LIMIT ?2 OFFSET ?3"
            ),
            params![direction.as_str(), limit as i64, offset as i64],
        )
    }

    /// How many messages of one direction the store holds.
    pub fn count(&self, direction: Direction) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM messages WHERE direction = ?1",
            [direction.as_str()],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Messages of one direction and content type, newest first.
    pub fn list_of(&self, direction: Direction, content_type: ContentType) -> Result<Vec<StoredMessage>> {
        self.messages(
            &format!(
                "SELECT {COLS} FROM messages WHERE direction = ?1 AND content_type = ?2 ORDER BY received_at DESC"
            ),
            params![direction.as_str(), content_type as u8],
        )
    }

    /// Finds one message by id prefix (hex); errors if none or several match.
    pub fn find(&self, prefix: &str) -> Result<StoredMessage> {
        let p = prefix.trim().to_ascii_lowercase();
        if p.is_empty() || p.len() > 32 || !p.chars().all(|ch| ch.is_ascii_hexdigit()) {
            return Err(Error::BadMessageId(prefix.to_string()));
        }
        let rows = match pocnet_crypto::from_hex(&p).filter(|b| b.len() == 16) {
            // A whole id (as links and scripts give it): one index lookup.
            Some(id) => self.messages(&format!("SELECT {COLS} FROM messages WHERE message_id = ?1"), [id])?,
            None => self.messages(
                &format!("SELECT {COLS} FROM messages WHERE hex(message_id) LIKE ?1 || '%'"),
                [p.to_ascii_uppercase()],
            )?,
        };
        let count = rows.len();
        match rows.into_iter().next() {
            None => Err(Error::UnknownMessage(p)),
            Some(r) if count == 1 => Ok(r),
            Some(_) => Err(Error::AmbiguousMessage { prefix: p, count }),
        }
    }

    /// Inserts a message unless its id is known; returns whether it was new.
    pub fn insert_message(&self, m: &NewMessage<'_>) -> Result<bool> {
        let row = RowId {
            direction: m.direction,
            peer: *m.peer_key.as_bytes(),
            message_id: m.id,
        };
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO messages(message_id, direction, peer, peer_handle, recipients, subject, body, tlp,
                exercise, content_type, created_at, received_at, envelope_hash, attachments, recipient_keys,
                relay_stored_at, incident)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                m.id.0.as_slice(),
                m.direction.as_str(),
                m.peer_key.as_bytes().as_slice(),
                String::from_utf8(json(m.peer)).unwrap_or_default(),
                String::from_utf8(json(&m.recipients)).unwrap_or_default(),
                self.key.seal("subject", &row, m.subject.as_bytes()),
                self.key.seal("body", &row, m.body.as_bytes()),
                m.tlp.label(),
                m.exercise,
                m.content_type as u8,
                m.created_at as i64,
                m.received_at as i64,
                m.envelope_hash.0.as_slice(),
                self.key.seal("attachments", &row, &json(&m.attachments)),
                String::from_utf8(json(
                    &m.recipient_keys
                        .iter()
                        .map(|k| pocnet_crypto::to_hex(k))
                        .collect::<Vec<_>>()
                ))
                .unwrap_or_default(),
                m.relay_stored_at.map(|v| v as i64),
                m.incident,
            ],
        )?;
        Ok(n == 1)
    }

    /// Replaces a message's attachment list.
    pub fn set_attachments(&self, m: &StoredMessage, attachments: &[AttachmentRecord]) -> Result<()> {
        let row = RowId {
            direction: m.direction,
            peer: *m.peer_key.as_bytes(),
            message_id: m.id,
        };
        self.conn.execute(
            "UPDATE messages SET attachments = ?1 WHERE direction = ?2 AND peer = ?3 AND message_id = ?4",
            params![
                self.key.seal("attachments", &row, &json(attachments)),
                m.direction.as_str(),
                m.peer_key.as_bytes().as_slice(),
                m.id.0.as_slice()
            ],
        )?;
        Ok(())
    }

    /// Whether a message from `peer` with this id is stored.
    pub fn has_message(&self, direction: Direction, peer: &IdentityKey, id: MessageId) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM messages WHERE direction = ?1 AND peer = ?2 AND message_id = ?3",
                params![direction.as_str(), peer.as_bytes().as_slice(), id.0.as_slice()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Marks a received message read; returns whether it was unread.
    pub fn mark_read(&self, m: &StoredMessage, now: u64) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE messages SET read_at = ?1 WHERE direction = ?2 AND peer = ?3 AND message_id = ?4 AND read_at IS NULL",
            params![
                now as i64,
                m.direction.as_str(),
                m.peer_key.as_bytes().as_slice(),
                m.id.0.as_slice()
            ],
        )? == 1)
    }

    /// Whether we sent `id`, with this envelope hash, to `recipient`.
    pub fn sent_to(&self, id: MessageId, hash: EnvelopeHash, recipient: &IdentityKey) -> Result<bool> {
        let keys: Option<String> = self
            .conn
            .query_row(
                "SELECT recipient_keys FROM messages WHERE direction = 'out' AND message_id = ?1 AND envelope_hash = ?2",
                params![id.0.as_slice(), hash.0.as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        let keys: Vec<String> = keys
            .map(|k| serde_json::from_str(&k).unwrap_or_default())
            .unwrap_or_default();
        Ok(keys.contains(&pocnet_crypto::to_hex(recipient.as_bytes())))
    }

    /// Records a verified receipt.
    pub fn insert_receipt(
        &self,
        id: MessageId,
        signer: &IdentityKey,
        kind: ReceiptKind,
        at: u64,
        bytes: &[u8],
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO receipts(message_id, signer, kind, at, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id.0.as_slice(),
                signer.as_bytes().as_slice(),
                receipt_kind_code(kind),
                at as i64,
                bytes
            ],
        )?;
        Ok(())
    }

    /// The strongest receipt `signer` gave for `id`: its kind and time.
    pub fn best_receipt(&self, id: MessageId, signer: &IdentityKey) -> Result<Option<(ReceiptKind, u64)>> {
        let mut s = self
            .conn
            .prepare("SELECT kind, at FROM receipts WHERE message_id = ?1 AND signer = ?2 ORDER BY kind DESC")?;
        let mut q = s.query(params![id.0.as_slice(), signer.as_bytes().as_slice()])?;
        while let Some(r) = q.next()? {
            if let Some(kind) = receipt_kind_from_code(r.get(0)?) {
                return Ok(Some((kind, r.get::<_, i64>(1)? as u64)));
            }
        }
        Ok(None)
    }

    /// Records that the relay expired `id` undelivered for `recipient`.
    pub fn insert_expired(&self, id: MessageId, recipient: &IdentityKey, now: u64) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO expired(message_id, recipient, at) VALUES (?1, ?2, ?3)",
            params![id.0.as_slice(), recipient.as_bytes().as_slice(), now as i64],
        )?;
        Ok(())
    }

    /// Whether the relay expired `id` for `recipient`.
    pub fn is_expired(&self, id: MessageId, recipient: &IdentityKey) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM expired WHERE message_id = ?1 AND recipient = ?2",
            params![id.0.as_slice(), recipient.as_bytes().as_slice()],
            |r| r.get::<_, i64>(0),
        )? > 0)
    }

    /// A contact as first seen.
    pub fn contact(&self, key: &IdentityKey) -> Result<Option<Contact>> {
        Ok(self
            .conn
            .query_row(
                "SELECT handle, public_identity, verified_at IS NOT NULL FROM contacts WHERE key = ?1",
                [key.as_bytes().as_slice()],
                |r| {
                    Ok(Contact {
                        handle: r.get(0)?,
                        public_identity: r.get(1)?,
                        verified: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// The key pinned for a handle: the first one seen, until a person accepts another.
    pub fn key_for_handle(&self, handle: &str) -> Result<Option<IdentityKey>> {
        self.conn
            .query_row(
                "SELECT key FROM contacts WHERE handle = ?1 ORDER BY first_seen ASC LIMIT 1",
                [handle],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()?
            .map(key_from)
            .transpose()
    }

    /// Pins `key` for `handle` after a voice check: forgets other keys for the handle and
    /// marks this one verified.
    pub fn repin(&self, key: &IdentityKey, handle: &str, name: &str, public_identity: &[u8], now: u64) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM contacts WHERE handle = ?1 AND key != ?2",
            params![handle, key.as_bytes().as_slice()],
        )?;
        self.remember(key, handle, name, public_identity, now)?;
        tx.execute(
            "UPDATE contacts SET verified_at = ?1 WHERE key = ?2",
            params![now as i64, key.as_bytes().as_slice()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records a contact (trust on first use); keeps the first record of a key.
    pub fn remember(
        &self,
        key: &IdentityKey,
        handle: &str,
        name: &str,
        public_identity: &[u8],
        now: u64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO contacts(key, handle, name, public_identity, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(key) DO UPDATE SET public_identity = excluded.public_identity",
            params![key.as_bytes().as_slice(), handle, name, public_identity, now as i64],
        )?;
        Ok(())
    }
}

/// A recorded directory fork: two signed views that cannot both be true.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForkRecord {
    /// When it was detected (Unix ms).
    pub at: u64,
    /// How it was detected.
    pub how: String,
    /// Our verified checkpoint (a signed note).
    pub ours: String,
    /// The other view: a signed checkpoint, or the signed envelope header that named it.
    pub theirs: String,
}

impl Store {
    /// Every stored directory log leaf, in order.
    pub fn log_leaves(&self) -> Result<Vec<Vec<u8>>> {
        let mut stmt = self.conn.prepare("SELECT leaf FROM log_leaves ORDER BY idx")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// The last verified checkpoint (a signed note with its cosignatures).
    pub fn log_checkpoint(&self) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT note FROM log_checkpoint WHERE id = 1", [], |r| r.get(0))
            .optional()?)
    }

    /// Stores newly verified leaves (from index `first`) and the checkpoint that covers
    /// them, in one transaction.
    pub fn log_save(&self, first: u64, leaves: &[Vec<u8>], note: &str) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM log_leaves WHERE idx >= ?1", [first as i64])?;
        for (i, leaf) in leaves.iter().enumerate() {
            tx.execute(
                "INSERT INTO log_leaves(idx, leaf) VALUES (?1, ?2)",
                params![(first + i as u64) as i64, leaf],
            )?;
        }
        tx.execute(
            "INSERT INTO log_checkpoint(id, note) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET note = excluded.note",
            [note],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Keeps fork evidence; `true` if it is new.
    pub fn record_fork(&self, how: &str, ours: &str, theirs: &str, now: u64) -> Result<bool> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO forks(at, how, ours, theirs) VALUES (?1, ?2, ?3, ?4)",
            params![now as i64, how, ours, theirs],
        )? > 0)
    }

    /// Every recorded fork, oldest first.
    pub fn forks(&self) -> Result<Vec<ForkRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, how, ours, theirs FROM forks ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(ForkRecord {
                at: r.get::<_, i64>(0)? as u64,
                how: r.get(1)?,
                ours: r.get(2)?,
                theirs: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Saves the Secretariat's record of a round (JSON; it holds no secret).
    pub fn round_save(&self, id: &[u8; 16], state: &crate::ops::rounds::RoundState, started: u64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO rounds(round_id, state, started) VALUES (?1, ?2, ?3)
             ON CONFLICT(round_id) DO UPDATE SET state = excluded.state",
            params![id.as_slice(), json(state), started as i64],
        )?;
        Ok(())
    }

    /// The Secretariat's record of a round.
    pub fn round_load(&self, id: &[u8; 16]) -> Result<Option<crate::ops::rounds::RoundState>> {
        let b: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT state FROM rounds WHERE round_id = ?1", [id.as_slice()], |r| {
                r.get(0)
            })
            .optional()?;
        b.map(|b| serde_json::from_slice(&b).map_err(|e| Error::DamagedStore(format!("round record: {e}"))))
            .transpose()
    }

    /// Every round this Secretariat started, newest first.
    pub fn rounds(&self) -> Result<Vec<([u8; 16], crate::ops::rounds::RoundState, u64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT round_id, state, started FROM rounds ORDER BY started DESC")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, state, at) = row?;
            let id: [u8; 16] = id
                .try_into()
                .map_err(|_| Error::DamagedStore("a round id has the wrong length".into()))?;
            let state =
                serde_json::from_slice(&state).map_err(|e| Error::DamagedStore(format!("round record: {e}")))?;
            out.push((id, state, at as u64));
        }
        Ok(out)
    }

    /// Records a challenge this POC received (or that it answered).
    pub fn round_pending_save(&self, p: &crate::ops::rounds::PendingChallenge) -> Result<()> {
        self.conn.execute(
            "INSERT INTO round_inbox(round_id, pending) VALUES (?1, ?2)
             ON CONFLICT(round_id) DO UPDATE SET pending = excluded.pending",
            params![p.round_id.as_slice(), json(p)],
        )?;
        Ok(())
    }

    /// Challenges this POC received.
    pub fn round_pending(&self) -> Result<Vec<crate::ops::rounds::PendingChallenge>> {
        let mut stmt = self.conn.prepare("SELECT pending FROM round_inbox")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for b in rows {
            out.push(serde_json::from_slice(&b?).map_err(|e| Error::DamagedStore(format!("round challenge: {e}")))?);
        }
        Ok(out)
    }

    /// The bytes of a receipt `signer` sent about message `id`, of `kind`.
    pub fn receipt_bytes(&self, id: MessageId, signer: &IdentityKey, kind: ReceiptKind) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row(
                "SELECT bytes FROM receipts WHERE message_id = ?1 AND signer = ?2 AND kind = ?3",
                params![id.0.as_slice(), signer.as_bytes().as_slice(), receipt_kind_code(kind)],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Keeps an alert's body (sealed like a message's) and its record, replacing any earlier
    /// record of the same alert.
    #[allow(clippy::too_many_arguments)]
    pub fn alert_save(
        &self,
        direction: Direction,
        peer: &IdentityKey,
        id: MessageId,
        _incident: Option<&str>,
        _body: &pocnet_core::alert::AlertBody,
        plaintext: &[u8],
        record: &crate::ops::alerts::AlertRecord,
    ) -> Result<()> {
        let row = RowId {
            direction,
            peer: *peer.as_bytes(),
            message_id: id,
        };
        self.conn.execute(
            "INSERT INTO alerts(message_id, direction, peer, body, record) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(direction, peer, message_id) DO UPDATE SET record = excluded.record",
            params![
                id.0.as_slice(),
                direction.as_str(),
                peer.as_bytes().as_slice(),
                self.key.seal("alert", &row, plaintext),
                String::from_utf8(json(record)).unwrap_or_default()
            ],
        )?;
        Ok(())
    }

    /// An alert's body and record.
    pub fn alert_load(
        &self,
        direction: Direction,
        peer: &IdentityKey,
        id: MessageId,
    ) -> Result<Option<(pocnet_core::alert::AlertBody, crate::ops::alerts::AlertRecord)>> {
        let row = RowId {
            direction,
            peer: *peer.as_bytes(),
            message_id: id,
        };
        let found: Option<(Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT body, record FROM alerts WHERE direction = ?1 AND peer = ?2 AND message_id = ?3",
                params![direction.as_str(), peer.as_bytes().as_slice(), id.0.as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((sealed, record)) = found else {
            return Ok(None);
        };
        let plain = self.key.open("alert", &row, &sealed)?;
        let body = pocnet_core::alert::AlertBody::parse(&plain)
            .map_err(|e| Error::DamagedStore(format!("alert {id}: {e}")))?;
        let mut rec: crate::ops::alerts::AlertRecord =
            serde_json::from_str(&record).map_err(|e| Error::DamagedStore(format!("alert record: {e}")))?;
        rec.body = plain.to_vec();
        Ok(Some((body, rec)))
    }

    fn alert_update(
        &self,
        direction: Direction,
        peer: &IdentityKey,
        id: MessageId,
        f: impl FnOnce(&mut crate::ops::alerts::AlertRecord) -> bool,
    ) -> Result<bool> {
        let record: Option<String> = self
            .conn
            .query_row(
                "SELECT record FROM alerts WHERE direction = ?1 AND peer = ?2 AND message_id = ?3",
                params![direction.as_str(), peer.as_bytes().as_slice(), id.0.as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(record) = record else { return Ok(false) };
        let mut rec: crate::ops::alerts::AlertRecord =
            serde_json::from_str(&record).map_err(|e| Error::DamagedStore(format!("alert record: {e}")))?;
        if !f(&mut rec) {
            return Ok(false);
        }
        self.conn.execute(
            "UPDATE alerts SET record = ?1 WHERE direction = ?2 AND peer = ?3 AND message_id = ?4",
            params![
                String::from_utf8(json(&rec)).unwrap_or_default(),
                direction.as_str(),
                peer.as_bytes().as_slice(),
                id.0.as_slice()
            ],
        )?;
        Ok(true)
    }

    /// Records our acknowledgement of a received alert (the first one counts).
    pub fn alert_acked(&self, direction: Direction, peer: &IdentityKey, id: MessageId, at: u64) -> Result<()> {
        self.alert_update(direction, peer, id, |r| {
            if r.acked_at.is_none() {
                r.acked_at = Some(at);
                true
            } else {
                false
            }
        })?;
        Ok(())
    }

    /// A repeat of a received alert: counts the ring and keeps the release; returns whether
    /// it should ring (not acknowledged yet).
    pub fn alert_ring(
        &self,
        peer: &IdentityKey,
        id: MessageId,
        release: &crate::ops::alerts::ReleaseInfo,
    ) -> Result<bool> {
        let mut ring = false;
        self.alert_update(Direction::In, peer, id, |r| {
            if r.release.as_ref() == Some(release) {
                return false;
            }
            r.release = Some(*release);
            if r.acked_at.is_none() {
                r.rings += 1;
                ring = true;
            }
            true
        })?;
        Ok(ring)
    }

    /// Keeps a received policy document's record (sealed); `false` if it was kept already.
    pub fn policy_file_save(
        &self,
        sender: &IdentityKey,
        id: MessageId,
        record: &PolicyFileRecord,
        now: u64,
    ) -> Result<bool> {
        let row = RowId {
            direction: Direction::In,
            peer: *sender.as_bytes(),
            message_id: id,
        };
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO policy_files(peer, message_id, record, received_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                sender.as_bytes().as_slice(),
                id.0.as_slice(),
                self.key.seal("policy", &row, &json(record)),
                now as i64
            ],
        )?;
        Ok(n == 1)
    }

    /// Every policy document held, opened.
    pub fn policy_files(&self) -> Result<Vec<HeldPolicy>> {
        let mut s = self
            .conn
            .prepare("SELECT peer, message_id, record, received_at FROM policy_files ORDER BY received_at")?;
        let rows = s.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (peer, mid, sealed, at) = row?;
            let sender = key_from(peer)?;
            let message_id = MessageId::from_slice(&mid)
                .ok_or_else(|| Error::DamagedStore("a policy row has a malformed id".into()))?;
            let id = RowId {
                direction: Direction::In,
                peer: *sender.as_bytes(),
                message_id,
            };
            let plain = self.key.open("policy", &id, &sealed)?;
            let record: PolicyFileRecord =
                serde_json::from_slice(&plain).map_err(|e| Error::DamagedStore(format!("policy record: {e}")))?;
            out.push(HeldPolicy {
                sender,
                record,
                received_at: at as u64,
            });
        }
        Ok(out)
    }

    /// Queues a signed receipt to send (kept until the relay has it).
    pub fn outbox_put(&self, to: &IdentityKey, receipt: &[u8]) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO outbox(to_key, receipt) VALUES (?1, ?2)",
            params![to.as_bytes().as_slice(), receipt],
        )?;
        Ok(())
    }

    /// Receipts waiting to be sent, oldest first: row id, addressee, receipt bytes.
    pub fn outbox(&self) -> Result<Vec<OutboxItem>> {
        let mut s = self
            .conn
            .prepare("SELECT id, to_key, receipt FROM outbox ORDER BY id")?;
        let rows = s.query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, to, receipt) = row?;
            let to: [u8; 32] = to
                .try_into()
                .map_err(|_| Error::DamagedStore("an outbox key has the wrong length".into()))?;
            out.push((id, to, receipt));
        }
        Ok(out)
    }

    /// How many receipts wait in the outbox.
    pub fn outbox_len(&self) -> Result<usize> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))? as usize)
    }

    /// Drops a sent receipt from the outbox.
    pub fn outbox_drop(&self, id: i64) -> Result<()> {
        self.conn.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Every verified receipt about `id`: signer, kind, time.
    pub fn receipts_for(&self, id: MessageId) -> Result<Vec<([u8; 32], ReceiptKind, u64)>> {
        let mut s = self
            .conn
            .prepare("SELECT signer, kind, at FROM receipts WHERE message_id = ?1 ORDER BY at, kind")?;
        let rows = s.query_map([id.0.as_slice()], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, u8>(1)?, r.get::<_, i64>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (signer, kind, at) = row?;
            let (Ok(signer), Some(kind)) = (<[u8; 32]>::try_from(signer.as_slice()), receipt_kind_from_code(kind))
            else {
                continue;
            };
            out.push((signer, kind, at as u64));
        }
        Ok(out)
    }

    /// The bytes of every verified receipt about `id`, in the order they were recorded.
    pub fn receipts_bytes(&self, id: MessageId) -> Result<Vec<Vec<u8>>> {
        let mut s = self
            .conn
            .prepare("SELECT bytes FROM receipts WHERE message_id = ?1 ORDER BY at, kind, signer")?;
        let rows = s.query_map([id.0.as_slice()], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The recipient keys a stored message's signed header lists.
    pub fn recipient_keys(&self, m: &StoredMessage) -> Result<Vec<[u8; 32]>> {
        let keys: Option<String> = self
            .conn
            .query_row(
                "SELECT recipient_keys FROM messages WHERE direction = ?1 AND peer = ?2 AND message_id = ?3",
                params![
                    m.direction.as_str(),
                    m.peer_key.as_bytes().as_slice(),
                    m.id.0.as_slice()
                ],
                |r| r.get(0),
            )
            .optional()?;
        let hex: Vec<String> = keys
            .map(|k| serde_json::from_str(&k).unwrap_or_default())
            .unwrap_or_default();
        Ok(hex
            .iter()
            .filter_map(|h| pocnet_crypto::from_hex(h))
            .filter_map(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .collect())
    }

    /// Whether `key` was verified by voice (its safety number compared).
    pub fn is_verified(&self, key: &IdentityKey) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT verified_at IS NOT NULL FROM contacts WHERE key = ?1",
                [key.as_bytes().as_slice()],
                |r| r.get::<_, bool>(0),
            )
            .optional()?
            .unwrap_or(false))
    }
}

/// Writes a store as release 0 did (plaintext), with one received message whose
/// attachment list is `attachments`: for tests of the migration.
#[cfg(test)]
pub(crate) fn write_v0_for_test(path: &Path, message_id: [u8; 16], peer: &IdentityKey, attachments: &[String]) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute(
        "INSERT INTO messages(message_id, direction, peer, peer_handle, recipients, subject, body, tlp,
            exercise, content_type, created_at, received_at, envelope_hash, attachments)
         VALUES (?1, 'in', ?2, 'CL.primary', '[]', 'old', 'old', 'TLP:AMBER', 0, 1, 1, 2, ?3, ?4)",
        params![
            message_id.as_slice(),
            peer.as_bytes().as_slice(),
            [7u8; 32].as_slice(),
            serde_json::to_string(attachments).unwrap()
        ],
    )
    .unwrap();
}

fn json<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialising plain data to JSON cannot fail")
}

/// How earlier releases stored the peer: a handle, or a warning in text.
fn legacy_peer(s: &str) -> Peer {
    if let Some(rest) = s.strip_prefix("UNVERIFIED ") {
        let (fp, claims) = rest.split_once(" (claims ").unwrap_or((rest, ""));
        Peer::Unverified {
            fingerprint: fp.to_string(),
            claims: claims.trim_end_matches(')').to_string(),
        }
    } else if let Some(fp) = s.strip_prefix("UNKNOWN ") {
        Peer::Unknown {
            fingerprint: fp.to_string(),
        }
    } else {
        Peer::Known { handle: s.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity::generate(&mut pocnet_crypto::os_rng(), 1_700_000_000, 86400).unwrap()
    }

    fn new<'a>(peer: &'a IdentityKey, p: &'a Peer, subject: &'a str, body: &'a str) -> NewMessage<'a> {
        NewMessage {
            id: MessageId([7; 16]),
            direction: Direction::In,
            peer_key: peer,
            peer: p,
            recipients: &[],
            recipient_keys: &[],
            subject,
            body,
            tlp: Tlp::Amber,
            exercise: false,
            content_type: ContentType::Message,
            created_at: 1,
            received_at: 2,
            envelope_hash: EnvelopeHash([3; 32]),
            relay_stored_at: None,
            attachments: &[],
            incident: None,
        }
    }

    #[test]
    fn listings_pages_and_lookups_by_id_use_an_index_not_a_scan_and_page_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let me = id();
        let s = Store::open(&dir.path().join("client.db"), &me).unwrap();
        let plan = |sql: &str| -> String {
            let mut st = s.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = st.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
        };
        let page = plan("SELECT * FROM messages WHERE direction = 'in' ORDER BY received_at DESC, rowid DESC LIMIT 51");
        assert!(
            page.contains("INDEX messages_by_time") && !page.contains("TEMP B-TREE"),
            "{page}"
        );
        let by_type =
            plan("SELECT * FROM messages WHERE direction = 'in' AND content_type = 4 ORDER BY received_at DESC");
        assert!(
            by_type.contains("INDEX messages_by_type") && !by_type.contains("TEMP B-TREE"),
            "{by_type}"
        );
        let by_id = plan("SELECT * FROM messages WHERE message_id = x'00'");
        assert!(by_id.contains("INDEX messages_by_id"), "{by_id}");

        let peer_key = *id().public_key();
        let peer = Peer::Known {
            handle: "CL.primary".into(),
        };
        for i in 0..5u8 {
            let mut m = new(&peer_key, &peer, "s", "b");
            m.id = MessageId([i; 16]);
            m.received_at = 100 + i as u64;
            assert!(s.insert_message(&m).unwrap());
        }
        let first: Vec<u8> = s
            .list_page(Direction::In, 2, 0)
            .unwrap()
            .iter()
            .map(|m| m.id.0[0])
            .collect();
        let second: Vec<u8> = s
            .list_page(Direction::In, 2, 2)
            .unwrap()
            .iter()
            .map(|m| m.id.0[0])
            .collect();
        assert_eq!((first, second), (vec![4, 3], vec![2, 1]));
        assert_eq!(s.count(Direction::In).unwrap(), 5);
        assert_eq!(s.count(Direction::Out).unwrap(), 0);
        assert_eq!(s.find(&"03".repeat(16)).unwrap().id, MessageId([3; 16]));
        assert_eq!(s.find("0303").unwrap().id, MessageId([3; 16]));
    }

    #[test]
    fn contents_are_sealed_at_rest_and_open_only_for_the_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.db");
        let (me, other) = (id(), id());
        let peer = Peer::Known {
            handle: "CL.primary".into(),
        };
        {
            let s = Store::open(&path, &me).unwrap();
            assert!(s
                .insert_message(&new(
                    other.public_key(),
                    &peer,
                    "MARKER-subject-4711",
                    "MARKER-body-4711"
                ))
                .unwrap());
            let m = s.find("0707").unwrap();
            assert_eq!(
                (m.subject.as_str(), m.body.as_str()),
                ("MARKER-subject-4711", "MARKER-body-4711")
            );
        }
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(
                !bytes.windows(11).any(|w| w == b"MARKER-subj"),
                "subject found in plaintext"
            );
            assert!(
                !bytes.windows(11).any(|w| w == b"MARKER-body"),
                "body found in plaintext"
            );
        }
        // Another identity's key does not open the rows.
        let s = Store::open(&path, &other).unwrap();
        assert!(matches!(s.find("0707"), Err(Error::DamagedStore(_))));
    }

    #[test]
    fn a_sealed_value_moved_to_another_column_does_not_open() {
        let k = StoreKey::derive(&id());
        let row = RowId {
            direction: Direction::In,
            peer: [1; 32],
            message_id: MessageId([2; 16]),
        };
        let sealed = k.seal("subject", &row, b"x");
        assert_eq!(k.open("subject", &row, &sealed).unwrap().as_slice(), b"x");
        assert!(k.open("body", &row, &sealed).is_err());
        let other_row = RowId {
            message_id: MessageId([3; 16]),
            ..row
        };
        assert!(k.open("subject", &other_row, &sealed).is_err());
    }

    #[test]
    fn a_plaintext_store_of_version_0_is_sealed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.db");
        let me = id();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute(
                "INSERT INTO messages(message_id, direction, peer, peer_handle, recipients, subject, body, tlp,
                    exercise, content_type, created_at, received_at, envelope_hash, attachments)
                 VALUES (?1, 'in', ?2, 'UNVERIFIED abcd (claims CL.primary)', '[]', 'OLD-SUBJECT-99', 'OLD-BODY-99',
                    'TLP:RED', 0, 1, 1, 2, ?3, '[\"/x/y/report.pdf\"]')",
                params![[5u8; 16].as_slice(), [6u8; 32].as_slice(), [7u8; 32].as_slice()],
            )
            .unwrap();
        }
        let s = Store::open(&path, &me).unwrap();
        let m = s.find("05").unwrap();
        assert_eq!(
            (m.subject.as_str(), m.body.as_str(), m.tlp),
            ("OLD-SUBJECT-99", "OLD-BODY-99", Tlp::Red)
        );
        assert_eq!(
            m.peer,
            Peer::Unverified {
                fingerprint: "abcd".into(),
                claims: "CL.primary".into()
            }
        );
        assert_eq!(m.attachments[0].name, "report.pdf");
        drop(s);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(
                !bytes.windows(11).any(|w| w == b"OLD-SUBJECT"),
                "old subject left in plaintext"
            );
            assert!(
                !bytes.windows(8).any(|w| w == b"OLD-BODY"),
                "old body left in plaintext"
            );
        }
    }
}
