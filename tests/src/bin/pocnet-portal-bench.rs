//! `pocnet-portal-bench`: the portal's speed (issue 18), through the real `pocnet portal`
//! binary, every figure beside a ceiling measured in the same run. Bounded in count and
//! time; targets 127.0.0.1 only.
//!
//! `cargo build --release -p pocnet -p pocnet-tests &&
//!  target/release/pocnet-portal-bench [--pocs 1000] [--messages 10000] [--warm 20]
//!  [--ack-states 20] [--json]`
//!
//! Set-up (not timed): an in-process relay (`pocnet_relay::start`, no rate limits) whose
//! directory lists `--pocs` probe keys, six to a state, plus one real client profile (cheap
//! Argon2 parameters, enrolled with `Client::enrol`); `--messages` received messages are
//! written straight into that profile's store with `Store::insert_message` (peers are the
//! listed POCs, 1 KiB bodies), not sent through the relay.
//!
//! 1. First page render. `pocnet portal` for that profile; sign in with the printed token;
//!    GET `/`, `/directory` (every POC) and `/messages?box=in&page=0` (the first 50): the
//!    first request of each (cold), then `--warm` more of each (median, p99), and the page
//!    sizes. Each request is a fresh TCP connection (`Connection: close`). Ceilings: GET
//!    `/static/portal.css` through the same server and client (the bare HTTP round trip:
//!    Host check, session lookup, security headers, no client-thread job), and the store's
//!    own `list_page(In, 51, 0)` plus both counts on a second open of the profile. For
//!    where a page's time goes: the calls the pages make, timed one by one on that second
//!    open, and the listing's and the alert banner's queries in raw SQLite on a snapshot of
//!    the store (`VACUUM INTO`), without and with an index (the profile is not changed).
//! 2. Acknowledgement → open page. The profile raises an alert (`pocnet alert raise`, the
//!    CLI, while the portal runs) to `--ack-states` states; the cyber primary of each is a
//!    probe connection watching. The bench opens the alert's server-sent-events stream with
//!    the session cookie, then for each state in turn its primary sends a signed
//!    `Acknowledged` receipt: timed from just before the request to the relay's `Done`
//!    (the ceiling, per ack) and to the SSE `status` event whose fragment shows that POC
//!    acknowledged. Further ceiling: the bare HTTP round trip above; and, for where the time
//!    goes, the status the fragment is drawn from (`alert_status_held`: the relay's
//!    `EscalationStatus` + the local receipts) computed in-process on a second open.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pocnet_client::db::NewMessage;
use pocnet_client::types::{Direction, EnvelopeHash, MessageId, Peer};
use pocnet_crypto::{ContentType, Identity, IdentityKey, KdfParams, Receipt, ReceiptKind, Tlp};
use pocnet_tests::bench::{connect_all, dist, unthrottled, Dist};
use pocnet_tests::portal::{http, Portal, Reply};
use pocnet_tests::probe::{identity, Raw, Secretariat};
use pocnet_tests::{Poc, PASS};
use pocnet_wire::{encode, Delivery, FrameDecoder, Request, Response, MAX_FRAME};

/// POCs listed per state: cyber and foreign affairs, each primary, alternate, further1.
const PER_STATE: usize = 6;

/// Messages on one page of the portal's listing.
const PAGE: usize = 50;

