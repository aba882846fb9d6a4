//! Escalation alerts through the relay's service, without sockets, in simulated time:
//! 15-minute windows advanced in milliseconds on a `ManualClock`, never a sleep. The alert
//! is sealed once to every POC of every targeted state; the relay reads only the signed
//! plan, releases rank by rank, and stops a state only on a valid acknowledgement by one of
//! its POCs.

use pocnet_core::alert::plan::{Plan, StatePlan, LATE_AFTER_MS};
use pocnet_crypto::{seal, ContentType, HeaderFields, Identity, Receipt, ReceiptKind, Sealed, Suite};
use pocnet_relay::service::Kind;
use pocnet_relay::store::Item;
use pocnet_relay::Config;
use pocnet_wire::{verify_acceptance, Delivery, ErrorCode, Release, Request, Response, StepReport};

mod common;
use common::*;

/// The acknowledgement window.
const W: u64 = 15 * 60 * 1000;
const MIN: u64 = 60 * 1000;

/// The people of these tests: the sender (AR) and two states of two ranks each.
struct Cast {
    sender: Identity,
    cl_primary: Identity,
    cl_alternate: Identity,
    mx_primary: Identity,
    mx_alternate: Identity,
}

async fn cast(w: &World) -> Cast {
    let [sender, cl_primary, cl_alternate, mx_primary, mx_alternate]: [Identity; 5] = w
        .members(&[
            ("AR", "primary"),
            ("CL", "primary"),
            ("CL", "alternate"),
            ("MX", "primary"),
            ("MX", "alternate"),
        ])
        .await
        .try_into()
        .ok()
        .unwrap();
    Cast {
        sender,
        cl_primary,
        cl_alternate,
        mx_primary,
        mx_alternate,
    }
}

impl Cast {
    /// Every POC, CL then MX, primary then alternate.
    fn pocs(&self) -> [&Identity; 4] {
        [
            &self.cl_primary,
            &self.cl_alternate,
            &self.mx_primary,
            &self.mx_alternate,
        ]
    }
    /// CL and MX, each primary then alternate.
    fn states(&self) -> Vec<(&'static str, Vec<Vec<&Identity>>)> {
        vec![
            ("CL", vec![vec![&self.cl_primary], vec![&self.cl_alternate]]),
            ("MX", vec![vec![&self.mx_primary], vec![&self.mx_alternate]]),
        ]
    }
}

/// An alert envelope (content type Alert) sealed by `from` to `to`.
fn alert_to(from: &Identity, to: &[&Identity], body: &[u8]) -> Sealed {
    let pubs: Vec<_> = to.iter().map(|i| i.public()).collect();
    let fields = HeaderFields {
        suite: Suite::X25519,
        content_type: ContentType::Alert,
        ..HeaderFields::message(T0)
    };
    seal(&mut pocnet_crypto::os_rng(), from, &pubs, &fields, body).unwrap()
}

fn key(i: &Identity) -> [u8; 32] {
    *i.public_key().as_bytes()
}

/// `signer`'s signed escalation plan for `alert`: window `W`, `repeats` repeats.
fn plan(alert: &Sealed, signer: &Identity, repeats: u8, states: &[(&str, Vec<Vec<&Identity>>)]) -> Vec<u8> {
    let states = states
        .iter()
        .map(|(state, ranks)| StatePlan {
            state: state.to_string(),
            ranks: ranks.iter().map(|r| r.iter().map(|i| key(i)).collect()).collect(),
        })
        .collect();
    Plan::escalate(alert.message_id, alert.envelope_hash, W, repeats, states)
        .sign(signer)
        .unwrap()
        .into_bytes()
}

/// The alert to every POC of `c` with its plan.
fn the_alert(c: &Cast, repeats: u8) -> (Sealed, Vec<u8>) {
    let alert = alert_to(&c.sender, &c.pocs(), b"ATC degraded at SCL");
    let p = plan(&alert, &c.sender, repeats, &c.states());
    (alert, p)
}

fn escalate(alert: &Sealed, plan: Vec<u8>) -> Request {
    Request::Escalate {
        envelope: alert.bytes.clone(),
        plan,
    }
}

