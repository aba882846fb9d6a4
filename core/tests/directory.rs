//! The directory state machine, attacked one rule at a time.

mod common;

use common::*;
use pocnet_core::directory::state::STALE_AFTER_MS;
use pocnet_core::directory::{
    Action, ActionKind, Author, Category, Directory, DirectoryError, EntryError, Handle, LookupError, Rank, Refusal,
};
use pocnet_crypto::Identity;

use Category::{CyberPolicy, ForeignAffairs};
use Rank::{Alternate, Further, Primary};

fn refusal(r: Result<pocnet_core::directory::Applied, DirectoryError>) -> (u64, Refusal) {
    let e = r.expect_err("must be refused");
    // Every message names the entry.
    assert!(
        e.to_string().starts_with(&format!("log entry {} refused: ", e.index)),
        "{e}"
    );
    (e.index, e.refusal)
}

#[test]
fn enrolment_happy_path_and_report() {
    let mut w = World::new();
    let ana = identity("ana");
    let a = w.enrol(&ana, "CL", CyberPolicy, Primary);
    assert_eq!(a.index, 3);
    assert_eq!(a.kind, ActionKind::Approve);
    assert_eq!(a.added, vec![*ana.public_key()]);
    assert!(a.removed.is_empty());
    assert_eq!(
        a.handle_moves,
        vec![("CL.primary".to_string(), Some(*ana.public_key()))]
    );
    let p = w.dir.by_handle("CL.primary").expect("listed");
    assert_eq!(&p.key, ana.public_key());
    assert_eq!(p.enrolled_ms, a.time_ms);
    assert_eq!(p.confirmed_ms, a.time_ms);
    assert_eq!(p.enrolled_index, 3);
    assert_eq!(&p.nominated_by, w.cl.public_key());
    assert_eq!(p.state(), "CL");
    assert_eq!(w.dir.size(), 4);
    assert_eq!(w.dir.handle_of(ana.public_key()), Some("CL.primary".parse().unwrap()));
    assert_eq!(
        w.dir.handle_of(w.cl.public_key()),
        Some(Handle::Authority { state: "CL".into() })
    );
    assert_eq!(w.dir.handle_of(w.sec.public_key()), Some(Handle::Secretariat));
    assert!(w.dir.is_member(ana.public_key()));
    assert!(!w.dir.is_member(w.cl.public_key()));
}

#[test]
fn first_entry_must_be_genesis_by_the_anchor_key() {
    let sec = identity("secretariat");
    let other = identity("impostor");
    // Genesis signed by a key that is not the anchor.
    let mut d = Directory::new(ORIGIN, *sec.public_key());
    let g = Author::new(&other, ORIGIN).genesis(T0, vec![], 0).unwrap();
    let e = d.apply(g.as_bytes()).unwrap_err();
    assert_eq!(e.index, 0);
    assert!(
        matches!(
            e.refusal,
            Refusal::WrongAuthor {
                action: ActionKind::Genesis,
                ..
            }
        ),
        "{e}"
    );
    // Something other than Genesis first.
    let c = Author::new(&sec, ORIGIN).confirm(T0).unwrap();
    assert!(matches!(
        d.apply(c.as_bytes()).unwrap_err().refusal,
        Refusal::NotGenesis(ActionKind::Confirm)
    ));
    // Genesis with another key name.
    let g = Author::new(&sec, ORIGIN)
        .sign(
            T0,
            Action::Genesis {
                key_name: "other".into(),
                witnesses: vec![],
                quorum: 0,
            },
        )
        .unwrap();
    assert!(matches!(
        d.apply(g.as_bytes()).unwrap_err().refusal,
        Refusal::KeyName { .. }
    ));
    assert_eq!(d.size(), 0);
    // A second Genesis later.
    let mut w = World::new();
    let t = w.tick();
    let g2 = w.sec().genesis(t, vec![], 0).unwrap();
    assert_eq!(refusal(w.push(g2)), (3, Refusal::GenesisNotFirst));
}

