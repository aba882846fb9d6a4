//! Known-answer vectors pinning the v1 formats. Keys and randomness come from a fixed
//! RNG, so the bytes are reproducible. A format change makes this test fail; update
//! the file deliberately with
//! `POCNET_UPDATE_VECTORS=1 cargo test -p pocnet-crypto --test vectors formats_match` (then run
//! the whole file again: the other tests read the file while it is rewritten)
//! and say so in PROTOCOL.md.
//!
//! Three kinds of test:
//! - `formats_match_known_answer_vectors`: this crate (and the `hpke` crate it uses)
//!   still produces every stored value;
//! - `stored_envelopes_still_open`, `stored_key_file_opens`, `xwing_decapsulation_vector`:
//!   the stored bytes are still accepted;
//! - `documented_formulas_reproduce_the_vectors`: a second implementation's view — every
//!   stored value is recomputed from PROTOCOL.md's formulas with plain primitives
//!   (SHA-2, a hand-written Keccak for SHA-3/SHAKE, BLAKE3, HKDF, X25519, Ed25519,
//!   ChaCha20-Poly1305, Argon2id), never through `pocnet_crypto` or `hpke`. ML-KEM-768
//!   key generation and encryption are the only steps taken as given (their outputs are
//!   checked through the hashes X-Wing feeds them to).

mod common;

use std::collections::BTreeMap;

use common::*;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Deserializable, Kem, Serializable};
use pocnet_crypto::envelope::{HeaderFields, Suite};
use pocnet_crypto::rand_core::Rng;
use pocnet_crypto::{open, safety_number, seal, Identity, KdfParams, Receipt, ReceiptKind, Tlp};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/v1.txt");

/// The plaintext of both envelope vectors (26 ASCII bytes).
const PLAINTEXT: &[u8] = b"pocnet known-answer vector";
/// The key-file vector's passphrase: UTF-8, with one non-ASCII character, no newline.
const KEYFILE_PASSPHRASE: &str = "pocnet vector passphrase \u{e9}t\u{e9}";
/// The cheapest Argon2id parameters a reader accepts (PROTOCOL.md §6).
const KEYFILE_PARAMS: KdfParams = KdfParams {
    m_cost_kib: 8192,
    t_cost: 1,
    p_cost: 1,
};

fn draw<const N: usize>(rng: &mut SeededRng) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

/// The three 32-byte seeds `Identity::generate` draws, in order: Ed25519, X25519, X-Wing.
fn identity_seeds(label: &str) -> [[u8; 32]; 3] {
    let mut r = SeededRng::new(label);
    [draw(&mut r), draw(&mut r), draw(&mut r)]
}

fn envelope_parts(env: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let hlen = u32::from_be_bytes(env[1..5].try_into().unwrap()) as usize;
    let header = &env[5..5 + hlen];
    let slen = u32::from_be_bytes(env[5 + hlen..9 + hlen].try_into().unwrap()) as usize;
    let stanzas = &env[9 + hlen..9 + hlen + slen];
    let body = &env[9 + hlen + slen..env.len() - 64];
    (header, stanzas, body)
}

