//! `peer-bench`: the pocnet load workload (P publishers, S subscribers, N messages of
//! `--size` bytes, durable acknowledgement on both sides) run against peer brokers:
//! NATS JetStream (file storage) and an MQTT broker (QoS 1, persistent sessions).
//!
//! Publisher i sends to subscriber i mod S. Each run prints one JSON line:
//! `{"system":..,"workload":"PxS","messages":N,"accepted_per_sec":..,
//!   "delivered_per_sec":..,"p50_ms":..,"p99_ms":..}`.
//! Bounded in count (N) and time (`--timeout-secs`, default 120); loopback only.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;

#[derive(Parser)]
#[command(version, about = "Same-workload comparison against peer brokers (loopback only)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// NATS JetStream: file-storage stream over `bench.>`, PubAck per message, durable pull consumers with explicit ack.
    Nats {
        /// Server URL; the host must be a loopback address.
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        url: String,
        #[command(flatten)]
        w: Workload,
    },
    /// MQTT 3.1.1: QoS 1 publish (PUBACK awaited, inflight window), QoS 1 subscriptions on persistent sessions.
    Mqtt {
        /// Broker host; must be a loopback address.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 1883)]
        port: u16,
        #[command(flatten)]
        w: Workload,
    },
}

#[derive(Args, Clone)]
struct Workload {
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Messages in total, split evenly across publishers.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Payload bytes per message (at least 8: the send timestamp).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Publish acknowledgements kept in flight per publisher.
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    /// Abort the run with an error after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

impl Workload {
    fn check(&self) -> Result<()> {
        if self.publishers == 0 || self.subscribers == 0 || self.messages == 0 {
            bail!("publishers, subscribers and messages must be positive");
        }
        if self.size < 8 {
            bail!("--size must be at least 8 (the payload carries an 8-byte send timestamp)");
        }
        if self.inflight == 0 || self.inflight > u16::MAX as usize {
            bail!("--inflight must be in 1..=65535");
        }
        Ok(())
    }
    /// Messages publisher `i` sends.
    fn per_publisher(&self, i: usize) -> usize {
        self.messages / self.publishers + usize::from(i < self.messages % self.publishers)
    }
    /// Messages subscriber `j` must receive: the sum over publishers i with i mod S == j.
    fn per_subscriber(&self, j: usize) -> usize {
        (0..self.publishers)
            .filter(|i| i % self.subscribers == j)
            .map(|i| self.per_publisher(i))
            .sum()
    }
    fn name(&self) -> String {
        format!("{}x{}", self.publishers, self.subscribers)
    }
}

fn loopback_only(host: &str) -> Result<()> {
    let ok = host == "localhost" || host.parse::<IpAddr>().map(|a| a.is_loopback()).unwrap_or(false);
    if !ok {
        bail!("refusing non-loopback target {host:?}: only 127.0.0.0/8, ::1 or localhost");
    }
    Ok(())
}

/// Wall-clock nanoseconds; publisher and subscriber share this process and clock.
fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn payload(size: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; size];
    p[..8].copy_from_slice(&now_ns().to_be_bytes());
    p
}

fn sent_at(p: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(p.get(..8)?.try_into().ok()?))
}

/// Shared run state: start instant, last ack / last receive offsets, latencies.
struct Meter {
    start: Instant,
    acked: AtomicU64,
    last_ack_ns: AtomicU64,
    last_recv_ns: AtomicU64,
    lat_us: Mutex<Vec<u64>>,
}

