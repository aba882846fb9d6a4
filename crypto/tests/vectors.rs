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

/// A second implementation's view: recompute the stored vectors from the formulas in
/// PROTOCOL.md with plain SHA-256, SHA-512, BLAKE3 and Ed25519, not this crate's code.
#[test]
fn documented_formulas_reproduce_the_vectors() {
    use sha2::{Digest, Sha256, Sha512};
    let stored = parse(&std::fs::read_to_string(FILE).expect("vector file"));
    let alice_pi = hex::decode(&stored["alice.public_identity"]).unwrap();
    let bob_pi = hex::decode(&stored["bob.public_identity"]).unwrap();
    // §2: public identity = 0x01 || record; record = 0x01 || identity key || ...
    assert_eq!((alice_pi.len(), alice_pi[0], alice_pi[1]), (1366, 1, 1));
    let alice_key: [u8; 32] = alice_pi[2..34].try_into().unwrap();
    let bob_key: [u8; 32] = bob_pi[2..34].try_into().unwrap();
    // §1 fingerprint.
    let fp = Sha256::digest([&b"pocnet/v1/fingerprint\0"[..], &alice_key].concat());
    assert_eq!(hex::encode(fp), stored["alice.fingerprint"]);
    // §1 safety number.
    let half = |k: &[u8; 32]| {
        let mut d = Sha512::digest([&b"pocnet/v1/safety-number\0"[..], k].concat());
        for _ in 0..5200 {
            d = Sha512::digest([&d[..], k].concat());
        }
        d[..30]
            .chunks(5)
            .map(|c| format!("{:05}", c.iter().fold(0u64, |a, b| a << 8 | *b as u64) % 100_000))
            .collect::<String>()
    };
    let (a, b) = (half(&alice_key), half(&bob_key));
    let sn = if a <= b { a + &b } else { b + &a };
    assert_eq!(sn, stored["safety_number.alice_bob"]);
    // §2 record signature: context || record without its last 64 bytes.
    let record = &alice_pi[1..];
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&alice_key).unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(record[record.len() - 64..].try_into().unwrap());
    vk.verify_strict(
        &[&b"pocnet/v1/enc-key\0"[..], &record[..record.len() - 64]].concat(),
        &sig,
    )
    .unwrap();
    // §4 framing, signature and envelope hash, for both suites.
    for name in ["x25519", "xwing"] {
        let env = hex::decode(&stored[&format!("envelope.{name}")]).unwrap();
        assert_eq!(env[0], 1);
        let hlen = u32::from_be_bytes(env[1..5].try_into().unwrap()) as usize;
        let header = &env[5..5 + hlen];
        let slen = u32::from_be_bytes(env[5 + hlen..9 + hlen].try_into().unwrap()) as usize;
        let body = &env[9 + hlen + slen..env.len() - 64];
        assert_eq!(
            &header[18..50],
            &alice_key,
            "sender at header offset 18 (envelope byte 23)"
        );
        let body_len = u64::from_be_bytes(header[hlen - 2 - 2 * 96 - 8..hlen - 2 - 2 * 96].try_into().unwrap());
        assert_eq!(body.len() as u64, body_len + 16, "one chunk: body_len + 16-byte tag");
        let hh = Sha256::digest(header);
        let bh = blake3::hash(body);
        let signed = [&b"pocnet/v1/envelope\0"[..], &hh, bh.as_bytes()].concat();
        let sig = ed25519_dalek::Signature::from_bytes(env[env.len() - 64..].try_into().unwrap());
        vk.verify_strict(&signed, &sig).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&signed)),
            stored[&format!("envelope.{name}.hash")]
        );
    }
}