fn compute() -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    let alice = identity("vector-alice");
    let bob = identity("vector-bob");
    let carol = identity("vector-carol");
    let mut v = BTreeMap::new();
    v.insert("alice.public_identity".into(), hex::encode(alice.public().to_bytes()));
    v.insert("alice.fingerprint".into(), alice.fingerprint().to_hex());
    v.insert("bob.public_identity".into(), hex::encode(bob.public().to_bytes()));
    v.insert("carol.public_identity".into(), hex::encode(carol.public().to_bytes()));
    // Identity inputs: the seeds each identity drew, and the private keys the KEMs derive.
    for (who, id) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        let [ed, x, w] = identity_seeds(&format!("vector-{who}"));
        assert_eq!(*id.signing_seed(), ed);
        v.insert(format!("{who}.ed25519_seed"), hex::encode(ed));
        v.insert(format!("{who}.x25519_seed"), hex::encode(x));
        v.insert(format!("{who}.xwing_seed"), hex::encode(w));
        v.insert(
            format!("{who}.record_hash"),
            hex::encode(id.public().encryption_record().hash()),
        );
    }
    let [_, bob_x, bob_w] = identity_seeds("vector-bob");
    v.insert(
        "bob.x25519_secret_key".into(),
        hex::encode(X25519HkdfSha256::derive_keypair(&bob_x).0.to_bytes()),
    );
    v.insert(
        "bob.xwing_secret_key".into(),
        hex::encode(XWing::derive_keypair(&bob_w).0.to_bytes()),
    );
    v.insert(
        "safety_number.alice_bob".into(),
        safety_number(alice.public_key(), bob.public_key()).digits().to_string(),
    );
    v.insert("plaintext".into(), hex::encode(PLAINTEXT));
    for (name, suite) in [("x25519", Suite::X25519), ("xwing", Suite::XWing)] {
        let label = format!("vector-seal-{name}");
        let fields = HeaderFields {
            suite,
            tlp: Tlp::AmberStrict,
            incident_id: Some("KAT-1".into()),
            ..HeaderFields::message(NOW * 1000)
        };
        let sealed = seal(
            &mut SeededRng::new(&label),
            &alice,
            &[bob.public(), carol.public()],
            &fields,
            PLAINTEXT,
        )
        .unwrap();
        v.insert(format!("envelope.{name}"), hex::encode(&sealed.bytes));
        v.insert(format!("envelope.{name}.hash"), hex::encode(sealed.envelope_hash));

        // Intermediate values. The random inputs are replayed from the same generator in
        // the order `seal` draws them; the rest is read back from the envelope or derived.
        let mut replay = SeededRng::new(&label);
        let message_id: [u8; 16] = draw(&mut replay);
        let content_key: [u8; 32] = draw(&mut replay);
        assert_eq!(message_id, sealed.message_id);
        let (header, stanza_block, body) = envelope_parts(&sealed.bytes);
        let header_hash: [u8; 32] = Sha256::digest(header).into();
        let p = format!("seal.{name}");
        v.insert(format!("{p}.message_id"), hex::encode(message_id));
        v.insert(format!("{p}.content_key"), hex::encode(content_key));
        v.insert(format!("{p}.header"), hex::encode(header));
        v.insert(format!("{p}.header_hash"), hex::encode(header_hash));
        v.insert(format!("{p}.body_hash"), hex::encode(blake3::hash(body).as_bytes()));
        v.insert(
            format!("{p}.payload_key"),
            hex::encode(formula::payload_key(&content_key, &header_hash)),
        );
        v.insert(format!("{p}.chunk0.nonce"), hex::encode(formula::stream_nonce(0, true)));
        let stanza_len = suite.stanza_len();
        let enc_len = stanza_len - 48;
        for (i, (who, rcpt)) in [("bob", &bob), ("carol", &carol)].into_iter().enumerate() {
            let kem_random = match suite {
                Suite::X25519 => draw::<32>(&mut replay).to_vec(),
                Suite::XWing => draw::<64>(&mut replay).to_vec(),
            };
            let off = 2 + i * (2 + stanza_len);
            assert_eq!(&stanza_block[off..off + 2], &(i as u16).to_be_bytes());
            let stanza = &stanza_block[off + 2..off + 2 + stanza_len];
            let (enc, wrapped) = stanza.split_at(enc_len);
            let record_hash = rcpt.public().encryption_record().hash();
            let info = [
                &b"pocnet/v1/stanza\0"[..],
                &message_id,
                alice.public_key().as_bytes(),
                &record_hash,
            ]
            .concat();
            // The KEM shared secret, by decapsulation with the recipient's private key (hpke).
            let [_, xs, ws] = identity_seeds(&format!("vector-{who}"));
            let (kem_ss, kem_id) = match suite {
                Suite::X25519 => {
                    let (sk, _) = X25519HkdfSha256::derive_keypair(&xs);
                    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(enc).unwrap();
                    (X25519HkdfSha256::decap(&sk, None, &enc).unwrap().0.to_vec(), 0x0020)
                }
                Suite::XWing => {
                    let (sk, _) = XWing::derive_keypair(&ws);
                    let enc = <XWing as Kem>::EncappedKey::from_bytes(enc).unwrap();
                    (XWing::decap(&sk, None, &enc).unwrap().0.to_vec(), 0x647a)
                }
            };
            let (key, base_nonce) = formula::hpke_key_schedule(kem_id, &kem_ss, &info);
            let q = format!("stanza.{name}.{i}");
            v.insert(format!("{q}.kem_randomness"), hex::encode(&kem_random));
            v.insert(format!("{q}.info"), hex::encode(&info));
            v.insert(format!("{q}.enc"), hex::encode(enc));
            v.insert(format!("{q}.kem_shared_secret"), hex::encode(&kem_ss));
            v.insert(format!("{q}.hpke_key"), hex::encode(key));
            v.insert(format!("{q}.hpke_base_nonce"), hex::encode(base_nonce));
            v.insert(format!("{q}.wrapped_key"), hex::encode(wrapped));
            v.insert(format!("{q}.stanza_hash"), hex::encode(Sha256::digest(stanza)));
        }
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

    // X-Wing decapsulation: a 32-byte decapsulation key, then one encapsulation to it.
    let mut r = SeededRng::new("vector-xwing-decap");
    let sk_bytes: [u8; 32] = draw(&mut r);
    let sk = <XWing as Kem>::PrivateKey::from_bytes(&sk_bytes).unwrap();
    let pk = XWing::sk_to_pk(&sk);
    let (ss, ct) = XWing::encap_with_rng(&pk, None, &mut r).unwrap();
    let mut replay = SeededRng::new("vector-xwing-decap");
    let _: [u8; 32] = draw(&mut replay);
    let eseed: [u8; 64] = draw(&mut replay);
    v.insert("xwing_decap.secret_key".into(), hex::encode(sk_bytes));
    v.insert("xwing_decap.public_key".into(), hex::encode(pk.to_bytes()));
    v.insert("xwing_decap.encap_randomness".into(), hex::encode(eseed));
    v.insert("xwing_decap.ciphertext".into(), hex::encode(ct.to_bytes()));
    v.insert("xwing_decap.shared_secret".into(), hex::encode(ss.0));

    // Key file: Alice's identity under a fixed passphrase, salt and nonce, cheapest parameters.
    let file = alice
        .to_key_file(
            &mut SeededRng::new("vector-keyfile"),
            KEYFILE_PASSPHRASE.as_bytes(),
            KEYFILE_PARAMS,
        )
        .unwrap();
    let salt: [u8; 16] = file[21..37].try_into().unwrap();
    v.insert("keyfile.passphrase".into(), hex::encode(KEYFILE_PASSPHRASE.as_bytes()));
    v.insert(
        "keyfile.kek".into(),
        hex::encode(formula::argon2id(KEYFILE_PASSPHRASE.as_bytes(), &salt, 8192, 1, 1)),
    );
    v.insert("keyfile.secret".into(), hex::encode(&*alice.to_secret_bytes()));
    v.insert("keyfile.file".into(), hex::encode(&file));
    v
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_string(), v.trim().to_string())))
        .collect()
}

