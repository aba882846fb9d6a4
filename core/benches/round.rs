//! Round bundle verification against the primitive it is made of.
//!
//! Builds a bundle of 1,000 targets that all answered in pocnet (confirmations), with real
//! signatures: the Secretariat's manifest and checkpoint, each POC's answer, and a test
//! relay's acceptances signed as a relay signs them, in groups (challenges in 4 groups of
//! 250, answers in 10 groups of 100). Then measures, in the same run, `verify_bundle` on the
//! file and 1,000 Ed25519 `verify_strict`, and prints the ratio (target ≤ 1.5).
//!
//! Signatures `verify_bundle` checks: 1,000 answers + 14 relay groups + manifest + checkpoint.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ed25519_dalek::{Signer, SigningKey};
use pocnet_core::directory::{Category, Handle, Rank};
use pocnet_core::iso3166::ASSIGNED;
use pocnet_core::round::{
    verify_bundle, Acceptance, Answer, AnswerRecord, BundleBuilder, Challenge, Request, Target, TargetRecord,
};
use pocnet_crypto::note::{sign_note, Checkpoint, SignedNote};
use pocnet_crypto::Identity;
use pocnet_wire::accept::sign_group;
use sha2::{Digest, Sha256};

const ORIGIN: &str = "oas.example/pocnet-directory";
const N: usize = 1000;
const T0: u64 = 1_790_000_000_000;
const H: u64 = 3_600_000;
/// Targets spread over this many states (20 per state, all distinct handles).
const STATES: usize = 50;

fn bundle() -> Vec<u8> {
    let mut rng = pocnet_crypto::os_rng();
    let gen = |rng: &mut _| Identity::generate(rng, T0 / 1000, 365 * 86_400).expect("identity");
    let sec = gen(&mut rng);
    let relay = gen(&mut rng);
    let pocs: Vec<Identity> = (0..N).map(|_| gen(&mut rng)).collect();
    let round = [3u8; 16];
    let challenge = Challenge::new(round, ORIGIN, T0, T0 + 7 * 24 * H, Request::ConfirmDetails, vec![], 500);
    let body = Checkpoint {
        origin: ORIGIN.into(),
        size: 500,
        root: [1; 32],
    }
    .body();
    let note = SignedNote {
        signatures: vec![sign_note(&body, ORIGIN, &sec)],
        body,
    }
    .to_text();
    let h = |s: String| -> [u8; 32] { Sha256::digest(s.as_bytes()).into() };
    let c_items: Vec<([u8; 32], u64)> = (0..N).map(|i| (h(format!("challenge {i}")), T0 + i as u64)).collect();
    let c_proofs: Vec<_> = c_items.chunks(250).flat_map(|c| sign_group(&relay, c)).collect();
    let a_items: Vec<([u8; 32], u64)> = (0..N)
        .map(|i| (h(format!("answer {i}")), T0 + i as u64 + (i as u64 % 48) * H))
        .collect();
    let a_proofs: Vec<_> = a_items.chunks(100).flat_map(|c| sign_group(&relay, c)).collect();
    let mut b = BundleBuilder::new(&challenge, &note, relay.public_key()).unwrap();
    for (i, poc) in pocs.iter().enumerate() {
        let state = ASSIGNED[i % STATES].0;
        let (category, rank) = rank_for(i / STATES);
        let handle = Handle::poc(state, category, rank).to_string();
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let mut r = TargetRecord::new(
            Target {
                handle,
                name: format!("POC {i}"),
                key: *poc.public_key().as_bytes(),
                state: state.into(),
                category,
                rank,
                stale: false,
            },
            id,
            c_items[i].0,
            Acceptance {
                stored_at_ms: c_items[i].1,
                proof: c_proofs[i].clone(),
            },
        );
        r.answer = Some(AnswerRecord {
            signed: Answer::new(round, id, true, None, "all well", a_items[i].1)
                .sign(poc)
                .unwrap()
                .into_bytes(),
            envelope_hash: a_items[i].0,
            accepted: Acceptance {
                stored_at_ms: a_items[i].1,
                proof: a_proofs[i].clone(),
            },
        });
        b.push(r).unwrap();
    }
    b.finish(&sec, T0 + 8 * 24 * H).unwrap().encode().unwrap()
}

/// The k-th of a state's 22 handles: primary, alternate, further1..9, then the same in
/// foreign affairs.
fn rank_for(k: usize) -> (Category, Rank) {
    let category = if k < 11 {
        Category::CyberPolicy
    } else {
        Category::ForeignAffairs
    };
    let rank = match k % 11 {
        0 => Rank::Primary,
        1 => Rank::Alternate,
        n => Rank::Further((n - 1) as u8),
    };
    (category, rank)
}

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

fn main() {
    eprintln!("building a {N}-answer round bundle...");
    let bytes = bundle();
    let (_, report) = verify_bundle(&bytes).expect("the bundle verifies");
    assert_eq!(report.totals.answered as usize, N);

    // 1,000 signatures over 1,000 messages the size of a signed answer, 1,000 keys.
    let keys: Vec<SigningKey> = (0..N)
        .map(|i| SigningKey::from_bytes(&Sha256::digest(i.to_be_bytes()).into()))
        .collect();
    let msgs: Vec<Vec<u8>> = (0..N).map(|i| vec![i as u8; 120]).collect();
    let sigs: Vec<_> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let vks: Vec<_> = keys.iter().map(|k| k.verifying_key()).collect();
    let verify_1000 = || {
        for ((vk, m), s) in vks.iter().zip(&msgs).zip(&sigs) {
            vk.verify_strict(black_box(m), s).unwrap();
        }
    };

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("round bundle");
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.bench_function("verify_bundle 1000 answers", |b| {
            b.iter(|| verify_bundle(black_box(&bytes)).unwrap())
        });
        g.bench_function("1000 x ed25519 verify_strict", |b| b.iter(verify_1000));
        g.finish();
    }

    // The ratio, measured in this same process with plain timers (best of three).
    let best = |f: &dyn Fn()| (0..3).map(|_| time_per(Duration::from_millis(800), f)).min().unwrap();
    let t_bundle = best(&|| {
        black_box(verify_bundle(black_box(&bytes)).unwrap());
    });
    let t_sigs = best(&verify_1000);
    println!();
    println!(
        "verify_bundle ({N} answers, {} bytes): {:.2} ms; {N} x verify_strict: {:.2} ms; ratio {:.2} (target <= 1.5)",
        bytes.len(),
        t_bundle.as_secs_f64() * 1e3,
        t_sigs.as_secs_f64() * 1e3,
        t_bundle.as_secs_f64() / t_sigs.as_secs_f64()
    );
    c.final_summary();
}