/// A follow-up of `of` by `from` to `to`, with its plan.
fn follow_up(from: &Identity, to: &[&Identity], of: &Sealed, stop: bool) -> (Sealed, Vec<u8>) {
    let f = alert_to(from, to, if stop { b"all clear" } else { b"update" });
    let p = Plan::follow_up(f.message_id, f.envelope_hash, of.message_id, stop)
        .sign(from)
        .unwrap()
        .into_bytes();
    (f, p)
}

fn receipt(signer: &Identity, kind: ReceiptKind, about: &Sealed, sender: &Identity) -> Vec<u8> {
    Receipt::sign(
        signer,
        kind,
        about.message_id,
        about.envelope_hash,
        sender.public_key(),
        T0,
    )
    .as_bytes()
    .to_vec()
}

fn ack(signer: &Identity, about: &Sealed, sender: &Identity) -> Request {
    Request::SendReceipt {
        to: key(sender),
        receipt: receipt(signer, ReceiptKind::Acknowledged, about, sender),
    }
}

/// `(stored_at_ms, duplicate)` of an `Accepted`.
fn accepted(r: Response) -> (u64, bool) {
    match r {
        Response::Accepted {
            stored_at_ms,
            duplicate,
            ..
        } => (stored_at_ms, duplicate),
        other => panic!("expected Accepted, got {other:?}"),
    }
}

/// What `who`'s backlog holds (by the service's clock): each envelope's message id and
/// release.
async fn inbox(svc: &Svc, who: &Identity) -> Vec<([u8; 16], Option<Release>)> {
    svc.backlog(who.public_key(), 0)
        .await
        .unwrap()
        .iter()
        .filter_map(|i| match i {
            Item::Envelope { envelope, release, .. } => {
                let sender = pocnet_crypto::claimed_sender(envelope).unwrap();
                let id = pocnet_crypto::verify_from(envelope, &sender).unwrap().0.message_id;
                Some((id, *release))
            }
            _ => None,
        })
        .collect()
}

fn rel(due_ms: u64, released_ms: u64, rank: u8, repeat: u8) -> Option<Release> {
    Some(Release {
        due_ms,
        released_ms,
        rank,
        repeat,
    })
}

/// The relay's step report of `alert`, as `asker` gets it.
async fn status(svc: &Svc, asker: &Identity, alert: &Sealed) -> Result<(u64, Vec<u8>, Vec<StepReport>), ErrorCode> {
    match svc
        .handle(
            asker.public_key(),
            Request::EscalationStatus {
                alert: alert.message_id,
            },
        )
        .await
    {
        Response::Escalation {
            accepted_ms,
            plan,
            steps,
        } => Ok((accepted_ms, plan, steps)),
        Response::Error { code, .. } => Err(code),
        other => panic!("{other:?}"),
    }
}

/// `(recipient, rank, repeat, due, released, cancelled, cancelled_by)` of each step.
type Row = ([u8; 32], u8, u8, u64, Option<u64>, Option<u64>, Option<[u8; 32]>);

async fn steps(svc: &Svc, sender: &Identity, alert: &Sealed) -> Vec<Row> {
    let (_, _, steps) = status(svc, sender, alert).await.unwrap();
    steps
        .into_iter()
        .map(|s| {
            (
                s.recipient,
                s.rank,
                s.repeat,
                s.due_ms,
                s.released_ms,
                s.cancelled_ms,
                s.cancelled_by,
            )
        })
        .collect()
}

