//! Escalation alerts through the real relay and client binaries: rank-by-rank release,
//! acknowledgements that stop it (and those that must not), repeats, follow-ups, EXERCISE,
//! TLP 2.0 forwarding rules, CAP 1.2 export, what the relay's store holds, and kill -9.

use pocnet_crypto::{Receipt, ReceiptKind};
use pocnet_tests::{Poc, Relay};
use pocnet_wire::{Request, Response};
use serde_json::Value;

/// Raises an alert from `from`; returns its id.
fn raise(from: &Poc, to: &[&str], extra: &[&str]) -> String {
    let mut args = vec!["alert", "raise", "--to"];
    args.extend_from_slice(to);
    args.extend_from_slice(&["--headline", "SCL airport: ATC systems degraded"]);
    args.extend_from_slice(&["--description", "Ransomware on the tower systems; flights held."]);
    args.extend_from_slice(extra);
    from.json(&args)["id"].as_str().unwrap().to_string()
}

/// The alerts a POC holds (`alert list --json`).
fn alerts(p: &Poc) -> Vec<Value> {
    p.json(&["alert", "list"]).as_array().unwrap().clone()
}

fn status(p: &Poc, id: &str) -> Value {
    p.json(&["alert", "status", id])
}

fn state<'a>(st: &'a Value, code: &str) -> &'a Value {
    st["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == code)
        .unwrap_or_else(|| panic!("no state {code} in {st}"))
}

