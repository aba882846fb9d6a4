//! `pocnet-probe`: the hostile-client probe as a measurement. Starts the real
//! `pocnet-relay` binary on 127.0.0.1, runs an honest pair alone (its undisturbed rate),
//! then again while every attack of `pocnet_tests::probe` runs in rounds, then alone once
//! more; samples the relay's resident memory throughout. Bounded in count and time.
//!
//! `cargo build --release --workspace && target/release/pocnet-probe [--seconds S] [--strangers N]`
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pocnet_tests::probe::{self, connect, identity, rss_kib, Honest, Raw, Tally};
use pocnet_wire::Request;

fn arg(name: &str, default: u64) -> u64 {
    let v: Vec<String> = std::env::args().collect();
    v.iter()
        .position(|a| a == name)
        .and_then(|i| v.get(i + 1))
        .map(|x| x.parse().expect("numeric argument"))
        .unwrap_or(default)
}

fn relay_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().join("pocnet-relay")
}

#[tokio::main]
async fn main() {
    let secs = arg("--seconds", 10);
    let n_strangers = arg("--strangers", 200) as usize;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(relay_bin())
            .args(args)
            .env("POCNET_RELAY_PASSPHRASE", "probe")
            .env("POCNET_RELAY_DATA", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // The directory: an in-process Secretariat lists the probe's keys (setup, not measured).
    let mut secretariat = probe::Secretariat::new();
    run(&["init", "--directory", &secretariat.vkey()]);
    // Honest limits for a busy POC: sends are not the bottleneck of this probe.
    let toml = dir.path().join("relay.toml");
    let mut cfg: String = std::fs::read_to_string(&toml)
        .unwrap()
        .lines()
        .filter(|l| !["rate_per_sec", "rate_burst", "upload_quota_mib"].contains(&l.split('=').next().unwrap().trim()))
        .map(|l| format!("{l}\n"))
        .collect();
    cfg.push_str("rate_per_sec = 5000.0\nrate_burst = 5000.0\nupload_quota_mib = 200\n");
    std::fs::write(&toml, cfg).unwrap();
    let mut child = Command::new(relay_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("POCNET_RELAY_PASSPHRASE", "probe")
        .env("POCNET_RELAY_DATA", dir.path())
        .env("POCNET_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    let addr: std::net::SocketAddr = parts[2].parse().unwrap();
    let fp = pocnet_crypto::Fingerprint::parse(parts[4]).unwrap();
    let pid = child.id();
    let ids: Vec<_> = (0..5).map(|_| identity()).collect();
    secretariat
        .list(addr, fp, &ids.iter().collect::<Vec<_>>())
        .await
        .expect("list the probe's keys");
    let mut members: Vec<Raw> = Vec::new();
    for id in ids {
        members.push(connect(addr, fp, id).await.unwrap());
    }
    let victim = members.pop().unwrap();
    let insider = members.pop().unwrap();
    let other = members.pop().unwrap();
    let b = members.pop().unwrap();
    let a = members.pop().unwrap();
    let (vpub, opub, apub) = (victim.id.public(), other.id.public(), a.id.public());

    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    let honest = Honest::start(a, b, 32).await;
    let warm = honest.rate_over(Duration::from_secs(2)).await;
    let undisturbed = honest.rate_over(Duration::from_secs(secs)).await;
    let rss_before = rss_kib(pid).unwrap_or(0);
    peak.store(rss_before, Ordering::Relaxed);
    eprintln!("undisturbed: {undisturbed:.0}/s (warm-up {warm:.0}/s), relay RSS {rss_before} KiB; attacking …");

    // Attack in rounds for `secs` seconds, measuring the honest pair meanwhile.
    let attacking = Arc::new(AtomicBool::new(true));
    let insider = Arc::new(insider);
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let rounds = Arc::new(AtomicU64::new(0));
    let attack = {
        let (attacking, insider, tally, rounds) = (attacking.clone(), insider.clone(), tally.clone(), rounds.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while attacking.load(Ordering::Relaxed) {
                let strangers = tokio::spawn(probe::strangers(addr, fp, n_strangers));
                let mut t = probe::undeliverable(&insider, &vpub, &opub, 50).await;
                let (w, open) = probe::idle_watchers(&insider, 50).await;
                held.extend(open);
                t.merge(&w);
                t.merge(&probe::upload_fill(&insider, 90 * 1024 * 1024, 5).await);
                t.merge(&probe::flood_all(&insider, &apub, 500).await);
                t.merge(&probe::flood(&insider, Request::Lookup { query: "*".into() }, 2000).await);
                if let Ok(s) = strangers.await {
                    t.merge(&s);
                }
                tally.lock().unwrap().merge(&t);
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            held
        })
    };
    let t0 = Instant::now();
    let during = honest.rate_over(Duration::from_secs(secs)).await;
    let peak_during = peak.load(Ordering::Relaxed);
    attacking.store(false, Ordering::Relaxed);
    let held = attack.await.unwrap();
    let attack_secs = t0.elapsed().as_secs_f64();
    drop(held);
    let after = honest.rate_over(Duration::from_secs(secs)).await;
    let rss_after = rss_kib(pid).unwrap_or(0);
    sampling.store(false, Ordering::Relaxed);
    let (sent, delivered, refused) = honest.drain(Duration::from_secs(60)).await;
    let _ = child.kill();
    let _ = child.wait();

    let grow = peak_during.saturating_sub(rss_before) as f64 / 1024.0;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| honest pair undisturbed | {undisturbed:.0} msgs/s |");
    println!(
        "| honest pair during attacks ({} rounds in {attack_secs:.1} s) | {during:.0} msgs/s ({:.2} of undisturbed; target ≥ 0.5) |",
        rounds.load(Ordering::Relaxed),
        during / undisturbed
    );
    println!("| honest pair after attacks | {after:.0} msgs/s |");
    println!("| relay RSS before attacks | {:.1} MiB |", rss_before as f64 / 1024.0);
    println!(
        "| relay RSS peak during attacks | {:.1} MiB (+{grow:.1} MiB; target < 64) |",
        peak_during as f64 / 1024.0
    );
    println!("| relay RSS after attacks | {:.1} MiB |", rss_after as f64 / 1024.0);
    println!("| honest messages accepted / delivered / refused | {sent} / {delivered} / {refused} |");
    let t = tally.lock().unwrap();
    let answers: Vec<String> = t.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("| attack answers | {} |", answers.join(", "));
}
