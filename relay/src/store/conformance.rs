//! The tests every store backend must pass, written once against the traits (as
//! matrix-rust-sdk does for its state stores). A backend runs them all with
//! [`store_conformance_tests!`](crate::store_conformance_tests), giving a function that
//! opens its store over a directory: called twice with the same directory it must reopen
//! the same data. SQLite runs them in `relay/tests/store_conformance.rs`; a PostgreSQL
//! backend will only have to pass the same list.

use std::path::Path;
use std::sync::Arc;

use pocnet_wire::{Member, Release, StepReport};

use super::{
    BlobLimits, Conflict, Hold, Item, Listed, LogAppend, NewEnvelope, NewEscalation, PlannedStep, Quota, Store,
    StoreError, UploadStart,
};

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
            held_items_are_invisible_until_due_then_announced_once_with_a_new_seq,
            held_items_fall_due_in_pending_too_and_are_announced_once,
            a_receipt_cancels_its_addressees_held_items_that_list_its_signer_whoever_their_recipient,
            a_receipt_after_release_recalls_nothing,
            held_items_their_due_times_and_cancel_rules_survive_reopen,
            held_items_count_against_the_quota_and_the_senders_share,
            escalation_steps_due_now_are_queued_the_rest_released_once_when_due_with_their_release,
            an_acknowledgement_cancels_its_states_held_steps_and_the_step_records_who_and_when,
            a_follow_up_reaches_the_released_holds_for_the_held_and_a_stop_cancels_every_held_step,
            an_escalation_survives_reopen_and_overdue_steps_go_out_at_once_keeping_their_due_time,
            escalation_steps_take_queue_room_and_expire_with_their_alert_told_once_per_recipient,
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
            .queue_receipt([2; 32], [1; 32], vec![1], 0, 1_000_000, None)
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
    store
        .queue_receipt([2; 32], [3; 32], vec![1], 0, 1_000_000, None)
        .await
        .unwrap();
    store
        .queue_receipt([2; 32], [4; 32], vec![2], 0, 1_000_000, None)
        .await
        .unwrap();
    assert!(matches!(
        store.queue_receipt([2; 32], [5; 32], vec![3], 0, 1_000_000, None).await,
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
            vec![
                listed(1, "CL.primary"),
                listed_key(alternate, "CL.alternate"),
                listed(9, "CL.authority"),
            ],
        ))
        .await
        .unwrap();
    // A state (or `*`) names its POCs, not its national authority (admitted, no recipient).
    assert_eq!(store.lookup("CL".into()).await.unwrap().len(), 2);
    assert_eq!(store.lookup("CL.authority".into()).await.unwrap().len(), 1);
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
    assert_eq!(
        store.members().await.unwrap().len(),
        3,
        "the operator still sees all three"
    );
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

/// A hold of envelope `id` from `sender` for `recipient`, due at `due`, cancelled by a
/// receipt about message `about` from one of `signers`.
fn held(sender: u8, id: u8, recipient: u8, now_ms: u64, due: u64, about: u8, signers: &[u8]) -> (NewEnvelope, Hold) {
    (
        env(sender, id, &[recipient], now_ms, due - now_ms + 1_000_000),
        Hold {
            not_before_ms: due,
            cancel_message_id: [about; 16],
            cancel_signers: signers.iter().map(|k| [*k; 32]).collect(),
        },
    )
}

async fn hold<S: Store>(store: &S, h: (NewEnvelope, Hold)) -> super::Accepted {
    store.hold(h.0, h.1).await.unwrap()
}

fn envelope_ids(items: &[Item]) -> Vec<u8> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Envelope { envelope, .. } => Some(envelope[0]),
            _ => None,
        })
        .collect()
}

