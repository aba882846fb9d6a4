//! The relay's decisions without sockets: the service over a real SQLite store and a clock
//! the test drives. Every refusal rule and state change of request handling is here.
//!
//! Members exist only through the directory log, as in a real deployment: the world's
//! Secretariat begins the log, enrols national authorities and approves their nominations
//! with `pocnet_core`'s `Publisher`, and every change reaches the relay as a `LogAppend`
//! (the world is `common/mod.rs`, shared with `escalation.rs`).

use pocnet_core::directory::{Author, Category, Publisher, Rank, Statement};
use pocnet_crypto::note::{cosign, NoteSignature, NoteVerifier, SignedNote, Witness};
use pocnet_crypto::tlog;
use pocnet_crypto::{Identity, Receipt, ReceiptKind};
use pocnet_relay::clock::Clock;
use pocnet_relay::service::{Kind, UploadPlan, LOG_PAGE_LEAVES};
use pocnet_relay::store::{Members, Queue};
use pocnet_relay::Config;
use pocnet_wire::{verify_acceptance, Cancel, Delivery, ErrorCode, Request, Response};

mod common;
use common::*;

#[test]
fn send_refuses_oversize_forged_tampered_and_undeliverable_envelopes() {
    rt().block_on(async {
        let w = world(Config {
            max_envelope_bytes: 4096,
            ..Config::default()
        })
        .await;
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
        let c = w.member("US", "primary").await;
        assert_eq!(code(&w.send(&a, vec![0; 4097]).await), Some(ErrorCode::TooLarge));
        // Signed by b, sent on a's connection.
        assert_eq!(
            code(&w.send(&a, sealed(&b, &[&c]).bytes).await),
            Some(ErrorCode::NotSender)
        );
        let mut bad = sealed(&a, &[&b]).bytes;
        let n = bad.len();
        bad[n - 100] ^= 1;
        assert_eq!(code(&w.send(&a, bad).await), Some(ErrorCode::BadEnvelope));
        // A block without c's stanza: c could never open it, so it is refused at send.
        let both = sealed(&a, &[&b, &c]);
        let only_b = pocnet_crypto::trim_for_recipient(&both.bytes, b.public_key().as_bytes()).unwrap();
        let r = w.send(&a, only_b).await;
        assert_eq!(code(&r), Some(ErrorCode::BadEnvelope), "{r:?}");
        // Nothing of the refused ones reached any queue.
        for who in [&b, &c] {
            assert!(w.svc.backlog(who.public_key(), 0).await.unwrap().is_empty());
        }
    });
}

#[test]
fn acceptance_is_proved_by_the_relay_key_once_and_a_reused_id_is_refused() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
        let s = sealed(&a, &[&b]);
        let (stored, proof) = match w.send(&a, s.bytes.clone()).await {
            Response::Accepted {
                envelope_hash,
                stored_at_ms,
                duplicate: false,
                proof,
                ..
            } => {
                assert_eq!(envelope_hash, s.envelope_hash);
                assert_eq!(stored_at_ms, T0);
                (stored_at_ms, proof)
            }
            other => panic!("{other:?}"),
        };
        verify_acceptance(w.relay.public_key(), &s.envelope_hash, stored, &proof).unwrap();
        assert!(verify_acceptance(a.public_key(), &s.envelope_hash, stored, &proof).is_err());
        w.clock.advance(5_000);
        match w.send(&a, s.bytes.clone()).await {
            Response::Accepted {
                duplicate: true,
                stored_at_ms,
                ..
            } => assert_eq!(stored_at_ms, stored, "a retry keeps the first time"),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.svc.backlog(b.public_key(), 0).await.unwrap().len(), 1, "stored once");
    });
}

#[test]
fn every_request_type_has_its_own_rate_limit_refilled_by_the_clock() {
    rt().block_on(async {
        let w = world(Config {
            rate_per_sec: 1.0,
            rate_burst: 2.0,
            request_rate_per_sec: 1.0,
            request_burst: 2.0,
            ..Config::default()
        })
        .await;
        // One append for both: the Secretariat's appends have their own limit too.
        let mut ab = w.members(&[("CL", "primary"), ("MX", "primary")]).await;
        let (b, a) = (ab.pop().unwrap(), ab.pop().unwrap());
        let lookup = || Request::Lookup { query: "*".into() };
        for _ in 0..2 {
            assert!(matches!(
                w.svc.handle(a.public_key(), lookup()).await,
                Response::Directory { .. }
            ));
        }
        assert_eq!(
            code(&w.svc.handle(a.public_key(), lookup()).await),
            Some(ErrorCode::RateLimited)
        );
        // Other request types and other keys have their own buckets.
        assert!(matches!(
            w.send(&a, sealed(&a, &[&b]).bytes).await,
            Response::Accepted { .. }
        ));
        assert!(matches!(
            w.svc.handle(b.public_key(), lookup()).await,
            Response::Directory { .. }
        ));
        assert!(matches!(
            w.send(&a, sealed(&a, &[&b]).bytes).await,
            Response::Accepted { .. }
        ));
        assert_eq!(
            code(&w.send(&a, sealed(&a, &[&b]).bytes).await),
            Some(ErrorCode::RateLimited)
        );
        for kind in [Kind::Watch, Kind::GetBlob, Kind::Hello, Kind::Hold] {
            assert!(w.svc.admit(a.public_key(), kind).await.is_ok());
            assert!(w.svc.admit(a.public_key(), kind).await.is_ok());
            assert_eq!(
                code(&w.svc.admit(a.public_key(), kind).await.unwrap_err()),
                Some(ErrorCode::RateLimited)
            );
        }
        w.clock.advance(1_000);
        assert!(matches!(
            w.svc.handle(a.public_key(), lookup()).await,
            Response::Directory { .. }
        ));
        assert!(matches!(
            w.send(&a, sealed(&a, &[&b]).bytes).await,
            Response::Accepted { .. }
        ));
    });
}

#[test]
fn keys_that_are_not_enrolled_share_one_budget_however_many_there_are() {
    rt().block_on(async {
        let w = world(Config {
            unenrolled_rate_per_sec: 2.0,
            ..Config::default()
        })
        .await;
        let hello = || Request::Hello {
            protocol: pocnet_wire::PROTOCOL_VERSION,
        };
        // The Secretariat's key was not listed when it began the log: let that token refill.
        w.clock.advance(10_000);
        let mut refused = 0;
        for _ in 0..20 {
            if code(&w.svc.handle(id().public_key(), hello()).await) == Some(ErrorCode::RateLimited) {
                refused += 1;
            }
        }
        assert_eq!(refused, 10, "burst of 10 (5 × 2/s), then refused, whatever the key");
        // Members are not held back by strangers.
        w.clock.advance(10_000);
        let a = w.member("CL", "primary").await;
        for _ in 0..20 {
            let _ = w.svc.handle(id().public_key(), hello()).await;
        }
        assert!(matches!(
            w.svc.handle(a.public_key(), hello()).await,
            Response::Welcome { .. }
        ));
    });
}

