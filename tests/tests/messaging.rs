//! End to end through the real binaries: a relay on 127.0.0.1, three enrolled POCs.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use pocnet_tests::{Poc, Relay};
use sha2::{Digest, Sha256};

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn three_pocs_message_one_to_one_and_one_to_many_with_receipts() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let us = Poc::enrolled(&relay, "US", "alternate");

    // 1:1, sent while MX is offline: stored at the relay, delivered on MX's next fetch.
    let sent = cl.json(&[
        "send",
        "MX.primary",
        "--subject",
        "SCL airport",
        "--tlp",
        "amber+strict",
        "--message",
        "ATC systems degraded.",
    ]);
    let id = sent["id"].as_str().unwrap().to_string();
    assert_eq!(sent["recipients"], serde_json::json!(["MX.primary"]));
    let st = cl.json(&["status", &id]);
    assert_eq!(st["recipients"][0]["state"], "stored");

    let inbox = mx.json(&["inbox"]);
    assert_eq!(ids(&inbox), vec![id.clone()]);
    assert_eq!(inbox[0]["tlp"], "TLP:AMBER+STRICT");
    assert_eq!(inbox[0]["peer"], "CL.primary");
    assert_eq!(inbox[0]["body"], "ATC systems degraded.");
    assert!(
        us.json(&["inbox"]).as_array().unwrap().is_empty(),
        "US was not a recipient"
    );

    // Delivered receipt arrives; then MX reads it and the sender sees `read`.
    assert_eq!(cl.json(&["status", &id])["recipients"][0]["state"], "delivered");
    let shown = mx.ok(&["read", &id[..10]]);
    assert!(shown.contains("TLP:AMBER+STRICT") && shown.contains("ATC systems degraded."));
    assert_eq!(cl.json(&["status", &id])["recipients"][0]["state"], "read");

    // 1:many, body from stdin.
    let out = us.run_with_stdin(
        &["send", "CL.primary", "MX.primary", "--subject", "to both", "--json"],
        b"from stdin",
    );
    assert!(out.status.success());
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let many = sent["id"].as_str().unwrap().to_string();
    for poc in [&cl, &mx] {
        let inbox = poc.json(&["inbox"]);
        let m = inbox
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == many.as_str())
            .expect("1:many message arrives");
        assert_eq!(m["body"], "from stdin");
        assert_eq!(m["recipients"].as_array().unwrap().len(), 2);
    }
    let st = us.json(&["status", &many]);
    assert!(
        st["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "delivered"),
        "{st}"
    );

    // A second fetch shows each message once (the user sees it exactly once).
    assert_eq!(mx.json(&["inbox"]).as_array().unwrap().len(), 2);
}

#[test]
fn watch_pushes_messages_to_an_online_recipient_and_runs_the_hook() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let hook_out = mx.home.path().join("hook.txt");
    let mut watch = mx
        .cmd(&[
            "watch",
            "--count",
            "1",
            "--json",
            "--exec",
            &format!(
                "printf '%s|%s|' \"$POCNET_FROM\" \"$POCNET_TLP\" >> {0}; cat >> {0}",
                hook_out.display()
            ),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `watch` says it is watching only once its stream is open and the (empty) backlog is in,
    // so the message below arrives as a live push.
    let mut err = BufReader::new(watch.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("watching"), "{line}");
    cl.ok(&["send", "MX.primary", "-s", "live", "--tlp", "red", "-m", "pushed"]);
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success());
    let m: serde_json::Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(m["body"], "pushed");
    assert_eq!(std::fs::read_to_string(hook_out).unwrap(), "CL.primary|TLP:RED|pushed");
}

#[test]
fn large_attachment_is_streamed_end_to_end() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "alternate");
    let file = cl.home.path().join("capture.pcap");
    let data: Vec<u8> = (0..21 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let sent = cl.json(&[
        "send",
        "MX.alternate",
        "-s",
        "pcap",
        "-m",
        "see attached",
        "--attach",
        file.to_str().unwrap(),
    ]);
    let inbox = mx.json(&["inbox"]);
    assert_eq!(inbox[0]["id"], sent["id"]);
    let att = &inbox[0]["attachments"][0];
    assert_eq!(
        (att["name"].as_str(), att["state"].as_str()),
        (Some("capture.pcap"), Some("kept"))
    );
    assert_eq!(att["size"].as_u64(), Some(data.len() as u64));
    // Kept encrypted in the profile; written out in plaintext only where the user asks.
    let out_dir = tempfile::tempdir().unwrap();
    let id = sent["id"].as_str().unwrap();
    let read = mx.json(&["read", id, "--save", out_dir.path().to_str().unwrap()]);
    let saved = read["saved"][0]["path"].as_str().unwrap();
    assert_eq!(std::path::Path::new(saved), out_dir.path().join("capture.pcap"));
    let got = std::fs::read(saved).unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
}

#[test]
fn graceful_shutdown_exits_cleanly_and_keeps_messages() {
    let mut relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let sent = cl.json(&["send", "MX.primary", "-m", "before shutdown"]);
    assert!(relay.terminate().success(), "SIGTERM leads to a clean exit");
    relay.serve();
    assert_eq!(mx.json(&["inbox"])[0]["id"], sent["id"]);
}
