//! The local store (SQLite): contacts as first seen, messages in and out, receipts.
//! A message id is stored once, which is what makes delivery exactly-once for the user
//! although the relay delivers at least once.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Opens the profile's database.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS contacts(
            key BLOB PRIMARY KEY, handle TEXT NOT NULL, name TEXT NOT NULL, public_identity BLOB NOT NULL,
            first_seen INTEGER NOT NULL, verified_at INTEGER);
         CREATE TABLE IF NOT EXISTS messages(
            message_id BLOB NOT NULL, direction TEXT NOT NULL, peer BLOB NOT NULL, peer_handle TEXT NOT NULL,
            recipient_keys TEXT NOT NULL DEFAULT '[]',
            recipients TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL, tlp TEXT NOT NULL,
            exercise INTEGER NOT NULL, content_type INTEGER NOT NULL, created_at INTEGER NOT NULL,
            received_at INTEGER NOT NULL, envelope_hash BLOB NOT NULL, read_at INTEGER,
            relay_stored_at INTEGER, attachments TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY(direction, peer, message_id));
         CREATE TABLE IF NOT EXISTS receipts(
            message_id BLOB NOT NULL, signer BLOB NOT NULL, kind INTEGER NOT NULL, at INTEGER NOT NULL,
            bytes BLOB NOT NULL, PRIMARY KEY(message_id, signer, kind));
         CREATE TABLE IF NOT EXISTS expired(message_id BLOB NOT NULL, recipient BLOB NOT NULL, at INTEGER NOT NULL,
            PRIMARY KEY(message_id, recipient));",
    )?;
    Ok(c)
}

/// A message as listed and shown.
#[derive(Clone, Debug, Serialize)]
pub struct MessageRow {
    /// Hex message id.
    pub id: String,
    /// `in` or `out`.
    pub direction: String,
    /// Sender (in) or first recipient (out) handle.
    pub peer: String,
    /// Recipient handles.
    pub recipients: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// TLP 2.0 label.
    pub tlp: String,
    /// Drill traffic.
    pub exercise: bool,
    /// Sender's creation time (Unix ms).
    pub created_at: u64,
    /// When this device stored it (Unix ms).
    pub received_at: u64,
    /// When a person here read it.
    pub read_at: Option<u64>,
    /// Attachment files saved (in) or sent (out).
    pub attachments: Vec<String>,
}

const COLS: &str = "message_id, direction, peer_handle, recipients, subject, body, tlp, exercise, created_at, received_at, read_at, attachments";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    let id: Vec<u8> = r.get(0)?;
    let recipients: String = r.get(3)?;
    let attachments: String = r.get(11)?;
    Ok(MessageRow {
        id: pocnet_crypto::to_hex(&id),
        direction: r.get(1)?,
        peer: r.get(2)?,
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        subject: r.get(4)?,
        body: r.get(5)?,
        tlp: r.get(6)?,
        exercise: r.get(7)?,
        created_at: r.get::<_, i64>(8)? as u64,
        received_at: r.get::<_, i64>(9)? as u64,
        read_at: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
        attachments: serde_json::from_str(&attachments).unwrap_or_default(),
    })
}

