//! The signed escalation plan: the only part of an alert the relay reads.
//!
//! An alert is sealed once, up front, to every POC of every targeted state (all ranks). The
//! sender signs a [`Plan`] next to the envelope: which keys belong to which state and rank,
//! the acknowledgement window and the number of repeats. From it and the relay's acceptance
//! time, [`Plan::schedule`] gives every release (the relay holds each one until it is due and
//! drops the rest of a state once a POC of that state acknowledges).
//!
//! Signed form (PROTOCOL.md §14):
//!
//! ```text
//! postcard(Plan) || sender key [32] || Ed25519 signature [64]
//! signature over "pocnet/v1/alert-plan\0" || every byte before the signature
//! ```

use std::collections::HashSet;

use pocnet_crypto::context;
use pocnet_crypto::{Identity, IdentityKey};
use serde::{Deserialize, Serialize};

use crate::iso3166;
use crate::signed::{field, open_body, sign_body, FormatError};

/// The version byte of a plan.
pub const PLAN_VERSION: u8 = 1;
/// Largest signed plan, in bytes.
pub const MAX_PLAN_LEN: usize = 256 * 1024;
/// At most this many states in one plan.
pub const MAX_PLAN_STATES: usize = 256;
/// At most this many ranks per state.
pub const MAX_RANKS: usize = 8;
/// At most this many keys per state, all ranks together (the relay's cancel-signer limit).
pub const MAX_STATE_KEYS: usize = 16;
/// At most this many repeats to a whole state after its last rank.
pub const MAX_REPEATS: u8 = 9;
/// Shortest acknowledgement window (1 s).
pub const MIN_WINDOW_MS: u64 = 1_000;
/// Longest acknowledgement window (7 days).
pub const MAX_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;
/// A release this long (or longer) after its due time is "late".
pub const LATE_AFTER_MS: u64 = 5_000;

const WHAT: &str = "alert plan";

/// The sender's plan for one alert envelope. The field order is the format.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// [`PLAN_VERSION`].
    pub version: u8,
    /// Message id of the envelope this plan travels with.
    pub alert: [u8; 16],
    /// That envelope's hash (binds the plan to the exact envelope bytes).
    pub envelope_hash: [u8; 32],
    /// What the plan asks of the relay.
    pub kind: PlanKind,
}

/// What a plan asks of the relay. The variant order is the format: append only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PlanKind {
    /// A new alert: released rank by rank per state.
    Escalate {
        /// The window: how long a rank has to acknowledge before the next step is released.
        ack_within_ms: u64,
        /// How many times the whole state is alerted again after its last rank (0..=9).
        repeats: u8,
        /// Every targeted state with its ranks.
        states: Vec<StatePlan>,
    },
    /// An update / cancel / all-clear of alert `of` (same sender). `stop` ends escalation.
    FollowUp {
        /// The alert followed up.
        of: [u8; 16],
        /// Whether every step of `of` not yet released is dropped.
        stop: bool,
    },
}

/// One targeted state and its POCs, rank by rank.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StatePlan {
    /// ISO 3166-1 alpha-2 code (an officially assigned one, see [`crate::iso3166`]).
    pub state: String,
    /// `ranks[0]` = primary keys, `[1]` = alternate, `[2..]` further; each non-empty.
    pub ranks: Vec<Vec<[u8; 32]>>,
}

/// One release of the alert envelope to one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index of the state in the plan's `states`.
    pub state: u16,
    /// The recipient's identity key.
    pub key: [u8; 32],
    /// The key's rank in its state (0 = primary).
    pub rank: u8,
    /// 0 for the rank's own release; `j` (1..=N) for the j-th repeat to the whole state.
    pub repeat: u8,
    /// When it falls due (Unix ms, the relay's clock).
    pub due_ms: u64,
}

impl Step {
    /// The step's depth in its state: rank `i` → `i`; repeat `j` → `R - 1 + j` for a state of
    /// `R` ranks. Steps of one depth fall due together.
    pub fn depth(&self, ranks: usize) -> u8 {
        if self.repeat == 0 {
            self.rank
        } else {
            (ranks as u8).saturating_sub(1).saturating_add(self.repeat)
        }
    }
}