/// The portal's speed through the real `pocnet portal` binary (127.0.0.1 only).
#[derive(clap::Parser)]
struct Args {
    /// Probe POCs listed in the directory (6 to 1,200).
    #[arg(long, default_value_t = 1000)]
    pocs: usize,
    /// Received messages in the profile's store (at most 100,000).
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Warm requests per page (1 to 200).
    #[arg(long, default_value_t = 20)]
    warm: usize,
    /// States whose primary acknowledges, one at a time (1 to 50).
    #[arg(long, default_value_t = 20)]
    ack_states: usize,
    /// One line of JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

fn args() -> Args {
    let a = <Args as clap::Parser>::parse();
    assert!((PER_STATE..=1200).contains(&a.pocs), "--pocs from {PER_STATE} to 1200");
    assert!(a.messages <= 100_000, "--messages at most 100000");
    assert!((1..=200).contains(&a.warm), "--warm from 1 to 200");
    assert!(
        (1..=a.pocs / PER_STATE).contains(&a.ack_states) && a.ack_states <= 50,
        "--ack-states from 1 to min(50, full states)"
    );
    a
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A page's timings: the first request, then the warm ones.
struct PageRun {
    path: &'static str,
    cold_ms: f64,
    warm: Dist,
    bytes: usize,
    rows: usize,
}

/// The portal session: port and cookie.
struct Session {
    port: u16,
    cookie: String,
}

impl Session {
    fn get(&self, path: &str) -> (f64, Reply) {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {}",
            self.port, self.cookie
        );
        let t = Instant::now();
        let r = http(self.port, &head, "");
        (ms(t.elapsed()), r)
    }
}

fn sign_in(portal: &Portal) -> Session {
    let r = http(
        portal.port,
        &format!(
            "GET /login?token={} HTTP/1.1\r\nHost: 127.0.0.1:{}",
            portal.token(),
            portal.port
        ),
        "",
    );
    assert_eq!(r.status, 303, "sign-in: {r:?}");
    let cookie = r
        .header("set-cookie")
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with(&format!("pocnet_portal_{}=", portal.port)));
    Session {
        port: portal.port,
        cookie,
    }
}

/// One server-sent event as it arrived.
struct Sse {
    at: Instant,
    data: String,
}

/// Opens the SSE stream `path` and hands over each event (its `data`) as it arrives, from
/// a thread of its own (blocking reads; the stream is chunked).
fn sse(s: &Session, path: &str, tx: tokio::sync::mpsc::UnboundedSender<Sse>) {
    let mut sock = TcpStream::connect(("127.0.0.1", s.port)).expect("connect to the portal");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {}\r\nAccept: text/event-stream\r\n\r\n",
        s.port, s.cookie
    );
    sock.write_all(req.as_bytes()).unwrap();
    std::thread::spawn(move || {
        let mut r = BufReader::new(sock);
        let mut line = String::new();
        let mut chunked = false;
        // Status line and headers.
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.starts_with("http/1.1 ") {
                assert!(l.starts_with("http/1.1 200"), "SSE stream refused: {l}");
            }
            if l == "transfer-encoding: chunked" {
                chunked = true;
            }
            if l.is_empty() {
                break;
            }
        }
        let mut text = String::new();
        let mut event_data = String::new();
        loop {
            // The next piece of the body.
            let piece = if chunked {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let Ok(n) = usize::from_str_radix(line.trim(), 16) else {
                    return;
                };
                if n == 0 {
                    return;
                }
                let mut buf = vec![0u8; n + 2];
                if std::io::Read::read_exact(&mut r, &mut buf).is_err() {
                    return;
                }
                buf.truncate(n);
                String::from_utf8_lossy(&buf).to_string()
            } else {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                line.clone()
            };
            let at = Instant::now();
            text.push_str(&piece);
            while let Some(nl) = text.find('\n') {
                let l: String = text.drain(..=nl).collect();
                let l = l.trim_end_matches(['\n', '\r']);
                if let Some(d) = l.strip_prefix("data:") {
                    event_data.push_str(d.strip_prefix(' ').unwrap_or(d));
                } else if l.is_empty()
                    && !event_data.is_empty()
                    && tx
                        .send(Sse {
                            at,
                            data: std::mem::take(&mut event_data),
                        })
                        .is_err()
                {
                    return;
                }
            }
        }
    });
}

/// The watched alert deliveries of the primaries: (client, envelope).
type Got = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;

/// Client `i` watches (follow) and acknowledges its queue, keeping each escalated envelope.
async fn watch(i: usize, raw: Arc<Raw>, got: Got, caught_up: Arc<AtomicUsize>) {
    let (mut tx, mut rx) = raw.conn.open_bi().await.unwrap();
    tx.write_all(&encode(&Request::Watch { follow: true })).await.unwrap();
    tokio::spawn(async move {
        let _keep = tx;
        let mut dec = FrameDecoder::new(MAX_FRAME);
        while let Ok(Some(c)) = rx.read_chunk(256 * 1024, true).await {
            dec.push(&c.bytes);
            let mut seqs = Vec::new();
            while let Some(resp) = dec.decode_next::<Response>().unwrap() {
                match resp {
                    Response::CaughtUp => {
                        caught_up.fetch_add(1, Ordering::SeqCst);
                    }
                    Response::Deliver(d) => {
                        if let Delivery::Escalated { envelope, .. } | Delivery::Envelope { envelope, .. } = &d {
                            got.lock().unwrap().push((i, envelope.clone()));
                        }
                        seqs.push(d.seq());
                    }
                    _ => {}
                }
            }
            if !seqs.is_empty() {
                let p = raw.pipe.clone();
                tokio::spawn(async move { p.call(Request::Ack { seqs }).await });
            }
        }
    });
}

