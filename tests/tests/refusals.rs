//! Each refusal gets its clear error, and the relay keeps serving others.

use pocnet_tests::{Poc, Relay};

fn still_serves(relay: &Relay, a: &Poc, b: &Poc) {
    let _ = relay;
    let sent = a.json(&["send", "MX.primary", "-m", "still here"]);
    assert!(b
        .json(&["inbox"])
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == sent["id"]));
}

#[test]
fn unenrolled_key_can_only_enrol() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let stranger = Poc::new();
    // Pin the relay without being listed in the directory, then try to use it.
    let mut c = stranger.client();
    c.profile.config.relay = Some(pocnet_client::profile::RelayPin {
        address: relay.addr.clone(),
        fingerprint: relay.fingerprint.clone(),
        key: None,
    });
    c.profile.save().unwrap();
    for args in [&["send", "MX.primary", "-m", "hi"][..], &["inbox"]] {
        let out = stranger.run(args);
        assert_eq!(out.status.code(), Some(5), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not in the directory") && err.contains("pocnet enrol"),
            "{err}"
        );
    }
    // The relay itself refuses every member call (only Hello, Register and the
    // Secretariat's first LogAppend are open to a key it does not admit), whatever the
    // client does.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = c.connect().await.unwrap();
        for req in [
            pocnet_wire::Request::Lookup { query: "*".into() },
            pocnet_wire::Request::Send { envelope: vec![1; 100] },
            pocnet_wire::Request::Watch { follow: false },
            pocnet_wire::Request::Ack { seqs: vec![1, 2, 3] },
            pocnet_wire::Request::SendReceipt {
                to: [1; 32],
                receipt: vec![1],
            },
            pocnet_wire::Request::PutBlob {
                message_id: [1; 16],
                total_len: 10,
                offset: 0,
            },
            pocnet_wire::Request::GetBlob {
                message_id: [1; 16],
                offset: 0,
            },
            pocnet_wire::Request::LogCheckpoint,
            pocnet_wire::Request::Submit { statement: vec![1] },
            pocnet_wire::Request::Submissions { after: 0 },
        ] {
            let resp = s.raw(&pocnet_wire::encode(&req)).await.unwrap();
            assert!(
                matches!(
                    resp,
                    pocnet_wire::Response::Error {
                        code: pocnet_wire::ErrorCode::NotEnrolled,
                        ..
                    }
                ),
                "{req:?} -> {resp:?}"
            );
        }
        s.close().await;
    });
    still_serves(&relay, &cl, &mx);
}

#[test]
fn key_blocked_by_the_operator_is_refused_and_others_continue() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let ar = Poc::enrolled(&relay, "AR", "primary");
    let out = relay.admin(&["revoke", "AR.primary"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = ar.fails(&["inbox"]);
    assert!(err.contains("at the handshake") && err.contains("revoked"), "{err}");
    // Nobody can send to a blocked key: the relay's lookup shows it blocked (the client
    // says so plainly, exit 8, and sends nothing; it does not accuse the relay of lying),
    // and the relay refuses it even when an envelope names it directly.
    let out = cl.run(&["send", "AR.primary", "-m", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(
        err.contains("AR.primary") && err.contains("blocked at this relay"),
        "{err}"
    );
    assert!(!err.contains("report this relay"), "{err}");
    assert!(
        cl.client()
            .list(pocnet_client::types::Direction::Out)
            .unwrap()
            .is_empty(),
        "nothing was sent"
    );
    let (c, a) = (cl.client(), ar.client());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = c.connect().await.unwrap();
        let f = pocnet_crypto::HeaderFields::message(pocnet_client::now_ms());
        let sealed = pocnet_crypto::seal(
            &mut pocnet_crypto::os_rng(),
            &c.identity,
            &[a.identity.public()],
            &f,
            b"x",
        )
        .unwrap();
        let err = s
            .request(&pocnet_wire::Request::Send { envelope: sealed.bytes })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                pocnet_client::Error::Relay {
                    code: pocnet_wire::ErrorCode::UnknownRecipient,
                    ..
                }
            ),
            "{err}"
        );
        s.close().await;
    });
    still_serves(&relay, &cl, &mx);
}

#[test]
fn wrong_relay_fingerprint_is_refused() {
    let relay = Relay::start();
    let poc = Poc::new();
    let wrong = "00".repeat(32);
    let err = poc.fails(&[
        "enrol",
        "--relay",
        &relay.addr,
        "--relay-key",
        &wrong,
        "--directory",
        &relay.vkey,
    ]);
    assert!(err.contains("does not match the pinned fingerprint"), "{err}");
    // Nothing was pinned by the failed attempt: the right key then enrols.
    relay.list(&poc, "CL", "primary");
    assert_eq!(poc.json(&["whoami"])["handle"], "CL.primary");
}

