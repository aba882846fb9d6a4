//! The tests every store backend must pass, written once against the traits (as
//! matrix-rust-sdk does for its state stores). A backend runs them all with
//! [`store_conformance_tests!`](crate::store_conformance_tests), giving a function that
//! opens its store over a directory: called twice with the same directory it must reopen
//! the same data. SQLite runs them in `relay/tests/store_conformance.rs`; a PostgreSQL
//! backend will only have to pass the same list.

use std::path::Path;
use std::sync::Arc;

use pocnet_wire::Member;

use super::{BlobLimits, Conflict, Item, Listed, LogAppend, NewEnvelope, Quota, Store, StoreError, UploadStart};

/// How a test wants its store opened.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    /// Most pending items per recipient.
    pub queue_quota: u64,
    /// Cap on stored bytes (`None`: unlimited).
    pub max_bytes: Option<u64>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            queue_quota: 100,
            max_bytes: None,
        }
    }
}

/// Generates one `#[test]` per conformance test for a backend. `$open` is an expression of
/// type `fn(&Path, Opts) -> S`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($open:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let dir = tempfile::tempdir().unwrap();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on($crate::store::conformance::$name(&$open, dir.path()));
            }
        )*
    };
    ($open:expr) => {
        $crate::store_conformance_tests!($open;
            expired_items_are_removed_and_reported_to_the_sender,
            quota_is_per_recipient_refuses_whole_envelopes_and_frees_on_ack,
            one_sender_holds_at_most_a_quarter_of_a_queue,
            envelopes_are_known_by_sender_id_and_hash_until_they_expire,
            retried_send_is_stored_once_and_survives_reopen,
            reused_message_id_with_other_content_is_a_conflict,
            receipts_count_against_the_recipients_quota,
            watchers_hear_only_committed_items_of_their_own_before_the_answer,
            watchers_are_bounded_per_key_and_deliveries_shared,
            pending_pages_in_order_after_a_sequence_number,
            log_appends_only_at_its_size_and_lists_members_in_the_same_commit,
            cosignatures_belong_to_the_latest_checkpoint,
            blocks_are_visible_at_once_and_lookups_show_them,
            registrations_and_submissions_are_bounded_and_cleared,
            uploads_reserve_quota_and_cap_before_bytes_and_are_owned,
            uploads_and_attachments_expire_by_age,
            a_full_store_refuses_cleanly_keeps_what_it_accepted_and_recovers,
        );
    };
}

type Open<'a, S> = &'a dyn Fn(&Path, Opts) -> S;

fn env(sender: u8, id: u8, recipients: &[u8], now_ms: u64, ttl_ms: u64) -> NewEnvelope {
    NewEnvelope {
        sender: [sender; 32],
        message_id: [id; 16],
        envelope_hash: [id; 32],
        bytes: vec![id; 100].into(),
        recipients: recipients.iter().map(|r| [*r; 32]).collect(),
        now_ms,
        expires_at_ms: now_ms + ttl_ms,
    }
}

fn seqs(items: &[Item]) -> Vec<u64> {
    items.iter().map(Item::seq).collect()
}