#[test]
fn entry_signed_by_the_wrong_key_is_refused() {
    let mut w = World::new();
    let ana = identity("ana");
    let n = w.nomination(&identity("authority CL"), "CL", CyberPolicy, Primary, &ana);
    // An authority (not the Secretariat) signs the approval.
    let t = w.tick();
    let st = Author::new(&w.cl, ORIGIN).approve(t, &n, &ana.public(), t).unwrap();
    let (i, r) = refusal(w.push(st));
    assert_eq!(i, 3);
    assert!(
        matches!(
            r,
            Refusal::WrongAuthor {
                action: ActionKind::Approve,
                ..
            }
        ),
        "{r}"
    );
    // A POC tries to enrol an authority.
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    let t = w.tick();
    let st = Author::new(&ana, ORIGIN)
        .authority_enrol(t, "AR", ana.public_key(), "me", "")
        .unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::WrongAuthor { .. }));
    // The Secretariat tries to remove a POC (only its authority may).
    let t = w.tick();
    let st = w.sec().remove(t, "CL.primary", "no").unwrap();
    assert!(matches!(
        refusal(w.push(st)).1,
        Refusal::WrongAuthor {
            action: ActionKind::Remove,
            ..
        }
    ));
    // A stranger confirms.
    let t = w.tick();
    let st = Author::new(&identity("stranger"), ORIGIN).confirm(t).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::NotAPoc { .. }));
    assert!(w.dir.by_handle("CL.primary").is_some());
}

#[test]
fn nomination_by_another_states_authority_is_refused() {
    let mut w = World::new();
    let ana = identity("ana");
    let t = w.tick();
    let n = nominate_at(&w.mx, t, "CL", CyberPolicy, Primary, &ana);
    let (_, r) = refusal(w.approve(&n, &ana));
    assert_eq!(
        r,
        Refusal::OtherState {
            author_state: "MX".into(),
            state: "CL".into()
        }
    );
    // Nor may MX remove or re-rank a CL POC.
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    let t = w.tick();
    let st = Author::new(&w.mx, ORIGIN).remove(t, "CL.primary", "not ours").unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::OtherState { .. }));
    let st = Author::new(&w.mx, ORIGIN)
        .rank_change(t, "CL.primary", CyberPolicy, Alternate)
        .unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::OtherState { .. }));
    // A state with no authority.
    let t = w.tick();
    let n = nominate_at(&w.cl, t, "AR", CyberPolicy, Primary, &identity("bob"));
    assert_eq!(
        refusal(w.approve(&n, &identity("bob"))).1,
        Refusal::NoAuthority("AR".into())
    );
    // A removed authority no longer nominates.
    let t = w.tick();
    let st = w.sec().authority_remove(t, "MX").unwrap();
    let a = w.push(st).unwrap();
    assert_eq!(a.handle_moves, vec![("MX.authority".to_string(), None)]);
    let t = w.tick();
    let n = nominate_at(&w.mx, t, "MX", CyberPolicy, Primary, &identity("bob"));
    assert_eq!(
        refusal(w.approve(&n, &identity("bob"))).1,
        Refusal::NoAuthority("MX".into())
    );
}

#[test]
fn authority_key_replacement_retires_the_old_key() {
    let mut w = World::new();
    let new_cl = identity("authority CL 2");
    let t = w.tick();
    let st = w
        .sec()
        .authority_enrol(t, "CL", new_cl.public_key(), "New office", "MINREL")
        .unwrap();
    let a = w.push(st).unwrap();
    assert_eq!(
        a.handle_moves,
        vec![("CL.authority".to_string(), Some(*new_cl.public_key()))]
    );
    let bob = identity("bob");
    let t = w.tick();
    let n = nominate_at(&w.cl, t, "CL", CyberPolicy, Primary, &bob);
    assert!(matches!(refusal(w.approve(&n, &bob)).1, Refusal::WrongAuthor { .. }));
    let t = w.tick();
    let n = nominate_at(&new_cl, t, "CL", CyberPolicy, Primary, &bob);
    w.approve(&n, &bob).unwrap();
    // One key cannot be two states' authority.
    let t = w.tick();
    let st = w.sec().authority_enrol(t, "AR", new_cl.public_key(), "x", "").unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::KeyListed { .. }));
}

