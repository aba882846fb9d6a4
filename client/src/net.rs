//! The client's QUIC session with its relay: connect with the pinned key, one pipelined
//! session stream for every request/response call ([`crate::pipe`]), a `Watch` stream for
//! deliveries, and attachment transfer on streams of their own. Every stream is read with
//! the wire crate's `FrameDecoder`, as the relay reads them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use pocnet_crypto::{Fingerprint, Identity, IdentityKey};
use pocnet_wire::{encode, Delivery, FrameDecoder, Member, Request, Response, MAX_FRAME};
use quinn::{RecvStream, SendStream, TransportErrorCode};
use rustls::AlertDescription;

use crate::error::{Error, Result};
use crate::pipe::{Pipe, PipeError};

macro_rules! bail {
    ($($t:tt)*) => {
        return Err(Error::Protocol(format!($($t)*)))
    };
}

/// An open, authenticated session.
pub struct Session {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    pipe: Pipe,
    /// The relay's identity key as presented in the (pinned) handshake.
    pub relay_key: IdentityKey,
    /// Our membership, if enrolled.
    pub member: Option<Member>,
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    let bad = |why: &str| Error::Usage(format!("relay address {addr:?} {why} (expected HOST:PORT)"));
    addr.to_socket_addrs()
        .map_err(|_| bad("cannot be resolved"))?
        .next()
        .ok_or_else(|| bad("resolves to nothing"))
}

/// The QUIC error code carrying TLS alert `alert` (RFC 9001 §4.8).
fn tls_alert(alert: AlertDescription) -> TransportErrorCode {
    TransportErrorCode::crypto(u8::from(alert))
}

/// Maps a QUIC connection error by its type and TLS alert code, never by its text.
///
/// - Our verifier refused the relay's key (`ApplicationVerificationFailure` → access_denied,
///   or the relay could not sign for the pinned key → decrypt_error / bad_certificate):
///   a local `TransportError` with that alert.
/// - The relay refused our key as revoked (`CertificateError::Revoked` →
///   certificate_revoked): the relay closes with that alert.
pub(crate) fn explain(e: quinn::ConnectionError) -> Error {
    use quinn::ConnectionError as C;
    let wrong_relay = [
        tls_alert(AlertDescription::AccessDenied),
        tls_alert(AlertDescription::UnknownCA),
        tls_alert(AlertDescription::DecryptError),
        tls_alert(AlertDescription::BadCertificate),
    ];
    let revoked = tls_alert(AlertDescription::CertificateRevoked);
    match &e {
        C::TransportError(t) if wrong_relay.contains(&t.code) => Error::WrongRelayKey,
        C::TransportError(t) if t.code == revoked => Error::Revoked,
        C::ConnectionClosed(c) if c.error_code == revoked => Error::Revoked,
        C::TimedOut => Error::RelayUnreachable(e.to_string()),
        _ => Error::Connection(e),
    }
}

impl From<quinn::ConnectionError> for Error {
    fn from(e: quinn::ConnectionError) -> Self {
        explain(e)
    }
}

impl From<quinn::WriteError> for Error {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(c) => explain(c),
            other => Error::Incomplete(format!("the relay stopped reading a request: {other}")),
        }
    }
}

impl From<quinn::ReadError> for Error {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::ConnectionLost(c) => explain(c),
            other => Error::Incomplete(format!("the relay's answer stopped: {other}")),
        }
    }
}

impl From<quinn::ReadExactError> for Error {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::ReadError(r) => r.into(),
            quinn::ReadExactError::FinishedEarly(n) => {
                Error::Incomplete(format!("the relay's answer ended early after {n} bytes"))
            }
        }
    }
}

impl From<quinn::ClosedStream> for Error {
    fn from(e: quinn::ClosedStream) -> Self {
        Error::Incomplete(format!("the request stream closed: {e}"))
    }
}

