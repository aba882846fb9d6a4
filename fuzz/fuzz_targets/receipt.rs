//! Receipts from another party: `Receipt::verify`.
//!
//! Input: one mode byte, then the receipt; mode bit 0 re-signs it as the expected signer
//! so mutations reach the field checks. Invariant: an accepted receipt is exactly what
//! `Receipt::sign` produces for its fields (Ed25519 is deterministic), and no other key
//! accepts it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocnet_crypto::{context, IdentityKey, Receipt};
use pocnet_fuzz::{me, resign_tail, sender};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 != 0 {
        resign_tail(&mut bytes, 0, me(), context::RECEIPT);
    }
    let signer = me();
    let Ok(r) = Receipt::verify(&bytes, signer.public_key()) else {
        return;
    };
    assert_eq!(r.as_bytes(), &bytes[..]);
    assert_eq!(&r.signer, signer.public_key().as_bytes());
    assert!(
        Receipt::verify(&bytes, sender().public_key()).is_err(),
        "accepted under another key"
    );
    if let Ok(env_sender) = IdentityKey::from_bytes(&r.sender) {
        let again = Receipt::sign(signer, r.kind, r.message_id, r.envelope_hash, &env_sender, r.at_ms);
        assert_eq!(
            again.as_bytes(),
            &bytes[..],
            "an accepted receipt is not in canonical form"
        );
        assert_eq!(again, r);
    }
});
