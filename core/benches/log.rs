//! Directory log verification against the primitives it is made of.
//!
//! Builds a 10,000-leaf log (Genesis, 10 national authorities, 200 approved POCs, then
//! contact updates and confirmations), then measures, in the same run:
//! - `verify_all`: the whole log from scratch (first sync);
//! - `extend`: one new checkpoint adding 10 leaves, with its consistency proof;
//! - Ed25519 `verify_strict` of a median-sized leaf, SHA-256 of that leaf, and one
//!   RFC 9162 node hash;
//!
//! and prints `ratio = measured / (signatures × verify + leaves × sha(leaf) + nodes × node_hash)`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use ed25519_dalek::{Signer, SigningKey};
use pocnet_core::directory::{Anchor, Author, Category, Contact, LogState, Rank, Statement};
use pocnet_crypto::note::{sign_note, Checkpoint, SignedNote};
use pocnet_crypto::tlog::{self, Hash};
use pocnet_crypto::Identity;
use sha2::{Digest, Sha256};

const ORIGIN: &str = "oas.example/pocnet-directory";
const LEAVES: usize = 10_000;
const EXTEND_BY: usize = 10;
const STATES: [&str; 10] = ["CL", "MX", "AR", "BR", "CO", "PE", "UY", "PY", "EC", "BO"];
const NOW: u64 = 1_790_000_000;

struct Fixture {
    anchor: Anchor,
    leaves: Vec<Vec<u8>>,
    approvals: usize,
    note_full: SignedNote,
    note_base: SignedNote,
    proof: Vec<Hash>,
}

fn contact(i: usize) -> Contact {
    Contact {
        name: format!("Contact {i}"),
        position: "Head of cyber policy".into(),
        institution: "Ministry of Foreign Affairs".into(),
        email: format!("poc{i}@example.org"),
        phones: vec!["+56 2 2827 4200".into()],
        languages: vec!["es".into(), "en".into()],
        time_zone: "America/Santiago".into(),
        working_hours: "Mon-Fri 09:00-18:00".into(),
    }
}

fn note(sec: &Identity, leaves: &[Vec<u8>]) -> SignedNote {
    let hashes: Vec<Hash> = leaves.iter().map(|l| tlog::leaf_hash(l)).collect();
    let body = Checkpoint {
        origin: ORIGIN.into(),
        size: leaves.len() as u64,
        root: tlog::root(&hashes),
    }
    .body();
    SignedNote {
        signatures: vec![sign_note(&body, ORIGIN, sec)],
        body,
    }
}

fn fixture() -> Fixture {
    let mut rng = pocnet_crypto::os_rng();
    let gen = |rng: &mut _| Identity::generate(rng, NOW, 365 * 86_400).expect("identity");
    let sec = gen(&mut rng);
    let authorities: Vec<Identity> = STATES.iter().map(|_| gen(&mut rng)).collect();
    let pocs: Vec<Identity> = (0..200).map(|_| gen(&mut rng)).collect();
    let mut t = NOW * 1000;
    let mut tick = || {
        t += 1000;
        t
    };
    let s = Author::new(&sec, ORIGIN);
    let mut leaves: Vec<Statement> = vec![s.genesis(tick(), vec![], 0).unwrap()];
    for (state, a) in STATES.iter().zip(&authorities) {
        leaves.push(
            s.authority_enrol(tick(), state, a.public_key(), "Authority", "MFA")
                .unwrap(),
        );
    }
    let ranks: Vec<Rank> = [Rank::Primary, Rank::Alternate]
        .into_iter()
        .chain((1..=8).map(Rank::Further))
        .collect();
    for (i, poc) in pocs.iter().enumerate() {
        let (si, slot) = (i / 20, i % 20);
        let category = if slot < 10 {
            Category::CyberPolicy
        } else {
            Category::ForeignAffairs
        };
        let t = tick();
        let n = Author::new(&authorities[si], ORIGIN)
            .nominate(t, STATES[si], category, ranks[slot % 10], contact(i), &poc.public())
            .unwrap();
        leaves.push(s.approve(t, &n, &poc.public(), t).unwrap());
    }
    let approvals = pocs.len();
    let mut i = 0;
    while leaves.len() < LEAVES {
        let poc = &pocs[(i * 7) % pocs.len()];
        let a = Author::new(poc, ORIGIN);
        leaves.push(if i % 2 == 0 {
            a.contact_update(tick(), contact(i)).unwrap()
        } else {
            a.confirm(tick()).unwrap()
        });
        i += 1;
    }
    let leaves: Vec<Vec<u8>> = leaves.into_iter().map(Statement::into_bytes).collect();
    let base = LEAVES - EXTEND_BY;
    let hashes: Vec<Hash> = leaves.iter().map(|l| tlog::leaf_hash(l)).collect();
    Fixture {
        anchor: Anchor {
            origin: ORIGIN.into(),
            key: *sec.public_key(),
        },
        note_full: note(&sec, &leaves),
        note_base: note(&sec, &leaves[..base]),
        proof: tlog::consistency_proof(&hashes, base as u64).unwrap(),
        approvals,
        leaves,
    }
}

/// Mean time per call of `f` over at least `min` wall time.
fn time_per<F: FnMut()>(min: Duration, mut f: F) -> Duration {
    f();
    let mut n = 0u32;
    let start = Instant::now();
    while start.elapsed() < min {
        f();
        n += 1;
    }
    start.elapsed() / n
}