impl Plan {
    /// An `Escalate` plan at version 1.
    pub fn escalate(
        alert: [u8; 16],
        envelope_hash: [u8; 32],
        ack_within_ms: u64,
        repeats: u8,
        states: Vec<StatePlan>,
    ) -> Self {
        Plan {
            version: PLAN_VERSION,
            alert,
            envelope_hash,
            kind: PlanKind::Escalate {
                ack_within_ms,
                repeats,
                states,
            },
        }
    }

    /// A `FollowUp` plan at version 1 (an update, a cancel or an all-clear of `of`).
    pub fn follow_up(alert: [u8; 16], envelope_hash: [u8; 32], of: [u8; 16], stop: bool) -> Self {
        Plan {
            version: PLAN_VERSION,
            alert,
            envelope_hash,
            kind: PlanKind::FollowUp { of, stop },
        }
    }

    /// Checks every rule: version 1; for `Escalate`, 1..=[`MAX_PLAN_STATES`] states, unique
    /// and officially assigned ISO codes, 1..=[`MAX_RANKS`] ranks each non-empty, at most
    /// [`MAX_STATE_KEYS`] keys per state, no key twice in the whole plan, repeats at most
    /// [`MAX_REPEATS`], the window within [`MIN_WINDOW_MS`]..=[`MAX_WINDOW_MS`]; for
    /// `FollowUp`, `of` is another alert than this one.
    pub fn check(&self) -> Result<(), FormatError> {
        if self.version != PLAN_VERSION {
            return Err(FormatError::Version {
                what: WHAT,
                found: self.version,
            });
        }
        match &self.kind {
            PlanKind::Escalate {
                ack_within_ms,
                repeats,
                states,
            } => {
                if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(ack_within_ms) {
                    return Err(field(
                        "ack window",
                        format!("is {ack_within_ms} ms; it must be {MIN_WINDOW_MS}..={MAX_WINDOW_MS} ms"),
                    ));
                }
                if *repeats > MAX_REPEATS {
                    return Err(field(
                        "repeats",
                        format!("is {repeats}; at most {MAX_REPEATS} are allowed"),
                    ));
                }
                if states.is_empty() {
                    return Err(field("plan states", "are empty: an alert targets at least one state"));
                }
                if states.len() > MAX_PLAN_STATES {
                    return Err(field(
                        "plan states",
                        format!("are {}; at most {MAX_PLAN_STATES} are allowed", states.len()),
                    ));
                }
                let mut codes = HashSet::new();
                let mut keys = HashSet::new();
                for s in states {
                    if !iso3166::is_assigned(&s.state) {
                        return Err(field(
                            "plan state",
                            format!("{:?} is not an assigned ISO 3166-1 alpha-2 code", s.state),
                        ));
                    }
                    if !codes.insert(s.state.as_str()) {
                        return Err(field("plan state", format!("{} appears twice", s.state)));
                    }
                    if s.ranks.is_empty() || s.ranks.len() > MAX_RANKS {
                        return Err(field(
                            "plan ranks",
                            format!("{} has {} ranks; it must have 1..={MAX_RANKS}", s.state, s.ranks.len()),
                        ));
                    }
                    let mut n = 0;
                    for (i, rank) in s.ranks.iter().enumerate() {
                        if rank.is_empty() {
                            return Err(field("plan ranks", format!("{} rank {i} is empty", s.state)));
                        }
                        n += rank.len();
                        for k in rank {
                            if !keys.insert(*k) {
                                return Err(field(
                                    "plan keys",
                                    format!("{} appears twice in the plan", pocnet_crypto::to_hex(k)),
                                ));
                            }
                        }
                    }
                    if n > MAX_STATE_KEYS {
                        return Err(field(
                            "plan keys",
                            format!("{} has {n} keys; at most {MAX_STATE_KEYS} are allowed", s.state),
                        ));
                    }
                }
                Ok(())
            }
            PlanKind::FollowUp { of, .. } => {
                if of == &self.alert {
                    return Err(field("follow-up", "names its own alert"));
                }
                Ok(())
            }
        }
    }

