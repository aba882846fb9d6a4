//! A POC is its key, as the directory lists it: a listed contact is attested, a safety
//! number compared by voice makes it voice-verified (nothing is pinned that the user did
//! not see), a new key behind a known handle blocks sending until re-verified, and
//! receipts can only come from real recipients.

use pocnet_tests::{Poc, Relay};

/// The trust `pocnet directory --json` shows for `handle`.
fn listed_trust(poc: &Poc, handle: &str) -> String {
    let all = poc.json(&["directory"]);
    let entry = all
        .as_array()
        .expect("a list")
        .iter()
        .find(|p| p["handle"] == handle)
        .unwrap_or_else(|| panic!("{handle} listed: {all}"));
    entry["trust"].as_str().expect("trust shown").to_string()
}

fn verify_trust(poc: &Poc, handle: &str) -> (String, String) {
    let v = poc.json(&["verify", handle]);
    (
        v["trust"].as_str().expect("trust shown").to_string(),
        v["safety_number"].as_str().expect("safety number").to_string(),
    )
}

#[test]
fn trust_ladder_attested_then_voice_verified_and_a_changed_key_blocks_sending_until_verified() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    cl.ok(&["send", "MX.primary", "-m", "hello from the real CL"]);
    assert_eq!(mx.json(&["inbox"])[0]["peer"], "CL.primary");
    // Listed by the Secretariat: attested.
    assert!(listed_trust(&mx, "CL.primary").starts_with("attested"));
    let (trust, number) = verify_trust(&mx, "CL.primary");
    assert!(trust.starts_with("attested"), "{trust}");
    assert_eq!(number.len(), 60, "{number}");
    // A number that is not the one compared is refused and pins nothing.
    let wrong: String = number.chars().map(|c| if c == '1' { '2' } else { '1' }).collect();
    let out = mx.run(&["verify", "CL.primary", "--accept", &wrong]);
    assert_eq!(out.status.code(), Some(13), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(verify_trust(&mx, "CL.primary").0.starts_with("attested"));
    assert!(listed_trust(&mx, "CL.primary").starts_with("attested"));
    // The number both read on the call: voice-verified.
    mx.ok(&["verify", "CL.primary", "--accept", &number]);
    assert!(verify_trust(&mx, "CL.primary").0.starts_with("voice-verified"));
    assert!(listed_trust(&mx, "CL.primary").starts_with("voice-verified"));
    mx.ok(&["send", "CL.primary", "-m", "after our call"]);

    // CL.primary's laptop is lost: its national authority revokes the key, the Secretariat
    // publishes, and a new key is nominated and approved for the same handle.
    relay
        .authority("CL")
        .ok(&["national", "revoke", "CL.primary", "--reason", "lost"]);
    relay.secretariat.ok(&["secretariat", "publish"]);
    let new_cl = Poc::enrolled(&relay, "CL", "primary");
    new_cl.ok(&["send", "MX.primary", "-m", "my new key"]);
    let inbox = mx.json(&["inbox"]);
    let m = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["body"] == "my new key")
        .unwrap();
    let shown = m["peer"].as_str().unwrap();
    assert!(shown != "CL.primary" && shown.contains("CL.primary"), "{shown}");
    // MX cannot send to the new key by accident: exit 9, and the error says what to do.
    let out = mx.run(&["send", "CL.primary", "-m", "reply"]);
    assert_eq!(out.status.code(), Some(9), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pocnet verify CL.primary --accept"), "{err}");
    // `verify` shows the change and the new safety number.
    let (trust, new_number) = verify_trust(&mx, "CL.primary");
    assert!(trust.to_lowercase().starts_with("changed"), "{trust}");
    assert_ne!(new_number, number);
    assert!(listed_trust(&mx, "CL.primary").to_lowercase().starts_with("changed"));
    // The old number does not accept the new key.
    let out = mx.run(&["verify", "CL.primary", "--accept", &number]);
    assert_eq!(out.status.code(), Some(13), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mx.run(&["send", "CL.primary", "-m", "reply"]).status.code(), Some(9));
    // After comparing the new number by phone, sending works again.
    mx.ok(&["verify", "CL.primary", "--accept", &new_number]);
    assert!(verify_trust(&mx, "CL.primary").0.starts_with("voice-verified"));
    mx.ok(&["send", "CL.primary", "-m", "reply after a call"]);
    assert!(new_cl
        .json(&["inbox"])
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["body"] == "reply after a call"));
    // The revoked key is refused by the relay.
    let out = cl.run(&["inbox"]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
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
