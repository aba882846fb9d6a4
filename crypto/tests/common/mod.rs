//! Test helpers: a deterministic RNG (SHA-256 in counter mode) for known-answer vectors.
#![allow(dead_code)]

use std::convert::Infallible;

use pocnet_crypto::rand_core::{TryCryptoRng, TryRng};
use pocnet_crypto::{Identity, PublicIdentity};
use sha2::{Digest, Sha256};

/// NOT random: reproducible bytes from a label, for vectors and tests only.
pub struct SeededRng {
    seed: [u8; 32],
    counter: u64,
    buf: Vec<u8>,
}

impl SeededRng {
    pub fn new(label: &str) -> Self {
        SeededRng {
            seed: Sha256::digest(label.as_bytes()).into(),
            counter: 0,
            buf: Vec::new(),
        }
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for d in dst.iter_mut() {
            if self.buf.is_empty() {
                let mut h = Sha256::new();
                h.update(self.seed);
                h.update(self.counter.to_be_bytes());
                self.counter += 1;
                self.buf = h.finalize().to_vec();
                self.buf.reverse();
            }
            *d = self.buf.pop().expect("refilled above");
        }
        Ok(())
    }
}
impl TryCryptoRng for SeededRng {}

pub const NOW: u64 = 1_790_000_000; // 2026-09-21, Unix seconds
pub const YEAR: u64 = 365 * 24 * 3600;

pub fn identity(label: &str) -> Identity {
    Identity::generate(&mut SeededRng::new(label), NOW, YEAR).expect("identity")
}

pub fn identities(prefix: &str, n: usize) -> (Vec<Identity>, Vec<PublicIdentity>) {
    let ids: Vec<Identity> = (0..n).map(|i| identity(&format!("{prefix}-{i}"))).collect();
    let pubs = ids.iter().map(|i| i.public()).collect();
    (ids, pubs)
}