#[test]
fn the_primary_gets_it_now_and_the_alternate_after_the_window_only_where_nobody_acknowledged() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let c = cast(&w).await;
        let (alert, p) = the_alert(&c, 0);
        let id = alert.message_id;
        let mut live_cl_alternate = w.svc.subscribe(c.cl_alternate.public_key()).unwrap();
        let (stored_at, proof) = match w.ask(&c.sender, escalate(&alert, p.clone())).await {
            Response::Accepted {
                message_id,
                envelope_hash,
                stored_at_ms,
                duplicate: false,
                proof,
            } => {
                assert_eq!((message_id, envelope_hash), (id, alert.envelope_hash));
                (stored_at_ms, proof)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(stored_at, T0);
        verify_acceptance(w.relay.public_key(), &alert.envelope_hash, T0, &proof).unwrap();
        // The primaries have it now; the alternates nothing.
        for primary in [&c.cl_primary, &c.mx_primary] {
            assert_eq!(inbox(&w.svc, primary).await, vec![(id, rel(T0, T0, 0, 0))]);
        }
        for alternate in [&c.cl_alternate, &c.mx_alternate] {
            assert!(inbox(&w.svc, alternate).await.is_empty());
        }
        // The primary's delivery: the envelope trimmed to its stanza, the relay's signed
        // acceptance, and when it fell due and was released.
        let items = w.svc.backlog(c.cl_primary.public_key(), 0).await.unwrap();
        let items: Vec<_> = items.into_iter().map(std::sync::Arc::new).collect();
        match &w.svc.deliveries(&items, &key(&c.cl_primary)).await.unwrap()[..] {
            [Delivery::Escalated {
                envelope,
                stored_at_ms,
                proof,
                release,
                ..
            }] => {
                assert_eq!(*release, rel(T0, T0, 0, 0).unwrap());
                let opened = pocnet_crypto::open(&c.cl_primary, envelope, c.sender.public_key()).unwrap();
                assert_eq!(opened.plaintext, b"ATC degraded at SCL");
                verify_acceptance(w.relay.public_key(), &opened.envelope_hash, *stored_at_ms, proof).unwrap();
            }
            other => panic!("{other:?}"),
        }
        // MX's primary acknowledges after 10 minutes; CL's stays silent.
        w.clock.advance(10 * MIN);
        assert_eq!(
            w.ask(&c.mx_primary, ack(&c.mx_primary, &alert, &c.sender)).await,
            Response::Done
        );
        w.clock.set(T0 + W - 1);
        assert_eq!(w.svc.release().await, 0);
        assert!(
            inbox(&w.svc, &c.cl_alternate).await.is_empty(),
            "not a millisecond early"
        );
        assert!(live_cl_alternate.try_recv().is_none());
        w.clock.advance(1);
        assert_eq!(w.svc.release().await, 1, "CL's alternate only");
        let item = live_cl_alternate.try_recv().expect("announced to the live watcher");
        assert!(live_cl_alternate.try_recv().is_none(), "once");
        match &w.svc.deliveries(&[item], &key(&c.cl_alternate)).await.unwrap()[..] {
            [Delivery::Escalated { release, .. }] => assert_eq!(*release, rel(T0 + W, T0 + W, 1, 0).unwrap()),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            inbox(&w.svc, &c.cl_alternate).await,
            vec![(id, rel(T0 + W, T0 + W, 1, 0))]
        );
        w.clock.advance(20 * W);
        w.svc.sweep().await;
        assert!(
            inbox(&w.svc, &c.mx_alternate).await.is_empty(),
            "MX acknowledged in time"
        );
        assert_eq!(inbox(&w.svc, &c.cl_primary).await.len(), 1);
        assert_eq!(
            steps(&w.svc, &c.sender, &alert).await,
            vec![
                (key(&c.cl_primary), 0, 0, T0, Some(T0), None, None),
                (key(&c.mx_primary), 0, 0, T0, Some(T0), None, None),
                (key(&c.cl_alternate), 1, 0, T0 + W, Some(T0 + W), None, None),
                (
                    key(&c.mx_alternate),
                    1,
                    0,
                    T0 + W,
                    None,
                    Some(T0 + 10 * MIN),
                    Some(key(&c.mx_primary))
                ),
            ]
        );
    });
}