/// `n` received messages in the profile's store, from the listed POCs in turn, newest
/// first by one minute each; ms taken.
fn fill_store(store: &pocnet_client::db::Store, peers: &[(IdentityKey, String)], n: usize) -> f64 {
    let t = Instant::now();
    let now = pocnet_client::now_ms();
    let body = "Situation report. ".repeat(57); // ~1 KiB
    let mut rng = pocnet_crypto::os_rng();
    for i in 0..n {
        let (key, handle) = &peers[i % peers.len()];
        let mut id = [0u8; 16];
        pocnet_crypto::rand_core::Rng::fill_bytes(&mut rng, &mut id);
        let mut eh = [0u8; 32];
        pocnet_crypto::rand_core::Rng::fill_bytes(&mut rng, &mut eh);
        let peer = Peer::Known { handle: handle.clone() };
        let when = now - (i as u64) * 60_000;
        let tlp = [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict, Tlp::Red][i % 5];
        let inserted = store
            .insert_message(&NewMessage {
                id: MessageId(id),
                direction: Direction::In,
                peer_key: key,
                peer: &peer,
                recipients: &[],
                recipient_keys: &[],
                subject: &format!("Coordination note {i}: <b>escaped</b> & checked"),
                body: &body,
                tlp,
                exercise: i % 7 == 0,
                content_type: ContentType::Message,
                created_at: when - 500,
                received_at: when,
                envelope_hash: EnvelopeHash(eh),
                relay_stored_at: None,
                attachments: &[],
                incident: None,
            })
            .expect("insert a message");
        assert!(inserted);
    }
    ms(t.elapsed())
}

