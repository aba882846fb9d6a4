//! Identities, safety numbers, key files and receipts, each attacked.

mod common;

use common::*;
use pocnet_crypto::keyfile::{open_secret, seal_secret};
use pocnet_crypto::{safety_number, Error, Identity, KdfParams, PublicIdentity, Receipt, ReceiptKind};

/// Cheap parameters for tests; the default (64 MiB, t=3) is exercised once below.
const FAST: KdfParams = KdfParams {
    m_cost_kib: 8 * 1024,
    t_cost: 1,
    p_cost: 1,
};

#[test]
fn public_identity_round_trips_and_rejects_tampering() {
    let id = identity("pi");
    let bytes = id.public().to_bytes();
    assert_eq!(bytes.len(), pocnet_crypto::identity::PUBLIC_IDENTITY_LEN);
    let back = PublicIdentity::from_bytes(&bytes).unwrap();
    assert_eq!(back.fingerprint(), id.fingerprint());
    for pos in [0, 1, 40, 60, 100, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x20;
        assert!(PublicIdentity::from_bytes(&bad).is_err(), "flip at {pos} accepted");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        PublicIdentity::from_bytes(&long),
        Err(Error::TrailingBytes(..))
    ));
}

#[test]
fn encryption_record_signed_by_another_key_is_rejected() {
    // Substituted key: Mallory's record claiming to be Alice's identity.
    let alice = identity("alice");
    let mallory = identity("mallory");
    let mut forged = alice.public().encryption_record().as_bytes().to_vec();
    let sig = mallory.sign(pocnet_crypto::context::ENC_KEY, &forged[..forged.len() - 64]);
    let n = forged.len();
    forged[n - 64..].copy_from_slice(&sig);
    assert!(matches!(
        pocnet_crypto::EncryptionKeyRecord::from_bytes(&forged),
        Err(Error::BadSignature(_))
    ));
}

#[test]
fn weak_identity_keys_are_rejected() {
    // The identity point (small order) encoded as an Ed25519 public key.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    assert!(matches!(
        pocnet_crypto::IdentityKey::from_bytes(&weak),
        Err(Error::WeakKey(_))
    ));
}

#[test]
fn safety_number_is_symmetric_60_digits_and_pair_specific() {
    let (a, b, c) = (identity("a"), identity("b"), identity("c"));
    let ab = safety_number(a.public_key(), b.public_key());
    let ba = safety_number(b.public_key(), a.public_key());
    assert_eq!(ab, ba);
    assert_eq!(ab.digits().len(), 60);
    assert!(ab.digits().bytes().all(|d| d.is_ascii_digit()));
    assert_eq!(ab.to_string().split(' ').count(), 12);
    assert_ne!(ab, safety_number(a.public_key(), c.public_key()));
}

#[test]
fn fingerprint_parses_its_own_display_forms() {
    let fp = identity("fp").fingerprint();
    assert_eq!(pocnet_crypto::Fingerprint::parse(&fp.to_hex()).unwrap(), fp);
    assert_eq!(pocnet_crypto::Fingerprint::parse(&fp.grouped()).unwrap(), fp);
    assert!(pocnet_crypto::Fingerprint::parse(&fp.to_hex()[..62]).is_err());
}

#[test]
fn key_file_round_trips_with_default_parameters() {
    let id = identity("kf");
    let file = id
        .to_key_file(&mut pocnet_crypto::os_rng(), b"correct horse", KdfParams::DEFAULT)
        .unwrap();
    let back = Identity::from_key_file(&file, b"correct horse").unwrap();
    assert_eq!(back.fingerprint(), id.fingerprint());
    assert_eq!(back.public().to_bytes(), id.public().to_bytes());
}

#[test]
fn key_file_wrong_passphrase_and_corruption_are_told_apart() {
    let id = identity("kf2");
    let file = id.to_key_file(&mut pocnet_crypto::os_rng(), b"right", FAST).unwrap();
    assert!(matches!(
        Identity::from_key_file(&file, b"wrong"),
        Err(Error::WrongPassphrase)
    ));
    for pos in [8, 20, 40, file.len() / 2, file.len() - 1] {
        let mut bad = file.clone();
        bad[pos] ^= 1;
        assert!(
            matches!(Identity::from_key_file(&bad, b"right"), Err(Error::KeyFileCorrupted)),
            "pos {pos}"
        );
    }
    assert!(matches!(
        Identity::from_key_file(b"not a key file", b"right"),
        Err(Error::BadMagic(_))
    ));
    assert!(matches!(
        Identity::from_key_file(&file[..file.len() - 10], b"right"),
        Err(Error::KeyFileCorrupted)
    ));
}

#[test]
fn key_file_refuses_hostile_kdf_parameters() {
    // A file demanding 4 TiB of memory is refused before any work is done. The
    // checksum is recomputed so the parameters themselves are what is judged.
    let file = seal_secret(&mut pocnet_crypto::os_rng(), b"secret", b"pw", FAST).unwrap();
    let mut bad = file[..file.len() - 32].to_vec();
    bad[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
    use sha2::Digest;
    let sum = sha2::Sha256::digest(&bad);
    bad.extend_from_slice(&sum);
    assert!(matches!(open_secret(&bad, b"pw"), Err(Error::Kdf(_))));
}

#[test]
fn receipts_verify_and_resist_forgery() {
    let (sender, rcpt, mallory) = (identity("s"), identity("r"), identity("m"));
    let receipt = Receipt::sign(&rcpt, ReceiptKind::Read, [1; 16], [2; 32], sender.public_key(), 1234);
    let ok = Receipt::verify(receipt.as_bytes(), rcpt.public_key()).unwrap();
    assert_eq!(ok.kind, ReceiptKind::Read);
    assert_eq!(ok.message_id, [1; 16]);
    // Wrong key.
    assert!(Receipt::verify(receipt.as_bytes(), mallory.public_key()).is_err());
    // Every flip.
    for pos in 0..receipt.as_bytes().len() {
        let mut bad = receipt.as_bytes().to_vec();
        bad[pos] ^= 1;
        assert!(
            Receipt::verify(&bad, rcpt.public_key()).is_err(),
            "flip at {pos} accepted"
        );
    }
    // A receipt signature cannot be passed off as an envelope or record signature:
    // the same bytes under another context do not verify.
    let sig: [u8; 64] = receipt.as_bytes()[receipt.as_bytes().len() - 64..].try_into().unwrap();
    let body = &receipt.as_bytes()[..receipt.as_bytes().len() - 64];
    assert!(rcpt
        .public_key()
        .verify(pocnet_crypto::context::ENVELOPE, body, &sig, "x")
        .is_err());
    assert!(rcpt
        .public_key()
        .verify(pocnet_crypto::context::RECEIPT, body, &sig, "x")
        .is_ok());
}

#[test]
fn secret_identity_round_trips_with_rotated_keys() {
    let mut id = identity("rot");
    id.rotate_encryption_key(&mut pocnet_crypto::os_rng(), NOW + 10, YEAR)
        .unwrap();
    let back = Identity::from_secret_bytes(&id.to_secret_bytes()).unwrap();
    assert_eq!(back.encryption_records().count(), 2);
    assert_eq!(back.public().to_bytes(), id.public().to_bytes());
}