/// TTL: before it nothing expires; after it each copy does and the sender is told which
/// recipient never got it.
pub async fn expired_items_are_removed_and_reported_to_the_sender<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    store.accept(env(1, 7, &[2, 3], 1_000, 10_000)).await.unwrap();
    assert_eq!(store.pending([2; 32], 0, 10, 5_000).await.unwrap().len(), 1);
    assert_eq!(store.expire(10_999).await.unwrap(), 0);
    assert_eq!(store.expire(11_000).await.unwrap(), 2);
    assert!(store.pending([2; 32], 0, 10, 12_000).await.unwrap().is_empty());
    let mut told: Vec<[u8; 32]> = store
        .pending([1; 32], 0, 10, 12_000)
        .await
        .unwrap()
        .iter()
        .map(|d| match d {
            Item::Expired {
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
}

/// A full queue refuses the whole envelope (nothing for the other recipients either).
pub async fn quota_is_per_recipient_refuses_whole_envelopes_and_frees_on_ack<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(
        dir,
        Opts {
            queue_quota: 2,
            ..Opts::default()
        },
    );
    // Two senders fill recipient 2's queue (each may hold a quarter of it, at least one).
    store.accept(env(1, 1, &[2], 0, 1_000_000)).await.unwrap();
    store.accept(env(5, 2, &[2], 0, 1_000_000)).await.unwrap();
    let e = store.accept(env(6, 3, &[2, 4], 0, 1_000_000)).await.unwrap_err();
    assert_eq!(e, StoreError::Quota(Quota::Queue([2; 32])));
    assert!(store.pending([4; 32], 0, 10, 0).await.unwrap().is_empty());
    let s = seqs(&store.pending([2; 32], 0, 10, 0).await.unwrap());
    assert_eq!(store.ack([2; 32], s).await.unwrap(), 2);
    store.accept(env(6, 3, &[2, 4], 0, 1_000_000)).await.unwrap();
}

/// One sender may hold only a quarter of a recipient's queue: an insider cannot lock a POC
/// out by filling its queue, and what it holds frees as the recipient acknowledges.
pub async fn one_sender_holds_at_most_a_quarter_of_a_queue<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(
        dir,
        Opts {
            queue_quota: 8,
            ..Opts::default()
        },
    );
    for id in 1..=2 {
        store.accept(env(1, id, &[2], 0, 1_000_000)).await.unwrap();
    }
    assert_eq!(
        store.accept(env(1, 3, &[2], 0, 1_000_000)).await.unwrap_err(),
        StoreError::Quota(Quota::QueueShare([2; 32]))
    );
    assert_eq!(
        store
            .queue_receipt([2; 32], [1; 32], vec![1], 1_000_000, None)
            .await
            .unwrap_err(),
        StoreError::Quota(Quota::QueueShare([2; 32])),
        "receipts count against the same share"
    );
    // Others still get through, and other recipients of the insider are unaffected.
    store.accept(env(5, 4, &[2], 0, 1_000_000)).await.unwrap();
    store.accept(env(1, 5, &[3], 0, 1_000_000)).await.unwrap();
    // Acknowledging frees the sender's share, also after a reopen (counts are re-read).
    drop(store);
    let store = open(
        dir,
        Opts {
            queue_quota: 8,
            ..Opts::default()
        },
    );
    let first = store.pending([2; 32], 0, 1, 0).await.unwrap();
    assert_eq!(store.ack([2; 32], seqs(&first)).await.unwrap(), 1);
    store.accept(env(1, 3, &[2], 0, 1_000_000)).await.unwrap();
}

/// Idempotent retries, durability across reopen, acks only by the recipient.
pub async fn retried_send_is_stored_once_and_survives_reopen<S: Store>(open: Open<'_, S>, dir: &Path) {
    {
        let store = open(dir, Opts::default());
        let first = store.accept(env(1, 9, &[2], 500, 1_000_000)).await.unwrap();
        let again = store.accept(env(1, 9, &[2], 900, 1_000_000)).await.unwrap();
        assert!(!first.duplicate && again.duplicate);
        assert_eq!(again.stored_at_ms, 500);
    }
    let store = open(dir, Opts::default());
    let items = store.pending([2; 32], 0, 10, 0).await.unwrap();
    assert_eq!(items.len(), 1, "committed item is there after reopen, once");
    assert_eq!(store.ack([3; 32], vec![items[0].seq()]).await.unwrap(), 0);
    assert_eq!(store.pending([2; 32], 0, 10, 0).await.unwrap().len(), 1);
}

/// The same id with another hash is refused, and the first one stays.
pub async fn reused_message_id_with_other_content_is_a_conflict<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    store.accept(env(1, 5, &[2], 0, 1_000_000)).await.unwrap();
    let mut other = env(1, 5, &[2], 10, 1_000_000);
    other.envelope_hash = [0xee; 32];
    assert_eq!(
        store.accept(other).await.unwrap_err(),
        StoreError::Conflict(Conflict::IdReused)
    );
    assert_eq!(store.pending([2; 32], 0, 10, 0).await.unwrap().len(), 1);
}

/// A stored envelope is known by (sender, id, hash) until it expires, also after delivery.
pub async fn envelopes_are_known_by_sender_id_and_hash_until_they_expire<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    store.accept(env(1, 9, &[2], 1_000, 10_000)).await.unwrap();
    assert!(store.has_envelope([1; 32], [9; 16], [9; 32]).await.unwrap());
    assert!(
        !store.has_envelope([2; 32], [9; 16], [9; 32]).await.unwrap(),
        "other sender"
    );
    assert!(
        !store.has_envelope([1; 32], [9; 16], [8; 32]).await.unwrap(),
        "other hash"
    );
    let s = seqs(&store.pending([2; 32], 0, 10, 0).await.unwrap());
    store.ack([2; 32], s).await.unwrap();
    assert!(
        store.has_envelope([1; 32], [9; 16], [9; 32]).await.unwrap(),
        "after delivery"
    );
    store.expire(11_000).await.unwrap();
    assert!(
        !store.has_envelope([1; 32], [9; 16], [9; 32]).await.unwrap(),
        "after expiry"
    );
}