#[test]
fn receipts_must_be_signed_by_the_connection_for_that_sender_and_an_active_member() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
        let c = w.member("US", "primary").await;
        // a really sent a message to b.
        let s = sealed(&a, &[&b]);
        assert!(matches!(w.send(&a, s.bytes.clone()).await, Response::Accepted { .. }));
        let (mid, hash) = (s.message_id, s.envelope_hash);
        let r = |signer: &Identity, sender: &Identity| {
            Receipt::sign(signer, ReceiptKind::Read, mid, hash, sender.public_key(), T0)
                .as_bytes()
                .to_vec()
        };
        let to = |who: &Identity| *who.public_key().as_bytes();
        let ask = |receipt, to| Request::SendReceipt { to, receipt };
        // Signed by c, sent by b.
        assert_eq!(
            code(&w.svc.handle(b.public_key(), ask(r(&c, &a), to(&a))).await),
            Some(ErrorCode::BadEnvelope)
        );
        // About a's message, addressed to c.
        assert_eq!(
            code(&w.svc.handle(b.public_key(), ask(r(&b, &a), to(&c))).await),
            Some(ErrorCode::Malformed)
        );
        let stranger = id();
        assert_eq!(
            code(&w.svc.handle(b.public_key(), ask(r(&b, &stranger), to(&stranger))).await),
            Some(ErrorCode::UnknownRecipient)
        );
        // About a message a never sent (a made-up id and hash): refused, nothing queued.
        let minted = Receipt::sign(&b, ReceiptKind::Read, [1; 16], [2; 32], a.public_key(), T0)
            .as_bytes()
            .to_vec();
        assert_eq!(
            code(&w.svc.handle(b.public_key(), ask(minted, to(&a))).await),
            Some(ErrorCode::NotFound)
        );
        assert!(w.svc.backlog(a.public_key(), 0).await.unwrap().is_empty());
        assert_eq!(
            w.svc.handle(b.public_key(), ask(r(&b, &a), to(&a))).await,
            Response::Done
        );
        assert_eq!(w.svc.backlog(a.public_key(), 0).await.unwrap().len(), 1);
    });
}

#[test]
fn undelivered_messages_expire_in_simulated_time_and_the_sender_is_told() {
    rt().block_on(async {
        let w = world(Config {
            ttl_secs: 7 * 24 * 3600,
            ..Config::default()
        })
        .await;
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
        let s = sealed(&a, &[&b]);
        assert!(matches!(w.send(&a, s.bytes).await, Response::Accepted { .. }));
        w.clock.advance(7 * 24 * 3600 * 1000 - 1);
        w.svc.sweep().await;
        assert_eq!(
            w.svc.backlog(b.public_key(), 0).await.unwrap().len(),
            1,
            "a week less 1 ms: kept"
        );
        w.clock.advance(1);
        w.svc.sweep().await;
        assert!(w.svc.backlog(b.public_key(), 0).await.unwrap().is_empty());
        match &w.svc.backlog(a.public_key(), 0).await.unwrap()[..] {
            [pocnet_relay::store::Item::Expired {
                message_id, recipient, ..
            }] => {
                assert_eq!(message_id, &s.message_id);
                assert_eq!(recipient, b.public_key().as_bytes());
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn watch_streams_per_key_are_bounded() {
    rt().block_on(async {
        let w = world(Config {
            max_watchers_per_key: 2,
            ..Config::default()
        })
        .await;
        let a = w.member("CL", "primary").await;
        let _one = w.svc.subscribe(a.public_key()).unwrap();
        let _two = w.svc.subscribe(a.public_key()).unwrap();
        assert_eq!(
            code(&w.svc.subscribe(a.public_key()).err().unwrap()),
            Some(ErrorCode::LimitReached)
        );
    });
}

#[test]
fn uploads_are_checked_before_any_byte_against_size_quota_and_owner() {
    rt().block_on(async {
        let w = world(Config {
            max_attachment_bytes: 10 * 1024 * 1024,
            upload_quota_mib: 3,
            ..Config::default()
        }).await;
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
        let mib = 1024 * 1024;
        async fn plan_of(w: &World, who: &Identity, id: u8, len: u64) -> UploadPlan {
            w.svc.upload_start(who.public_key(), [id; 16], len, 0, 0).await
        }
        assert!(matches!(plan_of(&w, &a, 1, 10 * mib + 1).await, UploadPlan::Answer(r) if code(&r) == Some(ErrorCode::TooLarge)));
        assert_eq!(plan_of(&w, &a, 1, 2 * mib).await, UploadPlan::Receive { offset: 0 });
        assert!(matches!(plan_of(&w, &a, 2, 2 * mib).await, UploadPlan::Answer(r) if code(&r) == Some(ErrorCode::LimitReached)));
        assert!(matches!(plan_of(&w, &b, 1, 1).await, UploadPlan::Answer(r) if code(&r) == Some(ErrorCode::Forbidden)));
        // A client that claims an offset the relay does not hold is told where to resume.
        assert_eq!(
            w.svc.upload_start(a.public_key(), [1; 16], 2 * mib, 500, 100).await,
            UploadPlan::Answer(Response::BlobStored {
                stored: 100,
                complete: false
            })
        );
        // Not downloadable while partial, by anyone.
        assert_eq!(code(&w.svc.download_start(a.public_key(), [1; 16]).await.unwrap_err()), Some(ErrorCode::NotFound));
        // Bytes that fail verification free the reservation.
        let r = w.svc.upload_finish(a.public_key(), [1; 16], 2 * mib, Err("bad".into())).await;
        assert_eq!(code(&r), Some(ErrorCode::BadEnvelope));
        assert_eq!(plan_of(&w, &a, 2, 3 * mib).await, UploadPlan::Receive { offset: 0 });
    });
}

#[test]
fn acks_remove_only_the_callers_own_items() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
        assert!(matches!(
            w.send(&a, sealed(&a, &[&b]).bytes).await,
            Response::Accepted { .. }
        ));
        let seq = w.svc.backlog(b.public_key(), 0).await.unwrap()[0].seq();
        assert_eq!(
            w.svc.handle(a.public_key(), Request::Ack { seqs: vec![seq] }).await,
            Response::Done
        );
        assert_eq!(
            w.svc.backlog(b.public_key(), 0).await.unwrap().len(),
            1,
            "a cannot ack b's item"
        );
        assert_eq!(
            w.svc.handle(b.public_key(), Request::Ack { seqs: vec![seq] }).await,
            Response::Done
        );
        assert!(w
            .svc
            .store()
            .pending(*b.public_key().as_bytes(), 0, 10, T0)
            .await
            .unwrap()
            .is_empty());
    });
}

#[test]
fn a_key_the_log_does_not_list_may_only_say_hello_register_and_as_the_anchor_begin_the_log() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let member = w.member("CL", "primary").await;
        let stranger = id();
        let k = stranger.public_key();
        match w
            .svc
            .handle(
                k,
                Request::Hello {
                    protocol: pocnet_wire::PROTOCOL_VERSION,
                },
            )
            .await
        {
            Response::Welcome {
                member: None,
                relay_time_ms,
            } => assert_eq!(relay_time_ms, T0, "time is the clock's"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            w.ask(
                &stranger,
                Request::Register {
                    public_identity: stranger.public().to_bytes()
                }
            )
            .await,
            Response::Done
        );
        // The log has begun: a stranger's append is refused before anything is read.
        let (_, note) = w.prepared();
        assert_eq!(
            code(&w.append(&stranger, vec![vec![1]], note).await),
            Some(ErrorCode::NotEnrolled)
        );
        let asks = [
            Request::Lookup { query: "*".into() },
            Request::Send {
                envelope: sealed(&stranger, &[&member]).bytes,
            },
            Request::Ack { seqs: vec![1] },
            Request::SendReceipt {
                to: *member.public_key().as_bytes(),
                receipt: vec![0; 10],
            },
            Request::LogCheckpoint,
            Request::LogLeaves { from: 0, limit: 10 },
            Request::LogProof {
                old_size: 1,
                new_size: 2,
            },
            Request::LogCosign {
                size: 1,
                cosignature: String::new(),
            },
            Request::Registration {
                fingerprint: stranger.fingerprint().to_hex(),
            },
            Request::Submit { statement: vec![1] },
            Request::Submissions { after: 0 },
            Request::Dismiss { ids: vec![1] },
        ];
        for req in asks {
            assert_eq!(
                code(&w.svc.handle(k, req.clone()).await),
                Some(ErrorCode::NotEnrolled),
                "{req:?}"
            );
        }
        for kind in [Kind::Watch, Kind::PutBlob, Kind::GetBlob] {
            assert_eq!(
                code(&w.svc.admit(k, kind).await.unwrap_err()),
                Some(ErrorCode::NotEnrolled)
            );
        }
        // Invite enrolment is gone, for everyone.
        for who in [&stranger, &member] {
            let r = w
                .ask(
                    who,
                    Request::Enrol {
                        invite: "code".into(),
                        public_identity: who.public().to_bytes(),
                    },
                )
                .await;
            assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{r:?}");
        }
        for old in [1, 2] {
            assert_eq!(
                code(&w.svc.handle(k, Request::Hello { protocol: old }).await),
                Some(ErrorCode::UnsupportedVersion)
            );
        }
        // Those the log lists are admitted under their directory handles.
        assert_eq!(w.hello(&member).await.unwrap().handle, "CL.primary");
        assert_eq!(w.hello(&w.authority("CL")).await.unwrap().handle, "CL.authority");
        assert_eq!(w.hello(&w.sec).await.unwrap().handle, "secretariat");
        let found = w.lookup(&member, "secretariat").await;
        assert_eq!(found.len(), 1, "the Secretariat is looked up by its handle too");
        assert_eq!(found[0].role, "secretariat");
    });
}

