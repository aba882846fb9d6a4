//! Hostile clients against the real relay binary while an honest pair keeps exchanging
//! messages: every attack of the probe (`pocnet_tests::probe`) is held off with the right
//! refusal, and every message the honest sender was told "accepted" is delivered.

use std::time::Duration;

use pocnet_tests::probe::{self, connect, identity, Honest, Raw};
use pocnet_tests::{Poc, Relay};
use pocnet_wire::{ErrorCode, Request};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A POC listed in the relay's directory as `STATE.role`, connected with a raw client.
async fn member(relay: &Relay, state: &str, role: &str) -> Raw {
    let addr = relay.addr.parse().unwrap();
    let fp = pocnet_crypto::Fingerprint::parse(&relay.fingerprint).unwrap();
    let poc = Poc::enrolled(relay, state, role);
    let id = pocnet_crypto::Identity::from_secret_bytes(&poc.client().identity.to_secret_bytes()).unwrap();
    connect(addr, fp, id).await.unwrap()
}

#[test]
fn attacks_are_held_off_while_an_honest_pair_keeps_every_message() {
    let relay = Relay::start_with(
        "rate_per_sec = 1000000.0\nrate_burst = 1000000.0\nrequest_rate_per_sec = 20.0\nrequest_burst = 40.0\nupload_quota_mib = 10\nmax_watchers_per_key = 4\nunenrolled_rate_per_sec = 1000.0\nmax_unenrolled_per_address = 64",
    );
    rt().block_on(async {
        let addr = relay.addr.parse().unwrap();
        let fp = pocnet_crypto::Fingerprint::parse(&relay.fingerprint).unwrap();
        let a = member(&relay, "CL", "primary").await;
        let b = member(&relay, "MX", "primary").await;
        let insider = member(&relay, "US", "primary").await;
        let victim = member(&relay, "AR", "primary").await;
        let (bpub, vpub) = (b.id.public(), victim.id.public());
        let honest = Honest::start(a, b, 16).await;

        let strangers = tokio::spawn(probe::strangers(addr, fp, 12));
        let undeliverable = probe::undeliverable(&insider, &vpub, &bpub, 20).await;
        let (watchers, held) = probe::idle_watchers(&insider, 12).await;
        // A one-off backlog read counts against the same limit while four are held.
        let one_more = insider.one(&Request::Watch { follow: false }).await.unwrap();
        let uploads = probe::upload_fill(&insider, 4 * 1024 * 1024, 6).await;
        let twice = probe::concurrent_upload(&insider).await.unwrap();
        let lookups = probe::flood(&insider, Request::Lookup { query: "*".into() }, 100).await;
        let hellos = probe::flood(
            &insider,
            Request::Hello {
                protocol: pocnet_wire::PROTOCOL_VERSION,
            },
            100,
        )
        .await;
        let acks = probe::flood(&insider, Request::Ack { seqs: vec![1] }, 300).await;
        let strangers = strangers.await.unwrap();

        let (sent, delivered, refused) = honest.drain(Duration::from_secs(60)).await;
        assert!(sent > 0, "the honest pair made progress");
        assert_eq!((delivered, refused), (sent, 0), "every accepted honest message arrived");

        // Strangers: member calls refused, big frames refused before they are read,
        // no fifth concurrent stream.
        assert_eq!(strangers.count(ErrorCode::NotEnrolled), 12, "{strangers:?}");
        assert_eq!(strangers.count(ErrorCode::TooLarge), 24, "{strangers:?}");
        assert_eq!(
            strangers.0.get("fifth stream held back").copied(),
            Some(12),
            "{strangers:?}"
        );
        // Envelopes the victim could never open are refused, and its queue stays empty.
        assert_eq!(undeliverable.count(ErrorCode::BadEnvelope), 20, "{undeliverable:?}");
        match victim.one(&Request::Watch { follow: false }).await.unwrap() {
            pocnet_wire::Response::CaughtUp => {}
            other => panic!("victim's queue should be empty: {other:?}"),
        }
        // Four watchers, then refused; the places free up when the watchers go away, even
        // though no item ever arrives for them.
        assert_eq!(watchers.0.get("CaughtUp").copied(), Some(4), "{watchers:?}");
        assert_eq!(watchers.count(ErrorCode::LimitReached), 8, "{watchers:?}");
        assert!(
            matches!(
                one_more,
                pocnet_wire::Response::Error {
                    code: ErrorCode::LimitReached,
                    ..
                }
            ),
            "{one_more:?}"
        );
        drop(held);
        let freed = async {
            loop {
                if let Ok(pocnet_wire::Response::CaughtUp) = insider.one(&Request::Watch { follow: false }).await {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), freed)
            .await
            .expect("watch places freed after the watchers left");
        // One upload of an attachment at a time.
        assert!(
            matches!(
                twice,
                pocnet_wire::Response::Error {
                    code: ErrorCode::LimitReached,
                    ..
                }
            ),
            "{twice:?}"
        );
        // Two 4 MiB reservations fit the 10 MiB quota; the rest are refused before any byte.
        assert_eq!(uploads.0.get("BlobStored").copied(), Some(2), "{uploads:?}");
        assert_eq!(uploads.count(ErrorCode::LimitReached), 4, "{uploads:?}");
        // Each flooded request type runs into its own limit (burst 40, 20/s; acks 4×).
        for (t, ok) in [(&lookups, "Directory"), (&hellos, "Welcome"), (&acks, "Done")] {
            assert!(t.count(ErrorCode::RateLimited) >= 50, "{t:?}");
            assert!(t.0.get(ok).copied().unwrap_or(0) <= 250, "{t:?}");
        }
        assert!(lookups.0.get("Directory").copied().unwrap_or(0) <= 60, "{lookups:?}");
    });
}

#[test]
fn strangers_get_few_connections_per_address_and_each_request_costs_their_shared_budget() {
    let relay = Relay::start_with("max_unenrolled_per_address = 3\nunenrolled_rate_per_sec = 2.0");
    rt().block_on(async {
        let addr = relay.addr.parse().unwrap();
        let fp = pocnet_crypto::Fingerprint::parse(&relay.fingerprint).unwrap();
        let hello = Request::Hello {
            protocol: pocnet_wire::PROTOCOL_VERSION,
        };
        let mut held = Vec::new();
        for _ in 0..3 {
            let c = connect(addr, fp, identity()).await.unwrap();
            c.pipe.call(hello.clone()).await.unwrap();
            held.push(c);
        }
        // A fourth from the same address is closed right after the handshake.
        let refused = match connect(addr, fp, identity()).await {
            Err(_) => true,
            Ok(fourth) => fourth.pipe.call(hello.clone()).await.is_err(),
        };
        assert!(refused, "a fourth connection from one address is closed");
        // Refusals cost the strangers' budget too (burst 10 at 2/s): member calls from
        // strangers soon get RateLimited rather than a free NotEnrolled.
        let mut codes = Vec::new();
        for _ in 0..20 {
            if let Ok(pocnet_wire::Response::Error { code, .. }) =
                held[0].pipe.call(Request::Lookup { query: "*".into() }).await
            {
                codes.push(code);
            }
        }
        assert!(codes.contains(&ErrorCode::NotEnrolled), "{codes:?}");
        assert!(codes.contains(&ErrorCode::RateLimited), "{codes:?}");
    });
}

#[test]
fn a_stranger_connection_is_closed_when_its_time_to_enrol_is_up() {
    let relay = Relay::start_with("unenrolled_lifetime_secs = 1");
    rt().block_on(async {
        let addr = relay.addr.parse().unwrap();
        let fp = pocnet_crypto::Fingerprint::parse(&relay.fingerprint).unwrap();
        let c = connect(addr, fp, identity()).await.unwrap();
        assert!(matches!(
            c.pipe
                .call(Request::Hello {
                    protocol: pocnet_wire::PROTOCOL_VERSION
                })
                .await
                .unwrap(),
            pocnet_wire::Response::Welcome { member: None, .. }
        ));
        // The relay closes it (code 3) although the client keeps it alive.
        let why = tokio::time::timeout(Duration::from_secs(10), c.conn.closed())
            .await
            .expect("closed by the relay within its lifetime");
        match why {
            quinn::ConnectionError::ApplicationClosed(a) => assert_eq!(a.error_code, 3u32.into()),
            other => panic!("{other:?}"),
        }
    });
}
