//! The hostile-client probe: attacks a live relay (the real binary, on 127.0.0.1) while an
//! honest pair keeps exchanging messages. Used by `tests/tests/hostile.rs` (are the attacks
//! held off, does every honest message arrive) and by the `pocnet-probe` tool (the honest
//! pair's rate and the relay's memory during and after the attacks).
//!
//! Attacks, one per limit of issue 13:
//! - strangers (keys that are not enrolled): many connections, each opening more streams
//!   than allowed, declaring huge frames, trickling partial frames, asking member calls;
//! - an insider sending envelopes its recipient can never open (no stanza for it);
//! - an insider opening many idle watch streams;
//! - an insider reserving upload space with attachments it never sends;
//! - an insider flooding every request type.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pocnet_client::pipe::Pipe;
use pocnet_core::directory::{self, Author, Category, Contact, Handle, Publisher, Rank};
use pocnet_crypto::{Fingerprint, HeaderFields, Identity, PublicIdentity, Suite};
use pocnet_wire::{encode, Delivery, ErrorCode, FrameDecoder, Request, Response, MAX_FRAME};

/// A raw QUIC client with a key of its own.
pub struct Raw {
    /// Its identity.
    pub id: Identity,
    _ep: quinn::Endpoint,
    /// The connection.
    pub conn: quinn::Connection,
    /// Its pipelined session.
    pub pipe: Pipe,
}

/// The first answer frame on a stream.
pub async fn first_answer(mut r: quinn::RecvStream) -> anyhow::Result<Response> {
    let mut dec = FrameDecoder::new(MAX_FRAME);
    loop {
        if let Some(resp) = dec.decode_next::<Response>()? {
            return Ok(resp);
        }
        match r.read_chunk(64 * 1024, true).await? {
            Some(c) => dec.push(&c.bytes),
            None => anyhow::bail!("stream ended without an answer"),
        }
    }
}

/// A fresh identity.
pub fn identity() -> Identity {
    Identity::generate(&mut pocnet_crypto::os_rng(), pocnet_client::now_ms() / 1000, 86400).expect("identity")
}

/// Connects as `id` to the relay pinned by `fp`.
pub async fn connect(addr: SocketAddr, fp: Fingerprint, id: Identity) -> anyhow::Result<Raw> {
    let tls = pocnet_wire::tls::client_config(&id.signing_seed(), id.public_key().as_bytes(), fp)?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls)?));
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(Duration::from_secs(30).try_into()?));
    cfg.transport_config(Arc::new(t));
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    ep.set_default_client_config(cfg);
    let conn = ep.connect(addr, pocnet_wire::SERVER_NAME)?.await?;
    let pipe = Pipe::open(&conn).await?;
    Ok(Raw {
        id,
        _ep: ep,
        conn,
        pipe,
    })
}

impl Raw {
    /// One request on a stream of its own; the first answer frame.
    pub async fn one(&self, req: &Request) -> anyhow::Result<Response> {
        self.raw(&encode(req)).await
    }
    /// Raw bytes on a stream of their own; the first answer frame.
    pub async fn raw(&self, bytes: &[u8]) -> anyhow::Result<Response> {
        let (mut s, r) = self.conn.open_bi().await?;
        s.write_all(bytes).await?;
        let _ = s.finish();
        first_answer(r).await
    }
    /// Appends the Secretariat's leaves with its checkpoint over the new tree.
    pub async fn log_append(&self, leaves: Vec<Vec<u8>>, checkpoint: String) -> anyhow::Result<()> {
        match self.pipe.call(Request::LogAppend { leaves, checkpoint }).await? {
            Response::Done => Ok(()),
            other => anyhow::bail!("log append: {other:?}"),
        }
    }
}

/// The log origin of the in-process directories.
pub const ORIGIN: &str = "probe.pocnet/directory";

/// An in-process Secretariat writing the directory a relay serves: the tools and tests list
/// raw keys in it as POCs (each state's national authority nominates, the Secretariat
/// approves), and publish the entries to the relay over a real connection.
pub struct Secretariat {
    /// The Secretariat's key.
    pub id: Identity,
    publisher: Publisher,
    /// National authorities enrolled so far, by state (one per state).
    authorities: BTreeMap<String, Identity>,
    /// POCs listed so far (the next free state and rank).
    listed: usize,
    /// Handles per state before the next state is begun.
    per_state: usize,
}

