//! What the relay acknowledged is never lost, and a hostile relay is caught.

use pocnet_client::app::Outgoing;
use pocnet_crypto::Tlp;
use pocnet_tests::{Poc, Relay};

fn outgoing(text: String) -> Outgoing {
    Outgoing {
        subject: "load".into(),
        text,
        tlp: Tlp::Green,
        attachments: vec![],
        incident_id: None,
    }
}

#[test]
fn kill_9_while_sending_loses_no_acknowledged_message_and_duplicates_none() {
    let mut relay = Relay::start_with("rate_per_sec = 100000.0\nrate_burst = 100000.0");
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let sender = cl.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pid = relay.pid();
    let to = vec!["MX.primary".to_string()];
    let acknowledged: Vec<String> = rt.block_on(async {
        let s = sender.connect().await.unwrap();
        let mut acked = Vec::new();
        let mut killed = false;
        // Eight sends in flight at a time, so requests are mid-commit when the relay dies.
        for round in 0..1000u32 {
            let msgs: Vec<Outgoing> = (0..8).map(|k| outgoing(format!("m{}", round * 8 + k))).collect();
            let batch: Vec<_> = msgs.iter().map(|m| sender.send(&s, &to, m)).collect();
            if acked.len() >= 40 && !killed {
                killed = true;
                std::thread::spawn(move || {
                    std::process::Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status()
                });
            }
            let results = futures_join(batch).await;
            let failed = results.iter().any(|r| r.is_err());
            acked.extend(results.into_iter().filter_map(|r| r.ok()).map(|s| s.id.to_hex()));
            if failed {
                break;
            }
        }
        acked
    });
    relay.kill9();
    assert!(
        acknowledged.len() >= 40,
        "sender was acknowledged {} messages",
        acknowledged.len()
    );
    relay.serve();
    let inbox = mx.json(&["inbox"]);
    let got: Vec<String> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    for id in &acknowledged {
        assert!(got.contains(id), "acknowledged message {id} was lost");
    }
    // Nothing the sender was not told about appears either, beyond the requests in flight.
    assert!(
        got.len() <= acknowledged.len() + 8,
        "{} shown, {} acknowledged",
        got.len(),
        acknowledged.len()
    );
    // Everything was acknowledged to the relay: its queue is empty, and a further sync sees
    // neither new messages nor redeliveries.
    let queued: i64 = relay
        .db()
        .query_row("SELECT COUNT(*) FROM queue WHERE kind = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queued, 0);
    let m = mx.client();
    let stats = rt.block_on(async {
        let s = m.connect().await.unwrap();
        m.sync(&s, false, None, |_, _| {}).await.unwrap()
    });
    assert_eq!((stats.new_messages, stats.duplicates), (0, 0));
}

async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::with_capacity(fs.len());
    // Poll all futures concurrently on this task.
    let mut pinned: Vec<_> = fs.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().map(|d| d.expect("all ready")));
    out
}

#[test]
fn replayed_envelope_from_the_relay_is_shown_once() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    cl.ok(&["send", "MX.primary", "-m", "once"]);
    let db = relay.db();
    let kept: Vec<u8> = db.query_row("SELECT bytes FROM envelopes", [], |r| r.get(0)).unwrap();
    assert_eq!(mx.json(&["inbox"]).as_array().unwrap().len(), 1);
    // Delivered and acknowledged: the relay no longer holds the ciphertext ...
    let left: Vec<u8> = db.query_row("SELECT bytes FROM envelopes", [], |r| r.get(0)).unwrap();
    assert!(left.is_empty());
    // ... but a hostile relay kept a copy and queues it again.
    db.execute("UPDATE envelopes SET bytes = ?1", [&kept]).unwrap();
    db.execute("INSERT INTO queue(recipient, kind, envelope_id, expires_at) SELECT members.key, 1, envelopes.id, 99999999999999 FROM members, envelopes WHERE members.handle = 'MX.primary'", []).unwrap();
    let c = mx.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stats = rt.block_on(async {
        let s = c.connect().await.unwrap();
        c.sync(&s, false, None, |_, _| {}).await.unwrap()
    });
    assert_eq!((stats.new_messages, stats.duplicates), (0, 1));
    assert_eq!(mx.json(&["inbox", "--offline"]).as_array().unwrap().len(), 1);
}