/// Receipts take queue room like envelopes.
pub async fn receipts_count_against_the_recipients_quota<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(
        dir,
        Opts {
            queue_quota: 2,
            ..Opts::default()
        },
    );
    store.queue_receipt([2; 32], [3; 32], vec![1], 1_000_000, None).await.unwrap();
    store.queue_receipt([2; 32], [4; 32], vec![2], 1_000_000, None).await.unwrap();
    assert!(matches!(
        store.queue_receipt([2; 32], [5; 32], vec![3], 1_000_000, None).await,
        Err(StoreError::Quota(Quota::Queue(_)))
    ));
    assert!(matches!(
        store.accept(env(1, 1, &[2], 0, 1_000_000)).await,
        Err(StoreError::Quota(Quota::Queue(_)))
    ));
}

/// Announced before answered, only to the recipient's own watchers.
pub async fn watchers_hear_only_committed_items_of_their_own_before_the_answer<S: Store>(
    open: Open<'_, S>,
    dir: &Path,
) {
    let store = open(dir, Opts::default());
    let mut two = store.subscribe([2; 32], 4).unwrap();
    let mut five = store.subscribe([5; 32], 4).unwrap();
    store.accept(env(1, 4, &[2], 0, 1_000_000)).await.unwrap();
    match two.try_recv().as_deref() {
        Some(Item::Envelope { envelope, .. }) => assert_eq!(&envelope[..], &[4; 100][..]),
        other => panic!("watcher of 2 should have the item when accept returns: {other:?}"),
    }
    assert!(five.try_recv().is_none());
    // A refused envelope is announced to nobody.
    let mut dup = env(1, 4, &[2], 0, 1_000_000);
    dup.envelope_hash = [9; 32];
    assert!(store.accept(dup).await.is_err());
    assert!(two.try_recv().is_none());
}

/// At most `max_per_key` live watchers per key; one item is shared by all of them.
pub async fn watchers_are_bounded_per_key_and_deliveries_shared<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    let mut subs: Vec<_> = (0..3).map(|_| store.subscribe([2; 32], 3).unwrap()).collect();
    assert!(matches!(
        store.subscribe([2; 32], 3),
        Err(StoreError::Quota(Quota::Watchers(3)))
    ));
    assert!(store.subscribe([3; 32], 3).is_ok(), "other keys unaffected");
    store.accept(env(1, 8, &[2], 0, 1_000_000)).await.unwrap();
    let got: Vec<Arc<Item>> = subs.iter_mut().map(|s| s.try_recv().unwrap()).collect();
    assert!(
        got.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])),
        "one shared item, not a copy per watcher"
    );
    drop(subs.pop());
    assert!(store.subscribe([2; 32], 3).is_ok(), "a closed watcher frees its place");
}

/// Backlog pages: ascending, after the given seq, bounded.
pub async fn pending_pages_in_order_after_a_sequence_number<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    for id in 1..=5 {
        store.accept(env(1, id, &[2], 0, 1_000_000)).await.unwrap();
    }
    let all = seqs(&store.pending([2; 32], 0, 10, 0).await.unwrap());
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        seqs(&store.pending([2; 32], all[1], 2, 0).await.unwrap()),
        all[2..4].to_vec()
    );
}

fn listed(key: u8, handle: &str) -> (Key, Option<Listed>) {
    listed_key([key; 32], handle)
}

fn listed_key(key: Key, handle: &str) -> (Key, Option<Listed>) {
    let (state, role) = handle.split_once('.').unwrap_or(("", handle));
    (
        key,
        Some(Listed {
            key,
            member: Member {
                handle: handle.into(),
                state: state.into(),
                role: role.into(),
                name: format!("member {}", key[0]),
                public_identity: vec![key[0]],
                revoked: false,
            },
        }),
    )
}

/// The Ed25519 base point: a valid identity key, so it has a fingerprint (which the
/// backend derives from the key: `[n; 32]` keys are mostly not points and have none).
fn valid_key() -> (Key, String) {
    let mut k = [0x66; 32];
    k[0] = 0x58;
    let fp = pocnet_crypto::IdentityKey::from_bytes(&k)
        .expect("the base point")
        .fingerprint()
        .to_hex();
    (k, fp)
}