fn stored() -> BTreeMap<String, String> {
    parse(&std::fs::read_to_string(FILE).expect("vector file"))
}

#[test]
fn formats_match_known_answer_vectors() {
    let now = compute();
    if std::env::var_os("POCNET_UPDATE_VECTORS").is_some() {
        let mut out = String::from(
            "# pocnet v1 known-answer vectors (see crypto/tests/vectors.rs and PROTOCOL.md §10)\n\
             # Every value is lowercase hex except safety_number (decimal digits).\n",
        );
        for (k, val) in &now {
            out.push_str(&format!("{k}: {val}\n"));
        }
        std::fs::write(FILE, out).unwrap();
    }
    let stored = stored();
    assert_eq!(stored.keys().collect::<Vec<_>>(), now.keys().collect::<Vec<_>>());
    for (k, val) in &now {
        assert_eq!(&stored[k], val, "vector {k} changed: the wire format moved");
    }
}

#[test]
fn stored_envelopes_still_open() {
    let stored = stored();
    let alice = identity("vector-alice");
    for who in ["bob", "carol"] {
        let me = identity(&format!("vector-{who}"));
        for name in ["x25519", "xwing"] {
            let env = hex::decode(&stored[&format!("envelope.{name}")]).unwrap();
            let opened = open(&me, &env, alice.public_key()).unwrap();
            assert_eq!(opened.plaintext, PLAINTEXT);
            assert_eq!(
                hex::encode(opened.envelope_hash),
                stored[&format!("envelope.{name}.hash")]
            );
            assert_eq!(opened.header.tlp, Tlp::AmberStrict);
        }
    }
}

#[test]
fn stored_key_file_opens() {
    let stored = stored();
    let file = hex::decode(&stored["keyfile.file"]).unwrap();
    let pass = hex::decode(&stored["keyfile.passphrase"]).unwrap();
    assert_eq!(pass, KEYFILE_PASSPHRASE.as_bytes());
    let id = Identity::from_key_file(&file, &pass).unwrap();
    assert_eq!(hex::encode(id.public().to_bytes()), stored["alice.public_identity"]);
    assert_eq!(hex::encode(&*id.to_secret_bytes()), stored["keyfile.secret"]);
    // A trailing newline is part of the passphrase (the client strips it when reading a file).
    let with_newline = [&pass[..], b"\n"].concat();
    assert!(matches!(
        Identity::from_key_file(&file, &with_newline),
        Err(pocnet_crypto::Error::WrongPassphrase)
    ));
}

#[test]
fn xwing_decapsulation_vector() {
    let stored = stored();
    let sk = <XWing as Kem>::PrivateKey::from_bytes(&hex::decode(&stored["xwing_decap.secret_key"]).unwrap()).unwrap();
    assert_eq!(
        hex::encode(XWing::sk_to_pk(&sk).to_bytes()),
        stored["xwing_decap.public_key"]
    );
    let ct = <XWing as Kem>::EncappedKey::from_bytes(&hex::decode(&stored["xwing_decap.ciphertext"]).unwrap()).unwrap();
    let ss = XWing::decap(&sk, None, &ct).unwrap();
    assert_eq!(hex::encode(ss.0), stored["xwing_decap.shared_secret"]);
    // And Bob's stanzas in the X-Wing envelope decapsulate to the stored shared secrets.
    let sk = <XWing as Kem>::PrivateKey::from_bytes(&hex::decode(&stored["bob.xwing_secret_key"]).unwrap()).unwrap();
    let ct = <XWing as Kem>::EncappedKey::from_bytes(&hex::decode(&stored["stanza.xwing.0.enc"]).unwrap()).unwrap();
    assert_eq!(
        hex::encode(XWing::decap(&sk, None, &ct).unwrap().0),
        stored["stanza.xwing.0.kem_shared_secret"]
    );
}

/// PROTOCOL.md's formulas, written from the document with plain primitives.
mod formula {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use hkdf::Hkdf;
    use sha2::{Digest, Sha256};

    // ---- Keccak (FIPS 202): SHA3-256, SHA3-512, SHAKE256 ----
    const RC: [u64; 24] = [
        0x0000000000000001,
        0x0000000000008082,
        0x800000000000808A,
        0x8000000080008000,
        0x000000000000808B,
        0x0000000080000001,
        0x8000000080008081,
        0x8000000000008009,
        0x000000000000008A,
        0x0000000000000088,
        0x0000000080008009,
        0x000000008000000A,
        0x000000008000808B,
        0x800000000000008B,
        0x8000000000008089,
        0x8000000000008003,
        0x8000000000008002,
        0x8000000000000080,
        0x000000000000800A,
        0x800000008000000A,
        0x8000000080008081,
        0x8000000000008080,
        0x0000000080000001,
        0x8000000080008008,
    ];
    const ROTC: [u32; 24] = [
        1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44,
    ];
    const PILN: [usize; 24] = [
        10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1,
    ];