#[test]
fn only_the_anchor_key_may_begin_the_log() {
    rt().block_on(async {
        let w = unbegun(Config::default()).await;
        let (leaves, note) = w.prepared();
        // The Secretariat's own Genesis and checkpoint, carried by another key.
        let carrier = id();
        assert_eq!(
            code(&w.append(&carrier, leaves.clone(), note.clone()).await),
            Some(ErrorCode::NotEnrolled)
        );
        // A log begun by someone else's key, for the same origin.
        let usurper = Publisher::genesis(&carrier, ORIGIN, T0, Vec::new(), 0).unwrap();
        let r = w
            .append(
                &carrier,
                usurper.leaves().to_vec(),
                usurper.checkpoint(&carrier).to_text(),
            )
            .await;
        assert_eq!(code(&r), Some(ErrorCode::NotEnrolled));
        // Even the anchor cannot begin it with a Genesis signed by another key.
        let r = w
            .append(&w.sec, usurper.leaves().to_vec(), usurper.checkpoint(&w.sec).to_text())
            .await;
        assert_eq!(code(&r), Some(ErrorCode::BadDirectory), "{r:?}");
        assert_eq!(w.snapshot().await, (None, Vec::new(), Vec::new()));
        assert_eq!(w.append(&w.sec, leaves, note).await, Response::Done);
        assert_eq!(w.hello(&w.sec).await.unwrap().handle, "secretariat");
    });
}

#[test]
fn appends_are_refused_whole_for_a_wrong_signer_another_states_nomination_a_bad_checkpoint_or_an_old_size() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let cl = w.member("CL", "primary").await;
        let mx_auth = w.authority("MX");
        w.publish().await;
        let cl_auth = w.authority("CL");
        let before = w.snapshot().await;
        let lookup = w.lookup(&cl, "*").await;
        let refused = |r: &Response, want: ErrorCode| assert_eq!(code(r), Some(want), "{r:?}");

        // An authority enrolment signed by CL's authority, not the Secretariat.
        let us_auth = id();
        let forged = Author::new(&cl_auth, ORIGIN)
            .authority_enrol(w.tick(), "US", us_auth.public_key(), "US", "DoS")
            .unwrap()
            .into_bytes();
        let note = w.note_over(std::slice::from_ref(&forged), &w.sec);
        refused(&w.append(&w.sec, vec![forged], note).await, ErrorCode::BadDirectory);

        // CL's authority nominating for MX, approved by the Secretariat.
        let poc = id();
        let nomination = Author::new(&cl_auth, ORIGIN)
            .nominate(
                w.tick(),
                "MX",
                Category::CyberPolicy,
                Rank::Primary,
                contact("MX"),
                &poc.public(),
            )
            .unwrap();
        let approval = w.approve(&nomination, &poc).into_bytes();
        let note = w.note_over(std::slice::from_ref(&approval), &w.sec);
        refused(&w.append(&w.sec, vec![approval], note).await, ErrorCode::BadDirectory);
        // The same nomination by MX's own authority is fine (shown by the log, below).
        let good = w.approve(
            &Author::new(&mx_auth, ORIGIN)
                .nominate(
                    w.tick(),
                    "MX",
                    Category::CyberPolicy,
                    Rank::Primary,
                    contact("MX"),
                    &poc.public(),
                )
                .unwrap(),
            &poc,
        );

        // Valid leaves under a checkpoint whose root is another tree's of the same size.
        let other = w
            .secretariat()
            .authority_enrol(w.tick(), "US", us_auth.public_key(), "US", "DoS")
            .unwrap()
            .into_bytes();
        let note = w.note_over(std::slice::from_ref(&other), &w.sec);
        refused(
            &w.append(&w.sec, vec![good.as_bytes().to_vec()], note).await,
            ErrorCode::BadDirectory,
        );
        // ... or covering more entries than the log would hold.
        let note = w.note_over(&[good.as_bytes().to_vec(), other.clone()], &w.sec);
        refused(
            &w.append(&w.sec, vec![good.as_bytes().to_vec()], note).await,
            ErrorCode::BadDirectory,
        );
        // The right root, signed by a key other than the Secretariat's (as the log's name).
        for signer in [&*cl_auth, &w.witness, &cl] {
            let note = w.note_over(&[good.as_bytes().to_vec()], signer);
            refused(
                &w.append(&w.sec, vec![good.as_bytes().to_vec()], note).await,
                ErrorCode::BadDirectory,
            );
        }
        // A note that is not a checkpoint at all.
        refused(
            &w.append(&w.sec, vec![good.as_bytes().to_vec()], "hello\n".into()).await,
            ErrorCode::BadDirectory,
        );
        assert_eq!(w.snapshot().await, before, "nothing refused was stored");
        assert_eq!(w.lookup(&cl, "*").await, lookup);

        // An append prepared against an older log: told the log moved, nothing stored.
        let mut stale = w.log.borrow().clone();
        w.push(&good);
        w.publish().await;
        let after = w.snapshot().await;
        stale.push(&Statement::parse(&other).unwrap()).unwrap();
        let (_, leaves) = stale.unpublished();
        refused(
            &w.append(&w.sec, leaves.to_vec(), stale.checkpoint(&w.sec).to_text())
                .await,
            ErrorCode::LogMoved,
        );
        assert_eq!(w.snapshot().await, after);
        assert_eq!(w.hello(&poc).await.unwrap().handle, "MX.primary");
    });
}

#[test]
fn an_append_with_a_policy_publication_by_another_states_authority_is_refused() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let cl = w.member("CL", "primary").await;
        let mx_auth = w.authority("MX");
        w.publish().await;
        let cl_auth = w.authority("CL");
        let before = w.snapshot().await;
        let publication = |by: &Identity, t: u64, state: &str| {
            Author::new(by, ORIGIN)
                .policy_publish(
                    t,
                    state,
                    [7; 16],
                    1,
                    pocnet_core::directory::PolicyKind::Law,
                    "2024-01-31",
                    "es",
                    vec![("es".into(), "Ley de Ciberseguridad".into())],
                    "ley.pdf",
                    "application/pdf",
                    1024,
                    [1; 32],
                )
                .unwrap()
                .into_bytes()
        };
        // MX's authority publishing a "CL" law, appended by the Secretariat itself.
        let forged = publication(&mx_auth, w.tick(), "CL");
        let note = w.note_over(std::slice::from_ref(&forged), &w.sec);
        let r = w.append(&w.sec, vec![forged.clone()], note).await;
        assert_eq!(code(&r), Some(ErrorCode::BadDirectory), "{r:?}");
        assert_eq!(w.snapshot().await, before, "nothing refused was stored");
        // Nor may MX's authority offer it to the Secretariat.
        let r = w
            .svc
            .handle(mx_auth.public_key(), Request::Submit { statement: forged })
            .await;
        assert_eq!(code(&r), Some(ErrorCode::BadDirectory), "{r:?}");
        // CL's own authority's is appended.
        let good = publication(&cl_auth, w.tick(), "CL");
        let note = w.note_over(std::slice::from_ref(&good), &w.sec);
        assert_eq!(w.append(&w.sec, vec![good], note).await, Response::Done);
        assert_eq!(w.hello(&cl).await.unwrap().handle, "CL.primary");
    });
}