#[test]
fn the_alternates_acknowledgement_stops_the_primarys_repeats_and_repeats_stop_at_n() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let c = cast(&w).await;
        // CL: primary, alternate; MX: its primary alone. Two repeats.
        let alert = alert_to(&c.sender, &[&c.cl_primary, &c.cl_alternate, &c.mx_primary], b"x");
        let states = vec![
            ("CL", vec![vec![&c.cl_primary], vec![&c.cl_alternate]]),
            ("MX", vec![vec![&c.mx_primary]]),
        ];
        let p = plan(&alert, &c.sender, 2, &states);
        assert_eq!(accepted(w.ask(&c.sender, escalate(&alert, p)).await), (T0, false));
        let id = alert.message_id;
        // MX (one rank): repeats at W and 2W. CL (two ranks): alternate at W, repeats at 2W, 3W.
        w.clock.set(T0 + W);
        assert_eq!(w.svc.release().await, 2, "CL's alternate and MX's first repeat");
        // CL's alternate acknowledges: CL's repeats stop, the primary's too.
        w.clock.advance(MIN);
        assert_eq!(
            w.ask(&c.cl_alternate, ack(&c.cl_alternate, &alert, &c.sender)).await,
            Response::Done
        );
        for t in [2 * W, 3 * W, 4 * W, 10 * W] {
            w.clock.set(T0 + t);
            w.svc.release().await;
        }
        assert_eq!(inbox(&w.svc, &c.cl_primary).await, vec![(id, rel(T0, T0, 0, 0))]);
        assert_eq!(
            inbox(&w.svc, &c.cl_alternate).await,
            vec![(id, rel(T0 + W, T0 + W, 1, 0))]
        );
        // MX never acknowledged: the primary, then exactly two repeats of the same envelope.
        assert_eq!(
            inbox(&w.svc, &c.mx_primary).await,
            vec![
                (id, rel(T0, T0, 0, 0)),
                (id, rel(T0 + W, T0 + W, 0, 1)),
                (id, rel(T0 + 2 * W, T0 + 2 * W, 0, 2)),
            ]
        );
        let cl_cancel = (Some(T0 + W + MIN), Some(key(&c.cl_alternate)));
        let report = steps(&w.svc, &c.sender, &alert).await;
        assert_eq!(report.len(), 2 + 2 * 2 + 1 + 2, "rank steps plus repeats");
        for (who, rank, repeat, due, released, cancelled, by) in report {
            if who == key(&c.mx_primary) || repeat == 0 {
                assert_eq!((released, cancelled, by), (Some(due), None, None), "{rank}/{repeat}");
            } else {
                assert_eq!((released, (cancelled, by)), (None, cl_cancel), "{rank}/{repeat}");
            }
        }
    });
}

#[test]
fn only_a_valid_acknowledgement_by_a_poc_of_that_state_stops_it() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let c = cast(&w).await;
        let outsider = w.member("UY", "primary").await;
        let cl_authority = w.authority("CL");
        let (alert, p) = the_alert(&c, 0);
        accepted(w.ask(&c.sender, escalate(&alert, p)).await);
        // Delivered and read receipts from CL's primary stop nothing.
        for kind in [ReceiptKind::Delivered, ReceiptKind::Read] {
            let r = Request::SendReceipt {
                to: key(&c.sender),
                receipt: receipt(&c.cl_primary, kind, &alert, &c.sender),
            };
            assert_eq!(w.ask(&c.cl_primary, r).await, Response::Done);
        }
        // Acknowledgements by a POC of another state and by CL's national authority (a
        // member, not a POC of the plan) are passed on to the sender and stop nothing in CL.
        assert_eq!(
            w.ask(&outsider, ack(&outsider, &alert, &c.sender)).await,
            Response::Done
        );
        assert_eq!(
            w.ask(&cl_authority, ack(&cl_authority, &alert, &c.sender)).await,
            Response::Done
        );
        // A bad signature is refused before anything is cancelled: tampered, or another
        // key's receipt over CL's primary's connection.
        let mut bad = receipt(&c.cl_primary, ReceiptKind::Acknowledged, &alert, &c.sender);
        let n = bad.len();
        bad[n - 1] ^= 1;
        let r = Request::SendReceipt {
            to: key(&c.sender),
            receipt: bad,
        };
        assert_eq!(code(&w.ask(&c.cl_primary, r).await), Some(ErrorCode::BadEnvelope));
        assert_eq!(
            code(&w.ask(&c.cl_primary, ack(&c.cl_alternate, &alert, &c.sender)).await),
            Some(ErrorCode::BadEnvelope)
        );
        // MX's alternate acknowledges before its own release: MX stops, CL does not.
        assert_eq!(
            w.ask(&c.mx_alternate, ack(&c.mx_alternate, &alert, &c.sender)).await,
            Response::Done
        );
        w.clock.set(T0 + W);
        assert_eq!(w.svc.release().await, 1);
        assert_eq!(inbox(&w.svc, &c.cl_alternate).await.len(), 1, "CL escalated");
        assert!(inbox(&w.svc, &c.mx_alternate).await.is_empty());
        let report = steps(&w.svc, &c.sender, &alert).await;
        assert_eq!(report[3].5, Some(T0), "MX's alternate step, cancelled");
        assert_eq!(report[3].6, Some(key(&c.mx_alternate)));
        // The sender got the receipts the relay accepted: 2 + 2 + MX's.
        let receipts = w
            .svc
            .backlog(c.sender.public_key(), 0)
            .await
            .unwrap()
            .iter()
            .filter(|i| matches!(i, Item::Receipt { .. }))
            .count();
        assert_eq!(receipts, 5);
    });
}

