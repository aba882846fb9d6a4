//! Envelope claims, each attacked: confidentiality to the listed recipients only,
//! integrity of every byte, sender authentication, binding of stanzas to recipients,
//! and STREAM ordering.

mod common;

use common::*;
use pocnet_crypto::envelope::{self, HeaderFields, Suite};
use pocnet_crypto::stream::CHUNK_SIZE;
use pocnet_crypto::{open, open_stream, seal, seal_stream, trim_for_recipient, EncryptionKeyRecord, Error, Identity};
use proptest::prelude::*;

fn fields(suite: Suite) -> HeaderFields {
    HeaderFields {
        suite,
        ..HeaderFields::message(NOW * 1000)
    }
}

fn roundtrip(n: usize, suite: Suite) {
    let sender = identity("sender");
    let (ids, pubs) = identities(&format!("rcpt-{n}"), n);
    let outsider = identity("outsider");
    let body = b"Airport ATC systems degraded; requesting contact.";
    let sealed = seal(&mut SeededRng::new("seal"), &sender, &pubs, &fields(suite), body).unwrap();
    for id in &ids {
        let opened = open(id, &sealed.bytes, sender.public_key()).unwrap();
        assert_eq!(opened.plaintext, body);
        assert_eq!(opened.header.message_id, sealed.message_id);
        assert_eq!(opened.envelope_hash, sealed.envelope_hash);
        assert_eq!(opened.header.recipients.len(), n);
        // The relay's per-recipient copy opens too and carries one stanza only.
        let trimmed = trim_for_recipient(&sealed.bytes, id.public_key().as_bytes()).unwrap();
        assert!(n == 1 || trimmed.len() < sealed.bytes.len());
        assert_eq!(open(id, &trimmed, sender.public_key()).unwrap().plaintext, body);
    }
    assert!(matches!(
        open(&outsider, &sealed.bytes, sender.public_key()),
        Err(Error::NotARecipient)
    ));
    // From PARALLEL_SEAL_MIN recipients the KEMs run on several threads, each with its own
    // generator: no two stanzas may share randomness (an ephemeral key reused across
    // threads would show as equal stanza prefixes).
    let header = open(&ids[0], &sealed.bytes, sender.public_key()).unwrap().header;
    let distinct: std::collections::HashSet<_> = header.recipients.iter().map(|r| r.stanza_hash).collect();
    assert_eq!(distinct.len(), n);
    let enc_len = match suite {
        Suite::X25519 => 32,
        Suite::XWing => 1120,
    };
    let prefixes: std::collections::HashSet<Vec<u8>> = ids
        .iter()
        .map(|id| {
            let t = trim_for_recipient(&sealed.bytes, id.public_key().as_bytes()).unwrap();
            let hl = u32::from_be_bytes(t[1..5].try_into().unwrap()) as usize;
            let st = 5 + hl + 4 + 2 + 2; // block length, count, index
            t[st..st + enc_len].to_vec()
        })
        .collect();
    assert_eq!(prefixes.len(), n, "every recipient's KEM used fresh randomness");
}

#[test]
fn every_recipient_opens_and_outsiders_cannot_1_2_50() {
    for n in [1, 2, 17, 50] {
        roundtrip(n, Suite::XWing);
        roundtrip(n, Suite::X25519);
    }
}

#[test]
fn trimmed_copy_for_one_recipient_does_not_open_for_another() {
    let sender = identity("sender");
    let (ids, pubs) = identities("trim", 2);
    let sealed = seal(&mut os(), &sender, &pubs, &fields(Suite::XWing), b"x").unwrap();
    let for_a = trim_for_recipient(&sealed.bytes, ids[0].public_key().as_bytes()).unwrap();
    assert!(matches!(
        open(&ids[1], &for_a, sender.public_key()),
        Err(Error::StanzaMissing)
    ));
}

