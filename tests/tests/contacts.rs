//! A POC is its key: a new key behind a known handle is shown as unverified, blocks
//! sending until a person accepts it, and receipts can only come from real recipients.

use pocnet_tests::{Poc, Relay};

#[test]
fn a_new_key_for_a_known_handle_is_flagged_and_blocks_sending_until_accepted() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    cl.ok(&["send", "MX.primary", "-m", "hello from the real CL"]);
    assert_eq!(mx.json(&["inbox"])[0]["peer"], "CL.primary");
    // CL.primary's key is replaced at the relay (a stolen laptop re-enrolled, or a hostile operator).
    assert!(relay.admin(&["revoke", "CL.primary"]).status.success());
    let impostor = Poc::enrolled(&relay, "CL", "primary");
    impostor.ok(&["send", "MX.primary", "-m", "trust me"]);
    let inbox = mx.json(&["inbox"]);
    let m = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["body"] == "trust me")
        .unwrap();
    let shown = m["peer"].as_str().unwrap();
    assert!(
        shown.starts_with("UNVERIFIED") && shown.contains("CL.primary"),
        "{shown}"
    );
    // MX cannot send to the new key by accident ...
    let err = mx.fails(&["send", "CL.primary", "-m", "reply"]);
    assert!(err.contains("CHANGED"), "{err}");
    // ... `verify` shows the change and the safety number, and --accept pins the new key.
    let v = mx.json(&["verify", "CL.primary"]);
    assert!(v["key_changed_from"].is_string());
    assert_eq!(v["safety_number"].as_str().unwrap().len(), 60);
    mx.ok(&["verify", "CL.primary", "--accept"]);
    mx.ok(&["send", "CL.primary", "-m", "reply after a call"]);
    assert!(impostor
        .json(&["inbox"])
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["body"] == "reply after a call"));
}

#[test]
fn receipts_from_non_recipients_or_for_other_envelopes_are_rejected() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let ar = Poc::enrolled(&relay, "AR", "primary");
    let sent = cl.json(&["send", "MX.primary", "-m", "for MX only"]);
    let id = sent["id"].as_str().unwrap();
    let mid: [u8; 16] = pocnet_crypto::from_hex(id).unwrap().try_into().unwrap();
    // The envelope's real hash, as a recipient (or the relay) knows it.
    let hash: [u8; 32] = relay
        .db()
        .query_row(
            "SELECT envelope_hash FROM envelopes WHERE message_id = ?1",
            [mid.as_slice()],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .unwrap()
        .try_into()
        .unwrap();
    let (c, a, m) = (cl.client(), ar.client(), mx.client());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let receipt = |who: &pocnet_client::app::Client, hash: [u8; 32]| pocnet_wire::Request::SendReceipt {
            to: *c.identity.public_key().as_bytes(),
            receipt: pocnet_crypto::Receipt::sign(
                &who.identity,
                pocnet_crypto::ReceiptKind::Read,
                mid,
                hash,
                c.identity.public_key(),
                1,
            )
            .as_bytes()
            .to_vec(),
        };
        // MX "reads" a different envelope hash: the relay knows no such envelope from CL.
        let s = m.connect().await.unwrap();
        let refused = s.request(&receipt(&m, [9u8; 32])).await.unwrap_err();
        assert!(
            matches!(
                refused,
                pocnet_client::Error::Relay {
                    code: pocnet_wire::ErrorCode::NotFound,
                    ..
                }
            ),
            "{refused:?}"
        );
        s.close().await;
        // AR (not a recipient) claims to have read the real envelope: the relay does not check
        // who the recipients were, but CL's client does, and rejects it.
        let s = a.connect().await.unwrap();
        s.request(&receipt(&a, hash)).await.unwrap();
        s.close().await;
        let s = c.connect().await.unwrap();
        let stats = c.sync(&s, false, None, |_, _| {}).await.unwrap();
        assert_eq!((stats.receipts, stats.rejected), (0, 1));
        s.close().await;
    });
    assert_eq!(cl.json(&["status", id])["recipients"][0]["state"], "stored");
}
