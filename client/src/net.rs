//! The client's QUIC session with its relay: connect with the pinned key, one request
//! per stream, a `Watch` stream for deliveries, and attachment transfer.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::{bail, Context};
use pocnet_crypto::{Fingerprint, Identity, IdentityKey};
use pocnet_wire::{decode, encode, Delivery, ErrorCode, FrameError, Member, Request, Response, MAX_FRAME};
use quinn::{RecvStream, SendStream};

/// An error the relay returned.
#[derive(Debug, thiserror::Error)]
#[error("relay refused: {message} ({code:?})")]
pub struct RelayError {
    /// The code.
    pub code: ErrorCode,
    /// The relay's explanation.
    pub message: String,
}

/// The relay sent more than the message said the attachment could be.
#[derive(Debug, thiserror::Error)]
#[error("attachment is {got} bytes, more than the {max} the message allows")]
pub struct TooLong {
    /// Bytes offered.
    pub got: u64,
    /// Most allowed.
    pub max: u64,
}

/// An open, authenticated session.
pub struct Session {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    /// The relay's identity key as presented in the (pinned) handshake.
    pub relay_key: IdentityKey,
    /// Our membership, if enrolled.
    pub member: Option<Member>,
}

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("cannot resolve relay address {addr:?} (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("relay address {addr:?} resolves to nothing"))
}

fn explain(e: quinn::ConnectionError) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("Revoked") {
        anyhow::anyhow!(
            "the relay refused this key at the handshake: it has been revoked; contact the Secretariat ({text})"
        )
    } else if text.contains("ApplicationVerificationFailure") || text.contains("UnknownIssuer") {
        anyhow::anyhow!("the relay's key does not match the pinned fingerprint: you may be talking to the wrong relay (or the relay's key changed); check the fingerprint with the relay operator ({text})")
    } else if text.contains("timed out") {
        anyhow::anyhow!("no answer from the relay: is it running and reachable? ({text})")
    } else {
        anyhow::anyhow!("connection to the relay failed: {text}")
    }
}