/// Handles per state by default: two categories, each primary, alternate and further1..9.
const PER_STATE: usize = 22;

impl Secretariat {
    /// A new Secretariat key and the genesis of its log (not yet published).
    pub fn new() -> Secretariat {
        Secretariat::with_per_state(PER_STATE)
    }

    /// Like [`Secretariat::new`], listing `per_state` handles in each state before the next:
    /// half cyber policy, half foreign affairs contacts, each category primary, alternate,
    /// then further ranks (6: primary, alternate and further1 of each). An even number from
    /// 2 to 22.
    pub fn with_per_state(per_state: usize) -> Secretariat {
        assert!(
            per_state.is_multiple_of(2) && (2..=PER_STATE).contains(&per_state),
            "per_state must be even, 2 to {PER_STATE}"
        );
        let id = identity();
        let publisher = Publisher::genesis(&id, ORIGIN, pocnet_client::now_ms(), vec![], 0).expect("genesis");
        Secretariat {
            id,
            publisher,
            authorities: BTreeMap::new(),
            listed: 0,
            per_state,
        }
    }

    /// The directory key a relay (`init --directory`) and clients are given.
    pub fn vkey(&self) -> String {
        directory::vkey(ORIGIN, self.id.public_key())
    }

    /// The handle of the `n`-th key listed (from 0): (state, category, rank).
    pub fn place(&self, n: usize) -> (&'static str, Category, Rank) {
        let per = self.per_state;
        let state = pocnet_core::iso3166::ASSIGNED[n / per].0;
        let slot = n % per;
        let category = if slot < per / 2 {
            Category::CyberPolicy
        } else {
            Category::ForeignAffairs
        };
        let rank = match slot % (per / 2) {
            0 => Rank::Primary,
            1 => Rank::Alternate,
            k => Rank::Further((k - 1) as u8),
        };
        (state, category, rank)
    }

    /// The next free handle: (state, category, rank).
    fn next_handle(&mut self) -> (&'static str, Category, Rank) {
        let n = self.listed;
        self.listed += 1;
        self.place(n)
    }

    /// Lists each key as a POC (with its state's authority, enrolled the first time), and
    /// publishes the new entries to the relay at `addr`, in appends that fit a frame.
    /// Returns the handles, in order.
    pub async fn list(&mut self, addr: SocketAddr, fp: Fingerprint, keys: &[&Identity]) -> anyhow::Result<Vec<String>> {
        let sec = Identity::from_secret_bytes(&self.id.to_secret_bytes())?;
        // The log begins with the genesis alone: the Secretariat is not admitted until it
        // is in, and a stranger's first frame is small.
        if self.publisher.unpublished().0 == 0 {
            let c = connect(addr, fp, Identity::from_secret_bytes(&sec.to_secret_bytes())?).await?;
            let (_, leaves) = self.publisher.unpublished();
            c.log_append(leaves.to_vec(), self.publisher.checkpoint(&sec).to_text())
                .await?;
            self.publisher.mark_published();
            c.conn.close(0u32.into(), b"");
        }
        let c = connect(addr, fp, sec).await?;
        let own = Identity::from_secret_bytes(&self.id.to_secret_bytes())?;
        let author = Author::new(&own, ORIGIN);
        let mut handles = Vec::new();
        let mut bytes = 0;
        for (i, key) in keys.iter().enumerate() {
            let (state, category, rank) = self.next_handle();
            let now = pocnet_client::now_ms();
            if !self.authorities.contains_key(state) {
                let a = identity();
                let st = author
                    .authority_enrol(now, state, a.public_key(), &format!("{state} authority"), "Ministry")
                    .expect("authority");
                self.publisher.push(&st).map_err(|e| anyhow::anyhow!("{e}"))?;
                bytes += st.as_bytes().len();
                self.authorities.insert(state.to_string(), a);
            }
            let national = Author::new(&self.authorities[state], ORIGIN);
            let public = key.public();
            let contact = Contact {
                name: format!("probe POC {i}"),
                position: "Cyber policy coordinator".into(),
                institution: "National Cybersecurity Agency".into(),
                email: "poc@example.gov".into(),
                phones: vec!["+1 555 0100".into()],
                languages: vec!["en".into()],
                time_zone: "UTC".into(),
                working_hours: "Mon-Fri 09:00-18:00".into(),
            };
            let nomination = national
                .nominate(now, state, category, rank, contact, &public)
                .expect("nomination");
            let approval = author.approve(now, &nomination, &public, now).expect("approval");
            self.publisher.push(&approval).map_err(|e| anyhow::anyhow!("{e}"))?;
            bytes += approval.as_bytes().len();
            handles.push(Handle::poc(state, category, rank).to_string());
            if bytes > MAX_FRAME / 2 || i + 1 == keys.len() {
                let (_, leaves) = self.publisher.unpublished();
                c.log_append(leaves.to_vec(), self.publisher.checkpoint(&own).to_text())
                    .await?;
                self.publisher.mark_published();
                bytes = 0;
            }
        }
        c.conn.close(0u32.into(), b"");
        Ok(handles)
    }
}

