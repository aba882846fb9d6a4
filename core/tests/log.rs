//! The log verifier: first sync, extension, forks, witnesses and heads.

mod common;

use common::*;
use pocnet_core::directory::{Anchor, Author, Category, HeadCheck, LogError, LogState, Rank, Refusal, WitnessKey};
use pocnet_crypto::note::{sign_note, SignedNote};
use pocnet_crypto::tlog::Hash;
use proptest::prelude::*;

use Category::{CyberPolicy, ForeignAffairs};
use Rank::{Alternate, Primary};

/// A world with two POCs and a few updates: 9 leaves.
fn world() -> World {
    let mut w = World::new();
    w.enrol(&identity("ana"), "CL", CyberPolicy, Primary);
    w.enrol(&identity("bob"), "MX", CyberPolicy, Primary);
    let ana = identity("ana");
    for _ in 0..3 {
        let t = w.tick();
        let st = Author::new(&ana, ORIGIN).confirm(t).unwrap();
        w.push(st).unwrap();
    }
    w.enrol(&identity("carl"), "CL", ForeignAffairs, Alternate);
    w
}

fn fork_of(e: LogError) -> pocnet_core::directory::ForkEvidence {
    match e {
        LogError::Fork(f) => *f,
        other => panic!("expected a fork, got {other}"),
    }
}

#[test]
fn verify_all_happy_path() {
    let w = world();
    let note = checkpoint(&w.sec, ORIGIN, &w.leaves);
    // The note survives its text form.
    let note = SignedNote::parse(&note.to_text()).unwrap();
    let log = LogState::verify_all(&anchor(&w.sec), &w.leaves, &note).unwrap();
    assert_eq!(log.size(), w.leaves.len() as u64);
    assert_eq!(log.checkpoint().root, root_of(&w.leaves));
    assert_eq!(log.directory().member_count(), 3);
    assert!(log.directory().by_handle("CL.fa-alternate").is_some());
    assert_eq!(log.note(), &note);
    // Anchors round-trip through the vkey text.
    let a = anchor(&w.sec);
    assert_eq!(Anchor::from_vkey(&a.vkey()).unwrap(), a);
    assert!(matches!(Anchor::from_vkey("nonsense"), Err(LogError::BadAnchor(_))));
}

#[test]
fn verify_all_refusals() {
    let w = world();
    let note = checkpoint(&w.sec, ORIGIN, &w.leaves);
    // Another anchor key: Genesis is refused.
    let other = identity("other secretariat");
    let e = LogState::verify_all(&anchor(&other), &w.leaves, &note).unwrap_err();
    assert!(
        matches!(
            e,
            LogError::Invalid {
                index: 0,
                reason: Refusal::WrongAuthor { .. }
            }
        ),
        "{e}"
    );
    // Another origin in the anchor.
    let a = Anchor {
        origin: "other.example/log".into(),
        key: *w.sec.public_key(),
    };
    assert!(matches!(
        LogState::verify_all(&a, &w.leaves, &note),
        Err(LogError::BadCheckpoint(_))
    ));
    // Fewer leaves than the checkpoint.
    let e = LogState::verify_all(&anchor(&w.sec), &w.leaves[..5], &note).unwrap_err();
    assert_eq!(e, LogError::LeafCount { need: 9, have: 5 });
    // Leaves in another order.
    let mut swapped = w.leaves.clone();
    swapped.swap(4, 5);
    let e = LogState::verify_all(&anchor(&w.sec), &swapped, &note).unwrap_err();
    assert_eq!(e, LogError::RootMismatch { size: 9 });
    // A checkpoint signed by a key that is not the Secretariat's: invalid, not a fork.
    let forged = checkpoint(&other, ORIGIN, &w.leaves);
    let e = LogState::verify_all(&anchor(&w.sec), &w.leaves, &forged).unwrap_err();
    assert!(matches!(e, LogError::BadCheckpoint(_)), "{e}");
    // The empty log.
    let empty = checkpoint(&w.sec, ORIGIN, &[]);
    assert!(matches!(
        LogState::verify_all(&anchor(&w.sec), &[], &empty),
        Err(LogError::BadCheckpoint(_))
    ));
}