#[test]
fn nominate_outside_approve_is_refused() {
    let mut w = World::new();
    let ana = identity("ana");
    let n = w.nomination(&identity("authority CL"), "CL", CyberPolicy, Primary, &ana);
    assert_eq!(refusal(w.push(n)), (3, Refusal::BareNomination));
    // An Approve wrapping something that is not a Nominate.
    let t = w.tick();
    let inner = Author::new(&w.cl, ORIGIN).confirm(t).unwrap();
    let st = w.sec().approve(t, &inner, &ana.public(), t).unwrap();
    assert_eq!(refusal(w.push(st)).1, Refusal::NotANomination(ActionKind::Confirm));
    // An Approve wrapping garbage.
    let st = w
        .sec()
        .sign(
            t,
            Action::Approve {
                nomination: vec![1, 2, 3],
                public_identity: ana.public().to_bytes(),
                voice_checked_ms: t,
            },
        )
        .unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::Nomination(_)));
    // An Approve wrapping an Approve.
    let ok = w.nomination(&identity("authority CL"), "CL", CyberPolicy, Primary, &ana);
    let t = w.tick();
    let approve = w.sec().approve(t, &ok, &ana.public(), t).unwrap();
    let st = w.sec().approve(t, &approve, &ana.public(), t).unwrap();
    assert_eq!(refusal(w.push(st)).1, Refusal::NotANomination(ActionKind::Approve));
}

#[test]
fn fingerprint_mismatch_between_nomination_and_public_identity() {
    let mut w = World::new();
    let ana = identity("ana");
    let eve = identity("eve");
    let n = w.nomination(&identity("authority CL"), "CL", CyberPolicy, Primary, &ana);
    // The Secretariat is handed eve's public identity for ana's nomination.
    let (_, r) = refusal(w.approve(&n, &eve));
    assert!(matches!(r, Refusal::FingerprintMismatch { .. }), "{r}");
    // A public identity that does not verify.
    let t = w.tick();
    let mut bad = ana.public().to_bytes();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let st = w
        .sec()
        .sign(
            t,
            Action::Approve {
                nomination: n.as_bytes().to_vec(),
                public_identity: bad,
                voice_checked_ms: t,
            },
        )
        .unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::PublicIdentity(_)));
}

#[test]
fn approval_times_are_ordered() {
    let mut w = World::new();
    let ana = identity("ana");
    let t = w.tick();
    let n = nominate_at(&w.cl, t + 5000, "CL", CyberPolicy, Primary, &ana);
    let st = w.sec().approve(t, &n, &ana.public(), t).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::NominationAfterApproval { .. }));
    let n = nominate_at(&w.cl, t, "CL", CyberPolicy, Primary, &ana);
    let st = w.sec().approve(t, &n, &ana.public(), t + 1).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::VoiceCheckAfterApproval { .. }));
}

#[test]
fn handle_taken_and_key_already_listed() {
    let mut w = World::new();
    let (ana, bob) = (identity("ana"), identity("bob"));
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    let t = w.tick();
    let n = nominate_at(&w.cl, t, "CL", CyberPolicy, Primary, &bob);
    assert_eq!(
        refusal(w.approve(&n, &bob)).1,
        Refusal::HandleTaken("CL.primary".into())
    );
    // The same key for a second handle.
    let t = w.tick();
    let n = nominate_at(&w.cl, t, "CL", ForeignAffairs, Primary, &ana);
    assert!(matches!(refusal(w.approve(&n, &ana)).1, Refusal::KeyListed { .. }));
    // An authority's key nominated as a POC.
    let t = w.tick();
    let n = nominate_at(&w.mx, t, "MX", CyberPolicy, Primary, &w.mx);
    let st = w.sec().approve(t, &n, &w.mx.public(), t).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::KeyListed { .. }));
    // Different category, same rank: a different handle.
    w.enrol(&bob, "CL", ForeignAffairs, Primary);
    assert!(w.dir.by_handle("CL.fa-primary").is_some());
}