    /// The exact body bytes, `postcard(Plan)` (checked first).
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        self.check()?;
        crate::signed::encode(WHAT, self)
    }

    /// Signs the plan with the sender's identity key (checked first).
    pub fn sign(&self, sender: &Identity) -> Result<SignedPlan, FormatError> {
        self.check()?;
        let bytes = sign_body(WHAT, context::ALERT_PLAN, sender, self, MAX_PLAN_LEN)?;
        Ok(SignedPlan {
            bytes,
            plan: self.clone(),
            signer: *sender.public_key(),
        })
    }

    fn escalation(&self) -> Option<(u64, u8, &[StatePlan])> {
        match &self.kind {
            PlanKind::Escalate {
                ack_within_ms,
                repeats,
                states,
            } => Some((*ack_within_ms, *repeats, states)),
            PlanKind::FollowUp { .. } => None,
        }
    }

    /// The states of an `Escalate` plan (empty for `FollowUp`).
    pub fn states(&self) -> &[StatePlan] {
        self.escalation().map(|(_, _, s)| s).unwrap_or(&[])
    }

    /// Escalate only (empty for FollowUp). For a state with R ranks and window W, accepted at A:
    /// rank i (0-based) due at A + i*W for ranks\[i\]'s keys (repeat 0);
    /// repeat j (1..=N) due at A + (R-1+j)*W for every key of the state (all ranks; rank = the
    /// key's rank).
    ///
    /// Sorted by due time; steps due together stay in plan order (state, then repeat, then
    /// rank, then key as listed). Times saturate at `u64::MAX`.
    pub fn schedule(&self, accepted_ms: u64) -> Vec<Step> {
        let Some((w, n, states)) = self.escalation() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (si, s) in states.iter().enumerate() {
            let r = s.ranks.len() as u64;
            for (i, rank) in s.ranks.iter().enumerate() {
                for key in rank {
                    out.push(Step {
                        state: si as u16,
                        key: *key,
                        rank: i as u8,
                        repeat: 0,
                        due_ms: at(accepted_ms, i as u64, w),
                    });
                }
            }
            for j in 1..=n {
                let due_ms = at(accepted_ms, r - 1 + j as u64, w);
                for (i, rank) in s.ranks.iter().enumerate() {
                    for key in rank {
                        out.push(Step {
                            state: si as u16,
                            key: *key,
                            rank: i as u8,
                            repeat: j,
                            due_ms,
                        });
                    }
                }
            }
        }
        out.sort_by_key(|s| s.due_ms);
        out
    }

    /// A + (R+N)*W: a state with no acknowledgement by then is unreached. `u64::MAX` (never)
    /// for a `FollowUp` plan or a state index out of range.
    pub fn unreached_at(&self, state: u16, accepted_ms: u64) -> u64 {
        match self.escalation() {
            Some((w, n, states)) => match states.get(state as usize) {
                Some(s) => at(accepted_ms, s.ranks.len() as u64 + n as u64, w),
                None => u64::MAX,
            },
            None => u64::MAX,
        }
    }

    /// Every key of state `state` (all ranks, in rank order) — the cancel signers. Empty for
    /// a `FollowUp` plan or a state index out of range.
    pub fn state_keys(&self, state: u16) -> Vec<[u8; 32]> {
        self.states()
            .get(state as usize)
            .map(|s| s.ranks.iter().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// The state index and rank of `key`, if the plan names it.
    pub fn state_of(&self, key: &[u8; 32]) -> Option<(u16, u8)> {
        self.states().iter().enumerate().find_map(|(si, s)| {
            s.ranks
                .iter()
                .position(|r| r.contains(key))
                .map(|i| (si as u16, i as u8))
        })
    }
}

/// `a + k * w`, saturating.
fn at(a: u64, k: u64, w: u64) -> u64 {
    a.saturating_add(k.saturating_mul(w))
}

/// A plan signed by the alert's sender under `pocnet/v1/alert-plan\0`.
#[derive(Clone, Debug)]
pub struct SignedPlan {
    bytes: Vec<u8>,
    plan: Plan,
    signer: IdentityKey,
}

impl SignedPlan {
    /// Parses strictly (bound, version, canonical postcard, exact 96-byte tail), checks the
    /// signature and every rule of [`Plan::check`]. With `expected_sender`, the signer must be
    /// that key ([`FormatError::Signer`] otherwise, before the signature is checked).
    pub fn parse(bytes: &[u8], expected_sender: Option<&IdentityKey>) -> Result<SignedPlan, FormatError> {
        let (plan, signer) = open_body::<Plan>(WHAT, context::ALERT_PLAN, bytes, MAX_PLAN_LEN, expected_sender)?;
        plan.check()?;
        Ok(SignedPlan {
            bytes: bytes.to_vec(),
            plan,
            signer,
        })
    }
    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    /// Who signed (the alert's sender).
    pub fn signer(&self) -> &IdentityKey {
        &self.signer
    }
    /// The exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Consumes it, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::signed::TAIL_LEN;
    use std::convert::Infallible;

    pub(crate) const W: u64 = 15 * 60 * 1000;
    pub(crate) const A: u64 = 1_790_000_000_000;

    /// A deterministic RNG (a counter through SHA-256), so identities are reproducible.
    pub(crate) struct TestRng(pub u64);
    impl pocnet_crypto::rand_core::TryRng for TestRng {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            for chunk in dst.chunks_mut(32) {
                let h = crate::round::sha256(&self.0.to_le_bytes());
                self.0 += 1;
                chunk.copy_from_slice(&h[..chunk.len()]);
            }
            Ok(())
        }
    }
    impl pocnet_crypto::rand_core::TryCryptoRng for TestRng {}

    pub(crate) fn identity(seed: u64) -> Identity {
        Identity::generate(&mut TestRng(seed << 32), A / 1000, 365 * 86_400).unwrap()
    }

    pub(crate) fn k(n: u8) -> [u8; 32] {
        [n; 32]
    }

    /// CL: primary 1, alternate 2; AR: primary 3 and 4, alternate 5, third rank 6.
    pub(crate) fn plan(repeats: u8) -> Plan {
        Plan::escalate(
            [0xa1; 16],
            [0xe7; 32],
            W,
            repeats,
            vec![
                StatePlan {
                    state: "CL".into(),
                    ranks: vec![vec![k(1)], vec![k(2)]],
                },
                StatePlan {
                    state: "AR".into(),
                    ranks: vec![vec![k(3), k(4)], vec![k(5)], vec![k(6)]],
                },
            ],
        )
    }

    fn step(state: u16, key: u8, rank: u8, repeat: u8, due_ms: u64) -> Step {
        Step {
            state,
            key: k(key),
            rank,
            repeat,
            due_ms,
        }
    }

    #[test]
    fn schedule_releases_rank_by_rank_then_repeats_the_whole_state() {
        let p = plan(2);
        let s = p.schedule(A);
        let expected = vec![
            step(0, 1, 0, 0, A),
            step(1, 3, 0, 0, A),
            step(1, 4, 0, 0, A),
            step(0, 2, 1, 0, A + W),
            step(1, 5, 1, 0, A + W),
            // CL has 2 ranks: repeat 1 at (2-1+1)W; AR's third rank at 2W too.
            step(0, 1, 0, 1, A + 2 * W),
            step(0, 2, 1, 1, A + 2 * W),
            step(1, 6, 2, 0, A + 2 * W),
            step(0, 1, 0, 2, A + 3 * W),
            step(0, 2, 1, 2, A + 3 * W),
            step(1, 3, 0, 1, A + 3 * W),
            step(1, 4, 0, 1, A + 3 * W),
            step(1, 5, 1, 1, A + 3 * W),
            step(1, 6, 2, 1, A + 3 * W),
            step(1, 3, 0, 2, A + 4 * W),
            step(1, 4, 0, 2, A + 4 * W),
            step(1, 5, 1, 2, A + 4 * W),
            step(1, 6, 2, 2, A + 4 * W),
        ];
        assert_eq!(s, expected);
        // CL: 2 ranks + 2 repeats; AR: 3 ranks + 2 repeats.
        assert_eq!(p.unreached_at(0, A), A + 4 * W);
        assert_eq!(p.unreached_at(1, A), A + 5 * W);
        assert_eq!(p.unreached_at(2, A), u64::MAX);
        for st in &s {
            let r = p.states()[st.state as usize].ranks.len();
            assert_eq!(st.due_ms, A + st.depth(r) as u64 * W);
            assert!(st.due_ms < p.unreached_at(st.state, A));
        }
    }

    #[test]
    fn no_repeats_and_follow_up_schedules() {
        let p = plan(0);
        assert_eq!(p.schedule(A).len(), 6);
        assert_eq!(p.unreached_at(0, A), A + 2 * W);
        let f = Plan::follow_up([0xb2; 16], [1; 32], [0xa1; 16], true);
        f.check().unwrap();
        assert!(f.schedule(A).is_empty());
        assert!(f.state_keys(0).is_empty());
        assert_eq!(f.state_of(&k(1)), None);
        assert_eq!(f.unreached_at(0, A), u64::MAX);
        // Saturates instead of wrapping.
        assert!(plan(9).schedule(u64::MAX - 1).iter().all(|s| s.due_ms >= u64::MAX - 1));
    }

    #[test]
    fn state_keys_and_state_of() {
        let p = plan(1);
        assert_eq!(p.state_keys(0), vec![k(1), k(2)]);
        assert_eq!(p.state_keys(1), vec![k(3), k(4), k(5), k(6)]);
        assert!(p.state_keys(2).is_empty());
        assert_eq!(p.state_of(&k(1)), Some((0, 0)));
        assert_eq!(p.state_of(&k(2)), Some((0, 1)));
        assert_eq!(p.state_of(&k(4)), Some((1, 0)));
        assert_eq!(p.state_of(&k(6)), Some((1, 2)));
        assert_eq!(p.state_of(&k(7)), None);
    }

    fn refused(p: &Plan, field_name: &str) {
        match p.check() {
            Err(FormatError::Field { field, .. }) => assert_eq!(field, field_name, "{p:?}"),
            other => panic!("expected a refusal of {field_name}, got {other:?}"),
        }
    }

    fn edit(f: impl FnOnce(&mut u64, &mut u8, &mut Vec<StatePlan>)) -> Plan {
        let mut p = plan(1);
        if let PlanKind::Escalate {
            ack_within_ms,
            repeats,
            states,
        } = &mut p.kind
        {
            f(ack_within_ms, repeats, states);
        }
        p
    }

    #[test]
    fn check_refuses_every_broken_rule() {
        plan(MAX_REPEATS).check().unwrap();
        refused(&edit(|_, r, _| *r = MAX_REPEATS + 1), "repeats");
        refused(&edit(|w, _, _| *w = MIN_WINDOW_MS - 1), "ack window");
        refused(&edit(|w, _, _| *w = MAX_WINDOW_MS + 1), "ack window");
        edit(|w, _, _| *w = MIN_WINDOW_MS).check().unwrap();
        edit(|w, _, _| *w = MAX_WINDOW_MS).check().unwrap();
        refused(&edit(|_, _, s| s.clear()), "plan states");
        refused(&edit(|_, _, s| s[1].state = "CL".into()), "plan state");
        refused(&edit(|_, _, s| s[1].state = "ar".into()), "plan state");
        refused(&edit(|_, _, s| s[1].state = "XX".into()), "plan state");
        refused(&edit(|_, _, s| s[1].ranks.clear()), "plan ranks");
        refused(&edit(|_, _, s| s[1].ranks[1].clear()), "plan ranks");
        refused(
            &edit(|_, _, s| s[0].ranks = (0..=MAX_RANKS as u8).map(|i| vec![k(100 + i)]).collect()),
            "plan ranks",
        );
        edit(|_, _, s| s[0].ranks = (0..MAX_RANKS as u8).map(|i| vec![k(100 + i)]).collect())
            .check()
            .unwrap();
        // A key twice in one state, and across two states.
        refused(&edit(|_, _, s| s[0].ranks[1].push(k(1))), "plan keys");
        refused(&edit(|_, _, s| s[1].ranks[2].push(k(2))), "plan keys");
        refused(
            &edit(|_, _, s| s[0].ranks[0] = (0..MAX_STATE_KEYS as u8).map(|i| k(100 + i)).collect()),
            "plan keys",
        );
        // 15 primaries and the alternate: exactly the limit.
        edit(|_, _, s| s[0].ranks[0] = (0..MAX_STATE_KEYS as u8 - 1).map(|i| k(100 + i)).collect())
            .check()
            .unwrap();
        let many: Vec<StatePlan> = (0..=MAX_PLAN_STATES)
            .map(|i| StatePlan {
                state: iso3166::ASSIGNED[i % iso3166::ASSIGNED.len()].0.into(),
                ranks: vec![vec![[i as u8; 32]]],
            })
            .collect();
        refused(&edit(|_, _, s| *s = many), "plan states");
        refused(&Plan::follow_up([1; 16], [2; 32], [1; 16], false), "follow-up");
        let mut v = plan(1);
        v.version = 2;
        assert!(matches!(v.check(), Err(FormatError::Version { found: 2, .. })));
    }

    #[test]
    fn signed_plan_round_trips_and_binds_its_signer() {
        let alice = identity(1);
        let bob = identity(2);
        let p = plan(3);
        let sp = p.sign(&alice).unwrap();
        let back = SignedPlan::parse(sp.as_bytes(), None).unwrap();
        assert_eq!(back.plan(), &p);
        assert_eq!(back.signer(), alice.public_key());
        assert_eq!(back.as_bytes(), sp.as_bytes());
        SignedPlan::parse(sp.as_bytes(), Some(alice.public_key())).unwrap();
        match SignedPlan::parse(sp.as_bytes(), Some(bob.public_key())) {
            Err(FormatError::Signer { found, .. }) => {
                assert_eq!(found, pocnet_crypto::to_hex(alice.public_key().as_bytes()))
            }
            other => panic!("{other:?}"),
        }
        // Bob's key in place of Alice's, her signature kept: refused.
        let mut swapped = sp.as_bytes().to_vec();
        let n = swapped.len();
        swapped[n - TAIL_LEN..n - 64].copy_from_slice(bob.public_key().as_bytes());
        assert!(matches!(
            SignedPlan::parse(&swapped, None),
            Err(FormatError::BadSignature { .. })
        ));
        // The same body signed under another context (a round answer's) is refused.
        let body = p.encode().unwrap();
        let mut other = body.clone();
        other.extend_from_slice(alice.public_key().as_bytes());
        let sig = alice.sign(context::ROUND_ANSWER, &other);
        other.extend_from_slice(&sig);
        assert!(matches!(
            SignedPlan::parse(&other, None),
            Err(FormatError::BadSignature { .. })
        ));
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let alice = identity(1);
        let sp = plan(1).sign(&alice).unwrap();
        for i in 0..sp.as_bytes().len() {
            let mut b = sp.as_bytes().to_vec();
            b[i] ^= 0x01;
            assert!(SignedPlan::parse(&b, None).is_err(), "byte {i} flipped was accepted");
        }
        let mut long = sp.as_bytes().to_vec();
        long.push(0);
        assert!(matches!(SignedPlan::parse(&long, None), Err(FormatError::Tail { .. })));
        let short = &sp.as_bytes()[..sp.as_bytes().len() - 1];
        assert!(matches!(SignedPlan::parse(short, None), Err(FormatError::Tail { .. })));
        assert!(matches!(
            SignedPlan::parse(&[1], None),
            Err(FormatError::TooShort { .. })
        ));
        let mut v2 = sp.as_bytes().to_vec();
        v2[0] = 2;
        assert!(matches!(
            SignedPlan::parse(&v2, None),
            Err(FormatError::Version { found: 2, .. })
        ));
        let huge = vec![1u8; MAX_PLAN_LEN + 1];
        assert!(matches!(
            SignedPlan::parse(&huge, None),
            Err(FormatError::TooLarge { .. })
        ));
    }

    /// Signs arbitrary body bytes as a plan would be signed.
    fn sign_raw(id: &Identity, body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        b.extend_from_slice(id.public_key().as_bytes());
        let sig = id.sign(context::ALERT_PLAN, &b);
        b.extend_from_slice(&sig);
        b
    }

    #[test]
    fn non_canonical_and_invalid_plans_are_refused_even_when_signed() {
        let alice = identity(1);
        let body = plan(1).encode().unwrap();
        // Offset 49 is the PlanKind tag (after version 1 + alert 16 + hash 32); 0x00 as the
        // over-long varint 0x80 0x00 means the same, in a second encoding.
        assert_eq!(body[49], 0);
        let mut long = body[..49].to_vec();
        long.extend_from_slice(&[0x80, 0x00]);
        long.extend_from_slice(&body[50..]);
        assert!(matches!(
            SignedPlan::parse(&sign_raw(&alice, &long), None),
            Err(FormatError::NonCanonical { .. })
        ));
        // Correctly signed, canonical, but breaking a rule (a key twice): refused on parse.
        let bad = edit(|_, _, s| s[1].ranks[0].push(k(1)));
        let bad_body = crate::signed::encode(WHAT, &bad).unwrap();
        assert!(matches!(
            SignedPlan::parse(&sign_raw(&alice, &bad_body), None),
            Err(FormatError::Field { field: "plan keys", .. })
        ));
        // And the honest bytes made the same way parse.
        SignedPlan::parse(&sign_raw(&alice, &body), None).unwrap();
    }
}
