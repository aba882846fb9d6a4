//! The policy repository end to end, with the real relay and `pocnet` binaries: a national
//! authority publishes, the Secretariat lists, a POC of another state lists, shows, gets and
//! verifies; versions supersede; and the attacks: another state's authority, an altered
//! file, a relay reading the file, a POC or another authority sending a Policy envelope.

use std::path::{Path, PathBuf};

use pocnet_crypto::{ContentType, HeaderFields, Identity, PublicIdentity, Suite, Tlp};
use pocnet_tests::{Poc, Relay};
use pocnet_wire::content::{AttachmentRef, PolicyNotice};
use pocnet_wire::{Request, Response};

const MARKER: &[u8] = b"POLICY-PLAINTEXT-MARKER-5521";

/// A PDF-like file of about 200 KiB (several stream chunks) carrying the marker.
fn pdf(dir: &Path, name: &str, edition: &str) -> PathBuf {
    let mut b = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    for i in 0..4000 {
        b.extend_from_slice(format!("{i} ").as_bytes());
        b.extend_from_slice(MARKER);
        b.extend_from_slice(format!(" Politica Nacional de Ciberseguridad, edicion {edition}\n").as_bytes());
    }
    b.extend_from_slice(b"%%EOF\n");
    let p = dir.join(name);
    std::fs::write(&p, b).unwrap();
    p
}

fn publish(auth: &Poc, file: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "policy",
        "publish",
        file.to_str().unwrap(),
        "--title",
        "Política Nacional de Ciberseguridad",
        "--title",
        "en=National Cybersecurity Policy",
        "--type",
        "strategy",
        "--date",
        "2024-03-15",
        "--lang",
        "es",
    ];
    args.extend_from_slice(extra);
    auth.json(&args)
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A `Policy` envelope sealed by `from` to `to`, carrying `statement` and naming an
/// attachment that need not exist, sent through the relay as `from`.
fn send_policy_envelope(relay: &Relay, from: &Identity, to: &[PublicIdentity], statement: Vec<u8>) -> [u8; 16] {
    let notice = PolicyNotice {
        statement,
        attachment: AttachmentRef {
            message_id: [9; 16],
            envelope_hash: [9; 32],
            name: "politica.pdf".into(),
            size: 10,
        },
    };
    let fields = HeaderFields {
        suite: Suite::XWing,
        content_type: ContentType::Policy,
        tlp: Tlp::Green,
        ..HeaderFields::message(pocnet_client::now_ms())
    };
    let sealed = pocnet_crypto::seal(&mut pocnet_crypto::os_rng(), from, to, &fields, &notice.encode()).unwrap();
    let id = sealed.message_id;
    match relay.request(from, Request::Send { envelope: sealed.bytes }).unwrap() {
        Response::Accepted { .. } => id,
        other => panic!("the relay should carry it (it cannot read it): {other:?}"),
    }
}

