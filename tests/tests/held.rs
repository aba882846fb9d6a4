//! Held deliveries through the real relay binary: an envelope held for one recipient until a
//! not-before time survives a kill -9, is released to that recipient when due, and is never
//! released once the recipient's signed receipt about the named message has cancelled it.

use pocnet_crypto::{HeaderFields, Identity, PublicIdentity, Receipt, ReceiptKind, Suite, Tlp};
use pocnet_tests::{Poc, Relay};
use pocnet_wire::content::MessageBody;
use pocnet_wire::{Cancel, Request, Response};

fn seal(from: &Identity, to: &PublicIdentity, subject: &str) -> pocnet_crypto::Sealed {
    let body = MessageBody {
        subject: subject.into(),
        text: format!("{subject} body"),
        attachments: vec![],
    };
    let fields = HeaderFields {
        suite: Suite::XWing,
        tlp: Tlp::Amber,
        ..HeaderFields::message(pocnet_client::now_ms())
    };
    pocnet_crypto::seal(
        &mut pocnet_crypto::os_rng(),
        from,
        std::slice::from_ref(to),
        &fields,
        &postcard::to_stdvec(&body).unwrap(),
    )
    .unwrap()
}

fn subjects(p: &Poc) -> Vec<String> {
    let mut v: Vec<String> = p
        .json(&["inbox", "--offline"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn a_held_reminder_survives_kill_9_reaches_only_the_silent_and_a_receipt_cancels_it() {
    let mut relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    let (sec, poc) = (cl.client().identity, mx.client().identity);
    let now = pocnet_client::now_ms();

    // Two challenges, each with a reminder held until a few seconds from now.
    let mut held = Vec::new();
    for (challenge, due) in [("challenge A", 8_000), ("challenge B", 10_000)] {
        let c = seal(&sec, &poc.public(), challenge);
        match relay.request(
            &sec,
            Request::Send {
                envelope: c.bytes.clone(),
            },
        ) {
            Ok(Response::Accepted { .. }) => {}
            other => panic!("{other:?}"),
        }
        let r = seal(&sec, &poc.public(), &format!("reminder for {challenge}"));
        let hold = Request::Hold {
            envelope: r.bytes,
            recipient: *poc.public_key().as_bytes(),
            not_before_ms: now + due,
            cancel: Cancel {
                message_id: c.message_id,
                signers: vec![*poc.public_key().as_bytes()],
            },
        };
        match relay.request(&sec, hold) {
            Ok(Response::Accepted { .. }) => {}
            other => panic!("hold refused: {other:?}"),
        }
        held.push(c);
    }
    // MX answers challenge A: its signed receipt about A cancels A's reminder only.
    let a = &held[0];
    let receipt = Receipt::sign(
        &poc,
        ReceiptKind::Acknowledged,
        a.message_id,
        a.envelope_hash,
        sec.public_key(),
        now,
    );
    match relay.request(
        &poc,
        Request::SendReceipt {
            to: *sec.public_key().as_bytes(),
            receipt: receipt.as_bytes().to_vec(),
        },
    ) {
        Ok(Response::Done) => {}
        other => panic!("{other:?}"),
    }
    // The relay dies without a shutdown, and comes back.
    relay.kill9();
    relay.serve();
    // Nothing held is out early: MX sees the two challenges only.
    mx.ok(&["inbox"]);
    assert_eq!(subjects(&mx), vec!["challenge A", "challenge B"]);
    // Waiting for the next message: B's reminder is released when due (A's, due first, was
    // cancelled, or it would arrive first).
    mx.ok(&["watch", "--count", "1"]);
    assert_eq!(
        subjects(&mx),
        vec!["challenge A", "challenge B", "reminder for challenge B"]
    );
    // Released once: nothing more is pending.
    mx.ok(&["inbox"]);
    assert_eq!(subjects(&mx).len(), 3);
    // The sender's queue got MX's receipt; CL's other POCs got nothing.
    let _ = cl;
}