#[test]
fn admission_follows_the_log_through_rank_change_removal_and_revocation() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let mut m = w
            .members(&[("CL", "primary"), ("MX", "primary"), ("US", "primary")])
            .await;
        let (c, b, a) = (m.pop().unwrap(), m.pop().unwrap(), m.pop().unwrap());
        assert_eq!(w.hello(&a).await.unwrap().handle, "CL.primary");
        let found = w.lookup(&b, "CL.primary").await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].public_identity, a.public().to_bytes());

        // CL's authority moves a to alternate: the handle moves, a stays admitted.
        let st = Author::new(&w.authority("CL"), ORIGIN)
            .rank_change(w.tick(), "CL.primary", Category::CyberPolicy, Rank::Alternate)
            .unwrap();
        w.push(&st);
        w.publish().await;
        assert!(w.lookup(&b, "CL.primary").await.is_empty());
        let found = w.lookup(&b, "CL.alternate").await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].public_identity, a.public().to_bytes());
        assert_eq!(found[0].role, "alternate");
        assert_eq!(w.hello(&a).await.unwrap().handle, "CL.alternate");
        assert!(matches!(
            w.send(&b, sealed(&b, &[&a]).bytes).await,
            Response::Accepted { .. }
        ));

        // MX's authority removes b: refused at once, and cannot be sent to.
        let st = Author::new(&w.authority("MX"), ORIGIN)
            .remove(w.tick(), "MX.primary", "left the ministry")
            .unwrap();
        w.push(&st);
        w.publish().await;
        assert_eq!(
            code(&w.ask(&b, Request::Lookup { query: "*".into() }).await),
            Some(ErrorCode::Revoked)
        );
        assert_eq!(
            code(&w.svc.admit(b.public_key(), Kind::Watch).await.unwrap_err()),
            Some(ErrorCode::Revoked)
        );
        assert_eq!(
            code(&w.send(&a, sealed(&a, &[&b]).bytes).await),
            Some(ErrorCode::UnknownRecipient)
        );
        // MX has no POC left (a state lookup names POCs; its authority is still admitted).
        let mx: Vec<String> = w.lookup(&a, "MX").await.into_iter().map(|m| m.handle).collect();
        assert!(mx.is_empty(), "{mx:?}");
        let auth: Vec<String> = w
            .lookup(&a, "MX.authority")
            .await
            .into_iter()
            .map(|m| m.handle)
            .collect();
        assert_eq!(auth, ["MX.authority"]);

        // c revokes its own (lost) key.
        let st = Author::new(&c, ORIGIN)
            .revoke(w.tick(), c.public_key(), "laptop stolen")
            .unwrap();
        w.push(&st);
        w.publish().await;
        assert_eq!(
            code(&w.ask(&c, Request::Ack { seqs: vec![] }).await),
            Some(ErrorCode::Revoked)
        );
        assert_eq!(
            code(&w.send(&a, sealed(&a, &[&c]).bytes).await),
            Some(ErrorCode::UnknownRecipient)
        );
        let outsider = id();
        assert_eq!(
            code(&w.send(&a, sealed(&a, &[&outsider]).bytes).await),
            Some(ErrorCode::UnknownRecipient)
        );
        // `*` names the POCs left; authorities, the Secretariat and witnesses stay admitted
        // (witnesses fetch the log and cosign), found by their handles.
        let handles: Vec<String> = w.lookup(&a, "*").await.into_iter().map(|m| m.handle).collect();
        assert_eq!(handles, ["CL.alternate"]);
        for h in [
            "CL.authority",
            "MX.authority",
            "US.authority",
            "secretariat",
            "witness:witness.example",
        ] {
            let found: Vec<String> = w.lookup(&a, h).await.into_iter().map(|m| m.handle).collect();
            assert_eq!(found, [h], "{h} is admitted");
        }
    });
}

#[test]
fn an_operator_block_refuses_a_listed_key_until_the_log_removes_it() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
        w.svc
            .store()
            .revoke("MX.primary".into(), w.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            code(&w.ask(&b, Request::Lookup { query: "*".into() }).await),
            Some(ErrorCode::Revoked)
        );
        assert_eq!(
            code(&w.send(&a, sealed(&a, &[&b]).bytes).await),
            Some(ErrorCode::UnknownRecipient)
        );
        // A later append about someone else does not lift the block.
        w.member("US", "primary").await;
        assert_eq!(
            code(&w.ask(&b, Request::Lookup { query: "*".into() }).await),
            Some(ErrorCode::Revoked)
        );
    });
}

#[test]
fn leaves_come_in_bounded_pages_and_proofs_link_every_checkpoint() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let a = w.member("CL", "primary").await;
        let note1 = w.checkpoint(&a).await;
        let cp1 = SignedNote::parse(&note1).unwrap().checkpoint().unwrap();
        // Enough confirmations to pass one page.
        for _ in 0..LOG_PAGE_LEAVES + 20 {
            let st = Author::new(&a, ORIGIN).confirm(w.tick()).unwrap();
            w.push(&st);
        }
        w.publish().await;
        let all = w.log.borrow().leaves().to_vec();
        let note2 = w.checkpoint(&a).await;
        let cp2 = SignedNote::parse(&note2).unwrap().checkpoint().unwrap();
        assert_eq!(cp2.size, all.len() as u64);
        NoteVerifier {
            name: ORIGIN.into(),
            key: *w.sec.public_key(),
        }
        .verify(&SignedNote::parse(&note2).unwrap())
        .unwrap();

        let leaves = |from, limit| {
            let w = &w;
            let a = &a;
            async move {
                match w.ask(a, Request::LogLeaves { from, limit }).await {
                    Response::Leaves { from: f, leaves } => {
                        assert_eq!(f, from);
                        leaves
                    }
                    other => panic!("{other:?}"),
                }
            }
        };
        let first = leaves(0, u32::MAX).await;
        assert_eq!(first.len(), LOG_PAGE_LEAVES as usize, "one page at most");
        let rest = leaves(first.len() as u64, u32::MAX).await;
        assert_eq!([first, rest].concat(), all, "the pages are the log, byte for byte");
        assert_eq!(leaves(3, 2).await, all[3..5].to_vec());
        assert!(leaves(all.len() as u64, 10).await.is_empty());

        let proof = |old_size, new_size| {
            let w = &w;
            let a = &a;
            async move { w.ask(a, Request::LogProof { old_size, new_size }).await }
        };
        let Response::Proof { hashes } = proof(cp1.size, cp2.size).await else {
            panic!()
        };
        tlog::verify_consistency(cp1.size, cp2.size, &cp1.root, &cp2.root, &hashes).unwrap();
        assert!(tlog::verify_consistency(cp1.size, cp2.size, &cp2.root, &cp1.root, &hashes).is_err());
        // Every older size is linked to the head.
        let hashes_of: Vec<_> = all.iter().map(|l| tlog::leaf_hash(l)).collect();
        for old in [1, 2, 7, 512, cp2.size] {
            let Response::Proof { hashes } = proof(old, cp2.size).await else {
                panic!()
            };
            let old_root = tlog::root(&hashes_of[..old as usize]);
            tlog::verify_consistency(old, cp2.size, &old_root, &cp2.root, &hashes).unwrap();
        }
        assert_eq!(code(&proof(cp2.size, cp1.size).await), Some(ErrorCode::NotFound));
        assert_eq!(code(&proof(1, cp2.size + 1).await), Some(ErrorCode::NotFound));
    });
}