#[test]
fn a_log_containing_an_invalid_entry_is_refused_even_if_signed() {
    let mut w = world();
    // The Secretariat (or a broken server) appended an entry signed by the wrong key.
    let t = w.tick();
    let bad = Author::new(&identity("bob"), ORIGIN)
        .remove(t, "CL.primary", "x")
        .unwrap();
    w.leaves.push(bad.into_bytes());
    let note = checkpoint(&w.sec, ORIGIN, &w.leaves);
    let e = LogState::verify_all(&anchor(&w.sec), &w.leaves, &note).unwrap_err();
    assert!(matches!(e, LogError::Invalid { index: 9, .. }), "{e}");
    assert!(e.to_string().starts_with("log entry 9 refused"));
}

#[test]
fn extend_with_consistency_proof() {
    let mut w = world();
    let n0 = w.leaves.len();
    let mut log = LogState::verify_all(&anchor(&w.sec), &w.leaves, &checkpoint(&w.sec, ORIGIN, &w.leaves)).unwrap();
    let old_head = log.head();
    let dan = identity("dan");
    w.enrol(&dan, "MX", CyberPolicy, Alternate);
    let t = w.tick();
    w.push(Author::new(&dan, ORIGIN).confirm(t).unwrap()).unwrap();
    let note = checkpoint(&w.sec, ORIGIN, &w.leaves);
    let applied = log
        .extend(&w.leaves[n0..], &note, &proof(&w.leaves, n0 as u64))
        .unwrap();
    assert_eq!(applied.len(), 2);
    assert_eq!(applied[0].added, vec![*dan.public_key()]);
    assert_eq!(log.size(), w.leaves.len() as u64);
    assert!(log.directory().by_handle("MX.alternate").is_some());
    assert_eq!(log.check_head(old_head), HeadCheck::Older);
    // The same checkpoint again: accepted, nothing new.
    assert!(log.extend(&[], &note, &[]).unwrap().is_empty());
    // An older one that matches: not newer.
    let old = checkpoint(&w.sec, ORIGIN, &w.leaves[..n0]);
    assert_eq!(
        log.extend(&[], &old, &[]).unwrap_err(),
        LogError::NotNewer {
            ours: n0 as u64 + 2,
            theirs: n0 as u64
        }
    );
    // Proofs the log serves verify.
    let p = log.consistency_proof(n0 as u64).unwrap();
    assert_eq!(p, proof(&w.leaves, n0 as u64));
}

#[test]
fn extend_with_a_bad_consistency_proof_is_refused() {
    let mut w = world();
    let n0 = w.leaves.len();
    let mut log = LogState::verify_all(&anchor(&w.sec), &w.leaves, &checkpoint(&w.sec, ORIGIN, &w.leaves)).unwrap();
    let before = log.head();
    w.enrol(&identity("dan"), "MX", CyberPolicy, Alternate);
    let note = checkpoint(&w.sec, ORIGIN, &w.leaves);
    let good = proof(&w.leaves, n0 as u64);
    let mut bad = good.clone();
    bad[0][0] ^= 1;
    for p in [
        bad,
        vec![],
        good[..good.len() - 1].to_vec(),
        [good.clone(), good.clone()].concat(),
    ] {
        let e = log.extend(&w.leaves[n0..], &note, &p).unwrap_err();
        assert!(matches!(e, LogError::BadProof { .. }), "{e}");
        assert_eq!(log.head(), before, "nothing changed");
    }
    // Wrong leaves with a good proof: the leaves are refused, not the checkpoint.
    let t = w.tick();
    let other = Author::new(&identity("ana"), ORIGIN).confirm(t).unwrap().into_bytes();
    let e = log.extend(&[other], &note, &good).unwrap_err();
    assert_eq!(e, LogError::RootMismatch { size: n0 as u64 + 1 });
    let e = log.extend(&[], &note, &good).unwrap_err();
    assert_eq!(e, LogError::LeafCount { need: 1, have: 0 });
    // The good proof is accepted.
    log.extend(&w.leaves[n0..], &note, &good).unwrap();
    assert_eq!(log.size(), n0 as u64 + 1);
}