/// Messages of one direction, newest first.
pub fn list(c: &Connection, direction: &str) -> anyhow::Result<Vec<MessageRow>> {
    let mut s = c.prepare(&format!(
        "SELECT {COLS} FROM messages WHERE direction = ?1 ORDER BY received_at DESC"
    ))?;
    let rows = s.query_map([direction], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Finds one message by id prefix (hex); errors if none or several match.
pub fn find(c: &Connection, prefix: &str) -> anyhow::Result<(Vec<u8>, MessageRow)> {
    let p = prefix.trim().to_ascii_lowercase();
    if p.is_empty() || !p.chars().all(|ch| ch.is_ascii_hexdigit()) {
        anyhow::bail!("message ids are hexadecimal (as `pocnet inbox` shows them); got {prefix:?}");
    }
    let mut s = c.prepare(&format!(
        "SELECT {COLS} FROM messages WHERE hex(message_id) LIKE ?1 || '%'"
    ))?;
    let rows: Vec<MessageRow> = s.query_map([p.to_ascii_uppercase()], row)?.collect::<Result<_, _>>()?;
    match rows.len() {
        0 => anyhow::bail!("no message with id {prefix}; list them with `pocnet inbox`"),
        1 => {
            let r = rows.into_iter().next().expect("one row");
            Ok((pocnet_crypto::from_hex(&r.id).unwrap_or_default(), r))
        }
        n => anyhow::bail!("{n} messages start with {prefix}; give more digits"),
    }
}

/// A contact as first seen: (handle, public identity, verified).
pub fn contact(c: &Connection, key: &[u8; 32]) -> anyhow::Result<Option<(String, Vec<u8>, bool)>> {
    Ok(c.query_row(
        "SELECT handle, public_identity, verified_at IS NOT NULL FROM contacts WHERE key = ?1",
        [key.as_slice()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()?)
}

/// The key pinned for a handle: the first one seen, until a person accepts another.
pub fn key_for_handle(c: &Connection, handle: &str) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(c.query_row(
        "SELECT key FROM contacts WHERE handle = ?1 ORDER BY first_seen ASC LIMIT 1",
        [handle],
        |r| r.get(0),
    )
    .optional()?)
}

/// Pins `key` for `handle` after a voice check: forgets other keys for the handle and
/// marks this one verified.
pub fn repin(
    c: &Connection,
    key: &[u8; 32],
    handle: &str,
    name: &str,
    public_identity: &[u8],
    now: u64,
) -> anyhow::Result<()> {
    c.execute(
        "DELETE FROM contacts WHERE handle = ?1 AND key != ?2",
        params![handle, key.as_slice()],
    )?;
    remember(c, key, handle, name, public_identity, now)?;
    c.execute(
        "UPDATE contacts SET verified_at = ?1 WHERE key = ?2",
        params![now as i64, key.as_slice()],
    )?;
    Ok(())
}

/// Records a contact (trust on first use); keeps the first record of a key.
pub fn remember(
    c: &Connection,
    key: &[u8; 32],
    handle: &str,
    name: &str,
    public_identity: &[u8],
    now: u64,
) -> anyhow::Result<()> {
    c.execute(
        "INSERT INTO contacts(key, handle, name, public_identity, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(key) DO UPDATE SET public_identity = excluded.public_identity",
        params![key.as_slice(), handle, name, public_identity, now as i64],
    )?;
    Ok(())
}

/// Inserts a message unless its id is known; returns whether it was new.
#[allow(clippy::too_many_arguments)]
pub fn insert_message(
    c: &Connection,
    message_id: &[u8; 16],
    direction: &str,
    peer: &[u8; 32],
    peer_handle: &str,
    recipients: &[String],
    recipient_keys: &[[u8; 32]],
    subject: &str,
    body: &str,
    tlp: &str,
    exercise: bool,
    content_type: u8,
    created_at: u64,
    received_at: u64,
    envelope_hash: &[u8; 32],
    attachments: &[String],
) -> anyhow::Result<bool> {
    let n = c.execute(
        "INSERT OR IGNORE INTO messages(message_id, direction, peer, peer_handle, recipients, subject, body, tlp, exercise,
            content_type, created_at, received_at, envelope_hash, attachments, recipient_keys)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            message_id.as_slice(),
            direction,
            peer.as_slice(),
            peer_handle,
            serde_json::to_string(recipients)?,
            subject,
            body,
            tlp,
            exercise,
            content_type,
            created_at as i64,
            received_at as i64,
            envelope_hash.as_slice(),
            serde_json::to_string(attachments)?,
            serde_json::to_string(&recipient_keys.iter().map(|k| pocnet_crypto::to_hex(k)).collect::<Vec<_>>())?
        ],
    )?;
    Ok(n == 1)
}

/// Whether a message from `peer` with this id is stored.
pub fn has_message(c: &Connection, direction: &str, peer: &[u8; 32], message_id: &[u8; 16]) -> anyhow::Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM messages WHERE direction = ?1 AND peer = ?2 AND message_id = ?3",
        params![direction, peer.as_slice(), message_id.as_slice()],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Whether we sent `message_id`, with this envelope hash, to `recipient`.
pub fn sent_to(
    c: &Connection,
    message_id: &[u8; 16],
    envelope_hash: &[u8; 32],
    recipient: &[u8; 32],
) -> anyhow::Result<bool> {
    let keys: Option<String> = c
        .query_row(
            "SELECT recipient_keys FROM messages WHERE direction = 'out' AND message_id = ?1 AND envelope_hash = ?2",
            params![message_id.as_slice(), envelope_hash.as_slice()],
            |r| r.get(0),
        )
        .optional()?;
    let keys: Vec<String> = keys
        .map(|k| serde_json::from_str(&k).unwrap_or_default())
        .unwrap_or_default();
    Ok(keys.contains(&pocnet_crypto::to_hex(recipient)))
}