/// Node hashes a Frontier does to push `n` leaves after `from`, plus its final root.
fn frontier_nodes(from: u64, n: u64) -> u64 {
    let pushes: u64 = (from..from + n).map(|s| u64::from(s.trailing_ones())).sum();
    pushes + u64::from((from + n).count_ones()) - 1
}

fn main() {
    eprintln!("building a {LEAVES}-leaf log...");
    let fx = fixture();
    let base = LEAVES - EXTEND_BY;
    let log_base = LogState::verify_all(&fx.anchor, &fx.leaves[..base], &fx.note_base).expect("base verifies");
    // A leaf of median size: the typical leaf (a contact update or confirmation).
    let mut by_len: Vec<&Vec<u8>> = fx.leaves.iter().collect();
    by_len.sort_by_key(|l| l.len());
    let sample_leaf = by_len[by_len.len() / 2].clone();

    let sk = SigningKey::from_bytes(&[7u8; 32]);
    let vk = sk.verifying_key();
    let sig = sk.sign(&sample_leaf);

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("directory log");
        g.sample_size(10).measurement_time(Duration::from_secs(8));
        g.bench_function("verify_all 10k leaves", |b| {
            b.iter(|| LogState::verify_all(&fx.anchor, black_box(&fx.leaves), &fx.note_full).unwrap())
        });
        g.bench_function("extend by one checkpoint (10 leaves + consistency proof)", |b| {
            b.iter_batched(
                || log_base.clone(),
                |mut log| {
                    log.extend(black_box(&fx.leaves[base..]), &fx.note_full, &fx.proof)
                        .unwrap();
                    log
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("primitives");
        g.bench_function("ed25519 verify_strict (one leaf)", |b| {
            b.iter(|| vk.verify_strict(black_box(&sample_leaf), &sig).unwrap())
        });
        g.bench_function("sha256 (one leaf)", |b| {
            b.iter(|| Sha256::digest(black_box(&sample_leaf)))
        });
        let (l, r) = ([1u8; 32], [2u8; 32]);
        g.bench_function("rfc9162 node hash", |b| b.iter(|| tlog::node_hash(black_box(&l), &r)));
        g.finish();
    }

    // The ratio, measured in this same process with plain timers.
    let t_verify = time_per(Duration::from_secs(2), || {
        vk.verify_strict(black_box(&sample_leaf), &sig).unwrap();
    });
    let t_sha = time_per(Duration::from_secs(1), || {
        black_box(Sha256::digest(black_box(&sample_leaf)));
    });
    let (l, r) = ([1u8; 32], [2u8; 32]);
    let t_node = time_per(Duration::from_secs(1), || {
        black_box(tlog::node_hash(black_box(&l), &r));
    });
    let t_all = (0..3)
        .map(|_| {
            time_per(Duration::from_millis(1), || {
                black_box(LogState::verify_all(&fx.anchor, &fx.leaves, &fx.note_full).unwrap());
            })
        })
        .min()
        .unwrap();
    // Mean over many runs, timing only `extend` (not the clone that sets each run up).
    let t_extend = {
        let runs = 400u32;
        let mut total = Duration::ZERO;
        for _ in 0..runs {
            let mut log = log_base.clone();
            let s = Instant::now();
            log.extend(&fx.leaves[base..], &fx.note_full, &fx.proof).unwrap();
            total += s.elapsed();
            black_box(log);
        }
        total / runs
    };
    let ns = |d: Duration| d.as_secs_f64() * 1e9;

    // verify_all: every leaf's signature, the nomination and encryption-record signatures
    // inside each approval, and the checkpoint's; every leaf hashed; n - 1 node hashes.
    let sigs_all = (LEAVES + 2 * fx.approvals + 1) as f64;
    let leaves_all = LEAVES as f64;
    let nodes_all = frontier_nodes(0, LEAVES as u64) as f64;
    let prim_all = sigs_all * ns(t_verify) + leaves_all * ns(t_sha) + nodes_all * ns(t_node);
    // extend: the new leaves' signatures and the checkpoint's; new leaves hashed; frontier
    // pushes and root; consistency proof verification (two node hashes per proof element at most).
    let sigs_ext = (EXTEND_BY + 1) as f64;
    let nodes_ext = (frontier_nodes(base as u64, EXTEND_BY as u64) + 2 * fx.proof.len() as u64) as f64;
    let prim_ext = sigs_ext * ns(t_verify) + EXTEND_BY as f64 * ns(t_sha) + nodes_ext * ns(t_node);

    println!();
    println!(
        "primitives: ed25519 verify_strict {:.1} µs, sha256(leaf of {} bytes) {:.2} µs, node hash {:.3} µs",
        ns(t_verify) / 1e3,
        sample_leaf.len(),
        ns(t_sha) / 1e3,
        ns(t_node) / 1e3
    );
    println!(
        "verify_all {LEAVES} leaves: {:.1} ms; primitives {:.0} signatures + {:.0} leaf hashes + {:.0} node hashes = {:.1} ms; ratio {:.2}",
        ns(t_all) / 1e6, sigs_all, leaves_all, nodes_all, prim_all / 1e6, ns(t_all) / prim_all
    );
    println!(
        "extend by {EXTEND_BY} leaves: {:.1} µs; primitives {:.0} signatures + {EXTEND_BY} leaf hashes + {:.0} node hashes = {:.1} µs; ratio {:.2}",
        ns(t_extend) / 1e3, sigs_ext, nodes_ext, prim_ext / 1e3, ns(t_extend) / prim_ext
    );
    c.final_summary();
}