/// A held item is in no page and no announcement before it is due; released, it is
/// announced once (to its recipient only), with its acceptance time and hash, under a seq
/// above everything queued meanwhile; it is pending once until acknowledged.
pub async fn held_items_are_invisible_until_due_then_announced_once_with_a_new_seq<S: Store>(
    open: Open<'_, S>,
    dir: &Path,
) {
    let store = open(dir, Opts::default());
    let mut two = store.subscribe([2; 32], 4).unwrap();
    let mut three = store.subscribe([3; 32], 4).unwrap();
    let a = hold(&store, held(1, 7, 2, 1_000, 5_000, 9, &[2])).await;
    assert_eq!(
        a,
        super::Accepted {
            stored_at_ms: 1_000,
            duplicate: false
        }
    );
    assert!(
        hold(&store, held(1, 7, 2, 1_200, 5_000, 9, &[2])).await.duplicate,
        "a retried hold is stored once"
    );
    assert!(two.try_recv().is_none(), "not announced when held");
    store.accept(env(4, 8, &[2], 2_000, 1_000_000)).await.unwrap();
    let meanwhile = two.try_recv().unwrap().seq();
    assert_eq!(
        envelope_ids(&store.pending([2; 32], 0, 10, 4_999).await.unwrap()),
        vec![8]
    );
    assert_eq!(store.release(4_999).await.unwrap(), 0);
    assert!(two.try_recv().is_none());
    assert_eq!(store.release(5_000).await.unwrap(), 1);
    match two.try_recv().as_deref() {
        Some(Item::Envelope {
            seq,
            envelope,
            stored_at_ms,
            envelope_hash,
            release: None,
        }) => {
            assert!(*seq > meanwhile, "a watcher past the held row's old seq still takes it");
            assert_eq!((envelope[0], *stored_at_ms, *envelope_hash), (7, 1_000, [7; 32]));
        }
        other => panic!("the watcher should have the released item: {other:?}"),
    }
    assert!(two.try_recv().is_none(), "once");
    assert!(three.try_recv().is_none(), "to its recipient only");
    assert_eq!(store.release(9_000).await.unwrap(), 0, "released once");
    assert!(two.try_recv().is_none());
    let page = store.pending([2; 32], 0, 10, 9_000).await.unwrap();
    assert_eq!(envelope_ids(&page), vec![8, 7], "pending once, in release order");
    assert!(store.pending([3; 32], 0, 10, 9_000).await.unwrap().is_empty());
    assert_eq!(store.ack([2; 32], seqs(&page)).await.unwrap(), 2);
    assert!(store.pending([2; 32], 0, 10, 9_000).await.unwrap().is_empty());
    // A hold due already (a past time) is queued and announced at once.
    hold(&store, held(1, 6, 2, 10_000, 10_000, 9, &[2])).await;
    assert!(matches!(two.try_recv().as_deref(), Some(Item::Envelope { .. })));
}

/// A recipient reading its queue at or after the due time gets the item without waiting
/// for a release; its other watchers get it announced once, and no later release repeats it.
pub async fn held_items_fall_due_in_pending_too_and_are_announced_once<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    hold(&store, held(1, 7, 2, 0, 5_000, 9, &[2])).await;
    let mut live = store.subscribe([2; 32], 4).unwrap();
    assert!(store.pending([2; 32], 0, 10, 4_999).await.unwrap().is_empty());
    let page = store.pending([2; 32], 0, 10, 5_000).await.unwrap();
    assert_eq!(envelope_ids(&page), vec![7]);
    assert_eq!(live.try_recv().map(|i| i.seq()), Some(page[0].seq()));
    assert_eq!(store.release(6_000).await.unwrap(), 0);
    assert!(live.try_recv().is_none());
    assert_eq!(store.pending([2; 32], 0, 10, 6_000).await.unwrap(), page);
}

/// Cancelling takes an acknowledgement about the named message, addressed to the held
/// items' sender, from a signer their cancel rule lists — whoever their recipient is (the
/// alternate's acknowledgement stops the primary's repeats). Another signer, another
/// message, another sender's held item naming the same message id are untouched.
pub async fn a_receipt_cancels_its_addressees_held_items_that_list_its_signer_whoever_their_recipient<S: Store>(
    open: Open<'_, S>,
    dir: &Path,
) {
    let store = open(dir, Opts::default());
    hold(&store, held(1, 10, 2, 0, 5_000, 9, &[2, 3])).await; // 2's, cancellable by 2 or 3
    hold(&store, held(1, 11, 3, 0, 5_000, 9, &[2])).await; // 3's, lists only 2
    hold(&store, held(1, 12, 2, 0, 5_000, 8, &[2])).await; // 2's, about message 8
    hold(&store, held(1, 13, 4, 0, 5_000, 9, &[4])).await; // 4's
    hold(&store, held(6, 14, 2, 0, 5_000, 9, &[2])).await; // sender 6's, about its own message 9
    let receipt = |from: u8, about: Option<u8>| {
        store.queue_receipt([1; 32], [from; 32], vec![from], 100, 1_000_000, about.map(|m| [m; 16]))
    };
    assert_eq!(receipt(5, Some(9)).await.unwrap(), 0, "a signer listed nowhere");
    assert_eq!(receipt(2, None).await.unwrap(), 0, "a receipt that cancels nothing");
    assert_eq!(receipt(2, Some(7)).await.unwrap(), 0, "another message");
    assert_eq!(
        receipt(3, Some(9)).await.unwrap(),
        1,
        "3 is listed on 2's item: any listed signer cancels, whoever the recipient"
    );
    assert_eq!(
        receipt(2, Some(9)).await.unwrap(),
        1,
        "2 cancels 3's item, not sender 6's naming the same id"
    );
    assert_eq!(receipt(2, Some(9)).await.unwrap(), 0, "once");
    assert_eq!(store.release(5_000).await.unwrap(), 3);
    assert_eq!(
        envelope_ids(&store.pending([2; 32], 0, 10, 5_000).await.unwrap()),
        vec![12, 14]
    );
    assert!(store.pending([3; 32], 0, 10, 5_000).await.unwrap().is_empty());
    assert_eq!(
        envelope_ids(&store.pending([4; 32], 0, 10, 5_000).await.unwrap()),
        vec![13]
    );
    assert_eq!(
        store.pending([1; 32], 0, 10, 5_000).await.unwrap().len(),
        6,
        "every receipt was queued"
    );
}