#[test]
fn relay_verify_refuses_a_block_missing_a_listed_recipients_stanza_or_with_a_swapped_one() {
    let sender = identity("sender");
    let (ids, pubs) = identities("complete", 3);
    let sealed = seal(&mut os(), &sender, &pubs, &fields(Suite::X25519), b"x").unwrap();
    pocnet_crypto::verify_from(&sealed.bytes, sender.public_key()).unwrap();
    // A trimmed copy (one stanza of three) is what a recipient gets, never what a relay accepts:
    // the other two recipients could never open it.
    let one = trim_for_recipient(&sealed.bytes, ids[1].public_key().as_bytes()).unwrap();
    assert!(matches!(
        pocnet_crypto::verify_from(&one, sender.public_key()),
        Err(Error::StanzaMissing)
    ));
    // A full block whose stanza 0 carries another recipient's bytes: the signed hash differs.
    let other = seal(&mut os(), &sender, &pubs, &fields(Suite::X25519), b"x").unwrap();
    let split = |b: &[u8]| {
        let hl = u32::from_be_bytes(b[1..5].try_into().unwrap()) as usize;
        let at = 5 + hl;
        let sl = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        (at + 4, sl)
    };
    let (at, sl) = split(&sealed.bytes);
    let (oat, _) = split(&other.bytes);
    let mut swapped = sealed.bytes.clone();
    // block = u16 count || (u16 index || stanza)*: replace stanza 0's bytes.
    let stanza_len = Suite::X25519.stanza_len();
    swapped[at + 4..at + 4 + stanza_len].copy_from_slice(&other.bytes[oat + 4..oat + 4 + stanza_len]);
    assert_eq!(sl, 2 + 3 * (2 + stanza_len));
    assert!(matches!(
        pocnet_crypto::verify_from(&swapped, sender.public_key()),
        Err(Error::StanzaMismatch)
    ));
}

fn os() -> impl pocnet_crypto::rand_core::CryptoRng {
    pocnet_crypto::os_rng()
}

#[test]
fn wrong_sender_key_is_rejected() {
    let sender = identity("sender");
    let other = identity("other");
    let (ids, pubs) = identities("ws", 1);
    let sealed = seal(&mut os(), &sender, &pubs, &fields(Suite::XWing), b"hello").unwrap();
    assert!(matches!(
        open(&ids[0], &sealed.bytes, other.public_key()),
        Err(Error::BadSignature(_))
    ));
}

/// Byte offsets inside an envelope, computed from the documented layout.
struct Layout {
    header_start: usize,
    header_len: usize,
    stanzas_start: usize,
}

fn layout(env: &[u8]) -> Layout {
    let header_len = u32::from_be_bytes(env[1..5].try_into().unwrap()) as usize;
    Layout {
        header_start: 5,
        header_len,
        stanzas_start: 5 + header_len + 4,
    }
}

#[test]
fn swapped_stanzas_are_detected() {
    let sender = identity("sender");
    let (ids, pubs) = identities("swap", 2);
    let suite = Suite::X25519;
    let sealed = seal(&mut os(), &sender, &pubs, &fields(suite), b"hello").unwrap();
    let l = layout(&sealed.bytes);
    let s = suite.stanza_len();
    let first = l.stanzas_start + 2 + 2; // after count and first index
    let second = first + s + 2;
    let mut env = sealed.bytes.clone();
    let a = env[first..first + s].to_vec();
    let b = env[second..second + s].to_vec();
    env[first..first + s].copy_from_slice(&b);
    env[second..second + s].copy_from_slice(&a);
    for id in &ids {
        assert!(matches!(
            open(id, &env, sender.public_key()),
            Err(Error::StanzaMismatch)
        ));
    }
}

