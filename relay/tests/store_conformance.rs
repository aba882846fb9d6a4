//! The store conformance suite (`pocnet_relay::store::conformance`) on the SQLite backend,
//! over a real file per test. Plus what only SQLite has: its schema migrations.

use std::path::Path;

use pocnet_relay::store::conformance::Opts;
use pocnet_relay::store::SqliteStore;

fn open(dir: &Path, o: Opts) -> SqliteStore {
    SqliteStore::open(&dir.join("relay.db"), 64, o.queue_quota, o.max_bytes).unwrap()
}

pocnet_relay::store_conformance_tests!(open);

#[test]
fn a_database_from_a_newer_relay_is_refused_not_downgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    drop(SqliteStore::open(&path, 8, 10, None).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v as usize, pocnet_relay::store::sqlite::SCHEMA_VERSION);
    c.pragma_update(None, "user_version", v + 1).unwrap();
    drop(c);
    let e = SqliteStore::open(&path, 8, 10, None).err().expect("refused");
    assert!(matches!(e, pocnet_relay::store::StoreError::Unavailable(_)), "{e:?}");
}

#[test]
fn a_version_one_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    {
        // A protocol-1 relay's database: the old blobs table, user_version 0.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE blobs(message_id BLOB PRIMARY KEY, sender BLOB NOT NULL, total_len INTEGER NOT NULL,
             recipients BLOB NOT NULL, stored_at INTEGER NOT NULL);
             INSERT INTO blobs VALUES (x'01010101010101010101010101010101', x'09', 10, x'', 5);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, 8, 10, None).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let b = rt
        .block_on(pocnet_relay::store::Blobs::blob(&store, [1; 16]))
        .unwrap()
        .unwrap();
    assert!(b.complete, "attachments stored before versioning count as complete");
}