impl From<pocnet_wire::FrameError> for Error {
    fn from(e: pocnet_wire::FrameError) -> Self {
        Error::Protocol(format!("undecodable answer: {e}"))
    }
}

impl Session {
    /// Connects to `addr`, requiring the relay key with fingerprint `pin`, and says Hello.
    /// A connection counts as accepted only once the relay has answered.
    pub async fn connect(identity: &Identity, addr: &str, pin: Fingerprint) -> Result<Session> {
        let addr = resolve(addr)?;
        let seed = identity.signing_seed();
        let setup = |e: &dyn std::fmt::Display| Error::Protocol(format!("cannot set up TLS: {e}"));
        let tls =
            pocnet_wire::tls::client_config(&seed, identity.public_key().as_bytes(), pin).map_err(|e| setup(&e))?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| setup(&e))?,
        ));
        let mut transport = quinn::TransportConfig::default();
        // A silent relay is declared gone after 10 s, so a POC learns quickly to try another channel.
        transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(10_000))));
        transport.keep_alive_interval(Some(std::time::Duration::from_secs(3)));
        cfg.transport_config(Arc::new(transport));
        let bind = SocketAddr::from(if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED.into(), 0)
        } else {
            (std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED), 0)
        });
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| Error::Io {
            context: "cannot open a UDP socket".into(),
            source: e,
        })?;
        endpoint.set_default_client_config(cfg);
        let conn = endpoint
            .connect(addr, pocnet_wire::SERVER_NAME)
            .map_err(|e| Error::Usage(format!("cannot connect to {addr}: {e}")))?
            .await?;
        // quinn hands the peer's certificates over as `Box<dyn Any>`: this is a type
        // conversion of quinn's API, not error handling.
        let relay_key = conn
            .peer_identity()
            .and_then(|p| p.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
            .and_then(|c| pocnet_wire::tls::peer_identity(&c))
            .ok_or(Error::WrongRelayKey)?;
        let pipe = Pipe::open(&conn).await?;
        let mut s = Session {
            endpoint,
            conn,
            pipe,
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
    pub fn require_member(&self) -> Result<&Member> {
        self.member.as_ref().ok_or(Error::NotEnrolled)
    }

    async fn open(&self, req: &Request) -> Result<(SendStream, RecvStream)> {
        let (mut send, recv) = self.conn.open_bi().await?;
        send.write_all(&encode(req)).await?;
        Ok((send, recv))
    }

    /// Sends one request and returns the relay's answer; relay errors become
    /// `Error::Relay`. Call/answer requests share the session stream, so any number may be
    /// in flight from concurrent tasks; the streaming ones (`Watch`, blobs) have their own
    /// calls.
    pub async fn request(&self, req: &Request) -> Result<Response> {
        match req {
            Request::Watch { .. } | Request::PutBlob { .. } | Request::GetBlob { .. } | Request::Pipeline => {
                bail!("{req:?} has its own stream; use its own call")
            }
            _ => {}
        }
        let resp = self.pipe.call(req.clone()).await.map_err(|e| self.lost(e))?;
        into_result(resp)
    }

    /// Why a pipelined call got no answer: the connection's own error if it is gone.
    fn lost(&self, e: PipeError) -> Error {
        if let Some(reason) = self.conn.close_reason() {
            return explain(reason);
        }
        match e {
            PipeError::Lost(why) => Error::Incomplete(format!("the relay did not answer: {why}")),
            PipeError::Frame(f) => f.into(),
        }
    }

    /// Writes raw bytes as a request and returns the relay's answer as is (errors
    /// included). For diagnostics and tests of the relay's handling of bad input.
    pub async fn raw(&self, bytes: &[u8]) -> Result<Response> {
        let (mut send, recv) = self.conn.open_bi().await?;
        send.write_all(bytes).await?;
        send.finish()?;
        FramedRecv::new(recv).next().await?.ok_or_else(no_answer)
    }

    /// Opens a `Watch` stream.
    pub async fn watch(&self, follow: bool) -> Result<Watch> {
        let (mut send, recv) = self.open(&Request::Watch { follow }).await?;
        send.finish()?;
        Ok(Watch {
            recv: FramedRecv::new(recv),
        })
    }

    /// Uploads an attachment envelope, resuming from what the relay already holds.
    pub async fn put_blob(&self, message_id: [u8; 16], path: &std::path::Path) -> Result<()> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let total_len = tokio::fs::metadata(path).await?.len();
        let mut offset = 0u64;
        for _ in 0..3 {
            let (mut send, recv) = self
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
            match into_result(FramedRecv::new(recv).next().await?.ok_or_else(no_answer)?)? {
                Response::BlobStored { complete: true, .. } => return Ok(()),
                Response::BlobStored {
                    stored,
                    complete: false,
                } => offset = stored,
                other => bail!("unexpected answer to an upload: {other:?}"),
            }
        }
        Err(Error::Incomplete("attachment upload did not complete".into()))
    }

    /// Downloads an attachment envelope into `out`, refusing more than `max` bytes.
    pub async fn get_blob(&self, message_id: [u8; 16], out: &std::path::Path, max: u64) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let (mut send, recv) = self.open(&Request::GetBlob { message_id, offset: 0 }).await?;
        send.finish()?;
        let mut framed = FramedRecv::new(recv);
        let total = match into_result(framed.next().await?.ok_or_else(no_answer)?)? {
            Response::Blob { total_len } => total_len,
            other => bail!("unexpected answer to a download: {other:?}"),
        };
        let too_long = |got| Error::TooLarge {
            what: "the attachment the relay offers",
            got,
            max,
        };
        if total > max {
            return Err(too_long(total));
        }
        let mut f = crate::fsutil::create_private_async(out).await?;
        // Raw bytes that arrived with the `Blob` frame come first.
        let first = framed.dec.take_rest();
        let mut recv = framed.recv;
        let mut got = first.len() as u64;
        if got > total {
            return Err(too_long(got));
        }
        f.write_all(&first).await?;
        let mut buf = vec![0u8; 256 * 1024];
        while let Some(n) = recv.read(&mut buf).await? {
            got = got.saturating_add(n as u64);
            if got > total {
                return Err(too_long(got));
            }
            f.write_all(&buf[..n]).await?;
        }
        f.sync_all().await?;
        if got != total {
            return Err(Error::Incomplete(format!(
                "attachment download stopped at {got} of {total} bytes"
            )));
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
    recv: FramedRecv,
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
    pub async fn next(&mut self) -> Result<Option<WatchEvent>> {
        match self.recv.next().await? {
            None => Ok(None),
            Some(r) => match into_result(r)? {
                Response::Deliver(d) => Ok(Some(WatchEvent::Item(d))),
                Response::CaughtUp => Ok(Some(WatchEvent::CaughtUp)),
                other => bail!("unexpected item on a watch stream: {other:?}"),
            },
        }
    }
}

/// A receive stream read frame by frame with the shared decoder.
struct FramedRecv {
    recv: RecvStream,
    dec: FrameDecoder,
}

impl FramedRecv {
    fn new(recv: RecvStream) -> Self {
        FramedRecv {
            recv,
            dec: FrameDecoder::new(MAX_FRAME),
        }
    }
    /// The next answer frame; `None` at a clean end of stream.
    async fn next(&mut self) -> Result<Option<Response>> {
        loop {
            if let Some(r) = self.dec.decode_next::<Response>()? {
                return Ok(Some(r));
            }
            match self.recv.read_chunk(256 * 1024, true).await? {
                Some(c) => self.dec.push(&c.bytes),
                None => {
                    self.dec.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}

fn no_answer() -> Error {
    Error::Incomplete("the relay closed the stream without answering".into())
}

fn into_result(r: Response) -> Result<Response> {
    match r {
        Response::Error { code, message } => Err(Error::Relay { code, message }),
        other => Ok(other),
    }
}