impl Meter {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Meter {
            start: Instant::now(),
            acked: AtomicU64::new(0),
            last_ack_ns: AtomicU64::new(0),
            last_recv_ns: AtomicU64::new(0),
            lat_us: Mutex::new(Vec::with_capacity(n)),
        })
    }
    fn since(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn ack(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        self.last_ack_ns.fetch_max(self.since(), Ordering::Relaxed);
    }
    fn received(&self, local: &mut Vec<u64>, p: &[u8]) {
        if let Some(t) = sent_at(p) {
            local.push(now_ns().saturating_sub(t) / 1000);
        }
        self.last_recv_ns.fetch_max(self.since(), Ordering::Relaxed);
    }
    fn merge(&self, local: Vec<u64>) {
        self.lat_us.lock().unwrap().extend(local);
    }
    fn report(&self, system: &str, w: &Workload) -> serde_json::Value {
        let n = w.messages as f64;
        let mut lat = std::mem::take(&mut *self.lat_us.lock().unwrap());
        lat.sort_unstable();
        let pct = |q: f64| -> f64 {
            if lat.is_empty() {
                return f64::NAN;
            }
            let idx = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[idx] as f64 / 1000.0
        };
        let rate = |ns: u64| n / (ns.max(1) as f64 / 1e9);
        let r2 = |x: f64| (x * 100.0).round() / 100.0;
        let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
        serde_json::json!({
            "system": system,
            "workload": w.name(),
            "messages": w.messages,
            "accepted_per_sec": r2(rate(self.last_ack_ns.load(Ordering::Relaxed))),
            "delivered_per_sec": r2(rate(self.last_recv_ns.load(Ordering::Relaxed))),
            "p50_ms": r3(pct(0.50)),
            "p99_ms": r3(pct(0.99)),
        })
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let (system, w) = match &cli.cmd {
        Cmd::Nats { w, .. } => ("nats-jetstream", w.clone()),
        Cmd::Mqtt { w, .. } => ("mosquitto", w.clone()),
    };
    w.check()?;
    let limit = Duration::from_secs(w.timeout_secs);
    let fut = async {
        match cli.cmd {
            Cmd::Nats { url, w } => nats(&url, &w).await,
            Cmd::Mqtt { host, port, w } => mqtt(&host, port, &w).await,
        }
    };
    let meter = tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow::anyhow!("{system} {}: not finished within {} s, aborted", w.name(), w.timeout_secs))??;
    println!("{}", meter.report(system, &w));
    // Connections and background tasks are simply dropped with the runtime.
    std::process::exit(0);
}

// ---------------------------------------------------------------- NATS JetStream