#[test]
fn witness_cosignatures_are_served_with_the_checkpoint_and_others_refused() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let a = w.member("CL", "primary").await;
        // The witness is a member too (any client may witness).
        w.stage("US", "primary", &w.witness);
        w.publish().await;
        let note = w.checkpoint(&a).await;
        assert_eq!(note, w.log.borrow().checkpoint(&w.sec).to_text());
        let parsed = SignedNote::parse(&note).unwrap();
        let size = parsed.checkpoint().unwrap().size;
        let cosign_as = |name: &str, who: &Identity| cosign(&parsed.body, name, who, T0 / 1000).line();
        let ask = |size, cosignature: String| Request::LogCosign { size, cosignature };

        // Not a witness of the Genesis policy, under its own name or the witness's.
        for line in [cosign_as("cl.example", &a), cosign_as(WITNESS, &a)] {
            let r = w.ask(&a, ask(size, line)).await;
            assert_eq!(code(&r), Some(ErrorCode::BadDirectory), "{r:?}");
        }
        // The witness's line with a second line smuggled behind it, under the Secretariat's
        // name and key id: served, it would make the note unreadable (two lines, one key).
        let forged = NoteSignature {
            name: ORIGIN.into(),
            key_id: NoteVerifier {
                name: ORIGIN.into(),
                key: *w.sec.public_key(),
            }
            .key_id(),
            payload: vec![0; 64],
        };
        let smuggled = format!("{}{}", cosign_as(WITNESS, &w.witness), forged.line());
        assert_eq!(
            code(&w.ask(&w.witness, ask(size, smuggled)).await),
            Some(ErrorCode::BadDirectory)
        );
        assert_eq!(w.checkpoint(&a).await, note, "nothing refused is served");

        assert_eq!(
            w.ask(&w.witness, ask(size, cosign_as(WITNESS, &w.witness))).await,
            Response::Done
        );
        let served = w.checkpoint(&a).await;
        assert_eq!(served, format!("{note}{}", cosign_as(WITNESS, &w.witness)));
        let served = SignedNote::parse(&served).unwrap();
        Witness {
            name: WITNESS.into(),
            key: *w.witness.public_key(),
        }
        .verify_in(&served)
        .unwrap();
        NoteVerifier {
            name: ORIGIN.into(),
            key: *w.sec.public_key(),
        }
        .verify(&served)
        .unwrap();

        // The log moves on: a cosignature of the older checkpoint is refused, and the new
        // checkpoint is served without the old cosignatures.
        w.push(&Author::new(&a, ORIGIN).confirm(w.tick()).unwrap());
        w.publish().await;
        assert_eq!(
            code(&w.ask(&w.witness, ask(size, cosign_as(WITNESS, &w.witness))).await),
            Some(ErrorCode::LogMoved)
        );
        assert_eq!(w.checkpoint(&a).await, w.log.borrow().checkpoint(&w.sec).to_text());
    });
}

#[test]
fn a_key_registers_only_itself_and_only_the_secretariat_reads_registrations() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let a = w.member("CL", "primary").await;
        let (stranger, other) = (id(), id());
        let register = |who: &Identity| Request::Register {
            public_identity: who.public().to_bytes(),
        };
        assert_eq!(
            code(&w.ask(&stranger, register(&other)).await),
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(
            code(
                &w.ask(
                    &stranger,
                    Request::Register {
                        public_identity: vec![1, 2, 3]
                    }
                )
                .await
            ),
            Some(ErrorCode::Malformed)
        );
        assert_eq!(w.ask(&stranger, register(&stranger)).await, Response::Done);
        assert_eq!(
            code(&w.ask(&a, register(&a)).await),
            Some(ErrorCode::Forbidden),
            "listed already"
        );

        let registration = |who: &Identity| Request::Registration {
            fingerprint: who.fingerprint().to_hex(),
        };
        for asker in [&a, &*w.authority("CL")] {
            assert_eq!(
                code(&w.ask(asker, registration(&stranger)).await),
                Some(ErrorCode::Forbidden)
            );
        }
        assert_eq!(
            w.ask(&w.sec, registration(&stranger)).await,
            Response::Registered {
                public_identity: stranger.public().to_bytes()
            }
        );
        assert_eq!(
            code(&w.ask(&w.sec, registration(&other)).await),
            Some(ErrorCode::NotFound)
        );
        // Once the log lists the key, its registration is done with.
        w.stage("CL", "alternate", &stranger);
        w.publish().await;
        assert_eq!(
            code(&w.ask(&w.sec, registration(&stranger)).await),
            Some(ErrorCode::NotFound)
        );
        assert_eq!(w.hello(&stranger).await.unwrap().handle, "CL.alternate");
    });
}

#[test]
fn submissions_are_checked_read_by_the_secretariat_and_dropped_once_published() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let mut m = w.members(&[("CL", "primary"), ("MX", "primary")]).await;
        let (b, a) = (m.pop().unwrap(), m.pop().unwrap());
        let cl_auth = w.authority("CL");
        let submit = |st: &Statement| Request::Submit {
            statement: st.as_bytes().to_vec(),
        };
        let bad = |r: Response| assert_eq!(code(&r), Some(ErrorCode::BadDirectory), "{r:?}");

        // Signed by another key than the connection's.
        let b_confirm = Author::new(&b, ORIGIN).confirm(w.tick()).unwrap();
        bad(w.ask(&a, submit(&b_confirm)).await);
        // A nomination for another state, or by a POC.
        let newcomer = id();
        let for_mx = Author::new(&cl_auth, ORIGIN)
            .nominate(
                w.tick(),
                "MX",
                Category::CyberPolicy,
                Rank::Alternate,
                contact("x"),
                &newcomer.public(),
            )
            .unwrap();
        bad(w.ask(&cl_auth, submit(&for_mx)).await);
        let by_poc = Author::new(&a, ORIGIN)
            .nominate(
                w.tick(),
                "CL",
                Category::CyberPolicy,
                Rank::Alternate,
                contact("x"),
                &newcomer.public(),
            )
            .unwrap();
        bad(w.ask(&a, submit(&by_poc)).await);
        // The Secretariat's own kinds, and another log's statements.
        let enrol = Author::new(&a, ORIGIN)
            .authority_enrol(w.tick(), "US", newcomer.public_key(), "US", "DoS")
            .unwrap();
        bad(w.ask(&a, submit(&enrol)).await);
        bad(w
            .ask(&a, submit(&Author::new(&a, "other.example").confirm(w.tick()).unwrap()))
            .await);
        bad(w.ask(&a, Request::Submit { statement: vec![1; 40] }).await);

        let a_confirm = Author::new(&a, ORIGIN).confirm(w.tick()).unwrap();
        let nomination = Author::new(&cl_auth, ORIGIN)
            .nominate(
                w.tick(),
                "CL",
                Category::CyberPolicy,
                Rank::Alternate,
                contact("x"),
                &newcomer.public(),
            )
            .unwrap();
        assert_eq!(w.ask(&a, submit(&a_confirm)).await, Response::Done);
        assert_eq!(w.ask(&cl_auth, submit(&nomination)).await, Response::Done);
        assert_eq!(w.ask(&b, submit(&b_confirm)).await, Response::Done);
        assert_eq!(
            code(&w.ask(&b, submit(&b_confirm)).await),
            Some(ErrorCode::Forbidden),
            "twice"
        );

        for who in [&a, &*cl_auth] {
            assert_eq!(
                code(&w.ask(who, Request::Submissions { after: 0 }).await),
                Some(ErrorCode::Forbidden)
            );
            assert_eq!(
                code(&w.ask(who, Request::Dismiss { ids: vec![1] }).await),
                Some(ErrorCode::Forbidden)
            );
        }
        let waiting = || async {
            match w.ask(&w.sec, Request::Submissions { after: 0 }).await {
                Response::Submitted { items } => items,
                other => panic!("{other:?}"),
            }
        };
        let items = waiting().await;
        assert_eq!(
            items.iter().map(|s| s.statement.clone()).collect::<Vec<_>>(),
            [a_confirm.as_bytes(), nomination.as_bytes(), b_confirm.as_bytes()]
        );
        assert!(items.iter().all(|s| s.received_ms == T0));
        match w.ask(&w.sec, Request::Submissions { after: items[1].id }).await {
            Response::Submitted { items: later } => assert_eq!(later, items[2..]),
            other => panic!("{other:?}"),
        }

        // The Secretariat publishes a's confirmation and an approval wrapping the
        // nomination: both leave the waiting list. b's is dismissed.
        w.push(&a_confirm);
        w.push(&w.approve(&nomination, &newcomer));
        w.publish().await;
        assert_eq!(waiting().await, items[2..]);
        assert_eq!(
            w.ask(&w.sec, Request::Dismiss { ids: vec![items[2].id] }).await,
            Response::Done
        );
        assert!(waiting().await.is_empty());
        assert_eq!(w.hello(&newcomer).await.unwrap().handle, "CL.alternate");
    });
}