#[test]
fn same_nomination_cannot_be_approved_twice() {
    let mut w = World::new();
    let ana = identity("ana");
    let t = w.tick();
    let n = nominate_at(&w.cl, t, "CL", CyberPolicy, Primary, &ana);
    w.approve(&n, &ana).unwrap();
    let t = w.tick();
    let st = Author::new(&w.cl, ORIGIN).remove(t, "CL.primary", "left").unwrap();
    w.push(st).unwrap();
    // Replaying the old nomination after removal is refused; a fresh one is fine.
    assert_eq!(refusal(w.approve(&n, &ana)).1, Refusal::AlreadyApproved);
    w.enrol(&ana, "CL", CyberPolicy, Primary);
}

#[test]
fn revoked_key_cannot_be_renominated() {
    let mut w = World::new();
    let ana = identity("ana");
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    let t = w.tick();
    let st = Author::new(&ana, ORIGIN)
        .revoke(t, ana.public_key(), "laptop lost")
        .unwrap();
    let a = w.push(st).unwrap();
    assert_eq!(a.removed, vec![*ana.public_key()]);
    assert_eq!(a.handle_moves, vec![("CL.primary".to_string(), None)]);
    assert_eq!(w.dir.revoked_at(ana.public_key()), Some(4));
    assert!(w.dir.by_handle("CL.primary").is_none());
    assert!(w.dir.former()[0].revoked);
    let t = w.tick();
    let n = nominate_at(&w.cl, t, "CL", CyberPolicy, Alternate, &ana);
    assert_eq!(
        refusal(w.approve(&n, &ana)).1,
        Refusal::KeyRevoked {
            key: ana.fingerprint().short(),
            index: 4
        }
    );
    // Nor revoked twice, nor made an authority or the Secretariat.
    let t = w.tick();
    let st = w.sec().revoke(t, ana.public_key(), "again").unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::KeyRevoked { .. }));
    let st = w.sec().authority_enrol(t, "AR", ana.public_key(), "x", "").unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::KeyRevoked { .. }));
    let st = w.sec().secretariat_rotate(t, ana.public_key()).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::KeyRevoked { .. }));
}

#[test]
fn who_may_revoke() {
    let mut w = World::new();
    let (ana, bob, carl) = (identity("ana"), identity("bob"), identity("carl"));
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    w.enrol(&bob, "MX", CyberPolicy, Primary);
    w.enrol(&carl, "CL", CyberPolicy, Alternate);
    let t = w.tick();
    // Another POC, and another state's authority: refused.
    let st = Author::new(&bob, ORIGIN).revoke(t, ana.public_key(), "x").unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::WrongAuthor { .. }));
    let st = Author::new(&w.mx, ORIGIN).revoke(t, ana.public_key(), "x").unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::WrongAuthor { .. }));
    // Its own authority, and the Secretariat: accepted.
    let st = Author::new(&w.cl, ORIGIN)
        .revoke(t, ana.public_key(), "reported lost")
        .unwrap();
    w.push(st).unwrap();
    let st = w.sec().revoke(t, carl.public_key(), "reported lost").unwrap();
    w.push(st).unwrap();
    // The Secretariat may revoke a key never listed; an authority may not.
    let dan = identity("dan");
    let st = Author::new(&w.cl, ORIGIN).revoke(t, dan.public_key(), "x").unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::WrongAuthor { .. }));
    let st = w
        .sec()
        .revoke(t, dan.public_key(), "compromised before enrolment")
        .unwrap();
    let a = w.push(st).unwrap();
    assert!(a.removed.is_empty());
    // Authority and Secretariat keys are not revoked with Revoke.
    let st = w.sec().revoke(t, w.cl.public_key(), "x").unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::NotRevocable { .. }));
    let st = w.sec().revoke(t, w.sec.public_key(), "x").unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::NotRevocable { .. }));
}

