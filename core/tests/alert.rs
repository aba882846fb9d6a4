//! Escalation alerts through the public API only: a signed plan as the relay would parse it,
//! an escalation in simulated time (15-minute windows, no sleeps), the sender's status view
//! from the relay's report and signed receipts; and the parsers against arbitrary bytes.

use pocnet_core::alert::{
    compute, AckOutcome, AlertBody, Escalation, FormatError, Plan, PocState, SignedPlan, StatePlan, StepReport,
};
use pocnet_crypto::{Identity, ReceiptKind};
use proptest::prelude::*;

const T0: u64 = 1_790_000_000_000;
const W: u64 = 15 * 60 * 1000;

fn identity() -> Identity {
    Identity::generate(&mut pocnet_crypto::os_rng(), T0 / 1000, 365 * 86_400).unwrap()
}

#[test]
fn three_states_from_signature_to_status() {
    let sender = identity();
    let pocs: Vec<Identity> = (0..6).map(|_| identity()).collect();
    let key = |i: usize| *pocs[i].public_key().as_bytes();
    // CL: 0 primary, 1 alternate. AR: 2 primary, 3 alternate. PE: 4 primary, 5 alternate.
    let states = ["CL", "AR", "PE"]
        .iter()
        .enumerate()
        .map(|(s, code)| StatePlan {
            state: code.to_string(),
            ranks: vec![vec![key(2 * s)], vec![key(2 * s + 1)]],
        })
        .collect();
    let plan = Plan::escalate([9; 16], [8; 32], W, 1, states);
    let bytes = plan.sign(&sender).unwrap().into_bytes();

    // The relay parses with the connection's key; another key is refused.
    let sp = SignedPlan::parse(&bytes, Some(sender.public_key())).unwrap();
    assert!(matches!(
        SignedPlan::parse(&bytes, Some(pocs[0].public_key())),
        Err(FormatError::Signer { .. })
    ));

    let mut e = Escalation::new(sp.plan(), T0);
    let mut released: Vec<(usize, u8)> = Vec::new();
    let who = |k: &[u8; 32]| (0..6).find(|&i| &key(i) == k).unwrap();
    released.extend(e.poll(T0).iter().map(|s| (who(&s.key), s.repeat)));
    assert_eq!(released, [(0, 0), (2, 0), (4, 0)]);
    // CL's primary acknowledges at +4 min; AR's alternate acknowledges (for AR) at +20 min;
    // PE stays silent. A receipt from a key outside the plan does nothing.
    assert!(matches!(
        e.acknowledge(&key(0), T0 + 4 * 60_000),
        AckOutcome::Stopped { state: 0, .. }
    ));
    assert_eq!(e.acknowledge(&[0x55; 32], T0 + 5 * 60_000), AckOutcome::NotInPlan);
    released.extend(e.poll(T0 + W).iter().map(|s| (who(&s.key), s.repeat)));
    assert!(matches!(
        e.acknowledge(&key(3), T0 + W + 5 * 60_000),
        AckOutcome::Stopped { state: 1, .. }
    ));
    let mut t = T0 + W;
    while let Some(due) = e.next_due() {
        t = due;
        released.extend(e.poll(t).iter().map(|s| (who(&s.key), s.repeat)));
    }
    assert_eq!(released, [(0, 0), (2, 0), (4, 0), (3, 0), (5, 0), (4, 1), (5, 1)]);
    assert_eq!(t, T0 + 2 * W);

    // The sender's view: the relay's report plus the signed receipts it holds.
    let report: Vec<StepReport> = e
        .steps()
        .iter()
        .map(|s| StepReport {
            recipient: s.step.key,
            rank: s.step.rank,
            repeat: s.step.repeat,
            due_ms: s.step.due_ms,
            released_ms: s.released_ms,
            cancelled_ms: s.cancelled_ms,
            cancelled_by: s.cancelled_ms.map(|_| if s.step.state == 0 { key(0) } else { key(3) }),
        })
        .collect();
    let receipts = [
        (key(0), ReceiptKind::Acknowledged, T0 + 4 * 60_000),
        (key(3), ReceiptKind::Acknowledged, T0 + W + 5 * 60_000),
        (key(4), ReceiptKind::Read, T0 + 60_000),
    ];
    let handles = |k: &[u8; 32]| {
        let i = who(k);
        format!(
            "{}.{}",
            ["CL", "AR", "PE"][i / 2],
            if i % 2 == 0 { "primary" } else { "alternate" }
        )
    };
    let now = T0 + 3 * W;
    let st = compute(sp.plan(), T0, &report, &receipts, &handles, now);
    type Row<'a> = (&'a str, Option<&'a str>, Option<u64>, bool, u8);
    let states: Vec<Row> = st
        .states
        .iter()
        .map(|s| {
            (
                s.state.as_str(),
                s.acknowledged_by.as_deref(),
                s.time_to_ack_ms,
                s.unreached,
                s.depth,
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("CL", Some("CL.primary"), Some(4 * 60_000), false, 0),
            ("AR", Some("AR.alternate"), Some(W + 5 * 60_000), false, 1),
            ("PE", None, None, true, 2),
        ]
    );
    let poc_states: Vec<PocState> = st.states.iter().flat_map(|s| s.pocs.iter().map(|p| p.state)).collect();
    assert_eq!(
        poc_states,
        [
            PocState::Acknowledged,
            PocState::NotNeeded,
            PocState::Released,
            PocState::Acknowledged,
            PocState::Read,
            PocState::Unreached,
        ]
    );
    assert!(st.render_text(now).contains("PE  depth 2  UNREACHED"));
}

proptest! {
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = SignedPlan::parse(&bytes, None);
        let _ = AlertBody::parse(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_versioned_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 1..400)) {
        bytes[0] = 1;
        prop_assert!(SignedPlan::parse(&bytes, None).is_err());
        let _ = AlertBody::parse(&bytes);
    }
}
