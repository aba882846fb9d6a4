//! The QUIC edge: accepts connections, reads one request per bidirectional stream,
//! answers from the store. All protocol decisions are in `handle_request`; the
//! socket work around it is thin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use pocnet_crypto::{ContentType, Identity, IdentityKey, Receipt};
use pocnet_wire::{decode, encode, Delivery, ErrorCode, Key, Request, Response, MAX_FRAME};
use quinn::{RecvStream, SendStream};
use tokio::io::AsyncWriteExt;

use crate::admin::{self, now_ms, DataDir};
use crate::config::Config;
use crate::ratelimit::RateLimiter;
use crate::store::{NewEnvelope, StoreError, StoreHandle};

use pocnet_wire::{accept_statement, RELAY_ACCEPT};

/// QUIC application close code for a graceful shutdown.
pub const CLOSE_SHUTDOWN: u32 = 1;

struct Relay {
    cfg: Config,
    identity: Identity,
    store: StoreHandle,
    limiter: Mutex<RateLimiter<Key>>,
    blobs: PathBuf,
    stopping: AtomicBool,
    /// Requests being handled (not counting idle `Watch` streams).
    inflight: std::sync::atomic::AtomicUsize,
}

/// A running relay.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    endpoint: quinn::Endpoint,
    relay: Arc<Relay>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Graceful shutdown: stop accepting, let in-flight requests finish, close
    /// connections with a reason, wait until the peers have been told.
    pub async fn shutdown(self) {
        self.relay.stopping.store(true, Ordering::SeqCst);
        self.endpoint.set_server_config(None);
        self.accept_task.abort();
        // Let requests already being handled commit and answer (bounded: 5 s).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while self.relay.inflight.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
        self.endpoint
            .close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), b"relay shutting down");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), self.endpoint.wait_idle()).await;
    }
}

/// Starts a relay on `cfg.listen` from the data directory `dir`.
pub async fn start(dir: PathBuf, cfg: Config, identity: Identity) -> anyhow::Result<Running> {
    let data = DataDir(dir.clone());
    std::fs::create_dir_all(data.blobs())?;
    let cap = (cfg.max_db_mib > 0).then_some(cfg.max_db_mib * 1024 * 1024);
    let store = StoreHandle::open_limited(&data.db(), cfg.batch_max, cfg.queue_quota, cap)?;
    let auth = Mutex::new(crate::store::open_db(&data.db())?);
    let admit: Arc<pocnet_wire::tls::AdmitFn> =
        Arc::new(move |key: &IdentityKey| !admin::is_revoked(&auth.lock().expect("auth lock"), key.as_bytes()));
    let seed = identity.signing_seed();
    let tls = pocnet_wire::tls::server_config(&seed, identity.public_key().as_bytes(), admit)?;
    let mut server =
        quinn::ServerConfig::with_crypto(Arc::new(quinn::crypto::rustls::QuicServerConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(1024u32.into());
    transport.max_idle_timeout(Some(std::time::Duration::from_secs(60).try_into()?));
    transport.keep_alive_interval(Some(std::time::Duration::from_secs(15)));
    server.transport_config(Arc::new(transport));
    let addr: SocketAddr = cfg
        .listen
        .parse()
        .with_context(|| format!("listen address {:?} is not HOST:PORT", cfg.listen))?;
    let endpoint = quinn::Endpoint::server(server, addr).with_context(|| format!("cannot listen on {addr}"))?;
    let addr = endpoint.local_addr()?;
    let relay = Arc::new(Relay {
        limiter: Mutex::new(RateLimiter::new(cfg.rate_per_sec, cfg.rate_burst)),
        cfg,
        identity,
        store,
        blobs: data.blobs(),
        stopping: AtomicBool::new(false),
        inflight: std::sync::atomic::AtomicUsize::new(0),
    });
    let sweeper = relay.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(sweeper.cfg.sweep_interval_secs.max(1)));
        loop {
            tick.tick().await;
            if sweeper.stopping.load(Ordering::SeqCst) {
                break;
            }
            match sweeper.store.expire(now_ms()).await {
                Ok(n) if n > 0 => tracing::info!("expired {n} undelivered items"),
                Ok(_) => {}
                Err(e) => tracing::error!("expiry sweep failed: {e}"),
            }
            sweep_blobs(&sweeper).await;
        }
    });
    let ep = endpoint.clone();
    let r = relay.clone();
    let accept_task = tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            if ep.open_connections() as u32 > r.cfg.max_connections {
                incoming.refuse();
                continue;
            }
            let r = r.clone();
            tokio::spawn(async move {
                match incoming.await {
                    Ok(conn) => connection(r, conn).await,
                    Err(e) => tracing::info!("handshake failed: {e}"),
                }
            });
        }
    });
    Ok(Running {
        addr,
        endpoint,
        relay,
        accept_task,
    })
}

