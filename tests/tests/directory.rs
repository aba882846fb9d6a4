//! The signed directory, attacked end to end: the real relay binary over QUIC on
//! 127.0.0.1, the real `pocnet` binary for every person, and a relay that lies by editing
//! its own database (the operator's power) or a Secretariat key used twice (a stolen key).

use pocnet_core::directory::{Action, Author, Category, Contact, Publisher, Rank, Statement};
use pocnet_crypto::Identity;
use pocnet_tests::{Poc, Relay};
use pocnet_wire::{ErrorCode, Request, Response};

const ORIGIN: &str = "test.pocnet/directory";

fn now_ms() -> u64 {
    pocnet_client::now_ms()
}

/// The relay's stored log: leaves, and the checkpoint (size, note).
fn stored_log(relay: &Relay) -> (Vec<Vec<u8>>, i64, String) {
    let db = relay.db();
    let leaves = db
        .prepare("SELECT leaf FROM log_leaves ORDER BY idx")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let (size, note) = db
        .query_row("SELECT size, note FROM log_checkpoint WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    (leaves, size, note)
}

/// The operator replaces the relay's log (stopped first: the relay re-verifies it at start).
fn replace_log(relay: &mut Relay, leaves: &[Vec<u8>], note: &str) {
    relay.kill9();
    {
        let db = relay.db();
        db.execute("DELETE FROM log_leaves", []).unwrap();
        for (i, l) in leaves.iter().enumerate() {
            db.execute(
                "INSERT INTO log_leaves(idx, leaf) VALUES (?1, ?2)",
                rusqlite::params![i as i64, l],
            )
            .unwrap();
        }
        db.execute(
            "UPDATE log_checkpoint SET size = ?1, note = ?2 WHERE id = 1",
            rusqlite::params![leaves.len() as i64, note],
        )
        .unwrap();
        db.execute("DELETE FROM log_cosignatures", []).unwrap();
    }
    relay.serve();
}

fn secretariat_identity(relay: &Relay) -> Identity {
    relay.secretariat.client().identity
}

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn contact(name: &str) -> Contact {
    Contact {
        name: name.into(),
        position: "Coordinator".into(),
        institution: "Agency".into(),
        email: "poc@example.gov".into(),
        phones: vec!["+1 555 0100".into()],
        languages: vec!["es".into()],
        time_zone: "America/Santiago".into(),
        working_hours: "Mon-Fri".into(),
    }
}

/// A relay shows CL.primary one continuation of the log and MX.primary another, both
/// signed with the Secretariat's key. They are caught the first time they exchange a
/// message: the envelope carries the sender's log head, which the recipient's log
/// contradicts.
#[test]
fn a_relay_showing_two_pocs_different_directories_is_caught_at_their_first_message() {
    let mut relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    mx.ok(&["directory", "sync"]);
    let (base, _, _) = stored_log(&relay);

    // Branch A, shown to CL: CL confirms its details, the Secretariat publishes.
    cl.ok(&["directory", "confirm"]);
    relay.secretariat.ok(&["secretariat", "publish"]);
    cl.ok(&["send", "MX.primary", "-s", "hello", "-m", "are you there?"]);

    // Branch B, shown to MX: the same size, another entry (MX confirms), signed with the
    // same Secretariat key.
    let sec = secretariat_identity(&relay);
    let mxid = mx.client().identity;
    let mut p = Publisher::resume(ORIGIN, *sec.public_key(), base).unwrap();
    p.push(&Author::new(&mxid, ORIGIN).confirm(now_ms()).unwrap()).unwrap();
    replace_log(&mut relay, p.leaves(), &p.checkpoint(&sec).to_text());

    // MX fetches CL's message: CL's head names a log MX's cannot contain.
    let out = mx.run(&["inbox"]);
    assert_eq!(
        code(&out),
        12,
        "fork exit code; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DIRECTORY FORK"), "{err}");
    let forks = mx.json(&["directory", "forks"]);
    let f = &forks.as_array().unwrap()[0];
    assert!(f["how"].as_str().unwrap().contains("split view"), "{f}");
    assert!(
        f["ours"].as_str().unwrap().contains(ORIGIN),
        "our signed checkpoint is kept"
    );
    assert!(
        f["theirs"].as_str().unwrap().contains("envelope header signed by"),
        "{f}"
    );
    // The alarm stays on every listing.
    let out = mx.run(&["inbox", "--offline"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("DIRECTORY FORK DETECTED"));
    // The message was not taken in silently: it stays at the relay.
    assert!(mx.json(&["inbox", "--offline"]).as_array().unwrap().is_empty());
    // CL, shown branch B now, finds the fork directly: two signed checkpoints.
    let out = cl.run(&["directory", "sync"]);
    assert_eq!(code(&out), 12, "{}", String::from_utf8_lossy(&out.stderr));
    let forks = cl.json(&["directory", "forks"]);
    assert!(
        forks[0]["theirs"].as_str().unwrap().contains(ORIGIN),
        "both signed notes kept"
    );
}

/// The relay rewrites an old entry (re-signed with the Secretariat's key) and serves the
/// rewritten log with a new checkpoint: a client that verified the old one refuses it
/// as a fork, and `directory audit` says so too.
#[test]
fn rewritten_history_is_detected() {
    let mut relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    cl.ok(&["directory", "sync"]);
    let (leaves, _, _) = stored_log(&relay);
    let sec = secretariat_identity(&relay);
    // Entry 1 enrolled CL's authority: rewrite its name, then replay every later entry.
    let st1 = Statement::parse(&leaves[1]).unwrap();
    let Action::AuthorityEnrol {
        state,
        key,
        institution,
        ..
    } = st1.action().clone()
    else {
        panic!("entry 1 is the authority's enrolment");
    };
    let forged = Author::new(&sec, ORIGIN)
        .sign(
            st1.time_ms(),
            Action::AuthorityEnrol {
                state,
                key,
                name: "Someone else".into(),
                institution,
            },
        )
        .unwrap();
    let mut p = Publisher::resume(ORIGIN, *sec.public_key(), leaves[..1].to_vec()).unwrap();
    p.push(&forged).unwrap();
    for l in &leaves[2..] {
        p.push(&Statement::parse(l).unwrap()).unwrap();
    }
    p.push(&Author::new(&sec, ORIGIN).witness_policy(now_ms(), vec![], 0).unwrap())
        .unwrap();
    replace_log(&mut relay, p.leaves(), &p.checkpoint(&sec).to_text());

    let out = cl.run(&["directory", "sync"]);
    assert_eq!(code(&out), 12, "{}", String::from_utf8_lossy(&out.stderr));
    let out = cl.run(&["directory", "audit"]);
    assert_eq!(code(&out), 12, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!cl.json(&["directory", "forks"]).as_array().unwrap().is_empty());
}

/// The Secretariat types what it heard on the phone: other digits approve nothing.
#[test]
fn an_approval_whose_voice_check_digits_do_not_match_is_refused() {
    let relay = Relay::start();
    let poc = Poc::new();
    let id = relay.nominate(&poc, "CL", "primary");
    let someone_else = Poc::new().voice_code();
    let out = relay
        .secretariat
        .run(&["secretariat", "approve", &id.to_string(), "--heard", &someone_else]);
    assert_eq!(code(&out), 13, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("do not match"));
    // One digit wrong is as wrong.
    let mut one_off: Vec<char> = poc.voice_code().chars().collect();
    one_off[0] = if one_off[0] == '9' { '8' } else { '9' };
    let one_off: String = one_off.into_iter().collect();
    let out = relay
        .secretariat
        .run(&["secretariat", "approve", &id.to_string(), "--heard", &one_off]);
    assert_eq!(code(&out), 13);
    assert_eq!(relay.pending_nomination(&poc.fingerprint()), Some(id), "still waiting");
    assert_eq!(poc.json(&relay.enrol_args(&[]))["status"], "waiting");
    // The digits actually read aloud (spaces as spoken) approve it.
    relay
        .secretariat
        .ok(&["secretariat", "approve", &id.to_string(), "--heard", &poc.voice_code()]);
    assert_eq!(poc.json(&relay.enrol_args(&[]))["handle"], "CL.primary");
}

/// A national authority signs for its own state only: a nomination of another state's
/// POC is refused by the relay when submitted, by the Secretariat's client when wrapped in
/// an approval, and by the relay when such an entry is appended anyway.
#[test]
fn a_nomination_by_another_states_authority_is_refused_everywhere() {
    let relay = Relay::start();
    let mx_authority = relay.authority("MX");
    relay.authority("CL");
    let poc = Poc::new();
    poc.ok(&relay.enrol_args(&[]));
    let pi = poc.client().identity.public();
    let mxid = mx_authority.client().identity;
    let nomination = Author::new(&mxid, ORIGIN)
        .nominate(
            now_ms(),
            "CL",
            Category::CyberPolicy,
            Rank::Primary,
            contact("Intruder"),
            &pi,
        )
        .unwrap();
    match relay.request(
        &mxid,
        Request::Submit {
            statement: nomination.as_bytes().to_vec(),
        },
    ) {
        Err(pocnet_client::Error::Relay {
            code: ErrorCode::BadDirectory,
            message,
        }) => {
            assert!(message.contains("CL's national authority"), "{message}")
        }
        other => panic!("submission must be refused, got {other:?}"),
    }
    // Wrapped in an approval by the Secretariat's key: the rules refuse it before anything is signed.
    let sec = secretariat_identity(&relay);
    let (leaves, _, _) = stored_log(&relay);
    let mut p = Publisher::resume(ORIGIN, *sec.public_key(), leaves.clone()).unwrap();
    let approval = Author::new(&sec, ORIGIN)
        .approve(now_ms(), &nomination, &pi, now_ms())
        .unwrap();
    let refused = p.push(&approval).unwrap_err();
    assert!(
        refused.to_string().contains("signs only for its own state"),
        "{refused}"
    );
    // Appended raw with a correctly signed checkpoint: the relay refuses it and stores nothing.
    let mut forged = leaves.clone();
    forged.push(approval.as_bytes().to_vec());
    let hashes: Vec<_> = forged.iter().map(|l| pocnet_crypto::tlog::leaf_hash(l)).collect();
    let cp = pocnet_crypto::note::Checkpoint {
        origin: ORIGIN.into(),
        size: forged.len() as u64,
        root: pocnet_crypto::tlog::root(&hashes),
    };
    let note = pocnet_crypto::note::SignedNote {
        body: cp.body(),
        signatures: vec![pocnet_crypto::note::sign_note(&cp.body(), ORIGIN, &sec)],
    };
    match relay.request(
        &sec,
        Request::LogAppend {
            leaves: vec![approval.as_bytes().to_vec()],
            checkpoint: note.to_text(),
        },
    ) {
        Err(pocnet_client::Error::Relay {
            code: ErrorCode::BadDirectory,
            ..
        }) => {}
        other => panic!("append must be refused, got {other:?}"),
    }
    assert_eq!(stored_log(&relay).0.len(), leaves.len());
    assert_eq!(poc.json(&relay.enrol_args(&[]))["status"], "waiting");
}

/// The relay's lookup answers are checked against the verified log: a lookalike handle,
/// an extra member, or another key for a handle this client has never seen are refused,
/// and nothing is sent.
#[test]
fn lookalike_extra_and_substituted_relay_answers_are_refused() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let _mx = Poc::enrolled(&relay, "MX", "primary");
    let stranger = Poc::new().client().identity;
    let db = relay.db();
    let send = |to: &str| cl.run(&["send", to, "-s", "x", "-m", "y"]);

    // Lookalike: the relay renames MX.primary with a Cyrillic 'а'.
    db.execute(
        "UPDATE members SET handle = 'MX.prim\u{0430}ry' WHERE handle = 'MX.primary'",
        [],
    )
    .unwrap();
    let out = send("MX");
    assert_eq!(code(&out), 6, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("contradicts the verified directory"));
    db.execute(
        "UPDATE members SET handle = 'MX.primary' WHERE handle = 'MX.prim\u{0430}ry'",
        [],
    )
    .unwrap();

    // An extra member the log does not list.
    db.execute(
        "INSERT INTO members(key, fingerprint, handle, state, role, name, public_identity, enrolled_at)
         VALUES (?1, ?2, 'MX.alternate', 'MX', 'alternate', 'Extra', ?3, 0)",
        rusqlite::params![
            stranger.public_key().as_bytes().as_slice(),
            stranger.fingerprint().to_hex(),
            stranger.public().to_bytes()
        ],
    )
    .unwrap();
    let out = send("MX");
    assert_eq!(code(&out), 6, "{}", String::from_utf8_lossy(&out.stderr));
    db.execute("DELETE FROM members WHERE handle = 'MX.alternate'", [])
        .unwrap();

    // A substituted key for a handle CL has never written to.
    let real: Vec<u8> = db
        .query_row(
            "SELECT public_identity FROM members WHERE handle = 'MX.primary'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "UPDATE members SET public_identity = ?1 WHERE handle = 'MX.primary'",
        [stranger.public().to_bytes()],
    )
    .unwrap();
    let out = send("MX.primary");
    assert_eq!(code(&out), 6, "{}", String::from_utf8_lossy(&out.stderr));
    db.execute(
        "UPDATE members SET public_identity = ?1 WHERE handle = 'MX.primary'",
        [real],
    )
    .unwrap();
    // With the relay honest again, the same send goes through.
    cl.ok(&["send", "MX.primary", "-s", "x", "-m", "y"]);
}