async fn nats(url: &str, w: &Workload) -> Result<Arc<Meter>> {
    use async_nats::jetstream::{self, consumer, stream};
    let host = url
        .trim_start_matches("nats://")
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(url)
        .trim_matches(['[', ']']);
    loopback_only(host)?;

    let admin = async_nats::connect(url).await.context("connect to NATS")?;
    let js = jetstream::new(admin);
    let name = "BENCH";
    let _ = js.delete_stream(name).await; // a previous run's stream, if any
    let st = js
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec!["bench.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .context("create JetStream stream")?;

    // Subscribers first: durable pull consumers with explicit ack, each on its own connection.
    let mut subs = Vec::new();
    let mut consumers = Vec::new();
    for j in 0..w.subscribers {
        let c: consumer::PullConsumer = st
            .create_consumer(consumer::pull::Config {
                durable_name: Some(format!("sub{j}")),
                filter_subject: format!("bench.{j}"),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .with_context(|| format!("create consumer sub{j}"))?;
        consumers.push(c);
    }
    // Re-bind each consumer through its own client connection.
    let mut sub_streams = Vec::new();
    for j in 0..w.subscribers {
        let client = async_nats::connect(url).await?;
        let js = jetstream::new(client);
        let c: consumer::PullConsumer = js
            .get_consumer_from_stream(format!("sub{j}"), name)
            .await
            .with_context(|| format!("bind consumer sub{j}"))?;
        sub_streams.push(c.messages().await.context("consumer messages")?);
    }
    drop(consumers);
    let mut pub_clients = Vec::new();
    for _ in 0..w.publishers {
        pub_clients.push(async_nats::connect(url).await?);
    }

    // The clock starts here: everything is connected, the first publish follows.
    let meter = Meter::new(w.messages);
    for (j, mut msgs) in sub_streams.into_iter().enumerate() {
        let want = w.per_subscriber(j);
        let meter = meter.clone();
        subs.push(tokio::spawn(async move {
            let mut local = Vec::with_capacity(want);
            let mut got = 0usize;
            while got < want {
                let m = match msgs.next().await {
                    Some(m) => m.map_err(|e| anyhow::anyhow!("consume: {e}"))?,
                    None => bail!("consumer stream ended after {got} of {want}"),
                };
                meter.received(&mut local, &m.payload);
                m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                got += 1;
            }
            meter.merge(local);
            Ok(())
        }));
    }

    let mut pubs = Vec::new();
    for (i, client) in pub_clients.into_iter().enumerate() {
        let n = w.per_publisher(i);
        let subject = format!("bench.{}", i % w.subscribers);
        let (size, window) = (w.size, w.inflight);
        let meter = meter.clone();
        pubs.push(tokio::spawn(async move {
            let js = jetstream::new(client);
            let mut pending = VecDeque::with_capacity(window);
            for _ in 0..n {
                if pending.len() >= window {
                    let f: jetstream::context::PublishAckFuture = pending.pop_front().unwrap();
                    f.await.map_err(|e| anyhow::anyhow!("PubAck: {e}"))?;
                    meter.ack();
                }
                let f = js
                    .publish(subject.clone(), Bytes::from(payload(size)))
                    .await
                    .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
                pending.push_back(f);
            }
            while let Some(f) = pending.pop_front() {
                f.await.map_err(|e| anyhow::anyhow!("PubAck: {e}"))?;
                meter.ack();
            }
            anyhow::Ok(())
        }));
    }
    for p in pubs {
        p.await??;
    }
    for s in subs {
        s.await??;
    }
    Ok(meter)
}

// ---------------------------------------------------------------- MQTT

async fn mqtt(host: &str, port: u16, w: &Workload) -> Result<Arc<Meter>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    loopback_only(host)?;
    let run = format!("{}-{}", std::process::id(), now_ns() % 1_000_000_007);
    let opts = |id: String| {
        let mut o = MqttOptions::new(id, host, port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(false)
            .set_max_packet_size(w.size + 1024, w.size + 1024)
            .set_inflight(w.inflight as u16);
        o
    };

    // Subscribers: persistent sessions, QoS 1, wait for SUBACK before any publish.
    let meter_cell: Arc<Mutex<Option<Arc<Meter>>>> = Arc::new(Mutex::new(None));
    let mut subs = Vec::new();
    let mut ready = Vec::new();
    for j in 0..w.subscribers {
        let want = w.per_subscriber(j);
        let (client, mut ev) = AsyncClient::new(opts(format!("pb-sub-{run}-{j}")), 1024);
        client
            .subscribe(format!("bench/{j}"), QoS::AtLeastOnce)
            .await
            .context("subscribe")?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        ready.push(rx);
        let cell = meter_cell.clone();
        subs.push(tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut local = Vec::with_capacity(want);
            let mut got = 0usize;
            let mut meter: Option<Arc<Meter>> = None;
            while got < want {
                match ev.poll().await.map_err(|e| anyhow::anyhow!("subscriber {j}: {e}"))? {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(t) = tx.take() {
                            let _ = t.send(());
                        }
                    }
                    // rumqttc PUBACKs every QoS 1 delivery itself (manual_acks is off).
                    Event::Incoming(Packet::Publish(p)) => {
                        let m = meter.get_or_insert_with(|| cell.lock().unwrap().clone().expect("meter set before publishing"));
                        m.received(&mut local, &p.payload);
                        got += 1;
                    }
                    _ => {}
                }
            }
            // Flush the last PUBACKs before leaving.
            let _ = client.disconnect().await;
            let flush = tokio::time::timeout(Duration::from_millis(500), async {
                while let Ok(e) = ev.poll().await {
                    if matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                        break;
                    }
                }
            });
            let _ = flush.await;
            if let Some(m) = meter {
                m.merge(local);
            }
            anyhow::Ok(())
        }));
    }
    for r in ready {
        r.await.context("subscriber failed before SUBACK")?;
    }

    // Publishers: each its own connection; rumqttc holds at most `inflight` unacknowledged
    // QoS 1 publishes, so awaiting PUBACKs is pipelined through that window.
    let mut conns = Vec::new();
    for i in 0..w.publishers {
        // Request channel of 1: the timestamp is taken at `publish`, so nothing may wait
        // client-side beyond rumqttc's inflight window plus this one slot.
        conns.push(AsyncClient::new(opts(format!("pb-pub-{run}-{i}")), 1));
    }
    let meter = Meter::new(w.messages);
    *meter_cell.lock().unwrap() = Some(meter.clone());
    let mut pubs = Vec::new();
    for (i, (client, mut ev)) in conns.into_iter().enumerate() {
        let n = w.per_publisher(i);
        let topic = format!("bench/{}", i % w.subscribers);
        let size = w.size;
        let m = meter.clone();
        let sender = tokio::spawn(async move {
            for _ in 0..n {
                client
                    .publish(topic.as_str(), QoS::AtLeastOnce, false, payload(size))
                    .await
                    .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
            }
            anyhow::Ok(client)
        });
        pubs.push(tokio::spawn(async move {
            let mut acked = 0usize;
            while acked < n {
                match ev.poll().await.map_err(|e| anyhow::anyhow!("publisher {i}: {e}"))? {
                    Event::Incoming(Packet::PubAck(_)) => {
                        m.ack();
                        acked += 1;
                    }
                    _ => {}
                }
            }
            let client = sender.await??;
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_millis(500), ev.poll()).await;
            anyhow::Ok(())
        }));
    }
    for p in pubs {
        p.await??;
    }
    for s in subs {
        s.await??;
    }
    Ok(meter)
}
