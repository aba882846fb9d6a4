//! Writes valid inputs into `corpus/TARGET/seed-*` so that fuzzing starts deep: real
//! envelopes sealed by `sender()` to `me()`, real receipts, key files, public identities
//! and protocol frames. Deterministic: rerunning rewrites the same files.
//!
//! `cargo run --release --example seed [CORPUS_DIR]` (default `corpus`).

use std::fs;
use std::path::{Path, PathBuf};

use pocnet_crypto::{seal, ContentType, HeaderFields, KdfParams, Receipt, ReceiptKind, Suite, Tlp};
use pocnet_fuzz::{me, other, sender, SeededRng, NOW_MS, PASSPHRASE};
use pocnet_wire::content::{AttachmentRef, MessageBody};
use pocnet_wire::{encode, Delivery, ErrorCode, Member, Request, Response};

struct Out {
    dir: PathBuf,
    n: usize,
}

impl Out {
    fn new(root: &Path, target: &str) -> Self {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        Out { dir, n: 0 }
    }
    fn put(&mut self, mode: Option<u8>, bytes: &[u8]) {
        let mut v = Vec::with_capacity(bytes.len() + 1);
        v.extend(mode);
        v.extend_from_slice(bytes);
        fs::write(self.dir.join(format!("seed-{:03}", self.n)), v).expect("write seed");
        self.n += 1;
    }
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let mut rng = SeededRng::new("pocnet-fuzz/seed");

    // Envelopes.
    let mut out = Out::new(&root, "envelope");
    let mut envelopes = Vec::new();
    for suite in [Suite::X25519, Suite::XWing] {
        for (rcpts, body) in [
            (vec![me().public()], &b""[..]),
            (vec![me().public()], &b"hello"[..]),
            (vec![other().public(), me().public()], &[7u8; 300][..]),
            (vec![other().public()], &b"not for me"[..]),
        ] {
            let mut fields = HeaderFields::message(NOW_MS);
            fields.suite = suite;
            let s = seal(&mut rng, sender(), &rcpts, &fields, body).expect("seal");
            envelopes.push(s.bytes);
        }
    }
    let mut fields = HeaderFields::message(NOW_MS);
    fields.suite = Suite::X25519;
    fields.content_type = ContentType::Alert;
    fields.tlp = Tlp::Red;
    fields.exercise = true;
    fields.incident_id = Some("INC-2026-0042".into());
    fields.log_head = Some([9; 32]);
    envelopes.push(
        seal(&mut rng, sender(), &[me().public()], &fields, b"alert")
            .unwrap()
            .bytes,
    );
    // Two body chunks (64 KiB + 1 byte), so the chunk loop and the last-chunk flag are seeded.
    fields.incident_id = None;
    envelopes.push(
        seal(&mut rng, sender(), &[me().public()], &fields, &vec![1u8; 64 * 1024 + 1])
            .unwrap()
            .bytes,
    );
    for (i, e) in envelopes.iter().enumerate() {
        out.put(Some(0), e);
        out.put(Some(if i % 2 == 0 { 1 } else { 3 }), e);
    }
    let first = envelopes[1].clone();
    let trimmed = pocnet_crypto::trim_for_recipient(&envelopes[2], me().public_key().as_bytes()).unwrap();
    out.put(Some(0), &trimmed);

    // Receipts.
    let mut out = Out::new(&root, "receipt");
    let (_, env_hash) = pocnet_crypto::verify(&first).unwrap();
    for (i, kind) in [ReceiptKind::Delivered, ReceiptKind::Read, ReceiptKind::Acknowledged]
        .into_iter()
        .enumerate()
    {
        let r = Receipt::sign(
            me(),
            kind,
            [i as u8; 16],
            env_hash,
            sender().public_key(),
            NOW_MS + i as u64,
        );
        out.put(Some(0), r.as_bytes());
        out.put(Some(1), r.as_bytes());
    }
    let wrong = Receipt::sign(
        sender(),
        ReceiptKind::Read,
        [1; 16],
        env_hash,
        me().public_key(),
        NOW_MS,
    );
    out.put(Some(0), wrong.as_bytes());