#[test]
fn a_key_the_directory_does_not_list_is_refused_and_told_what_to_do() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    // Enrol offers the key to the Secretariat and says what happens next.
    let poc = Poc::new();
    let out = poc.ok(&relay.enrol_args(&[]));
    assert!(
        out.contains("does not list you") && out.contains(&poc.voice_code()),
        "{out}"
    );
    // Until the directory lists it, the relay refuses it (exit 5) and the client says what to do.
    let out = poc.run(&["inbox"]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not in the directory") && err.contains("pocnet enrol"),
        "{err}"
    );
    // A handle the directory already lists is not given to another key.
    let fp = poc.fingerprint();
    let mut args: Vec<String> = [
        "national",
        "nominate",
        "--fingerprint",
        &fp,
        "--category",
        "cyber",
        "--rank",
        "primary",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(pocnet_tests::contact_args("A second CL primary"));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = relay.authority("CL").run(&a);
    if out.status.success() {
        // Offered, but the Secretariat cannot approve it.
        let id = relay.pending_nomination(&fp).expect("waiting nomination").to_string();
        let voice = poc.voice_code();
        let out = relay
            .secretariat
            .run(&["secretariat", "approve", &id, "--heard", &voice]);
        assert_eq!(out.status.code(), Some(13), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("CL.primary is taken"));
        relay.secretariat.ok(&["secretariat", "dismiss", &id]);
        assert_eq!(relay.pending_nomination(&fp), None);
    } else {
        assert_eq!(out.status.code(), Some(13), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // A voice code that is not the one heard approves nothing.
    let id = relay.nominate(&poc, "CL", "alternate");
    let out = relay
        .secretariat
        .run(&["secretariat", "approve", &id.to_string(), "--heard", "000000"]);
    assert_eq!(out.status.code(), Some(13), "{}", String::from_utf8_lossy(&out.stderr));
    let out = poc.ok(&relay.enrol_args(&[]));
    assert!(out.contains("does not list you"), "{out}");
    assert_eq!(poc.run(&["inbox"]).status.code(), Some(5));
    // Once approved after a correct voice check, it enrols.
    let voice = poc.voice_code();
    relay
        .secretariat
        .ok(&["secretariat", "approve", &id.to_string(), "--heard", &voice]);
    assert!(poc.ok(&relay.enrol_args(&[])).contains("CL.alternate"));
    poc.ok(&["inbox"]);
    // A directory key that is not one is refused before anything is pinned.
    let other = Poc::new();
    let out = other.run(&[
        "enrol",
        "--relay",
        &relay.addr,
        "--relay-key",
        &relay.fingerprint,
        "--directory",
        "not-a-key",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--directory"));
    still_serves(&relay, &cl, &mx);
}

#[test]
fn oversize_envelope_is_refused_with_advice() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let out = cl.run_with_stdin(&["send", "MX.primary"], &vec![b'x'; 1024 * 1024 + 10]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limit") && err.contains("--attach"), "{err}");
    still_serves(&relay, &cl, &mx);
}

#[test]
fn malformed_and_oversize_frames_get_errors_and_the_relay_keeps_serving() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let c = cl.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = c.connect().await.unwrap();
        for (bytes, expect) in [
            (vec![0, 0, 0, 3, 0xff, 0xff, 0xff], "Malformed"),
            (vec![0xff, 0xff, 0xff, 0xff], "TooLarge"),
            (
                pocnet_wire::encode(&pocnet_wire::Request::Send {
                    envelope: vec![1, 2, 3],
                }),
                "BadEnvelope",
            ),
        ] {
            let resp = s.raw(&bytes).await.unwrap();
            assert!(format!("{resp:?}").contains(expect), "{resp:?}");
        }
        s.close().await;
    });
    still_serves(&relay, &cl, &mx);
}

#[test]
fn a_full_relay_store_refuses_sends_clearly_and_recovers_once_messages_are_delivered() {
    let relay = Relay::start_with("max_db_mib = 1");
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let body = vec![b'a'; 300_000];
    let mut accepted = 0;
    let err = loop {
        let out = cl.run_with_stdin(&["send", "MX.primary"], &body);
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        accepted += 1;
        assert!(accepted < 10, "the 1 MiB cap was never reached");
    };
    assert!(
        err.contains("storage is full") && err.contains("nothing was stored"),
        "{err}"
    );
    // What was accepted is delivered, and delivery frees the space for new messages.
    assert_eq!(mx.json(&["inbox"]).as_array().unwrap().len(), accepted);
    let out = cl.run_with_stdin(&["send", "MX.primary"], &body);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_acceptance_not_signed_by_the_pinned_relay_key_is_reported() {
    // As if the relay's acceptance were signed by some other key: the client must not
    // record the message as stored.
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let _mx = Poc::enrolled(&relay, "MX", "primary");
    let mut c = cl.client();
    let other =
        pocnet_crypto::Identity::generate(&mut pocnet_crypto::os_rng(), pocnet_client::now_ms() / 1000, 86400).unwrap();
    c.profile.config.relay.as_mut().unwrap().key = Some(pocnet_crypto::to_hex(other.public_key().as_bytes()));
    c.profile.save().unwrap();
    let err = cl.fails(&["send", "MX.primary", "-m", "x"]);
    assert!(err.contains("signed acceptance does not verify"), "{err}");
    assert!(
        cl.client()
            .list(pocnet_client::types::Direction::Out)
            .unwrap()
            .is_empty(),
        "not recorded as sent"
    );
}
