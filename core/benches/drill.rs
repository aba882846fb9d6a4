//! After-action report generation and drill-record verification for 1,000 POCs.
//!
//! Builds, with real signatures, a drill record of 200 states × 5 ranks (primary, alternate,
//! further1..3) = 1,000 POCs plus the sender (a 201st state's primary): a directory log built
//! with `Publisher` (Genesis, 201 authorities, 1,001 approvals), one alert sealed EXERCISE to
//! all 1,000 (X-Wing, the scenario's default) with its signed plan and the relay's
//! acceptance, a Delivered receipt from every POC and an Acknowledged receipt from 70% of
//! them. Then measures:
//!
//! - report generation: `AfterAction::compute` + Markdown + JSON + HTML;
//! - `verify_drill` on the signed file (which recomputes the report).

use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use pocnet_core::directory::{vkey, Author, Category, Contact, Publisher, Rank};
use pocnet_core::drill::scenario::rank_number;
use pocnet_core::drill::{verify_drill, AfterAction, DrillBundle, DrillBundleBuilder, RosterEntry, Scenario};
use pocnet_core::iso3166::ASSIGNED;
use pocnet_crypto::{Identity, PublicIdentity, Receipt, ReceiptKind};
use pocnet_wire::accept::sign_group;

const ORIGIN: &str = "oas.example/pocnet-directory";
const T0: u64 = 1_790_000_000_000;
const STATES: usize = 200;
const RANKS: [&str; 5] = ["primary", "alternate", "further1", "further2", "further3"];

fn contact() -> Contact {
    Contact {
        name: "Ana Pérez".into(),
        position: "Head of cyber policy".into(),
        institution: "Ministry of Foreign Affairs".into(),
        email: "poc@example.org".into(),
        phones: vec!["+56 2 2827 4200".into()],
        languages: vec!["es".into()],
        time_zone: "America/Santiago".into(),
        working_hours: "Mon-Fri 09:00-18:00".into(),
    }
}

fn rank(r: &str) -> Rank {
    match r {
        "primary" => Rank::Primary,
        "alternate" => Rank::Alternate,
        f => Rank::Further(f.trim_start_matches("further").parse().unwrap()),
    }
}

fn build() -> (Vec<u8>, String) {
    let mut rng = pocnet_crypto::os_rng();
    let gen = |rng: &mut _| Identity::generate(rng, T0 / 1000, 365 * 86_400).expect("identity");
    let sec = gen(&mut rng);
    let relay = gen(&mut rng);
    // The sender's state is the first code; the 200 alerted states follow.
    let codes: Vec<&str> = ASSIGNED.iter().map(|(c, _)| *c).take(STATES + 1).collect();
    let sender_state = codes[0];
    let mut scenario = String::new();
    let _ = write!(
        scenario,
        "name = \"Bench\"\nclock_rate = 60\nwindow = \"15m\"\nrepeats = 1\n\n[participants]\nstates = [{}]\nranks = [{}]\n\n\
         [[inject]]\nat = \"0m\"\nkind = \"alert\"\nfrom = \"{sender_state}.primary\"\nto = [\"*\"]\nheadline = \"Bench alert\"\ndescription = \"One alert to 1,000 POCs.\"\n",
        codes.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", "),
        RANKS.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ")
    );
    let sc = Scenario::parse(&scenario).expect("the bench scenario parses");

    let mut log = Publisher::genesis(&sec, ORIGIN, T0, vec![], 0).unwrap();
    let mut t = T0;
    let mut pocs: Vec<(String, Identity)> = Vec::new();
    for (si, code) in codes.iter().enumerate() {
        let auth = gen(&mut rng);
        t += 1;
        log.push(
            &Author::new(&sec, ORIGIN)
                .authority_enrol(t, code, auth.public_key(), "Authority", "MFA")
                .unwrap(),
        )
        .unwrap();
        let ranks: &[&str] = if si == 0 { &RANKS[..1] } else { &RANKS };
        for r in ranks {
            let poc = gen(&mut rng);
            t += 2;
            let n = Author::new(&auth, ORIGIN)
                .nominate(t, code, Category::CyberPolicy, rank(r), contact(), &poc.public())
                .unwrap();
            log.push(&Author::new(&sec, ORIGIN).approve(t + 1, &n, &poc.public(), t).unwrap())
                .unwrap();
            pocs.push((format!("{code}.{r}"), poc));
        }
    }
    let started = t + 1_000;
    let entries: Vec<RosterEntry> = log
        .directory()
        .members()
        .iter()
        .map(|p| RosterEntry {
            handle: p.handle_text(),
            state: p.state().to_string(),
            rank: rank_number(p.category_rank().1),
            key: *p.key.as_bytes(),
        })
        .collect();
    let ps = sc.roster(&entries).unwrap();
    assert_eq!(ps.len(), STATES * RANKS.len() + 1);
    let by_key = |k: &[u8; 32]| &pocs.iter().find(|(_, i)| i.public_key().as_bytes() == k).unwrap().1;
    let sender = by_key(
        &ps.iter()
            .find(|p| p.handle == format!("{sender_state}.primary"))
            .unwrap()
            .key,
    );

    let a = started + 1_000;
    let body = sc.alert_body(0, &ps, a, None).unwrap().encode().unwrap();
    let recipients: Vec<PublicIdentity> = sc
        .recipients(0, &ps)
        .unwrap()
        .iter()
        .map(|p| by_key(&p.key).public())
        .collect();
    assert_eq!(recipients.len(), STATES * RANKS.len());
    let sealed = pocnet_crypto::seal(&mut rng, sender, &recipients, &sc.header_fields(0, a).unwrap(), &body).unwrap();
    let plan = sc
        .plan(0, &ps, sealed.message_id, sealed.envelope_hash, None)
        .unwrap()
        .sign(sender)
        .unwrap()
        .into_bytes();
    let mut b = DrillBundleBuilder::new(&scenario, relay.public_key(), started, ps.clone()).unwrap();
    let proof = sign_group(&relay, &[(sealed.envelope_hash, a)]).remove(0);
    let id = b.add_alert(sealed.bytes, plan, a, proof).unwrap();
    for (i, p) in ps.iter().filter(|p| p.state != sender_state).enumerate() {
        let poc = by_key(&p.key);
        let r = |k, at| {
            Receipt::sign(poc, k, id, sealed.envelope_hash, sender.public_key(), at)
                .as_bytes()
                .to_vec()
        };
        b.add_receipt(id, r(ReceiptKind::Delivered, a + 200 + i as u64))
            .unwrap();
        if i % 10 < 7 {
            b.add_receipt(id, r(ReceiptKind::Acknowledged, a + 2_000 + 37 * i as u64))
                .unwrap();
        }
    }
    let vk = vkey(ORIGIN, sec.public_key());
    b.directory(&vk, &log.checkpoint(&sec).to_text(), log.leaves().to_vec())
        .unwrap();
    (b.finish(&sec, a + 60_000, false).unwrap(), vk)
}