fn append(first: u64, leaves: &[&str], members: Vec<(Key, Option<Listed>)>) -> LogAppend {
    let size = first + leaves.len() as u64;
    LogAppend {
        first,
        leaves: leaves.iter().map(|l| l.as_bytes().to_vec()).collect(),
        checkpoint: format!("checkpoint {size}"),
        members,
        published: Vec::new(),
        now_ms: 1_000,
    }
}

type Key = pocnet_wire::Key;

/// The log grows only at its end, exactly where the append says; the admission list
/// changes in the same commit (a handle can move between keys in one append), and all
/// of it survives a reopen.
pub async fn log_appends_only_at_its_size_and_lists_members_in_the_same_commit<S: Store>(
    open: Open<'_, S>,
    dir: &Path,
) {
    {
        let store = open(dir, Opts::default());
        assert!(store.log_checkpoint().await.unwrap().is_none());
        store
            .log_append(append(
                0,
                &["g", "a"],
                vec![listed(1, "CL.primary"), listed(2, "CL.alternate")],
            ))
            .await
            .unwrap();
        assert_eq!(
            store.log_append(append(1, &["x"], vec![])).await.unwrap_err(),
            StoreError::Conflict(Conflict::LogMoved(2)),
            "an append prepared for an older size is refused whole"
        );
        assert!(
            store.member([9; 32]).await.unwrap().is_none(),
            "nothing of it was listed"
        );
        // Swap ranks and unlist nobody: 1 becomes alternate, 2 primary, in one commit.
        let swap = vec![listed(1, "CL.alternate"), listed(2, "CL.primary")];
        store.log_append(append(2, &["swap"], swap)).await.unwrap();
        // Removal: 2 leaves the list.
        store
            .log_append(append(3, &["rm"], vec![([2; 32], None)]))
            .await
            .unwrap();
    }
    let store = open(dir, Opts::default());
    let cp = store.log_checkpoint().await.unwrap().unwrap();
    assert_eq!((cp.size, cp.note.as_str()), (4, "checkpoint 4"));
    let leaves = store.log_leaves(0, 10, 1 << 20).await.unwrap();
    assert_eq!(
        leaves,
        vec![b"g".to_vec(), b"a".to_vec(), b"swap".to_vec(), b"rm".to_vec()]
    );
    assert_eq!(store.log_leaves(1, 2, 1 << 20).await.unwrap().len(), 2);
    assert_eq!(
        store.log_leaves(0, 10, 1).await.unwrap().len(),
        1,
        "bytes bound, at least one"
    );
    assert_eq!(store.member([1; 32]).await.unwrap().unwrap().handle, "CL.alternate");
    assert!(
        store.member([2; 32]).await.unwrap().unwrap().revoked,
        "unlisted keys are refused"
    );
    assert!(store.is_revoked_now(&[2; 32]).unwrap());
    assert_eq!(store.lookup("CL".into()).await.unwrap().len(), 1);
}

/// Witnesses cosign the latest checkpoint only; a new checkpoint starts with none.
pub async fn cosignatures_belong_to_the_latest_checkpoint<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    store.log_append(append(0, &["g"], vec![])).await.unwrap();
    assert!(!store.log_cosign(2, [7; 32], "old".into()).await.unwrap());
    assert!(store.log_cosign(1, [7; 32], "w7 first".into()).await.unwrap());
    assert!(
        store.log_cosign(1, [7; 32], "w7".into()).await.unwrap(),
        "one line per witness"
    );
    assert!(store.log_cosign(1, [8; 32], "w8".into()).await.unwrap());
    assert_eq!(
        store.log_checkpoint().await.unwrap().unwrap().cosignatures,
        vec!["w7", "w8"]
    );
    store.log_append(append(1, &["b"], vec![])).await.unwrap();
    assert!(store.log_checkpoint().await.unwrap().unwrap().cosignatures.is_empty());
}

