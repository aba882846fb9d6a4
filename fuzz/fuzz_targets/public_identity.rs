//! Public identities and identity keys from other parties: `PublicIdentity::from_bytes`
//! (its encryption-key record), then sealing to the decoded identity as a client would;
//! `IdentityKey::from_bytes`, the TLS peer key (`tls::key_from_spki`, `peer_identity`)
//! and `Fingerprint::parse`.
//!
//! Input: one mode byte, then the bytes; mode bit 0 re-signs the record as `me()` so that
//! mutated records get past the signature. Invariants: an accepted identity re-encodes to
//! the same bytes; sealing to it fails cleanly or produces an envelope that verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocnet_crypto::{context, seal, verify, Fingerprint, HeaderFields, IdentityKey, PublicIdentity, Suite};
use pocnet_fuzz::{me, resign_tail, sender, SeededRng, NOW_MS};
use pocnet_wire::tls::{key_from_spki, peer_identity, spki};
use rustls::pki_types::CertificateDer;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };

    if let Some(k) = rest.get(..32) {
        let raw: [u8; 32] = k.try_into().unwrap();
        let key = IdentityKey::from_bytes(&raw);
        let der = spki(&raw);
        assert_eq!(key_from_spki(&der), Some(raw));
        let peer = peer_identity(&[CertificateDer::from(der)]);
        assert_eq!(peer.map(|p| *p.as_bytes()), key.ok().map(|k| *k.as_bytes()));
    }
    if let Some(raw) = key_from_spki(rest) {
        assert_eq!(spki(&raw), rest);
    }
    let _ = peer_identity(&[CertificateDer::from(rest.to_vec())]);
    if let Ok(s) = std::str::from_utf8(rest) {
        if let Ok(f) = Fingerprint::parse(s) {
            assert_eq!(Fingerprint::parse(&f.to_hex()).unwrap(), f);
        }
    }

    let mut bytes = rest.to_vec();
    if mode & 1 != 0 {
        resign_tail(&mut bytes, 1, me(), context::ENC_KEY);
    }
    let Ok(pi) = PublicIdentity::from_bytes(&bytes) else {
        return;
    };
    assert_eq!(pi.to_bytes(), bytes, "public identity not canonical");
    assert_eq!(pi.encryption_record().as_bytes(), &bytes[1..]);
    let (nb, na) = pi.encryption_record().window();
    assert!(nb < na);
    for suite in [Suite::X25519, Suite::XWing] {
        let mut fields = HeaderFields::message(NOW_MS);
        fields.suite = suite;
        let mut rng = SeededRng::new("public_identity seal");
        if let Ok(sealed) = seal(&mut rng, sender(), std::slice::from_ref(&pi), &fields, b"hello") {
            let (h, hash) = verify(&sealed.bytes).expect("own envelope verifies");
            assert_eq!(hash, sealed.envelope_hash);
            assert_eq!(&h.recipients[0].key, pi.key().as_bytes());
        }
    }
});
