//! Drills through the real binaries: `pocnet drill run` starts its relay, enrols a simulated
//! network through the real flows and runs a shipped scenario (the reduced form of `pocnet
//! demo` that CI runs); the record re-verifies and a tampered one is refused; nothing of a
//! drill passes for real traffic; a drill can be paused, resumed and ended early, and still
//! yields its report.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use pocnet_tests::bin;
use serde_json::Value;

const DRILL_PASSPHRASE: &str = pocnet_client::drill::network::DRILL_PASSPHRASE;

fn pocnet(args: &[&str]) -> Command {
    let mut c = Command::new(bin("pocnet"));
    c.args(args)
        .env("POCNET_RELAY_BIN", bin("pocnet-relay"))
        .env("POCNET_LOG", "warn")
        .env_remove("POCNET_HOME")
        .env_remove("POCNET_PASSPHRASE");
    c
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report/report.json")).unwrap()).unwrap()
}

#[test]
fn the_silent_state_drill_runs_end_to_end_its_record_re_verifies_and_nothing_passes_for_real() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("drill");
    // 45 drill minutes at 300×: 9 s of drill after the 10-state network is enrolled.
    let out = pocnet(&[
        "drill",
        "run",
        "silent-state",
        "--rate",
        "300",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let paths: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(paths["ended_early"], false);
    let r = report(&dir);
    // Guyana (both POCs silent) is unreached after the last repeat; every other state
    // acknowledged (JM's primary is offline, its alternate answers).
    let states = r["alerts"][0]["states"].as_array().unwrap();
    let gy = states.iter().find(|s| s["state"] == "GY").unwrap();
    assert_eq!(gy["outcome"], "unreached", "{gy}");
    for s in states.iter().filter(|s| s["state"] != "GY") {
        assert_eq!(s["outcome"], "acknowledged", "{s}");
    }
    let jm = states.iter().find(|s| s["state"] == "JM").unwrap();
    assert_eq!(jm["acknowledged_by"], "JM.alternate", "{jm}");
    assert!(r["marking"].as_str().unwrap().contains("EXERCISE"));

    // Anyone re-derives the same report from the signed record; a flipped byte is refused.
    let record = dir.join("report/drill.record");
    let v = pocnet(&["drill", "verify", record.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let again: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(again["alerts"], r["alerts"]);
    let mut bytes = std::fs::read(&record).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let bad = work.path().join("tampered.record");
    std::fs::write(&bad, &bytes).unwrap();
    let v = pocnet(&["drill", "verify", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(v.status.code(), Some(13), "{}", String::from_utf8_lossy(&v.stderr));

    // The portal shows the after-action report, verified from the record, under the
    // EXERCISE banner; a tampered record is named as not verifying; a POC's drill alert
    // carries the EXERCISE banner there too.
    let jm2 = std::fs::read_dir(dir.join("network"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("JM") && p.to_string_lossy().contains("alternate"))
        .expect("JM's alternate has a profile in the drill network");
    let portal = pocnet_tests::portal::Portal::start_at(
        &jm2,
        DRILL_PASSPHRASE,
        &["--drills", record.to_str().unwrap(), "--drills", bad.to_str().unwrap()],
    );
    let cookie = portal.sign_in();
    let listed = portal.get(&cookie, "/drills");
    assert!(listed.body.contains("drill.record") && listed.body.contains("tampered.record"));
    let good = portal.get(&cookie, "/drills/0");
    assert_eq!(good.status, 200);
    assert!(good.body.contains("class=\"exercise\""), "EXERCISE banner");
    assert!(
        good.body.contains("Verified:") && good.body.contains("JM.alternate"),
        "{}",
        good.body
    );
    let tampered = portal.get(&cookie, "/drills/1");
    assert!(tampered.body.contains("does NOT verify"), "{}", tampered.body);
    let alerts = portal.get(&cookie, "/alerts");
    let id = alerts
        .body
        .split("href=\"/alerts/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the drill alert is listed")
        .to_string();
    let page = portal.get(&cookie, &format!("/alerts/{id}"));
    assert!(page.body.contains("class=\"exercise\""), "{}", page.body);
    drop(portal);

    // Every POC's store holds drill traffic only, marked as such: nothing shows as real.
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.join("network")).unwrap() {
        let home = entry.unwrap().path();
        if !home.is_dir() || home.ends_with("relay") {
            continue;
        }
        let inbox = pocnet(&["inbox", "--offline", "--json"])
            .env("POCNET_HOME", &home)
            .env("POCNET_PASSPHRASE", DRILL_PASSPHRASE)
            .output()
            .unwrap();
        if !inbox.status.success() {
            continue;
        }
        let msgs: Value = serde_json::from_slice(&inbox.stdout).unwrap();
        for m in msgs.as_array().unwrap() {
            // Round challenges are the Secretariat's (rounds carry no exercise flag yet);
            // every alert and message of the drill is EXERCISE.
            assert_eq!(
                m["exercise"],
                true,
                "{} shows drill traffic as real: {m}",
                home.display()
            );
            seen += 1;
        }
        // And the alert list says EXERCISE on every alert.
        let list = pocnet(&["alert", "list", "--json"])
            .env("POCNET_HOME", &home)
            .env("POCNET_PASSPHRASE", DRILL_PASSPHRASE)
            .output()
            .unwrap();
        let alerts: Value = serde_json::from_slice(&list.stdout).unwrap();
        for a in alerts.as_array().unwrap() {
            assert_eq!(a["exercise"], true);
        }
    }
    assert!(seen > 20, "the scan saw the drill's traffic ({seen} items)");
}

#[test]
fn a_drill_pauses_resumes_and_ends_early_with_a_report() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("drill");
    // At 30× the 45-minute scenario would take 90 s: it is ended long before.
    let mut child = pocnet(&[
        "drill",
        "run",
        "silent-state",
        "--rate",
        "30",
        "--dir",
        dir.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut wait_for = |what: &str| {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "the drill ended before `{what}`");
            if line.contains(what) {
                return;
            }
        }
    };
    let ctl = |word: &str| {
        let out = pocnet(&["drill", word, "--dir", dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    // Synchronised on what the drill prints, never on time.
    wait_for("EXERCISE started");
    ctl("pause");
    wait_for("paused");
    ctl("resume");
    wait_for("resumed");
    ctl("end");
    wait_for("ended early");
    let status = child.wait().unwrap();
    assert!(status.success());
    let r = report(&dir);
    assert_eq!(r["ended_early"], true);
    let kinds: Vec<String> = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect();
    for k in ["pause", "resume", "end"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
}

/// Questions and a contact check in a drill: the challenges, reminders and answers carry the
/// EXERCISE flag too, and the report has the answers and the response rate.
const SMALL: &str = r#"
name = "Small drill"
description = "Three states, one alert, one question, one contact check."
clock_rate = 300
window = "10m"
repeats = 0
seed = 5
duration = "40m"

[participants]
states = ["CL", "MX", "PE"]
ranks = ["primary", "alternate"]

[profiles]
default = "prompt"

[profiles.handles]
"PE.primary" = "silent"

[[inject]]
at = "0m"
kind = "alert"
from = "CL.primary"
to = ["*"]
headline = "Exercise alert"
description = "An exercise."
severity = "Minor"
urgency = "Expected"
certainty = "Possible"
category = ["Infra"]
tlp = "green"

[[inject]]
at = "2m"
kind = "question"
text = "What is the role of regional organisations?"
deadline = "20m"
reminders = ["10m"]

[[inject]]
at = "3m"
kind = "round"
deadline = "20m"
reminders = ["10m"]
"#;

#[test]
fn questions_and_contact_checks_in_a_drill_are_exercise_and_answered_in_the_report() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("drill");
    let file = work.path().join("small.toml");
    std::fs::write(&file, SMALL).unwrap();
    let out = pocnet(&["drill", "run", file.to_str().unwrap(), "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(&dir);
    // Five of six POCs answer the question (PE.primary is silent) and confirm their details.
    let q = &r["questions"][0];
    assert_eq!(q["answers"].as_array().unwrap().len(), 5, "{q}");
    let rounds = r["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    // PE's alternate acknowledged the alert after its primary stayed silent.
    let pe = r["alerts"][0]["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "PE")
        .unwrap()
        .clone();
    assert_eq!(pe["acknowledged_by"], "PE.alternate", "{pe}");
    // Every stored item in every profile is EXERCISE: challenges, reminders, answers too.
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.join("network")).unwrap() {
        let home = entry.unwrap().path();
        if !home.is_dir() || home.ends_with("relay") {
            continue;
        }
        // Received items (the Secretariat's inbox holds the answers).
        let o = pocnet(&["inbox", "--offline", "--json"])
            .env("POCNET_HOME", &home)
            .env("POCNET_PASSPHRASE", DRILL_PASSPHRASE)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for m in serde_json::from_slice::<Value>(&o.stdout).unwrap().as_array().unwrap() {
            assert_eq!(m["exercise"], true, "{}: {m}", home.display());
            seen += 1;
        }
    }
    assert!(seen > 20, "{seen}");
}

/// A human POC takes part with their own client beside the simulated ones: enrolled through
/// the real voice check (the drill officer types the code heard), they receive the drill's
/// alert with their own `pocnet watch`, acknowledge it with `pocnet alert ack`, and the report
/// shows what they did.
const WITH_HUMAN: &str = r#"
name = "Drill with a human"
description = "Two states; Mexico's primary is a person with their own client."
clock_rate = 60
window = "10m"
repeats = 0
seed = 9
duration = "15m"

[participants]
states = ["CL", "MX"]
ranks = ["primary", "alternate"]
humans = ["MX.primary"]

[profiles]
default = "prompt"

[[inject]]
at = "1m"
kind = "alert"
from = "CL.primary"
to = ["*"]
headline = "Exercise: check your drill client"
description = "Acknowledge this exercise alert."
severity = "Minor"
urgency = "Expected"
certainty = "Possible"
category = ["Other"]
tlp = "green"
"#;

#[test]
fn a_human_with_their_own_client_takes_part_and_the_report_shows_what_they_did() {
    use std::io::Write;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("drill");
    let file = work.path().join("human.toml");
    std::fs::write(&file, WITH_HUMAN).unwrap();
    let mut child = pocnet(&["drill", "run", file.to_str().unwrap(), "--dir", dir.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut wait_for = |what: &str| -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "the drill ended before `{what}`");
            if line.contains(what) {
                return line.clone();
            }
        }
    };
    // The drill officer is told how the person enrols their own client.
    let enrol = wait_for("pocnet enrol --relay");
    let args: Vec<String> = enrol.split_whitespace().skip(1).map(String::from).collect();
    let human = pocnet_tests::Poc::new();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    human.ok(&a);
    // They read their fingerprint and, on the phone, their voice code.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", human.fingerprint()).unwrap();
    writeln!(stdin, "{}", human.voice_code()).unwrap();
    wait_for("MX.primary approved");
    let listed = human.ok(&a);
    assert!(listed.contains("MX.primary"), "{listed}");
    wait_for("EXERCISE started");
    // Their own client rings with the drill's alert, marked EXERCISE; they acknowledge.
    let out = human.ok(&["watch", "--count", "1"]);
    assert!(out.contains("EXERCISE"), "{out}");
    let id = human.json(&["alert", "list"])[0]["id"].as_str().unwrap().to_string();
    human.ok(&["alert", "ack", &id]);
    assert!(child.wait().unwrap().success());
    let r = report(&dir);
    let mx = r["alerts"][0]["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "MX")
        .unwrap()
        .clone();
    assert_eq!(mx["acknowledged_by"], "MX.primary", "{mx}");
    let humans = r["humans"].as_array().unwrap();
    assert_eq!(humans.len(), 1);
    assert_eq!(humans[0]["handle"], "MX.primary");
    assert_eq!(r["participants"]["humans"], 1, "{}", r["participants"]);
    assert!(humans[0]["alerts"][0]["acknowledged_ms"].is_u64(), "{}", humans[0]);
}
