//! [`Escalation`]: the sans-IO state machine of one alert's escalation.
//!
//! It has no clock: it is fed the relay's acceptance time, then events with their times
//! (`poll(now)`, an acknowledgement at a time, the sender's stop at a time). The relay's store
//! implements the same rules durably; this machine is what tests run in simulated time, what
//! the client's status view reasons with, and what a drill simulator can drive.
//!
//! Rules:
//! - a step is released by the first `poll(now)` with `now >= due_ms`, exactly once, unless it
//!   was cancelled before;
//! - an acknowledgement by any key of a state (any rank) cancels every step of that state not
//!   yet released; steps of other states are untouched; a key not in the plan does nothing;
//! - the sender's stop cancels every step not yet released.
//!
//! Callers that learn of an acknowledgement late should `poll` up to its time first if steps
//! that fell due before it must count as released (the relay does, as it releases on time).

use super::plan::{Plan, Step};

/// One step of the schedule and what became of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepState {
    /// The step.
    pub step: Step,
    /// When it was released (the `now` of the `poll` that returned it).
    pub released_ms: Option<u64>,
    /// When it was cancelled (by an acknowledgement of its state or the sender's stop).
    pub cancelled_ms: Option<u64>,
}

impl StepState {
    fn pending(&self) -> bool {
        self.released_ms.is_none() && self.cancelled_ms.is_none()
    }
}

/// What an acknowledgement did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// The signer's state is now acknowledged; `cancelled` of its steps will not be released.
    Stopped {
        /// Index of the state in the plan.
        state: u16,
        /// How many steps were cancelled.
        cancelled: usize,
    },
    /// The signer's state was already acknowledged (by it or another POC): nothing changes.
    AlreadyAcknowledged,
    /// The signer is not a key of the plan: nothing changes.
    NotInPlan,
}

/// Where one state stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateProgress {
    /// ISO 3166-1 alpha-2 code.
    pub state: String,
    /// Highest step depth released: rank `i` → `i`, repeat `j` → `R - 1 + j` (0 when nothing
    /// was released yet).
    pub depth: u8,
    /// The first acknowledgement: when, and by which key.
    pub acknowledged: Option<(u64, [u8; 32])>,
    /// No acknowledgement and `now >= unreached_at` (and the sender did not stop before then).
    pub unreached: bool,
    /// When this state's next step falls due, if one is pending.
    pub next_due: Option<u64>,
}

/// The escalation of one alert: plan, acceptance time, per-state acknowledgement, the sender's
/// stop and every step's release or cancellation.
#[derive(Clone, Debug)]
pub struct Escalation {
    plan: Plan,
    accepted_ms: u64,
    steps: Vec<StepState>,
    acked: Vec<Option<(u64, [u8; 32])>>,
    stopped: Option<u64>,
}

impl Escalation {
    /// The escalation of `plan` accepted by the relay at `accepted_ms` (nothing released yet).
    /// A `FollowUp` plan has no steps.
    pub fn new(plan: &Plan, accepted_ms: u64) -> Self {
        let steps = plan
            .schedule(accepted_ms)
            .into_iter()
            .map(|step| StepState {
                step,
                released_ms: None,
                cancelled_ms: None,
            })
            .collect();
        Escalation {
            plan: plan.clone(),
            accepted_ms,
            steps,
            acked: vec![None; plan.states().len()],
            stopped: None,
        }
    }

