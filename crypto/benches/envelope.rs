//! Envelope cost against the bare primitives it is built from, measured in one run.
//!
//! `cargo bench -p pocnet-crypto`. Ratios are computed by `scripts/bench-ratios.py`
//! from criterion's estimates and recorded in BENCHMARKS.md.
#![forbid(unsafe_code)]

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::{Signer, SigningKey};
use hpke::aead::ChaCha20Poly1305 as HChaCha;
use hpke::kdf::HkdfSha256;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Kem, OpModeR, OpModeS};
use pocnet_crypto::envelope::{HeaderFields, Suite};
use pocnet_crypto::{open, open_stream, os_rng, seal, seal_stream, Identity};

const NOW: u64 = 1_790_000_000;

fn ids(n: usize) -> Vec<Identity> {
    (0..n)
        .map(|_| Identity::generate(&mut os_rng(), NOW, 86400 * 365).unwrap())
        .collect()
}

fn primitives(c: &mut Criterion) {
    let mut g = c.benchmark_group("primitive");
    let sk = SigningKey::from_bytes(&[7; 32]);
    let vk = sk.verifying_key();
    let msg = [0u8; 64];
    let sig = sk.sign(&msg);
    g.bench_function("ed25519_sign", |b| b.iter(|| sk.sign(&msg)));
    g.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| vk.verify_strict(&msg, &sig).unwrap())
    });
    let a = x25519_dalek::StaticSecret::from([1u8; 32]);
    let bpub = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([2u8; 32]));
    g.bench_function("x25519_agreement", |b| b.iter(|| a.diffie_hellman(&bpub)));
    let (xsk, xpk) = XWing::derive_keypair(&[3; 32]);
    let (dsk, dpk) = X25519HkdfSha256::derive_keypair(&[4; 32]);
    let key = [9u8; 32];
    g.bench_function("hpke_xwing_seal_32B", |b| {
        b.iter(|| {
            hpke::single_shot_seal_with_rng::<HChaCha, HkdfSha256, XWing>(
                &OpModeS::Base,
                &xpk,
                b"i",
                &key,
                &[],
                &mut os_rng(),
            )
            .unwrap()
        })
    });
    let (enc, ct) = hpke::single_shot_seal_with_rng::<HChaCha, HkdfSha256, XWing>(
        &OpModeS::Base,
        &xpk,
        b"i",
        &key,
        &[],
        &mut os_rng(),
    )
    .unwrap();
    g.bench_function("hpke_xwing_open_32B", |b| {
        b.iter(|| {
            hpke::single_shot_open::<HChaCha, HkdfSha256, XWing>(&OpModeR::Base, &xsk, &enc, b"i", &ct, &[]).unwrap()
        })
    });
    g.bench_function("hpke_x25519_seal_32B", |b| {
        b.iter(|| {
            hpke::single_shot_seal_with_rng::<HChaCha, HkdfSha256, X25519HkdfSha256>(
                &OpModeS::Base,
                &dpk,
                b"i",
                &key,
                &[],
                &mut os_rng(),
            )
            .unwrap()
        })
    });
    let (denc, dct) = hpke::single_shot_seal_with_rng::<HChaCha, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &dpk,
        b"i",
        &key,
        &[],
        &mut os_rng(),
    )
    .unwrap();
    g.bench_function("hpke_x25519_open_32B", |b| {
        b.iter(|| {
            hpke::single_shot_open::<HChaCha, HkdfSha256, X25519HkdfSha256>(
                &OpModeR::Base,
                &dsk,
                &denc,
                b"i",
                &dct,
                &[],
            )
            .unwrap()
        })
    });
    let aead = ChaCha20Poly1305::new(&[5u8; 32].into());
    let mut buf = vec![0u8; 1024];
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("chacha20poly1305_1KiB", |b| {
        b.iter(|| {
            aead.encrypt_inout_detached(&Nonce::from([0; 12]), &[], buf.as_mut_slice().into())
                .unwrap()
        })
    });
    g.finish();
}

