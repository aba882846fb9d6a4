//! The store on a real SQLite file, with time passed in: expiry reporting, quotas,
//! idempotent retries, durability across reopen, and announcement to watchers.

use pocnet_relay::store::{NewEnvelope, StoreError, StoreHandle};
use pocnet_wire::Delivery;

fn env(sender: u8, id: u8, recipients: &[u8], now_ms: u64, ttl_ms: u64) -> NewEnvelope {
    NewEnvelope {
        sender: [sender; 32],
        message_id: [id; 16],
        envelope_hash: [id; 32],
        bytes: vec![id; 100],
        recipients: recipients.iter().map(|r| [*r; 32]).collect(),
        now_ms,
        expires_at_ms: now_ms + ttl_ms,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn expired_items_are_removed_and_reported_to_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = StoreHandle::open(&dir.path().join("r.db"), 64, 100).unwrap();
        store.accept(env(1, 7, &[2, 3], 1_000, 10_000)).await.unwrap();
        assert_eq!(store.pending([2; 32], 0, 10, 5_000).await.unwrap().len(), 1);
        // Before the TTL nothing expires; after it both recipients' copies do.
        assert_eq!(store.expire(10_999).await.unwrap(), 0);
        assert_eq!(store.expire(11_000).await.unwrap(), 2);
        assert!(store.pending([2; 32], 0, 10, 12_000).await.unwrap().is_empty());
        let notices = store.pending([1; 32], 0, 10, 12_000).await.unwrap();
        let mut told: Vec<[u8; 32]> = notices
            .iter()
            .map(|d| match d {
                Delivery::Expired {
                    message_id, recipient, ..
                } => {
                    assert_eq!(message_id, &[7; 16]);
                    *recipient
                }
                other => panic!("expected an expiry notice, got {other:?}"),
            })
            .collect();
        told.sort();
        assert_eq!(told, vec![[2; 32], [3; 32]]);
    });
}

#[test]
fn quota_is_enforced_per_recipient_and_frees_on_ack() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = StoreHandle::open(&dir.path().join("r.db"), 64, 2).unwrap();
        store.accept(env(1, 1, &[2], 0, 1_000_000)).await.unwrap();
        store.accept(env(1, 2, &[2], 0, 1_000_000)).await.unwrap();
        let err = store.accept(env(1, 3, &[2, 4], 0, 1_000_000)).await.unwrap_err();
        assert!(matches!(err, StoreError::QuotaExceeded(_)));
        // Nothing of the refused envelope was stored, not even for the other recipient.
        assert!(store.pending([4; 32], 0, 10, 0).await.unwrap().is_empty());
        let seqs: Vec<u64> = store
            .pending([2; 32], 0, 10, 0)
            .await
            .unwrap()
            .iter()
            .map(|d| d.seq())
            .collect();
        assert_eq!(store.ack([2; 32], seqs).await.unwrap(), 2);
        store.accept(env(1, 3, &[2, 4], 0, 1_000_000)).await.unwrap();
    });
}

#[test]
fn retried_send_is_stored_once_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    rt().block_on(async {
        let store = StoreHandle::open(&path, 64, 100).unwrap();
        let first = store.accept(env(1, 9, &[2], 500, 1_000_000)).await.unwrap();
        let again = store.accept(env(1, 9, &[2], 900, 1_000_000)).await.unwrap();
        assert!(!first.duplicate && again.duplicate);
        assert_eq!(again.stored_at_ms, 500);
    });
    rt().block_on(async {
        let store = StoreHandle::open(&path, 64, 100).unwrap();
        let items = store.pending([2; 32], 0, 10, 0).await.unwrap();
        assert_eq!(items.len(), 1, "committed item is on disk after reopen, once");
        // Acks are per recipient: another key cannot acknowledge it away.
        assert_eq!(store.ack([3; 32], vec![items[0].seq()]).await.unwrap(), 0);
        assert_eq!(store.pending([2; 32], 0, 10, 0).await.unwrap().len(), 1);
    });
}