#[test]
fn swapped_recipient_entries_in_header_break_the_signature() {
    let sender = identity("sender");
    let (ids, pubs) = identities("swaph", 2);
    let sealed = seal(&mut os(), &sender, &pubs, &fields(Suite::X25519), b"hello").unwrap();
    let l = layout(&sealed.bytes);
    let entries = l.header_start + l.header_len - 2 * 96;
    let mut env = sealed.bytes.clone();
    let (a, b) = (
        env[entries..entries + 96].to_vec(),
        env[entries + 96..entries + 192].to_vec(),
    );
    env[entries..entries + 96].copy_from_slice(&b);
    env[entries + 96..entries + 192].copy_from_slice(&a);
    assert!(matches!(
        open(&ids[0], &env, sender.public_key()),
        Err(Error::BadSignature(_))
    ));
}

#[test]
fn envelope_resigned_by_another_identity_is_rejected() {
    // Mallory takes Alice's envelope, puts her own key in the sender field and signs it.
    let alice = identity("alice");
    let mallory = identity("mallory");
    let (ids, pubs) = identities("resign", 1);
    let sealed = seal(&mut os(), &alice, &pubs, &fields(Suite::XWing), b"orders").unwrap();
    let l = layout(&sealed.bytes);
    let mut env = sealed.bytes.clone();
    let sender_at = l.header_start + 1 + 1 + 16;
    env[sender_at..sender_at + 32].copy_from_slice(mallory.public_key().as_bytes());
    let header = &env[l.header_start..l.header_start + l.header_len];
    let body_start =
        l.stanzas_start + u32::from_be_bytes(env[l.stanzas_start - 4..l.stanzas_start].try_into().unwrap()) as usize;
    let body = &env[body_start..env.len() - 64];
    use sha2::{Digest, Sha256};
    let (hh, bh) = (Sha256::digest(header), blake3::hash(body));
    // Mallory's signature over the altered header (the context prefix is added by `sign`).
    let sig = mallory.sign(
        pocnet_crypto::context::ENVELOPE,
        &[hh.as_slice(), bh.as_bytes().as_slice()].concat(),
    );
    let n = env.len();
    env[n - 64..].copy_from_slice(&sig);
    // The recipient expecting Alice refuses it ...
    assert!(matches!(
        open(&ids[0], &env, alice.public_key()),
        Err(Error::BadSignature(_))
    ));
    // ... and even a recipient who takes it as Mallory's cannot open Alice's content:
    // the stanza is bound to the original sender.
    assert!(matches!(
        open(&ids[0], &env, mallory.public_key()),
        Err(Error::UnwrapFailed)
    ));
}

fn three_chunk_envelope() -> (Identity, Identity, Vec<u8>, Vec<u8>) {
    let sender = identity("sender");
    let rcpt = identity("stream-rcpt");
    let body: Vec<u8> = (0..(2 * CHUNK_SIZE + 1000)).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    seal_stream(
        &mut os(),
        &sender,
        &[rcpt.public()],
        &fields(Suite::X25519),
        body.len() as u64,
        &mut body.as_slice(),
        &mut out,
    )
    .unwrap();
    (sender, rcpt, body, out)
}

#[test]
fn stream_round_trip_writes_the_body() {
    let (sender, rcpt, body, env) = three_chunk_envelope();
    let mut out = Vec::new();
    open_stream(&rcpt, &mut env.as_slice(), sender.public_key(), &mut out).unwrap();
    assert_eq!(out, body);
    assert_eq!(open(&rcpt, &env, sender.public_key()).unwrap().plaintext, body);
}

#[test]
fn reordered_stream_chunks_are_rejected() {
    let (sender, rcpt, _, env) = three_chunk_envelope();
    let c = CHUNK_SIZE + 16;
    let body_start = env.len() - 64 - (2 * c + 1000 + 16);
    let mut bad = env.clone();
    let (a, b) = (
        env[body_start..body_start + c].to_vec(),
        env[body_start + c..body_start + 2 * c].to_vec(),
    );
    bad[body_start..body_start + c].copy_from_slice(&b);
    bad[body_start + c..body_start + 2 * c].copy_from_slice(&a);
    let mut out = Vec::new();
    assert!(matches!(
        open_stream(&rcpt, &mut bad.as_slice(), sender.public_key(), &mut out),
        Err(Error::ChunkCorrupted(0))
    ));
    assert!(matches!(
        open(&rcpt, &bad, sender.public_key()),
        Err(Error::BadSignature(_))
    ));
}