/// Attachments live as long as messages: files (and abandoned partial uploads) older than
/// the TTL are deleted with their records.
async fn sweep_blobs(relay: &Relay) {
    let cutoff = now_ms().saturating_sub(relay.cfg.ttl_secs * 1000);
    match relay.store.expire_blobs(cutoff).await {
        Ok(ids) => {
            for id in &ids {
                let _ = tokio::fs::remove_file(blob_path(&relay.blobs, id)).await;
            }
            if !ids.is_empty() {
                tracing::info!("deleted {} expired attachments", ids.len());
            }
        }
        Err(e) => tracing::error!("attachment sweep failed: {e}"),
    }
    let Ok(mut dir) = tokio::fs::read_dir(&relay.blobs).await else {
        return;
    };
    let max_age = std::time::Duration::from_secs(relay.cfg.ttl_secs);
    while let Ok(Some(entry)) = dir.next_entry().await {
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

async fn connection(relay: Arc<Relay>, conn: quinn::Connection) {
    let Some(peer) = conn
        .peer_identity()
        .and_then(|p| p.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .and_then(|certs| pocnet_wire::tls::peer_identity(&certs))
    else {
        conn.close(2u32.into(), b"no client key");
        return;
    };
    tracing::debug!("connection from {}", peer.fingerprint().short());
    while let Ok((send, recv)) = conn.accept_bi().await {
        let relay = relay.clone();
        tokio::spawn(async move {
            if let Err(e) = stream(relay, peer, send, recv).await {
                tracing::debug!("stream ended: {e}");
            }
        });
    }
}

/// Reads one length-prefixed frame; `None` at a clean end of stream.
pub async fn read_frame(recv: &mut RecvStream, max: usize) -> anyhow::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        anyhow::bail!(pocnet_wire::FrameError::TooLarge { len, max });
    }
    // Grow with what actually arrives, so a declared length reserves nothing by itself.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let mut chunk = vec![0u8; len.min(64 * 1024)];
    while body.len() < len {
        let want = (len - body.len()).min(chunk.len());
        recv.read_exact(&mut chunk[..want]).await?;
        body.extend_from_slice(&chunk[..want]);
    }
    Ok(Some(body))
}

fn err(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
        || e.to_string().contains("full")
}

fn store_err(e: StoreError) -> Response {
    match e {
        StoreError::QuotaExceeded(_) => err(ErrorCode::QuotaExceeded, e.to_string()),
        StoreError::BadInvite => err(
            ErrorCode::BadInvite,
            "invite code not recognised; check it with the relay operator",
        ),
        StoreError::InviteExpired => err(
            ErrorCode::InviteExpired,
            "invite code expired; ask the relay operator for a new one",
        ),
        StoreError::InviteUsed => err(
            ErrorCode::InviteUsed,
            "invite code already used; each code enrols one key",
        ),
        StoreError::AlreadyEnrolled(_) | StoreError::HandleTaken(_) | StoreError::IdReused => {
            err(ErrorCode::Forbidden, e.to_string())
        }
        StoreError::Sqlite(ref inner) if is_full(inner) => {
            tracing::error!("{e}");
            err(
                ErrorCode::Internal,
                "the relay's storage is full; nothing was stored. Retry later; the operator has been told",
            )
        }
        StoreError::Sqlite(_) | StoreError::Closed => {
            tracing::error!("{e}");
            err(ErrorCode::Internal, format!("{e}; nothing was stored, retry later"))
        }
    }
}

async fn stream(
    relay: Arc<Relay>,
    peer: IdentityKey,
    mut send: SendStream,
    mut recv: RecvStream,
) -> anyhow::Result<()> {
    let body = match read_frame(&mut recv, MAX_FRAME).await {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(()),
        Err(e) => {
            send.write_all(&encode(&err(ErrorCode::TooLarge, e.to_string())))
                .await?;
            send.finish()?;
            return Ok(());
        }
    };
    let request: Request = match decode(&body) {
        Ok(r) => r,
        Err(e) => {
            send.write_all(&encode(&err(
                ErrorCode::Malformed,
                format!("{e}; is the client up to date?"),
            )))
            .await?;
            send.finish()?;
            return Ok(());
        }
    };
    if relay.stopping.load(Ordering::SeqCst) {
        send.write_all(&encode(&err(
            ErrorCode::ShuttingDown,
            "relay is shutting down; retry shortly",
        )))
        .await?;
        send.finish()?;
        return Ok(());
    }
    if let Request::Watch { follow } = request {
        watch(&relay, peer, follow, &mut send).await?;
        send.finish()?;
        return Ok(());
    }
    relay.inflight.fetch_add(1, Ordering::SeqCst);
    let result = answer(&relay, peer, request, &mut send, &mut recv).await;
    relay.inflight.fetch_sub(1, Ordering::SeqCst);
    result?;
    send.finish()?;
    // Wait for the peer to read the answer before the stream is dropped.
    let _ = send.stopped().await;
    Ok(())
}

async fn answer(
    relay: &Relay,
    peer: IdentityKey,
    request: Request,
    send: &mut SendStream,
    recv: &mut RecvStream,
) -> anyhow::Result<()> {
    match request {
        // Watch streams are long-lived and answered by `watch` in `stream`.
        Request::Watch { .. } => {}
        Request::PutBlob {
            message_id,
            total_len,
            offset,
        } => {
            let resp = match relay.member_ok(&peer) {
                Err(r) => r,
                Ok(()) => put_blob(relay, &peer, message_id, total_len, offset, recv).await,
            };
            send.write_all(&encode(&resp)).await?;
        }
        Request::GetBlob { message_id, offset } => get_blob(relay, &peer, message_id, offset, send).await?,
        other => {
            let resp = handle_request(relay, &peer, other).await;
            send.write_all(&encode(&resp)).await?;
        }
    }
    Ok(())
}

impl Relay {
    #[allow(clippy::result_large_err)] // the error is the answer to send, built once per request
    fn member_ok(&self, peer: &IdentityKey) -> Result<(), Response> {
        match self.store.member(peer.as_bytes()) {
            Ok(Some(m)) if m.revoked => Err(err(
                ErrorCode::Revoked,
                "this key has been revoked; contact the Secretariat",
            )),
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(err(
                ErrorCode::NotEnrolled,
                "this key is not enrolled; run `pocnet enrol` with an invite code",
            )),
            Err(e) => Err(store_err(e)),
        }
    }
}

async fn handle_request(relay: &Relay, peer: &IdentityKey, req: Request) -> Response {
    match req {
        Request::Hello { protocol } => {
            if protocol != pocnet_wire::PROTOCOL_VERSION {
                return err(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "relay speaks protocol {}, client {protocol}",
                        pocnet_wire::PROTOCOL_VERSION
                    ),
                );
            }
            match relay.store.member(peer.as_bytes()) {
                Ok(Some(m)) if m.revoked => {
                    err(ErrorCode::Revoked, "this key has been revoked; contact the Secretariat")
                }
                Ok(member) => Response::Welcome {
                    relay_time_ms: now_ms(),
                    member,
                },
                Err(e) => store_err(e),
            }
        }
        Request::Enrol {
            invite,
            public_identity,
        } => {
            let pi = match pocnet_crypto::PublicIdentity::from_bytes(&public_identity) {
                Ok(pi) => pi,
                Err(e) => return err(ErrorCode::Malformed, format!("public identity rejected: {e}")),
            };
            if pi.key() != peer {
                return err(
                    ErrorCode::Forbidden,
                    "the public identity must be the connection's own key",
                );
            }
            match relay
                .store
                .enrol(
                    invite,
                    *peer.as_bytes(),
                    peer.fingerprint().to_hex(),
                    public_identity,
                    now_ms(),
                )
                .await
            {
                Ok(member) => Response::Enrolled { member },
                Err(e) => store_err(e),
            }
        }
        other => {
            if let Err(r) = relay.member_ok(peer) {
                return r;
            }
            match other {
                Request::Lookup { query } => match relay.store.lookup(&query) {
                    Ok(members) => Response::Directory { members },
                    Err(e) => store_err(e),
                },
                Request::Send { envelope } => send_envelope(relay, peer, envelope).await,
                Request::Ack { seqs } => match relay.store.ack(*peer.as_bytes(), seqs).await {
                    Ok(_) => Response::Done,
                    Err(e) => store_err(e),
                },
                Request::SendReceipt { to, receipt } => match Receipt::verify(&receipt, peer) {
                    Err(e) => err(ErrorCode::BadEnvelope, format!("receipt rejected: {e}")),
                    Ok(r) if r.sender != to => err(ErrorCode::Malformed, "receipt is addressed to another sender"),
                    Ok(_) if !matches!(relay.store.member(&to), Ok(Some(m)) if !m.revoked) => err(
                        ErrorCode::UnknownRecipient,
                        "the receipt's addressee is not an active member",
                    ),
                    Ok(_) if !relay.limiter.lock().expect("limiter").allow(*peer.as_bytes(), now_ms()) => err(
                        ErrorCode::RateLimited,
                        format!("over {} requests/s; retry in a moment", relay.cfg.rate_per_sec),
                    ),
                    Ok(_) => {
                        let now = now_ms();
                        match relay
                            .store
                            .queue_receipt(to, *peer.as_bytes(), receipt, now + relay.cfg.ttl_secs * 1000)
                            .await
                        {
                            Ok(()) => Response::Done,
                            Err(e) => store_err(e),
                        }
                    }
                },
                _ => err(ErrorCode::Malformed, "unexpected request"),
            }
        }
    }
}