#[test]
fn remove_and_rank_change() {
    let mut w = World::new();
    let (ana, bob) = (identity("ana"), identity("bob"));
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    w.enrol(&bob, "CL", CyberPolicy, Alternate);
    // RankChange to a taken handle.
    let t = w.tick();
    let st = Author::new(&w.cl, ORIGIN)
        .rank_change(t, "CL.alternate", CyberPolicy, Primary)
        .unwrap();
    assert_eq!(refusal(w.push(st)).1, Refusal::HandleTaken("CL.primary".into()));
    // RankChange to its own handle.
    let st = Author::new(&w.cl, ORIGIN)
        .rank_change(t, "CL.alternate", CyberPolicy, Alternate)
        .unwrap();
    assert_eq!(refusal(w.push(st)).1, Refusal::SameHandle("CL.alternate".into()));
    // Of a handle nobody holds.
    let st = Author::new(&w.cl, ORIGIN)
        .rank_change(t, "CL.further3", CyberPolicy, Further(4))
        .unwrap();
    assert_eq!(refusal(w.push(st)).1, Refusal::NoSuchHandle("CL.further3".into()));
    // To a free handle: the POC moves.
    let st = Author::new(&w.cl, ORIGIN)
        .rank_change(t, "CL.alternate", ForeignAffairs, Further(2))
        .unwrap();
    let a = w.push(st).unwrap();
    assert_eq!(
        a.handle_moves,
        vec![
            ("CL.alternate".to_string(), None),
            ("CL.fa-further2".to_string(), Some(*bob.public_key()))
        ]
    );
    assert!(w.dir.by_handle("CL.alternate").is_none());
    assert_eq!(&w.dir.by_handle("CL.fa-further2").unwrap().key, bob.public_key());
    // Remove frees the handle and records the POC as former.
    let t = w.tick();
    let st = Author::new(&w.cl, ORIGIN)
        .remove(t, "CL.primary", "changed post")
        .unwrap();
    let a = w.push(st).unwrap();
    assert_eq!(a.removed, vec![*ana.public_key()]);
    assert!(w.dir.by_handle("CL.primary").is_none());
    let f = &w.dir.former()[0];
    assert_eq!(
        (f.index, f.reason.as_str(), f.revoked),
        (a.index, "changed post", false)
    );
    assert_eq!(f.handle.to_string(), "CL.primary");
    // A removed POC can no longer update, and removing it again finds nothing.
    let t = w.tick();
    let st = Author::new(&ana, ORIGIN).confirm(t).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::NotAPoc { .. }));
    let st = Author::new(&w.cl, ORIGIN).remove(t, "CL.primary", "again").unwrap();
    assert_eq!(refusal(w.push(st)).1, Refusal::NoSuchHandle("CL.primary".into()));
    // The freed handle can be given to someone else.
    w.enrol(&identity("carl"), "CL", CyberPolicy, Primary);
}

#[test]
fn key_rotation_only_by_the_poc_itself() {
    let mut w = World::new();
    let (mut ana, bob) = (identity("ana"), identity("bob"));
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    w.enrol(&bob, "MX", CyberPolicy, Primary);
    ana.rotate_encryption_key(&mut SeededRng::new("ana rotation"), NOW + 10, YEAR)
        .unwrap();
    let t = w.tick();
    // bob signs a rotation carrying ana's new identity.
    let st = Author::new(&bob, ORIGIN).key_rotation(t, &ana.public()).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::RotationKeyMismatch { .. }));
    // a stranger signs its own.
    let eve = identity("eve");
    let st = Author::new(&eve, ORIGIN).key_rotation(t, &eve.public()).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::NotAPoc { .. }));
    // ana's own: accepted, record replaced.
    let st = Author::new(&ana, ORIGIN).key_rotation(t, &ana.public()).unwrap();
    let a = w.push(st).unwrap();
    assert_eq!(a.updated, Some(*ana.public_key()));
    assert!(a.added.is_empty() && a.removed.is_empty() && a.handle_moves.is_empty());
    let p = w.dir.by_handle("CL.primary").unwrap();
    assert_eq!(p.public.encryption_record().serial(), 2);
    // Replaying the same (or an older) record is refused.
    let st = Author::new(&ana, ORIGIN).key_rotation(t + 1, &ana.public()).unwrap();
    assert_eq!(
        refusal(w.push(st)).1,
        Refusal::SerialNotIncreasing { current: 2, found: 2 }
    );
}