/// The operator's block: seen at once by the handshake check and by lookups (which show the
/// member as blocked), and kept when the log lists the key again.
pub async fn blocks_are_visible_at_once_and_lookups_show_them<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    let (alternate, fp) = valid_key();
    store
        .log_append(append(
            0,
            &["g"],
            vec![listed(1, "CL.primary"), listed_key(alternate, "CL.alternate")],
        ))
        .await
        .unwrap();
    assert_eq!(store.lookup("CL".into()).await.unwrap().len(), 2);
    assert_eq!(store.lookup("cl".into()).await.unwrap().len(), 2);
    assert_eq!(
        store.lookup(fp[..10].to_string()).await.unwrap()[0].handle,
        "CL.alternate"
    );
    assert!(
        store.lookup(fp[..4].to_string()).await.unwrap().is_empty(),
        "prefix too short"
    );
    assert_eq!(store.revoke("nobody".into(), 5).await.unwrap(), Err(0));
    assert!(!store.is_revoked_now(&[1; 32]).unwrap());
    let r = store.revoke("CL.primary".into(), 5).await.unwrap().unwrap();
    assert_eq!(r.key, [1; 32]);
    assert!(store.is_revoked_now(&[1; 32]).unwrap());
    assert!(store.member([1; 32]).await.unwrap().unwrap().revoked);
    let all = store.lookup("*".into()).await.unwrap();
    assert_eq!(all.len(), 2, "a blocked member is still listed by the directory");
    assert_eq!(
        all.iter()
            .filter(|m| m.revoked)
            .map(|m| m.handle.as_str())
            .collect::<Vec<_>>(),
        vec!["CL.primary"],
        "and shown as blocked"
    );
    store
        .log_append(append(1, &["update"], vec![listed(1, "CL.primary")]))
        .await
        .unwrap();
    assert!(
        store.is_revoked_now(&[1; 32]).unwrap(),
        "a log change does not lift the block"
    );
    assert_eq!(store.members().await.unwrap().len(), 2, "the operator still sees both");
}

/// What waits for the Secretariat is bounded, deduplicated, and cleared when published.
pub async fn registrations_and_submissions_are_bounded_and_cleared<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    let fp = |k: u8| format!("{:02x}", k).repeat(32);
    store.register([1; 32], fp(1), vec![1], 10, 2).await.unwrap();
    store.register([1; 32], fp(1), vec![1, 1], 11, 2).await.unwrap();
    store.register([2; 32], fp(2), vec![2], 12, 2).await.unwrap();
    assert!(matches!(
        store.register([3; 32], fp(3), vec![3], 13, 2).await.unwrap_err(),
        StoreError::Quota(Quota::Waiting(_))
    ));
    assert_eq!(store.registration(fp(1)).await.unwrap(), Some(vec![1, 1]), "refreshed");
    assert_eq!(
        store.registration(fp(1).to_uppercase()).await.unwrap(),
        Some(vec![1, 1])
    );
    assert_eq!(store.registration(fp(3)).await.unwrap(), None);

    let a = store.submit([5; 32], b"s1".to_vec(), 20, 2).await.unwrap();
    let b = store.submit([5; 32], b"s2".to_vec(), 21, 2).await.unwrap();
    assert_eq!(
        store.submit([6; 32], b"s1".to_vec(), 22, 2).await.unwrap_err(),
        StoreError::Conflict(Conflict::Duplicate)
    );
    assert!(matches!(
        store.submit([5; 32], b"s3".to_vec(), 22, 2).await.unwrap_err(),
        StoreError::Quota(Quota::Waiting(_))
    ));
    let c = store.submit([6; 32], b"s4".to_vec(), 23, 2).await.unwrap();
    assert!(a < b && b < c);
    let all = store.submissions(0, 10).await.unwrap();
    assert_eq!(all.iter().map(|s| s.id).collect::<Vec<_>>(), vec![a, b, c]);
    assert_eq!(store.submissions(a, 1).await.unwrap()[0].statement, b"s2");
    store.dismiss(vec![a]).await.unwrap();
    // Publishing s2 clears it, and listing key 1 clears its registration.
    use sha2::Digest;
    let mut ap = append(0, &["g"], vec![listed(1, "CL.primary")]);
    ap.published = vec![sha2::Sha256::digest(b"s2").into()];
    store.log_append(ap).await.unwrap();
    assert_eq!(
        store
            .submissions(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![c]
    );
    assert_eq!(store.registration(fp(1)).await.unwrap(), None);
    assert_eq!(store.expire_waiting(13).await.unwrap(), 1, "registration of key 2");
    assert_eq!(store.expire_waiting(24).await.unwrap(), 1, "submission s4");
}