    fn keccak_f(st: &mut [u64; 25]) {
        for rc in RC {
            let mut bc = [0u64; 5];
            for i in 0..5 {
                bc[i] = st[i] ^ st[i + 5] ^ st[i + 10] ^ st[i + 15] ^ st[i + 20];
            }
            for i in 0..5 {
                let t = bc[(i + 4) % 5] ^ bc[(i + 1) % 5].rotate_left(1);
                for j in (0..25).step_by(5) {
                    st[j + i] ^= t;
                }
            }
            let mut t = st[1];
            for i in 0..24 {
                let j = PILN[i];
                let tmp = st[j];
                st[j] = t.rotate_left(ROTC[i]);
                t = tmp;
            }
            for j in (0..25).step_by(5) {
                let b: [u64; 5] = st[j..j + 5].try_into().unwrap();
                for i in 0..5 {
                    st[j + i] ^= !b[(i + 1) % 5] & b[(i + 2) % 5];
                }
            }
            st[0] ^= rc;
        }
    }

    fn keccak(rate: usize, ds: u8, input: &[u8], out_len: usize) -> Vec<u8> {
        let mut st = [0u64; 25];
        let mut buf = input.to_vec();
        buf.push(ds);
        while !buf.len().is_multiple_of(rate) {
            buf.push(0);
        }
        *buf.last_mut().unwrap() |= 0x80;
        for block in buf.chunks(rate) {
            for (i, w) in block.chunks(8).enumerate() {
                st[i] ^= u64::from_le_bytes(w.try_into().unwrap());
            }
            keccak_f(&mut st);
        }
        let mut out = Vec::new();
        loop {
            for w in &st[..rate / 8] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            if out.len() >= out_len {
                out.truncate(out_len);
                return out;
            }
            keccak_f(&mut st);
        }
    }
    pub fn sha3_256(x: &[u8]) -> Vec<u8> {
        keccak(136, 0x06, x, 32)
    }
    pub fn sha3_512(x: &[u8]) -> Vec<u8> {
        keccak(72, 0x06, x, 64)
    }
    pub fn shake256(x: &[u8], n: usize) -> Vec<u8> {
        keccak(136, 0x1f, x, n)
    }

    // ---- the deterministic generator (PROTOCOL.md §10) ----
    pub fn generator(label: &str, n: usize) -> Vec<u8> {
        let seed = Sha256::digest(label.as_bytes());
        let mut out = Vec::new();
        let mut counter: u64 = 0;
        while out.len() < n {
            out.extend_from_slice(&Sha256::digest([&seed[..], &counter.to_be_bytes()].concat()));
            counter += 1;
        }
        out.truncate(n);
        out
    }

    // ---- RFC 9180 with HKDF-SHA256 ----
    fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Vec<u8> {
        let ikm = [&b"HPKE-v1"[..], suite_id, label, ikm].concat();
        Hkdf::<Sha256>::extract(Some(salt), &ikm).0.to_vec()
    }
    fn labeled_expand(suite_id: &[u8], prk: &[u8], label: &[u8], info: &[u8], len: u16) -> Vec<u8> {
        let info = [&len.to_be_bytes()[..], b"HPKE-v1", suite_id, label, info].concat();
        let mut out = vec![0u8; len as usize];
        Hkdf::<Sha256>::from_prk(prk).unwrap().expand(&info, &mut out).unwrap();
        out
    }
    const KEM_X25519: &[u8] = b"KEM\x00\x20";