#[tokio::main]
async fn main() {
    let a = args();
    let deadline = Instant::now() + Duration::from_secs(600);
    let p = a.pocs;

    // The relay and its directory: `p` probe keys, then the portal's profile.
    eprintln!("relay, directory of {p} POCs + the portal's profile …");
    let mut secretariat = Secretariat::with_per_state(PER_STATE);
    let relay_dir = tempfile::tempdir().unwrap();
    let relay_id = pocnet_relay::admin::init(relay_dir.path(), b"portal-bench", &secretariat.vkey()).unwrap();
    let fp = relay_id.fingerprint();
    let running = pocnet_relay::start(
        relay_dir.path().to_path_buf(),
        unthrottled(secretariat.vkey()),
        relay_id,
    )
    .await
    .unwrap();
    let addr = running.addr;
    let poc = Poc {
        home: tempfile::tempdir().unwrap(),
    };
    let cheap = KdfParams {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };
    let (_, me) = pocnet_client::profile::Profile::create(poc.home.path(), PASS.as_bytes(), cheap).unwrap();
    let me_key = *me.public_key();
    let ids: Vec<Identity> = (0..p).map(|_| identity()).collect();
    let mut keys: Vec<&Identity> = ids.iter().collect();
    keys.push(&me);
    let t = Instant::now();
    let handles = secretariat.list(addr, fp, &keys).await.expect("list the keys");
    let list_ms = ms(t.elapsed());
    drop(keys);
    let my_handle = {
        let mut c = pocnet_client::app::Client::open(poc.home.path(), PASS.as_bytes()).unwrap();
        let e = c
            .enrol(&addr.to_string(), &fp.to_hex(), Some(&secretariat.vkey()))
            .await
            .expect("enrol the portal's profile");
        let pocnet_client::app::Enrolment::Listed { handle } = e else {
            panic!("not listed: {e:?}");
        };
        // The messages, straight into the store.
        eprintln!("{} messages into the store …", a.messages);
        let peers: Vec<(IdentityKey, String)> = ids
            .iter()
            .zip(&handles)
            .map(|(i, h)| (*i.public_key(), h.clone()))
            .collect();
        let fill_ms = fill_store(&c.store, &peers, a.messages);
        eprintln!("  {fill_ms:.0} ms");
        handle
    };

    // The primaries of the alert's states, connected and watching.
    let states: Vec<&'static str> = (0..a.ack_states).map(|s| secretariat.place(s * PER_STATE).0).collect();
    let primaries: Vec<usize> = (0..a.ack_states).map(|s| s * PER_STATE).collect();
    let prim_ids: Vec<Identity> = primaries
        .iter()
        .map(|&i| Identity::from_secret_bytes(&ids[i].to_secret_bytes()).unwrap())
        .collect();
    let raws: Vec<Arc<Raw>> = connect_all(addr, fp, prim_ids, 8)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let got: Got = Got::default();
    let caught_up = Arc::new(AtomicUsize::new(0));
    for (i, r) in raws.iter().enumerate() {
        watch(i, r.clone(), got.clone(), caught_up.clone()).await;
    }
    while caught_up.load(Ordering::SeqCst) < raws.len() {
        assert!(Instant::now() < deadline, "watchers never caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // 1. The portal.
    eprintln!("pocnet portal …");
    let t = Instant::now();
    let portal = tokio::task::block_in_place(|| Portal::start(&poc, &[]));
    let start_ms = ms(t.elapsed());
    let s = sign_in(&portal);
    let count_rows = |body: &str, marker: &str| body.matches(marker).count();
    let pages: [(&str, &str); 3] = [
        ("/", ""),
        ("/directory", "<tr class=\"poc "),
        ("/messages?box=in&page=0", "<tr class=\""),
    ];
    let (css_cold, css) = tokio::task::block_in_place(|| s.get("/static/portal.css"));
    assert_eq!(css.status, 200);
    let mut runs: Vec<PageRun> = Vec::new();
    for (path, marker) in pages {
        let (cold, r) = tokio::task::block_in_place(|| s.get(path));
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        runs.push(PageRun {
            path,
            cold_ms: cold,
            warm: dist(vec![]),
            bytes: r.body.len(),
            rows: if marker.is_empty() {
                0
            } else {
                count_rows(&r.body, marker)
            },
        });
    }
    assert_eq!(runs[1].rows, p + 1, "the directory page lists every POC");
    assert_eq!(runs[2].rows, a.messages.min(PAGE), "the first page of messages");
    let mut warm: Vec<Vec<f64>> = vec![Vec::new(); 4];
    for _ in 0..a.warm {
        assert!(Instant::now() < deadline, "out of time");
        for (k, path) in ["/static/portal.css", "/", "/directory", "/messages?box=in&page=0"]
            .iter()
            .enumerate()
        {
            let (t, r) = tokio::task::block_in_place(|| s.get(path));
            assert_eq!(r.status, 200);
            warm[k].push(t);
        }
    }
    let css_warm = dist(warm[0].clone());
    for (k, run) in runs.iter_mut().enumerate() {
        run.warm = dist(warm[k + 1].clone());
    }
    let css_bytes = css.body.len();

    // The store's own query, on a second open of the profile (the portal keeps its own);
    // and, for where a page's time goes, the calls the pages make, one by one.
    let (store_cold, store_warm, parts) = {
        let c = pocnet_client::app::Client::open(poc.home.path(), PASS.as_bytes()).unwrap();
        let store = &c.store;
        let once = || {
            let t = Instant::now();
            let rows = store.list_page(Direction::In, PAGE + 1, 0).unwrap();
            let n = store.count(Direction::In).unwrap() + store.count(Direction::Out).unwrap();
            std::hint::black_box((rows, n));
            ms(t.elapsed())
        };
        let cold = once();
        let warm: Vec<f64> = (0..a.warm).map(|_| once()).collect();
        let part = |f: &dyn Fn()| {
            f();
            dist(
                (0..a.warm)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        ms(t.elapsed())
                    })
                    .collect(),
            )
        };
        let parts: Vec<(&str, Dist)> = vec![
            (
                "`list_page(In, 51, 0)` alone",
                part(&|| {
                    std::hint::black_box(store.list_page(Direction::In, PAGE + 1, 0).unwrap());
                }),
            ),
            (
                "`count(In)` alone",
                part(&|| {
                    std::hint::black_box(store.count(Direction::In).unwrap());
                }),
            ),
            (
                "`local_log()` (verified log, cached: a clone)",
                part(&|| {
                    std::hint::black_box(c.local_log().unwrap());
                }),
            ),
            (
                "`alerts_open()` (every page's banner)",
                part(&|| {
                    std::hint::black_box(c.alerts_open().unwrap());
                }),
            ),
            (
                "`round_unanswered()` (home)",
                part(&|| {
                    std::hint::black_box(c.round_unanswered().unwrap());
                }),
            ),
            (
                "`directory_rows` for every POC (directory)",
                part(&|| {
                    let log = c.local_log().unwrap().unwrap();
                    let dir = log.directory();
                    std::hint::black_box(c.directory_rows(dir, dir.members(), pocnet_client::now_ms()).unwrap());
                }),
            ),
        ];
        (cold, dist(warm), parts)
    };
    // The same two queries in raw SQLite on a snapshot of the store, without and with the
    // store's indexes on (direction, received_at) and (direction, content_type, received_at).
    let index_effect = {
        let snap = tempfile::tempdir().unwrap();
        let copy = snap.path().join("copy.db");
        let src = rusqlite::Connection::open(poc.home.path().join("client.db")).unwrap();
        src.execute("VACUUM INTO ?1", [copy.to_str().unwrap()]).unwrap();
        drop(src);
        let db = rusqlite::Connection::open(&copy).unwrap();
        let cols = "message_id, direction, peer, peer_handle, recipients, subject, body, tlp, exercise, \
                    content_type, created_at, received_at, read_at, relay_stored_at, envelope_hash, attachments, incident";
        let page = format!(
            "SELECT {cols} FROM messages WHERE direction = 'in' ORDER BY received_at DESC, rowid DESC LIMIT 51"
        );
        let alerts = format!(
            "SELECT {cols} FROM messages WHERE direction = 'in' AND content_type = {} ORDER BY received_at DESC",
            ContentType::Alert as u8
        );
        let time = |sql: &str| {
            let run = || {
                let mut st = db.prepare_cached(sql).unwrap();
                let mut q = st.query([]).unwrap();
                let mut n = 0usize;
                while let Some(r) = q.next().unwrap() {
                    let b: Vec<u8> = r.get(0).unwrap();
                    n += b.len();
                }
                n
            };
            run();
            dist(
                (0..a.warm)
                    .map(|_| {
                        let t = Instant::now();
                        std::hint::black_box(run());
                        ms(t.elapsed())
                    })
                    .collect(),
            )
        };
        // The profile (schema 6) has the indexes: drop them on the copy for "without".
        db.execute_batch("DROP INDEX IF EXISTS messages_by_time; DROP INDEX IF EXISTS messages_by_type;")
            .unwrap();
        let before = (time(&page), time(&alerts));
        db.execute_batch(
            "CREATE INDEX messages_by_time ON messages(direction, received_at);
             CREATE INDEX messages_by_type ON messages(direction, content_type, received_at);",
        )
        .unwrap();
        let after = (time(&page), time(&alerts));
        (before, after)
    };

    // 2. An alert from the portal's profile, acknowledged state by state.
    eprintln!(
        "alert to {} states, raised with the CLI while the portal runs …",
        states.len()
    );
    let mut raise = vec![
        "alert",
        "raise",
        "--headline",
        "Portal bench: DDoS on the ministry's mail",
        "--description",
        "Benchmark alert.",
        "--ack-within",
        "10m",
        "--repeat",
        "0",
        "--json",
        "--to",
    ];
    raise.extend(states.iter().copied());
    let t = Instant::now();
    let out = tokio::task::block_in_place(|| poc.run(&raise));
    let raise_ms = ms(t.elapsed());
    assert!(
        out.status.success(),
        "alert raise: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raised: serde_json::Value = serde_json::from_slice(&out.stdout).expect("alert raise --json");
    let alert_id = raised["id"].as_str().expect("an alert id").to_string();
    let alert_bytes: [u8; 16] = pocnet_crypto::from_hex(&alert_id).unwrap().try_into().unwrap();
    // Each primary holds the alert: open it for the envelope hash its receipt pins.
    let mut hashes: Vec<Option<[u8; 32]>> = vec![None; raws.len()];
    while hashes.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "the primaries never got the alert");
        for (i, env) in got.lock().unwrap().drain(..) {
            if env.len() > 23 && env[7..23] == alert_bytes {
                let o = pocnet_crypto::open(&raws[i].id, &env, &me_key).expect("open the alert");
                hashes[i] = Some(o.envelope_hash);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The alert's page (its status fragment drawn once), then the live stream.
    let (alert_page_cold, r) = tokio::task::block_in_place(|| s.get(&format!("/alerts/{alert_id}")));
    assert_eq!(r.status, 200, "alert page: {}", r.body);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    sse(&s, &format!("/alerts/{alert_id}/events"), tx);
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the first status event")
        .unwrap();
    assert!(
        !first.data.contains("st-acknowledged"),
        "acknowledged before anyone acknowledged"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut to_done = Vec::new();
    let mut to_page = Vec::new();
    let mut events = 0usize;
    for (i, raw) in raws.iter().enumerate() {
        assert!(Instant::now() < deadline, "out of time");
        let handle = &handles[primaries[i]];
        let marker = format!("st-acknowledged\" data-handle=\"{handle}\"");
        // Anything the stream said before this acknowledgement.
        while let Ok(e) = rx.try_recv() {
            assert!(!e.data.contains(&marker), "{handle} shown acknowledged before it did");
        }
        let receipt = Receipt::sign(
            &raw.id,
            ReceiptKind::Acknowledged,
            alert_bytes,
            hashes[i].unwrap(),
            &me_key,
            pocnet_client::now_ms(),
        );
        let req = Request::SendReceipt {
            to: *me_key.as_bytes(),
            receipt: receipt.as_bytes().to_vec(),
        };
        let t0 = Instant::now();
        match raw.pipe.call(req).await {
            Ok(Response::Done) => to_done.push(ms(t0.elapsed())),
            other => panic!("acknowledgement: {other:?}"),
        }
        loop {
            let e = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no event showing {handle} acknowledged within 10 s"))
                .expect("the stream ended");
            events += 1;
            if e.data.contains(&marker) {
                to_page.push(ms(e.at - t0));
                break;
            }
        }
        // Let the portal's trailing work settle before the next one.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Where the time goes: the status the fragment is drawn from, on a second open.
    let status_ms = {
        let c = pocnet_client::app::Client::open(poc.home.path(), PASS.as_bytes()).unwrap();
        let sess = c.connect().await.unwrap();
        let mut v = Vec::new();
        for _ in 0..a.warm + 1 {
            let t = Instant::now();
            let st = c.alert_status_held(&sess, &alert_id).await.unwrap();
            v.push(ms(t.elapsed()));
            std::hint::black_box(st);
        }
        sess.close().await;
        v.remove(0);
        // Of which: finding the alert in the store by its id (a hex prefix match, no index).
        let mut f = Vec::new();
        for _ in 0..a.warm {
            let t = Instant::now();
            std::hint::black_box(c.store.find(&alert_id).unwrap());
            f.push(ms(t.elapsed()));
        }
        (dist(v), dist(f))
    };
    let (status_ms, find_ms) = status_ms;
    let (alert_page_warm, _) = tokio::task::block_in_place(|| s.get(&format!("/alerts/{alert_id}")));
    drop(portal);
    running.shutdown().await;

    let to_done = dist(to_done);
    let to_page = dist(to_page);
    let k = a.ack_states;
    if a.json {
        let pj: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{{\"path\":\"{}\",\"cold_ms\":{:.3},\"warm\":{},\"bytes\":{},\"rows\":{}}}",
                    r.path,
                    r.cold_ms,
                    r.warm.json(),
                    r.bytes,
                    r.rows
                )
            })
            .collect();
        println!(
            "{{\"parts\":[{}],\"pocs\":{p},\"messages\":{},\"portal_start_ms\":{start_ms:.1},\"pages\":[{}],\"css_cold_ms\":{css_cold:.3},\"css\":{},\"store_cold_ms\":{store_cold:.3},\"store\":{},\"ack_states\":{k},\"ack_to_page\":{},\"ack_to_done\":{},\"status_held\":{},\"find\":{},\"events\":{events}}}",
            parts
                .iter()
                .map(|(w, d)| format!("{{\"call\":{:?},\"d\":{}}}", w, d.json()))
                .collect::<Vec<_>>()
                .join(","),
            a.messages,
            pj.join(","),
            css_warm.json(),
            store_warm.json(),
            to_page.json(),
            to_done.json(),
            status_ms.json(),
            find_ms.json()
        );
        return;
    }
    println!(
        "{p} probe POCs + the portal's profile ({my_handle}) listed ({list_ms:.0} ms); {} received messages in \
         its store (inserted directly); `pocnet portal` printed its link after {start_ms:.0} ms.\n",
        a.messages
    );
    println!(
        "| GET (fresh TCP connection each) | bytes | rows | first (cold) ms | warm p50 ms | warm p99 ms | p50 ÷ bare HTTP p50 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        println!(
            "| `{}` | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.path,
            r.bytes,
            if r.rows > 0 { r.rows.to_string() } else { "—".into() },
            r.cold_ms,
            r.warm.p50,
            r.warm.p99,
            r.warm.p50 / css_warm.p50
        );
    }
    println!(
        "| ceiling: `/static/portal.css` (bare HTTP round trip) | {css_bytes} | — | {css_cold:.2} | {:.2} | {:.2} | 1 |",
        css_warm.p50, css_warm.p99
    );
    println!(
        "| ceiling: store `list_page(In, 51, 0)` + both counts, in-process, second open | — | 51 | {store_cold:.2} | {:.2} | {:.2} | — |",
        store_warm.p50, store_warm.p99
    );
    println!(
        "\nWhere a page's time goes: the calls the pages make, in-process on a second open (warm, {} each):\n",
        a.warm
    );
    println!("| call | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    for (what, d) in &parts {
        println!("| {what} | {:.2} | {:.2} |", d.p50, d.p99);
    }
    let ((pb, ab), (pa, aa)) = index_effect;
    println!(
        "| raw SQLite on a snapshot, the listing's query (top 51 of {} by `received_at`): no index → with an index on (direction, received_at) | {:.2} → {:.2} | {:.2} → {:.2} |",
        a.messages, pb.p50, pa.p50, pb.p99, pa.p99
    );
    println!(
        "| raw SQLite on a snapshot, the banner's query (received alerts): no index → with an index on (direction, content_type, received_at) | {:.2} → {:.2} | {:.2} → {:.2} |",
        ab.p50, aa.p50, ab.p99, aa.p99
    );
    let msg = &runs[2];
    println!(
        "\n`/messages` warm p50 ÷ (bare HTTP + store query) p50: {:.1}.\n",
        msg.warm.p50 / (css_warm.p50 + store_warm.p50)
    );
    println!(
        "Alert raised with the CLI to {k} states ({raise_ms:.0} ms, process included); its page (status \
         drawn once) {alert_page_cold:.1} ms first, {alert_page_warm:.1} ms at the end.\n"
    );
    println!("| acknowledgement → open page, {k} acks one at a time | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "| `Acknowledged` receipt sent → SSE `status` event showing it (target < 1000 ms) | {:.1} | {:.1} | {:.1} |",
        to_page.p50, to_page.p99, to_page.max
    );
    println!(
        "| ceiling: the same receipt → `Done` at the relay | {:.1} | {:.1} | {:.1} |",
        to_done.p50, to_done.p99, to_done.max
    );
    println!(
        "| ceiling: bare HTTP round trip (`/static/portal.css`) | {:.2} | {:.2} | {:.2} |",
        css_warm.p50, css_warm.p99, css_warm.max
    );
    println!(
        "| for where the time goes: `alert_status_held` (relay `EscalationStatus` + local receipts), in-process | {:.1} | {:.1} | {:.1} |",
        status_ms.p50, status_ms.p99, status_ms.max
    );
    println!(
        "| of which: `store.find(id)` (the alert by its whole id: one index lookup since schema 6) | {:.1} | {:.1} | {:.1} |",
        find_ms.p50, find_ms.p99, find_ms.max
    );
    println!(
        "\nRatio to the `Done` ceiling (p50): {:.1}; target {}. {events} events read for {k} acks.",
        to_page.p50 / to_done.p50,
        if to_page.max < 1000.0 {
            "met (max under 1 s)"
        } else {
            "not met"
        }
    );
}