/// Once released, an item is the recipient's: a matching receipt recalls nothing.
pub async fn a_receipt_after_release_recalls_nothing<S: Store>(open: Open<'_, S>, dir: &Path) {
    let store = open(dir, Opts::default());
    hold(&store, held(1, 10, 2, 0, 5_000, 9, &[2])).await;
    assert_eq!(store.release(5_000).await.unwrap(), 1);
    assert_eq!(
        store
            .queue_receipt([1; 32], [2; 32], vec![1], 0, 1_000_000, Some([9; 16]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        envelope_ids(&store.pending([2; 32], 0, 10, 5_000).await.unwrap()),
        vec![10]
    );
}

/// A reopened store keeps held items unreleased until their own due times, and their
/// cancel rules.
pub async fn held_items_their_due_times_and_cancel_rules_survive_reopen<S: Store>(open: Open<'_, S>, dir: &Path) {
    {
        let store = open(dir, Opts::default());
        hold(&store, held(1, 10, 2, 0, 5_000, 9, &[2])).await;
        hold(&store, held(1, 11, 2, 0, 8_000, 9, &[2])).await;
        hold(&store, held(1, 12, 3, 0, 8_000, 9, &[3])).await;
    }
    let store = open(dir, Opts::default());
    let mut live = store.subscribe([2; 32], 4).unwrap();
    assert!(store.pending([2; 32], 0, 10, 4_999).await.unwrap().is_empty());
    assert_eq!(store.release(4_999).await.unwrap(), 0);
    assert_eq!(store.release(5_000).await.unwrap(), 1);
    assert!(matches!(live.try_recv().as_deref(), Some(Item::Envelope { envelope, .. }) if envelope[0] == 10));
    assert_eq!(
        store
            .queue_receipt([1; 32], [3; 32], vec![1], 0, 1_000_000, Some([9; 16]))
            .await
            .unwrap(),
        1,
        "3's cancel rule was kept"
    );
    assert_eq!(store.release(8_000).await.unwrap(), 1);
    assert!(matches!(live.try_recv().as_deref(), Some(Item::Envelope { envelope, .. }) if envelope[0] == 11));
    assert!(live.try_recv().is_none());
    assert!(store.pending([3; 32], 0, 10, 9_000).await.unwrap().is_empty());
    assert_eq!(
        envelope_ids(&store.pending([2; 32], 0, 10, 9_000).await.unwrap()),
        vec![10, 11]
    );
}

/// A held item takes queue room like a queued one (also as counted after a reopen); a
/// cancel frees it.
pub async fn held_items_count_against_the_quota_and_the_senders_share<S: Store>(open: Open<'_, S>, dir: &Path) {
    let opts = Opts {
        queue_quota: 4,
        ..Opts::default()
    };
    {
        let store = open(dir, opts);
        hold(&store, held(1, 10, 2, 0, 5_000, 9, &[2])).await;
        let (e, h) = held(1, 11, 2, 0, 5_000, 9, &[2]);
        assert_eq!(
            store.hold(e, h).await.unwrap_err(),
            StoreError::Quota(Quota::QueueShare([2; 32])),
            "one sender's quarter of a queue of 4"
        );
    }
    let store = open(dir, opts);
    assert_eq!(
        store.accept(env(1, 12, &[2], 0, 1_000_000)).await.unwrap_err(),
        StoreError::Quota(Quota::QueueShare([2; 32])),
        "still counted after a reopen"
    );
    for s in 3..=5 {
        store.accept(env(s, 20 + s, &[2], 0, 1_000_000)).await.unwrap();
    }
    assert_eq!(
        store.accept(env(6, 30, &[2], 0, 1_000_000)).await.unwrap_err(),
        StoreError::Quota(Quota::Queue([2; 32]))
    );
    assert_eq!(
        store
            .queue_receipt([1; 32], [2; 32], vec![1], 0, 1_000_000, Some([9; 16]))
            .await
            .unwrap(),
        1
    );
    store.accept(env(6, 30, &[2], 0, 1_000_000)).await.unwrap();
}

/// The escalation window of these tests: 15 minutes.
const W: u64 = 15 * 60 * 1000;
/// Their TTL after the last step.
const TTL: u64 = 10 * W;

fn step(recipient: u8, rank: u8, repeat: u8, due_ms: u64, signers: &[u8]) -> PlannedStep {
    PlannedStep {
        recipient: [recipient; 32],
        rank,
        repeat,
        due_ms,
        cancel_signers: signers.iter().map(|k| [*k; 32]).collect(),
    }
}

/// Alert `id` of sender 1, accepted at `now`: CL has ranks [2] then [3], MX one rank [4];
/// `repeats` repeats to each whole state after its last rank (the schedule of
/// `pocnet_core::alert::Plan::schedule`), each state's keys cancelling its steps.
fn alert(id: u8, now: u64, repeats: u8) -> (NewEnvelope, NewEscalation) {
    let cl = [2u8, 3];
    let mut steps = Vec::new();
    for (rank, k) in cl.iter().enumerate() {
        steps.push(step(*k, rank as u8, 0, now + rank as u64 * W, &cl));
    }
    for j in 1..=repeats {
        for (rank, k) in cl.iter().enumerate() {
            steps.push(step(*k, rank as u8, j, now + (1 + j as u64) * W, &cl));
        }
    }
    steps.push(step(4, 0, 0, now, &[4]));
    for j in 1..=repeats {
        steps.push(step(4, 0, j, now + j as u64 * W, &[4]));
    }
    let last = steps.iter().map(|s| s.due_ms).max().unwrap();
    let mut e = env(1, id, &[2, 3, 4], now, 0);
    e.expires_at_ms = last + TTL;
    (
        e,
        NewEscalation {
            plan: vec![0xa0, id],
            steps,
        },
    )
}

async fn escalate<S: Store>(store: &S, a: (NewEnvelope, NewEscalation)) -> super::Accepted {
    store.escalate(a.0, a.1).await.unwrap()
}

/// (recipient byte, rank, repeat, due, released, cancelled, cancelled_by byte) of each step.
type StepRow = (u8, u8, u8, u64, Option<u64>, Option<u64>, Option<u8>);

async fn steps_of<S: Store>(store: &S, sender: u8, id: u8) -> Vec<StepRow> {
    let rec = store
        .escalation([sender; 32], [id; 16])
        .await
        .unwrap()
        .expect("an escalation");
    rec.steps
        .iter()
        .map(|s: &StepReport| {
            (
                s.recipient[0],
                s.rank,
                s.repeat,
                s.due_ms,
                s.released_ms,
                s.cancelled_ms,
                s.cancelled_by.map(|k| k[0]),
            )
        })
        .collect()
}

fn release_of(item: Option<Arc<Item>>) -> (u8, Option<Release>) {
    match item.as_deref() {
        Some(Item::Envelope { envelope, release, .. }) => (envelope[0], *release),
        other => panic!("expected an envelope, got {other:?}"),
    }
}

fn releases(items: &[Item]) -> Vec<(u8, Option<Release>)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Envelope { envelope, release, .. } => Some((envelope[0], *release)),
            _ => None,
        })
        .collect()
}