#[test]
fn time_going_backwards_is_refused() {
    // Statements are published in the Secretariat's order, not their signers': time is
    // ordered per signer, so a POC's statement signed before the Secretariat's latest entry
    // is still accepted; the same signer going back is not.
    let mut w = World::new();
    let ana = identity("ana");
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    let st = Author::new(&ana, ORIGIN).confirm(w.t - 1).unwrap();
    w.push(st).unwrap();
    let st = Author::new(&ana, ORIGIN).confirm(w.t - 2).unwrap();
    let (i, r) = refusal(w.push(st));
    assert_eq!(
        (i, r),
        (
            5,
            Refusal::TimeBackwards {
                previous: w.t - 1,
                found: w.t - 2
            }
        )
    );
    // Equal time is fine (for another statement).
    let st = Author::new(&ana, ORIGIN)
        .contact_update(w.t - 1, contact("Ana"))
        .unwrap();
    w.push(st).unwrap();
}

#[test]
fn a_statement_is_never_applied_twice_nor_about_a_later_holder() {
    let mut w = World::new();
    let ana = identity("ana");
    let bob = identity("bob");
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    let t = w.tick();
    let confirm = Author::new(&ana, ORIGIN).confirm(t).unwrap();
    w.push(confirm.clone()).unwrap();
    assert_eq!(refusal(w.push(confirm)).1, Refusal::Replayed);
    // CL's authority signs ana's removal, the Secretariat holds it; meanwhile ana is removed
    // another way and bob gets CL.primary. The old removal must not hit bob.
    let old_removal = Author::new(&w.cl, ORIGIN).remove(w.t, "CL.primary", "left").unwrap();
    let t2 = w.tick();
    let st = Author::new(&w.cl, ORIGIN).remove(t2, "CL.primary", "left too").unwrap();
    w.push(st).unwrap();
    w.enrol(&bob, "CL", CyberPolicy, Primary);
    let r = refusal(w.push(old_removal)).1;
    assert!(
        matches!(r, Refusal::TimeBackwards { .. } | Refusal::OlderThanTarget { .. }),
        "{r:?}"
    );
    assert_eq!(w.dir.by_handle("CL.primary").unwrap().key, *bob.public_key());
}

#[test]
fn wrong_origin_is_refused() {
    let mut w = World::new();
    let ana = identity("ana");
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    let t = w.tick();
    let st = Author::new(&ana, "other.example/log").confirm(t).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::WrongOrigin { .. }));
    // A nomination made for another log, approved in this one.
    let bob = identity("bob");
    let n = Author::new(&w.cl, "other.example/log")
        .nominate(t, "CL", CyberPolicy, Alternate, contact("Bob"), &bob.public())
        .unwrap();
    assert!(matches!(refusal(w.approve(&n, &bob)).1, Refusal::WrongOrigin { .. }));
    // Genesis of another origin.
    let sec = identity("secretariat");
    let mut d = Directory::new(ORIGIN, *sec.public_key());
    let g = Author::new(&sec, "other.example/log").genesis(T0, vec![], 0).unwrap();
    assert!(matches!(
        d.apply(g.as_bytes()).unwrap_err().refusal,
        Refusal::WrongOrigin { .. }
    ));
}

#[test]
fn secretariat_rotation_hands_over_the_role() {
    let mut w = World::new();
    let new_sec = identity("secretariat 2");
    let t = w.tick();
    let st = w.sec().secretariat_rotate(t, new_sec.public_key()).unwrap();
    let a = w.push(st).unwrap();
    assert_eq!(
        a.handle_moves,
        vec![("secretariat".to_string(), Some(*new_sec.public_key()))]
    );
    assert_eq!(w.dir.secretariat(), new_sec.public_key());
    // The old key is no longer accepted...
    let ana = identity("ana");
    let t = w.tick();
    let n = nominate_at(&w.cl, t, "CL", CyberPolicy, Primary, &ana);
    assert!(matches!(refusal(w.approve(&n, &ana)).1, Refusal::WrongAuthor { .. }));
    let st = w.sec().secretariat_rotate(t, w.sec.public_key()).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::WrongAuthor { .. }));
    // ...the new one is.
    let st = Author::new(&new_sec, ORIGIN).approve(t, &n, &ana.public(), t).unwrap();
    w.push(st).unwrap();
    // Rotating to itself, or to a POC's key, is refused.
    let st = Author::new(&new_sec, ORIGIN)
        .secretariat_rotate(t, new_sec.public_key())
        .unwrap();
    assert_eq!(refusal(w.push(st)).1, Refusal::SameSecretariatKey);
    let st = Author::new(&new_sec, ORIGIN)
        .secretariat_rotate(t, ana.public_key())
        .unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::KeyListed { .. }));
}