fn poc_state(st: &Value, code: &str, handle: &str) -> String {
    state(st, code)["pocs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["handle"] == handle)
        .unwrap_or_else(|| panic!("no {handle} in {st}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_silent_primary_escalates_to_the_alternate_and_an_acknowledging_one_does_not() {
    let relay = Relay::start();
    let us = Poc::enrolled(&relay, "US", "primary");
    let cl1 = Poc::enrolled(&relay, "CL", "primary");
    let cl2 = Poc::enrolled(&relay, "CL", "alternate");
    let mx1 = Poc::enrolled(&relay, "MX", "primary");
    let mx2 = Poc::enrolled(&relay, "MX", "alternate");

    let id = raise(
        &us,
        &["CL", "MX"],
        &["--ack-within", "5s", "--repeat", "0", "--incident", "SCL-1"],
    );
    // The primaries have it at once; MX's acknowledges.
    mx1.ok(&["inbox"]);
    let got = alerts(&mx1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["release"]["rank"], 0);
    assert!(
        got[0]["escalates_at"].as_u64().is_some(),
        "the primary is told when the alternate is called"
    );
    mx1.ok(&["alert", "ack", &id[..16], "--note", "CSIRT engaged"]);
    // The alternates hold nothing yet.
    cl2.ok(&["inbox"]);
    assert!(
        alerts(&cl2).is_empty(),
        "nothing is released to an alternate before the window ends"
    );
    // CL's primary stays silent: CL's alternate is called when the window ends.
    let out = cl2.ok(&["watch", "--count", "1"]);
    assert!(out.contains("SCL airport"), "{out}");
    let got = alerts(&cl2);
    assert_eq!(got[0]["release"]["rank"], 1);
    // MX's alternate fell due at the same time, in the same release: it was cancelled.
    mx2.ok(&["inbox"]);
    assert!(
        alerts(&mx2).is_empty(),
        "an acknowledged state's alternate is never called"
    );

    // The sender sees it per state and per POC, from the relay's record and signed receipts.
    us.ok(&["inbox"]);
    let st = status(&us, &id);
    assert_eq!(state(&st, "MX")["acknowledged_by"], "MX.primary");
    assert_eq!(poc_state(&st, "MX", "MX.primary"), "acknowledged");
    assert_eq!(poc_state(&st, "MX", "MX.alternate"), "not_needed");
    assert_eq!(state(&st, "MX")["depth"], 0);
    assert_eq!(state(&st, "CL")["depth"], 1);
    assert!(state(&st, "CL")["acknowledged_by"].is_null());
    assert_ne!(poc_state(&st, "CL", "CL.alternate"), "held");
    // The acknowledgement's note reached the sender as a CAP Ack, on the incident timeline.
    let t = us.json(&["incident", "show", "SCL-1"]);
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"alert"), "{kinds:?}");
    assert!(kinds.contains(&"acknowledged"), "{kinds:?}");
    drop(cl1);
}

#[test]
fn repeats_stop_at_n_and_an_unanswered_state_is_reported_unreached() {
    let relay = Relay::start();
    let us = Poc::enrolled(&relay, "US", "primary");
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let id = raise(&us, &["CL"], &["--ack-within", "1s", "--repeat", "2"]);
    // The first release and two repeats ring; watch shows each.
    let out = cl.ok(&["watch", "--count", "3"]);
    assert_eq!(out.matches("SCL airport").count(), 3, "{out}");
    // `status --follow` ends once the state is unreached (after the last repeat's window).
    // With --json, one line per change: the last is where it ended.
    let out = us.ok(&["alert", "status", &id, "--follow", "--json"]);
    let st: Value = serde_json::from_str(out.lines().rfind(|l| !l.trim().is_empty()).unwrap()).unwrap();
    assert_eq!(state(&st, "CL")["unreached"], true, "{st}");
    // Its device fetched every ring (delivered), but no person acknowledged.
    assert_eq!(poc_state(&st, "CL", "CL.primary"), "delivered");
    assert!(state(&st, "CL")["acknowledged_by"].is_null());
    // No fourth ring: N repeats, then nothing.
    cl.ok(&["inbox"]);
    assert_eq!(alerts(&cl)[0]["rings"], 3);
}

#[test]
fn acknowledgements_from_another_state_a_non_poc_or_with_a_bad_signature_stop_nothing() {
    let relay = Relay::start();
    let us = Poc::enrolled(&relay, "US", "primary");
    let _cl1 = Poc::enrolled(&relay, "CL", "primary");
    let cl2 = Poc::enrolled(&relay, "CL", "alternate");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let id = raise(&us, &["CL"], &["--ack-within", "3s", "--repeat", "0"]);
    let sent = us.client().store.find(&id).unwrap();
    let to = *us.client().identity.public_key().as_bytes();
    let ack_from = |who: &pocnet_crypto::Identity| {
        Receipt::sign(
            who,
            ReceiptKind::Acknowledged,
            sent.id.0,
            sent.envelope_hash.0,
            us.client().identity.public_key(),
            pocnet_client::now_ms(),
        )
    };
    // MX's POC, and CL's national authority (listed, but not a POC), acknowledge CL's alert.
    for who in [mx.client().identity, relay.authority("CL").client().identity] {
        let r = ack_from(&who);
        match relay.request(
            &who,
            Request::SendReceipt {
                to,
                receipt: r.as_bytes().to_vec(),
            },
        ) {
            Ok(Response::Done) => {}
            other => panic!("a well-formed receipt is queued for the sender: {other:?}"),
        }
    }
    // A receipt from CL's alternate with one signature byte flipped is refused outright.
    let alt = cl2.client().identity;
    let mut bad = ack_from(&alt).as_bytes().to_vec();
    let n = bad.len();
    bad[n - 1] ^= 1;
    match relay.request(&alt, Request::SendReceipt { to, receipt: bad }) {
        Err(pocnet_client::Error::Relay {
            code: pocnet_wire::ErrorCode::BadEnvelope,
            ..
        }) => {}
        other => panic!("a forged acknowledgement must be refused: {other:?}"),
    }
    // None of them stopped CL's escalation: the alternate is called.
    let out = cl2.ok(&["watch", "--count", "1"]);
    assert!(out.contains("SCL airport"), "{out}");
    let st = status(&us, &id);
    assert!(state(&st, "CL")["acknowledged_by"].is_null(), "{st}");
    assert_eq!(state(&st, "CL")["depth"], 1);
}

#[test]
fn updates_reach_released_ranks_cancel_stops_escalation_and_exercise_is_never_real() {
    let relay = Relay::start();
    let us = Poc::enrolled(&relay, "US", "primary");
    let cl1 = Poc::enrolled(&relay, "CL", "primary");
    let cl2 = Poc::enrolled(&relay, "CL", "alternate");
    let id = raise(
        &us,
        &["CL"],
        &[
            "--ack-within",
            "1h",
            "--exercise",
            "--incident",
            "DRILL-7",
            "--tlp",
            "amber",
        ],
    );
    us.ok(&["alert", "update", &id, "--description", "Backup tower operational."]);
    us.ok(&["alert", "cancel", &id, "--reason", "drill ended early"]);
    // The released primary gets the alert, the update and the cancellation.
    let out = cl1.ok(&["watch", "--count", "3"]);
    assert!(out.contains("EXERCISE"), "drill traffic says so: {out}");
    // Structured fields in the POC's language from the directory (the fixtures say `es`).
    assert!(out.contains("EJERCICIO"), "{out}");
    assert!(out.contains("Backup tower operational."), "{out}");
    let got = alerts(&cl1);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|a| a["exercise"] == true));
    // The alternate was held for an hour; the cancellation stopped it: nothing ever comes.
    cl2.ok(&["inbox"]);
    assert!(alerts(&cl2).is_empty());
    let st = status(&us, &id);
    assert_eq!(st["stopped"], true, "{st}");
    assert_eq!(poc_state(&st, "CL", "CL.alternate"), "stopped");
    // Exported as CAP, a drill is status Exercise, never Actual.
    let xml = cl1.ok(&["alert", "export", &id[..16], "--cap"]);
    assert!(xml.contains("<status>Exercise</status>"), "{xml}");
    assert!(!xml.contains("<status>Actual</status>"));
    // Forwarded, it stays an exercise.
    cl1.ok(&["forward", &id[..16], "CL.alternate"]);
    cl2.ok(&["inbox"]);
    let inbox = cl2.json(&["inbox", "--offline"]);
    let fwd = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"].as_str().unwrap().starts_with("Fwd:"))
        .unwrap();
    assert_eq!(fwd["exercise"], true);
    // The incident timeline says EXERCISE.
    let md = cl1.ok(&["incident", "show", "DRILL-7"]);
    assert!(md.contains("EXERCISE"), "{md}");
}