impl Default for Secretariat {
    fn default() -> Self {
        Secretariat::new()
    }
}

/// Counts of what the relay answered, by kind.
#[derive(Default, Debug, Clone)]
pub struct Tally(pub BTreeMap<String, u64>);

impl Tally {
    fn add(&mut self, what: impl Into<String>) {
        *self.0.entry(what.into()).or_default() += 1;
    }
    fn response(&mut self, r: &anyhow::Result<Response>) {
        match r {
            Ok(Response::Error { code, .. }) => self.add(format!("{code:?}")),
            Ok(other) => self.add(
                format!("{other:?}")
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or("?")
                    .to_string(),
            ),
            Err(_) => self.add("stream or connection closed"),
        }
    }
    /// How many answers had this code.
    pub fn count(&self, code: ErrorCode) -> u64 {
        self.0.get(&format!("{code:?}")).copied().unwrap_or(0)
    }
    /// Merges another tally.
    pub fn merge(&mut self, o: &Tally) {
        for (k, v) in &o.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }
}

/// Strangers: `conns` connections with fresh keys, each trying every abuse once.
pub async fn strangers(addr: SocketAddr, fp: Fingerprint, conns: usize) -> Tally {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let c = match connect(addr, fp, identity()).await {
                Ok(c) => c,
                Err(_) => {
                    t.add("connection refused");
                    return t;
                }
            };
            // A member call.
            t.response(&c.one(&Request::Lookup { query: "*".into() }).await);
            // A frame larger than a stranger may send.
            let big = encode(&Request::Register {
                public_identity: vec![0x78; pocnet_wire::MAX_UNENROLLED_FRAME],
            });
            t.response(&c.raw(&big).await);
            // A declared 1 GiB frame, then nothing.
            t.response(&c.raw(&(1u32 << 30).to_be_bytes()).await);
            // Streams past the limit: the relay grants 4 at once to a stranger. Hold them
            // open with partial frames and see whether a fifth opens.
            let mut held = Vec::new();
            for _ in 0..4 {
                if let Ok(Ok((mut s, r))) = tokio::time::timeout(Duration::from_secs(2), c.conn.open_bi()).await {
                    let _ = s.write_all(&[0, 0, 0x10, 0]).await;
                    held.push((s, r));
                }
            }
            let mut fifth = match tokio::time::timeout(Duration::from_millis(500), c.conn.open_bi()).await {
                Ok(Ok((s, r))) => Some((s, r)),
                _ => None,
            };
            // Opening is lazy in QUIC: the stream exists for the relay only once it carries data.
            let fifth_accepted = match fifth.as_mut() {
                Some((s, r)) => {
                    let _ = s
                        .write_all(&encode(&Request::Hello {
                            protocol: pocnet_wire::PROTOCOL_VERSION,
                        }))
                        .await;
                    let _ = s.finish();
                    tokio::time::timeout(Duration::from_millis(500), r.read_chunk(1024, true))
                        .await
                        .is_ok_and(|x| matches!(x, Ok(Some(_))))
                }
                None => false,
            };
            t.add(if fifth_accepted {
                "fifth stream answered"
            } else {
                "fifth stream held back"
            });
            drop(held);
            t
        }));
    }
    let mut all = Tally::default();
    for h in tasks {
        if let Ok(t) = h.await {
            all.merge(&t);
        }
    }
    all
}

