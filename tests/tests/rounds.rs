//! Contact verification rounds end to end: the real relay binary, real `pocnet` binaries
//! for the Secretariat and the POCs.

use pocnet_tests::{Poc, Relay};

fn inbox_subjects(p: &Poc) -> Vec<String> {
    p.json(&["inbox", "--offline"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect()
}

/// A prompt POC confirms, another updates its details, a third stays silent and gets the
/// held reminder (the others do not), one answers by phone; the report counts each, the
/// bundle re-verifies anywhere, and a tampered bundle does not.
#[test]
fn a_round_challenges_reminds_only_the_silent_and_its_bundle_reverifies() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let us = Poc::enrolled(&relay, "US", "primary");
    let br = Poc::enrolled(&relay, "BR", "primary");
    let sec = &relay.secretariat;
    // A short window (36 s) with one reminder at its middle (18 s).
    let started = sec.json(&["round", "start", "--deadline-hours", "0.01", "--reminder", "0.5"]);
    let round = started["round"].as_str().unwrap().to_string();
    assert_eq!(started["targets"], 4);
    assert_eq!(started["reminders"], 4);

    // Every POC sees the challenge until it answers.
    for p in [&cl, &mx, &us, &br] {
        p.ok(&["inbox"]);
        assert!(
            inbox_subjects(p)[0].starts_with("CONTACT CHECK"),
            "{:?}",
            inbox_subjects(p)
        );
        assert!(p.ok(&["round", "pending"]).contains(&round));
    }
    cl.ok(&["round", "answer", "--note", "all good"]);
    mx.ok(&["round", "answer", "--email", "mateo.new@example.gov"]);
    assert!(cl.ok(&["round", "pending"]).contains("no contact check waits"));
    // A second answer is refused: nothing waits.
    assert!(!cl.run(&["round", "answer"]).status.success());

    // The silent POC gets the reminder the relay held; wait for it as a user would.
    us.ok(&["watch", "--count", "1"]);
    assert!(
        inbox_subjects(&us).iter().any(|s| s.starts_with("REMINDER 1")),
        "{:?}",
        inbox_subjects(&us)
    );
    // Those who answered got no reminder (theirs were cancelled by their signed receipts).
    cl.ok(&["inbox"]);
    mx.ok(&["inbox"]);
    assert!(!inbox_subjects(&cl).iter().any(|s| s.starts_with("REMINDER")));
    assert!(!inbox_subjects(&mx).iter().any(|s| s.starts_with("REMINDER")));

    // BR answers by phone: the Secretariat records it.
    sec.ok(&[
        "round",
        "outcome",
        &round,
        "BR.primary",
        "--how",
        "phone",
        "--note",
        "called back",
    ]);
    // The Secretariat fetches the answers (and publishes MX's update).
    let report = sec.json(&["round", "report", &round, "--format", "json"]);
    let pocs = report["pocs"].as_array().unwrap();
    let status = |h: &str| {
        pocs.iter()
            .find(|p| p["handle"] == h)
            .map(|p| p["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("CL.primary"), "within_1h");
    assert_eq!(status("MX.primary"), "within_1h");
    assert_eq!(status("US.primary"), "never");
    assert_eq!(status("BR.primary"), "outside");
    let changed: Vec<&str> = pocs
        .iter()
        .filter(|p| p["details_changed"] == true)
        .map(|p| p["handle"].as_str().unwrap())
        .collect();
    assert_eq!(changed, vec!["MX.primary"]);
    // MX's new e-mail is in the directory now.
    cl.ok(&["directory", "sync"]);
    assert!(cl
        .ok(&["directory", "show", "MX.primary"])
        .contains("mateo.new@example.gov"));

    // The bundle re-verifies anywhere, to the same figures.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("round.bundle");
    sec.ok(&["round", "bundle", &round, "--out", path.to_str().unwrap()]);
    let anyone = Poc::new();
    let again = anyone.json(&["round", "verify", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(again["pocs"], report["pocs"]);
    for fmt in ["md", "csv", "html"] {
        assert!(!anyone
            .ok(&["round", "verify", path.to_str().unwrap(), "--format", fmt])
            .is_empty());
    }
    // A flipped byte anywhere past the header fails verification.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    let bad = dir.path().join("tampered.bundle");
    std::fs::write(&bad, &bytes).unwrap();
    let out = anyone.run(&["round", "verify", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(13), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A recurring round: `round due` starts one when the schedule says so, and not again
/// before the period is over; POCs see the check in their inbox until they answer.
#[test]
fn a_scheduled_round_starts_when_due_and_only_then() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let sec = &relay.secretariat;
    assert!(!sec.run(&["round", "due"]).status.success(), "no schedule yet");
    sec.ok(&["round", "schedule", "--every-days", "90", "--deadline-hours", "72"]);
    let first = sec.json(&["round", "due"]);
    assert_eq!(first["targets"], 1);
    assert!(sec.ok(&["round", "due"]).contains("not due"));
    assert_eq!(sec.json(&["round", "list"]).as_array().unwrap().len(), 1);
    let out = cl.run(&["inbox"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONTACT CHECK: 1 waiting"));
    cl.ok(&["round", "answer"]);
    let out = cl.run(&["inbox"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("CONTACT CHECK"));
}

/// Forged answers reach the Secretariat and are refused: an answer signed by another key
/// than its envelope's, and an answer to another round. Neither counts in the report.
#[test]
fn forged_answers_are_refused() {
    use pocnet_crypto::{ContentType, HeaderFields, Suite, Tlp};
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let sec = &relay.secretariat;
    let round = sec.json(&["round", "start", "--deadline-hours", "24", "--reminder", "0.5"])["round"]
        .as_str()
        .unwrap()
        .to_string();
    mx.ok(&["inbox"]);
    let pending = mx.client().store.round_pending().unwrap();
    let challenge_id = pending[0].challenge_id;
    let round_id: [u8; 16] = pocnet_crypto::from_hex(&round).unwrap().try_into().unwrap();
    let (mxid, clid, secid) = (mx.client().identity, cl.client().identity, sec.client().identity);
    let send = |signed_by: &pocnet_crypto::Identity, round_id: [u8; 16]| {
        let answer = pocnet_core::round::Answer::new(round_id, challenge_id, true, None, "forged", 1);
        let signed = answer.sign(signed_by).unwrap();
        let fields = HeaderFields {
            suite: Suite::XWing,
            tlp: Tlp::Amber,
            content_type: ContentType::RoundResponse,
            ..HeaderFields::message(pocnet_client::now_ms())
        };
        // Always sealed and sent by MX, to the Secretariat.
        let sealed = pocnet_crypto::seal(
            &mut pocnet_crypto::os_rng(),
            &mxid,
            &[secid.public()],
            &fields,
            signed.as_bytes(),
        )
        .unwrap();
        match relay.request(&mxid, pocnet_wire::Request::Send { envelope: sealed.bytes }) {
            Ok(pocnet_wire::Response::Accepted { .. }) => {}
            other => panic!("{other:?}"),
        }
    };
    send(&clid, round_id); // signed by CL inside MX's envelope
    let mut other_round = round_id;
    other_round[0] ^= 1;
    send(&mxid, other_round); // MX's own signature, another round
    let out = sec.run(&["inbox"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 REJECTED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = sec.json(&["round", "report", &round, "--format", "json"]);
    assert_eq!(report["totals"]["never"], 2, "{report}");
}
