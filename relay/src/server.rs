//! The QUIC edge: accepts connections, reads frames, moves attachment bytes between
//! streams and files, and writes answers. Every decision is the service's
//! (`service.rs`); this file only applies transport limits and does I/O.
//!
//! Limits come before memory: a connection starts with a 64 KiB receive window and
//! 4 streams; only once its key is known to be an active member are they raised. A key
//! that is not enrolled may send one small first frame per stream (`MAX_UNENROLLED_FRAME`),
//! within a deadline, and only `Hello` or `Enrol`.

// A refusal is the answer to send (see service.rs).
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use pocnet_crypto::{Identity, IdentityKey};
use pocnet_wire::{encode, ErrorCode, FrameDecoder, FrameError, Request, Response, Tagged, MAX_FRAME};
use quinn::{RecvStream, SendStream};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::admin::DataDir;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::service::{err, Kind, Service, UploadPlan};
use crate::store::{SqliteStore, Store};

/// QUIC application close code for a graceful shutdown.
pub const CLOSE_SHUTDOWN: u32 = 1;
/// QUIC application close code: the peer presented no usable key.
pub const CLOSE_NO_KEY: u32 = 2;
/// QUIC application close code: too many connections from keys that are not enrolled.
pub const CLOSE_BUSY: u32 = 3;

/// How long a stream may take to deliver its first frame.
const FIRST_FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// Connection receive window before the key is known to be a member, and after.
const WINDOW_UNKNOWN: u32 = 64 * 1024;
const WINDOW_MEMBER: u32 = 16 * 1024 * 1024;
/// Concurrent bidirectional streams before the key is known to be a member, and after.
const STREAMS_UNKNOWN: u32 = 4;
const STREAMS_MEMBER: u32 = 64;
/// Most uploads one key may have running at once.
const MAX_UPLOADS_PER_KEY: usize = 4;
/// How long an upload may go without a byte arriving.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);
/// How often held envelopes that fell due are released.
const RELEASE_EVERY: Duration = Duration::from_secs(1);
/// The UDP receive buffer the relay asks for (the kernel caps it at `net.core.rmem_max`).
/// With the usual 208 KiB default, the packets of a thousand clients acknowledging an
/// alert's fan-out at once overflow it, and every lost packet costs a retransmission.
pub const UDP_RECV_BUFFER: usize = 8 * 1024 * 1024;
/// Envelope bytes (in KiB) all sends being verified and stored may hold at once.
const SEND_BUDGET_KIB: usize = 64 * 1024;

struct Edge<S: Store, C: Clock> {
    svc: Service<S, C>,
    blobs: PathBuf,
    stopping: AtomicBool,
    /// Requests being handled (not counting idle `Watch` streams), from admission until
    /// their answer is written.
    inflight: Arc<AtomicUsize>,
    /// Connections of keys not (yet) enrolled, in all and per source address.
    unenrolled: Counter<()>,
    unenrolled_per_address: Counter<IpAddr>,
    /// Open watch streams per key (following or not).
    watches: Counter<[u8; 32]>,
    /// Uploads running, per key and per (key, attachment id).
    uploads: Counter<[u8; 32]>,
    uploads_per_id: Counter<([u8; 32], [u8; 16])>,
    /// Bytes (KiB) of envelopes admitted and not yet answered, across all connections.
    send_budget: Arc<Semaphore>,
}

/// Counts a request in flight until dropped (after its answer is written).
struct Inflight(Arc<AtomicUsize>);
impl Inflight {
    fn new(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Inflight(n.clone())
    }
}
impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Bounded counts of things held per key (connections, watches, uploads).
struct Counter<K>(Mutex<HashMap<K, usize>>);

impl<K: std::hash::Hash + Eq + Copy> Counter<K> {
    fn new() -> Self {
        Counter(Mutex::new(HashMap::new()))
    }
    /// One more for `key`, unless it already has `max`; released when the slot drops.
    fn take(&self, key: K, max: usize) -> Option<Slot<'_, K>> {
        let mut m = self.0.lock().expect("counter");
        let n = m.entry(key).or_default();
        if *n >= max {
            if *n == 0 {
                m.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Slot { counter: self, key })
    }
}