#[test]
fn rewritten_history_is_a_fork_with_both_notes() {
    let mut w = world();
    let n0 = w.leaves.len();
    let ours_note = checkpoint(&w.sec, ORIGIN, &w.leaves);
    let mut log = LogState::verify_all(&anchor(&w.sec), &w.leaves, &ours_note).unwrap();
    // Rewrite leaf 5 (a confirmation by ana) with a different, validly signed one, add a leaf,
    // and have the real Secretariat key sign the rewritten tree.
    let mut rewritten = w.leaves.clone();
    let ana = identity("ana");
    rewritten[5] = Author::new(&ana, ORIGIN).confirm(T0 + 6500).unwrap().into_bytes();
    let t = w.tick();
    rewritten.push(Author::new(&ana, ORIGIN).confirm(t).unwrap().into_bytes());
    let theirs = checkpoint(&w.sec, ORIGIN, &rewritten);
    // The relay's proof is honest for its own tree, but ours is not a prefix of it.
    let p = proof(&rewritten, n0 as u64);
    let f = fork_of(log.extend(&rewritten[n0..], &theirs, &p).unwrap_err());
    assert_eq!(f.ours, ours_note.to_text());
    assert_eq!(f.theirs, theirs.to_text());
    assert_eq!(log.size(), n0 as u64, "nothing changed");
    // The same rewrite signed by someone else is merely invalid.
    let forged = checkpoint(&identity("mallory"), ORIGIN, &rewritten);
    assert!(matches!(
        log.extend(&rewritten[n0..], &forged, &p),
        Err(LogError::BadCheckpoint(_))
    ));
    // A rewritten tree of the same size is a fork too; and an older one.
    let mut same = w.leaves.clone();
    same[5] = rewritten[5].clone();
    let f = fork_of(log.extend(&[], &checkpoint(&w.sec, ORIGIN, &same), &[]).unwrap_err());
    assert_eq!(f.ours, ours_note.to_text());
    let f = fork_of(
        log.extend(&[], &checkpoint(&w.sec, ORIGIN, &same[..7]), &[])
            .unwrap_err(),
    );
    assert!(f.theirs.starts_with(&format!("{ORIGIN}\n7\n")));
}

#[test]
fn same_size_different_root_is_a_fork_only_if_signed() {
    let w = world();
    let note = checkpoint(&w.sec, ORIGIN, &w.leaves);
    let mut log = LogState::verify_all(&anchor(&w.sec), &w.leaves, &note).unwrap();
    let mut cp = note.checkpoint().unwrap();
    cp.root[0] ^= 1;
    let body = cp.body();
    let signed = SignedNote {
        signatures: vec![sign_note(&body, ORIGIN, &w.sec)],
        body: body.clone(),
    };
    let f = fork_of(log.extend(&[], &signed, &[]).unwrap_err());
    assert_eq!((f.ours, f.theirs), (note.to_text(), signed.to_text()));
    // Signed by a non-Secretariat key: invalid, not a fork.
    let forged = SignedNote {
        signatures: vec![sign_note(&body, ORIGIN, &identity("mallory"))],
        body: body.clone(),
    };
    assert!(matches!(log.extend(&[], &forged, &[]), Err(LogError::BadCheckpoint(_))));
    // Our real checkpoint's signature line glued onto the altered body: invalid.
    let glued = SignedNote {
        signatures: note.signatures.clone(),
        body,
    };
    assert!(matches!(log.extend(&[], &glued, &[]), Err(LogError::BadCheckpoint(_))));
    // A checkpoint for another origin.
    let other = checkpoint(&w.sec, "other.example/log", &w.leaves);
    assert!(matches!(log.extend(&[], &other, &[]), Err(LogError::BadCheckpoint(_))));
}

#[test]
fn checkpoint_signed_by_a_non_secretariat_key_is_invalid_on_extend() {
    let mut w = world();
    let n0 = w.leaves.len();
    let mut log = LogState::verify_all(&anchor(&w.sec), &w.leaves, &checkpoint(&w.sec, ORIGIN, &w.leaves)).unwrap();
    w.enrol(&identity("dan"), "MX", CyberPolicy, Alternate);
    for signer in [&w.cl, &identity("mallory")] {
        let forged = checkpoint(signer, ORIGIN, &w.leaves);
        let e = log
            .extend(&w.leaves[n0..], &forged, &proof(&w.leaves, n0 as u64))
            .unwrap_err();
        assert!(matches!(e, LogError::BadCheckpoint(_)), "{e}");
    }
    assert_eq!(log.size(), n0 as u64);
}