#[test]
fn a_restart_reverifies_the_log_and_keeps_admission_in_line_with_it() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
        let st = Author::new(&w.authority("MX"), ORIGIN)
            .remove(w.tick(), "MX.primary", "moved on")
            .unwrap();
        w.push(&st);
        w.publish().await;
        let before = w.snapshot().await;

        let (svc, loaded) = w.restart().await;
        loaded.unwrap();
        assert!(matches!(hello(&svc, &a).await, Response::Welcome { member: Some(m), .. } if m.handle == "CL.primary"));
        assert_eq!(code(&hello(&svc, &b).await), Some(ErrorCode::Revoked));
        assert!(svc.log().is_secretariat(w.sec.public_key()));
        assert!(matches!(
            svc.handle(
                w.sec.public_key(),
                Request::LogProof {
                    old_size: 1,
                    new_size: 3
                }
            )
            .await,
            Response::Proof { .. }
        ));
        // The restarted relay carries on appending where the log stands.
        let c = id();
        w.stage("US", "primary", &c);
        let (leaves, note) = w.prepared();
        assert_eq!(
            svc.handle(
                w.sec.public_key(),
                Request::LogAppend {
                    leaves,
                    checkpoint: note
                }
            )
            .await,
            Response::Done
        );
        w.log.borrow_mut().mark_published();
        drop(svc);

        // The admission list edited by hand: a stranger listed, a member dropped. The log
        // decides again at the next start.
        let stranger = id();
        {
            let c = rusqlite::Connection::open(w.path()).unwrap();
            c.execute(
                "INSERT INTO members(key, fingerprint, handle, state, role, name, public_identity, enrolled_at)
                 VALUES (?1, ?2, 'ZZ.primary', 'ZZ', 'primary', 'nobody', x'', 0)",
                rusqlite::params![
                    stranger.public_key().as_bytes().as_slice(),
                    stranger.fingerprint().to_hex()
                ],
            )
            .unwrap();
            c.execute("DELETE FROM members WHERE handle = 'CL.primary'", [])
                .unwrap();
        }
        let (svc, loaded) = w.restart().await;
        loaded.unwrap();
        assert_ne!(
            code(&hello(&svc, &stranger).await),
            None,
            "a key the log does not list is refused"
        );
        assert!(matches!(hello(&svc, &a).await, Response::Welcome { member: Some(m), .. } if m.handle == "CL.primary"));
        assert!(matches!(hello(&svc, &c).await, Response::Welcome { member: Some(m), .. } if m.handle == "US.primary"));
        assert_eq!(code(&hello(&svc, &b).await), Some(ErrorCode::Revoked));
        assert_eq!(before.1.len() + 2, w.snapshot().await.1.len());
    });
}

#[test]
fn a_log_edited_behind_the_relays_back_stops_the_relay_at_load() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        w.member("CL", "primary").await;
        w.member("MX", "primary").await;
        let rewrite = |idx: i64, leaf: &[u8]| {
            let c = rusqlite::Connection::open(w.path()).unwrap();
            c.execute(
                "UPDATE log_leaves SET leaf = ?1 WHERE idx = ?2",
                rusqlite::params![leaf, idx],
            )
            .unwrap();
        };
        let leaves = w.log.borrow().leaves().to_vec();

        // A leaf replaced by another that is valid on its own (the Secretariat's signature,
        // another authority key): the entries verify, the checkpoint's root does not.
        let last = leaves.len() as i64 - 1;
        let other = w
            .secretariat()
            .authority_enrol(w.tick(), "US", id().public_key(), "US", "DoS")
            .unwrap();
        rewrite(last, other.as_bytes());
        let e = w.restart().await.1.unwrap_err().to_string();
        assert!(e.contains("checkpoint") && e.contains("root"), "{e}");

        // A leaf whose bytes were changed: it no longer verifies.
        let mut flipped = leaves[2].clone();
        let n = flipped.len();
        flipped[n - 1] ^= 1;
        rewrite(last, &leaves[last as usize]);
        rewrite(2, &flipped);
        let e = w.restart().await.1.unwrap_err().to_string();
        assert!(
            e.contains("the stored directory log does not verify") && e.contains("2"),
            "{e}"
        );

        // A leaf deleted from the end: the checkpoint covers more.
        rewrite(2, &leaves[2]);
        w.restart().await.1.unwrap();
        {
            let c = rusqlite::Connection::open(w.path()).unwrap();
            c.execute("DELETE FROM log_leaves WHERE idx = ?1", [leaves.len() as i64 - 1])
                .unwrap();
        }
        let e = w.restart().await.1.unwrap_err().to_string();
        assert!(e.contains("checkpoint"), "{e}");
    });
}

#[test]
fn an_entry_dated_ahead_of_the_relays_clock_is_refused() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let before = w.snapshot().await;
        // Eleven minutes ahead of the relay's clock (the statement times are in ms).
        let ahead = w.clock.now_ms() + 11 * 60 * 1000;
        let st = w.secretariat().witness_policy(ahead, vec![], 0).unwrap();
        let leaves = vec![st.as_bytes().to_vec()];
        let note = w.note_over(&leaves, &w.sec);
        let r = w.append(&w.sec, leaves, note).await;
        assert_eq!(code(&r), Some(ErrorCode::BadDirectory), "{r:?}");
        assert_eq!(w.snapshot().await, before, "nothing stored");
        // Once the relay's clock has caught up, the same entry is accepted.
        w.clock.advance(2 * 60 * 1000);
        let leaves = vec![st.as_bytes().to_vec()];
        let note = w.note_over(&leaves, &w.sec);
        assert_eq!(w.append(&w.sec, leaves, note).await, Response::Done);
    });
}

const HOUR: u64 = 3_600_000;

/// `from` holds `envelope` for `to`, due at `due`, cancelled by an acknowledgement of
/// message `about` from one of `signers`.
fn hold_req(envelope: &[u8], to: &Identity, due: u64, about: [u8; 16], signers: &[&Identity]) -> Request {
    Request::Hold {
        envelope: envelope.to_vec(),
        recipient: *to.public_key().as_bytes(),
        not_before_ms: due,
        cancel: Cancel {
            message_id: about,
            signers: signers.iter().map(|k| *k.public_key().as_bytes()).collect(),
        },
    }
}