async fn send_envelope(relay: &Relay, peer: &IdentityKey, envelope: Vec<u8>) -> Response {
    if envelope.len() as u64 > relay.cfg.max_envelope_bytes {
        return err(
            ErrorCode::TooLarge,
            format!(
                "envelope is {} bytes, the relay's limit is {}; send large files with --attach",
                envelope.len(),
                relay.cfg.max_envelope_bytes
            ),
        );
    }
    let (header, envelope_hash) = match pocnet_crypto::verify_from(&envelope, peer) {
        Ok(v) => v,
        Err(pocnet_crypto::Error::WrongSender) => {
            return err(
                ErrorCode::NotSender,
                "the envelope's signed sender is not this connection's key",
            )
        }
        Err(e) => return err(ErrorCode::BadEnvelope, format!("envelope rejected: {e}")),
    };
    let now = now_ms();
    if !relay.limiter.lock().expect("limiter").allow(*peer.as_bytes(), now) {
        return err(
            ErrorCode::RateLimited,
            format!("over {} envelopes/s; retry in a moment", relay.cfg.rate_per_sec),
        );
    }
    let mut recipients = Vec::with_capacity(header.recipients.len());
    for r in &header.recipients {
        match relay.store.member(&r.key) {
            Ok(Some(m)) if !m.revoked => recipients.push(r.key),
            Ok(Some(m)) => {
                return err(
                    ErrorCode::UnknownRecipient,
                    format!("recipient {} has been revoked", m.handle),
                )
            }
            Ok(None) => {
                return err(
                    ErrorCode::UnknownRecipient,
                    format!(
                        "recipient {} is not enrolled at this relay",
                        pocnet_crypto::to_hex(&r.key[..8])
                    ),
                )
            }
            Err(e) => return store_err(e),
        }
    }
    let message_id = header.message_id;
    let new = NewEnvelope {
        sender: *peer.as_bytes(),
        message_id,
        envelope_hash,
        bytes: envelope,
        recipients,
        now_ms: now,
        expires_at_ms: now + relay.cfg.ttl_secs * 1000,
    };
    match relay.store.accept(new).await {
        Ok(a) => Response::Accepted {
            message_id,
            envelope_hash,
            stored_at_ms: a.stored_at_ms,
            relay_signature: relay
                .identity
                .sign(RELAY_ACCEPT, &accept_statement(&envelope_hash, a.stored_at_ms))
                .to_vec(),
            duplicate: a.duplicate,
        },
        Err(e) => store_err(e),
    }
}

