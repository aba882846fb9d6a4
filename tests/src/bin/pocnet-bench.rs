//! `pocnet-bench`: load on a real relay over loopback QUIC, beside ceilings measured in
//! the same run. Bounded in count and time; targets 127.0.0.1 only.
//!
//! `cargo run --release -p pocnet-tests --bin pocnet-bench -- [--publishers P] [--subscribers S]
//!  [--messages N] [--inflight K] [--json]`
//!
//! Publisher i sends to subscriber i mod S, each on one pipelined session stream with K
//! sends in flight; subscribers watch and acknowledge in batches. Envelopes: 1 KiB body,
//! X25519 suite, one recipient, sealed before timing. Reports (1) raw SQLite and the
//! store's group commit for 1 KiB envelopes; (2) bare quinn with the same TLS and tagged
//! framing on one pipelined stream per connection, no relay logic; (3) the relay's own
//! crypto per envelope; (4) the relay: accepted durably and delivered per second,
//! send→deliver latency under that full load and at half of it. `--json` prints one line
//! in the shape `scripts/bench-peers` reads.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pocnet_crypto::{HeaderFields, Identity, Suite};
use pocnet_relay::store::{NewEnvelope, Queue, SqliteStore};
use pocnet_tests::bench::{bare_quinn, enrolled, percentile, sqlite_ceiling, unthrottled};
use pocnet_tests::probe::{Raw, Secretariat};
use pocnet_wire::{encode, Delivery, FrameDecoder, Request, Response, MAX_FRAME};
use tokio::sync::Semaphore;

const BODY: usize = 1024;

struct Args {
    messages: usize,
    publishers: usize,
    subscribers: usize,
    inflight: usize,
    json: bool,
}