impl Session {
    /// Connects to `addr`, requiring the relay key with fingerprint `pin`, and says Hello.
    /// A connection counts as accepted only once the relay has answered.
    pub async fn connect(identity: &Identity, addr: &str, pin: Fingerprint) -> anyhow::Result<Session> {
        let addr = resolve(addr)?;
        let seed = identity.signing_seed();
        let tls = pocnet_wire::tls::client_config(&seed, identity.public_key().as_bytes(), pin)?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls)?));
        let mut transport = quinn::TransportConfig::default();
        // A silent relay is declared gone after 10 s, so a POC learns quickly to try another channel.
        transport.max_idle_timeout(Some(std::time::Duration::from_secs(10).try_into()?));
        transport.keep_alive_interval(Some(std::time::Duration::from_secs(3)));
        cfg.transport_config(Arc::new(transport));
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse()?
        } else {
            "0.0.0.0:0".parse()?
        };
        let mut endpoint = quinn::Endpoint::client(bind)?;
        endpoint.set_default_client_config(cfg);
        let conn = endpoint
            .connect(addr, pocnet_wire::SERVER_NAME)?
            .await
            .map_err(explain)?;
        let relay_key = conn
            .peer_identity()
            .and_then(|p| p.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
            .and_then(|c| pocnet_wire::tls::peer_identity(&c))
            .context("relay presented no usable key")?;
        let mut s = Session {
            endpoint,
            conn,
            relay_key,
            member: None,
        };
        match s
            .request(&Request::Hello {
                protocol: pocnet_wire::PROTOCOL_VERSION,
            })
            .await?
        {
            Response::Welcome { member, .. } => s.member = member,
            other => bail!("unexpected answer to Hello: {other:?}"),
        }
        Ok(s)
    }

    /// Requires that this key is enrolled.
    pub fn require_member(&self) -> anyhow::Result<&Member> {
        self.member
            .as_ref()
            .context("this key is not enrolled at the relay: run `pocnet enrol` with an invite code")
    }

    async fn open(&self, req: &Request) -> anyhow::Result<(SendStream, RecvStream)> {
        let (mut send, recv) = self.conn.open_bi().await.map_err(explain)?;
        send.write_all(&encode(req)).await?;
        Ok((send, recv))
    }

    /// Sends one request and returns the relay's answer; relay errors become `RelayError`.
    pub async fn request(&self, req: &Request) -> anyhow::Result<Response> {
        let (mut send, mut recv) = self.open(req).await?;
        send.finish()?;
        let resp = read_response(&mut recv)
            .await?
            .context("relay closed the stream without answering")?;
        into_result(resp)
    }

    /// Writes raw bytes as a request and returns the relay's answer as is (errors
    /// included). For diagnostics and tests of the relay's handling of bad input.
    pub async fn raw(&self, bytes: &[u8]) -> anyhow::Result<Response> {
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(explain)?;
        send.write_all(bytes).await?;
        send.finish()?;
        read_response(&mut recv)
            .await?
            .context("relay closed the stream without answering")
    }

    /// Opens a `Watch` stream.
    pub async fn watch(&self, follow: bool) -> anyhow::Result<Watch> {
        let (mut send, recv) = self.open(&Request::Watch { follow }).await?;
        send.finish()?;
        Ok(Watch { recv })
    }

    /// Uploads an attachment envelope, resuming from what the relay already holds.
    pub async fn put_blob(&self, message_id: [u8; 16], path: &std::path::Path) -> anyhow::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let total_len = tokio::fs::metadata(path).await?.len();
        let mut offset = 0u64;
        for _ in 0..3 {
            let (mut send, mut recv) = self
                .open(&Request::PutBlob {
                    message_id,
                    total_len,
                    offset,
                })
                .await?;
            let mut f = tokio::fs::File::open(path).await?;
            f.seek(std::io::SeekFrom::Start(offset)).await?;
            let mut buf = vec![0u8; 256 * 1024];
            // The relay answers without reading if our offset is not what it holds.
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                if send.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = send.finish();
            match into_result(
                read_response(&mut recv)
                    .await?
                    .context("relay closed the upload without answering")?,
            )? {
                Response::BlobStored { complete: true, .. } => return Ok(()),
                Response::BlobStored {
                    stored,
                    complete: false,
                } => offset = stored,
                other => bail!("unexpected answer to an upload: {other:?}"),
            }
        }
        bail!("attachment upload did not complete; run the command again to resume")
    }

    /// Downloads an attachment envelope into `out`, refusing more than `max` bytes.
    pub async fn get_blob(&self, message_id: [u8; 16], out: &std::path::Path, max: u64) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        let (mut send, mut recv) = self.open(&Request::GetBlob { message_id, offset: 0 }).await?;
        send.finish()?;
        let total = match into_result(read_response(&mut recv).await?.context("relay closed the download")?)? {
            Response::Blob { total_len } => total_len,
            other => bail!("unexpected answer to a download: {other:?}"),
        };
        if total > max {
            bail!(TooLong { got: total, max });
        }
        let mut f = tokio::fs::File::create(out).await?;
        let mut got = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        while let Some(n) = recv.read(&mut buf).await? {
            got += n as u64;
            if got > total {
                bail!(TooLong { got, max: total });
            }
            f.write_all(&buf[..n]).await?;
        }
        f.sync_all().await?;
        if got != total {
            bail!("attachment download stopped at {got} of {total} bytes; retry");
        }
        Ok(())
    }

    /// Closes the connection politely and waits for the relay to be told.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        self.endpoint.wait_idle().await;
    }
}

/// A stream of deliveries.
pub struct Watch {
    recv: RecvStream,
}

/// One event of a watch stream.
pub enum WatchEvent {
    /// An item to process and acknowledge.
    Item(Delivery),
    /// The backlog is done.
    CaughtUp,
}

impl Watch {
    /// The next event; `None` when the relay ends the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<WatchEvent>> {
        match read_response(&mut self.recv).await? {
            None => Ok(None),
            Some(r) => match into_result(r)? {
                Response::Deliver(d) => Ok(Some(WatchEvent::Item(d))),
                Response::CaughtUp => Ok(Some(WatchEvent::CaughtUp)),
                other => bail!("unexpected item on a watch stream: {other:?}"),
            },
        }
    }
}

async fn read_response(recv: &mut RecvStream) -> anyhow::Result<Option<Response>> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(e))) => return Err(explain(e)),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        bail!(FrameError::TooLarge { len, max: MAX_FRAME });
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(Some(decode(&body)?))
}

fn into_result(r: Response) -> anyhow::Result<Response> {
    match r {
        Response::Error { code, message } => Err(RelayError { code, message }.into()),
        other => Ok(other),
    }
}
