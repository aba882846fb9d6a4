//! A contact verification round on a 35-state network in simulated time: the real relay
//! (its QUIC edge and SQLite store, started in-process on 127.0.0.1:0 with a manual clock so
//! days pass in milliseconds) and real clients (the `pocnet` library over QUIC). A scripted
//! mix of prompt, slow, by-the-deadline, late, silent and phone-only POCs; the report's
//! counts must be exact, and reminders must reach only the silent, each once.

use pocnet_client::app::{Client, Enrolment};
use pocnet_client::ops::rounds::Selection;
use pocnet_core::directory::{Author, Category, Contact, Publisher, Rank};
use pocnet_core::round::{Request as RoundRequest, Status};
use pocnet_crypto::{Identity, KdfParams};
use pocnet_relay::clock::ManualClock;
use pocnet_tests::PASS;
use pocnet_wire::{Request, Response};

const ORIGIN: &str = "mix.pocnet/directory";
/// The cheapest key-file cost the format accepts: 71 profiles are made and opened here, and
/// the passphrase cost is not what this test is about.
const CHEAP: KdfParams = KdfParams {
    m_cost_kib: 8 * 1024,
    t_cost: 1,
    p_cost: 1,
};
const H: u64 = 3_600_000;

fn contact(name: &str) -> Contact {
    Contact {
        name: name.into(),
        position: "Coordinator".into(),
        institution: "Agency".into(),
        email: "poc@example.gov".into(),
        phones: vec!["+1 555 0100".into()],
        languages: vec!["es".into()],
        time_zone: "America/Santiago".into(),
        working_hours: "Mon-Fri".into(),
    }
}

/// What each POC does, by its index.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Script {
    Prompt,     // answers 10 minutes in
    Slow,       // 5 hours in
    ByDeadline, // 50 hours in (deadline 72 h)
    Late,       // 80 hours in
    Silent,     // never
    Phone,      // answers by phone; the Secretariat records it
}