    /// Releases every step due at `now` whose state is not acknowledged and not stopped;
    /// returns them (each once), in schedule order.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Step> {
        let mut out = Vec::new();
        for s in &mut self.steps {
            if s.step.due_ms > now_ms {
                // The schedule is sorted by due time.
                break;
            }
            if s.pending() {
                s.released_ms = Some(now_ms);
                out.push(s.step);
            }
        }
        out
    }

    /// When the next pending step falls due.
    pub fn next_due(&self) -> Option<u64> {
        self.steps.iter().find(|s| s.pending()).map(|s| s.step.due_ms)
    }

    /// An Acknowledged receipt by `signer` at `at_ms`: cancels the state's unreleased steps.
    pub fn acknowledge(&mut self, signer: &[u8; 32], at_ms: u64) -> AckOutcome {
        let Some((state, _rank)) = self.plan.state_of(signer) else {
            return AckOutcome::NotInPlan;
        };
        let slot = &mut self.acked[state as usize];
        if slot.is_some() {
            return AckOutcome::AlreadyAcknowledged;
        }
        *slot = Some((at_ms, *signer));
        let mut cancelled = 0;
        for s in self.steps.iter_mut().filter(|s| s.step.state == state && s.pending()) {
            s.cancelled_ms = Some(at_ms);
            cancelled += 1;
        }
        AckOutcome::Stopped { state, cancelled }
    }

    /// The sender's cancel or all-clear at `at_ms`: cancels every unreleased step; returns how
    /// many (0 when already stopped).
    pub fn stop(&mut self, at_ms: u64) -> usize {
        if self.stopped.is_none() {
            self.stopped = Some(at_ms);
        }
        let mut n = 0;
        for s in self.steps.iter_mut().filter(|s| s.pending()) {
            s.cancelled_ms = Some(at_ms);
            n += 1;
        }
        n
    }

    /// Where every state stands at `now_ms`, in plan order.
    pub fn states(&self, now_ms: u64) -> Vec<StateProgress> {
        self.plan
            .states()
            .iter()
            .enumerate()
            .map(|(i, sp)| {
                let i16 = i as u16;
                let mine = || self.steps.iter().filter(move |s| s.step.state == i16);
                let depth = mine()
                    .filter(|s| s.released_ms.is_some())
                    .map(|s| s.step.depth(sp.ranks.len()))
                    .max()
                    .unwrap_or(0);
                let acknowledged = self.acked[i];
                let unreached_at = self.plan.unreached_at(i16, self.accepted_ms);
                let stopped_before = self.stopped.is_some_and(|t| t < unreached_at);
                StateProgress {
                    state: sp.state.clone(),
                    depth,
                    acknowledged,
                    unreached: acknowledged.is_none() && !stopped_before && now_ms >= unreached_at,
                    next_due: mine().find(|s| s.pending()).map(|s| s.step.due_ms),
                }
            })
            .collect()
    }

    /// Every step of the schedule with its release or cancellation, in schedule order.
    pub fn steps(&self) -> &[StepState] {
        &self.steps
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The relay's acceptance time.
    pub fn accepted_ms(&self) -> u64 {
        self.accepted_ms
    }

    /// When the sender stopped the escalation, if it did.
    pub fn stopped(&self) -> Option<u64> {
        self.stopped
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::tests::{k, plan, A, W};
    use super::*;

    /// (state, key byte, rank, repeat) of released steps, for compact assertions.
    fn ids(steps: &[Step]) -> Vec<(u16, u8, u8, u8)> {
        steps.iter().map(|s| (s.state, s.key[0], s.rank, s.repeat)).collect()
    }

    #[test]
    fn primaries_now_alternates_after_fifteen_minutes() {
        let mut e = Escalation::new(&plan(2), A);
        assert_eq!(e.next_due(), Some(A));
        assert!(e.poll(A - 1).is_empty());
        assert_eq!(ids(&e.poll(A)), vec![(0, 1, 0, 0), (1, 3, 0, 0), (1, 4, 0, 0)]);
        assert_eq!(e.next_due(), Some(A + W));
        assert!(e.poll(A + W - 1).is_empty(), "released before the window ended");
        assert_eq!(ids(&e.poll(A + W)), vec![(0, 2, 1, 0), (1, 5, 1, 0)]);
        let st = e.states(A + W);
        assert_eq!((st[0].depth, st[1].depth), (1, 1));
        assert_eq!((st[0].next_due, st[1].next_due), (Some(A + 2 * W), Some(A + 2 * W)));
    }

    #[test]
    fn a_primary_acknowledging_means_the_alternate_is_never_released() {
        let mut e = Escalation::new(&plan(3), A);
        e.poll(A);
        // CL's primary acknowledges after 10 minutes: CL has 1 alternate step + 3 repeats × 2 keys.
        let out = e.acknowledge(&k(1), A + 10 * 60_000);
        assert_eq!(out, AckOutcome::Stopped { state: 0, cancelled: 7 });
        let later = e.poll(A + 100 * W);
        assert!(later.iter().all(|s| s.state == 1), "CL got {:?}", ids(&later));
        let cl = &e.states(A + 100 * W)[0];
        assert_eq!(cl.acknowledged, Some((A + 10 * 60_000, k(1))));
        assert_eq!(cl.depth, 0);
        assert!(!cl.unreached);
        assert_eq!(cl.next_due, None);
        assert!(e
            .steps()
            .iter()
            .filter(|s| s.step.state == 0 && s.step.key == k(2))
            .all(|s| s.released_ms.is_none() && s.cancelled_ms == Some(A + 10 * 60_000)));
        assert_eq!(e.acknowledge(&k(2), A + W), AckOutcome::AlreadyAcknowledged);
    }

    #[test]
    fn a_silent_state_gets_every_rank_then_n_repeats_then_is_unreached() {
        let p = plan(2);
        let mut e = Escalation::new(&p, A);
        // AR: ranks at 0, W, 2W; repeats at 3W, 4W; unreached at 5W. CL acks at once.
        e.poll(A);
        e.acknowledge(&k(1), A);
        let mut depths = Vec::new();
        let mut released = Vec::new();
        let mut t = A;
        while let Some(due) = e.next_due() {
            t = due;
            let got = e.poll(t);
            assert!(!got.is_empty());
            released.extend(ids(&got));
            depths.push((t, e.states(t)[1].depth));
        }
        assert_eq!(depths, vec![(A + W, 1), (A + 2 * W, 2), (A + 3 * W, 3), (A + 4 * W, 4)]);
        // Each repeat goes to all four AR keys, rank kept.
        assert_eq!(released[2..6], [(1, 3, 0, 1), (1, 4, 0, 1), (1, 5, 1, 1), (1, 6, 2, 1)]);
        assert_eq!(released.len(), 1 + 1 + 4 + 4);
        assert_eq!(t, A + 4 * W);
        assert!(!e.states(A + 5 * W - 1)[1].unreached);
        assert!(e.states(A + 5 * W)[1].unreached);
        assert!(
            !e.states(A + 5 * W)[0].unreached,
            "an acknowledged state is not unreached"
        );
        assert!(e.poll(u64::MAX).is_empty(), "nothing after the last repeat");
    }

    #[test]
    fn an_acknowledgement_from_another_state_or_outsider_does_nothing_here() {
        let mut e = Escalation::new(&plan(1), A);
        e.poll(A);
        // AR's primary acknowledges: CL's alternate still goes out at +W.
        assert_eq!(
            e.acknowledge(&k(3), A + 1),
            AckOutcome::Stopped { state: 1, cancelled: 6 }
        );
        assert_eq!(ids(&e.poll(A + W)), vec![(0, 2, 1, 0)]);
        assert_eq!(e.acknowledge(&k(99), A + W), AckOutcome::NotInPlan);
        assert_eq!(ids(&e.poll(A + 2 * W)), vec![(0, 1, 0, 1), (0, 2, 1, 1)]);
        let st = e.states(A + 3 * W);
        assert!(st[0].unreached && st[0].acknowledged.is_none());
        assert_eq!(st[1].acknowledged, Some((A + 1, k(3))));
    }

    #[test]
    fn a_lower_rank_key_acknowledging_stops_its_state_too() {
        // An alternate (rank 1) who heard of it another way may acknowledge first.
        let mut e = Escalation::new(&plan(0), A);
        e.poll(A);
        assert_eq!(
            e.acknowledge(&k(5), A + 5),
            AckOutcome::Stopped { state: 1, cancelled: 2 }
        );
        assert_eq!(ids(&e.poll(A + 10 * W)), vec![(0, 2, 1, 0)]);
    }

    #[test]
    fn stop_cancels_everything_not_yet_released() {
        let p = plan(2);
        let total = p.schedule(A).len();
        let mut e = Escalation::new(&p, A);
        let first = e.poll(A).len();
        assert_eq!(e.stop(A + 60_000), total - first);
        assert_eq!(e.stop(A + 120_000), 0);
        assert_eq!(e.stopped(), Some(A + 60_000));
        assert_eq!(e.next_due(), None);
        assert!(e.poll(u64::MAX).is_empty());
        for s in e.states(A + 100 * W) {
            assert!(!s.unreached, "a stopped alert is not unreached");
            assert_eq!(s.depth, 0);
        }
        // An acknowledgement after the stop is still recorded, cancelling nothing.
        assert_eq!(
            e.acknowledge(&k(2), A + 2 * W),
            AckOutcome::Stopped { state: 0, cancelled: 0 }
        );
    }

    #[test]
    fn poll_returns_each_step_exactly_once() {
        let p = plan(9);
        let mut e = Escalation::new(&p, A);
        let mut all = Vec::new();
        // Irregular polling, repeated times, big jumps: every step comes out once.
        for t in [
            A,
            A,
            A + 1,
            A + W + 7,
            A + W + 7,
            A + 5 * W,
            A + 5 * W - 1,
            A + 30 * W,
            A + 31 * W,
        ] {
            all.extend(e.poll(t));
        }
        assert_eq!(all, p.schedule(A));
        assert!(e.steps().iter().all(|s| s.released_ms.is_some()));
        // Released at the poll that saw it due, not at its due time.
        let late = e.steps().iter().find(|s| s.step.due_ms == A + 2 * W).unwrap();
        assert_eq!(late.released_ms, Some(A + 5 * W));
    }

    #[test]
    fn a_follow_up_plan_has_nothing_to_escalate() {
        let f = Plan::follow_up([2; 16], [3; 32], [0xa1; 16], true);
        let mut e = Escalation::new(&f, A);
        assert!(e.poll(u64::MAX).is_empty());
        assert_eq!(e.next_due(), None);
        assert!(e.states(A).is_empty());
        assert_eq!(e.acknowledge(&k(1), A), AckOutcome::NotInPlan);
    }
}
