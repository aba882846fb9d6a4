//! The client's own safety, end to end: other parties' text cannot take over the terminal
//! or fake our labels, nothing readable sits in the profile, secrets stay out of hooks and
//! argv.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use pocnet_tests::{Poc, Relay, PASS};

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(dirs(&p));
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Bytes a terminal would act on: C0 controls other than \n and \t, DEL, C1 controls
/// (UTF-8 C2 80..C2 9F), and bidi overrides/isolates (E2 80 AA..AE, E2 81 A6..A9).
fn raw_controls(out: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(out);
    s.chars()
        .filter(|&c| {
            (c < ' ' && c != '\n' && c != '\t')
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .map(|c| format!("{:?}", c))
        .collect()
}

#[test]
fn hostile_subject_and_body_cannot_rewrite_lines_or_fake_the_tlp_label() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let subject = "ok\r[TLP:CLEAR] nothing to see\u{1b}[2K\u{1b}[1A\u{202e}txt.exe\u{9b}31m";
    let body = "Routine.\r\nTLP:CLEAR\n[TLP:CLEAR]\n\u{1b}]0;owned\u{7}\u{1b}[1A\u{1b}[2Kfrom: CL.primary\n\u{7f}end";
    let out = cl.run_with_stdin(
        &["send", "MX.primary", "--tlp", "amber", "--subject", subject, "--json"],
        body.as_bytes(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = sent["id"].as_str().unwrap().to_string();

    // The listing: one line per message, no raw controls, our TLP column intact.
    let listing = mx.run(&["inbox"]);
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    assert_eq!(raw_controls(&listing.stdout), Vec::<String>::new());
    let text = String::from_utf8(listing.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let tlp_at = lines[0].find("TLP:AMBER").expect("the real label is listed");
    assert!(
        lines[0].find("CLEAR").unwrap() > tlp_at,
        "the sender's text comes after our label: {text}"
    );
    assert!(lines[0].contains("\\x1b[2K") && lines[0].contains("\\r") && lines[0].contains("\\u{202e}"));

    // The full message: label alone on the first line, body lines behind a gutter.
    let read = mx.run(&["read", &id]);
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    assert_eq!(raw_controls(&read.stdout), Vec::<String>::new());
    let shown = String::from_utf8(read.stdout).unwrap();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "[TLP:AMBER]", "{shown}");
    assert_eq!(*lines.last().unwrap(), "[TLP:AMBER]", "{shown}");
    for l in &lines {
        assert!(
            !(l.starts_with("TLP:") || l.starts_with("[TLP:")) || *l == "[TLP:AMBER]",
            "a line that passes for a label: {l:?}\n{shown}"
        );
        assert!(!l.starts_with("from: CL"), "sender text at the start of a line: {l:?}");
    }
    assert!(lines.contains(&"| TLP:CLEAR"), "{shown}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("from:")).count(), 1);
    // JSON carries the sender's text exactly, escaped so a terminal does not act on it.
    let j = mx.run(&["read", &id, "--json"]);
    assert_eq!(raw_controls(&j.stdout), Vec::<String>::new());
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!((v["subject"].as_str(), v["body"].as_str()), (Some(subject), Some(body)));
}

#[test]
fn nothing_readable_at_rest_and_the_profile_is_private() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let marker = "ZQX-marker-7c1f9e";
    let file = cl.home.path().join("notes.txt");
    std::fs::write(&file, format!("attachment {marker} contents").repeat(1000)).unwrap();
    let sent = cl.json(&[
        "send",
        "MX.primary",
        "--subject",
        &format!("subject {marker}"),
        "-m",
        &format!("body {marker}"),
        "--attach",
        file.to_str().unwrap(),
    ]);
    std::fs::remove_file(&file).unwrap();
    let id = sent["id"].as_str().unwrap();
    // An earlier release, a copy or a umask left the profile readable by others.
    std::fs::set_permissions(mx.home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        mx.home.path().join("profile.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let inbox = mx.json(&["inbox"]);
    assert_eq!(inbox[0]["subject"], format!("subject {marker}"));
    assert_eq!(inbox[0]["attachments"][0]["state"], "kept");
    assert!(mx.ok(&["read", id]).contains(&format!("| body {marker}")));
    // Both profiles, every file (database, WAL, key, kept attachments, scratch), raw bytes.
    for poc in [&cl, &mx] {
        let all = files(poc.home.path());
        assert!(all.iter().any(|p| p.to_string_lossy().ends_with("client.db")));
        for p in &all {
            let bytes = std::fs::read(p).unwrap();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{} holds the plaintext",
                p.display()
            );
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        for d in dirs(poc.home.path()) {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
    }
    assert!(
        files(mx.home.path())
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "env")),
        "the attachment is kept, encrypted"
    );
    // The plaintext is written only where the user asks.
    let out = tempfile::tempdir().unwrap();
    mx.ok(&["read", id, "--save", out.path().to_str().unwrap()]);
    let saved = std::fs::read_to_string(out.path().join("notes.txt")).unwrap();
    assert!(saved.starts_with(&format!("attachment {marker}")));
}

#[test]
fn watch_hooks_do_not_inherit_the_passphrase() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let pass_file = mx.home.path().join("pass.txt");
    std::fs::write(&pass_file, PASS).unwrap();
    let env_out = mx.home.path().join("hook-env.txt");
    let mut watch = mx
        .cmd(&[
            "watch",
            "--count",
            "1",
            "--exec",
            &format!("env > {}; echo done >> {}", env_out.display(), env_out.display()),
        ])
        .env("POCNET_PASSPHRASE_FILE", &pass_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(watch.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("watching"), "{line}");
    cl.ok(&["send", "MX.primary", "-s", "hook", "-m", "x"]);
    assert!(watch.wait_with_output().unwrap().status.success());
    let env = std::fs::read_to_string(&env_out).unwrap();
    assert!(env.ends_with("done\n"), "the hook ran to the end: {env}");
    assert!(env.contains("POCNET_SUBJECT=hook"), "{env}");
    assert!(!env.contains("POCNET_PASSPHRASE"), "{env}");
    assert!(!env.contains(PASS), "{env}");
}

#[test]
fn message_text_comes_from_stdin_or_files_not_only_argv() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let us = Poc::enrolled(&relay, "US", "primary");
    // --text-file.
    let t = cl.home.path().join("text.txt");
    std::fs::write(&t, "from a text file\nline two").unwrap();
    let sent = cl.json(&["send", "MX.primary", "US.primary", "--text-file", t.to_str().unwrap()]);
    for poc in [&mx, &us] {
        let inbox = poc.json(&["inbox"]);
        assert_eq!(inbox[0]["id"], sent["id"]);
        assert_eq!(inbox[0]["body"], "from a text file\nline two");
    }
    // Standard input.
    let out = cl.run_with_stdin(&["send", "MX.primary", "--json"], b"from standard input");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inbox = mx.json(&["inbox"]);
    let m = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == sent["id"])
        .unwrap();
    assert_eq!(m["body"], "from standard input");
}