#[test]
fn truncated_streams_are_rejected() {
    let (sender, rcpt, _, env) = three_chunk_envelope();
    let c = CHUNK_SIZE + 16;
    // Cut after the second chunk: the last chunk and signature are missing.
    let cut = env.len() - 64 - (1000 + 16);
    let mut out = Vec::new();
    let r = open_stream(&rcpt, &mut &env[..cut], sender.public_key(), &mut out);
    assert!(matches!(r, Err(Error::Truncated(_))), "{r:?}");
    // Drop the final chunk but keep the signature: the reader asks for a full-sized last chunk.
    let mut dropped = env[..cut].to_vec();
    dropped.extend_from_slice(&env[env.len() - 64..]);
    assert!(open_stream(&rcpt, &mut dropped.as_slice(), sender.public_key(), &mut Vec::new()).is_err());
    // Appending a byte is refused too.
    let mut longer = env.clone();
    longer.push(0);
    assert!(matches!(
        open_stream(&rcpt, &mut longer.as_slice(), sender.public_key(), &mut Vec::new()),
        Err(Error::TrailingBytes(..))
    ));
    let _ = c;
}

#[test]
fn chunk_from_another_envelope_is_rejected() {
    let (sender, rcpt, body, env1) = three_chunk_envelope();
    let mut env2 = Vec::new();
    seal_stream(
        &mut os(),
        &sender,
        &[rcpt.public()],
        &fields(Suite::X25519),
        body.len() as u64,
        &mut body.as_slice(),
        &mut env2,
    )
    .unwrap();
    let c = CHUNK_SIZE + 16;
    let body_start = env1.len() - 64 - (2 * c + 1000 + 16);
    let mut spliced = env1.clone();
    spliced[body_start + c..body_start + 2 * c].copy_from_slice(&env2[body_start + c..body_start + 2 * c]);
    let r = open_stream(&rcpt, &mut spliced.as_slice(), sender.public_key(), &mut Vec::new());
    assert!(matches!(r, Err(Error::ChunkCorrupted(1))), "{r:?}");
}

#[test]
fn all_zero_x25519_output_is_refused_at_seal() {
    // A recipient record (validly signed) whose X25519 key is the identity point: the
    // DH output would be all zeros. HPKE must refuse it.
    let victim = identity("victim");
    let sender = identity("sender");
    let xwing = victim.public().encryption_record().as_bytes()[1 + 32 + 4 + 8 + 8 + 32..][..1216].to_vec();
    let record = EncryptionKeyRecord::issue(&victim, 9, NOW, NOW + YEAR, &[0u8; 32], &xwing).unwrap();
    let bad = pocnet_crypto::PublicIdentity::new(record);
    let r = seal(&mut os(), &sender, &[bad], &fields(Suite::X25519), b"x");
    assert!(matches!(r, Err(Error::BadRecipientKey(_))), "{r:?}");
}

#[test]
fn expired_recipient_key_is_refused_at_seal() {
    let sender = identity("sender");
    let (_, pubs) = identities("exp", 1);
    let late = HeaderFields {
        created_at_ms: (NOW + 2 * YEAR) * 1000,
        ..fields(Suite::XWing)
    };
    assert!(matches!(
        seal(&mut os(), &sender, &pubs, &late, b"x"),
        Err(Error::KeyNotValid { .. })
    ));
}