/// Upload space is reserved when an upload starts: per member and in all; ids are owned.
pub async fn uploads_reserve_quota_and_cap_before_bytes_and_are_owned<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    let limits = BlobLimits {
        per_member: 100,
        total: 150,
    };
    assert_eq!(
        store.begin_upload([1; 32], [1; 16], 60, limits, 0).await.unwrap(),
        UploadStart::Reserved
    );
    assert_eq!(
        store.begin_upload([1; 32], [1; 16], 60, limits, 0).await.unwrap(),
        UploadStart::Reserved,
        "resuming keeps the one reservation"
    );
    assert_eq!(
        store.begin_upload([1; 32], [1; 16], 1, limits, 0).await.unwrap_err(),
        StoreError::Conflict(Conflict::UploadLength),
        "another length cannot shrink a reservation whose bytes are on disk"
    );
    assert_eq!(
        store.begin_upload([1; 32], [2; 16], 41, limits, 0).await.unwrap_err(),
        StoreError::Quota(Quota::Uploads {
            needed: 101,
            limit: 100
        })
    );
    assert_eq!(
        store.begin_upload([2; 32], [1; 16], 10, limits, 0).await.unwrap_err(),
        StoreError::Conflict(Conflict::BlobOwned)
    );
    store.begin_upload([2; 32], [3; 16], 90, limits, 0).await.unwrap();
    assert_eq!(
        store.begin_upload([3; 32], [4; 16], 1, limits, 0).await.unwrap_err(),
        StoreError::Quota(Quota::Storage)
    );
    assert!(
        !store.blob([1; 16]).await.unwrap().unwrap().complete,
        "partial is not downloadable"
    );
    store.complete_upload([1; 32], [1; 16], vec![[5; 32]]).await.unwrap();
    let b = store.blob([1; 16]).await.unwrap().unwrap();
    assert!(b.complete && b.recipients == vec![[5; 32]] && b.total_len == 60);
    assert_eq!(
        store.begin_upload([1; 32], [1; 16], 60, limits, 0).await.unwrap(),
        UploadStart::Complete
    );
    store.abandon_upload([2; 32], [3; 16]).await.unwrap();
    assert!(store.blob([3; 16]).await.unwrap().is_none());
    store.begin_upload([3; 32], [4; 16], 1, limits, 0).await.unwrap();
}

/// Attachments and partial uploads are forgotten by age and reported for file deletion.
pub async fn uploads_and_attachments_expire_by_age<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    let limits = BlobLimits {
        per_member: 1000,
        total: 1000,
    };
    store.begin_upload([9; 32], [1; 16], 10, limits, 1_000).await.unwrap();
    store.complete_upload([9; 32], [1; 16], vec![[2; 32]]).await.unwrap();
    store.begin_upload([9; 32], [2; 16], 10, limits, 5_000).await.unwrap();
    assert!(
        store.expire_blobs(1_000).await.unwrap().is_empty(),
        "not older than the cutoff"
    );
    assert_eq!(store.expire_blobs(2_000).await.unwrap(), vec![([9; 32], [1; 16])]);
    assert!(store.blob([1; 16]).await.unwrap().is_none());
    assert_eq!(store.expire_blobs(6_000).await.unwrap(), vec![([9; 32], [2; 16])]);
}

/// Past the cap a write fails as `Full`; what was accepted stays; space freed by acks is reused.
pub async fn a_full_store_refuses_cleanly_keeps_what_it_accepted_and_recovers<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(
        dir,
        Opts {
            queue_quota: 1_000_000,
            max_bytes: Some(512 * 1024),
        },
    );
    let big = |id: u16| NewEnvelope {
        sender: [1; 32],
        message_id: {
            let mut m = [0u8; 16];
            m[..2].copy_from_slice(&id.to_be_bytes());
            m
        },
        envelope_hash: [0; 32],
        bytes: vec![7; 4096].into(),
        recipients: vec![[2; 32]],
        now_ms: 0,
        expires_at_ms: u64::MAX / 4,
    };
    let mut accepted = 0u16;
    let e = loop {
        match store.accept(big(accepted)).await {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 1000, "the cap was never reached");
    };
    assert_eq!(e, StoreError::Full);
    let pending = store.pending([2; 32], 0, 10_000, 0).await.unwrap();
    assert_eq!(pending.len(), accepted as usize);
    store.ack([2; 32], seqs(&pending)).await.unwrap();
    store.accept(big(60_000)).await.unwrap();
    assert!(store.accept(big(0)).await.unwrap().duplicate);
}