/// Envelopes for `victim` and `other` whose stanza block lacks the victim's stanza.
pub async fn undeliverable(insider: &Raw, victim: &PublicIdentity, other: &PublicIdentity, n: usize) -> Tally {
    let mut t = Tally::default();
    let fields = HeaderFields {
        suite: Suite::X25519,
        ..HeaderFields::message(pocnet_client::now_ms())
    };
    for _ in 0..n {
        let s = pocnet_crypto::seal(
            &mut pocnet_crypto::os_rng(),
            &insider.id,
            &[victim.clone(), other.clone()],
            &fields,
            b"x",
        )
        .expect("seal");
        let only_other = pocnet_crypto::trim_for_recipient(&s.bytes, other.key().as_bytes()).expect("trim");
        t.response(
            &insider
                .pipe
                .call(Request::Send { envelope: only_other })
                .await
                .map_err(Into::into),
        );
    }
    t
}

/// Many idle watch streams from one key; they stay open while the attack runs.
pub async fn idle_watchers(insider: &Raw, n: usize) -> (Tally, Vec<(quinn::SendStream, quinn::RecvStream)>) {
    let mut t = Tally::default();
    let mut open = Vec::new();
    for _ in 0..n {
        let Ok(Ok((mut s, mut r))) = tokio::time::timeout(Duration::from_secs(2), insider.conn.open_bi()).await else {
            t.add("stream not granted");
            continue;
        };
        let _ = s.write_all(&encode(&Request::Watch { follow: true })).await;
        // The first frame says whether the watch was taken (CaughtUp) or refused.
        let mut dec = FrameDecoder::new(MAX_FRAME);
        let first = loop {
            match tokio::time::timeout(Duration::from_secs(5), r.read_chunk(64 * 1024, true)).await {
                Ok(Ok(Some(c))) => {
                    dec.push(&c.bytes);
                    if let Ok(Some(resp)) = dec.decode_next::<Response>() {
                        break Ok(resp);
                    }
                }
                _ => break Err(anyhow::anyhow!("closed")),
            }
        };
        let kept = matches!(first, Ok(Response::CaughtUp));
        t.response(&first);
        if kept {
            open.push((s, r));
        }
    }
    (t, open)
}

/// Two uploads of one attachment at once: the second must be refused while the first runs.
pub async fn concurrent_upload(insider: &Raw) -> anyhow::Result<Response> {
    let mut frame = encode(&Request::PutBlob {
        message_id: [0x77u8; 16],
        total_len: 1 << 20,
        offset: 0,
    });
    frame.extend_from_slice(&[0u8; 10]);
    // Two streams of the same upload, both left running (neither sends all its bytes).
    // Whichever the relay sees second must be answered at once; the other stays open.
    let (mut s1, r1) = insider.conn.open_bi().await?;
    let (mut s2, r2) = insider.conn.open_bi().await?;
    s1.write_all(&frame).await?;
    s2.write_all(&frame).await?;
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            a = first_answer(r1) => a,
            b = first_answer(r2) => b,
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("neither upload was answered"))?;
    drop((s1, s2));
    answer
}

/// Upload reservations of `each` bytes under fresh ids, never sent.
pub async fn upload_fill(insider: &Raw, each: u64, n: usize) -> Tally {
    let mut t = Tally::default();
    for i in 0..n {
        let mut id = [0x55u8; 16];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        // Send nothing after the frame and end the stream: the relay keeps the
        // reservation or refuses.
        let resp = insider
            .one(&Request::PutBlob {
                message_id: id,
                total_len: each,
                offset: 0,
            })
            .await;
        t.response(&resp);
    }
    t
}

/// One request, `n` times at once on the pipe: what a flood of that type gets.
pub async fn flood(insider: &Raw, req: Request, n: usize) -> Tally {
    let mut futs = Vec::new();
    for _ in 0..n {
        let (p, r) = (insider.pipe.clone(), req.clone());
        futs.push(tokio::spawn(async move { p.call(r).await }));
    }
    let mut t = Tally::default();
    for f in futs {
        match f.await {
            Ok(r) => t.response(&r.map_err(Into::into)),
            Err(_) => t.add("task failed"),
        }
    }
    t
}

/// Every pipelined request type flooded in turn.
pub async fn flood_all(insider: &Raw, to: &PublicIdentity, n: usize) -> Tally {
    let mut all = Tally::default();
    for req in [
        Request::Lookup { query: "*".into() },
        Request::Hello {
            protocol: pocnet_wire::PROTOCOL_VERSION,
        },
        Request::Ack { seqs: vec![1] },
        Request::SendReceipt {
            to: *to.key().as_bytes(),
            receipt: vec![0; 8],
        },
    ] {
        all.merge(&flood(insider, req, n).await);
    }
    all
}