fn trim(delivery: Delivery, me: &Key) -> Option<Delivery> {
    match delivery {
        Delivery::Envelope { seq, envelope } => match pocnet_crypto::trim_for_recipient(&envelope, me) {
            Ok(envelope) => Some(Delivery::Envelope { seq, envelope }),
            Err(e) => {
                tracing::error!("stored envelope {seq} cannot be trimmed: {e}");
                None
            }
        },
        other => Some(other),
    }
}

async fn watch(relay: &Relay, peer: IdentityKey, follow: bool, send: &mut SendStream) -> anyhow::Result<()> {
    if let Err(r) = relay.member_ok(&peer) {
        send.write_all(&encode(&r)).await?;
        return Ok(());
    }
    let me = *peer.as_bytes();
    // Subscribe before reading the backlog so nothing committed in between is missed.
    let mut live = follow.then(|| relay.store.hub.subscribe(me));
    let mut last = 0u64;
    loop {
        let page = match relay.store.pending(me, last, 256, now_ms()).await {
            Ok(p) => p,
            Err(e) => {
                send.write_all(&encode(&store_err(e))).await?;
                return Ok(());
            }
        };
        if page.is_empty() {
            break;
        }
        for d in page {
            last = last.max(d.seq());
            if let Some(d) = trim(d, &me) {
                send.write_all(&encode(&Response::Deliver(d))).await?;
            }
        }
    }
    send.write_all(&encode(&Response::CaughtUp)).await?;
    let Some(live) = live.as_mut() else {
        return Ok(());
    };
    while let Some(d) = live.recv().await {
        // A key revoked while watching stops receiving at once.
        if let Err(r) = relay.member_ok(&peer) {
            send.write_all(&encode(&r)).await?;
            return Ok(());
        }
        if d.seq() <= last {
            continue;
        }
        last = d.seq();
        if let Some(d) = trim(d, &me) {
            send.write_all(&encode(&Response::Deliver(d))).await?;
        }
    }
    Ok(())
}