fn envelopes(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    let sender = ids(1).pop().unwrap();
    let body = vec![0x42u8; 1024];
    for (suite_name, suite) in [("xwing", Suite::XWing), ("x25519", Suite::X25519)] {
        for n in [1usize, 35] {
            let rcpts = ids(n);
            let pubs: Vec<_> = rcpts.iter().map(|r| r.public()).collect();
            let fields = HeaderFields {
                suite,
                ..HeaderFields::message(NOW * 1000)
            };
            g.bench_function(format!("seal_1KiB_{suite_name}_{n}"), |b| {
                b.iter(|| seal(&mut os_rng(), &sender, &pubs, &fields, &body).unwrap())
            });
            let sealed = seal(&mut os_rng(), &sender, &pubs, &fields, &body).unwrap();
            g.bench_function(format!("open_1KiB_{suite_name}_{n}"), |b| {
                b.iter(|| open(&rcpts[0], &sealed.bytes, sender.public_key()).unwrap())
            });
        }
    }
    g.finish();
}

fn streaming(c: &mut Criterion) {
    const LEN: usize = 64 << 20;
    let mut g = c.benchmark_group("stream_64MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(LEN as u64));
    let body = vec![0x17u8; LEN];
    let aead = ChaCha20Poly1305::new(&[5u8; 32].into());
    g.bench_function("raw_chacha20poly1305_64KiB_chunks", |b| {
        b.iter_batched_ref(
            || body.clone(),
            |buf| {
                for (i, chunk) in buf.chunks_mut(64 * 1024).enumerate() {
                    let mut n = [0u8; 12];
                    n[4..].copy_from_slice(&(i as u64).to_be_bytes());
                    aead.encrypt_inout_detached(&Nonce::from(n), &[], chunk.into()).unwrap();
                }
            },
            BatchSize::PerIteration,
        )
    });
    let sender = ids(1).pop().unwrap();
    let rcpt = ids(1).pop().unwrap();
    let fields = HeaderFields::message(NOW * 1000);
    let mut out = Vec::with_capacity(LEN + LEN / 1000 + 8192);
    g.bench_function("seal_stream", |b| {
        b.iter(|| {
            out.clear();
            seal_stream(
                &mut os_rng(),
                &sender,
                &[rcpt.public()],
                &fields,
                LEN as u64,
                &mut body.as_slice(),
                &mut out,
            )
            .unwrap()
        })
    });
    let env = out.clone();
    let mut plain = Vec::with_capacity(LEN);
    g.bench_function("open_stream", |b| {
        b.iter(|| {
            plain.clear();
            open_stream(&rcpt, &mut env.as_slice(), sender.public_key(), &mut plain).unwrap()
        })
    });
    g.finish();
}

/// An escalation alert: one envelope sealed to every POC of every targeted state, all
/// ranks (35 states × 3 ranks, and 1,000 POCs). Each recipient's KEM is independent, so
/// `seal` spreads them over every core; the ratio that matters is against the one-core sum
/// of the primitives (`scripts/bench-ratios.py`).
fn alerts(c: &mut Criterion) {
    let mut g = c.benchmark_group("alert");
    g.sample_size(10);
    let sender = ids(1).pop().unwrap();
    let body = vec![0x42u8; 4096];
    let fields = HeaderFields {
        suite: Suite::XWing,
        content_type: pocnet_crypto::ContentType::Alert,
        ..HeaderFields::message(NOW * 1000)
    };
    let all = ids(1000);
    let pubs: Vec<_> = all.iter().map(|r| r.public()).collect();
    for n in [105usize, 1000] {
        g.bench_function(format!("seal_4KiB_xwing_{n}"), |b| {
            b.iter(|| seal(&mut os_rng(), &sender, &pubs[..n], &fields, &body).unwrap())
        });
    }
    g.finish();
    let mut p = c.benchmark_group("primitive");
    let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
    let mut buf = vec![0u8; 4096];
    p.bench_function("chacha20poly1305_4KiB", |b| {
        b.iter(|| {
            aead.encrypt_inout_detached(&Nonce::from([0; 12]), &[], buf.as_mut_slice().into())
                .unwrap()
        })
    });
    p.finish();
}

criterion_group!(benches, primitives, envelopes, streaming, alerts);
criterion_main!(benches);