#[test]
fn a_plan_that_does_not_fit_its_envelope_the_directory_or_its_sender_is_refused_and_nothing_stored() {
    rt().block_on(async {
        let w = world(Config {
            max_alert_bytes: 16 * 1024,
            ..Config::default()
        })
        .await;
        let c = cast(&w).await;
        let stranger = id();
        let cl_authority = w.authority("CL");
        let refused = |r: Response| code(&r);
        let states = c.states();
        // A plan key the envelope is not sealed to.
        let short = alert_to(&c.sender, &[&c.cl_primary, &c.mx_primary, &c.mx_alternate], b"x");
        let p = plan(&short, &c.sender, 0, &states);
        assert_eq!(
            refused(w.ask(&c.sender, escalate(&short, p)).await),
            Some(ErrorCode::Malformed)
        );
        // An envelope recipient the plan does not name.
        let (alert, _) = the_alert(&c, 0);
        let p = plan(&alert, &c.sender, 0, &states[..1]);
        assert_eq!(
            refused(w.ask(&c.sender, escalate(&alert, p)).await),
            Some(ErrorCode::Malformed)
        );
        // A state that does not match the directory: MX's POCs put under CL.
        let p = plan(
            &alert,
            &c.sender,
            0,
            &[
                ("CL", vec![vec![&c.cl_primary], vec![&c.cl_alternate, &c.mx_alternate]]),
                ("MX", vec![vec![&c.mx_primary]]),
            ],
        );
        assert_eq!(
            refused(w.ask(&c.sender, escalate(&alert, p)).await),
            Some(ErrorCode::Forbidden)
        );
        // A member that is no POC (CL's national authority), or a key not enrolled.
        for (extra, want) in [
            (&*cl_authority, ErrorCode::Forbidden),
            (&stranger, ErrorCode::UnknownRecipient),
        ] {
            let mut to = c.pocs().to_vec();
            to.push(extra);
            let e = alert_to(&c.sender, &to, b"x");
            let mut st = c.states();
            st[0].1.push(vec![extra]);
            let p = plan(&e, &c.sender, 0, &st);
            assert_eq!(refused(w.ask(&c.sender, escalate(&e, p)).await), Some(want));
        }
        // Signed by another key than the sender's.
        let p = plan(&alert, &c.cl_primary, 0, &states);
        assert_eq!(
            refused(w.ask(&c.sender, escalate(&alert, p)).await),
            Some(ErrorCode::NotSender)
        );
        // For another envelope: its id and hash, its hash with this id, this hash with its id.
        let other = alert_to(&c.sender, &c.pocs(), b"y");
        for (mid, hash) in [
            (other.message_id, other.envelope_hash),
            (alert.message_id, other.envelope_hash),
            (other.message_id, alert.envelope_hash),
        ] {
            let twisted = pocnet_crypto::Sealed {
                bytes: Vec::new(),
                message_id: mid,
                envelope_hash: hash,
            };
            let p = plan(&twisted, &c.sender, 0, &states);
            assert_eq!(
                refused(w.ask(&c.sender, escalate(&alert, p)).await),
                Some(ErrorCode::BadEnvelope)
            );
        }
        let mut p = plan(&alert, &c.sender, 0, &states);
        p[1] ^= 0x01; // inside the alert id
        assert_eq!(
            refused(w.ask(&c.sender, escalate(&alert, p)).await),
            Some(ErrorCode::BadEnvelope),
            "a tampered plan"
        );
        // Not an alert envelope; an envelope over the alert limit; someone else's envelope.
        let message = sealed(&c.sender, &c.pocs());
        let fake = pocnet_crypto::Sealed {
            bytes: message.bytes.clone(),
            message_id: message.message_id,
            envelope_hash: message.envelope_hash,
        };
        let p = plan(&fake, &c.sender, 0, &states);
        assert_eq!(
            refused(w.ask(&c.sender, escalate(&fake, p)).await),
            Some(ErrorCode::BadEnvelope)
        );
        let big = alert_to(&c.sender, &c.pocs(), &[7; 17 * 1024]);
        let p = plan(&big, &c.sender, 0, &states);
        assert_eq!(
            refused(w.ask(&c.sender, escalate(&big, p)).await),
            Some(ErrorCode::TooLarge)
        );
        let p = plan(&alert, &c.sender, 0, &states);
        assert_eq!(
            refused(w.ask(&c.cl_primary, escalate(&alert, p.clone())).await),
            Some(ErrorCode::NotSender)
        );
        // Nothing was stored.
        for poc in c.pocs() {
            assert!(inbox(&w.svc, poc).await.is_empty());
        }
        assert_eq!(status(&w.svc, &c.sender, &alert).await, Err(ErrorCode::NotFound));
        // The sound one, then its retry.
        assert_eq!(
            accepted(w.ask(&c.sender, escalate(&alert, p.clone())).await),
            (T0, false)
        );
        w.clock.advance(1_000);
        assert_eq!(accepted(w.ask(&c.sender, escalate(&alert, p)).await), (T0, true));
        assert_eq!(inbox(&w.svc, &c.cl_primary).await.len(), 1, "stored once");
        // The same alert id with another plan is refused.
        let p2 = plan(&alert, &c.sender, 3, &states);
        assert_eq!(
            refused(w.ask(&c.sender, escalate(&alert, p2)).await),
            Some(ErrorCode::Forbidden)
        );
    });
}