#[test]
fn tlp_red_and_amber_strict_forwarding_is_refused_with_the_rule() {
    let relay = Relay::start();
    let cl1 = Poc::enrolled(&relay, "CL", "primary");
    let cl2 = Poc::enrolled(&relay, "CL", "alternate");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let ar = Poc::enrolled(&relay, "AR", "primary");
    // TLP:RED from MX to CL.primary and AR.primary.
    let red = mx.json(&[
        "send",
        "CL.primary",
        "AR.primary",
        "--tlp",
        "red",
        "--subject",
        "red one",
        "-m",
        "x",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let strict = mx.json(&[
        "send",
        "CL.primary",
        "--tlp",
        "amber+strict",
        "--subject",
        "strict one",
        "-m",
        "y",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    cl1.ok(&["inbox"]);
    // RED: not to someone who was not on it (exit 14, the rule named), but to one who was.
    let out = cl1.run(&["forward", &red[..16], "CL.alternate"]);
    assert_eq!(out.status.code(), Some(14));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLP:RED"), "{err}");
    assert!(err.contains("CL.alternate"), "{err}");
    cl1.ok(&["forward", &red[..16], "AR.primary"]);
    // AMBER+STRICT: inside CL only.
    let out = cl1.run(&["forward", &strict[..16], "AR.primary"]);
    assert_eq!(out.status.code(), Some(14));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLP:AMBER+STRICT"), "{err}");
    cl1.ok(&["forward", &strict[..16], "CL.alternate"]);
    // Nothing refused was sent: AR got the RED forward only, CL.alternate the strict one only.
    ar.ok(&["inbox"]);
    cl2.ok(&["inbox"]);
    let subjects = |p: &Poc| -> Vec<String> {
        p.json(&["inbox", "--offline"])
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["subject"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(subjects(&cl2), vec!["Fwd: strict one"]);
    assert!(subjects(&ar).contains(&"Fwd: red one".to_string()));
    assert!(!subjects(&ar).contains(&"Fwd: strict one".to_string()));
}

#[test]
fn the_cap_export_validates_against_the_official_schema() {
    let relay = Relay::start();
    let us = Poc::enrolled(&relay, "US", "primary");
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let id = raise(
        &us,
        &["CL"],
        &[
            "--ack-within",
            "15m",
            "--incident",
            "SCL-9",
            "--severity",
            "Extreme",
            "--category",
            "Infra",
            "--category",
            "Transport",
            "--instruction",
            "Call <the> \"duty\" officer & confirm",
        ],
    );
    let upd = us.json(&["alert", "update", &id, "--description", "Contained.", "--all-clear"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    cl.ok(&["watch", "--count", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/data/CAP-v1.2.xsd");
    for (who, which) in [(&us, &id), (&cl, &id), (&cl, &upd)] {
        let path = dir.path().join(format!("{which}.xml"));
        who.ok(&[
            "alert",
            "export",
            &which[..16],
            "--cap",
            "--out",
            path.to_str().unwrap(),
        ]);
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema", xsd, path.to_str().unwrap()])
            .output()
            .expect("xmllint is missing; install it: apt-get install -y libxml2-utils");
        assert!(
            out.status.success(),
            "CAP export does not validate: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&path).unwrap()
        );
    }
    let xml = cl.ok(&["alert", "export", &upd[..16], "--cap"]);
    assert!(xml.contains("<msgType>Update</msgType>"));
    assert!(xml.contains("<scope>Restricted</scope>"));
    assert!(xml.contains("<references>"));
}

#[test]
fn the_relay_store_holds_no_alert_plaintext() {
    let relay = Relay::start();
    let us = Poc::enrolled(&relay, "US", "primary");
    let _cl1 = Poc::enrolled(&relay, "CL", "primary");
    let _cl2 = Poc::enrolled(&relay, "CL", "alternate");
    let marker = "PLAINTEXT-MARKER-7f3a9c";
    let mut args = vec!["alert", "raise", "--to", "CL", "--ack-within", "1h", "--repeat", "0"];
    let h = format!("{marker} headline");
    let d = format!("{marker} description");
    let i = format!("{marker} instruction");
    args.extend_from_slice(&["--headline", &h, "--description", &d, "--instruction", &i]);
    us.ok(&args);
    let dir = relay.dir.path();
    let mut scanned = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            scanned += bytes.len();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{} holds alert plaintext",
                p.display()
            );
        }
    }
    // The scan saw the alert: the plan (state, ranks, times) is readable, and stored.
    let c = relay.db();
    let steps: i64 = c
        .query_row("SELECT COUNT(*) FROM escalation_steps", [], |r| r.get(0))
        .unwrap();
    assert_eq!(steps, 2, "one step per rank");
    assert!(scanned > 0);
}

#[test]
fn kill_9_mid_escalation_releases_each_rank_once_late_ones_marked_and_an_offline_ack_is_honoured() {
    let mut relay = Relay::start();
    let us = Poc::enrolled(&relay, "US", "primary");
    let cl1 = Poc::enrolled(&relay, "CL", "primary");
    let cl2 = Poc::enrolled(&relay, "CL", "alternate");
    let mx1 = Poc::enrolled(&relay, "MX", "primary");
    let mx2 = Poc::enrolled(&relay, "MX", "alternate");

    // MX: an hour's window; its primary fetches the alert, then acknowledges while the relay
    // is down.
    let slow = raise(&us, &["MX"], &["--ack-within", "1h", "--repeat", "0"]);
    mx1.ok(&["inbox"]);
    // CL: a 2 s window, and the relay killed at once, so the alternate falls due while it is
    // down.
    let fast = raise(&us, &["CL"], &["--ack-within", "2s", "--repeat", "0"]);
    relay.kill9();
    let down = std::time::Instant::now();
    let out = mx1.ok(&["alert", "ack", &slow[..16]]);
    assert!(out.contains("relay cannot be reached"), "{out}");
    // The relay stays down past CL's alternate's due time by more than the lateness mark.
    // (Real downtime, not synchronisation: the point is a release that fell due meanwhile.)
    let needed = std::time::Duration::from_millis(2_000 + pocnet_core::alert::LATE_AFTER_MS + 500);
    if let Some(rest) = needed.checked_sub(down.elapsed()) {
        std::thread::sleep(rest);
    }
    relay.serve();
    // CL's alternate gets it at once, marked late.
    cl2.ok(&["inbox"]);
    let got = alerts(&cl2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["release"]["late"], true, "{got:?}");
    // MX's primary is back: its kept acknowledgement goes out and stops MX's escalation.
    mx1.ok(&["inbox"]);
    let st = status(&us, &slow);
    assert_eq!(state(&st, "MX")["acknowledged_by"], "MX.primary", "{st}");
    assert_eq!(poc_state(&st, "MX", "MX.alternate"), "not_needed");
    // Killed again and restarted: nothing is released twice.
    relay.kill9();
    relay.serve();
    cl2.ok(&["inbox"]);
    assert_eq!(alerts(&cl2)[0]["rings"], 1);
    mx2.ok(&["inbox"]);
    assert!(alerts(&mx2).is_empty());
    let st = status(&us, &fast);
    assert_eq!(state(&st, "CL")["depth"], 1);
    drop(cl1);
}