#[test]
fn witness_policy_changes_only_by_the_secretariat() {
    let mut w = World::new();
    let wit = identity("witness");
    let t = w.tick();
    let policy = vec![pocnet_core::directory::WitnessKey {
        name: "witness.example".into(),
        key: *wit.public_key().as_bytes(),
    }];
    let st = Author::new(&w.cl, ORIGIN).witness_policy(t, policy.clone(), 1).unwrap();
    assert!(matches!(refusal(w.push(st)).1, Refusal::WrongAuthor { .. }));
    let st = w.sec().witness_policy(t, policy.clone(), 1).unwrap();
    w.push(st).unwrap();
    assert_eq!(w.dir.witness_policy().quorum, 1);
    assert_eq!(w.dir.witness_policy().witnesses[0].1, *wit.public_key());
    // A quorum above the witnesses listed cannot even be signed.
    assert!(w.sec().witness_policy(t, policy, 2).is_err());
}

#[test]
fn contact_update_and_confirm_refresh_staleness() {
    let mut w = World::new();
    let ana = identity("ana");
    let a = w.enrol(&ana, "CL", CyberPolicy, Primary);
    let enrolled = a.time_ms;
    let p = w.dir.by_handle("CL.primary").unwrap();
    assert!(!p.is_stale(enrolled + STALE_AFTER_MS));
    assert!(p.is_stale(enrolled + STALE_AFTER_MS + 1));
    assert!(!p.is_stale(enrolled + 364 * DAY_MS));
    assert!(p.is_stale(enrolled + 366 * DAY_MS));
    assert_eq!(w.dir.stale(enrolled + 366 * DAY_MS).len(), 1);
    // A confirmation 300 days later pushes staleness out.
    w.t = enrolled + 300 * DAY_MS;
    let st = Author::new(&ana, ORIGIN).confirm(w.t).unwrap();
    let a = w.push(st).unwrap();
    assert_eq!(a.updated, Some(*ana.public_key()));
    assert!(w.dir.stale(enrolled + 366 * DAY_MS).is_empty());
    assert!(!w.dir.stale(enrolled + 666 * DAY_MS).is_empty());
    // So does a contact update, which also replaces the details.
    w.t = enrolled + 600 * DAY_MS;
    let mut c = contact("Ana Pérez");
    c.phones.push("+56 9 1234 5678".into());
    let st = Author::new(&ana, ORIGIN).contact_update(w.t, c.clone()).unwrap();
    w.push(st).unwrap();
    let p = w.dir.by_handle("CL.primary").unwrap();
    assert_eq!(p.contact, c);
    assert_eq!(p.confirmed_ms, w.t);
    assert_eq!(p.enrolled_ms, enrolled);
    assert!(w.dir.stale(enrolled + 900 * DAY_MS).is_empty());
}