fn rel(due_ms: u64, released_ms: u64, rank: u8, repeat: u8) -> Option<Release> {
    Some(Release {
        due_ms,
        released_ms,
        rank,
        repeat,
    })
}

/// Rank 0 of every state is queued and announced at acceptance, recorded released then;
/// every later step is held, invisible, and released once when due (a repeat is the same
/// envelope again), carrying its due and release times, rank and repeat. A retry with the
/// same plan changes nothing; another plan or hash under the id is a conflict.
pub async fn escalation_steps_due_now_are_queued_the_rest_released_once_when_due_with_their_release<S: Store>(
    open: Open<'_, S>,
    dir: &Path,
) {
    let store = open(dir, Opts::default());
    let mut two = store.subscribe([2; 32], 4).unwrap();
    let mut three = store.subscribe([3; 32], 4).unwrap();
    let t = 1_000;
    let a = escalate(&store, alert(20, t, 1)).await;
    assert_eq!(
        a,
        super::Accepted {
            stored_at_ms: t,
            duplicate: false
        }
    );
    assert_eq!(release_of(two.try_recv()), (20, rel(t, t, 0, 0)));
    assert!(
        two.try_recv().is_none() && three.try_recv().is_none(),
        "the alternate waits"
    );
    let record = store.escalation([1; 32], [20; 16]).await.unwrap().unwrap();
    assert_eq!((record.plan, record.accepted_ms), (vec![0xa0, 20], t));
    assert_eq!(
        steps_of(&store, 1, 20).await,
        vec![
            (2, 0, 0, t, Some(t), None, None),
            (4, 0, 0, t, Some(t), None, None),
            (3, 1, 0, t + W, None, None, None),
            (4, 0, 1, t + W, None, None, None),
            (2, 0, 1, t + 2 * W, None, None, None),
            (3, 1, 1, t + 2 * W, None, None, None),
        ]
    );
    assert!(store.escalation([1; 32], [21; 16]).await.unwrap().is_none());
    assert!(
        store.escalation([2; 32], [20; 16]).await.unwrap().is_none(),
        "by sender"
    );
    // Retries.
    let again = escalate(&store, alert(20, t + 500, 1)).await;
    assert!(again.duplicate && again.stored_at_ms == t);
    assert!(two.try_recv().is_none(), "a retry announces nothing");
    let (e, mut esc) = alert(20, t, 1);
    esc.plan = vec![0xa1];
    assert_eq!(
        store.escalate(e, esc).await.unwrap_err(),
        StoreError::Conflict(Conflict::IdReused)
    );
    let (mut e, esc) = alert(20, t, 1);
    e.envelope_hash = [0xee; 32];
    assert_eq!(
        store.escalate(e, esc).await.unwrap_err(),
        StoreError::Conflict(Conflict::IdReused)
    );
    store.accept(env(1, 22, &[2], t, TTL)).await.unwrap();
    assert_eq!(
        store.escalate(alert(22, t, 1).0, alert(22, t, 1).1).await.unwrap_err(),
        StoreError::Conflict(Conflict::IdReused),
        "an id a plain send used is no escalation"
    );
    let _ = two.try_recv();
    // The alternate's rank and MX's first repeat fall due together.
    assert!(store.pending([3; 32], 0, 10, t + W - 1).await.unwrap().is_empty());
    assert_eq!(store.release(t + W - 1).await.unwrap(), 0);
    assert_eq!(store.release(t + W + 7).await.unwrap(), 2);
    assert_eq!(release_of(three.try_recv()), (20, rel(t + W, t + W + 7, 1, 0)));
    assert!(three.try_recv().is_none() && two.try_recv().is_none());
    assert_eq!(store.release(t + 2 * W - 1).await.unwrap(), 0);
    assert_eq!(store.release(t + 2 * W).await.unwrap(), 2);
    assert_eq!(release_of(two.try_recv()), (20, rel(t + 2 * W, t + 2 * W, 0, 1)));
    assert_eq!(release_of(three.try_recv()), (20, rel(t + 2 * W, t + 2 * W, 1, 1)));
    assert_eq!(store.release(t + 9 * W).await.unwrap(), 0, "each step once");
    assert!(two.try_recv().is_none() && three.try_recv().is_none());
    // The backlog carries the same, the repeat as the same envelope again.
    let page = store.pending([2; 32], 0, 10, t + 9 * W).await.unwrap();
    assert_eq!(
        releases(&page),
        vec![(20, rel(t, t, 0, 0)), (22, None), (20, rel(t + 2 * W, t + 2 * W, 0, 1))]
    );
    assert_eq!(
        releases(&store.pending([4; 32], 0, 10, t + 9 * W).await.unwrap()),
        vec![(20, rel(t, t, 0, 0)), (20, rel(t + W, t + W + 7, 0, 1))]
    );
    assert_eq!(
        steps_of(&store, 1, 20).await,
        vec![
            (2, 0, 0, t, Some(t), None, None),
            (4, 0, 0, t, Some(t), None, None),
            (3, 1, 0, t + W, Some(t + W + 7), None, None),
            (4, 0, 1, t + W, Some(t + W + 7), None, None),
            (2, 0, 1, t + 2 * W, Some(t + 2 * W), None, None),
            (3, 1, 1, t + 2 * W, Some(t + 2 * W), None, None),
        ]
    );
    // Acknowledged by the recipient, a released step's record stays.
    assert_eq!(store.ack([2; 32], seqs(&page)).await.unwrap(), 3);
    assert_eq!(steps_of(&store, 1, 20).await[0], (2, 0, 0, t, Some(t), None, None));
}