const SCRIPTS: [Script; 6] = [
    Script::Prompt,
    Script::Slow,
    Script::ByDeadline,
    Script::Late,
    Script::Silent,
    Script::Phone,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_35_state_round_in_simulated_time_counts_exactly() {
    let work = tempfile::tempdir().unwrap();
    let now = pocnet_client::now_ms();
    // The Secretariat, the authorities and 70 POCs, each POC with a real profile.
    let sec_home = work.path().join("secretariat");
    let (_, sec) = pocnet_client::profile::Profile::create(&sec_home, PASS.as_bytes(), CHEAP).unwrap();
    let mut log = Publisher::genesis(&sec, ORIGIN, now - 10_000, vec![], 0).unwrap();
    let states: Vec<&str> = pocnet_core::iso3166::ASSIGNED
        .iter()
        .map(|(c, _)| *c)
        .take(35)
        .collect();
    let mut pocs: Vec<(std::path::PathBuf, String, Script)> = Vec::new();
    let authorities: Vec<Identity> = states
        .iter()
        .map(|_| Identity::generate(&mut pocnet_crypto::os_rng(), now / 1000, 86_400 * 365).unwrap())
        .collect();
    let s_author = Author::new(&sec, ORIGIN);
    for (st, a) in states.iter().zip(&authorities) {
        log.push(
            &s_author
                .authority_enrol(now - 9_000, st, a.public_key(), st, "MFA")
                .unwrap(),
        )
        .unwrap();
    }
    for (i, (st, a)) in states.iter().zip(&authorities).enumerate() {
        for (j, rank) in [Rank::Primary, Rank::Alternate].into_iter().enumerate() {
            let n = i * 2 + j;
            let home = work.path().join(format!("poc{n}"));
            let (_, id) = pocnet_client::profile::Profile::create(&home, PASS.as_bytes(), CHEAP).unwrap();
            let nom = Author::new(a, ORIGIN)
                .nominate(
                    now - 8_000,
                    st,
                    Category::CyberPolicy,
                    rank,
                    contact(&format!("POC {n}")),
                    &id.public(),
                )
                .unwrap();
            log.push(&s_author.approve(now - 7_000, &nom, &id.public(), now - 7_000).unwrap())
                .unwrap();
            let handle = format!("{st}.{}", if j == 0 { "primary" } else { "alternate" });
            pocs.push((home, handle, SCRIPTS[n % SCRIPTS.len()]));
        }
    }
    // The relay, on a clock the test moves.
    let vkey = pocnet_core::directory::vkey(ORIGIN, sec.public_key());
    let data = work.path().join("relay");
    let relay_id = pocnet_relay::admin::init(&data, b"relay pass", &vkey).unwrap();
    let fp = relay_id.fingerprint().to_hex();
    let mut cfg = pocnet_relay::Config::load(&data, &[]).unwrap();
    cfg.listen = "127.0.0.1:0".into();
    cfg.rate_per_sec = 10_000.0;
    cfg.rate_burst = 10_000.0;
    cfg.request_rate_per_sec = 10_000.0;
    cfg.request_burst = 10_000.0;
    let clock = ManualClock::new(now);
    let store = pocnet_relay::store::SqliteStore::open(&data.join("relay.db"), 64, 10_000, None).unwrap();
    let running = pocnet_relay::server::start_with(data.join("blobs"), store, clock.clone(), cfg, relay_id)
        .await
        .unwrap();
    let addr = running.addr.to_string();
    let pin = pocnet_crypto::Fingerprint::parse(&fp).unwrap();
    // Publish the directory: the genesis alone first (a key the log does not list yet may
    // send only a small first frame), then the rest as the listed Secretariat.
    let genesis = Publisher::resume(ORIGIN, *sec.public_key(), log.leaves()[..1].to_vec()).unwrap();
    for (leaves, note) in [
        (log.leaves()[..1].to_vec(), genesis.checkpoint(&sec).to_text()),
        (log.leaves()[1..].to_vec(), log.checkpoint(&sec).to_text()),
    ] {
        let s = pocnet_client::net::Session::connect(&sec, &addr, pin).await.unwrap();
        let r = s
            .request(&Request::LogAppend {
                leaves,
                checkpoint: note,
            })
            .await
            .unwrap();
        assert_eq!(r, Response::Done);
        s.close().await;
    }
    let mut secretariat = Client::open(&sec_home, PASS.as_bytes()).unwrap();
    secretariat.enrol(&addr, &fp, Some(&vkey)).await.unwrap();
    let mut clients = Vec::new();
    for (home, handle, script) in &pocs {
        let mut c = Client::open(home, PASS.as_bytes()).unwrap();
        match c.enrol(&addr, &fp, Some(&vkey)).await.unwrap() {
            Enrolment::Listed { handle: h } => assert_eq!(&h, handle),
            other => panic!("{handle} not listed: {other:?}"),
        }
        clients.push((c, handle.clone(), *script));
    }

    // The round: deadline in 72 h, reminders at 36 h and 64.8 h.
    let s = secretariat.connect().await.unwrap();
    let started = secretariat
        .round_start(
            &s,
            &Selection::default(),
            now + 72 * H,
            RoundRequest::ConfirmDetails,
            &[0.5, 0.9],
        )
        .await
        .unwrap();
    s.close().await;
    assert_eq!(started.targets, 70);
    assert_eq!(started.reminders, 140);

    // Days pass; each POC fetches its messages and answers at its scripted time.
    let mut received = vec![0usize; clients.len()];
    for (at, who) in [
        (10 * 60_000, Script::Prompt),
        (5 * H, Script::Slow),
        (50 * H, Script::ByDeadline),
        (80 * H, Script::Late),
    ] {
        clock.set(now + at);
        for (i, (c, _, script)) in clients.iter().enumerate() {
            if *script != who {
                continue;
            }
            let s = c.connect().await.unwrap();
            received[i] += c.sync(&s, false, None, |_, _| {}).await.unwrap().new_messages;
            c.round_answer(&s, None, None, "on duty").await.unwrap();
            s.close().await;
        }
    }
    // Everyone fetches at 100 h: the silent and phone-only got both reminders, nobody else any.
    clock.set(now + 100 * H);
    for (i, (c, handle, script)) in clients.iter().enumerate() {
        let s = c.connect().await.unwrap();
        received[i] += c.sync(&s, false, None, |_, _| {}).await.unwrap().new_messages;
        s.close().await;
        let expected = match script {
            Script::Silent | Script::Phone => 3, // the challenge and two reminders
            Script::Late => 3,                   // answered after both reminders were due
            Script::ByDeadline => 2,             // answered after the first reminder only
            Script::Prompt | Script::Slow => 1,  // the challenge only
        };
        assert_eq!(received[i], expected, "{handle} ({script:?})");
    }
    // The Secretariat records the phone answers and fetches everything.
    let round = started.round.clone();
    for (_, handle, script) in &clients {
        if *script == Script::Phone {
            secretariat
                .round_outcome(&round, handle, "phone", "called back")
                .unwrap();
        }
    }
    let s = secretariat.connect().await.unwrap();
    secretariat.sync(&s, false, None, |_, _| {}).await.unwrap();
    s.close().await;
    let report = secretariat.round_report_at(&round, now + 100 * H).unwrap();
    let count = |script: Script| clients.iter().filter(|(_, _, s)| *s == script).count() as u32;
    assert_eq!(report.count(Status::Within1h), count(Script::Prompt));
    assert_eq!(report.count(Status::Within24h), count(Script::Slow));
    assert_eq!(report.count(Status::ByDeadline), count(Script::ByDeadline));
    assert_eq!(report.count(Status::Late), count(Script::Late));
    assert_eq!(report.count(Status::Never), count(Script::Silent));
    assert_eq!(report.count(Status::Outside), count(Script::Phone));
    for p in &report.pocs {
        let script = clients.iter().find(|(_, h, _)| *h == p.handle).unwrap().2;
        let reminders = match script {
            Script::Silent | Script::Phone | Script::Late => 2,
            Script::ByDeadline => 1,
            Script::Prompt | Script::Slow => 0,
        };
        assert_eq!(p.reminders_released, reminders, "{}", p.handle);
    }
    // The bundle re-verifies to the same figures.
    let bundle = secretariat
        .round_bundle_at(&round, now + 100 * H)
        .unwrap()
        .encode()
        .unwrap();
    let (_, again) = pocnet_core::round::verify_bundle(&bundle).unwrap();
    assert_eq!(again.pocs.len(), 70);
    for s in [
        Status::Within1h,
        Status::Within24h,
        Status::ByDeadline,
        Status::Late,
        Status::Never,
        Status::Outside,
    ] {
        assert_eq!(again.count(s), report.count(s));
    }
    running.shutdown().await;
}