/// A place in a [`Counter`], held until dropped.
struct Slot<'a, K: std::hash::Hash + Eq + Copy> {
    counter: &'a Counter<K>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Copy> Drop for Slot<'_, K> {
    fn drop(&mut self) {
        let mut m = self.counter.0.lock().expect("counter");
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// A running relay.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    endpoint: quinn::Endpoint,
    stopping: Arc<dyn Fn() + Send + Sync>,
    idle: Arc<dyn Fn() -> bool + Send + Sync>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Graceful shutdown: stop accepting, let in-flight requests finish, close
    /// connections with a reason, wait until the peers have been told.
    pub async fn shutdown(self) {
        (self.stopping)();
        self.endpoint.set_server_config(None);
        for t in &self.tasks {
            t.abort();
        }
        // Let requests already being handled commit and answer (bounded: 5 s).
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !(self.idle)() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        self.endpoint
            .close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), b"relay shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(3), self.endpoint.wait_idle()).await;
    }
}

/// Starts a relay on `cfg.listen` from the data directory `dir`, on the system clock.
pub async fn start(dir: PathBuf, cfg: Config, identity: Identity) -> anyhow::Result<Running> {
    let data = DataDir(dir);
    let cap = (cfg.max_db_mib > 0).then_some(cfg.max_db_mib * 1024 * 1024);
    let store = SqliteStore::open(&data.db(), cfg.batch_max, cfg.queue_quota, cap)
        .with_context(|| format!("cannot open {}", data.db().display()))?;
    start_with(data.blobs(), store, SystemClock, cfg, identity).await
}

/// Starts a relay over any store and clock; attachment files live in `blobs`.
pub async fn start_with<S: Store, C: Clock>(
    blobs: PathBuf,
    store: S,
    clock: C,
    cfg: Config,
    identity: Identity,
) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&blobs).with_context(|| format!("cannot create {}", blobs.display()))?;
    let auth = store.clone();
    // Fail closed: if the store cannot answer, the handshake is refused.
    let admit: Arc<pocnet_wire::tls::AdmitFn> =
        Arc::new(move |key: &IdentityKey| matches!(auth.is_revoked_now(key.as_bytes()), Ok(false)));
    let seed = identity.signing_seed();
    let tls = pocnet_wire::tls::server_config(&seed, identity.public_key().as_bytes(), admit)?;
    let mut server =
        quinn::ServerConfig::with_crypto(Arc::new(quinn::crypto::rustls::QuicServerConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(STREAMS_UNKNOWN.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.receive_window(WINDOW_UNKNOWN.into());
    transport.stream_receive_window((MAX_FRAME as u32 + 4).into());
    transport.send_window(16 * 1024 * 1024);
    transport.max_idle_timeout(Some(Duration::from_secs(60).try_into()?));
    transport.keep_alive_interval(Some(Duration::from_secs(15)));
    server.transport_config(Arc::new(transport));
    let addr: SocketAddr = cfg
        .listen
        .parse()
        .with_context(|| format!("listen address {:?} is not HOST:PORT", cfg.listen))?;
    let socket = udp_socket(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let runtime = quinn::default_runtime().context("no async runtime")?;
    let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket, runtime)
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = endpoint.local_addr()?;
    let max_connections = cfg.max_connections;
    let sweep_every = Duration::from_secs(cfg.sweep_interval_secs.max(1));
    let svc = Service::new(store, clock, cfg, Arc::new(identity));
    svc.load_directory().await?;
    let edge = Arc::new(Edge {
        svc,
        blobs,
        stopping: AtomicBool::new(false),
        inflight: Arc::new(AtomicUsize::new(0)),
        unenrolled: Counter::new(),
        unenrolled_per_address: Counter::new(),
        watches: Counter::new(),
        uploads: Counter::new(),
        uploads_per_id: Counter::new(),
        send_budget: Arc::new(Semaphore::new(SEND_BUDGET_KIB)),
    });
    let sweeper = edge.clone();
    let sweep_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(sweep_every);
        loop {
            tick.tick().await;
            if sweeper.stopping.load(Ordering::SeqCst) {
                break;
            }
            for (sender, id) in sweeper.svc.sweep().await {
                let _ = tokio::fs::remove_file(blob_path(&sweeper.blobs, &id)).await;
                let _ = tokio::fs::remove_file(part_path(&sweeper.blobs, &sender, &id)).await;
            }
            sweep_stale_parts(&sweeper.blobs, sweeper.svc.config().ttl_secs).await;
        }
    });
    // Held envelopes reach live watchers within a second of falling due.
    let releaser = edge.clone();
    let release_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELEASE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if releaser.stopping.load(Ordering::SeqCst) {
                break;
            }
            releaser.svc.release().await;
        }
    });
    let ep = endpoint.clone();
    let e = edge.clone();
    let accept_task = tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            if ep.open_connections() as u32 > max_connections {
                incoming.refuse();
                continue;
            }
            let e = e.clone();
            tokio::spawn(async move {
                match incoming.await {
                    Ok(conn) => connection(e, conn).await,
                    Err(err) => tracing::info!("handshake failed: {err}"),
                }
            });
        }
    });
    let (e1, e2) = (edge.clone(), edge);
    Ok(Running {
        addr,
        endpoint,
        stopping: Arc::new(move || e1.stopping.store(true, Ordering::SeqCst)),
        idle: Arc::new(move || e2.inflight.load(Ordering::SeqCst) == 0),
        tasks: vec![accept_task, sweep_task, release_task],
    })
}

