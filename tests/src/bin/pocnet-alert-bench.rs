//! `pocnet-alert-bench`: escalation alerts (issue 16) on a real relay over loopback QUIC,
//! every figure beside a ceiling measured in the same run. Bounded in count and time;
//! targets 127.0.0.1 only.
//!
//! `cargo run --release -p pocnet-tests --bin pocnet-alert-bench -- [--pocs 1000]
//!  [--window-ms 2000] [--repeats 1] [--ack-states 100] [--ack-window-ms 15000]
//!  [--suite xwing|x25519] [--rounds 3] [--json]`
//!
//! The in-process relay's directory lists `--pocs` POCs (plus the sender), six to a state:
//! the cyber and foreign-affairs contacts at primary, alternate and further1, so each state
//! of the plan has three ranks of two keys. Every POC is connected and watching (and
//! acknowledging its queue) before anything is measured.
//!
//! 1. Release → delivery. One alert sealed once to every POC (X-Wing by default), window
//!    `--window-ms`, `--repeats` repeats: rank 0 goes out at acceptance (the send fan-out),
//!    rank 1 at +W, rank 2 at +2W, and the repeat to every POC at once at +3W. For each
//!    wave: due → released (the relay's 1 s release tick) and released → delivered (the
//!    `released_ms` the relay states in the delivery, against the client's clock on the
//!    same machine). Ceiling: bare quinn with the relay's TLS and framing pushing a frame
//!    of the same size to as many watching connections at once (no store, no trimming, no
//!    signing).
//! 2. Acknowledgement → cancellation. A second alert with a long window; a primary of each
//!    of `--ack-states` states sends a `Delivered` receipt (the same path, nothing to
//!    cancel: the ceiling) and then its `Acknowledged` receipt, one at a time; each is timed
//!    until `Done`, which the relay answers after the commit that cancelled the state's
//!    held steps. Then `EscalationStatus` must show every later step of those states
//!    cancelled by that primary, none of the other states', and when the window ends the
//!    alternates of the other states, and only theirs, get the alert. Further ceilings: a
//!    bare quinn round trip of the same request and one durable SQLite commit.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pocnet_core::alert::{Plan, StatePlan};
use pocnet_core::directory::Rank;
use pocnet_crypto::{ContentType, HeaderFields, Identity, Receipt, ReceiptKind, Sealed, Suite};
use pocnet_tests::bench::{
    bare_fanout, bare_round_trips, delivery_frame, dist, enrol, sqlite_commit_ms, unthrottled, Dist,
};
use pocnet_tests::probe::{identity, Raw, Secretariat};
use pocnet_wire::{encode, Delivery, FrameDecoder, Release, Request, Response, StepReport, MAX_FRAME};

/// POCs listed per state: cyber and foreign affairs, each primary, alternate, further1.
const PER_STATE: usize = 6;

struct Args {
    pocs: usize,
    window_ms: u64,
    repeats: u8,
    ack_states: usize,
    ack_window_ms: u64,
    suite: Suite,
    rounds: usize,
    json: bool,
}