/// An acknowledgement of the alert by any key of a state drops that state's held steps —
/// the alternate's stops the primary's repeats too — in its commit, recorded with its time
/// and signer; other states' steps, other receipts, unlisted signers and released steps
/// are untouched. A follow-up then reaches nobody whose steps were all cancelled.
pub async fn an_acknowledgement_cancels_its_states_held_steps_and_the_step_records_who_and_when<S: Store>(
    open: Open<'_, S>,
    dir: &Path,
) {
    let store = open(dir, Opts::default());
    let t = 1_000;
    escalate(&store, alert(20, t, 1)).await;
    let receipt = |from: u8, at: u64, about: Option<u8>| {
        store.queue_receipt(
            [1; 32],
            [from; 32],
            vec![from],
            at,
            1_000_000_000,
            about.map(|m| [m; 16]),
        )
    };
    assert_eq!(
        receipt(3, t + 10, None).await.unwrap(),
        0,
        "delivered/read cancel nothing"
    );
    assert_eq!(
        receipt(9, t + 20, Some(20)).await.unwrap(),
        0,
        "a key in no state's rule"
    );
    assert_eq!(receipt(3, t + 30, Some(21)).await.unwrap(), 0, "another message");
    // CL's alternate acknowledges before its own release.
    assert_eq!(receipt(3, t + 60_000, Some(20)).await.unwrap(), 3);
    let cl = Some(t + 60_000);
    assert_eq!(
        steps_of(&store, 1, 20).await,
        vec![
            (2, 0, 0, t, Some(t), None, None),
            (4, 0, 0, t, Some(t), None, None),
            (3, 1, 0, t + W, None, cl, Some(3)),
            (4, 0, 1, t + W, None, None, None),
            (2, 0, 1, t + 2 * W, None, cl, Some(3)),
            (3, 1, 1, t + 2 * W, None, cl, Some(3)),
        ]
    );
    assert_eq!(receipt(2, t + 70_000, Some(20)).await.unwrap(), 0, "once");
    assert_eq!(store.release(t + 9 * W).await.unwrap(), 1, "MX's repeat only");
    assert!(store.pending([3; 32], 0, 10, t + 9 * W).await.unwrap().is_empty());
    assert_eq!(
        releases(&store.pending([2; 32], 0, 10, t + 9 * W).await.unwrap()),
        vec![(20, rel(t, t, 0, 0))]
    );
    assert_eq!(
        receipt(4, t + 9 * W, Some(20)).await.unwrap(),
        0,
        "a released step is never recalled"
    );
    assert_eq!(
        steps_of(&store, 1, 20).await[3],
        (4, 0, 1, t + W, Some(t + 9 * W), None, None)
    );
    // An update after the acknowledgement: the primary has the alert, the alternate never will.
    let mut up = env(1, 30, &[2, 3], t + 9 * W, TTL);
    up.bytes = vec![30; 10].into();
    store.follow_up(up, [20; 16], false).await.unwrap();
    assert_eq!(store.release(t + 20 * W).await.unwrap(), 0);
    assert_eq!(
        envelope_ids(&store.pending([2; 32], 0, 10, t + 20 * W).await.unwrap()),
        vec![20, 30]
    );
    assert!(store.pending([3; 32], 0, 10, t + 20 * W).await.unwrap().is_empty());
}

