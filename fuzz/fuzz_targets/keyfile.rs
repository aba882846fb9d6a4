//! Key files: `keyfile::open_secret` (header, KDF parameters, ciphertext) and the secret
//! identity inside, `Identity::from_secret_bytes`.
//!
//! Input: one mode byte, then the bytes. Mode % 4:
//! - 0: `Identity::from_key_file` on the raw bytes (stops at the SHA-256 checksum);
//! - 1: the checksum is recomputed so the parser runs; KDF parameters inside the accepted
//!   range are replaced by `m_cost = 0`, which the decoder refuses before Argon2 runs;
//! - 2: the checksum is recomputed and only the cheapest accepted parameters
//!   (8 MiB, t = 1, p = 1) are kept, so Argon2 runs (slowly) and decryption is reached;
//! - 3: `Identity::from_secret_bytes` on the bytes (the decrypted payload).
//!
//! Invariant: a secret identity that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocnet_crypto::keyfile::open_secret;
use pocnet_crypto::Identity;
use pocnet_fuzz::PASSPHRASE;
use sha2::{Digest, Sha256};

const PARAMS_AT: usize = 7 + 1 + 1;

fn param(b: &[u8], i: usize) -> Option<u32> {
    let at = PARAMS_AT + 4 * i;
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn secret_round_trip(secret: &[u8]) {
    if let Ok(id) = Identity::from_secret_bytes(secret) {
        assert_eq!(&id.to_secret_bytes()[..], secret, "secret identity not canonical");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let _ = Identity::from_key_file(rest, PASSPHRASE);
        }
        3 => secret_round_trip(rest),
        m => {
            let mut body = rest.to_vec();
            if let (Some(m_cost), Some(t), Some(p)) = (param(&body, 0), param(&body, 1), param(&body, 2)) {
                let cheapest = (m_cost, t, p) == (8 * 1024, 1, 1);
                let accepted =
                    (8 * 1024..=4 * 1024 * 1024).contains(&m_cost) && (1..=64).contains(&t) && (1..=16).contains(&p);
                if accepted && (m == 1 || !cheapest) {
                    body[PARAMS_AT..PARAMS_AT + 4].copy_from_slice(&0u32.to_be_bytes());
                }
            }
            let sum = Sha256::digest(&body);
            body.extend_from_slice(&sum);
            if let Ok(secret) = open_secret(&body, PASSPHRASE) {
                secret_round_trip(&secret);
            }
        }
    }
});