#[test]
fn a_follow_up_reaches_only_those_already_released_and_a_stop_cancels_every_held_step() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let c = cast(&w).await;
        let (alert, p) = the_alert(&c, 1);
        accepted(w.ask(&c.sender, escalate(&alert, p)).await);
        let id = alert.message_id;
        // An update at +5 min: now for the primaries, held for the alternates with their step.
        w.clock.advance(5 * MIN);
        let (update, up) = follow_up(&c.sender, &c.pocs(), &alert, false);
        assert_eq!(
            accepted(w.ask(&c.sender, escalate(&update, up.clone())).await),
            (T0 + 5 * MIN, false)
        );
        assert_eq!(
            accepted(w.ask(&c.sender, escalate(&update, up)).await),
            (T0 + 5 * MIN, true),
            "a retry is recognised"
        );
        let ids = |v: Vec<([u8; 16], Option<Release>)>| v.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(ids(inbox(&w.svc, &c.cl_primary).await), vec![id, update.message_id]);
        assert!(inbox(&w.svc, &c.cl_alternate).await.is_empty());
        // Refused: a follow-up of no alert of this sender's, or to someone the alert never named.
        let outsider = w.member("UY", "primary").await;
        let (stray, sp) = follow_up(&c.sender, &[&outsider], &alert, false);
        assert_eq!(
            code(&w.ask(&c.sender, escalate(&stray, sp)).await),
            Some(ErrorCode::Malformed)
        );
        let (theirs, tp) = follow_up(&c.cl_primary, &[&c.mx_primary], &alert, true);
        assert_eq!(
            code(&w.ask(&c.cl_primary, escalate(&theirs, tp)).await),
            Some(ErrorCode::NotFound),
            "only the alert's sender follows it up"
        );
        let unknown = alert_to(&c.sender, &[&c.cl_primary], b"z");
        let (orphan, op) = follow_up(&c.sender, &[&c.cl_primary], &unknown, true);
        assert_eq!(
            code(&w.ask(&c.sender, escalate(&orphan, op)).await),
            Some(ErrorCode::NotFound)
        );
        // MX's primary acknowledges: MX's held steps and MX's alternate's held update go.
        w.clock.advance(MIN);
        assert_eq!(
            w.ask(&c.mx_primary, ack(&c.mx_primary, &alert, &c.sender)).await,
            Response::Done
        );
        // At W CL's alternate gets the alert, then the update.
        w.clock.set(T0 + W);
        assert_eq!(w.svc.release().await, 2);
        assert_eq!(ids(inbox(&w.svc, &c.cl_alternate).await), vec![id, update.message_id]);
        assert!(inbox(&w.svc, &c.mx_alternate).await.is_empty());
        // All clear at W + 1 min: to the three who have the alert; CL's repeats are dropped.
        w.clock.advance(MIN);
        let (clear, cp) = follow_up(&c.sender, &c.pocs(), &alert, true);
        accepted(w.ask(&c.sender, escalate(&clear, cp)).await);
        w.clock.set(T0 + 20 * W);
        w.svc.sweep().await;
        for poc in [&c.cl_primary, &c.cl_alternate, &c.mx_primary] {
            assert_eq!(
                ids(inbox(&w.svc, poc).await),
                vec![id, update.message_id, clear.message_id]
            );
        }
        assert!(inbox(&w.svc, &c.mx_alternate).await.is_empty());
        let stopped = (Some(T0 + W + MIN), Some(key(&c.sender)));
        let by_mx = (Some(T0 + 6 * MIN), Some(key(&c.mx_primary)));
        for (who, _, repeat, _, released, cancelled, by) in steps(&w.svc, &c.sender, &alert).await {
            let cl = who == key(&c.cl_primary) || who == key(&c.cl_alternate);
            match (cl, repeat) {
                (true, 0) => assert!(released.is_some()),
                (true, _) => assert_eq!((released, (cancelled, by)), (None, stopped)),
                (false, _) if who == key(&c.mx_primary) && repeat == 0 => assert!(released.is_some()),
                (false, _) => assert_eq!((released, (cancelled, by)), (None, by_mx)),
            }
        }
    });
}