/// A follow-up (update) is queued now for whoever was released the alert and held for the
/// others with their earliest held step, under the same cancel rule. With `stop` it reaches
/// only the released, and every held step of the alert — and earlier follow-ups' held
/// copies — is dropped, recorded cancelled by the sender. It must follow this sender's
/// escalation and go only to keys the alert named; retries are recognised.
pub async fn a_follow_up_reaches_the_released_holds_for_the_held_and_a_stop_cancels_every_held_step<S: Store>(
    open: Open<'_, S>,
    dir: &Path,
) {
    let store = open(dir, Opts::default());
    let t = 1_000;
    escalate(&store, alert(20, t, 1)).await;
    let mut two = store.subscribe([2; 32], 4).unwrap();
    let mut three = store.subscribe([3; 32], 4).unwrap();
    let update = env(1, 30, &[2, 3, 4], t + 1_000, TTL + 3 * W);
    assert!(
        !store
            .follow_up(update.clone(), [20; 16], false)
            .await
            .unwrap()
            .duplicate
    );
    assert_eq!(release_of(two.try_recv()), (30, None));
    assert!(three.try_recv().is_none(), "held for the alternate");
    assert!(
        store.follow_up(update, [20; 16], false).await.unwrap().duplicate,
        "a retry"
    );
    assert!(two.try_recv().is_none());
    // Refusals, each storing nothing.
    assert_eq!(
        store
            .follow_up(env(1, 31, &[2, 5], t, TTL), [20; 16], false)
            .await
            .unwrap_err(),
        StoreError::Conflict(Conflict::NotAlerted([5; 32]))
    );
    assert_eq!(
        store
            .follow_up(env(1, 31, &[2], t, TTL), [21; 16], false)
            .await
            .unwrap_err(),
        StoreError::Conflict(Conflict::UnknownAlert)
    );
    assert_eq!(
        store
            .follow_up(env(6, 31, &[2], t, TTL), [20; 16], true)
            .await
            .unwrap_err(),
        StoreError::Conflict(Conflict::UnknownAlert),
        "another sender's alert"
    );
    assert!(two.try_recv().is_none());
    // The alternate's copy of the update follows its alert step, not before.
    assert_eq!(store.release(t + W).await.unwrap(), 3);
    assert_eq!(release_of(three.try_recv()).0, 20);
    assert_eq!(release_of(three.try_recv()), (30, None));
    // All-clear with stop at t + W + 5 s: every held step goes, only the released get it.
    let stop_at = t + W + 5_000;
    let clear = env(1, 32, &[2, 3, 4], stop_at, TTL + 3 * W);
    store.follow_up(clear, [20; 16], true).await.unwrap();
    let me = Some(1);
    assert_eq!(
        steps_of(&store, 1, 20).await,
        vec![
            (2, 0, 0, t, Some(t), None, None),
            (4, 0, 0, t, Some(t), None, None),
            (3, 1, 0, t + W, Some(t + W), None, None),
            (4, 0, 1, t + W, Some(t + W), None, None),
            (2, 0, 1, t + 2 * W, None, Some(stop_at), me),
            (3, 1, 1, t + 2 * W, None, Some(stop_at), me),
        ]
    );
    assert_eq!(store.release(t + 9 * W).await.unwrap(), 0);
    for (r, want) in [(2, vec![20, 30, 32]), (3, vec![20, 30, 32]), (4, vec![20, 30, 20, 32])] {
        assert_eq!(
            envelope_ids(&store.pending([r; 32], 0, 10, t + 9 * W).await.unwrap()),
            want,
            "recipient {r}"
        );
    }

    // A stop before the alternate's release: nothing for it, and the update held for it goes too.
    escalate(&store, alert(40, t, 0)).await;
    store
        .follow_up(env(1, 41, &[2, 3], t + 10, TTL + W), [40; 16], false)
        .await
        .unwrap();
    store
        .follow_up(env(1, 42, &[2, 3], t + 20, TTL + W), [40; 16], true)
        .await
        .unwrap();
    assert_eq!(store.release(t + 9 * W).await.unwrap(), 0);
    assert_eq!(
        envelope_ids(&store.pending([3; 32], 0, 10, t + 9 * W).await.unwrap()),
        vec![20, 30, 32]
    );
    assert_eq!(
        envelope_ids(&store.pending([2; 32], 0, 20, t + 9 * W).await.unwrap()),
        vec![20, 30, 32, 40, 41, 42]
    );
    assert_eq!(
        steps_of(&store, 1, 40).await[2],
        (3, 1, 0, t + W, None, Some(t + 20), Some(1))
    );
}