fn ack_of(signer: &Identity, kind: ReceiptKind, about: &pocnet_crypto::Sealed, sender: &Identity) -> Request {
    Request::SendReceipt {
        to: *sender.public_key().as_bytes(),
        receipt: Receipt::sign(
            signer,
            kind,
            about.message_id,
            about.envelope_hash,
            sender.public_key(),
            T0,
        )
        .as_bytes()
        .to_vec(),
    }
}

/// Message ids of the envelopes in `who`'s backlog (by the service's clock).
async fn backlog_ids(svc: &Svc, who: &Identity) -> Vec<[u8; 16]> {
    let items = svc.backlog(who.public_key(), 0).await.unwrap();
    items
        .iter()
        .filter_map(|i| match i {
            pocnet_relay::store::Item::Envelope { envelope, .. } => {
                let sender = pocnet_crypto::claimed_sender(envelope).unwrap();
                Some(pocnet_crypto::verify_from(envelope, &sender).unwrap().0.message_id)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_held_envelope_reaches_only_its_recipient_when_due_each_once_with_the_relays_acceptance() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let [sec, b, c]: [Identity; 3] = w
            .members(&[("AR", "primary"), ("CL", "primary"), ("MX", "primary")])
            .await
            .try_into()
            .ok()
            .unwrap();
        let challenge = sealed(&sec, &[&b, &c]);
        let reminder = sealed(&sec, &[&b, &c]);
        let due = T0 + HOUR;
        let (stored_at, proof) = match w
            .ask(&sec, hold_req(&reminder.bytes, &b, due, challenge.message_id, &[&b]))
            .await
        {
            Response::Accepted {
                message_id,
                envelope_hash,
                stored_at_ms,
                duplicate: false,
                proof,
            } => {
                assert_eq!(
                    (message_id, envelope_hash),
                    (reminder.message_id, reminder.envelope_hash)
                );
                (stored_at_ms, proof)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(stored_at, T0);
        verify_acceptance(w.relay.public_key(), &reminder.envelope_hash, stored_at, &proof).unwrap();
        // Watchers subscribed before the due time.
        let mut live_b = w.svc.subscribe(b.public_key()).unwrap();
        let mut live_c = w.svc.subscribe(c.public_key()).unwrap();
        // Something queued meanwhile, taken by b's watcher (its seq passes the held row's).
        assert!(matches!(
            w.send(&sec, challenge.bytes.clone()).await,
            Response::Accepted { .. }
        ));
        assert!(live_b.try_recv().is_some() && live_c.try_recv().is_some());
        w.clock.advance(HOUR - 1);
        assert_eq!(w.svc.release().await, 0);
        w.svc.sweep().await;
        assert_eq!(
            backlog_ids(&w.svc, &b).await,
            vec![challenge.message_id],
            "not before it is due"
        );
        assert!(live_b.try_recv().is_none());
        w.clock.advance(1);
        assert_eq!(w.svc.release().await, 1);
        let item = live_b.try_recv().expect("released to the live watcher");
        assert!(live_b.try_recv().is_none(), "once");
        assert!(live_c.try_recv().is_none(), "to its recipient only");
        assert_eq!(w.svc.release().await, 0);
        w.svc.sweep().await;
        assert!(live_b.try_recv().is_none(), "never announced again");
        // The delivery carries the relay's acceptance of the envelope, as the sender got it.
        match &w.svc.deliveries(&[item], b.public_key().as_bytes()).await.unwrap()[..] {
            [Delivery::Stored {
                envelope,
                stored_at_ms,
                proof,
                ..
            }] => {
                assert_eq!(*stored_at_ms, T0);
                // Trimmed to b's stanza, b opens it and it hashes as the relay stated.
                let opened = pocnet_crypto::open(&b, envelope, sec.public_key()).unwrap();
                let hash = opened.envelope_hash;
                assert_eq!(
                    (opened.header.message_id, hash),
                    (reminder.message_id, reminder.envelope_hash)
                );
                verify_acceptance(w.relay.public_key(), &hash, T0, proof).unwrap();
            }
            other => panic!("{other:?}"),
        }
        // A reconnecting watcher finds it in the backlog, once, until acknowledged.
        assert_eq!(
            backlog_ids(&w.svc, &b).await,
            vec![challenge.message_id, reminder.message_id]
        );
        assert_eq!(backlog_ids(&w.svc, &c).await, vec![challenge.message_id]);
        let seqs = w
            .svc
            .backlog(b.public_key(), 0)
            .await
            .unwrap()
            .iter()
            .map(|i| i.seq())
            .collect();
        assert_eq!(w.ask(&b, Request::Ack { seqs }).await, Response::Done);
        assert!(w.svc.backlog(b.public_key(), 0).await.unwrap().is_empty());
    });
}

#[test]
fn an_acknowledgement_by_a_listed_signer_cancels_the_senders_held_envelopes_about_that_message_whoever_their_recipient()
{
    rt().block_on(async {
        let w = world(Config::default()).await;
        let [sec, b, c, d]: [Identity; 4] = w
            .members(&[
                ("AR", "primary"),
                ("CL", "primary"),
                ("MX", "primary"),
                ("UY", "primary"),
            ])
            .await
            .try_into()
            .ok()
            .unwrap();
        let challenge = sealed(&sec, &[&b, &c]);
        let other = sealed(&sec, &[&b]);
        for m in [&challenge, &other] {
            assert!(matches!(w.send(&sec, m.bytes.clone()).await, Response::Accepted { .. }));
        }
        let due = T0 + 12 * HOUR;
        let r_b = sealed(&sec, &[&b]); // b's, cancelled by b's answer to the challenge
        let r_b_other = sealed(&sec, &[&b]); // b's, waits on the other message
        let r_b_by_c = sealed(&sec, &[&b]); // b's, lists only c
        let r_c = sealed(&sec, &[&c]); // c's, lists b and c: b's answer cancels it too
        for (r, to, about, signers) in [
            (&r_b, &b, &challenge, vec![&b]),
            (&r_b_other, &b, &other, vec![&b]),
            (&r_b_by_c, &b, &challenge, vec![&c]),
            (&r_c, &c, &challenge, vec![&b, &c]),
        ] {
            let resp = w
                .ask(&sec, hold_req(&r.bytes, to, due, about.message_id, &signers))
                .await;
            assert!(matches!(resp, Response::Accepted { .. }), "{resp:?}");
        }
        // Another sender's held envelope naming the same message id is not sec's to cancel.
        let r_d = sealed(&d, &[&b]);
        let resp = w
            .ask(&d, hold_req(&r_d.bytes, &b, due, challenge.message_id, &[&b]))
            .await;
        assert!(matches!(resp, Response::Accepted { .. }), "{resp:?}");
        // b's client says the challenge arrived and was read: not an answer, nothing cancelled.
        for kind in [ReceiptKind::Delivered, ReceiptKind::Read] {
            assert_eq!(w.ask(&b, ack_of(&b, kind, &challenge, &sec)).await, Response::Done);
        }
        // A receipt signed by another key than the connection's is refused outright.
        assert_eq!(
            code(&w.ask(&c, ack_of(&b, ReceiptKind::Acknowledged, &challenge, &sec)).await),
            Some(ErrorCode::BadEnvelope)
        );
        // b answers the challenge: sec's held envelopes waiting on it that list b go.
        assert_eq!(
            w.ask(&b, ack_of(&b, ReceiptKind::Acknowledged, &challenge, &sec)).await,
            Response::Done
        );
        w.clock.advance(12 * HOUR);
        assert_eq!(w.svc.release().await, 3);
        let mut got = backlog_ids(&w.svc, &b).await;
        got.sort();
        let mut want = vec![
            challenge.message_id,
            other.message_id,
            r_b_other.message_id,
            r_b_by_c.message_id,
            r_d.message_id,
        ];
        want.sort();
        assert_eq!(got, want, "b's other held envelopes were released");
        assert_eq!(
            backlog_ids(&w.svc, &c).await,
            vec![challenge.message_id],
            "c's lists b: b's answer cancelled it"
        );
        // After release, an answer recalls nothing.
        assert_eq!(
            w.ask(&c, ack_of(&c, ReceiptKind::Acknowledged, &challenge, &sec)).await,
            Response::Done
        );
        assert!(backlog_ids(&w.svc, &b).await.contains(&r_b_by_c.message_id));
        // The sender got every receipt that was accepted.
        assert_eq!(w.svc.backlog(sec.public_key(), 0).await.unwrap().len(), 4);
    });
}

#[test]
fn held_envelopes_survive_a_restart_and_fall_due_at_their_own_times() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let [sec, b, c]: [Identity; 3] = w
            .members(&[("AR", "primary"), ("CL", "primary"), ("MX", "primary")])
            .await
            .try_into()
            .ok()
            .unwrap();
        let challenge = sealed(&sec, &[&b, &c]);
        assert!(matches!(
            w.send(&sec, challenge.bytes.clone()).await,
            Response::Accepted { .. }
        ));
        let (half, late) = (sealed(&sec, &[&b]), sealed(&sec, &[&b]));
        let r_c = sealed(&sec, &[&c]);
        for (r, to, due) in [
            (&half, &b, T0 + 12 * HOUR),
            (&late, &b, T0 + 22 * HOUR),
            (&r_c, &c, T0 + 12 * HOUR),
        ] {
            let resp = w
                .ask(&sec, hold_req(&r.bytes, to, due, challenge.message_id, &[to]))
                .await;
            assert!(matches!(resp, Response::Accepted { .. }), "{resp:?}");
        }
        // A second relay process over the same database, as after a crash.
        let (svc, loaded) = w.restart().await;
        loaded.unwrap();
        let mut live = svc.subscribe(b.public_key()).unwrap();
        w.clock.advance(12 * HOUR - 1);
        assert_eq!(svc.release().await, 0);
        assert_eq!(backlog_ids(&svc, &b).await, vec![challenge.message_id]);
        // c answers after the restart: its cancel rule was kept.
        assert_eq!(
            svc.handle(c.public_key(), ack_of(&c, ReceiptKind::Acknowledged, &challenge, &sec))
                .await,
            Response::Done
        );
        w.clock.advance(1);
        assert_eq!(svc.release().await, 1);
        assert!(live.try_recv().is_some() && live.try_recv().is_none());
        assert_eq!(backlog_ids(&svc, &b).await, vec![challenge.message_id, half.message_id]);
        assert_eq!(backlog_ids(&svc, &c).await, vec![challenge.message_id]);
        w.clock.advance(10 * HOUR);
        svc.sweep().await;
        assert!(live.try_recv().is_some() && live.try_recv().is_none());
        assert_eq!(
            backlog_ids(&svc, &b).await,
            vec![challenge.message_id, half.message_id, late.message_id]
        );
    });
}