#[test]
fn lookups_are_exact() {
    let mut w = World::new();
    let (ana, bob, carl, dan) = (identity("ana"), identity("bob"), identity("carl"), identity("dan"));
    w.enrol(&bob, "CL", CyberPolicy, Alternate);
    w.enrol(&ana, "CL", CyberPolicy, Primary);
    w.enrol(&carl, "CL", ForeignAffairs, Primary);
    w.enrol(&dan, "MX", CyberPolicy, Further(3));
    assert!(w.dir.by_handle("CL.primary").is_some());
    // Cyrillic С (U+0421) for Latin C, Greek Ρ, lowercase, spaces, trailing dot: nothing.
    for lookalike in [
        "\u{0421}L.primary",
        "CL.\u{0440}rimary",
        "cl.primary",
        "CL.Primary",
        " CL.primary",
        "CL.primary.",
        "CL.primary\0",
    ] {
        assert!(w.dir.by_handle(lookalike).is_none(), "{lookalike:?}");
        assert!(lookalike.parse::<Handle>().is_err(), "{lookalike:?}");
    }
    // By state, in rank order, cyber policy first at each rank.
    let cl: Vec<String> = w.dir.by_state("CL").iter().map(|p| p.handle_text()).collect();
    assert_eq!(cl, ["CL.primary", "CL.fa-primary", "CL.alternate"]);
    assert!(w.dir.by_state("cl").is_empty());
    assert!(w.dir.by_state("\u{0421}L").is_empty());
    // Members sorted by handle.
    let all: Vec<String> = w.dir.members().iter().map(|p| p.handle_text()).collect();
    assert_eq!(all, ["CL.alternate", "CL.fa-primary", "CL.primary", "MX.further3"]);
    assert_eq!(w.dir.member_count(), 4);
    // Fingerprint prefixes.
    let fp = dan.fingerprint().to_hex();
    assert_eq!(&w.dir.by_fingerprint_prefix(&fp[..8]).unwrap().key, dan.public_key());
    assert_eq!(
        &w.dir.by_fingerprint_prefix(&fp.to_uppercase()).unwrap().key,
        dan.public_key()
    );
    assert_eq!(
        &w.dir
            .by_fingerprint_prefix(&dan.fingerprint().grouped()[..14])
            .unwrap()
            .key,
        dan.public_key()
    );
    assert!(matches!(
        w.dir.by_fingerprint_prefix(&fp[..7]),
        Err(LookupError::PrefixTooShort(_))
    ));
    assert!(matches!(
        w.dir.by_fingerprint_prefix(""),
        Err(LookupError::PrefixTooShort(_))
    ));
    assert!(matches!(
        w.dir.by_fingerprint_prefix("zzzzzzzzz"),
        Err(LookupError::NotHex(_))
    ));
    let none = if fp.starts_with('0') {
        "ffffffffff"
    } else {
        "0000000000"
    };
    assert!(matches!(
        w.dir.by_fingerprint_prefix(none),
        Err(LookupError::NoMatch(_))
    ));
    // A former member is not found.
    let t = w.tick();
    let st = Author::new(&w.mx, ORIGIN).remove(t, "MX.further3", "left").unwrap();
    w.push(st).unwrap();
    assert!(matches!(w.dir.by_fingerprint_prefix(&fp), Err(LookupError::NoMatch(_))));
    assert!(w.dir.by_key(dan.public_key()).is_none());
}

/// These two labels give identity keys whose fingerprints share their first 8 hex digits
/// (`e8225a4b`), found by a birthday search over labels.
const COLLIDING: [&str; 2] = ["fp-collide-43731", "fp-collide-60873"];

#[test]
fn fingerprint_prefix_ambiguity_is_an_error() {
    let a: Identity = identity(COLLIDING[0]);
    let b: Identity = identity(COLLIDING[1]);
    let (fa, fb) = (a.fingerprint().to_hex(), b.fingerprint().to_hex());
    assert_eq!(&fa[..8], &fb[..8], "the test's labels must collide");
    assert_ne!(&fa[..9], &fb[..9]);
    let mut w = World::new();
    w.enrol(&a, "CL", CyberPolicy, Primary);
    w.enrol(&b, "MX", CyberPolicy, Primary);
    let e = w
        .dir
        .by_fingerprint_prefix(&fa[..8])
        .map(|p| p.handle_text())
        .unwrap_err();
    assert_eq!(
        e,
        LookupError::Ambiguous {
            prefix: fa[..8].to_string(),
            count: 2
        }
    );
    assert!(e.to_string().contains("give more digits"));
    assert_eq!(&w.dir.by_fingerprint_prefix(&fa[..9]).unwrap().key, a.public_key());
    assert_eq!(&w.dir.by_fingerprint_prefix(&fb[..9]).unwrap().key, b.public_key());
}

#[test]
fn malformed_leaf_is_refused_with_its_index() {
    let mut w = World::new();
    let e = w.push_bytes(vec![1, 2, 3]).unwrap_err();
    assert_eq!(e.index, 3);
    assert!(matches!(e.refusal, Refusal::Malformed(EntryError::TooShort(3))));
    assert_eq!(
        e.to_string(),
        "log entry 3 refused: statement is only 3 bytes, too short to be one"
    );
    assert_eq!(w.dir.size(), 3);
}