/// A reopened store keeps the schedule and the cancel rules: an acknowledgement after the
/// reopen stops its state; steps that fell due while it was closed go out at once on the
/// first release, each exactly once, carrying their original due time (so the lateness
/// shows) — and a second reopen releases nothing again.
pub async fn an_escalation_survives_reopen_and_overdue_steps_go_out_at_once_keeping_their_due_time<S: Store>(
    open: Open<'_, S>,
    dir: &Path,
) {
    let t = 1_000;
    {
        let store = open(dir, Opts::default());
        escalate(&store, alert(20, t, 1)).await;
        assert_eq!(store.release(t + W - 1).await.unwrap(), 0);
    }
    {
        let store = open(dir, Opts::default());
        assert!(escalate(&store, alert(20, t + 5, 1)).await.duplicate);
        assert_eq!(
            store
                .queue_receipt([1; 32], [4; 32], vec![4], t + 60_000, 1_000_000_000, Some([20; 16]))
                .await
                .unwrap(),
            1,
            "MX's cancel rule was kept"
        );
    }
    let down_until = t + 2 * W + 3 * 60_000;
    {
        let store = open(dir, Opts::default());
        let mut three = store.subscribe([3; 32], 4).unwrap();
        assert_eq!(store.release(down_until).await.unwrap(), 3);
        assert_eq!(release_of(three.try_recv()), (20, rel(t + W, down_until, 1, 0)));
        assert_eq!(release_of(three.try_recv()), (20, rel(t + 2 * W, down_until, 1, 1)));
        assert!(three.try_recv().is_none());
        assert_eq!(store.release(down_until + W).await.unwrap(), 0);
    }
    let store = open(dir, Opts::default());
    assert_eq!(
        store.release(down_until + 2 * W).await.unwrap(),
        0,
        "released exactly once"
    );
    let steps = steps_of(&store, 1, 20).await;
    assert_eq!(
        steps,
        vec![
            (2, 0, 0, t, Some(t), None, None),
            (4, 0, 0, t, Some(t), None, None),
            (3, 1, 0, t + W, Some(down_until), None, None),
            (4, 0, 1, t + W, None, Some(t + 60_000), Some(4)),
            (2, 0, 1, t + 2 * W, Some(down_until), None, None),
            (3, 1, 1, t + 2 * W, Some(down_until), None, None),
        ]
    );
    for (_, _, _, due, released, _, _) in &steps[2..] {
        if let Some(r) = released {
            assert!(r - due >= 5_000, "late by {} ms", r - due);
        }
    }
    assert_eq!(
        releases(&store.pending([3; 32], 0, 10, down_until).await.unwrap()),
        vec![
            (20, rel(t + W, down_until, 1, 0)),
            (20, rel(t + 2 * W, down_until, 1, 1))
        ]
    );
    assert_eq!(
        releases(&store.pending([2; 32], 0, 10, down_until).await.unwrap()),
        vec![(20, rel(t, t, 0, 0)), (20, rel(t + 2 * W, down_until, 0, 1))]
    );
}