    pub fn x25519(k: &[u8], u: &[u8]) -> [u8; 32] {
        x25519_dalek::x25519(k.try_into().unwrap(), u.try_into().unwrap())
    }
    pub fn x25519_base(k: &[u8]) -> [u8; 32] {
        x25519(k, &x25519_dalek::X25519_BASEPOINT_BYTES)
    }
    /// DHKEM(X25519, HKDF-SHA256) DeriveKeyPair (RFC 9180 §7.1.3): the private key.
    pub fn dhkem_derive_sk(ikm: &[u8]) -> Vec<u8> {
        let prk = labeled_extract(KEM_X25519, b"", b"dkp_prk", ikm);
        labeled_expand(KEM_X25519, &prk, b"sk", b"", 32)
    }
    /// DHKEM(X25519) Encap with the 32 drawn bytes: (enc, shared_secret).
    pub fn dhkem_encap(random: &[u8], pk_r: &[u8]) -> ([u8; 32], Vec<u8>) {
        let sk_e = dhkem_derive_sk(random);
        let enc = x25519_base(&sk_e);
        let dh = x25519(&sk_e, pk_r);
        assert_ne!(dh, [0; 32]);
        let prk = labeled_extract(KEM_X25519, b"", b"eae_prk", &dh);
        (
            enc,
            labeled_expand(KEM_X25519, &prk, b"shared_secret", &[&enc[..], pk_r].concat(), 32),
        )
    }
    /// X-Wing DeriveKeyPair (draft-ietf-hpke-pq-03 §4): the 32-byte decapsulation key.
    pub fn xwing_derive_sk(ikm: &[u8]) -> Vec<u8> {
        let input = [
            ikm,
            b"HPKE-v1",
            b"KEM\x64\x7a",
            &13u16.to_be_bytes(),
            b"DeriveKeyPair",
            &32u16.to_be_bytes(),
        ]
        .concat();
        shake256(&input, 32)
    }
    /// X-Wing key expansion: (ML-KEM-768 d, ML-KEM-768 z, X25519 secret key).
    pub fn xwing_expand(sk: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let e = shake256(sk, 96);
        (e[..32].to_vec(), e[32..64].to_vec(), e[64..].to_vec())
    }
    pub const XWING_LABEL: &[u8] = b"\\.//^\\";
    pub fn xwing_combiner(ss_m: &[u8], ss_x: &[u8], ct_x: &[u8], pk_x: &[u8]) -> Vec<u8> {
        sha3_256(&[ss_m, ss_x, ct_x, pk_x, XWING_LABEL].concat())
    }
    /// ML-KEM-768 encapsulation's shared key from its 32 random bytes m (FIPS 203
    /// Encaps_internal: (K, r) = G(m || H(ek))).
    pub fn mlkem_shared_key(m: &[u8], ek: &[u8]) -> Vec<u8> {
        sha3_512(&[m, &sha3_256(ek)[..]].concat())[..32].to_vec()
    }
    /// X-Wing Encap with the 64 drawn bytes, except the ML-KEM ciphertext:
    /// (ct_X, shared secret).
    pub fn xwing_encap(random: &[u8], pk: &[u8]) -> ([u8; 32], Vec<u8>) {
        let (pk_m, pk_x) = pk.split_at(1184);
        let ss_m = mlkem_shared_key(&random[..32], pk_m);
        let ct_x = x25519_base(&random[32..]);
        let ss_x = x25519(&random[32..], pk_x);
        (ct_x, xwing_combiner(&ss_m, &ss_x, &ct_x, pk_x))
    }
    /// RFC 9180 KeySchedule, base mode, KDF HKDF-SHA256 (1), AEAD ChaCha20-Poly1305 (3).
    pub fn hpke_key_schedule(kem_id: u16, shared_secret: &[u8], info: &[u8]) -> ([u8; 32], [u8; 12]) {
        let suite = [&b"HPKE"[..], &kem_id.to_be_bytes(), &[0, 1], &[0, 3]].concat();
        let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", b"");
        let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
        let ctx = [&[0u8][..], &psk_id_hash, &info_hash].concat();
        let secret = labeled_extract(&suite, shared_secret, b"secret", b"");
        let key = labeled_expand(&suite, &secret, b"key", &ctx, 32);
        let nonce = labeled_expand(&suite, &secret, b"base_nonce", &ctx, 12);
        (key.try_into().unwrap(), nonce.try_into().unwrap())
    }
    pub fn chacha_seal(key: &[u8], nonce: &[u8], aad: &[u8], msg: &[u8]) -> Vec<u8> {
        let aead = chacha20poly1305::ChaCha20Poly1305::new(&<[u8; 32]>::try_from(key).unwrap().into());
        aead.encrypt(&<[u8; 12]>::try_from(nonce).unwrap().into(), Payload { msg, aad })
            .unwrap()
    }

    // ---- §4.3 ----
    pub fn payload_key(content_key: &[u8], header_hash: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(Some(header_hash), content_key)
            .expand(b"pocnet/v1/payload\0", &mut out)
            .unwrap();
        out
    }
    pub fn stream_nonce(i: u64, last: bool) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[3..11].copy_from_slice(&i.to_be_bytes());
        n[11] = last as u8;
        n
    }

    // ---- §6 ----
    pub fn argon2id(pass: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> [u8; 32] {
        use argon2::{Algorithm, Argon2, Params, Version};
        let mut out = [0u8; 32];
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(m, t, p, Some(32)).unwrap(),
        )
        .hash_password_into(pass, salt, &mut out)
        .unwrap();
        out
    }
    pub fn xchacha_open(key: &[u8], nonce: &[u8], aad: &[u8], ct: &[u8]) -> Vec<u8> {
        let aead = chacha20poly1305::XChaCha20Poly1305::new(&<[u8; 32]>::try_from(key).unwrap().into());
        aead.decrypt(&<[u8; 24]>::try_from(nonce).unwrap().into(), Payload { msg: ct, aad })
            .unwrap()
    }
}

