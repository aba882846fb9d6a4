//! Shared pieces of the load tools (`pocnet-bench`, `pocnet-alert-bench`): a relay
//! configuration without rate limits, enrolling and connecting many keys, and the
//! ceilings measured in the same run (raw SQLite, bare quinn with the relay's TLS and
//! framing but no relay logic). Everything binds 127.0.0.1 only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pocnet_crypto::{Fingerprint, Identity};
use pocnet_wire::{encode, Delivery, FrameDecoder, Request, Response, Tagged, MAX_FRAME};
use tokio::sync::{broadcast, Semaphore};

use crate::probe::{connect, identity, Raw, Secretariat};

/// The `p`-quantile (0..=1) of `v`, nearest rank; sorts `v`. NaN when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A relay configuration on 127.0.0.1 (port chosen by the OS) with rate limits and
/// queue quotas out of the way, serving the directory `directory`.
pub fn unthrottled(directory: String) -> pocnet_relay::Config {
    pocnet_relay::Config {
        listen: "127.0.0.1:0".into(),
        rate_per_sec: 1e9,
        rate_burst: 1e9,
        request_rate_per_sec: 1e9,
        request_burst: 1e9,
        queue_quota: u64::MAX / 2,
        directory,
        ..Default::default()
    }
}

/// Connects every identity to the relay at `addr`, `parallel` handshakes at a time;
/// the connections in the order of `ids`.
pub async fn connect_all(addr: SocketAddr, fp: Fingerprint, ids: Vec<Identity>, parallel: usize) -> Vec<Raw> {
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::with_capacity(ids.len());
    for id in ids {
        let permit = sem.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let c = connect(addr, fp, id).await.expect("connect to 127.0.0.1");
            drop(permit);
            c
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `ids`, listed in the relay's directory by the in-process Secretariat (in order), each
/// connected (setup, not measured).
pub async fn enrol(secretariat: &mut Secretariat, addr: SocketAddr, fp: Fingerprint, ids: Vec<Identity>) -> Vec<Raw> {
    secretariat
        .list(addr, fp, &ids.iter().collect::<Vec<_>>())
        .await
        .expect("list the bench's keys");
    connect_all(addr, fp, ids, 16).await
}

/// `n` fresh keys, enrolled and connected: see [`enrol`].
pub async fn enrolled(secretariat: &mut Secretariat, addr: SocketAddr, fp: Fingerprint, n: usize) -> Vec<Raw> {
    enrol(secretariat, addr, fp, (0..n).map(|_| identity()).collect()).await
}

/// Raw SQLite in WAL mode with `synchronous=FULL`: rows of 1 KiB per second, 100 rows to a
/// commit.
pub fn sqlite_ceiling(n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let c = raw_sqlite(&dir);
    let row = vec![7u8; 1024];
    let start = Instant::now();
    for _ in 0..n / 100 {
        let tx = c.unchecked_transaction().unwrap();
        for _ in 0..100 {
            tx.execute("INSERT INTO t(b) VALUES (?1)", [&row]).unwrap();
        }
        tx.commit().unwrap();
    }
    (n / 100 * 100) as f64 / start.elapsed().as_secs_f64()
}

/// Raw SQLite in WAL mode with `synchronous=FULL`: `n` durable commits of one `row`-byte
/// row each, one after the other; ms per commit.
pub fn sqlite_commit_ms(n: usize, row: usize) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let c = raw_sqlite(&dir);
    let row = vec![7u8; row];
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let tx = c.unchecked_transaction().unwrap();
            tx.execute("INSERT INTO t(b) VALUES (?1)", [&row]).unwrap();
            tx.commit().unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn raw_sqlite(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
        .unwrap();
    c
}

/// A bare quinn server with the relay's TLS (client keys pinned the same way) and its
/// framing, but no relay logic and no store. On each stream it reads the first frame: a
/// `Watch` stream is kept and gets every frame [`Bare::push`] sends; any other stream
/// (a pipelined session) gets `Done` for each tagged request.
pub struct Bare {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its pinned fingerprint.
    pub fp: Fingerprint,
    ep: quinn::Endpoint,
    fanout: broadcast::Sender<Arc<Vec<u8>>>,
    watching: Arc<AtomicUsize>,
}

impl Bare {
    /// Starts it on 127.0.0.1 (port chosen by the OS).
    pub fn start() -> Bare {
        let server_id = identity();
        let tls = pocnet_wire::tls::server_config(
            &server_id.signing_seed(),
            server_id.public_key().as_bytes(),
            Arc::new(|_: &pocnet_crypto::IdentityKey| true),
        )
        .unwrap();
        let mut scfg = quinn::ServerConfig::with_crypto(Arc::new(
            quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap(),
        ));
        // The relay's windows for members.
        let mut t = quinn::TransportConfig::default();
        t.stream_receive_window((MAX_FRAME as u32 + 4).into());
        t.send_window(16 * 1024 * 1024);
        scfg.transport_config(Arc::new(t));
        // The relay's socket (the same receive buffer).
        let socket = pocnet_relay::server::udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let ep = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(scfg),
            socket,
            quinn::default_runtime().unwrap(),
        )
        .unwrap();
        let addr = ep.local_addr().unwrap();
        let (fanout, _) = broadcast::channel::<Arc<Vec<u8>>>(16);
        let watching = Arc::new(AtomicUsize::new(0));
        let (sep, tx, w) = (ep.clone(), fanout.clone(), watching.clone());
        tokio::spawn(async move {
            while let Some(inc) = sep.accept().await {
                let (tx, w) = (tx.clone(), w.clone());
                tokio::spawn(async move {
                    let Ok(conn) = inc.await else { return };
                    while let Ok((send, recv)) = conn.accept_bi().await {
                        tokio::spawn(bare_stream(send, recv, tx.clone(), w.clone()));
                    }
                });
            }
        });
        Bare {
            addr,
            fp: server_id.fingerprint(),
            ep,
            fanout,
            watching,
        }
    }

    /// Sends `frame` on every watch stream at once.
    pub fn push(&self, frame: Arc<Vec<u8>>) {
        let _ = self.fanout.send(frame);
    }

    /// Watch streams open.
    pub fn watching(&self) -> usize {
        self.watching.load(Ordering::SeqCst)
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        self.ep.close(0u32.into(), b"");
    }
}

async fn bare_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    fanout: broadcast::Sender<Arc<Vec<u8>>>,
    watching: Arc<AtomicUsize>,
) {
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let first = loop {
        match recv.read_chunk(256 * 1024, true).await {
            Ok(Some(c)) => {
                dec.push(&c.bytes);
                if let Ok(Some(r)) = dec.decode_next::<Request>() {
                    break r;
                }
            }
            _ => return,
        }
    };
    if let Request::Watch { .. } = first {
        let mut fanout = fanout.subscribe();
        watching.fetch_add(1, Ordering::SeqCst);
        while let Ok(frame) = fanout.recv().await {
            if send.write_all(&frame).await.is_err() {
                break;
            }
        }
        watching.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    loop {
        let mut out = Vec::new();
        while let Some(t) = dec.decode_next::<Tagged<Request>>().unwrap() {
            out.extend_from_slice(&encode(&Tagged {
                id: t.id,
                body: Response::Done,
            }));
        }
        if !out.is_empty() && send.write_all(&out).await.is_err() {
            return;
        }
        match recv.read_chunk(256 * 1024, true).await {
            Ok(Some(c)) => dec.push(&c.bytes),
            _ => return,
        }
    }
}

/// Bare quinn throughput: `n` requests of `frame_len` bytes over `conns` connections, one
/// pipelined stream each with `inflight` in flight, each answered `Done`; requests/s.
pub async fn bare_quinn(n: usize, conns: usize, inflight: usize, frame_len: usize) -> f64 {
    let bare = Bare::start();
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(connect(bare.addr, bare.fp, identity()).await.unwrap());
    }
    let envelope = vec![9; frame_len];
    let start = Instant::now();
    let per = n / conns;
    let mut tasks = Vec::new();
    for c in clients {
        let envelope = envelope.clone();
        tasks.push(tokio::spawn(async move {
            let sem = Arc::new(Semaphore::new(inflight));
            let mut hs = Vec::with_capacity(per);
            for _ in 0..per {
                let p = sem.clone().acquire_owned().await.unwrap();
                let (pipe, env) = (c.pipe.clone(), envelope.clone());
                hs.push(tokio::spawn(async move {
                    pipe.call(Request::Send { envelope: env }).await.unwrap();
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

/// Bare quinn round trips: `n` requests `req`, one at a time on one pipelined stream, each
/// answered `Done`; ms each (the first 10 are warm-up, not counted).
pub async fn bare_round_trips(n: usize, req: Request) -> Vec<f64> {
    let bare = Bare::start();
    let c = connect(bare.addr, bare.fp, identity()).await.unwrap();
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let t = Instant::now();
        match c.pipe.call(req.clone()).await {
            Ok(Response::Done) => {}
            other => panic!("bare round trip: {other:?}"),
        }
        if i >= 10 {
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    c.conn.close(0u32.into(), b"");
    out
}

/// Bare quinn fan-out: `clients` connections (each its own endpoint, as the load tools'
/// clients are) watching the bare server; `rounds` times, one `frame` pushed to all of them
/// at once. For every client and round, ms from the push to the whole frame decoded at the
/// client. Bounded: panics if a round takes longer than `limit`.
pub async fn bare_fanout(clients: usize, frame: Vec<u8>, rounds: usize, limit: Duration) -> Vec<f64> {
    let bare = Bare::start();
    let ids: Vec<Identity> = (0..clients).map(|_| identity()).collect();
    let conns = connect_all(bare.addr, bare.fp, ids, 16).await;
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for c in &conns {
        let (mut tx, mut rx) = c.conn.open_bi().await.unwrap();
        tx.write_all(&encode(&Request::Watch { follow: true })).await.unwrap();
        let arrivals = arrivals.clone();
        readers.push(tokio::spawn(async move {
            let _keep = tx;
            let mut dec = FrameDecoder::new(MAX_FRAME);
            while let Ok(Some(c)) = rx.read_chunk(256 * 1024, true).await {
                dec.push(&c.bytes);
                while let Some(_r) = dec.decode_next::<Response>().unwrap() {
                    arrivals.lock().unwrap().push(Instant::now());
                }
            }
        }));
    }
    let t0 = Instant::now();
    while bare.watching() < clients {
        assert!(t0.elapsed() < limit, "bare fan-out: watchers never all arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let frame = Arc::new(frame);
    let mut out = Vec::with_capacity(clients * rounds);
    for _ in 0..rounds {
        arrivals.lock().unwrap().clear();
        // Let the machine settle between rounds.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now();
        bare.push(frame.clone());
        loop {
            let n = arrivals.lock().unwrap().len();
            if n >= clients {
                break;
            }
            assert!(start.elapsed() < limit, "bare fan-out stalled at {n} of {clients}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let a = arrivals.lock().unwrap();
        out.extend(a.iter().map(|t| (*t - start).as_secs_f64() * 1000.0));
    }
    for r in readers {
        r.abort();
    }
    for c in conns {
        c.conn.close(0u32.into(), b"");
    }
    out
}

/// A frame as a watcher receives one delivery of an `envelope_len`-byte envelope.
pub fn delivery_frame(envelope_len: usize) -> Vec<u8> {
    encode(&Response::Deliver(Delivery::Envelope {
        seq: 1,
        envelope: vec![0x42; envelope_len],
    }))
}

/// p50 / p99 / max of `v` (ms).
#[derive(Clone, Copy, Debug)]
pub struct Dist {
    /// How many values.
    pub n: usize,
    /// Smallest (the first, for a cold start).
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The distribution of `v` (ms).
pub fn dist(mut v: Vec<f64>) -> Dist {
    let n = v.len();
    let p50 = percentile(&mut v, 0.50);
    let p99 = percentile(&mut v, 0.99);
    let max = v.iter().copied().fold(f64::NAN, f64::max);
    let min = v.iter().copied().fold(f64::NAN, f64::min);
    Dist { n, min, p50, p99, max }
}

impl Dist {
    /// One Markdown cell: first, p50, p99, max.
    pub fn md(&self) -> String {
        let d = if self.max < 1.0 {
            3
        } else if self.p50 < 1.0 {
            2
        } else {
            1
        };
        format!(
            "first {:.d$}, p50 {:.d$}, p99 {:.d$}, max {:.d$} ms",
            self.min, self.p50, self.p99, self.max
        )
    }
    /// One JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"n\":{},\"min_ms\":{:.3},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
            self.n, self.min, self.p50, self.p99, self.max
        )
    }
}