#[test]
fn rotation_keeps_old_messages_openable_until_pruned() {
    let sender = identity("sender");
    let mut rcpt = identity("rotating");
    let old_pub = rcpt.public();
    let sealed = seal(
        &mut os(),
        &sender,
        std::slice::from_ref(&old_pub),
        &fields(Suite::XWing),
        b"before rotation",
    )
    .unwrap();
    rcpt.rotate_encryption_key(&mut os(), NOW + 100, YEAR).unwrap();
    assert_ne!(
        rcpt.public().encryption_record().hash(),
        old_pub.encryption_record().hash()
    );
    assert_eq!(
        rcpt.public().fingerprint(),
        old_pub.fingerprint(),
        "fingerprint is stable across rotation"
    );
    assert_eq!(
        open(&rcpt, &sealed.bytes, sender.public_key()).unwrap().plaintext,
        b"before rotation"
    );
    assert_eq!(rcpt.prune(NOW + 2 * YEAR, 0), 1);
    assert!(matches!(
        open(&rcpt, &sealed.bytes, sender.public_key()),
        Err(Error::UnknownEncryptionKey(_))
    ));
}

#[test]
fn duplicate_recipients_are_refused() {
    let sender = identity("sender");
    let (_, pubs) = identities("dup", 1);
    let twice = vec![pubs[0].clone(), pubs[0].clone()];
    assert!(matches!(
        seal(&mut os(), &sender, &twice, &fields(Suite::X25519), b"x"),
        Err(Error::NonCanonical(_))
    ));
}