/// A second implementation's view: recompute the stored vectors from the formulas in
/// PROTOCOL.md with plain primitives, not this crate's code (nor `hpke`).
#[test]
fn documented_formulas_reproduce_the_vectors() {
    use sha2::{Digest, Sha256, Sha512};
    let stored = stored();
    let h = |k: &str| hex::decode(&stored[k]).unwrap_or_else(|_| panic!("{k} is hex"));
    // Keccak self-check against FIPS 202 answers for the empty string.
    assert_eq!(
        hex::encode(formula::sha3_256(b"")),
        "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
    );
    assert_eq!(
        hex::encode(formula::shake256(b"", 32)),
        "46b9dd2b0ba88d13233b3feb743eeb243fcd52ea62b81b82b50c27646ed5762f"
    );

    // §10 inputs: each identity's seeds are the first 96 bytes of the generator.
    let mut pis = BTreeMap::new();
    for who in ["alice", "bob", "carol"] {
        let g = formula::generator(&format!("vector-{who}"), 96);
        assert_eq!(h(&format!("{who}.ed25519_seed")), &g[..32]);
        assert_eq!(h(&format!("{who}.x25519_seed")), &g[32..64]);
        assert_eq!(h(&format!("{who}.xwing_seed")), &g[64..]);
        let pi = h(&format!("{who}.public_identity"));
        // §2: public identity = 0x01 || record; record = 0x01 || identity key || serial 1 ||
        // not_before = NOW || not_after = NOW + 365 days || X25519 pk || X-Wing pk || signature.
        assert_eq!((pi.len(), pi[0], pi[1]), (1366, 1, 1));
        let sk = ed25519_dalek::SigningKey::from_bytes(&g[..32].try_into().unwrap());
        assert_eq!(&pi[2..34], sk.verifying_key().as_bytes());
        assert_eq!(&pi[34..38], &1u32.to_be_bytes());
        assert_eq!(&pi[38..46], &NOW.to_be_bytes());
        assert_eq!(&pi[46..54], &(NOW + YEAR).to_be_bytes());
        let record = &pi[1..];
        assert_eq!(h(&format!("{who}.record_hash")), Sha256::digest(record).as_slice());
        // X25519 key: RFC 9180 DeriveKeyPair of the seed.
        let x_sk = formula::dhkem_derive_sk(&g[32..64]);
        assert_eq!(&record[53..85], &formula::x25519_base(&x_sk));
        // X-Wing key: the decapsulation key is SHAKE256.LabeledDerive of the seed; its
        // public key is ML-KEM-768 ek (1184) || X25519 pk (32) of the expanded key.
        let w_sk = formula::xwing_derive_sk(&g[64..]);
        let (_d, _z, sk_x) = formula::xwing_expand(&w_sk);
        assert_eq!(&record[85 + 1184..85 + 1216], &formula::x25519_base(&sk_x));
        if who == "bob" {
            // Serialized as RFC 9180 §7.1.2 says: clamped.
            let mut clamped = x_sk.clone();
            clamped[0] &= 248;
            clamped[31] = (clamped[31] & 127) | 64;
            assert_eq!(h("bob.x25519_secret_key"), clamped);
            assert_eq!(h("bob.xwing_secret_key"), w_sk);
        }
        pis.insert(who, pi);
    }
    let alice_pi = &pis["alice"];
    let alice_key: [u8; 32] = alice_pi[2..34].try_into().unwrap();
    let bob_key: [u8; 32] = pis["bob"][2..34].try_into().unwrap();
    // §1 fingerprint.
    let fp = Sha256::digest([&b"pocnet/v1/fingerprint\0"[..], &alice_key].concat());
    assert_eq!(hex::encode(fp), stored["alice.fingerprint"]);
    // §1 safety number: 1 + 5200 SHA-512 invocations per key.
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

    // §4, both suites, step by step.
    let plaintext = h("plaintext");
    assert_eq!(plaintext, b"pocnet known-answer vector");
    for (name, suite_id, kem_id, rand_len, enc_len) in [
        ("x25519", 1u8, 0x0020u16, 32usize, 32usize),
        ("xwing", 2, 0x647a, 64, 1120),
    ] {
        let env = h(&format!("envelope.{name}"));
        let p = format!("seal.{name}");
        // The generator: message id, content key, then each recipient's KEM randomness.
        let g = formula::generator(&format!("vector-seal-{name}"), 16 + 32 + 2 * rand_len);
        assert_eq!(h(&format!("{p}.message_id")), &g[..16]);
        assert_eq!(h(&format!("{p}.content_key")), &g[16..48]);
        // Framing: the signature is the last 64 bytes; the body is what lies between the
        // stanza block and the signature.
        assert_eq!(env[0], 1);
        let hlen = u32::from_be_bytes(env[1..5].try_into().unwrap()) as usize;
        let header = &env[5..5 + hlen];
        assert_eq!(header, h(&format!("{p}.header")));
        let slen = u32::from_be_bytes(env[5 + hlen..9 + hlen].try_into().unwrap()) as usize;
        let block = &env[9 + hlen..9 + hlen + slen];
        let body = &env[9 + hlen + slen..env.len() - 64];
        // §4.1 header fields.
        assert_eq!((header[0], header[1]), (1, suite_id));
        assert_eq!(&header[2..18], &g[..16]);
        assert_eq!(
            &header[18..50],
            &alice_key,
            "sender at header offset 18 (envelope byte 23)"
        );
        assert_eq!(&header[50..58], &(NOW * 1000).to_be_bytes());
        assert_eq!(
            &header[58..62],
            &[1, 4, 0, 5],
            "message, TLP:AMBER+STRICT, no flags, n = 5"
        );
        assert_eq!(&header[62..67], b"KAT-1");
        assert_eq!(&header[67..99], &[0; 32]);
        assert_eq!(&header[99..107], &(plaintext.len() as u64).to_be_bytes());
        assert_eq!(&header[107..109], &2u16.to_be_bytes());
        assert_eq!(hlen, 109 + 2 * 96);
        // §4.2 stanzas: block = u16 count || (u16 index || enc || wrapped key)*.
        assert_eq!(&block[..2], &2u16.to_be_bytes());
        let stanza_len = enc_len + 48;
        assert_eq!(slen, 2 + 2 * (2 + stanza_len));
        for (i, who) in ["bob", "carol"].into_iter().enumerate() {
            let q = format!("stanza.{name}.{i}");
            let random = &g[48 + i * rand_len..48 + (i + 1) * rand_len];
            assert_eq!(h(&format!("{q}.kem_randomness")), random);
            let record = &pis[who][1..];
            let entry = &header[109 + i * 96..109 + (i + 1) * 96];
            assert_eq!(&entry[..32], &record[1..33], "recipient identity key");
            assert_eq!(&entry[32..64], Sha256::digest(record).as_slice(), "record hash");
            let info = [&b"pocnet/v1/stanza\0"[..], &g[..16], &alice_key, &entry[32..64]].concat();
            assert_eq!(h(&format!("{q}.info")), info);
            let (enc, kem_ss) = if suite_id == 1 {
                let (enc, ss) = formula::dhkem_encap(random, &record[53..85]);
                (enc.to_vec(), ss)
            } else {
                let pk = &record[85..85 + 1216];
                let (ct_x, ss) = formula::xwing_encap(random, pk);
                let enc = h(&format!("{q}.enc"));
                // ct = ML-KEM-768 ciphertext (1088) || X25519 ephemeral public key (32).
                assert_eq!(&enc[1088..], &ct_x);
                (enc, ss)
            };
            assert_eq!(h(&format!("{q}.enc")), enc);
            assert_eq!(h(&format!("{q}.kem_shared_secret")), kem_ss);
            let (key, nonce) = formula::hpke_key_schedule(kem_id, &kem_ss, &info);
            assert_eq!(h(&format!("{q}.hpke_key")), key);
            assert_eq!(h(&format!("{q}.hpke_base_nonce")), nonce);
            let wrapped = formula::chacha_seal(&key, &nonce, b"", &g[16..48]);
            assert_eq!(h(&format!("{q}.wrapped_key")), wrapped);
            let off = 2 + i * (2 + stanza_len);
            assert_eq!(&block[off..off + 2], &(i as u16).to_be_bytes());
            let stanza = [&enc[..], &wrapped].concat();
            assert_eq!(&block[off + 2..off + 2 + stanza_len], stanza);
            // H(stanza) covers enc || wrapped key only, not the index.
            assert_eq!(&entry[64..], Sha256::digest(&stanza).as_slice());
            assert_eq!(h(&format!("{q}.stanza_hash")), Sha256::digest(&stanza).as_slice());
        }
        // §4.3 body.
        let hh = Sha256::digest(header);
        assert_eq!(h(&format!("{p}.header_hash")), hh.as_slice());
        let pk = formula::payload_key(&g[16..48], &hh);
        assert_eq!(h(&format!("{p}.payload_key")), pk);
        let nonce = formula::stream_nonce(0, true);
        assert_eq!(h(&format!("{p}.chunk0.nonce")), nonce);
        assert_eq!(hex::encode(nonce), "000000000000000000000001");
        assert_eq!(body, formula::chacha_seal(&pk, &nonce, b"", &plaintext));
        // §4.4 signature and envelope hash.
        let bh = blake3::hash(body);
        assert_eq!(h(&format!("{p}.body_hash")), bh.as_bytes());
        let signed = [&b"pocnet/v1/envelope\0"[..], &hh, bh.as_bytes()].concat();
        let sig = ed25519_dalek::Signature::from_bytes(env[env.len() - 64..].try_into().unwrap());
        vk.verify_strict(&signed, &sig).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&signed)),
            stored[&format!("envelope.{name}.hash")]
        );
    }

    // §5 receipt: fixed fields and the signature.
    let receipt = h("receipt.delivered");
    assert_eq!(receipt.len(), 186);
    assert_eq!(&receipt[..2], &[1, 1]);
    assert_eq!(&receipt[2..18], &[0x11; 16]);
    assert_eq!(&receipt[18..50], &[0x22; 32]);
    assert_eq!(&receipt[50..82], &bob_key);
    assert_eq!(&receipt[82..114], &alice_key);
    assert_eq!(&receipt[114..122], &(NOW * 1000).to_be_bytes());
    ed25519_dalek::VerifyingKey::from_bytes(&bob_key)
        .unwrap()
        .verify_strict(
            &[&b"pocnet/v1/receipt\0"[..], &receipt[..122]].concat(),
            &ed25519_dalek::Signature::from_bytes(receipt[122..].try_into().unwrap()),
        )
        .unwrap();

    // §3.1 X-Wing decapsulation vector: everything but ML-KEM itself, from the formulas.
    let sk = h("xwing_decap.secret_key");
    assert_eq!(sk, formula::generator("vector-xwing-decap", 32));
    let eseed = h("xwing_decap.encap_randomness");
    assert_eq!(eseed, &formula::generator("vector-xwing-decap", 96)[32..]);
    let pk = h("xwing_decap.public_key");
    let ct = h("xwing_decap.ciphertext");
    let (_d, _z, sk_x) = formula::xwing_expand(&sk);
    let pk_x = formula::x25519_base(&sk_x);
    assert_eq!(&pk[1184..], &pk_x);
    let (ct_x, ss) = formula::xwing_encap(&eseed, &pk);
    assert_eq!(&ct[1088..], &ct_x);
    assert_eq!(h("xwing_decap.shared_secret"), ss);
    // Decapsulation's X25519 half agrees with encapsulation's.
    assert_eq!(
        formula::x25519(&sk_x, &ct[1088..]),
        formula::x25519(&eseed[32..], &pk_x)
    );

    // §6 key file.
    let file = h("keyfile.file");
    let pass = h("keyfile.passphrase");
    assert_eq!(
        std::str::from_utf8(&pass).unwrap(),
        "pocnet vector passphrase \u{e9}t\u{e9}"
    );
    assert_eq!(&file[..9], b"pocnetk\x01\x01");
    assert_eq!(
        &file[9..21],
        &[0, 0, 0x20, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        "m = 8192, t = 1, p = 1"
    );
    let g = formula::generator("vector-keyfile", 40);
    let (salt, nonce) = (&file[21..37], &file[37..61]);
    assert_eq!((salt, nonce), (&g[..16], &g[16..]));
    let ct_len = u32::from_be_bytes(file[61..65].try_into().unwrap()) as usize;
    assert_eq!(file.len(), 65 + ct_len + 32);
    let kek = formula::argon2id(&pass, salt, 8192, 1, 1);
    assert_eq!(h("keyfile.kek"), kek);
    let secret = formula::xchacha_open(&kek, nonce, &file[..65], &file[65..65 + ct_len]);
    assert_eq!(h("keyfile.secret"), secret);
    assert_eq!(&file[65 + ct_len..], Sha256::digest(&file[..65 + ct_len]).as_slice());
    // secret = 0x01 || Ed25519 seed || n = 1 || record || X25519 seed || X-Wing seed.
    let ga = formula::generator("vector-alice", 96);
    assert_eq!(
        secret,
        [&[1u8][..], &ga[..32], &[1], &alice_pi[1..], &ga[32..64], &ga[64..]].concat()
    );
}