#[test]
fn envelope_altered_at_the_relay_is_rejected_not_shown() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    cl.ok(&["send", "MX.primary", "-m", "original text"]);
    // Flip one byte of the stored ciphertext (just before the signature).
    let db = relay.db();
    let (id, mut bytes): (i64, Vec<u8>) = db
        .query_row("SELECT id, bytes FROM envelopes", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let n = bytes.len();
    bytes[n - 70] ^= 1;
    db.execute(
        "UPDATE envelopes SET bytes = ?1 WHERE id = ?2",
        rusqlite::params![bytes, id],
    )
    .unwrap();
    let c = mx.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stats = rt.block_on(async {
        let s = c.connect().await.unwrap();
        c.sync(&s, false, None, |_, _| {}).await.unwrap()
    });
    assert_eq!((stats.new_messages, stats.rejected), (0, 1));
    assert!(mx.json(&["inbox", "--offline"]).as_array().unwrap().is_empty());
}

#[test]
fn envelope_from_a_key_other_than_the_connection_is_refused() {
    // A POC cannot make the relay store an envelope signed by someone else.
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let (c, m) = (cl.client(), mx.client());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = m.connect().await.unwrap();
        let target = c.identity.public();
        let fields = pocnet_crypto::HeaderFields::message(pocnet_client::now_ms());
        // CL seals to itself, MX uploads it.
        let sealed = pocnet_crypto::seal(&mut pocnet_crypto::os_rng(), &c.identity, &[target], &fields, b"x").unwrap();
        let err = s
            .request(&pocnet_wire::Request::Send { envelope: sealed.bytes })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                pocnet_client::Error::Relay {
                    code: pocnet_wire::ErrorCode::NotSender,
                    ..
                }
            ),
            "{err}"
        );
        s.close().await;
    });
}

#[test]
fn interrupted_attachment_upload_resumes_from_what_the_relay_kept() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let ar = Poc::enrolled(&relay, "AR", "primary");
    let (c, m) = (cl.client(), mx.client());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = c.connect().await.unwrap();
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let fields = pocnet_crypto::HeaderFields {
            content_type: pocnet_crypto::ContentType::Attachment,
            ..pocnet_crypto::HeaderFields::message(pocnet_client::now_ms())
        };
        let path = cl.home.path().join("att.env");
        let mut file = std::fs::File::create(&path).unwrap();
        let info = pocnet_crypto::seal_stream(
            &mut pocnet_crypto::os_rng(),
            &c.identity,
            &[m.identity.public()],
            &fields,
            body.len() as u64,
            &mut body.as_slice(),
            &mut file,
        )
        .unwrap();
        drop(file);
        let env = std::fs::read(&path).unwrap();
        // An upload that stops after 1 MB, as when a connection drops.
        let mut partial = pocnet_wire::encode(&pocnet_wire::Request::PutBlob {
            message_id: info.message_id,
            total_len: env.len() as u64,
            offset: 0,
        });
        partial.extend_from_slice(&env[..1_000_000]);
        match s.raw(&partial).await.unwrap() {
            pocnet_wire::Response::BlobStored { stored, complete } => {
                assert_eq!((stored, complete), (1_000_000, false))
            }
            other => panic!("{other:?}"),
        }
        // The client asks from offset 0, is told 1 MB is there, and sends only the rest.
        s.put_blob(info.message_id, &path).await.unwrap();
        s.close().await;
        // The recipient downloads exactly the envelope that was sealed, and it opens.
        let r = m.connect().await.unwrap();
        let got = mx.home.path().join("got.env");
        // A download larger than the caller allows is refused.
        let err = r.get_blob(info.message_id, &got, 1000).await.unwrap_err();
        assert!(
            matches!(err, pocnet_client::Error::TooLarge { got, max: 1000, .. } if got == env.len() as u64),
            "{err}"
        );
        r.get_blob(info.message_id, &got, u64::MAX).await.unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), env);
        let mut out = Vec::new();
        pocnet_crypto::open_stream(
            &m.identity,
            &mut std::fs::File::open(&got).unwrap(),
            c.identity.public_key(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, body);
        r.close().await;
        // A third key may not download it.
        let third = ar.client();
        let t = third.connect().await.unwrap();
        let err = t
            .get_blob(info.message_id, &ar.home.path().join("x"), u64::MAX)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                pocnet_client::Error::Relay {
                    code: pocnet_wire::ErrorCode::Forbidden,
                    ..
                }
            ),
            "{err}"
        );
        t.close().await;
    });
}