#[test]
fn holds_are_refused_unless_sound_and_a_retry_or_past_time_is_no_exception() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let [sec, b, c]: [Identity; 3] = w
            .members(&[("AR", "primary"), ("CL", "primary"), ("MX", "primary")])
            .await
            .try_into()
            .ok()
            .unwrap();
        let stranger = id();
        let due = T0 + HOUR;
        let about = [7; 16];
        let to_b = sealed(&sec, &[&b]);
        let refused = |r: Response| code(&r);
        // The recipient must be one of the envelope's.
        assert_eq!(
            refused(w.ask(&sec, hold_req(&to_b.bytes, &c, due, about, &[&c])).await),
            Some(ErrorCode::Malformed)
        );
        // ... and enrolled (the envelope's other recipients need not be).
        let with_stranger = sealed(&sec, &[&b, &stranger]);
        assert_eq!(
            refused(
                w.ask(
                    &sec,
                    hold_req(&with_stranger.bytes, &stranger, due, about, &[&stranger])
                )
                .await
            ),
            Some(ErrorCode::UnknownRecipient)
        );
        // At most 400 days ahead.
        let far = T0 + 400 * 24 * HOUR + 1;
        assert_eq!(
            refused(w.ask(&sec, hold_req(&to_b.bytes, &b, far, about, &[&b])).await),
            Some(ErrorCode::Malformed)
        );
        // One to sixteen keys may cancel.
        assert_eq!(
            refused(w.ask(&sec, hold_req(&to_b.bytes, &b, due, about, &[])).await),
            Some(ErrorCode::Malformed)
        );
        let many: Vec<Identity> = (0..17).map(|_| id()).collect();
        let many: Vec<&Identity> = many.iter().collect();
        assert_eq!(
            refused(w.ask(&sec, hold_req(&to_b.bytes, &b, due, about, &many)).await),
            Some(ErrorCode::TooLarge)
        );
        // Verified like a send: signed by the connection's key, untampered.
        assert_eq!(
            refused(w.ask(&c, hold_req(&to_b.bytes, &b, due, about, &[&b])).await),
            Some(ErrorCode::NotSender)
        );
        let mut bad = to_b.bytes.clone();
        let n = bad.len();
        bad[n - 100] ^= 1;
        assert_eq!(
            refused(w.ask(&sec, hold_req(&bad, &b, due, about, &[&b])).await),
            Some(ErrorCode::BadEnvelope)
        );
        assert!(w.svc.backlog(b.public_key(), 0).await.unwrap().is_empty());
        // Sound, with the envelope's other recipient not enrolled; then retried.
        for (duplicate_expected, at) in [(false, T0), (true, T0)] {
            match w.ask(&sec, hold_req(&with_stranger.bytes, &b, due, about, &[&b])).await {
                Response::Accepted {
                    duplicate,
                    stored_at_ms,
                    ..
                } => assert_eq!((duplicate, stored_at_ms), (duplicate_expected, at)),
                other => panic!("{other:?}"),
            }
            w.clock.advance(1_000);
        }
        // A time in the past means now.
        let past = sealed(&sec, &[&b]);
        assert!(matches!(
            w.ask(&sec, hold_req(&past.bytes, &b, T0 - HOUR, about, &[&b])).await,
            Response::Accepted { .. }
        ));
        assert_eq!(backlog_ids(&w.svc, &b).await, vec![past.message_id]);
        w.clock.set(due);
        assert_eq!(
            backlog_ids(&w.svc, &b).await,
            vec![past.message_id, with_stranger.message_id]
        );
    });
}

#[test]
fn held_envelopes_take_the_recipients_queue_room_and_the_senders_share() {
    rt().block_on(async {
        let w = world(Config {
            queue_quota: 4,
            ..Config::default()
        })
        .await;
        let [sec, b]: [Identity; 2] = w
            .members(&[("AR", "primary"), ("CL", "primary")])
            .await
            .try_into()
            .ok()
            .unwrap();
        let challenge = sealed(&sec, &[&b]);
        let r = sealed(&sec, &[&b]);
        assert!(matches!(
            w.ask(&sec, hold_req(&r.bytes, &b, T0 + HOUR, challenge.message_id, &[&b]))
                .await,
            Response::Accepted { .. }
        ));
        assert_eq!(
            code(&w.send(&sec, challenge.bytes.clone()).await),
            Some(ErrorCode::QuotaExceeded),
            "the held envelope holds the sender's quarter of b's queue"
        );
    });
}
