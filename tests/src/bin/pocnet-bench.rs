//! `pocnet-bench`: load on a real relay over loopback QUIC, beside ceilings measured in
//! the same run. Bounded in count and time; targets 127.0.0.1 only.
//!
//! `cargo run --release -p pocnet-tests --bin pocnet-bench -- [--messages N] [--pairs P] [--inflight K]`
//!
//! Reports: (1) the store's group-commit rate for 1 KiB rows and raw SQLite at 100
//! rows per transaction; (2) bare quinn with the same TLS, framing and one stream per
//! message, no relay logic; (3) the relay: envelopes accepted durably and delivered per
//! second, then p50/p99 send→deliver latency at half that load.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pocnet_crypto::{HeaderFields, Identity, Suite};
use pocnet_relay::store::{NewEnvelope, StoreHandle};
use pocnet_wire::{Delivery, Request, Response};
use tokio::sync::Semaphore;

const BODY: usize = 1024;

struct Args {
    messages: usize,
    pairs: usize,
    inflight: usize,
}

fn args() -> Args {
    let mut a = Args {
        messages: 20_000,
        pairs: 4,
        inflight: 64,
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < v.len() {
        let n: usize = v[i + 1].parse().expect("numeric argument");
        match v[i].as_str() {
            "--messages" => a.messages = n,
            "--pairs" => a.pairs = n,
            "--inflight" => a.inflight = n,
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

fn now_ms() -> u64 {
    pocnet_client::now_ms()
}

async fn store_ceiling(n: usize, concurrency: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(&dir.path().join("s.db"), 1024, u64::MAX / 2).unwrap();
    let sem = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            store
                .accept(NewEnvelope {
                    sender: [1; 32],
                    message_id: id,
                    envelope_hash: [0; 32],
                    bytes: vec![7; BODY],
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

fn sqlite_ceiling(n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let c = pocnet_relay::store::open_db(&dir.path().join("raw.db")).unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
        .unwrap();
    let row = vec![7u8; BODY];
    let start = Instant::now();
    for chunk in 0..n / 100 {
        let tx = c.unchecked_transaction().unwrap();
        for _ in 0..100 {
            tx.execute("INSERT INTO t(b) VALUES (?1)", [&row]).unwrap();
        }
        tx.commit().unwrap();
        let _ = chunk;
    }
    (n / 100 * 100) as f64 / start.elapsed().as_secs_f64()
}

async fn bare_quinn(n: usize, conns: usize, inflight: usize, frame_len: usize) -> f64 {
    let server_id = Identity::generate(&mut pocnet_crypto::os_rng(), now_ms() / 1000, 86400).unwrap();
    let tls = pocnet_wire::tls::server_config(
        &server_id.signing_seed(),
        server_id.public_key().as_bytes(),
        Arc::new(|_: &pocnet_crypto::IdentityKey| true),
    )
    .unwrap();
    let mut scfg = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap(),
    ));
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(1024u32.into());
    scfg.transport_config(Arc::new(t));
    let ep = quinn::Endpoint::server(scfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap();
    let sep = ep.clone();
    tokio::spawn(async move {
        while let Some(inc) = sep.accept().await {
            tokio::spawn(async move {
                let conn = inc.await.unwrap();
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let mut len = [0u8; 4];
                        recv.read_exact(&mut len).await.unwrap();
                        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                        recv.read_exact(&mut body).await.unwrap();
                        send.write_all(&pocnet_wire::encode(&Response::Done)).await.unwrap();
                        let _ = send.finish();
                        let _ = send.stopped().await;
                    });
                }
            });
        }
    });
    let frame = pocnet_wire::encode(&Request::Send {
        envelope: vec![9; frame_len],
    });
    let frame = Arc::new(frame);
    let mut clients = Vec::new();
    for _ in 0..conns {
        let id = Identity::generate(&mut pocnet_crypto::os_rng(), now_ms() / 1000, 86400).unwrap();
        let tls =
            pocnet_wire::tls::client_config(&id.signing_seed(), id.public_key().as_bytes(), server_id.fingerprint())
                .unwrap();
        let mut ccfg = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
        ));
        ccfg.transport_config(Arc::new(quinn::TransportConfig::default()));
        let mut cep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        cep.set_default_client_config(ccfg);
        clients.push(cep.connect(addr, pocnet_wire::SERVER_NAME).unwrap().await.unwrap());
    }
    let start = Instant::now();
    let per = n / conns;
    let mut tasks = Vec::new();
    for conn in clients {
        let frame = frame.clone();
        tasks.push(tokio::spawn(async move {
            let sem = Arc::new(Semaphore::new(inflight));
            let mut hs = Vec::with_capacity(per);
            for _ in 0..per {
                let p = sem.clone().acquire_owned().await.unwrap();
                let (conn, frame) = (conn.clone(), frame.clone());
                hs.push(tokio::spawn(async move {
                    let (mut s, mut r) = conn.open_bi().await.unwrap();
                    s.write_all(&frame).await.unwrap();
                    s.finish().unwrap();
                    let _ = r.read_to_end(1 << 20).await.unwrap();
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
    (per * conns) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Net {
    senders: Vec<Arc<pocnet_client::net::Session>>,
    sender_ids: Vec<Identity>,
    recipients: Vec<Identity>,
    arrivals: Arc<Mutex<HashMap<[u8; 16], Instant>>>,
    delivered: Arc<std::sync::atomic::AtomicUsize>,
}

async fn setup(dir: &std::path::Path, addr: &str, fp: pocnet_crypto::Fingerprint, pairs: usize) -> Net {
    let mut senders = Vec::new();
    let mut sender_ids = Vec::new();
    let mut recipients = Vec::new();
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let states = [
        "AR", "BR", "CL", "CO", "CR", "DO", "EC", "GT", "GY", "MX", "NI", "PA", "PY", "PE", "TT", "US",
    ];
    for i in 0..pairs * 2 {
        let id = Identity::generate(&mut pocnet_crypto::os_rng(), now_ms() / 1000, 86400).unwrap();
        let code = pocnet_relay::admin::invite(
            dir,
            states[i % states.len()],
            ["primary", "alternate", "further"][i / states.len() % 3],
            "bench",
            3600,
        )
        .unwrap();
        let s = pocnet_client::net::Session::connect(&id, addr, fp).await.unwrap();
        match s
            .request(&Request::Enrol {
                invite: code,
                public_identity: id.public().to_bytes(),
            })
            .await
            .unwrap()
        {
            Response::Enrolled { .. } => {}
            other => panic!("{other:?}"),
        }
        if i % 2 == 0 {
            senders.push(Arc::new(s));
            sender_ids.push(id);
        } else {
            // Recipient: watch and acknowledge in batches.
            let s = pocnet_client::net::Session::connect(&id, addr, fp).await.unwrap();
            let (arrivals, delivered) = (arrivals.clone(), delivered.clone());
            tokio::spawn(async move {
                let s = Arc::new(s);
                let mut w = s.watch(true).await.unwrap();
                let mut pending = Vec::new();
                while let Ok(Some(ev)) = w.next().await {
                    if let pocnet_client::net::WatchEvent::Item(Delivery::Envelope { seq, envelope }) = ev {
                        let mut id = [0u8; 16];
                        id.copy_from_slice(&envelope[7..23]);
                        arrivals.lock().unwrap().insert(id, Instant::now());
                        delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        pending.push(seq);
                        if pending.len() >= 128 {
                            let seqs = std::mem::take(&mut pending);
                            let s2 = s.clone();
                            tokio::spawn(async move { s2.request(&Request::Ack { seqs }).await });
                        }
                    }
                }
            });
            recipients.push(id);
        }
    }
    Net {
        senders,
        sender_ids,
        recipients,
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

async fn blast(
    net: &Net,
    batches: Vec<Vec<([u8; 16], Vec<u8>)>>,
    inflight: usize,
    interval: Option<Duration>,
) -> (f64, HashMap<[u8; 16], Instant>) {
    let sent_at = Arc::new(Mutex::new(HashMap::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (s, batch) in net.senders.iter().cloned().zip(batches) {
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
                let (s, sent_at) = (s.clone(), sent_at.clone());
                hs.push(tokio::spawn(async move {
                    sent_at.lock().unwrap().insert(id, Instant::now());
                    match s.request(&Request::Send { envelope: env }).await {
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
    while net.delivered.load(std::sync::atomic::Ordering::Relaxed) < target {
        assert!(
            start.elapsed() < limit,
            "deliveries stalled at {}",
            net.delivered.load(std::sync::atomic::Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Instant::now()
}

#[tokio::main]
async fn main() {
    let a = args();
    let conc = a.pairs * a.inflight;
    eprintln!("ceilings …");
    let sqlite = tokio::task::spawn_blocking(move || sqlite_ceiling(20_000))
        .await
        .unwrap();
    let store = store_ceiling(a.messages, conc).await;

    eprintln!("relay …");
    let dir = tempfile::tempdir().unwrap();
    let relay_id = pocnet_relay::admin::init(dir.path(), b"bench").unwrap();
    let fp = relay_id.fingerprint();
    let cfg = pocnet_relay::Config {
        listen: "127.0.0.1:0".into(),
        rate_per_sec: 1e9,
        rate_burst: 1e9,
        queue_quota: u64::MAX / 2,
        ..Default::default()
    };
    let running = pocnet_relay::start(dir.path().to_path_buf(), cfg, relay_id)
        .await
        .unwrap();
    let addr = running.addr.to_string();
    let net = setup(dir.path(), &addr, fp, a.pairs).await;
    let per = a.messages / a.pairs;
    // Pre-seal (not timed): 1 KiB body, X25519 suite, one recipient each.
    let mut batches = Vec::new();
    let mut latency_batches = Vec::new();
    let lat_n = per / 4;
    for (i, sid) in net.sender_ids.iter().enumerate() {
        let rp = net.recipients[i].public();
        let (sid2, rp2) = (Identity::from_secret_bytes(&sid.to_secret_bytes()).unwrap(), rp.clone());
        let h = tokio::task::spawn_blocking(move || seal_all(&sid2, &rp2, per + lat_n));
        let mut all = h.await.unwrap();
        latency_batches.push(all.split_off(per));
        batches.push(all);
    }
    let env_len = batches[0][0].1.len();
    // The relay's per-envelope crypto on one core: verify the sender's signature, sign the acceptance.
    let crypto = {
        let sender_key = *net.sender_ids[0].public_key();
        let sample: Vec<Vec<u8>> = batches[0].iter().take(2000).map(|(_, e)| e.clone()).collect();
        let signer = Identity::generate(&mut pocnet_crypto::os_rng(), now_ms() / 1000, 86400).unwrap();
        let start = Instant::now();
        for e in &sample {
            let (_, h) = pocnet_crypto::verify_from(e, &sender_key).unwrap();
            std::hint::black_box(signer.sign(pocnet_wire::RELAY_ACCEPT, &h));
        }
        sample.len() as f64 / start.elapsed().as_secs_f64()
    };
    let quinn = bare_quinn(a.messages, a.pairs, a.inflight, env_len).await;

    let t0 = Instant::now();
    let (send_secs, _) = blast(&net, batches, a.inflight, None).await;
    let done = wait_delivered(&net, per * a.pairs, Duration::from_secs(300)).await;
    let accepted = (per * a.pairs) as f64 / send_secs;
    let delivered = (per * a.pairs) as f64 / (done - t0).as_secs_f64();

    // Half load: pace each sender at half the measured delivered rate.
    let half = delivered / 2.0;
    let interval = Duration::from_secs_f64(a.pairs as f64 / half);
    let before = net.delivered.load(std::sync::atomic::Ordering::Relaxed);
    let (_, sent_at) = blast(&net, latency_batches, a.inflight, Some(interval)).await;
    wait_delivered(&net, before + lat_n * a.pairs, Duration::from_secs(300)).await;
    let arrivals = net.arrivals.lock().unwrap().clone();
    let mut lat: Vec<f64> = sent_at
        .iter()
        .filter_map(|(id, t)| arrivals.get(id).map(|a| (*a - *t).as_secs_f64() * 1000.0))
        .collect();
    let p50 = percentile(&mut lat, 0.50);
    let p99 = percentile(&mut lat, 0.99);
    running.shutdown().await;

    println!("| measure | value | ceiling (same run) | ratio |");
    println!("|---|---|---|---|");
    println!("| raw SQLite WAL, 100 × 1 KiB rows per commit | {sqlite:.0} rows/s | | |");
    println!(
        "| store group commit, 1 KiB envelopes ({conc} concurrent) | {store:.0} /s | {sqlite:.0} raw SQLite | {:.2} |",
        store / sqlite
    );
    println!(
        "| bare quinn, same TLS + framing, stream per message ({} B) | {quinn:.0} /s | | |",
        env_len
    );
    println!("| relay: accepted durably ({} msgs, {} senders × {} in flight) | {accepted:.0} /s | {store:.0} store | {:.2} |", per * a.pairs, a.pairs, a.inflight, accepted / store);
    println!(
        "| relay: accepted and delivered | {delivered:.0} /s | {store:.0} store | {:.2} |",
        delivered / store
    );
    println!(
        "| relay vs bare quinn (delivered) | | {quinn:.0} | {:.2} |",
        delivered / quinn
    );
    println!("| relay crypto per envelope (verify_strict + acceptance signature), one core | {crypto:.0} /s | | |");
    println!(
        "| relay delivered vs 2 × that crypto ceiling (2 cores) | | {:.0} | {:.2} |",
        2.0 * crypto,
        delivered / (2.0 * crypto)
    );
    println!("| send→deliver latency at {half:.0}/s (half load) | p50 {p50:.2} ms, p99 {p99:.2} ms | | |");
}