#[test]
fn uploads_that_are_not_the_senders_signed_attachment_are_refused_and_not_kept() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let (c, m) = (cl.client(), mx.client());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = c.connect().await.unwrap();
        let seal = |ct: pocnet_crypto::ContentType, signer: &pocnet_crypto::Identity| {
            let f = pocnet_crypto::HeaderFields {
                content_type: ct,
                ..pocnet_crypto::HeaderFields::message(pocnet_client::now_ms())
            };
            pocnet_crypto::seal(
                &mut pocnet_crypto::os_rng(),
                signer,
                &[m.identity.public()],
                &f,
                &[7u8; 5000],
            )
            .unwrap()
        };
        let good = seal(pocnet_crypto::ContentType::Attachment, &c.identity);
        let mut flipped = good.bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        let cases = [
            (good.message_id, flipped, "flipped byte"),
            (
                good.message_id,
                seal(pocnet_crypto::ContentType::Message, &c.identity).bytes,
                "not an attachment / other id",
            ),
            ([9; 16], good.bytes.clone(), "id does not match the envelope"),
            (
                good.message_id,
                seal(pocnet_crypto::ContentType::Attachment, &m.identity).bytes,
                "signed by another key",
            ),
        ];
        for (id, bytes, what) in cases {
            let mut req = pocnet_wire::encode(&pocnet_wire::Request::PutBlob {
                message_id: id,
                total_len: bytes.len() as u64,
                offset: 0,
            });
            req.extend_from_slice(&bytes);
            let resp = s.raw(&req).await.unwrap();
            assert!(
                matches!(
                    resp,
                    pocnet_wire::Response::Error {
                        code: pocnet_wire::ErrorCode::BadEnvelope,
                        ..
                    }
                ),
                "{what}: {resp:?}"
            );
        }
        let kept: i64 = relay
            .db()
            .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 0);
        s.close().await;
    });
}

#[test]
fn sigterm_answers_or_refuses_every_request_in_flight_and_keeps_what_it_accepted() {
    let mut relay = Relay::start_with("rate_per_sec = 100000.0\nrate_burst = 100000.0");
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let sender = cl.client();
    let pid = relay.pid();
    let to = vec!["MX.primary".to_string()];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (acked, refusals) = rt.block_on(async {
        let s = sender.connect().await.unwrap();
        let first = sender.send(&s, &to, &outgoing("first".into())).await.unwrap();
        let msgs: Vec<Outgoing> = (0..24).map(|k| outgoing(format!("in flight {k}"))).collect();
        let batch: Vec<_> = msgs.iter().map(|m| sender.send(&s, &to, m)).collect();
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let results = futures_join(batch).await;
        let mut acked = vec![first.id.to_hex()];
        let mut refusals = Vec::new();
        for r in results {
            match r {
                Ok(sent) => acked.push(sent.id.to_hex()),
                Err(e) => refusals.push(format!("{e:#}")),
            }
        }
        (acked, refusals)
    });
    // Every request got an answer: accepted, or told the relay is shutting down.
    for e in &refusals {
        assert!(e.contains("shutting down"), "unexpected failure: {e}");
    }
    assert!(relay.terminate().success(), "graceful exit");
    relay.serve();
    let got: Vec<String> = mx
        .json(&["inbox"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    for id in &acked {
        assert!(got.contains(id), "accepted message {id} lost in a graceful shutdown");
    }
}