#[test]
fn header_parse_rejects_unknown_version_suite_and_trailing_bytes() {
    let sender = identity("sender");
    let (_, pubs) = identities("hdr", 1);
    let sealed = seal(&mut os(), &sender, &pubs, &fields(Suite::X25519), b"x").unwrap();
    let l = layout(&sealed.bytes);
    let header = sealed.bytes[l.header_start..l.header_start + l.header_len].to_vec();
    envelope::Header::parse(&header).unwrap();
    let mut v = header.clone();
    v[0] = 2;
    assert!(matches!(
        envelope::Header::parse(&v),
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
    let mut s = header.clone();
    s[1] = 9;
    assert!(matches!(envelope::Header::parse(&s), Err(Error::UnknownSuite(9))));
    let mut t = header.clone();
    t.push(0);
    assert!(matches!(envelope::Header::parse(&t), Err(Error::TrailingBytes(..))));
    let mut f = header;
    f[1 + 1 + 16 + 32 + 8 + 2] = 0x80; // reserved flag bit
    assert!(matches!(envelope::Header::parse(&f), Err(Error::NonCanonical(_))));
}

#[test]
fn header_fields_survive_and_are_signed() {
    let sender = identity("sender");
    let (ids, pubs) = identities("fields", 1);
    let f = HeaderFields {
        tlp: pocnet_crypto::Tlp::Red,
        exercise: true,
        incident_id: Some("INC-2026-0042".into()),
        log_head: Some([7; 32]),
        content_type: pocnet_crypto::ContentType::Alert,
        ..fields(Suite::XWing)
    };
    let sealed = seal(&mut os(), &sender, &pubs, &f, b"x").unwrap();
    let h = open(&ids[0], &sealed.bytes, sender.public_key()).unwrap().header;
    assert_eq!(h.tlp, pocnet_crypto::Tlp::Red);
    assert!(h.exercise);
    assert_eq!(h.incident_id.as_deref(), Some("INC-2026-0042"));
    assert_eq!(h.log_head, Some([7; 32]));
    assert_eq!(h.content_type, pocnet_crypto::ContentType::Alert);
    // Turning the exercise flag off (to pass a drill off as real) breaks the signature.
    let mut env = sealed.bytes.clone();
    env[5 + 1 + 1 + 16 + 32 + 8 + 2] ^= 1;
    assert!(matches!(
        open(&ids[0], &env, sender.public_key()),
        Err(Error::BadSignature(_))
    ));
}

#[test]
fn every_single_byte_flip_fails_cleanly_x25519() {
    // Exhaustive over positions for a small envelope: each flip gives a typed error.
    let sender = identity("sender");
    let (ids, pubs) = identities("flip", 2);
    let sealed = seal(&mut os(), &sender, &pubs, &fields(Suite::X25519), b"short body").unwrap();
    for pos in 0..sealed.bytes.len() {
        let mut env = sealed.bytes.clone();
        env[pos] ^= 0x01;
        let r = open(&ids[0], &env, sender.public_key());
        // A flip in the other recipient's stanza is invisible to this reader by design
        // (stanzas are unsigned); it is caught by that recipient's stanza hash.
        if let Ok(o) = r {
            let l = layout(&sealed.bytes);
            let other_stanza = l.stanzas_start + 2 + (2 + Suite::X25519.stanza_len());
            assert!(
                pos >= other_stanza && pos < other_stanza + 2 + Suite::X25519.stanza_len(),
                "flip at {pos} went unnoticed"
            );
            assert_eq!(o.plaintext, b"short body");
            assert!(open(&ids[1], &env, sender.public_key()).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_byte_flip_fails_with_typed_error_xwing(pos in 0usize..4096, bit in 0u8..8) {
        thread_local! {
            static FIXTURE: (Identity, Identity, Vec<u8>) = {
                let sender = identity("sender");
                let rcpt = identity("flip-xw");
                let sealed = seal(&mut SeededRng::new("fx"), &sender, &[rcpt.public()], &fields(Suite::XWing), b"flip me").unwrap();
                (sender, rcpt, sealed.bytes)
            };
        }
        FIXTURE.with(|(sender, rcpt, env)| {
            let pos = pos % env.len();
            let mut bad = env.clone();
            bad[pos] ^= 1 << bit;
            prop_assert!(open(rcpt, &bad, sender.public_key()).is_err());
            Ok(())
        })?;
    }

    /// Parsing arbitrary bytes never panics (a proptest stand-in for a fuzz target).
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let me = identity("parser");
        let _ = pocnet_crypto::verify(&data);
        let _ = trim_for_recipient(&data, me.public_key().as_bytes());
        let _ = open(&me, &data, me.public_key());
        let _ = open_stream(&me, &mut data.as_slice(), me.public_key(), &mut Vec::new());
        let _ = envelope::Header::parse(&data);
        let _ = pocnet_crypto::PublicIdentity::from_bytes(&data);
        let _ = pocnet_crypto::Receipt::verify(&data, me.public_key());
        let _ = pocnet_crypto::keyfile::open_secret(&data, b"pw");
    }

    /// Mutating a valid envelope's framing (lengths, counts) never panics either.
    #[test]
    fn mutated_envelopes_never_panic(edits in proptest::collection::vec((0usize..2000, any::<u8>()), 1..6), cut in 0usize..2000) {
        thread_local! {
            static ENV: (Identity, Identity, Vec<u8>) = {
                let sender = identity("sender");
                let rcpt = identity("mut");
                let sealed = seal(&mut SeededRng::new("m"), &sender, &[rcpt.public()], &fields(Suite::X25519), b"m").unwrap();
                (sender, rcpt, sealed.bytes)
            };
        }
        ENV.with(|(sender, rcpt, env)| {
            let mut bad = env.clone();
            for (p, v) in &edits { let n = bad.len(); bad[p % n] = *v; }
            bad.truncate(bad.len() - cut % bad.len());
            let _ = pocnet_crypto::verify(&bad);
            let _ = open(rcpt, &bad, sender.public_key());
            let _ = open_stream(rcpt, &mut bad.as_slice(), sender.public_key(), &mut Vec::new());
            let _ = trim_for_recipient(&bad, rcpt.public_key().as_bytes());
        });
    }
}

#[test]
fn large_streams_round_trip_and_detect_tampering() {
    // 40 chunks, streamed in and out.
    let sender = identity("sender");
    let rcpt = identity("big");
    let body: Vec<u8> = (0..40 * CHUNK_SIZE - 7).map(|i| (i % 253) as u8).collect();
    let mut env = Vec::new();
    let info = seal_stream(
        &mut os(),
        &sender,
        &[rcpt.public()],
        &fields(Suite::XWing),
        body.len() as u64,
        &mut body.as_slice(),
        &mut env,
    )
    .unwrap();
    let mut out = Vec::new();
    let opened = open_stream(&rcpt, &mut env.as_slice(), sender.public_key(), &mut out).unwrap();
    assert_eq!(out, body);
    assert_eq!(opened.envelope_hash, info.envelope_hash);
    // The in-memory path hashes inline and must agree byte for byte.
    assert_eq!(
        open(&rcpt, &env, sender.public_key()).unwrap().envelope_hash,
        info.envelope_hash
    );
    let mut bad = env.clone();
    let mid = env.len() / 2;
    bad[mid] ^= 1;
    assert!(matches!(
        open_stream(&rcpt, &mut bad.as_slice(), sender.public_key(), &mut Vec::new()),
        Err(Error::ChunkCorrupted(_))
    ));
    let mut badsig = env.clone();
    let n = badsig.len();
    badsig[n - 1] ^= 1;
    assert!(matches!(
        open_stream(&rcpt, &mut badsig.as_slice(), sender.public_key(), &mut Vec::new()),
        Err(Error::BadSignature(_))
    ));
}

#[test]
fn malleated_and_small_order_signatures_are_rejected_by_verify_strict() {
    let sender = identity("sender");
    let (ids, pubs) = identities("strict", 1);
    let sealed = seal(&mut os(), &sender, &pubs, &fields(Suite::X25519), b"x").unwrap();
    let n = sealed.bytes.len();
    // S + L: the same signature in a non-canonical encoding.
    let mut malleated = sealed.bytes.clone();
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = malleated[n - 32 + i] as u16 + L[i] as u16 + carry;
        malleated[n - 32 + i] = v as u8;
        carry = v >> 8;
    }
    assert!(matches!(
        open(&ids[0], &malleated, sender.public_key()),
        Err(Error::BadSignature(_))
    ));
    // R replaced by the identity point (small order).
    let mut small_r = sealed.bytes.clone();
    small_r[n - 64..n - 32].copy_from_slice(&{
        let mut p = [0u8; 32];
        p[0] = 1;
        p
    });
    assert!(matches!(
        open(&ids[0], &small_r, sender.public_key()),
        Err(Error::BadSignature(_))
    ));
    // The same attack on a receipt.
    let r = pocnet_crypto::Receipt::sign(
        &ids[0],
        pocnet_crypto::ReceiptKind::Read,
        [1; 16],
        [2; 32],
        sender.public_key(),
        3,
    );
    let mut rb = r.as_bytes().to_vec();
    let m = rb.len();
    rb[m - 64..m - 32].copy_from_slice(&small_r[n - 64..n - 32]);
    assert!(pocnet_crypto::Receipt::verify(&rb, ids[0].public_key()).is_err());
}

#[test]
fn header_parse_enforces_every_stated_limit() {
    let sender = identity("sender");
    let (_, pubs) = identities("limits", 2);
    let f = HeaderFields {
        incident_id: Some("INC-1".into()),
        ..fields(Suite::X25519)
    };
    let sealed = seal(&mut os(), &sender, &pubs, &f, b"x").unwrap();
    let l = layout(&sealed.bytes);
    let header = sealed.bytes[l.header_start..l.header_start + l.header_len].to_vec();
    envelope::Header::parse(&header).unwrap();
    // Offsets from PROTOCOL.md §4.1.
    let (ct, tlp, inc_len) = (58, 59, 61);
    let after_inc = inc_len + 1 + 5;
    let body_len = after_inc + 32;
    let count = body_len + 8;
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut h = header.clone();
        f(&mut h);
        envelope::Header::parse(&h)
    };
    assert!(
        matches!(mutate(&|h| h[ct] = 0), Err(Error::NonCanonical(_))),
        "content type 0"
    );
    assert!(
        matches!(mutate(&|h| h[ct] = 9), Err(Error::NonCanonical(_))),
        "content type 9"
    );
    assert!(matches!(mutate(&|h| h[tlp] = 6), Err(Error::NonCanonical(_))), "TLP 6");
    assert!(
        matches!(mutate(&|h| h[inc_len + 1] = b' '), Err(Error::NonCanonical(_))),
        "space in incident id"
    );
    assert!(
        matches!(mutate(&|h| h[inc_len + 1] = 0x80), Err(Error::NonCanonical(_))),
        "non-ASCII incident id"
    );
    assert!(
        matches!(
            mutate(&|h| {
                h[inc_len] = 65;
                h.splice(inc_len + 1..inc_len + 1, vec![b'A'; 60]);
            }),
            Err(Error::TooLarge { .. })
        ),
        "incident id over 64"
    );
    assert!(
        matches!(
            mutate(&|h| h[body_len..body_len + 8].copy_from_slice(&((1u64 << 40) + 1).to_be_bytes())),
            Err(Error::TooLarge { .. })
        ),
        "body over 2^40"
    );
    assert!(
        matches!(
            mutate(&|h| {
                h[count..count + 2].copy_from_slice(&0u16.to_be_bytes());
                h.truncate(count + 2);
            }),
            Err(Error::TooLarge { .. })
        ),
        "no recipients"
    );
    assert!(
        matches!(
            mutate(&|h| h[count..count + 2].copy_from_slice(&1025u16.to_be_bytes())),
            Err(Error::TooLarge { .. })
        ),
        "over 1024 recipients"
    );
    assert!(
        matches!(
            mutate(&|h| {
                let first = h[count + 2..count + 34].to_vec();
                h[count + 98..count + 130].copy_from_slice(&first);
            }),
            Err(Error::NonCanonical(_))
        ),
        "duplicate recipient"
    );
    assert!(
        matches!(
            mutate(&|h| {
                h.pop();
            }),
            Err(Error::Truncated(_))
        ),
        "truncated"
    );
}

#[test]
fn stanza_blocks_must_be_canonical() {
    let sender = identity("sender");
    let (ids, pubs) = identities("stanzas", 2);
    let sealed = seal(&mut os(), &sender, &pubs, &fields(Suite::X25519), b"x").unwrap();
    let l = layout(&sealed.bytes);
    let s = Suite::X25519.stanza_len();
    // Count 0, and indices out of order (1 then 0): refused even though the signature holds.
    let mut zero = sealed.bytes.clone();
    zero[l.stanzas_start..l.stanzas_start + 2].copy_from_slice(&0u16.to_be_bytes());
    assert!(matches!(
        open(&ids[0], &zero, sender.public_key()),
        Err(Error::NonCanonical(_))
    ));
    let mut order = sealed.bytes.clone();
    let (a, b) = (l.stanzas_start + 2, l.stanzas_start + 2 + 2 + s);
    order[a..a + 2].copy_from_slice(&1u16.to_be_bytes());
    order[b..b + 2].copy_from_slice(&0u16.to_be_bytes());
    assert!(matches!(
        open(&ids[0], &order, sender.public_key()),
        Err(Error::NonCanonical(_))
    ));
    // A header length over the limit is refused before anything is read.
    let mut long = sealed.bytes.clone();
    long[1..5].copy_from_slice(&(envelope::MAX_HEADER_LEN as u32 + 1).to_be_bytes());
    assert!(matches!(
        open(&ids[0], &long, sender.public_key()),
        Err(Error::TooLarge { .. })
    ));
}