    // Key files: the cheapest accepted Argon2 parameters, so mode 2 runs the KDF quickly.
    let mut out = Out::new(&root, "keyfile");
    let cheap = KdfParams {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };
    let file = me().to_key_file(&mut rng, PASSPHRASE, cheap).expect("key file");
    out.put(Some(0), &file);
    out.put(Some(1), &file[..file.len() - 32]);
    out.put(Some(2), &file[..file.len() - 32]);
    out.put(Some(3), &me().to_secret_bytes());
    let mut two =
        pocnet_crypto::Identity::generate(&mut SeededRng::new("pocnet-fuzz/two"), pocnet_fuzz::NOW, 100).unwrap();
    two.rotate_encryption_key(&mut rng, pocnet_fuzz::NOW + 50, 1000)
        .unwrap();
    out.put(Some(3), &two.to_secret_bytes());

    // Public identities, SPKIs, fingerprints.
    let mut out = Out::new(&root, "public_identity");
    for id in [me(), sender()] {
        let b = id.public().to_bytes();
        out.put(Some(0), &b);
        out.put(Some(1), &b);
        out.put(Some(0), &pocnet_wire::tls::spki(id.public_key().as_bytes()));
        out.put(Some(0), id.fingerprint().grouped().as_bytes());
    }

    // Message bodies.
    let mut out = Out::new(&root, "message_body");
    let att = AttachmentRef {
        message_id: [3; 16],
        envelope_hash: [4; 32],
        name: "report.pdf".into(),
        size: 123_456,
    };
    let bodies = [
        MessageBody {
            subject: String::new(),
            text: String::new(),
            attachments: vec![],
        },
        MessageBody {
            subject: "Incident INC-2026-0042".into(),
            text: "Ünïcödé text, TLP:AMBER.\nSecond line.".into(),
            attachments: vec![att.clone(), att.clone()],
        },
    ];
    for b in &bodies {
        out.put(None, &encode(b)[4..]);
    }
    out.put(None, &encode(&att)[4..]);

