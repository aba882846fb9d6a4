//! Escalation alerts from other parties: the signed plan the relay reads
//! (`SignedPlan::parse`, then `schedule` on what parsed) and the alert body a client opens
//! (`AlertBody::parse`).
//!
//! Input: the first byte picks the decoder, the rest is its input. Invariants: no panic; a
//! parsed body re-encodes to exactly its input (one canonical encoding); a parsed plan's
//! schedule stays within its limits (at most 8 ranks plus 9 repeats per key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocnet_core::alert::{AlertBody, PlanKind, SignedPlan, MAX_RANKS, MAX_REPEATS};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        if let Ok(p) = SignedPlan::parse(rest, None) {
            let plan = p.plan();
            let steps = plan.schedule(1_790_000_000_000);
            if let PlanKind::Escalate { states, .. } = &plan.kind {
                let keys: usize = states.iter().map(|s| s.ranks.iter().map(Vec::len).sum::<usize>()).sum();
                assert!(steps.len() <= keys * (MAX_RANKS + MAX_REPEATS as usize));
            } else {
                assert!(steps.is_empty());
            }
        }
    } else if let Ok(b) = AlertBody::parse(rest) {
        assert_eq!(b.encode().unwrap(), rest, "one canonical encoding");
    }
});