fn args() -> Args {
    let mut a = Args {
        pocs: 1000,
        window_ms: 2000,
        repeats: 1,
        ack_states: 100,
        ack_window_ms: 15_000,
        suite: Suite::XWing,
        rounds: 3,
        json: false,
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        if v[i] == "--json" {
            a.json = true;
            i += 1;
            continue;
        }
        let val = v.get(i + 1).unwrap_or_else(|| panic!("{} needs a value", v[i]));
        let n = || -> u64 { val.parse().unwrap_or_else(|_| panic!("{} takes a number", v[i])) };
        match v[i].as_str() {
            "--pocs" => a.pocs = n() as usize,
            "--window-ms" => a.window_ms = n(),
            "--repeats" => a.repeats = n() as u8,
            "--ack-states" => a.ack_states = n() as usize,
            "--ack-window-ms" => a.ack_window_ms = n(),
            "--rounds" => a.rounds = n() as usize,
            "--suite" => {
                a.suite = match val.as_str() {
                    "xwing" => Suite::XWing,
                    "x25519" => Suite::X25519,
                    other => panic!("unknown suite {other}: xwing or x25519"),
                }
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(a.pocs >= PER_STATE, "at least {PER_STATE} POCs");
    assert!(a.window_ms >= 1000, "the shortest window a plan allows is 1000 ms");
    assert!(
        a.ack_states <= a.pocs / PER_STATE,
        "--ack-states is at most the number of full states ({})",
        a.pocs / PER_STATE
    );
    a
}

/// The wall clock in ms, with sub-ms precision (the relay stamps whole ms by the same clock).
fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// One alert delivery seen by a client.
#[derive(Clone, Copy, Debug)]
struct Got {
    client: usize,
    alert: [u8; 16],
    arrival_ms: f64,
    release: Release,
}

/// The message id of an envelope (header version and suite, then the id).
fn message_id(envelope: &[u8]) -> [u8; 16] {
    envelope[7..23].try_into().expect("envelope too short")
}

/// What the watchers have seen.
#[derive(Clone, Default)]
struct Seen {
    got: Arc<Mutex<Vec<Got>>>,
    caught_up: Arc<AtomicUsize>,
}

impl Seen {
    fn of(&self, alert: &[u8; 16]) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| &g.alert == alert)
            .copied()
            .collect()
    }
    /// Waits until `pred` holds of the alert's deliveries; panics after `limit`.
    async fn wait(&self, alert: &[u8; 16], what: &str, limit: Duration, pred: impl Fn(&[Got]) -> bool) {
        let t0 = Instant::now();
        loop {
            let g = self.of(alert);
            if pred(&g) {
                return;
            }
            assert!(t0.elapsed() < limit, "{what}: stalled at {} deliveries", g.len());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Client `i` watches (follow) and acknowledges every item as it comes, noting each alert
/// delivery with its arrival time.
async fn watch(i: usize, raw: Arc<Raw>, seen: Seen) {
    let (mut tx, mut rx) = raw.conn.open_bi().await.unwrap();
    tx.write_all(&encode(&Request::Watch { follow: true })).await.unwrap();
    tokio::spawn(async move {
        let _keep = tx;
        let mut dec = FrameDecoder::new(MAX_FRAME);
        while let Ok(Some(c)) = rx.read_chunk(256 * 1024, true).await {
            let now = wall_ms();
            dec.push(&c.bytes);
            let mut seqs = Vec::new();
            while let Some(resp) = dec.decode_next::<Response>().unwrap() {
                match resp {
                    Response::CaughtUp => {
                        seen.caught_up.fetch_add(1, Ordering::SeqCst);
                    }
                    Response::Deliver(d) => {
                        if let Delivery::Escalated { envelope, release, .. } = &d {
                            seen.got.lock().unwrap().push(Got {
                                client: i,
                                alert: message_id(envelope),
                                arrival_ms: now,
                                release: *release,
                            });
                        }
                        seqs.push(d.seq());
                    }
                    other => panic!("watcher {i}: unexpected {other:?}"),
                }
            }
            if !seqs.is_empty() {
                let p = raw.pipe.clone();
                tokio::spawn(async move { p.call(Request::Ack { seqs }).await });
            }
        }
    });
}

/// The plan's states: for each state, its ranks as indices into the listed keys.
fn plan_shape(secretariat: &Secretariat, pocs: usize) -> Vec<(&'static str, Vec<Vec<usize>>)> {
    let mut out: Vec<(&'static str, Vec<Vec<usize>>)> = Vec::new();
    for i in 0..pocs {
        let (state, _, rank) = secretariat.place(i);
        let r = match rank {
            Rank::Primary => 0,
            Rank::Alternate => 1,
            Rank::Further(k) => k as usize + 1,
        };
        if out.last().map(|(s, _)| *s) != Some(state) {
            out.push((state, Vec::new()));
        }
        let ranks = &mut out.last_mut().unwrap().1;
        if ranks.len() <= r {
            ranks.resize(r + 1, Vec::new());
        }
        ranks[r].push(i);
    }
    out
}

fn seal_alert(sender: &Identity, to: &[pocnet_crypto::PublicIdentity], suite: Suite, body: &[u8]) -> Sealed {
    let fields = HeaderFields {
        suite,
        content_type: ContentType::Alert,
        ..HeaderFields::message(pocnet_client::now_ms())
    };
    pocnet_crypto::seal(&mut pocnet_crypto::os_rng(), sender, to, &fields, body).expect("seal the alert")
}

fn signed_plan(
    alert: &Sealed,
    sender: &Identity,
    window_ms: u64,
    repeats: u8,
    shape: &[(&'static str, Vec<Vec<usize>>)],
    keys: &[[u8; 32]],
) -> Vec<u8> {
    let states = shape
        .iter()
        .map(|(state, ranks)| StatePlan {
            state: state.to_string(),
            ranks: ranks.iter().map(|r| r.iter().map(|&i| keys[i]).collect()).collect(),
        })
        .collect();
    Plan::escalate(alert.message_id, alert.envelope_hash, window_ms, repeats, states)
        .sign(sender)
        .expect("sign the plan")
        .into_bytes()
}

/// One wave of releases (steps due together).
struct Wave {
    /// Due, in windows after acceptance.
    at_w: u64,
    /// Repeat (0 = a rank's own release) and the ranks in it.
    repeat: u8,
    ranks: Vec<u8>,
    /// Due → released, ms (max over the wave).
    tick_lag_ms: u64,
    /// Released → delivered.
    lat: Dist,
}

fn waves(got: &[Got], accepted_ms: u64, window_ms: u64) -> Vec<Wave> {
    let mut by_due: BTreeMap<u64, Vec<&Got>> = BTreeMap::new();
    for g in got {
        by_due.entry(g.release.due_ms).or_default().push(g);
    }
    by_due
        .into_iter()
        .map(|(due, gs)| {
            let mut ranks: Vec<u8> = gs.iter().map(|g| g.release.rank).collect();
            ranks.sort();
            ranks.dedup();
            Wave {
                at_w: (due - accepted_ms) / window_ms,
                repeat: gs[0].release.repeat,
                ranks,
                tick_lag_ms: gs
                    .iter()
                    .map(|g| g.release.released_ms - g.release.due_ms)
                    .max()
                    .unwrap(),
                lat: dist(gs.iter().map(|g| g.arrival_ms - g.release.released_ms as f64).collect()),
            }
        })
        .collect()
}

/// The relay's store alone: `alert` stored with one held step per key (every key watched),
/// all due together, then released. Ms from the release call until its commit returned
/// and every watcher's channel held its item (the first stretch of release → delivery).
async fn store_release_ms(
    alert: &Sealed,
    sender: [u8; 32],
    shape: &[(&'static str, Vec<Vec<usize>>)],
    keys: &[[u8; 32]],
) -> f64 {
    use pocnet_relay::store::{NewEnvelope, NewEscalation, Notifier, PlannedStep, Queue, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db"), 1024, u64::MAX / 2, None).unwrap();
    let now = pocnet_client::now_ms();
    let mut steps = Vec::new();
    let mut subs = Vec::new();
    for (_, ranks) in shape {
        let signers: Vec<[u8; 32]> = ranks.iter().flatten().map(|&i| keys[i]).collect();
        for (r, rank) in ranks.iter().enumerate() {
            for &i in rank {
                subs.push(store.subscribe(keys[i], 4).unwrap());
                steps.push(PlannedStep {
                    recipient: keys[i],
                    rank: r as u8,
                    repeat: 0,
                    due_ms: now + 1000,
                    cancel_signers: signers.clone(),
                });
            }
        }
    }
    store
        .escalate(
            NewEnvelope {
                sender,
                message_id: alert.message_id,
                envelope_hash: alert.envelope_hash,
                bytes: alert.bytes.clone().into(),
                recipients: steps.iter().map(|s| s.recipient).collect(),
                now_ms: now,
                expires_at_ms: now + 3_600_000,
            },
            NewEscalation { plan: vec![1], steps },
        )
        .await
        .unwrap();
    let t = Instant::now();
    let n = store.release(now + 1000).await.unwrap();
    assert_eq!(n as usize, subs.len());
    for s in &mut subs {
        s.recv().await.unwrap();
    }
    t.elapsed().as_secs_f64() * 1000.0
}

async fn status(sender: &Raw, alert: [u8; 16]) -> (u64, Vec<StepReport>) {
    match sender.pipe.call(Request::EscalationStatus { alert }).await {
        Ok(Response::Escalation { accepted_ms, steps, .. }) => (accepted_ms, steps),
        other => panic!("escalation status: {other:?}"),
    }
}

async fn escalate(sender: &Raw, alert: &Sealed, plan: Vec<u8>) -> f64 {
    let t = Instant::now();
    match sender
        .pipe
        .call(Request::Escalate {
            envelope: alert.bytes.clone(),
            plan,
        })
        .await
    {
        Ok(Response::Accepted { .. }) => t.elapsed().as_secs_f64() * 1000.0,
        other => panic!("escalate: {other:?}"),
    }
}

/// A `SendReceipt` of `kind` about `alert` by `signer` to `sender`, signed now.
fn receipt(signer: &Identity, kind: ReceiptKind, alert: &Sealed, sender: &Identity) -> Request {
    let r = Receipt::sign(
        signer,
        kind,
        alert.message_id,
        alert.envelope_hash,
        sender.public_key(),
        pocnet_client::now_ms(),
    );
    Request::SendReceipt {
        to: *sender.public_key().as_bytes(),
        receipt: r.as_bytes().to_vec(),
    }
}

async fn timed_done(raw: &Raw, req: Request) -> f64 {
    let t = Instant::now();
    match raw.pipe.call(req).await {
        Ok(Response::Done) => t.elapsed().as_secs_f64() * 1000.0,
        other => panic!("receipt: {other:?}"),
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let p = a.pocs;
    let w = a.window_ms;
    let secretariat = Secretariat::with_per_state(PER_STATE);
    let shape = plan_shape(&secretariat, p);
    let ranks = shape.iter().map(|(_, r)| r.len()).max().unwrap() as u64;

    // Keys (the last one is the sender, listed but in no plan) and both alerts, sealed
    // before anything is timed.
    eprintln!("sealing two alerts to {p} POCs …");
    let ids: Vec<Identity> = (0..=p).map(|_| identity()).collect();
    let keys: Vec<[u8; 32]> = ids.iter().map(|i| *i.public_key().as_bytes()).collect();
    let pubs: Vec<_> = ids[..p].iter().map(|i| i.public()).collect();
    let sender_id = Identity::from_secret_bytes(&ids[p].to_secret_bytes()).unwrap();
    let seal_t = Instant::now();
    let (alert1, alert2) = {
        let (s, pubs, suite) = (
            Identity::from_secret_bytes(&sender_id.to_secret_bytes()).unwrap(),
            pubs.clone(),
            a.suite,
        );
        tokio::task::spawn_blocking(move || {
            (
                seal_alert(&s, &pubs, suite, &[0x41; 1024]),
                seal_alert(&s, &pubs, suite, &[0x42; 1024]),
            )
        })
        .await
        .unwrap()
    };
    let seal_ms = seal_t.elapsed().as_secs_f64() * 1000.0 / 2.0;
    let plan1 = signed_plan(&alert1, &sender_id, w, a.repeats, &shape, &keys);
    let plan2 = signed_plan(&alert2, &sender_id, a.ack_window_ms, 0, &shape, &keys);
    let env_len = alert1.bytes.len();
    let trimmed_len = pocnet_crypto::trim_for_recipient(&alert1.bytes, &keys[0])
        .unwrap()
        .len();
    assert!(
        env_len as u64 <= pocnet_relay::Config::default().max_alert_bytes,
        "the alert envelope ({env_len} B) is over the relay's default max_alert_bytes"
    );

    // Ceilings, same run, same machine.
    eprintln!("ceilings …");
    let commit = dist(
        tokio::task::spawn_blocking(|| sqlite_commit_ms(200, 300))
            .await
            .unwrap(),
    );
    let ack_like = receipt(&ids[0], ReceiptKind::Acknowledged, &alert2, &sender_id);
    let rtt = dist(bare_round_trips(500, ack_like).await);
    let frame = delivery_frame(trimmed_len);
    let frame_len = frame.len();
    let fanout = dist(bare_fanout(p, frame, a.rounds, Duration::from_secs(60)).await);
    let store_release = store_release_ms(&alert1, keys[p], &shape, &keys).await;
    // The relay's own work per copy, on one core: trim the envelope to the recipient's
    // stanza and encode the delivery frame.
    let per_copy_ms = {
        let t = Instant::now();
        for (i, k) in keys[..p].iter().enumerate() {
            let env = pocnet_crypto::trim_for_recipient(&alert1.bytes, k).unwrap();
            std::hint::black_box(encode(&Response::Deliver(Delivery::Envelope {
                seq: i as u64,
                envelope: env,
            })));
        }
        t.elapsed().as_secs_f64() * 1000.0
    };
    // What the same fan-out would cost if each copy's header carried only its recipient's
    // entry of the signed recipient list (96 B each: key, key-record hash, stanza hash).
    let own_entry_len = trimmed_len - (p - 1) * 96;
    let small_frame = delivery_frame(own_entry_len);
    let small_frame_len = small_frame.len();
    let fanout_small = dist(bare_fanout(p, small_frame, a.rounds, Duration::from_secs(60)).await);

    // The relay, its directory and every POC watching.
    eprintln!("relay: listing and connecting {} keys …", p + 1);
    let dir = tempfile::tempdir().unwrap();
    let mut secretariat = secretariat;
    let relay_id = pocnet_relay::admin::init(dir.path(), b"alert-bench", &secretariat.vkey()).unwrap();
    let fp = relay_id.fingerprint();
    let mut cfg = unthrottled(secretariat.vkey());
    cfg.max_alert_bytes = pocnet_relay::Config::default().max_alert_bytes;
    let running = pocnet_relay::start(dir.path().to_path_buf(), cfg, relay_id)
        .await
        .unwrap();
    eprintln!("relay on {}", running.addr);
    let raws: Vec<Arc<Raw>> = enrol(&mut secretariat, running.addr, fp, ids)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let seen = Seen::default();
    for (i, r) in raws.iter().enumerate() {
        watch(i, r.clone(), seen.clone()).await;
    }
    let t0 = Instant::now();
    while seen.caught_up.load(Ordering::SeqCst) < raws.len() {
        assert!(t0.elapsed() < Duration::from_secs(60), "watchers never all caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sender = raws[p].clone();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. Release → delivery.
    eprintln!("alert 1: {} ranks, window {w} ms, {} repeat(s) …", ranks, a.repeats);
    let send_wall = wall_ms();
    let escalate1_ms = escalate(&sender, &alert1, plan1).await;
    let expected1 = p * (1 + a.repeats as usize);
    let limit1 = Duration::from_millis((ranks - 1 + a.repeats as u64) * w + 15_000);
    seen.wait(&alert1.message_id, "alert 1", limit1, |g| g.len() >= expected1)
        .await;
    let (accepted1, steps1) = status(&sender, alert1.message_id).await;
    let got1 = seen.of(&alert1.message_id);
    assert_eq!(got1.len(), expected1, "each step delivered once");
    assert!(steps1.iter().all(|s| s.released_ms.is_some()), "every step released");
    let waves1 = waves(&got1, accepted1, w);
    let send_fanout = dist(
        got1.iter()
            .filter(|g| g.release.due_ms == accepted1)
            .map(|g| g.arrival_ms - send_wall)
            .collect(),
    );
    let full = waves1.iter().max_by_key(|wv| wv.lat.n).unwrap();

    // 2. Acknowledgement → cancellation.
    eprintln!(
        "alert 2: window {} ms; {} states acknowledge …",
        a.ack_window_ms, a.ack_states
    );
    let escalate2_ms = escalate(&sender, &alert2, plan2).await;
    let rank0: usize = shape.iter().map(|(_, r)| r[0].len()).sum();
    seen.wait(&alert2.message_id, "alert 2 rank 0", Duration::from_secs(30), |g| {
        g.len() >= rank0
    })
    .await;
    let (accepted2, _) = status(&sender, alert2.message_id).await;
    let mut delivered_ms = Vec::new();
    let mut ack_ms = Vec::new();
    let acked: Vec<(usize, usize)> = (0..a.ack_states).map(|s| (s, shape[s].1[0][0])).collect();
    for &(_, primary) in &acked {
        let r = &raws[primary];
        let d = receipt(&r.id, ReceiptKind::Delivered, &alert2, &sender.id);
        let k = receipt(&r.id, ReceiptKind::Acknowledged, &alert2, &sender.id);
        delivered_ms.push(timed_done(r, d).await);
        ack_ms.push(timed_done(r, k).await);
    }
    let acks_done = pocnet_client::now_ms();
    assert!(
        acks_done + 500 < accepted2 + a.ack_window_ms,
        "the acknowledgements took longer than the window; rerun with a longer --ack-window-ms"
    );
    let (_, steps2) = status(&sender, alert2.message_id).await;
    let acked_states: HashSet<usize> = acked.iter().map(|(s, _)| *s).collect();
    let mut state_of: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    for (si, (_, r)) in shape.iter().enumerate() {
        for &i in r.iter().flatten() {
            state_of.insert(keys[i], si);
        }
    }
    let mut cancelled = 0;
    for s in &steps2 {
        let si = state_of[&s.recipient];
        if s.rank == 0 && s.repeat == 0 {
            continue;
        }
        if acked_states.contains(&si) {
            let primary = keys[shape[si].1[0][0]];
            assert!(
                s.cancelled_ms.is_some() && s.released_ms.is_none() && s.cancelled_by == Some(primary),
                "a step of acknowledged state {} not cancelled by its primary: {s:?}",
                shape[si].0
            );
            cancelled += 1;
        } else {
            assert!(
                s.cancelled_ms.is_none(),
                "a step of a state that did not acknowledge was cancelled: {s:?}"
            );
        }
    }
    // When the window ends, the other states' alternates (and only theirs) get the alert.
    let alternates_unacked: usize = shape
        .iter()
        .enumerate()
        .filter(|(si, (_, r))| !acked_states.contains(si) && r.len() > 1)
        .map(|(_, (_, r))| r[1].len())
        .sum();
    let due2 = accepted2 + a.ack_window_ms;
    let wait2 = Duration::from_millis(due2.saturating_sub(pocnet_client::now_ms()) + 15_000);
    seen.wait(&alert2.message_id, "alert 2 rank 1", wait2, |g| {
        g.iter().filter(|x| x.release.rank == 1).count() >= alternates_unacked
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got2 = seen.of(&alert2.message_id);
    let client_state = |c: usize| state_of.get(&keys[c]).copied();
    let alt2: Vec<&Got> = got2.iter().filter(|g| g.release.rank == 1).collect();
    assert_eq!(
        alt2.len(),
        alternates_unacked,
        "alternates of the other states, each once"
    );
    assert!(
        alt2.iter()
            .all(|g| !acked_states.contains(&client_state(g.client).unwrap())),
        "an alternate of a state that acknowledged got the alert"
    );
    let wave2 = waves(
        &alt2.iter().map(|g| **g).collect::<Vec<_>>(),
        accepted2,
        a.ack_window_ms,
    );
    running.shutdown().await;

    let ack = dist(ack_ms);
    let delivered = dist(delivered_ms);
    let suite = match a.suite {
        Suite::XWing => "xwing",
        Suite::X25519 => "x25519",
    };
    if a.json {
        let ws: Vec<String> = waves1
            .iter()
            .map(|wv| {
                format!(
                    "{{\"at_windows\":{},\"repeat\":{},\"tick_lag_ms\":{},\"release_to_delivery\":{}}}",
                    wv.at_w,
                    wv.repeat,
                    wv.tick_lag_ms,
                    wv.lat.json()
                )
            })
            .collect();
        println!(
            "{{\"pocs\":{p},\"suite\":\"{suite}\",\"envelope_bytes\":{env_len},\"delivery_frame_bytes\":{frame_len},\"escalate_ms\":{escalate1_ms:.3},\"send_fanout\":{},\"waves\":[{}],\"bare_fanout\":{},\"bare_fanout_own_entry_only\":{},\"store_release_ms\":{store_release:.3},\"trim_encode_all_ms\":{per_copy_ms:.3},\"ack\":{},\"delivered_receipt\":{},\"bare_round_trip\":{},\"sqlite_commit\":{},\"steps_cancelled\":{cancelled}}}",
            send_fanout.json(),
            ws.join(","),
            fanout.json(),
            fanout_small.json(),
            ack.json(),
            delivered.json(),
            rtt.json(),
            commit.json()
        );
        return;
    }
    println!(
        "{p} POCs in {} states ({} keys a state, {ranks} ranks), all online and watching; {suite} alert \
         envelope {env_len} B (sealed in {seal_ms:.0} ms), {trimmed_len} B as each recipient \
         gets it; window {w} ms, {} repeat(s).\n",
        shape.len(),
        PER_STATE,
        a.repeats
    );
    println!("| release → delivery | n | due → released | released → delivered | ceiling: bare quinn fan-out (same run) | p99 ratio |");
    println!("|---|---:|---|---|---|---:|");
    for wv in &waves1 {
        let what = if wv.at_w == 0 {
            "rank 0 at acceptance (send fan-out)".to_string()
        } else if wv.repeat == 0 {
            format!("rank {:?} at +{}W", wv.ranks, wv.at_w)
        } else {
            format!("repeat {} to every POC at +{}W", wv.repeat, wv.at_w)
        };
        println!(
            "| {what} | {} | {} ms | {} | {} | {:.2} |",
            wv.lat.n,
            wv.tick_lag_ms,
            wv.lat.md(),
            if wv.lat.n == p { fanout.md() } else { String::new() },
            wv.lat.p99 / fanout.p99
        );
    }
    for wv in &wave2 {
        println!(
            "| alert 2: alternates of states that did not acknowledge, at +W | {} | {} ms | {} | | {:.2} |",
            wv.lat.n,
            wv.tick_lag_ms,
            wv.lat.md(),
            wv.lat.p99 / fanout.p99
        );
    }
    println!();
    println!(
        "Largest wave: {} deliveries, released → delivered p99 {:.1} ms (target ≤ 250 ms: {}); bare quinn \
         pushing a {frame_len} B frame to {p} watching connections at once: {} over {} round(s): ratio {:.2}.",
        full.lat.n,
        full.lat.p99,
        if full.lat.p99 <= 250.0 { "met" } else { "not met" },
        fanout.md(),
        a.rounds,
        full.lat.p99 / fanout.p99
    );
    println!(
        "Same run, the relay's store alone releasing {p} watched held steps of this alert (one transaction, \
         commit included, every watcher's item handed over): {store_release:.1} ms."
    );
    println!(
        "Same run, trimming the envelope and encoding the delivery frame for each of the {p} recipients, one \
         core: {per_copy_ms:.1} ms in all."
    );
    println!(
        "Same run, bare quinn pushing a {small_frame_len} B frame (the copy's size if its header listed only \
         its own recipient) to {p} connections at once: {}.",
        fanout_small.md()
    );
    println!(
        "Escalate accepted (sender's round trip, {env_len} B envelope, {} steps stored): {escalate1_ms:.1} ms; \
         sender's Escalate → rank-0 delivery: {}. Alert 2: {escalate2_ms:.1} ms.\n",
        steps1.len(),
        send_fanout.md()
    );
    println!(
        "| acknowledgement → cancellation ({} states, one at a time) | value | ratio |",
        a.ack_states
    );
    println!("|---|---|---:|");
    println!(
        "| `Acknowledged` receipt → `Done` (the state's later steps cancelled in that commit) | {} | |",
        ack.md()
    );
    println!(
        "| ceiling: `Delivered` receipt → `Done` (same path, nothing to cancel) | {} | {:.2} (p50), {:.2} (p99) |",
        delivered.md(),
        ack.p50 / delivered.p50,
        ack.p99 / delivered.p99
    );
    println!(
        "| ceiling: bare quinn round trip of the same request | {} | |",
        rtt.md()
    );
    println!(
        "| ceiling: one durable SQLite commit (WAL, synchronous=FULL, 300 B row) | {} | |",
        commit.md()
    );
    println!(
        "| ceiling: bare round trip + durable commit (p50) | {:.1} ms | {:.2} |",
        rtt.p50 + commit.p50,
        ack.p50 / (rtt.p50 + commit.p50)
    );
    println!(
        "\nChecked: {cancelled} later steps of the {} acknowledged states cancelled, each by its primary, none \
         released; no step of the other states cancelled; at +W the {alternates_unacked} alternates of the \
         other states got the alert and no alternate of an acknowledged state did.",
        a.ack_states
    );
}