fn args() -> Args {
    let mut a = Args {
        messages: 20_000,
        publishers: 4,
        subscribers: 4,
        inflight: 64,
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
        let n: usize = v.get(i + 1).and_then(|x| x.parse().ok()).expect("numeric argument");
        match v[i].as_str() {
            "--messages" => a.messages = n,
            "--pairs" => (a.publishers, a.subscribers) = (n, n),
            "--publishers" => a.publishers = n,
            "--subscribers" => a.subscribers = n,
            "--inflight" => a.inflight = n,
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(a.publishers >= 1 && a.subscribers >= 1 && a.messages >= a.publishers);
    a
}

fn now_ms() -> u64 {
    pocnet_client::now_ms()
}

async fn store_ceiling(n: usize, concurrency: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db"), 1024, u64::MAX / 2, None).unwrap();
    let sem = Arc::new(Semaphore::new(concurrency));
    let bytes: Arc<[u8]> = vec![7; BODY].into();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (store, bytes) = (store.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            store
                .accept(NewEnvelope {
                    sender: [1; 32],
                    message_id: id,
                    envelope_hash: [0; 32],
                    bytes,
                    recipients: vec![[2; 32]],
                    now_ms: 0,
                    expires_at_ms: u64::MAX / 4,
                })
                .await
                .unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

struct Net {
    publishers: Vec<Arc<Raw>>,
    subscribers: Vec<Arc<Raw>>,
    arrivals: Arc<Mutex<HashMap<[u8; 16], Instant>>>,
    delivered: Arc<AtomicUsize>,
}

async fn setup(
    secretariat: &mut Secretariat,
    addr: std::net::SocketAddr,
    fp: pocnet_crypto::Fingerprint,
    a: &Args,
) -> Net {
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut keys = enrolled(secretariat, addr, fp, a.publishers + a.subscribers).await;
    let subs = keys.split_off(a.publishers);
    let publishers: Vec<Arc<Raw>> = keys.into_iter().map(Arc::new).collect();
    let mut subscribers = Vec::new();
    for s in subs {
        let s = Arc::new(s);
        let (arrivals, delivered, s2) = (arrivals.clone(), delivered.clone(), s.clone());
        // Watch and acknowledge in batches.
        let (mut tx, mut rx) = s.conn.open_bi().await.unwrap();
        tx.write_all(&encode(&Request::Watch { follow: true })).await.unwrap();
        tokio::spawn(async move {
            let mut dec = FrameDecoder::new(MAX_FRAME);
            let mut pending = Vec::new();
            while let Ok(Some(c)) = rx.read_chunk(256 * 1024, true).await {
                dec.push(&c.bytes);
                let now = Instant::now();
                let mut got = Vec::new();
                while let Some(resp) = dec.decode_next::<Response>().unwrap() {
                    if let Response::Deliver(
                        Delivery::Envelope { seq, envelope } | Delivery::Stored { seq, envelope, .. },
                    ) = resp
                    {
                        let mut id = [0u8; 16];
                        id.copy_from_slice(&envelope[7..23]);
                        got.push(id);
                        pending.push(seq);
                    }
                }
                if !got.is_empty() {
                    let mut a = arrivals.lock().unwrap();
                    for id in &got {
                        a.insert(*id, now);
                    }
                    delivered.fetch_add(got.len(), Ordering::Relaxed);
                }
                if pending.len() >= 128 {
                    let seqs = std::mem::take(&mut pending);
                    let p = s2.pipe.clone();
                    tokio::spawn(async move { p.call(Request::Ack { seqs }).await });
                }
            }
        });
        subscribers.push(s);
    }
    Net {
        publishers,
        subscribers,
        arrivals,
        delivered,
    }
}

fn seal_all(sender: &Identity, rcpt: &pocnet_crypto::PublicIdentity, n: usize) -> Vec<([u8; 16], Vec<u8>)> {
    let fields = HeaderFields {
        suite: Suite::X25519,
        ..HeaderFields::message(now_ms())
    };
    (0..n)
        .map(|_| {
            let s = pocnet_crypto::seal(
                &mut pocnet_crypto::os_rng(),
                sender,
                std::slice::from_ref(rcpt),
                &fields,
                &[0x42; BODY],
            )
            .unwrap();
            (s.message_id, s.bytes)
        })
        .collect()
}

type SentAt = HashMap<[u8; 16], Instant>;

async fn blast(
    net: &Net,
    batches: Vec<Vec<([u8; 16], Vec<u8>)>>,
    inflight: usize,
    interval: Option<Duration>,
) -> (f64, SentAt) {
    let sent_at = Arc::new(Mutex::new(HashMap::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (s, batch) in net.publishers.iter().cloned().zip(batches) {
        let sent_at = sent_at.clone();
        tasks.push(tokio::spawn(async move {
            let sem = Arc::new(Semaphore::new(inflight));
            let mut hs = Vec::new();
            let mut tick = interval.map(tokio::time::interval);
            for (id, env) in batch {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let p = sem.clone().acquire_owned().await.unwrap();
                let (pipe, sent_at) = (s.pipe.clone(), sent_at.clone());
                hs.push(tokio::spawn(async move {
                    sent_at.lock().unwrap().insert(id, Instant::now());
                    match pipe.call(Request::Send { envelope: env }).await {
                        Ok(Response::Accepted { .. }) => {}
                        other => panic!("send failed: {other:?}"),
                    }
                    drop(p);
                }));
            }
            for h in hs {
                h.await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let map = sent_at.lock().unwrap().clone();
    (elapsed, map)
}

async fn wait_delivered(net: &Net, target: usize, limit: Duration) -> Instant {
    let start = Instant::now();
    while net.delivered.load(Ordering::Relaxed) < target {
        assert!(
            start.elapsed() < limit,
            "deliveries stalled at {}",
            net.delivered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

fn latencies(net: &Net, sent_at: &SentAt) -> (f64, f64) {
    let arrivals = net.arrivals.lock().unwrap();
    let mut lat: Vec<f64> = sent_at
        .iter()
        .filter_map(|(id, t)| arrivals.get(id).map(|a| (*a - *t).as_secs_f64() * 1000.0))
        .collect();
    (percentile(&mut lat, 0.50), percentile(&mut lat, 0.99))
}

#[tokio::main]
async fn main() {
    let a = args();
    let conc = a.publishers * a.inflight;
    eprintln!("ceilings …");
    let sqlite = tokio::task::spawn_blocking(move || sqlite_ceiling(20_000))
        .await
        .unwrap();
    let store = store_ceiling(a.messages.min(50_000), conc).await;

    eprintln!("relay …");
    let dir = tempfile::tempdir().unwrap();
    let mut secretariat = Secretariat::new();
    let relay_id = pocnet_relay::admin::init(dir.path(), b"bench", &secretariat.vkey()).unwrap();
    let fp = relay_id.fingerprint();
    let cfg = unthrottled(secretariat.vkey());
    let running = pocnet_relay::start(dir.path().to_path_buf(), cfg, relay_id)
        .await
        .unwrap();
    let net = setup(&mut secretariat, running.addr, fp, &a).await;
    let per = a.messages / a.publishers;
    // Pre-seal (not timed).
    let mut batches = Vec::new();
    let mut latency_batches = Vec::new();
    let lat_n = (per / 4).max(1);
    for (i, p) in net.publishers.iter().enumerate() {
        let rp = net.subscribers[i % a.subscribers].id.public();
        let sid = Identity::from_secret_bytes(&p.id.to_secret_bytes()).unwrap();
        let mut all = tokio::task::spawn_blocking(move || seal_all(&sid, &rp, per + lat_n))
            .await
            .unwrap();
        latency_batches.push(all.split_off(per));
        batches.push(all);
    }
    let env_len = batches[0][0].1.len();
    // The relay's per-envelope crypto on one core: verify_strict of the sender's signature
    // and the stanza check (the acceptance signature is one per commit group now).
    let crypto = {
        let sender_key = *net.publishers[0].id.public_key();
        let sample: Vec<&Vec<u8>> = batches[0].iter().take(2000).map(|(_, e)| e).collect();
        let start = Instant::now();
        for e in &sample {
            std::hint::black_box(pocnet_crypto::verify_from(e, &sender_key).unwrap());
        }
        sample.len() as f64 / start.elapsed().as_secs_f64()
    };
    let quinn = bare_quinn(a.messages.min(100_000), a.publishers, a.inflight, env_len).await;

    let total = per * a.publishers;
    eprintln!("load …");
    let t0 = Instant::now();
    let (send_secs, sent_full) = blast(&net, batches, a.inflight, None).await;
    let done = wait_delivered(&net, total, Duration::from_secs(300)).await;
    let accepted = total as f64 / send_secs;
    let delivered = total as f64 / (done - t0).as_secs_f64();
    let (p50_full, p99_full) = latencies(&net, &sent_full);

    // Half load: pace each publisher at half the measured delivered rate.
    let half = delivered / 2.0;
    let interval = Duration::from_secs_f64(a.publishers as f64 / half);
    let before = net.delivered.load(Ordering::Relaxed);
    let (_, sent_half) = blast(&net, latency_batches, a.inflight, Some(interval)).await;
    wait_delivered(&net, before + lat_n * a.publishers, Duration::from_secs(300)).await;
    let (p50, p99) = latencies(&net, &sent_half);
    running.shutdown().await;

    if a.json {
        println!(
            "{{\"system\":\"pocnet\",\"workload\":\"{}x{}\",\"messages\":{total},\"accepted_per_sec\":{accepted:.0},\"delivered_per_sec\":{delivered:.0},\"p50_ms\":{p50_full:.3},\"p99_ms\":{p99_full:.3},\"half_load_p50_ms\":{p50:.3},\"half_load_p99_ms\":{p99:.3},\"store_ceiling_per_sec\":{store:.0},\"bare_quinn_per_sec\":{quinn:.0}}}",
            a.publishers, a.subscribers
        );
        return;
    }
    let wl = format!("{} → {}", a.publishers, a.subscribers);
    println!("| measure | value | ceiling (same run) | ratio |");
    println!("|---|---|---|---|");
    println!("| raw SQLite WAL, 100 × 1 KiB rows per commit | {sqlite:.0} rows/s | | |");
    println!(
        "| store group commit, 1 KiB envelopes ({conc} concurrent) | {store:.0} /s | {sqlite:.0} raw SQLite | {:.2} |",
        store / sqlite
    );
    println!("| bare quinn, same TLS + tagged frames, one pipelined stream per connection ({env_len} B) | {quinn:.0} /s | | |");
    println!("| relay crypto per envelope (verify_strict + stanza check), one core | {crypto:.0} /s | | |");
    println!("| relay: accepted durably ({total} msgs, {wl}, {} in flight each) | {accepted:.0} /s | {store:.0} store | {:.2} |", a.inflight, accepted / store);
    println!(
        "| relay: accepted and delivered | {delivered:.0} /s | {store:.0} store | {:.2} |",
        delivered / store
    );
    println!(
        "| relay vs bare quinn (delivered) | | {quinn:.0} | {:.2} |",
        delivered / quinn
    );
    println!(
        "| relay delivered vs 2 × crypto ceiling (2 cores) | | {:.0} | {:.2} |",
        2.0 * crypto,
        delivered / (2.0 * crypto)
    );
    println!("| send→deliver latency at full load | p50 {p50_full:.2} ms, p99 {p99_full:.2} ms | | |");
    println!("| send→deliver latency at {half:.0}/s (half load) | p50 {p50:.2} ms, p99 {p99:.2} ms | | |");
}