    // Frames: k = 0 (no split points) and a few split variants.
    let mut out = Out::new(&root, "frames");
    let member = Member {
        handle: "CL.primary".into(),
        state: "CL".into(),
        role: "primary".into(),
        name: "Ana".into(),
        public_identity: me().public().to_bytes(),
        revoked: false,
    };
    let requests = vec![
        Request::Hello { protocol: 3 },
        Request::Pipeline,
        Request::Enrol {
            invite: "ABCD-EFGH".into(),
            public_identity: vec![1, 2, 3],
        },
        Request::Lookup {
            query: "CL.primary".into(),
        },
        Request::Send {
            envelope: trimmed[..200].to_vec(),
        },
        Request::Watch { follow: true },
        Request::Ack {
            seqs: vec![1, 300, u64::MAX],
        },
        Request::SendReceipt {
            to: [5; 32],
            receipt: wrong.as_bytes().to_vec(),
        },
        Request::PutBlob {
            message_id: [6; 16],
            total_len: 1 << 20,
            offset: 4096,
        },
        Request::GetBlob {
            message_id: [6; 16],
            offset: 0,
        },
        // Protocol 3: the directory log and held deliveries.
        Request::LogLeaves { from: 0, limit: 512 },
        Request::LogProof { old_size: 1, new_size: 3 },
        Request::Register {
            public_identity: me().public().to_bytes(),
        },
        Request::Hold {
            envelope: trimmed[..200].to_vec(),
            recipient: [5; 32],
            not_before_ms: NOW_MS + 3_600_000,
            cancel: pocnet_wire::Cancel {
                message_id: [7; 16],
                signers: vec![[5; 32]],
            },
        },
        // Escalation alerts (issue 16): an alert envelope with its plan bytes.
        Request::Escalate {
            envelope: envelopes[8].clone(),
            plan: vec![0x01; 120],
        },
        Request::EscalationStatus { alert: [7; 16] },
    ];
    let responses = vec![
        Response::Welcome {
            relay_time_ms: NOW_MS,
            member: Some(member.clone()),
        },
        Response::Enrolled { member: member.clone() },
        Response::Directory {
            members: vec![member.clone(), member],
        },
        Response::Accepted {
            message_id: [7; 16],
            envelope_hash: [8; 32],
            stored_at_ms: NOW_MS,
            duplicate: false,
            proof: pocnet_wire::AcceptProof {
                tree_size: 3,
                index: 2,
                path: vec![[9; 32], [10; 32]],
                signature: vec![9; 64],
            },
        },
        Response::Deliver(Delivery::Envelope {
            seq: 1,
            envelope: vec![1; 40],
        }),
        Response::Deliver(Delivery::Stored {
            seq: 4,
            envelope: vec![1; 40],
            stored_at_ms: NOW_MS,
            proof: pocnet_wire::AcceptProof {
                tree_size: 1,
                index: 0,
                path: vec![],
                signature: vec![9; 64],
            },
        }),
        Response::Deliver(Delivery::Escalated {
            seq: 5,
            envelope: vec![1; 40],
            stored_at_ms: NOW_MS,
            proof: pocnet_wire::AcceptProof {
                tree_size: 2,
                index: 1,
                path: vec![[9; 32]],
                signature: vec![9; 64],
            },
            release: pocnet_wire::Release {
                due_ms: NOW_MS + 900_000,
                released_ms: NOW_MS + 906_000,
                rank: 1,
                repeat: 0,
            },
        }),
        Response::Escalation {
            accepted_ms: NOW_MS,
            plan: vec![0x01; 120],
            steps: vec![
                pocnet_wire::StepReport {
                    recipient: [5; 32],
                    rank: 0,
                    repeat: 0,
                    due_ms: NOW_MS,
                    released_ms: Some(NOW_MS),
                    cancelled_ms: None,
                    cancelled_by: None,
                },
                pocnet_wire::StepReport {
                    recipient: [6; 32],
                    rank: 1,
                    repeat: 0,
                    due_ms: NOW_MS + 900_000,
                    released_ms: None,
                    cancelled_ms: Some(NOW_MS + 60_000),
                    cancelled_by: Some([5; 32]),
                },
            ],
        },
        Response::Deliver(Delivery::Receipt {
            seq: 2,
            from: [1; 32],
            receipt: vec![2; 40],
        }),
        Response::Deliver(Delivery::Expired {
            seq: 3,
            message_id: [3; 16],
            recipient: [4; 32],
        }),
        Response::CaughtUp,
        Response::Done,
        Response::BlobStored {
            stored: 10,
            complete: true,
        },
        Response::Blob { total_len: 99 },
        Response::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
        },
    ];
    let mut all = Vec::new();
    for f in requests.iter().map(encode).chain(responses.iter().map(encode)) {
        out.put(Some(0), &f);
        out.put(Some(0), &f[4..]);
        all.extend_from_slice(&f);
    }
    // Everything in one stream, cut at three points.
    let mut split = vec![3u8];
    for c in [3u16, 50, 700] {
        split.extend_from_slice(&c.to_be_bytes());
    }
    split.extend_from_slice(&all);
    out.put(None, &split);
    out.put(Some(8), &all);
    // A session stream (protocol 2): `Pipeline`, then tagged requests and answers.
    let mut session = encode(&Request::Pipeline);
    for (i, r) in requests.iter().enumerate() {
        session.extend(encode(&pocnet_wire::Tagged { id: i as u32, body: r.clone() }));
    }
    for (i, r) in responses.iter().enumerate() {
        session.extend(encode(&pocnet_wire::Tagged { id: i as u32, body: r.clone() }));
    }
    out.put(Some(0), &session);

    // Directory statements by me() (the fuzz directory's Secretariat), and checkpoint notes.
    {
        use pocnet_core::directory::{Author, Category, Contact, Publisher, Rank};
        const ORIGIN: &str = "fuzz.pocnet/directory";
        let mut out = Out::new(&root, "directory_statement");
        let a = Author::new(me(), ORIGIN);
        let contact = Contact {
            name: "Carla Rojas".into(),
            position: "Coordinator".into(),
            institution: "Agency".into(),
            email: "carla@example.gov".into(),
            phones: vec!["+56 2 2000 0000".into()],
            languages: vec!["es".into()],
            time_zone: "America/Santiago".into(),
            working_hours: "Mon-Fri".into(),
        };
        let enrol = a
            .authority_enrol(NOW_MS + 1, "CL", sender().public_key(), "CL authority", "MFA")
            .unwrap();
        let nomination = Author::new(sender(), ORIGIN)
            .nominate(NOW_MS + 2, "CL", Category::CyberPolicy, Rank::Primary, contact.clone(), &other().public())
            .unwrap();
        let approval = a.approve(NOW_MS + 3, &nomination, &other().public(), NOW_MS + 3).unwrap();
        // A policy document published by CL's authority (two titles, every field set).
        let policy = Author::new(sender(), ORIGIN)
            .policy_publish(
                NOW_MS + 5,
                "CL",
                [0x42; 16],
                1,
                pocnet_core::directory::PolicyKind::Strategy,
                "2024-03-15",
                "es",
                vec![
                    ("es".into(), "Política Nacional de Ciberseguridad".into()),
                    ("en".into(), "National Cybersecurity Policy".into()),
                ],
                "politica-nacional.pdf",
                "application/pdf",
                1_234_567,
                [0x5a; 32],
            )
            .unwrap();
        for st in [
            policy,
            enrol.clone(),
            a.witness_policy(NOW_MS + 1, vec![], 0).unwrap(),
            approval.clone(),
            a.revoke(NOW_MS + 4, other().public_key(), "lost").unwrap(),
        ] {
            out.put(Some(0), st.as_bytes());
            out.put(Some(1), st.as_bytes());
        }
        let mut out = Out::new(&root, "signed_note");
        let mut p = Publisher::genesis(me(), ORIGIN, NOW_MS, vec![], 0).unwrap();
        out.put(None, p.checkpoint(me()).to_text().as_bytes());
        p.push(&enrol).unwrap();
        let mut note = p.checkpoint(me());
        note.signatures
            .push(pocnet_crypto::note::cosign(&note.body, "witness", other(), NOW_MS / 1000));
        out.put(None, note.to_text().as_bytes());
        out.put(
            None,
            pocnet_core::directory::vkey(ORIGIN, me().public_key()).as_bytes(),
        );
    }

    // Alerts: a signed escalation plan and a follow-up (mode 0), alert bodies (mode 1).
    {
        use pocnet_core::alert::{AlertBody, Category, Certainty, MsgType, Plan, ResponseType, Severity, StatePlan, Urgency};
        let mut out = Out::new(&root, "alert");
        let plan = Plan::escalate(
            [1; 16],
            [2; 32],
            15 * 60 * 1000,
            2,
            vec![
                StatePlan {
                    state: "CL".into(),
                    ranks: vec![vec![*me().public_key().as_bytes()], vec![*other().public_key().as_bytes()]],
                },
                StatePlan {
                    state: "MX".into(),
                    ranks: vec![vec![[9; 32]]],
                },
            ],
        );
        out.put(Some(0), plan.sign(sender()).unwrap().as_bytes());
        out.put(Some(0), Plan::follow_up([3; 16], [4; 32], [1; 16], true).sign(sender()).unwrap().as_bytes());
        let body = AlertBody {
            version: 1,
            msg_type: MsgType::Alert,
            references: vec![],
            headline: "SCL airport: ATC degraded".into(),
            description: "Ransomware on tower systems.\nFlights held.".into(),
            instruction: "Acknowledge.".into(),
            category: vec![Category::Infra, Category::Transport],
            severity: Severity::Extreme,
            urgency: Urgency::Immediate,
            certainty: Certainty::Observed,
            response_type: vec![ResponseType::Monitor],
            ack_within_ms: 15 * 60 * 1000,
            repeats: 2,
            targets: vec!["CL".into(), "MX".into()],
            sent_ms: NOW_MS,
            sender_handle: "PA.primary".into(),
        };
        out.put(Some(1), &body.encode().unwrap());
        let mut ack = body.clone();
        ack.msg_type = MsgType::Ack;
        ack.references = vec![[1; 16]];
        ack.ack_within_ms = 0;
        ack.repeats = 0;
        out.put(Some(1), &ack.encode().unwrap());
    }

    // Drills: the shipped scenarios (mode 1).
    {
        let mut out = Out::new(&root, "drill");
        for name in pocnet_core::drill::BUILTIN {
            out.put(Some(1), pocnet_core::drill::builtin(name).unwrap().as_bytes());
        }
    }

    println!("seeds written under {}", root.display());
}
