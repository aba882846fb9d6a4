//! Shared pieces of the pocnet fuzz targets: fixed test identities (so seeds sealed by
//! `examples/seed.rs` open inside the targets), a deterministic RNG, and "fix-ups" that
//! re-sign or re-hash a mutated input so the fuzzer reaches the code behind a signature
//! or a hash check instead of stopping at it.

use std::convert::Infallible;
use std::sync::OnceLock;

use pocnet_crypto::context;
use pocnet_crypto::rand_core::{TryCryptoRng, TryRng};
use pocnet_crypto::Identity;
use sha2::{Digest, Sha256};

/// Unix seconds at which the test identities' encryption keys become valid.
pub const NOW: u64 = 1_790_000_000;
/// Validity of the test encryption keys.
pub const YEAR: u64 = 365 * 24 * 3600;
/// Envelope creation time used by seeds and by seals inside targets.
pub const NOW_MS: u64 = (NOW + 60) * 1000;
/// The passphrase of the seeded key files.
pub const PASSPHRASE: &[u8] = b"fuzz passphrase";

/// NOT random: SHA-256 in counter mode over a label.
pub struct SeededRng {
    seed: [u8; 32],
    counter: u64,
    buf: Vec<u8>,
}

impl SeededRng {
    /// A generator whose output depends only on `label`.
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

fn identity(label: &str) -> Identity {
    Identity::generate(&mut SeededRng::new(label), NOW, YEAR).expect("test identity")
}

/// The reader: envelopes are opened as this identity, receipts are signed by it.
pub fn me() -> &'static Identity {
    static ME: OnceLock<Identity> = OnceLock::new();
    ME.get_or_init(|| identity("pocnet-fuzz/me"))
}

/// The envelope sender every target expects.
pub fn sender() -> &'static Identity {
    static SENDER: OnceLock<Identity> = OnceLock::new();
    SENDER.get_or_init(|| identity("pocnet-fuzz/sender"))
}

/// A third party (a recipient other than `me`).
pub fn other() -> &'static Identity {
    static OTHER: OnceLock<Identity> = OnceLock::new();
    OTHER.get_or_init(|| identity("pocnet-fuzz/other"))
}

fn be_u32(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn be_u16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

/// Byte ranges of an envelope's sections, found leniently (PROTOCOL.md layout):
/// `version || u32 hlen || header || u32 slen || stanzas || body || signature(64)`.
struct Layout {
    header: std::ops::Range<usize>,
    stanzas: std::ops::Range<usize>,
    body: std::ops::Range<usize>,
}

fn layout(env: &[u8]) -> Option<Layout> {
    let hlen = be_u32(env, 1)?;
    let h_end = 5usize.checked_add(hlen)?;
    let slen = be_u32(env, h_end)?;
    let s_start = h_end + 4;
    let s_end = s_start.checked_add(slen)?;
    let b_end = env.len().checked_sub(64)?;
    (s_end <= b_end).then_some(Layout {
        header: 5..h_end,
        stanzas: s_start..s_end,
        body: s_end..b_end,
    })
}

/// Writes SHA-256 of each stanza in the block into the stanza-hash field of the header
/// entry its index names (where both exist), as an honest sender would have.
pub fn fix_stanza_hashes(env: &mut [u8]) {
    let Some(l) = layout(env) else { return };
    let header = &env[l.header.clone()];
    let Some(&suite) = header.get(1) else { return };
    let stanza_len = match suite {
        1 => 32 + 48,
        2 => 1120 + 48,
        _ => return,
    };
    let Some(&inc) = header.get(61) else { return };
    let entries = 104 + inc as usize;
    let Some(n) = be_u16(header, entries - 2) else { return };
    let stanzas = &env[l.stanzas.clone()];
    let Some(count) = be_u16(stanzas, 0) else { return };
    let mut fixes = Vec::new();
    let mut at = 2;
    for _ in 0..count {
        let Some(idx) = be_u16(stanzas, at) else { break };
        let Some(stanza) = stanzas.get(at + 2..at + 2 + stanza_len) else {
            break;
        };
        at += 2 + stanza_len;
        if idx < n {
            let hash: [u8; 32] = Sha256::digest(stanza).into();
            fixes.push((l.header.start + entries + 96 * idx + 64, hash));
        }
    }
    for (pos, hash) in fixes {
        if let Some(dst) = env.get_mut(pos..pos + 32) {
            dst.copy_from_slice(&hash);
        }
    }
}

/// Replaces the last 64 bytes with `sender()`'s signature over the header and body,
/// as `seal` computes it, so that a mutated header or body still verifies.
pub fn resign_envelope(env: &mut [u8]) {
    let Some(l) = layout(env) else { return };
    let hh: [u8; 32] = Sha256::digest(&env[l.header.clone()]).into();
    let bh: [u8; 32] = blake3::hash(&env[l.body.clone()]).into();
    let sig = sender().sign(context::ENVELOPE, &[hh, bh].concat());
    let end = env.len();
    env[end - 64..].copy_from_slice(&sig);
}

/// Replaces the last 64 bytes of `bytes[skip..]` with `signer`'s signature under `ctx`
/// over everything between `skip` and the signature (receipts, encryption key records).
pub fn resign_tail(bytes: &mut [u8], skip: usize, signer: &Identity, ctx: context::SigningContext) {
    let Some(end) = bytes.len().checked_sub(64) else { return };
    if end < skip {
        return;
    }
    let sig = signer.sign(ctx, &bytes[skip..end]);
    bytes[end..].copy_from_slice(&sig);
}