fn report_all(bundle: &DrillBundle) -> usize {
    let r = AfterAction::compute(bundle).unwrap();
    r.to_markdown().len() + r.to_json().len() + r.to_html().len()
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
    eprintln!("building a 1,000-POC drill record...");
    let built = Instant::now();
    let (bytes, vk) = build();
    eprintln!("built in {:.1} s", built.elapsed().as_secs_f64());
    let (bundle, report) = verify_drill(&bytes, Some(&vk)).expect("the record verifies");
    assert_eq!(report.alerts[0].recipients, 1000);
    assert_eq!(report.alerts[0].acknowledged, 700);

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("drill 1000 POCs");
        g.sample_size(10).measurement_time(Duration::from_secs(8));
        g.bench_function("report: compute + markdown + json + html", |b| {
            b.iter(|| report_all(black_box(&bundle)))
        });
        g.bench_function("verify_drill", |b| {
            b.iter(|| verify_drill(black_box(&bytes), Some(&vk)).unwrap())
        });
        g.finish();
    }

    let best = |f: &dyn Fn()| (0..3).map(|_| time_per(Duration::from_millis(800), f)).min().unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let t_compute = best(&|| {
        black_box(AfterAction::compute(black_box(&bundle)).unwrap());
    });
    let t_md = best(&|| {
        black_box(report.to_markdown());
    });
    let t_json = best(&|| {
        black_box(report.to_json());
    });
    let t_html = best(&|| {
        black_box(report.to_html());
    });
    let t_all = best(&|| {
        black_box(report_all(&bundle));
    });
    let t_verify = best(&|| {
        black_box(verify_drill(black_box(&bytes), Some(&vk)).unwrap());
    });
    // Same-run ceilings: decoding the record (what any report must read), and the
    // signatures verify_drill must check, one verify_strict each: every log leaf (1,203:
    // Genesis, 200 authority enrolments, 1,000 approvals, each approval also carrying the
    // authority's nomination signature), the controller's signature, the alert envelope and
    // its plan, 1,700 receipts.
    let t_decode = best(&|| {
        black_box(DrillBundle::decode_unverified(black_box(&bytes)).unwrap());
    });
    let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let vkk = sk.verifying_key();
    let msg = [0u8; 200];
    let sig = ed25519_dalek::Signer::sign(&sk, &msg);
    let t_sig = best(&|| {
        vkk.verify_strict(black_box(&msg), &sig).unwrap();
    });
    let sigs = bundle.log_leaves.len() + 1000 + 1 + 2 + 1700;
    println!();
    println!(
        "ceilings: decoding the record {:.1} ms (report generation = {:.2}x decode); {} signatures x {:.1} us = {:.1} ms one-core (verify_drill = {:.2}x)",
        ms(t_decode),
        ms(t_all) / ms(t_decode),
        sigs,
        t_sig.as_secs_f64() * 1e6,
        ms(t_sig) * sigs as f64,
        ms(t_verify) / (ms(t_sig) * sigs as f64)
    );
    println!(
        "1,000 POCs, one alert, 700 acks; record {} bytes, {} log leaves; HTML {} bytes, Markdown {} bytes, JSON {} bytes",
        bytes.len(),
        bundle.log_leaves.len(),
        report.to_html().len(),
        report.to_markdown().len(),
        report.to_json().len()
    );
    println!(
        "report generation {:.1} ms (compute {:.1}, markdown {:.1}, json {:.1}, html {:.1}); verify_drill {:.1} ms",
        ms(t_all),
        ms(t_compute),
        ms(t_md),
        ms(t_json),
        ms(t_html),
        ms(t_verify)
    );
    c.final_summary();
}