#[test]
fn secretariat_rotation_changes_the_checkpoint_key() {
    let mut w = world();
    let n0 = w.leaves.len();
    let mut log = LogState::verify_all(&anchor(&w.sec), &w.leaves, &checkpoint(&w.sec, ORIGIN, &w.leaves)).unwrap();
    let sec2 = identity("secretariat 2");
    let t = w.tick();
    w.push(w.sec().secretariat_rotate(t, sec2.public_key()).unwrap())
        .unwrap();
    let p = proof(&w.leaves, n0 as u64);
    // Signed with the old key after the rotation: refused.
    let old_signed = checkpoint(&w.sec, ORIGIN, &w.leaves);
    assert!(matches!(
        log.extend(&w.leaves[n0..], &old_signed, &p),
        Err(LogError::BadCheckpoint(_))
    ));
    // With the new key: accepted.
    let new_signed = checkpoint(&sec2, ORIGIN, &w.leaves);
    log.extend(&w.leaves[n0..], &new_signed, &p).unwrap();
    assert_eq!(log.directory().secretariat(), sec2.public_key());
    // From scratch, the same.
    assert!(LogState::verify_all(&anchor(&w.sec), &w.leaves, &new_signed).is_ok());
    assert!(matches!(
        LogState::verify_all(&anchor(&w.sec), &w.leaves, &old_signed),
        Err(LogError::BadCheckpoint(_))
    ));
    // An older checkpoint is still checked under the key in force at its size.
    let older = checkpoint(&w.sec, ORIGIN, &w.leaves[..n0]);
    assert!(matches!(log.extend(&[], &older, &[]), Err(LogError::NotNewer { .. })));
    let older_wrong_key = checkpoint(&sec2, ORIGIN, &w.leaves[..n0]);
    assert!(matches!(
        log.extend(&[], &older_wrong_key, &[]),
        Err(LogError::BadCheckpoint(_))
    ));
}

#[test]
fn witness_quorum_one_of_two() {
    let (w1, w2, stranger) = (identity("witness 1"), identity("witness 2"), identity("witness 3"));
    let policy = vec![
        WitnessKey {
            name: "w1.example".into(),
            key: *w1.public_key().as_bytes(),
        },
        WitnessKey {
            name: "w2.example".into(),
            key: *w2.public_key().as_bytes(),
        },
    ];
    let mut w = World::with_witnesses(policy, 1);
    w.enrol(&identity("ana"), "CL", CyberPolicy, Primary);
    let a = anchor(&w.sec);
    let bare = checkpoint(&w.sec, ORIGIN, &w.leaves);
    assert_eq!(
        LogState::verify_all(&a, &w.leaves, &bare).unwrap_err(),
        LogError::Quorum { have: 0, need: 1 }
    );
    // A cosignature by a witness not in the policy, or under another name, does not count.
    let by_stranger = cosigned(bare.clone(), "w3.example", &stranger);
    assert!(matches!(
        LogState::verify_all(&a, &w.leaves, &by_stranger),
        Err(LogError::Quorum { have: 0, .. })
    ));
    let misnamed = cosigned(bare.clone(), "w2.example", &w1);
    assert!(matches!(
        LogState::verify_all(&a, &w.leaves, &misnamed),
        Err(LogError::Quorum { have: 0, .. })
    ));
    // A cosignature over another body does not count.
    let mut moved = cosigned(checkpoint(&w.sec, ORIGIN, &w.leaves[..3]), "w1.example", &w1);
    moved.body = bare.body.clone();
    moved.signatures[0] = bare.signatures[0].clone();
    assert!(matches!(
        LogState::verify_all(&a, &w.leaves, &moved),
        Err(LogError::Quorum { have: 0, .. })
    ));
    // One real witness is enough.
    let one = cosigned(bare.clone(), "w2.example", &w2);
    let mut log = LogState::verify_all(&a, &w.leaves, &one).unwrap();
    // On extend, the policy in force at our checkpoint decides, even if the new leaves lower it.
    let n0 = w.leaves.len();
    let t = w.tick();
    w.push(w.sec().witness_policy(t, vec![], 0).unwrap()).unwrap();
    let p = proof(&w.leaves, n0 as u64);
    let bare = checkpoint(&w.sec, ORIGIN, &w.leaves);
    assert_eq!(
        log.extend(&w.leaves[n0..], &bare, &p).unwrap_err(),
        LogError::Quorum { have: 0, need: 1 }
    );
    log.extend(&w.leaves[n0..], &cosigned(bare, "w1.example", &w1), &p)
        .unwrap();
    // Now the policy is 0-of-0: a bare checkpoint is accepted.
    let n1 = w.leaves.len();
    w.enrol(&identity("bob"), "MX", CyberPolicy, Primary);
    let bare = checkpoint(&w.sec, ORIGIN, &w.leaves);
    log.extend(&w.leaves[n1..], &bare, &proof(&w.leaves, n1 as u64))
        .unwrap();
}