/// The honest pair: `sender` sends 1 KiB messages to `recipient` (who watches and acks)
/// until `stop`; returns (sent, delivered, seconds).
pub struct Honest {
    /// Messages accepted.
    pub sent: Arc<AtomicU64>,
    /// Messages delivered to the recipient.
    pub delivered: Arc<AtomicU64>,
    /// Refusals seen by the sender.
    pub refused: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Honest {
    /// Starts the pair.
    pub async fn start(sender: Raw, recipient: Raw, inflight: usize) -> Honest {
        let sent = Arc::new(AtomicU64::new(0));
        let delivered = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let rpub = recipient.id.public();
        let recipient = Arc::new(recipient);
        let mut tasks = Vec::new();
        // Recipient: watch, count each item once, ack in batches. A watcher that falls too
        // far behind is cut off by the relay (it ends the stream); like `pocnet watch`, the
        // recipient then opens a new watch and reads the backlog again.
        {
            let (d, r) = (delivered.clone(), recipient.clone());
            // Runs until `drain` aborts it.
            tasks.push(tokio::spawn(async move {
                let mut seen = std::collections::HashSet::new();
                loop {
                    let Ok((mut s, mut rx)) = r.conn.open_bi().await else {
                        return;
                    };
                    let _ = s.write_all(&encode(&Request::Watch { follow: true })).await;
                    let mut dec = FrameDecoder::new(MAX_FRAME);
                    let mut acks = Vec::new();
                    while let Ok(Some(c)) = rx.read_chunk(256 * 1024, true).await {
                        dec.push(&c.bytes);
                        while let Ok(Some(resp)) = dec.decode_next::<Response>() {
                            if let Response::Deliver(Delivery::Envelope { seq, .. } | Delivery::Stored { seq, .. }) =
                                resp
                            {
                                if seen.insert(seq) {
                                    d.fetch_add(1, Ordering::Relaxed);
                                }
                                acks.push(seq);
                            }
                        }
                        if acks.len() >= 64 {
                            let p = r.pipe.clone();
                            let seqs = std::mem::take(&mut acks);
                            tokio::spawn(async move { p.call(Request::Ack { seqs }).await });
                        }
                    }
                    if !acks.is_empty() {
                        let _ = r.pipe.call(Request::Ack { seqs: acks }).await;
                    }
                }
            }));
        }
        // Sender: keep `inflight` sends going.
        let sender = Arc::new(sender);
        let sem = Arc::new(tokio::sync::Semaphore::new(inflight));
        {
            let (sent, refused, stop) = (sent.clone(), refused.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let fields = HeaderFields {
                    suite: Suite::X25519,
                    ..HeaderFields::message(pocnet_client::now_ms())
                };
                while !stop.load(Ordering::Relaxed) {
                    let Ok(permit) = sem.clone().acquire_owned().await else {
                        return;
                    };
                    let env = pocnet_crypto::seal(
                        &mut pocnet_crypto::os_rng(),
                        &sender.id,
                        std::slice::from_ref(&rpub),
                        &fields,
                        &[0x42; 1024],
                    )
                    .expect("seal")
                    .bytes;
                    let (p, sent, refused) = (sender.pipe.clone(), sent.clone(), refused.clone());
                    tokio::spawn(async move {
                        match p.call(Request::Send { envelope: env }).await {
                            Ok(Response::Accepted { .. }) => sent.fetch_add(1, Ordering::Relaxed),
                            _ => refused.fetch_add(1, Ordering::Relaxed),
                        };
                        drop(permit);
                    });
                }
            }));
        }
        Honest {
            sent,
            delivered,
            refused,
            stop,
            tasks,
        }
    }

    /// Messages delivered during `d` (measured, not slept: the pair runs meanwhile).
    pub async fn rate_over(&self, d: Duration) -> f64 {
        let (t0, n0) = (Instant::now(), self.delivered.load(Ordering::Relaxed));
        tokio::time::sleep(d).await;
        (self.delivered.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64()
    }

    /// Stops sending and waits until every accepted message has been delivered.
    pub async fn drain(self, limit: Duration) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        // Let in-flight sends finish, then wait for their deliveries.
        let mut last = u64::MAX;
        loop {
            let (s, d) = (
                self.sent.load(Ordering::Relaxed),
                self.delivered.load(Ordering::Relaxed),
            );
            if s == d && s == last {
                break;
            }
            last = s;
            if t0.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for t in &self.tasks {
            t.abort();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.delivered.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// Resident memory of a process, in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