/// PROTOCOL.md §0.1 as behaviour: what `verify_strict` (through `IdentityKey`) accepts and
/// rejects. If ed25519-dalek changes any of this, §0.1 must change with it.
#[test]
fn signature_rules_of_section_0_1() {
    use pocnet_crypto::context::RECEIPT;
    use pocnet_crypto::IdentityKey;
    let stored = stored();
    let receipt = hex::decode(&stored["receipt.delivered"]).unwrap();
    let bob = IdentityKey::from_bytes(&receipt[50..82].try_into().unwrap()).unwrap();
    let sig: [u8; 64] = receipt[122..].try_into().unwrap();
    bob.verify(RECEIPT, &receipt[..122], &sig, "receipt").unwrap();
    // Rule 1: S + L (same value mod L) is refused.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut s_plus_l = sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = sig[32 + i] as u16 + L[i] as u16 + carry;
        s_plus_l[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    assert!(bob.verify(RECEIPT, &receipt[..122], &s_plus_l, "receipt").is_err());
    // Rules 2/3: small-order points are refused as keys (identity, order 2 and 4 points).
    for small in [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let k: [u8; 32] = hex::decode(small).unwrap().try_into().unwrap();
        assert!(IdentityKey::from_bytes(&k).is_err(), "{small}");
    }
    // Rule 2: y = p + t decodes (y reduced mod p); small order for t = 0, 1, accepted for
    // exactly t in {3, 4, 5, 6, 9, 10, 14, 15, 16, 18}, with either sign bit.
    let mut accepted = Vec::new();
    for t in 0u8..19 {
        for sign in [0u8, 0x80] {
            let mut b = [0xffu8; 32];
            b[0] = 0xed + t;
            b[31] = 0x7f | sign;
            if IdentityKey::from_bytes(&b).is_ok() {
                accepted.push((t, sign));
            }
        }
    }
    let ts: Vec<u8> = accepted.iter().filter(|(_, s)| *s == 0).map(|(t, _)| *t).collect();
    assert_eq!(ts, [3, 4, 5, 6, 9, 10, 14, 15, 16, 18]);
    assert_eq!(accepted.len(), 20);
}

/// The statements of PROTOCOL.md that the formula test above relies on. A change to the
/// document's inputs or constants fails here until the vectors follow.
#[test]
fn protocol_md_states_the_vector_inputs() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md")).unwrap();
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    for s in [
        "`block_i = SHA-256(seed || i)` with `i` a **u64 in big-endian**",
        "label `vector-<name>`; bytes `0..32` Ed25519 seed, `32..64` X25519 seed, `64..96` X-Wing seed",
        "label `vector-seal-x25519` / `vector-seal-xwing`",
        "recipients **bob (index 0) then carol (index 1)**",
        "incident id `KAT-1`",
        "the 26 ASCII bytes `pocnet known-answer vector`",
        "Draws: message id `0..16`, content key `16..48`, bob's KEM randomness, then carol's",
        "label `vector-xwing-decap`; bytes `0..32` are the X-Wing private key",
        "passphrase the UTF-8 string `pocnet vector passphrase été`",
        "Argon2id `m = 8192, t = 1, p = 1`",
        "`vector-keyfile`: salt `0..16`, nonce `16..40`",
        "**5 201 SHA-512 computations per key**",
        "**Suite 1, DHKEM(X25519, HKDF-SHA256)**: **32 bytes**",
        "**Suite 2, X-Wing**: **64 bytes** `eseed`",
        "`eseed[0:32]` is ML-KEM-768's message `m`, `eseed[32:64]` is the X25519 ephemeral secret",
        "SHA3-256(ss_M || ss_X || ct_X || pk_X || XWingLabel)",
        "5c 2e 2f 2f 5e 5c",
        "expanded = SHAKE256(sk_xw, 96 bytes)",
        "KeyGen_internal(d = expanded[0:32], z = expanded[32:64])",
        "**draft-connolly-cfrg-xwing-kem-06**",
        "**`H(stanza)` = SHA-256(enc || wrapped key)**",
        "**the signature is the last 64 bytes of the envelope**",
        "`\"pocnetk\" || 0x01 || 0x01 || u32 m || u32 t || u32 p || salt || nonce || u32 ct_len`",
        "**only the first line, without its `\\n` or `\\r\\n`**",
        "**`S < L`**",
        "**reduced mod p**",
        "**byte-for-byte equal to `R_enc`**",
    ] {
        assert!(flat.contains(s), "PROTOCOL.md no longer says: {s}");
    }
}
