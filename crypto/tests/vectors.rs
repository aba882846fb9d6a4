//! Known-answer vectors pinning the v1 formats. Keys and randomness come from a fixed
//! RNG, so the bytes are reproducible. A format change makes this test fail; update
//! the file deliberately with `POCNET_UPDATE_VECTORS=1 cargo test -p pocnet-crypto --test vectors`
//! and say so in PROTOCOL.md.

mod common;

use std::collections::BTreeMap;

use common::*;
use pocnet_crypto::envelope::{HeaderFields, Suite};
use pocnet_crypto::{open, safety_number, seal, Receipt, ReceiptKind, Tlp};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/v1.txt");

fn compute() -> BTreeMap<String, String> {
    let alice = identity("vector-alice");
    let bob = identity("vector-bob");
    let carol = identity("vector-carol");
    let mut v = BTreeMap::new();
    v.insert("alice.public_identity".into(), hex::encode(alice.public().to_bytes()));
    v.insert("alice.fingerprint".into(), alice.fingerprint().to_hex());
    v.insert("bob.public_identity".into(), hex::encode(bob.public().to_bytes()));
    v.insert(
        "safety_number.alice_bob".into(),
        safety_number(alice.public_key(), bob.public_key()).digits().to_string(),
    );
    for (name, suite) in [("x25519", Suite::X25519), ("xwing", Suite::XWing)] {
        let fields = HeaderFields {
            suite,
            tlp: Tlp::AmberStrict,
            incident_id: Some("KAT-1".into()),
            ..HeaderFields::message(NOW * 1000)
        };
        let sealed = seal(
            &mut SeededRng::new(&format!("vector-seal-{name}")),
            &alice,
            &[bob.public(), carol.public()],
            &fields,
            b"pocnet known-answer vector",
        )
        .unwrap();
        v.insert(format!("envelope.{name}"), hex::encode(&sealed.bytes));
        v.insert(format!("envelope.{name}.hash"), hex::encode(sealed.envelope_hash));
    }
    let receipt = Receipt::sign(
        &bob,
        ReceiptKind::Delivered,
        [0x11; 16],
        [0x22; 32],
        alice.public_key(),
        NOW * 1000,
    );
    v.insert("receipt.delivered".into(), hex::encode(receipt.as_bytes()));
    v
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_string(), v.trim().to_string())))
        .collect()
}

#[test]
fn formats_match_known_answer_vectors() {
    let now = compute();
    if std::env::var_os("POCNET_UPDATE_VECTORS").is_some() {
        let mut out = String::from("# pocnet v1 known-answer vectors (see crypto/tests/vectors.rs and PROTOCOL.md)\n");
        for (k, val) in &now {
            out.push_str(&format!("{k}: {val}\n"));
        }
        std::fs::write(FILE, out).unwrap();
    }
    let stored = parse(&std::fs::read_to_string(FILE).expect("vector file"));
    assert_eq!(stored.keys().collect::<Vec<_>>(), now.keys().collect::<Vec<_>>());
    for (k, val) in &now {
        assert_eq!(&stored[k], val, "vector {k} changed: the wire format moved");
    }
}

#[test]
fn stored_envelopes_still_open() {
    let stored = parse(&std::fs::read_to_string(FILE).expect("vector file"));
    let alice = identity("vector-alice");
    let bob = identity("vector-bob");
    for name in ["x25519", "xwing"] {
        let env = hex::decode(&stored[&format!("envelope.{name}")]).unwrap();
        let opened = open(&bob, &env, alice.public_key()).unwrap();
        assert_eq!(opened.plaintext, b"pocnet known-answer vector");
        assert_eq!(
            hex::encode(opened.envelope_hash),
            stored[&format!("envelope.{name}.hash")]
        );
        assert_eq!(opened.header.tlp, Tlp::AmberStrict);
    }
}