/// A UDP socket bound to `addr` with a receive buffer of [`UDP_RECV_BUFFER`] if the kernel
/// allows it (a smaller one is logged, not refused).
pub fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    let sock = socket2::SockRef::from(&socket);
    let _ = sock.set_recv_buffer_size(UDP_RECV_BUFFER);
    match sock.recv_buffer_size() {
        // Linux reports twice what it reserves for payload (the rest is its bookkeeping).
        Ok(n) if n >= UDP_RECV_BUFFER => {}
        Ok(n) => tracing::info!(
            "UDP receive buffer is {n} bytes (asked for {UDP_RECV_BUFFER}): raise net.core.rmem_max so bursts \
             from many clients are not dropped"
        ),
        Err(e) => tracing::info!("cannot read the UDP receive buffer size: {e}"),
    }
    Ok(socket)
}

/// Partial uploads older than the TTL whose records are gone (a crash between the record's
/// expiry and the file's deletion, or uploads from before records existed).
async fn sweep_stale_parts(dir: &Path, ttl_secs: u64) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    let max_age = Duration::from_secs(ttl_secs);
    while let Ok(Some(entry)) = entries.next_entry().await {
        let stale = entry.file_name().to_string_lossy().ends_with(".part")
            && entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
        if stale {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

async fn connection<S: Store, C: Clock>(edge: Arc<Edge<S, C>>, conn: quinn::Connection) {
    let Some(peer) = conn
        .peer_identity()
        .and_then(|p| p.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .and_then(|certs| pocnet_wire::tls::peer_identity(&certs))
    else {
        conn.close(CLOSE_NO_KEY.into(), b"no client key");
        return;
    };
    tracing::debug!("connection from {}", peer.fingerprint().short());
    let enrolled = matches!(edge.svc.store().member(*peer.as_bytes()).await, Ok(Some(m)) if !m.revoked);
    let _slot = if enrolled {
        conn.set_receive_window(WINDOW_MEMBER.into());
        conn.set_max_concurrent_bi_streams(STREAMS_MEMBER.into());
        None
    } else {
        let cfg = edge.svc.config();
        let slots = edge
            .unenrolled
            .take((), cfg.max_unenrolled_connections)
            .and_then(|total| {
                let here = edge
                    .unenrolled_per_address
                    .take(conn.remote_address().ip(), cfg.max_unenrolled_per_address)?;
                Some((total, here))
            });
        match slots {
            Some(s) => Some(s),
            None => {
                conn.close(
                    CLOSE_BUSY.into(),
                    b"too many connections from keys that are not enrolled",
                );
                return;
            }
        }
    };
    let streams = async {
        while let Ok((send, recv)) = conn.accept_bi().await {
            let edge = edge.clone();
            tokio::spawn(async move {
                if let Err(e) = stream(edge, peer, enrolled, send, recv).await {
                    tracing::debug!("stream ended: {e}");
                }
            });
        }
    };
    if enrolled {
        streams.await;
    } else if tokio::time::timeout(Duration::from_secs(edge.svc.config().unenrolled_lifetime_secs), streams)
        .await
        .is_err()
    {
        // Time to enrol is up; an enrolled key reconnects with member limits.
        conn.close(CLOSE_BUSY.into(), b"enrolment time is up; reconnect");
    }
}

/// Reads into `dec` until it yields a frame; `Ok(None)` at a clean end of stream.
async fn read_frame<T: serde::de::DeserializeOwned>(
    recv: &mut RecvStream,
    dec: &mut FrameDecoder,
) -> Result<Option<T>, ReadFail> {
    loop {
        if let Some(v) = dec.decode_next::<T>().map_err(ReadFail::Frame)? {
            return Ok(Some(v));
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => dec.push(&chunk.bytes),
            Ok(None) => {
                dec.finish().map_err(ReadFail::Frame)?;
                return Ok(None);
            }
            Err(e) => return Err(ReadFail::Stream(e.to_string())),
        }
    }
}

enum ReadFail {
    Frame(FrameError),
    Stream(String),
}

async fn answer_and_finish(send: &mut SendStream, resp: &Response, guard: Option<Inflight>) -> anyhow::Result<()> {
    send.write_all(&encode(resp)).await?;
    send.finish()?;
    drop(guard);
    // Wait for the peer to read the answer before the stream is dropped.
    let _ = send.stopped().await;
    Ok(())
}

async fn stream<S: Store, C: Clock>(
    edge: Arc<Edge<S, C>>,
    peer: IdentityKey,
    enrolled: bool,
    mut send: SendStream,
    mut recv: RecvStream,
) -> anyhow::Result<()> {
    // A key not known to be enrolled gets room for `Enrol` only, and a deadline.
    let mut dec = FrameDecoder::new(if enrolled {
        MAX_FRAME
    } else {
        pocnet_wire::MAX_UNENROLLED_FRAME
    });
    let first = match tokio::time::timeout(FIRST_FRAME_DEADLINE, read_frame::<Request>(&mut recv, &mut dec)).await {
        Err(_) => {
            return answer_and_finish(&mut send, &err(ErrorCode::Malformed, "no request within 10 s"), None).await;
        }
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(ReadFail::Frame(e @ FrameError::TooLarge { .. }))) => {
            return answer_and_finish(&mut send, &err(ErrorCode::TooLarge, e.to_string()), None).await;
        }
        Ok(Err(ReadFail::Frame(e))) => {
            return answer_and_finish(
                &mut send,
                &err(ErrorCode::Malformed, format!("{e}; is the client up to date?")),
                None,
            )
            .await;
        }
        Ok(Err(ReadFail::Stream(e))) => anyhow::bail!(e),
    };
    // Counted from before the stopping check until the answer is written, so a graceful
    // shutdown either refuses a request or waits for its answer, never drops it between.
    let guard = Inflight::new(&edge.inflight);
    if edge.stopping.load(Ordering::SeqCst) {
        return answer_and_finish(
            &mut send,
            &err(ErrorCode::ShuttingDown, "relay is shutting down; retry shortly"),
            Some(guard),
        )
        .await;
    }
    let kind = Kind::of(&first);
    let member = match edge.svc.admit(&peer, kind).await {
        Ok(m) => m,
        Err(r) if kind == Kind::Pipeline => {
            // A session stream's answers are tagged; this one belongs to no request.
            send.write_all(&encode(&Tagged { id: u32::MAX, body: r })).await?;
            send.finish()?;
            return Ok(());
        }
        Err(r) => return answer_and_finish(&mut send, &r, Some(guard)).await,
    };
    match first {
        Request::Pipeline => {
            drop(guard);
            pipeline(edge, peer, send, recv, dec).await
        }
        Request::Watch { follow } => {
            drop(guard);
            let Some(_slot) = edge
                .watches
                .take(*peer.as_bytes(), edge.svc.config().max_watchers_per_key)
            else {
                let r = err(
                    ErrorCode::LimitReached,
                    format!(
                        "this key already has {} watch streams open",
                        edge.svc.config().max_watchers_per_key
                    ),
                );
                return answer_and_finish(&mut send, &r, None).await;
            };
            watch(&edge, peer, follow, &mut send).await?;
            send.finish()?;
            Ok(())
        }
        Request::PutBlob {
            message_id,
            total_len,
            offset,
        } => {
            let r = put_blob(&edge, &peer, message_id, total_len, offset, &mut recv, dec.take_rest()).await;
            answer_and_finish(&mut send, &r, Some(guard)).await
        }
        Request::GetBlob { message_id, offset } => {
            drop(guard);
            get_blob(&edge, &peer, message_id, offset, &mut send).await?;
            send.finish()?;
            Ok(())
        }
        other => {
            let _budget = send_budget(&edge, &other).await;
            let r = edge.svc.handle_admitted(&peer, member, other).await;
            answer_and_finish(&mut send, &r, Some(guard)).await
        }
    }
}

/// Holds envelope bytes against the relay-wide budget while a `Send` is verified and
/// stored, so many senders' bursts cannot pile up gigabytes before the store.
async fn send_budget<S: Store, C: Clock>(
    edge: &Edge<S, C>,
    req: &Request,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    match req {
        Request::Send { envelope } | Request::Hold { envelope, .. } => {
            let kib = (envelope.len() / 1024 + 1).min(SEND_BUDGET_KIB) as u32;
            edge.send_budget.clone().acquire_many_owned(kib).await.ok()
        }
        _ => None,
    }
}

/// A pipelined session stream: tagged requests in, tagged answers out as each completes.
/// At most `max_inflight_per_stream` are handled at once; past that the edge stops
/// reading, and QUIC flow control holds the client back.
async fn pipeline<S: Store, C: Clock>(
    edge: Arc<Edge<S, C>>,
    peer: IdentityKey,
    mut send: SendStream,
    mut recv: RecvStream,
    mut dec: FrameDecoder,
) -> anyhow::Result<()> {
    let limit = edge.svc.config().max_inflight_per_stream.max(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Tagged<Response>, Option<Inflight>)>(limit);
    let writer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut guards = Vec::new();
        while let Some((first, g)) = rx.recv().await {
            buf.clear();
            buf.extend_from_slice(&encode(&first));
            guards.extend(g);
            // Whatever else is ready goes out in the same write.
            while buf.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok((more, g)) => {
                        buf.extend_from_slice(&encode(&more));
                        guards.extend(g);
                    }
                    Err(_) => break,
                }
            }
            let written = send.write_all(&buf).await.is_ok();
            // Answers are out (or the peer is gone): they no longer hold up a shutdown.
            guards.clear();
            if !written {
                return;
            }
        }
        let _ = send.finish();
        let _ = send.stopped().await;
    });
    let sem = Arc::new(Semaphore::new(limit));
    loop {
        let tagged = match read_frame::<Tagged<Request>>(&mut recv, &mut dec).await {
            Ok(Some(t)) => t,
            Ok(None) | Err(ReadFail::Stream(_)) => break,
            Err(ReadFail::Frame(e)) => {
                // The id cannot be known: answer with id u32::MAX and end the session.
                let code = match e {
                    FrameError::TooLarge { .. } => ErrorCode::TooLarge,
                    _ => ErrorCode::Malformed,
                };
                let _ = tx
                    .send((
                        Tagged {
                            id: u32::MAX,
                            body: err(code, format!("{e}; the session stream ends here")),
                        },
                        None,
                    ))
                    .await;
                break;
            }
        };
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (edge, tx) = (edge.clone(), tx.clone());
        let guard = Inflight::new(&edge.inflight);
        let budget = send_budget(&edge, &tagged.body).await;
        tokio::spawn(async move {
            let body = if edge.stopping.load(Ordering::SeqCst) {
                err(ErrorCode::ShuttingDown, "relay is shutting down; retry shortly")
            } else {
                edge.svc.handle(&peer, tagged.body).await
            };
            drop(budget);
            let _ = tx.send((Tagged { id: tagged.id, body }, Some(guard))).await;
            drop(permit);
        });
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

async fn write_items<S: Store, C: Clock>(
    svc: &Service<S, C>,
    send: &mut SendStream,
    items: &[Arc<crate::store::Item>],
    me: &[u8; 32],
) -> anyhow::Result<()> {
    let Some(deliveries) = svc.deliveries(items, me).await else {
        send.write_all(&encode(&err(
            ErrorCode::ShuttingDown,
            "relay is shutting down; retry shortly",
        )))
        .await?;
        anyhow::bail!("stopping before deliveries could be signed");
    };
    let mut buf = Vec::new();
    for d in deliveries {
        buf.extend_from_slice(&encode(&Response::Deliver(d)));
    }
    send.write_all(&buf).await?;
    Ok(())
}

async fn watch<S: Store, C: Clock>(
    edge: &Edge<S, C>,
    peer: IdentityKey,
    follow: bool,
    send: &mut SendStream,
) -> anyhow::Result<()> {
    let me = *peer.as_bytes();
    // Subscribe before reading the backlog so nothing committed in between is missed.
    let mut live = match follow.then(|| edge.svc.subscribe(&peer)).transpose() {
        Ok(l) => l,
        Err(r) => {
            send.write_all(&encode(&r)).await?;
            return Ok(());
        }
    };
    let mut last = 0u64;
    loop {
        let page = match edge.svc.backlog(&peer, last).await {
            Ok(p) => p,
            Err(r) => {
                send.write_all(&encode(&r)).await?;
                return Ok(());
            }
        };
        let Some(end) = page.last().map(|i| i.seq()) else {
            break;
        };
        last = last.max(end);
        let page: Vec<_> = page.into_iter().map(Arc::new).collect();
        write_items(&edge.svc, send, &page, &me).await?;
    }
    send.write_all(&encode(&Response::CaughtUp)).await?;
    let Some(live) = live.as_mut() else {
        return Ok(());
    };
    let mut batch = Vec::new();
    loop {
        // A watcher whose peer went away is noticed even when no item comes, so it frees
        // its place among the key's watchers.
        let first = tokio::select! {
            item = live.recv() => match item {
                Some(i) => i,
                None => break,
            },
            _ = send.stopped() => break,
        };
        batch.clear();
        batch.push(first);
        while batch.len() < 256 {
            match live.try_recv() {
                Some(more) => batch.push(more),
                None => break,
            }
        }
        // A key revoked while watching stops receiving at once (checked once per batch).
        if let Err(r) = edge.svc.still_member(&peer).await {
            send.write_all(&encode(&r)).await?;
            return Ok(());
        }
        batch.retain(|i| i.seq() > last);
        if let Some(end) = batch.last().map(|i| i.seq()) {
            last = end;
            write_items(&edge.svc, send, &batch, &me).await?;
        }
    }
    Ok(())
}

fn blob_path(dir: &Path, message_id: &[u8; 16]) -> PathBuf {
    dir.join(pocnet_crypto::to_hex(message_id))
}

/// The partial upload is the sender's own: another member cannot append to it.
fn part_path(dir: &Path, sender: &[u8; 32], message_id: &[u8; 16]) -> PathBuf {
    dir.join(format!(
        "{}-{}.part",
        pocnet_crypto::to_hex(sender),
        pocnet_crypto::to_hex(message_id)
    ))
}

async fn put_blob<S: Store, C: Clock>(
    edge: &Edge<S, C>,
    peer: &IdentityKey,
    message_id: [u8; 16],
    total_len: u64,
    offset: u64,
    recv: &mut RecvStream,
    first_bytes: Vec<u8>,
) -> Response {
    // One upload per (key, id) at a time, and a few per key: parallel streams appending
    // to one file would hold more bytes than the one reservation.
    let me = *peer.as_bytes();
    let running = edge.uploads_per_id.take((me, message_id), 1).and_then(|one| {
        let mine = edge.uploads.take(me, MAX_UPLOADS_PER_KEY)?;
        Some((one, mine))
    });
    let Some(_running) = running else {
        return err(
            ErrorCode::LimitReached,
            "this attachment is already being uploaded, or too many uploads are running; retry shortly",
        );
    };
    let part = part_path(&edge.blobs, peer.as_bytes(), &message_id);
    let held = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
    let offset = match edge.svc.upload_start(peer, message_id, total_len, offset, held).await {
        UploadPlan::Answer(r) => return r,
        UploadPlan::Receive { offset } => offset,
    };
    let opened = tokio::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&part)
        .await;
    let mut file = match opened {
        Ok(f) => f,
        Err(e) => return err(ErrorCode::Internal, format!("cannot store attachment: {e}")),
    };
    // Write at the agreed offset, never past the declared length.
    use tokio::io::AsyncSeekExt;
    if let Err(e) = async {
        file.set_len(offset).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await
    }
    .await
    {
        return err(ErrorCode::Internal, format!("cannot store attachment: {e}"));
    }
    let mut stored = offset;
    let mut pending = Some(first_bytes);
    loop {
        let chunk = match pending.take() {
            Some(b) => b,
            None if stored >= total_len => break,
            None => match tokio::time::timeout(UPLOAD_IDLE, recv.read_chunk(256 * 1024, true)).await {
                Ok(Ok(Some(c))) => c.bytes.to_vec(),
                _ => break,
            },
        };
        let room = (total_len - stored) as usize;
        let take = chunk.len().min(room);
        if let Err(e) = file.write_all(&chunk[..take]).await {
            return err(
                ErrorCode::StorageFull,
                format!("cannot store attachment ({e}); {stored} bytes kept, resume later"),
            );
        }
        stored += take as u64;
    }
    if let Err(e) = file.sync_all().await {
        return err(ErrorCode::StorageFull, format!("cannot store attachment: {e}"));
    }
    drop(file);
    if stored < total_len {
        return Response::BlobStored {
            stored,
            complete: false,
        };
    }
    // Complete: check it is a signed attachment envelope from this sender before keeping it.
    let path = part.clone();
    let verified = tokio::task::spawn_blocking(move || -> Result<pocnet_crypto::Header, String> {
        let mut f = std::io::BufReader::new(std::fs::File::open(&path).map_err(|e| e.to_string())?);
        pocnet_crypto::envelope::verify_stream(&mut f)
            .map(|(h, _)| h)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let good = verified.is_ok();
    if good {
        if let Err(e) = tokio::fs::rename(&part, blob_path(&edge.blobs, &message_id)).await {
            return err(ErrorCode::Internal, format!("cannot store attachment: {e}"));
        }
        // The rename is durable before the record says "complete".
        let dir = edge.blobs.clone();
        let synced = tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all())).await;
        if !matches!(synced, Ok(Ok(()))) {
            return err(ErrorCode::Internal, "cannot make the attachment durable; retry");
        }
    }
    let r = edge.svc.upload_finish(peer, message_id, total_len, verified).await;
    if !matches!(r, Response::BlobStored { complete: true, .. }) {
        let _ = tokio::fs::remove_file(&part).await;
        if good {
            let _ = tokio::fs::remove_file(blob_path(&edge.blobs, &message_id)).await;
        }
    }
    r
}

async fn get_blob<S: Store, C: Clock>(
    edge: &Edge<S, C>,
    peer: &IdentityKey,
    message_id: [u8; 16],
    offset: u64,
    send: &mut SendStream,
) -> anyhow::Result<()> {
    let total_len = match edge.svc.download_start(peer, message_id).await {
        Ok(n) => n,
        Err(r) => {
            send.write_all(&encode(&r)).await?;
            return Ok(());
        }
    };
    let mut f = match tokio::fs::File::open(blob_path(&edge.blobs, &message_id)).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("attachment recorded but its file cannot be opened: {e}");
            send.write_all(&encode(&err(
                ErrorCode::NotFound,
                "the attachment's file is missing at the relay",
            )))
            .await?;
            return Ok(());
        }
    };
    send.write_all(&encode(&Response::Blob { total_len })).await?;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    f.seek(std::io::SeekFrom::Start(offset.min(total_len))).await?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        send.write_all(&buf[..n]).await?;
    }
    Ok(())
}