#[test]
fn watchers_hear_of_items_only_after_commit_and_only_their_own() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = StoreHandle::open(&dir.path().join("r.db"), 64, 100).unwrap();
        let mut two = store.hub.subscribe([2; 32]);
        let mut five = store.hub.subscribe([5; 32]);
        store.accept(env(1, 4, &[2], 0, 1_000_000)).await.unwrap();
        match two.try_recv() {
            Ok(Delivery::Envelope { envelope, .. }) => assert_eq!(envelope, vec![4; 100]),
            other => panic!("watcher of 2 should have the item: {other:?}"),
        }
        assert!(five.try_recv().is_err());
    });
}

#[test]
fn a_reused_message_id_with_other_content_is_refused_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = StoreHandle::open(&dir.path().join("r.db"), 64, 100).unwrap();
        store.accept(env(1, 5, &[2], 0, 1_000_000)).await.unwrap();
        let mut other = env(1, 5, &[2], 10, 1_000_000);
        other.envelope_hash = [0xee; 32];
        assert!(matches!(store.accept(other).await, Err(StoreError::IdReused)));
        assert_eq!(store.pending([2; 32], 0, 10, 0).await.unwrap().len(), 1);
    });
}

#[test]
fn receipts_count_against_the_recipients_quota() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = StoreHandle::open(&dir.path().join("r.db"), 64, 2).unwrap();
        store.queue_receipt([2; 32], [3; 32], vec![1], 1_000_000).await.unwrap();
        store.queue_receipt([2; 32], [3; 32], vec![2], 1_000_000).await.unwrap();
        assert!(matches!(
            store.queue_receipt([2; 32], [3; 32], vec![3], 1_000_000).await,
            Err(StoreError::QuotaExceeded(_))
        ));
        assert!(matches!(
            store.accept(env(1, 1, &[2], 0, 1_000_000)).await,
            Err(StoreError::QuotaExceeded(_))
        ));
    });
}

#[test]
fn a_full_store_refuses_cleanly_keeps_what_it_accepted_and_recovers_when_space_frees() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = StoreHandle::open_limited(&dir.path().join("r.db"), 64, 1_000_000, Some(512 * 1024)).unwrap();
        let big = |id: u16| NewEnvelope {
            sender: [1; 32],
            message_id: {
                let mut m = [0u8; 16];
                m[..2].copy_from_slice(&id.to_be_bytes());
                m
            },
            envelope_hash: [0; 32],
            bytes: vec![7; 4096],
            recipients: vec![[2; 32]],
            now_ms: 0,
            expires_at_ms: u64::MAX / 4,
        };
        let mut accepted = 0u16;
        let err = loop {
            match store.accept(big(accepted)).await {
                Ok(_) => accepted += 1,
                Err(e) => break e,
            }
            assert!(accepted < 1000, "the cap was never reached");
        };
        assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
        assert!(err.to_string().contains("full"), "{err}");
        // Everything acknowledged as accepted is there, and nothing of the refused one.
        let pending = store.pending([2; 32], 0, 10_000, 0).await.unwrap();
        assert_eq!(pending.len(), accepted as usize);
        // Acknowledging drops the delivered ciphertext and frees pages; the store takes new
        // envelopes again, and a retried old one is still recognised.
        let seqs = pending.iter().map(|d| d.seq()).collect();
        store.ack([2; 32], seqs).await.unwrap();
        store.accept(big(60_000)).await.unwrap();
        assert!(store.accept(big(0)).await.unwrap().duplicate);
    });
}

#[test]
fn attachments_expire_by_age() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = StoreHandle::open(&dir.path().join("r.db"), 64, 100).unwrap();
        store
            .put_blob([1; 16], [9; 32], 10, vec![[2; 32]], 1_000)
            .await
            .unwrap();
        store
            .put_blob([2; 16], [9; 32], 10, vec![[2; 32]], 5_000)
            .await
            .unwrap();
        assert!(
            store.expire_blobs(1_000).await.unwrap().is_empty(),
            "not older than the cutoff"
        );
        assert_eq!(store.expire_blobs(2_000).await.unwrap(), vec![[1; 16]]);
        assert!(store.blob(&[1; 16]).unwrap().is_none());
        assert!(store.blob(&[2; 16]).unwrap().is_some());
    });
}