#[test]
fn a_national_policy_is_published_listed_fetched_verified_and_superseded() {
    let relay = Relay::start();
    let work = tempfile::tempdir().unwrap();
    let mx_poc = Poc::enrolled(&relay, "MX", "primary");
    let cl_poc = Poc::enrolled(&relay, "CL", "primary");
    let cl = relay.authority("CL");
    let mx = relay.authority("MX");

    // CL's authority publishes version 1.
    let v1_file = pdf(work.path(), "politica-2024.pdf", "2024");
    let v1 = publish(&cl, &v1_file, &[]);
    let doc = v1["document"].as_str().unwrap().to_string();
    assert_eq!(doc.len(), 32);
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["state"], "CL");
    assert_eq!(v1["media_type"], "application/pdf");

    // The file reaches MX's POC at once, but nothing is listed before the Secretariat
    // puts the statement on the log.
    let listed = mx_poc.json(&["policy", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
    assert_eq!(
        mx_poc.client().store.policy_files().unwrap().len(),
        1,
        "the file is kept already"
    );

    // The Secretariat's ordinary publish lists it.
    let out = relay.secretariat.json(&["secretariat", "publish"]);
    assert!(out.to_string().contains("PolicyPublish"), "{out}");
    let listed = mx_poc.json(&["policy", "list"]);
    let docs = listed.as_array().unwrap();
    assert_eq!(docs.len(), 1, "{listed}");
    assert_eq!(docs[0]["document"], doc.as_str());
    assert_eq!(docs[0]["held"], true);
    assert_eq!(docs[0]["superseded"], false);
    assert_eq!(docs[0]["kind"], "strategy");
    assert_eq!(docs[0]["titles"][1][1], "National Cybersecurity Policy");
    let text = mx_poc.ok(&["policy", "list", "CL"]);
    assert!(text.contains("Política Nacional de Ciberseguridad"), "{text}");

    // Show, get (the same bytes), verify.
    let shown = mx_poc.json(&["policy", "show", &doc[..6]]);
    assert_eq!(shown["history"].as_array().unwrap().len(), 1);
    let out_dir = work.path().join("got");
    let got = mx_poc.json(&["policy", "get", &doc[..8], "--out", out_dir.to_str().unwrap()]);
    let got_path = PathBuf::from(got["path"].as_str().unwrap());
    assert_eq!(got_path, out_dir.join("politica-2024.pdf"));
    assert_eq!(std::fs::read(&got_path).unwrap(), std::fs::read(&v1_file).unwrap());
    // A second get never overwrites the first.
    let again = mx_poc.json(&["policy", "get", &doc, "--out", out_dir.to_str().unwrap()]);
    assert_ne!(again["path"], got["path"]);
    assert_eq!(std::fs::read(&got_path).unwrap(), std::fs::read(&v1_file).unwrap());
    let says = mx_poc.ok(&["policy", "verify", got_path.to_str().unwrap()]);
    assert!(
        says.contains("CL's national authority published version 1") && says.contains(&doc),
        "{says}"
    );
    // CL's own POC holds it too.
    assert_eq!(cl_poc.json(&["policy", "list"])[0]["held"], true);

    // A file with one flipped byte is no published document: exit 13.
    let mut bytes = std::fs::read(&v1_file).unwrap();
    bytes[5000] ^= 1;
    let altered = work.path().join("altered.pdf");
    std::fs::write(&altered, &bytes).unwrap();
    let out = mx_poc.run(&["policy", "verify", altered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(13), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no directory log entry"));

    // Another state's authority cannot publish a version of CL's document...
    let err = mx.fails(&[
        "policy",
        "publish",
        altered.to_str().unwrap(),
        "--title",
        "Política falsa",
        "--type",
        "law",
        "--date",
        "2024-04-01",
        "--lang",
        "es",
        "--supersedes",
        &doc,
    ]);
    assert!(err.contains("is CL's"), "{err}");
    // ...a POC cannot publish at all...
    let err = mx_poc.fails(&[
        "policy",
        "publish",
        altered.to_str().unwrap(),
        "--title",
        "X",
        "--type",
        "law",
        "--date",
        "2024-04-01",
        "--lang",
        "es",
    ]);
    assert!(err.contains("only a national authority"), "{err}");
    // ...and MX's authority's statement for CL, signed in-process, is refused by the relay
    // and would be by the rules.
    let forged = pocnet_core::directory::Author::new(&mx.client().identity, "test.pocnet/directory")
        .policy_publish(
            pocnet_client::now_ms(),
            "CL",
            [5; 16],
            1,
            pocnet_core::directory::PolicyKind::Law,
            "2024-04-01",
            "es",
            vec![("es".into(), "Ley falsa".into())],
            "ley.pdf",
            "application/pdf",
            10,
            [0; 32],
        )
        .unwrap();
    let r = relay.request(
        &mx.client().identity,
        Request::Submit {
            statement: forged.as_bytes().to_vec(),
        },
    );
    assert!(
        matches!(
            &r,
            Err(pocnet_client::Error::Relay {
                code: pocnet_wire::ErrorCode::BadDirectory,
                ..
            })
        ),
        "{r:?}"
    );

    // Version 2 supersedes version 1; history shows both, newest first.
    let v2_file = pdf(work.path(), "politica-2025.pdf", "2025");
    let v2 = publish(&cl, &v2_file, &["--supersedes", &doc[..8]]);
    assert_eq!(
        (v2["document"].as_str(), v2["version"].as_u64()),
        (Some(doc.as_str()), Some(2))
    );
    let out = relay.secretariat.json(&["secretariat", "publish"]);
    assert_eq!(out["published"].as_array().map(Vec::len), Some(1), "{out}");
    let shown = mx_poc.json(&["policy", "show", &doc]);
    let h = shown["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0]["version"].as_u64(), h[0]["superseded"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(
        (h[1]["version"].as_u64(), h[1]["superseded"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(shown["current"]["version"], 2);
    assert!(h[0]["log_index"].as_u64() > h[1]["log_index"].as_u64());
    let text = mx_poc.ok(&["policy", "show", &doc]);
    assert!(text.contains("SUPERSEDED"), "{text}");
    let list = mx_poc.json(&["policy", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "only the current version is listed");
    assert_eq!(list[0]["version"], 2);
    // Both versions' files are still there, each checked against its own log entry.
    let out2 = work.path().join("got2");
    let p1 = mx_poc.json(&["policy", "get", &doc, "--version", "1", "--out", out2.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(p1["path"].as_str().unwrap()).unwrap(),
        std::fs::read(&v1_file).unwrap()
    );
    let p2 = mx_poc.json(&["policy", "get", &doc, "--out", out2.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(p2["path"].as_str().unwrap()).unwrap(),
        std::fs::read(&v2_file).unwrap()
    );
    let says = mx_poc.ok(&["policy", "verify", v1_file.to_str().unwrap()]);
    assert!(
        says.contains("version 1") && says.contains("since superseded"),
        "{says}"
    );
    let err = mx_poc.fails(&["policy", "get", &doc, "--version", "3"]);
    assert!(err.contains("version 3"), "{err}");

    // The relay never held the document's plaintext: not in its database, its WAL, its
    // blobs, anywhere under its data directory.
    for f in walk(relay.dir.path()) {
        let b = std::fs::read(&f).unwrap();
        assert!(
            !b.windows(MARKER.len()).any(|w| w == MARKER),
            "{} holds the document's plaintext",
            f.display()
        );
    }
    // Nor does the recipient's profile, where the file is kept sealed.
    for f in walk(mx_poc.home.path()) {
        let b = std::fs::read(&f).unwrap();
        assert!(
            !b.windows(MARKER.len()).any(|w| w == MARKER),
            "{} holds plaintext",
            f.display()
        );
    }
}

#[test]
fn policy_envelopes_only_from_the_states_own_authority_are_accepted() {
    let relay = Relay::start();
    let work = tempfile::tempdir().unwrap();
    let mx_poc = Poc::enrolled(&relay, "MX", "primary");
    let cl_poc = Poc::enrolled(&relay, "CL", "primary");
    let cl = relay.authority("CL");
    let mx = relay.authority("MX");
    let v1 = publish(&cl, &pdf(work.path(), "p.pdf", "2024"), &[]);
    relay.secretariat.ok(&["secretariat", "publish"]);
    assert_eq!(mx_poc.json(&["policy", "list"]).as_array().unwrap().len(), 1);
    let before = mx_poc.client().store.policy_files().unwrap().len();
    let to = vec![mx_poc.client().identity.public()];

    // A POC (not an authority) sends a Policy envelope with a statement it signed itself.
    let poc = cl_poc.client().identity;
    let own = pocnet_core::directory::Author::new(&poc, "test.pocnet/directory")
        .policy_publish(
            pocnet_client::now_ms(),
            "CL",
            [6; 16],
            1,
            pocnet_core::directory::PolicyKind::Law,
            "2024-04-01",
            "es",
            vec![("es".into(), "Ley".into())],
            "politica.pdf",
            "application/pdf",
            10,
            [0; 32],
        )
        .unwrap();
    let from_poc = send_policy_envelope(&relay, &poc, &to, own.as_bytes().to_vec());
    // MX's authority forwards CL's genuine statement (from the log) as if it were its own.
    let genuine = mx_poc.client().store.log_leaves().unwrap().last().unwrap().clone();
    let from_mx = send_policy_envelope(&relay, &mx.client().identity, &to, genuine);

    let out = mx_poc.run(&["inbox"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 REJECTED"), "{stderr}");
    assert_eq!(
        mx_poc.client().store.policy_files().unwrap().len(),
        before,
        "nothing was kept"
    );
    let inbox = mx_poc.json(&["inbox", "--offline"]).to_string();
    for id in [from_poc, from_mx] {
        assert!(!inbox.contains(&pocnet_crypto::to_hex(&id)), "{inbox}");
    }
    // The listing is the log's, unchanged.
    let listed = mx_poc.json(&["policy", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["document"], v1["document"]);
}