#[test]
fn only_the_sender_may_ask_where_an_escalation_stands() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let c = cast(&w).await;
        let (alert, p) = the_alert(&c, 2);
        accepted(w.ask(&c.sender, escalate(&alert, p.clone())).await);
        let (accepted_ms, plan_back, report) = status(&w.svc, &c.sender, &alert).await.unwrap();
        assert_eq!((accepted_ms, plan_back), (T0, p), "the signed plan as sent");
        assert_eq!(report.len(), 4 + 4 * 2);
        assert!(report.windows(2).all(|s| s[0].due_ms <= s[1].due_ms), "in due order");
        for poc in c.pocs() {
            assert_eq!(status(&w.svc, poc, &alert).await, Err(ErrorCode::NotFound));
        }
        let other = alert_to(&c.sender, &[&c.cl_primary], b"never sent");
        assert_eq!(status(&w.svc, &c.sender, &other).await, Err(ErrorCode::NotFound));
    });
}

#[test]
fn a_relay_restarted_mid_escalation_releases_each_remaining_step_once_the_overdue_at_once_marked_late() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let c = cast(&w).await;
        let (alert, p) = the_alert(&c, 1);
        accepted(w.ask(&c.sender, escalate(&alert, p)).await);
        let id = alert.message_id;
        w.clock.set(T0 + W);
        assert_eq!(w.svc.release().await, 2, "both alternates");
        // The relay dies; it is down from W + 1 min to 2W + 7 min, across the repeats' due
        // time. MX's primary acknowledges once it is back, before the first release tick.
        let (svc, loaded) = w.restart().await;
        loaded.unwrap();
        let back = T0 + 2 * W + 7 * MIN;
        w.clock.set(back);
        assert_eq!(
            svc.handle(c.mx_primary.public_key(), ack(&c.mx_primary, &alert, &c.sender))
                .await,
            Response::Done
        );
        let mut live = svc.subscribe(c.cl_primary.public_key()).unwrap();
        assert_eq!(svc.release().await, 2, "CL's repeat, at once");
        let item = live.try_recv().expect("announced");
        match &svc.deliveries(&[item], &key(&c.cl_primary)).await.unwrap()[..] {
            [Delivery::Escalated { release, .. }] => {
                assert_eq!(*release, rel(T0 + 2 * W, back, 0, 1).unwrap());
                assert!(release.released_ms - release.due_ms >= LATE_AFTER_MS, "late");
            }
            other => panic!("{other:?}"),
        }
        assert!(live.try_recv().is_none());
        assert_eq!(svc.release().await, 0);
        // Another restart releases nothing again.
        let (svc, loaded) = w.restart().await;
        loaded.unwrap();
        w.clock.advance(10 * W);
        assert_eq!(svc.release().await, 0, "each step exactly once");
        assert_eq!(
            inbox(&svc, &c.cl_primary).await,
            vec![(id, rel(T0, T0, 0, 0)), (id, rel(T0 + 2 * W, back, 0, 1))]
        );
        assert_eq!(
            inbox(&svc, &c.cl_alternate).await,
            vec![(id, rel(T0 + W, T0 + W, 1, 0)), (id, rel(T0 + 2 * W, back, 1, 1))]
        );
        assert_eq!(inbox(&svc, &c.mx_primary).await, vec![(id, rel(T0, T0, 0, 0))]);
        assert_eq!(
            inbox(&svc, &c.mx_alternate).await,
            vec![(id, rel(T0 + W, T0 + W, 1, 0))]
        );
        let report = steps(&svc, &c.sender, &alert).await;
        let late: Vec<_> = report
            .iter()
            .filter(|s| s.4.is_some_and(|r| r - s.3 >= LATE_AFTER_MS))
            .map(|s| (s.0, s.2))
            .collect();
        assert_eq!(late, vec![(key(&c.cl_primary), 1), (key(&c.cl_alternate), 1)]);
        assert!(
            report
                .iter()
                .filter(|s| s.0 == key(&c.mx_primary) || s.0 == key(&c.mx_alternate))
                .all(|s| s.2 == 0 || s.5 == Some(back)),
            "MX's repeats were cancelled by the acknowledgement that came after the restart"
        );
    });
}

