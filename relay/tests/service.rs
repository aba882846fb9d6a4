//! The relay's decisions without sockets: the service over a real SQLite store and a clock
//! the test drives. Every refusal rule and state change of request handling is here.

use std::sync::Arc;

use pocnet_crypto::{seal, HeaderFields, Identity, Receipt, ReceiptKind, Suite};
use pocnet_relay::clock::{Clock, ManualClock};
use pocnet_relay::service::{Kind, Service, UploadPlan};
use pocnet_relay::store::{invite_hash, Members, NewInvite, Queue, SqliteStore};
use pocnet_relay::Config;
use pocnet_wire::{verify_acceptance, ErrorCode, Request, Response};

const T0: u64 = 1_800_000_000_000;

struct World {
    svc: Service<SqliteStore, ManualClock>,
    clock: ManualClock,
    relay: Arc<Identity>,
    _dir: tempfile::TempDir,
    next_invite: std::cell::Cell<u32>,
}

fn world(cfg: Config) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("relay.db"), 64, cfg.queue_quota, None).unwrap();
    let clock = ManualClock::new(T0);
    let relay = Arc::new(id());
    World {
        svc: Service::new(store, clock.clone(), cfg, relay.clone()),
        clock,
        relay,
        _dir: dir,
        next_invite: std::cell::Cell::new(0),
    }
}

fn id() -> Identity {
    Identity::generate(&mut pocnet_crypto::os_rng(), T0 / 1000, 365 * 86400).unwrap()
}

fn code(e: &Response) -> Option<ErrorCode> {
    match e {
        Response::Error { code, .. } => Some(*code),
        _ => None,
    }
}

impl World {
    async fn invite(&self, state: &str, role: &str, ttl_ms: u64) -> String {
        let n = self.next_invite.get();
        self.next_invite.set(n + 1);
        let code = format!("code-{n}-{state}-{role}");
        self.svc
            .store()
            .create_invite(NewInvite {
                code_hash: invite_hash(&code),
                state: state.into(),
                role: role.into(),
                name: format!("{state} {role}"),
                created_at_ms: self.clock.now_ms(),
                expires_at_ms: self.clock.now_ms() + ttl_ms,
            })
            .await
            .unwrap();
        code
    }
    async fn member(&self, state: &str, role: &str) -> Identity {
        let who = id();
        let invite = self.invite(state, role, 3_600_000).await;
        let r = self
            .svc
            .handle(
                who.public_key(),
                Request::Enrol {
                    invite,
                    public_identity: who.public().to_bytes(),
                },
            )
            .await;
        assert!(matches!(r, Response::Enrolled { .. }), "{r:?}");
        who
    }
    async fn send(&self, from: &Identity, envelope: Vec<u8>) -> Response {
        self.svc.handle(from.public_key(), Request::Send { envelope }).await
    }
}

fn sealed(from: &Identity, to: &[&Identity]) -> pocnet_crypto::Sealed {
    let pubs: Vec<_> = to.iter().map(|i| i.public()).collect();
    let fields = HeaderFields {
        suite: Suite::X25519,
        ..HeaderFields::message(T0)
    };
    seal(
        &mut pocnet_crypto::os_rng(),
        from,
        &pubs,
        &fields,
        b"airport ATC degraded",
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_key_that_is_not_enrolled_may_only_say_hello_and_enrol() {
    rt().block_on(async {
        let w = world(Config::default());
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
        let member = w.member("CL", "primary").await;
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
        assert_eq!(
            code(&w.svc.handle(k, Request::Hello { protocol: 1 }).await),
            Some(ErrorCode::UnsupportedVersion)
        );
    });
}

#[test]
fn enrolment_checks_the_key_the_invite_its_expiry_by_the_clock_and_one_use() {
    rt().block_on(async {
        let w = world(Config::default());
        let (a, b) = (id(), id());
        let invite = w.invite("MX", "primary", 60_000).await;
        let enrol = |_conn: &Identity, pi: &Identity, invite: &str| Request::Enrol {
            invite: invite.into(),
            public_identity: pi.public().to_bytes(),
        };
        // Someone else's public identity on this connection.
        assert_eq!(
            code(&w.svc.handle(a.public_key(), enrol(&a, &b, &invite)).await),
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(
            code(&w.svc.handle(a.public_key(), enrol(&a, &a, "no-such-code")).await),
            Some(ErrorCode::BadInvite)
        );
        w.clock.advance(60_000);
        assert_eq!(
            code(&w.svc.handle(a.public_key(), enrol(&a, &a, &invite)).await),
            Some(ErrorCode::InviteExpired)
        );
        let fresh = w.invite("MX", "primary", 60_000).await;
        assert!(matches!(
            w.svc.handle(a.public_key(), enrol(&a, &a, &fresh)).await,
            Response::Enrolled { .. }
        ));
        assert_eq!(
            code(&w.svc.handle(b.public_key(), enrol(&b, &b, &fresh)).await),
            Some(ErrorCode::InviteUsed)
        );
    });
}

#[test]
fn a_revoked_key_is_refused_everything_and_cannot_be_sent_to() {
    rt().block_on(async {
        let w = world(Config::default());
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
        w.svc
            .store()
            .revoke("MX.primary".into(), w.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        let r = w
            .svc
            .handle(b.public_key(), Request::Lookup { query: "*".into() })
            .await;
        assert_eq!(code(&r), Some(ErrorCode::Revoked));
        assert_eq!(
            code(&w.send(&a, sealed(&a, &[&b]).bytes).await),
            Some(ErrorCode::UnknownRecipient)
        );
        let outsider = id();
        assert_eq!(
            code(&w.send(&a, sealed(&a, &[&outsider]).bytes).await),
            Some(ErrorCode::UnknownRecipient)
        );
    });
}

#[test]
fn send_refuses_oversize_forged_tampered_and_undeliverable_envelopes() {
    rt().block_on(async {
        let w = world(Config {
            max_envelope_bytes: 4096,
            ..Config::default()
        });
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
        let w = world(Config::default());
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
        });
        let a = w.member("CL", "primary").await;
        let b = w.member("MX", "primary").await;
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
        for kind in [Kind::Watch, Kind::GetBlob, Kind::Hello] {
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
        });
        let hello = || Request::Hello {
            protocol: pocnet_wire::PROTOCOL_VERSION,
        };
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
        let w = world(Config::default());
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
        });
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
        });
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
        });
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
        let w = world(Config::default());
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