/// Rotation: the new encryption key is published through the directory; after the
/// second step the old private key is gone from the key file, and messages still flow
/// both ways (including one sealed to the old key before the switch).
#[test]
fn after_a_key_rotation_old_private_keys_are_gone_and_messages_still_flow() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    assert!(mx.ok(&["rotate"]).contains("new encryption key"));
    assert_eq!(mx.client().identity.encryption_key_count(), 2);
    assert!(mx.ok(&["rotate"]).contains("not published yet"));
    // Sealed to the old key, still on its way.
    cl.ok(&["send", "MX.primary", "-s", "before", "-m", "old key"]);
    relay.secretariat.ok(&["secretariat", "publish"]);
    assert!(mx.ok(&["rotate"]).contains("old private key(s) deleted"));
    let id = mx.client().identity;
    assert_eq!(id.encryption_key_count(), 1, "only the newest private key is kept");
    assert_eq!(id.public().encryption_record().serial(), 2);
    cl.ok(&["send", "MX.primary", "-s", "after", "-m", "new key"]);
    mx.ok(&["inbox"]);
    let subjects: Vec<String> = mx
        .json(&["inbox", "--offline"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    assert!(
        subjects.contains(&"before".to_string()) && subjects.contains(&"after".to_string()),
        "{subjects:?}"
    );
    mx.ok(&["send", "CL.primary", "-s", "reply", "-m", "ok"]);
    cl.ok(&["inbox"]);
}

/// A record not confirmed for 12 months is flagged wherever it is listed; its POC and
/// national authority are reminded; a confirmation clears it.
#[test]
fn stale_records_are_flagged_and_their_poc_and_authority_reminded() {
    let secretariat = Poc::new();
    let authority = Poc::new();
    let poc = Poc::new();
    let sec = secretariat.client().identity;
    let (aid, pid) = (authority.client().identity, poc.client().identity);
    let day = 86_400_000;
    let t0 = now_ms() - 500 * day;
    let mut p = Publisher::genesis(&sec, ORIGIN, t0, vec![], 0).unwrap();
    let s = Author::new(&sec, ORIGIN);
    p.push(
        &s.authority_enrol(t0 + day, "CL", aid.public_key(), "CL authority", "MFA")
            .unwrap(),
    )
    .unwrap();
    let nom = Author::new(&aid, ORIGIN)
        .nominate(
            t0 + 2 * day,
            "CL",
            Category::CyberPolicy,
            Rank::Primary,
            contact("Old Record"),
            &pid.public(),
        )
        .unwrap();
    p.push(&s.approve(t0 + 2 * day, &nom, &pid.public(), t0 + 2 * day).unwrap())
        .unwrap();
    let vkey = pocnet_core::directory::vkey(ORIGIN, sec.public_key());
    let relay = Relay::start_for(secretariat, &vkey);
    match relay.request(
        &sec,
        Request::LogAppend {
            leaves: p.leaves().to_vec(),
            checkpoint: p.checkpoint(&sec).to_text(),
        },
    ) {
        Ok(Response::Done) => {}
        other => panic!("genesis refused: {other:?}"),
    }
    poc.ok(&relay.enrol_args(&[]));
    authority.ok(&relay.enrol_args(&[]));
    relay.secretariat.ok(&relay.enrol_args(&[]));
    let rows = poc.json(&["directory"]);
    assert_eq!(rows[0]["stale"], true, "{rows}");
    assert!(poc.ok(&["directory"]).contains("STALE"));
    assert!(poc
        .ok(&["whoami"])
        .contains("reminder: your directory record was last confirmed"));
    assert!(String::from_utf8_lossy(&poc.run(&["inbox"]).stderr).contains("reminder"));
    assert!(authority
        .ok(&["national", "status"])
        .contains("not confirmed for a year"));
    poc.ok(&["directory", "confirm"]);
    relay.secretariat.ok(&["secretariat", "publish"]);
    assert_eq!(poc.json(&["directory"])[0]["stale"], false);
}

/// Removed and revoked keys are refused by clients too: nobody can address them, and a
/// message a revoked key sent before its revocation is not shown as from a POC.
#[test]
fn revoked_and_removed_keys_are_refused_by_clients() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let mx2 = Poc::enrolled(&relay, "MX", "alternate");
    cl.ok(&["send", "MX.primary", "-s", "sent before the revocation", "-m", "x"]);
    relay
        .authority("CL")
        .ok(&["national", "revoke", "CL.primary", "--reason", "laptop lost"]);
    relay
        .authority("MX")
        .ok(&["national", "remove", "MX.alternate", "--reason", "left the post"]);
    relay.secretariat.ok(&["secretariat", "publish"]);
    let out = mx.run(&["send", "CL.primary", "-m", "x"]);
    assert_eq!(code(&out), 10, "{}", String::from_utf8_lossy(&out.stderr));
    let out = mx.run(&["send", "MX.alternate", "-m", "x"]);
    assert_eq!(code(&out), 10, "{}", String::from_utf8_lossy(&out.stderr));
    let out = mx.run(&["inbox"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("REJECTED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(mx.json(&["inbox", "--offline"]).as_array().unwrap().is_empty());
    // The removed POC's key is refused at the relay's handshake as well.
    assert_ne!(code(&mx2.run(&["inbox"])), 0);
}

/// A directory that requires one witness: clients accept no checkpoint until the witness
/// has verified and cosigned it.
#[test]
fn clients_wait_for_the_witness_quorum() {
    let witness = Poc::new();
    let wkey = witness
        .ok(&["directory", "witness-key", "--name", "w1"])
        .trim()
        .to_string();
    let relay = Relay::start_directory_unchecked(&["--witness", &wkey, "--quorum", "1"]);
    witness.ok(&relay.enrol_args(&[]));
    witness.ok(&["directory", "witness", "--name", "w1"]);
    relay.secretariat.ok(&["directory", "sync"]);
    // The CL authority's enrolment makes a checkpoint nobody has cosigned yet.
    let a = Poc::new();
    a.ok(&relay.enrol_args(&[]));
    relay.secretariat.ok(&[
        "secretariat",
        "authority",
        "--state",
        "CL",
        "--fingerprint",
        &a.fingerprint(),
        "--name",
        "CL",
        "--institution",
        "MFA",
        "--heard",
        &a.voice_code(),
    ]);
    let out = a.run(&relay.enrol_args(&[]));
    assert_eq!(code(&out), 13, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("witness"));
    witness.ok(&["directory", "witness", "--name", "w1"]);
    assert_eq!(a.json(&relay.enrol_args(&[]))["handle"], "CL.authority");
}

/// The Secretariat's key rotates by a log entry signed with the old key: from then on the
/// new key publishes and the old one cannot, and clients follow without a new anchor.
#[test]
fn the_secretariat_key_is_handed_over_by_a_log_entry_signed_with_the_old_key() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    relay.authority("MX");
    let successor = Poc::new();
    let out = relay
        .secretariat
        .cmd(&[
            "secretariat",
            "hand-over",
            "--to-home",
            successor.home.path().to_str().unwrap(),
        ])
        .env("POCNET_NEW_PASSPHRASE", pocnet_tests::PASS)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = successor.cmd(&relay.enrol_args(&["--json"])).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("secretariat"));
    // The old key publishes nothing any more; the new one does.
    let mx = Poc::new();
    mx.ok(&relay.enrol_args(&[]));
    let mut args = vec![
        "national".to_string(),
        "nominate".into(),
        "--fingerprint".into(),
        mx.fingerprint(),
        "--category".into(),
        "cyber".into(),
        "--rank".into(),
        "primary".into(),
    ];
    args.extend(pocnet_tests::contact_args("Mateo Diaz"));
    relay
        .authority("MX")
        .ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let pending = successor.json(&["secretariat", "pending"]);
    let id = pending[0]["id"].as_u64().unwrap();
    let old = relay
        .secretariat
        .run(&["secretariat", "approve", &id.to_string(), "--heard", &mx.voice_code()]);
    assert!(!old.status.success(), "the old Secretariat key must not publish");
    successor.ok(&["secretariat", "approve", &id.to_string(), "--heard", &mx.voice_code()]);
    assert_eq!(mx.json(&relay.enrol_args(&[]))["handle"], "MX.primary");
    // CL follows the rotation with the anchor it was given at enrolment.
    cl.ok(&["directory", "sync"]);
    cl.ok(&["send", "MX.primary", "-m", "welcome"]);
}