#[test]
fn escalate_has_its_own_rate_limit_at_the_senders_envelope_rate() {
    rt().block_on(async {
        let w = world(Config {
            rate_per_sec: 1.0,
            rate_burst: 3.0,
            request_rate_per_sec: 100.0,
            request_burst: 100.0,
            ..Config::default()
        })
        .await;
        let a = w.member("CL", "primary").await;
        for _ in 0..3 {
            assert!(w.svc.admit(a.public_key(), Kind::Escalate).await.is_ok());
        }
        assert_eq!(
            code(&w.svc.admit(a.public_key(), Kind::Escalate).await.unwrap_err()),
            Some(ErrorCode::RateLimited)
        );
        // Send has a bucket of its own; status questions go at the request rate.
        assert!(w.svc.admit(a.public_key(), Kind::Send).await.is_ok());
        for _ in 0..10 {
            assert!(w.svc.admit(a.public_key(), Kind::EscalationStatus).await.is_ok());
        }
        assert_eq!(
            Kind::of(&Request::EscalationStatus { alert: [0; 16] }),
            Kind::EscalationStatus
        );
        w.clock.advance(1_000);
        assert!(w.svc.admit(a.public_key(), Kind::Escalate).await.is_ok());
    });
}

#[test]
fn the_relays_store_holds_no_alert_text() {
    rt().block_on(async {
        let w = world(Config::default()).await;
        let c = cast(&w).await;
        const MARKER: &[u8] = b"PLAINTEXT-MARKER-airport-SCL-7f3a";
        let alert = alert_to(&c.sender, &c.pocs(), MARKER);
        let p = plan(&alert, &c.sender, 1, &c.states());
        accepted(w.ask(&c.sender, escalate(&alert, p)).await);
        let (update, up) = follow_up(&c.sender, &c.pocs(), &alert, false);
        accepted(w.ask(&c.sender, escalate(&update, up)).await);
        w.clock.set(T0 + W);
        assert_eq!(w.svc.release().await, 4);
        // The database and its write-ahead log, as on disk.
        let mut bytes = Vec::new();
        for suffix in ["", "-wal"] {
            let path = format!("{}{suffix}", w.path().display());
            bytes.extend(std::fs::read(&path).unwrap_or_default());
        }
        assert!(bytes.len() > 4096, "the store was read");
        assert!(
            bytes
                .windows(alert.envelope_hash.len())
                .any(|x| x == alert.envelope_hash),
            "the alert itself is there, sealed"
        );
        assert!(
            !bytes.windows(MARKER.len()).any(|x| x == MARKER),
            "no plaintext at the relay"
        );
    });
}