#[test]
fn heads_same_older_behind_fork() {
    let mut w = world();
    let n0 = w.leaves.len();
    let log0 = LogState::verify_all(&anchor(&w.sec), &w.leaves, &checkpoint(&w.sec, ORIGIN, &w.leaves)).unwrap();
    w.enrol(&identity("dan"), "MX", CyberPolicy, Alternate);
    let log1 = LogState::verify_all(&anchor(&w.sec), &w.leaves, &checkpoint(&w.sec, ORIGIN, &w.leaves)).unwrap();
    let h0 = log0.head();
    let h1 = log1.head();
    assert_eq!(&h0[..8], &(n0 as u64).to_be_bytes());
    assert_eq!(&h0[8..], &root_of(&w.leaves[..n0])[..24]);
    assert_eq!(log0.check_head(h0), HeadCheck::Same);
    assert_eq!(log1.check_head(h1), HeadCheck::Same);
    assert_eq!(log1.check_head(h0), HeadCheck::Older);
    assert_eq!(log0.check_head(h1), HeadCheck::Behind(n0 as u64 + 1));
    // A root we do not have at a size we hold.
    let mut bad = h1;
    bad[31] ^= 1;
    assert_eq!(log1.check_head(bad), HeadCheck::Fork);
    let mut bad_old = h0;
    bad_old[8] ^= 1;
    assert_eq!(log1.check_head(bad_old), HeadCheck::Fork);
    // Every older size of our own tree is Older.
    for size in 0..n0 as u64 {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&size.to_be_bytes());
        h[8..].copy_from_slice(&log1.root_at(size).unwrap()[..24]);
        assert_eq!(log1.check_head(h), HeadCheck::Older);
    }
    assert_eq!(log1.root_at(n0 as u64 + 2), None);
}

fn shared_world() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(world)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Syncing to any prefix, then extending to any longer prefix, gives the same state as
    /// verifying the longer prefix from scratch.
    #[test]
    fn extend_from_any_prefix(a in 1usize..=9, b in 1usize..=9) {
        let (a, b) = (a.min(b), a.max(b));
        let w = shared_world();
        let l = &w.leaves;
        let mut log = LogState::verify_all(&anchor(&w.sec), &l[..a], &checkpoint(&w.sec, ORIGIN, &l[..a])).unwrap();
        let note = checkpoint(&w.sec, ORIGIN, &l[..b]);
        let r = log.extend(&l[a..b], &note, &proof(&l[..b], a as u64));
        if a == b {
            prop_assert!(r.unwrap().is_empty());
        } else {
            prop_assert_eq!(r.unwrap().len(), b - a);
        }
        let fresh = LogState::verify_all(&anchor(&w.sec), &l[..b], &note).unwrap();
        prop_assert_eq!(log.head(), fresh.head());
        prop_assert_eq!(log.directory().member_count(), fresh.directory().member_count());
    }

    /// Any single-bit change in a consistency proof is refused and changes nothing.
    #[test]
    fn tampered_proof_refused(a in 1usize..9, bit in 0usize..(32 * 8), which in any::<prop::sample::Index>()) {
        let w = shared_world();
        let l = &w.leaves;
        let mut log = LogState::verify_all(&anchor(&w.sec), &l[..a], &checkpoint(&w.sec, ORIGIN, &l[..a])).unwrap();
        let note = checkpoint(&w.sec, ORIGIN, l);
        let mut p: Vec<Hash> = proof(l, a as u64);
        let i = which.index(p.len());
        p[i][bit / 8] ^= 1 << (bit % 8);
        let before = log.head();
        let refused = matches!(log.extend(&l[a..], &note, &p), Err(LogError::BadProof { .. }));
        prop_assert!(refused, "tampered proof accepted");
        prop_assert_eq!(log.head(), before);
    }
}