/// Every step takes a place in its recipient's queue and the sender's quarter of it from
/// the start (a recipient with repeats takes several); a refused escalation stores nothing.
/// Cancelled steps free their places. The escalation expires with its envelope (TTL after
/// the last step), and the sender is told once per recipient, not once per step.
pub async fn escalation_steps_take_queue_room_and_expire_with_their_alert_told_once_per_recipient<S: Store>(
    open: Open<'_, S>,
    dir: &Path,
) {
    let store = open(
        dir,
        Opts {
            queue_quota: 8,
            ..Opts::default()
        },
    );
    let t = 1_000;
    // Two repeats: three places in each queue, over the sender's quarter (two).
    let (e, esc) = alert(20, t, 2);
    assert_eq!(
        store.escalate(e, esc).await.unwrap_err(),
        StoreError::Quota(Quota::QueueShare([2; 32]))
    );
    assert!(store.escalation([1; 32], [20; 16]).await.unwrap().is_none());
    assert!(store.pending([4; 32], 0, 10, t).await.unwrap().is_empty());
    let (e, esc) = alert(20, t, 1);
    let expires = e.expires_at_ms;
    escalate(&store, (e, esc)).await;
    assert_eq!(
        store.accept(env(1, 21, &[3], t, 100 * W)).await.unwrap_err(),
        StoreError::Quota(Quota::QueueShare([3; 32])),
        "the alternate's held steps hold its places"
    );
    assert_eq!(
        store
            .queue_receipt([1; 32], [2; 32], vec![2], t + 1, 1_000_000_000, Some([20; 16]))
            .await
            .unwrap(),
        3
    );
    store.accept(env(1, 21, &[3], t, 100 * W)).await.unwrap();
    // Expiry.
    assert_eq!(store.release(t + W).await.unwrap(), 1);
    assert_eq!(store.expire(expires - 1).await.unwrap(), 0);
    assert!(store.escalation([1; 32], [20; 16]).await.unwrap().is_some());
    assert_eq!(store.expire(expires).await.unwrap(), 3, "2's and 4's two steps");
    assert!(store.escalation([1; 32], [20; 16]).await.unwrap().is_none());
    assert!(!store.has_envelope([1; 32], [20; 16], [20; 32]).await.unwrap());
    let mut told: Vec<u8> = store
        .pending([1; 32], 0, 10, expires)
        .await
        .unwrap()
        .iter()
        .filter_map(|i| match i {
            Item::Expired {
                message_id, recipient, ..
            } if message_id == &[20; 16] => Some(recipient[0]),
            _ => None,
        })
        .collect();
    told.sort();
    assert_eq!(told, vec![2, 4]);
}
