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
            acked.extend(results.into_iter().filter_map(|r| r.ok()).map(|s| s.id));
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
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "a message was shown twice");
    // A second fetch brings nothing new: the relay's queue is drained by the acks.
    assert_eq!(mx.json(&["inbox"]).as_array().unwrap().len(), got.len());
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
    assert_eq!(mx.json(&["inbox"]).as_array().unwrap().len(), 1);
    // A hostile (or confused) relay queues the delivered envelope again.
    let db = relay.db();
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
        assert!(err.to_string().contains("NotSender"), "{err}");
        s.close().await;
    });
}