fn blob_path(dir: &std::path::Path, message_id: &[u8; 16]) -> PathBuf {
    dir.join(pocnet_crypto::to_hex(message_id))
}

async fn put_blob(
    relay: &Relay,
    peer: &IdentityKey,
    message_id: [u8; 16],
    total_len: u64,
    offset: u64,
    recv: &mut RecvStream,
) -> Response {
    if total_len > relay.cfg.max_attachment_bytes {
        return err(
            ErrorCode::TooLarge,
            format!(
                "attachment is {total_len} bytes, the relay's limit is {}",
                relay.cfg.max_attachment_bytes
            ),
        );
    }
    match relay.store.blob(&message_id) {
        Ok(Some((sender, n, _))) if sender == *peer.as_bytes() => {
            return Response::BlobStored {
                stored: n,
                complete: true,
            }
        }
        Ok(Some(_)) => return err(ErrorCode::Forbidden, "another sender holds this attachment id"),
        Ok(None) => {}
        Err(e) => return store_err(e),
    }
    // The partial upload is the sender's own: another member cannot append to it.
    let part = relay.blobs.join(format!(
        "{}-{}.part",
        pocnet_crypto::to_hex(peer.as_bytes()),
        pocnet_crypto::to_hex(&message_id)
    ));
    let have = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
    if offset != have || have > total_len {
        // The client resumes from what is on disk.
        return Response::BlobStored {
            stored: have.min(total_len),
            complete: false,
        };
    }
    let mut file = match tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .await
    {
        Ok(f) => f,
        Err(e) => return err(ErrorCode::Internal, format!("cannot store attachment: {e}")),
    };
    let mut stored = have;
    let mut buf = vec![0u8; 256 * 1024];
    while stored < total_len {
        let want = ((total_len - stored) as usize).min(buf.len());
        match recv.read(&mut buf[..want]).await {
            Ok(Some(n)) => {
                if let Err(e) = file.write_all(&buf[..n]).await {
                    return err(
                        ErrorCode::Internal,
                        format!("cannot store attachment ({e}); {stored} bytes kept, resume later"),
                    );
                }
                stored += n as u64;
            }
            Ok(None) | Err(_) => break,
        }
    }
    if let Err(e) = file.sync_all().await {
        return err(ErrorCode::Internal, format!("cannot store attachment: {e}"));
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
    let checked = tokio::task::spawn_blocking(move || -> Result<pocnet_crypto::Header, String> {
        let mut f = std::io::BufReader::new(std::fs::File::open(&path).map_err(|e| e.to_string())?);
        pocnet_crypto::envelope::verify_stream(&mut f)
            .map(|(h, _)| h)
            .map_err(|e| e.to_string())
    })
    .await;
    let header = match checked {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            let _ = tokio::fs::remove_file(&part).await;
            return err(ErrorCode::BadEnvelope, format!("attachment rejected: {e}"));
        }
        Err(e) => return err(ErrorCode::Internal, e.to_string()),
    };
    if header.sender != *peer || header.message_id != message_id || header.content_type != ContentType::Attachment {
        let _ = tokio::fs::remove_file(&part).await;
        return err(
            ErrorCode::BadEnvelope,
            "attachment envelope does not match its upload (sender, id or content type)",
        );
    }
    if let Err(e) = tokio::fs::rename(&part, blob_path(&relay.blobs, &message_id)).await {
        return err(ErrorCode::Internal, format!("cannot store attachment: {e}"));
    }
    let recipients = header.recipients.iter().map(|r| r.key).collect();
    match relay
        .store
        .put_blob(message_id, *peer.as_bytes(), total_len, recipients, now_ms())
        .await
    {
        Ok(()) => Response::BlobStored { stored, complete: true },
        Err(e) => store_err(e),
    }
}

async fn get_blob(
    relay: &Relay,
    peer: &IdentityKey,
    message_id: [u8; 16],
    offset: u64,
    send: &mut SendStream,
) -> anyhow::Result<()> {
    if let Err(r) = relay.member_ok(peer) {
        send.write_all(&encode(&r)).await?;
        return Ok(());
    }
    let (total_len, allowed) = match relay.store.blob(&message_id) {
        Ok(Some((sender, n, rcpts))) => (n, sender == *peer.as_bytes() || rcpts.contains(peer.as_bytes())),
        Ok(None) => {
            send.write_all(&encode(&err(ErrorCode::NotFound, "no such attachment at this relay")))
                .await?;
            return Ok(());
        }
        Err(e) => {
            send.write_all(&encode(&store_err(e))).await?;
            return Ok(());
        }
    };
    if !allowed {
        send.write_all(&encode(&err(
            ErrorCode::Forbidden,
            "this key is not a recipient of the attachment",
        )))
        .await?;
        return Ok(());
    }
    send.write_all(&encode(&Response::Blob { total_len })).await?;
    let mut f = tokio::fs::File::open(blob_path(&relay.blobs, &message_id)).await?;
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
