//! Where an alert stands (`pocnet alert status`): per state and per POC, from the plan, the
//! relay's acceptance time, the relay's per-step report and the signed receipts the sender
//! holds.
//!
//! Trust: the relay's report says what was released when; only a signed `Acknowledged`
//! receipt (verified by the caller) makes a POC or a state *acknowledged*. A relay report that
//! claims a state's steps were cancelled by an acknowledgement the sender holds no receipt
//! for leaves those steps held or released, and flags the state
//! (`relay_claims_cancel_without_ack`). Report rows that do not match the plan (unknown key,
//! wrong rank, repeat beyond the plan's) are ignored. Due times are the plan's, not the
//! report's.

use std::fmt::Write;

use pocnet_crypto::ReceiptKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::plan::{Plan, Step, LATE_AFTER_MS};
use crate::round::render::{fmt_duration, fmt_utc};

/// The relay's record of one step (to become `pocnet_wire::StepReport`; defined here until
/// the wire crate has it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// The step's recipient.
    pub recipient: [u8; 32],
    /// The recipient's rank in its state.
    pub rank: u8,
    /// 0 for the rank's release; `j` for the j-th repeat.
    pub repeat: u8,
    /// When it fell due (the relay's word; [`compute`] uses the plan's).
    pub due_ms: u64,
    /// When the relay released it.
    pub released_ms: Option<u64>,
    /// When the relay cancelled it.
    pub cancelled_ms: Option<u64>,
    /// Whose signed acknowledgement (or the sender's stop) cancelled it.
    pub cancelled_by: Option<[u8; 32]>,
}

/// One POC's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PocState {
    /// Not released yet.
    Held,
    /// Released by the relay, no receipt yet.
    Released,
    /// Its device sent a signed Delivered receipt.
    Delivered,
    /// A person displayed it (signed Read receipt).
    Read,
    /// It acknowledged (signed Acknowledged receipt).
    Acknowledged,
    /// Its state was acknowledged by another POC before this one's release.
    NotNeeded,
    /// Its state is unreached (no acknowledgement after the last rank and repeat) and this POC
    /// sent no receipt.
    Unreached,
    /// The sender cancelled before this one's release.
    Stopped,
}

impl PocState {
    /// `held`, `released`, `delivered`, `read`, `acknowledged`, `not_needed`, `unreached`,
    /// `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            PocState::Held => "held",
            PocState::Released => "released",
            PocState::Delivered => "delivered",
            PocState::Read => "read",
            PocState::Acknowledged => "acknowledged",
            PocState::NotNeeded => "not_needed",
            PocState::Unreached => "unreached",
            PocState::Stopped => "stopped",
        }
    }
}

/// One POC of an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PocStatus {
    /// Its handle (from the caller's key → handle map).
    pub handle: String,
    /// Its identity key.
    pub key: [u8; 32],
    /// Its rank in its state.
    pub rank: u8,
    /// Where it stands.
    pub state: PocState,
    /// When its own release falls due (the plan's schedule).
    pub due_ms: Option<u64>,
    /// When the relay released its own (repeat 0) step.
    pub released_ms: Option<u64>,
    /// Some release to it came [`LATE_AFTER_MS`] or more after its due time.
    pub late: bool,
    /// Its first Delivered receipt.
    pub delivered_ms: Option<u64>,
    /// Its first Read receipt.
    pub read_ms: Option<u64>,
    /// Its first Acknowledged receipt.
    pub acknowledged_ms: Option<u64>,
    /// How many repeats were released to it.
    pub repeats_released: u8,
}

/// One state of an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateStatus {
    /// ISO 3166-1 alpha-2 code.
    pub state: String,
    /// Highest step depth released: rank `i` → `i`, repeat `j` → `R - 1 + j`.
    pub depth: u8,
    /// Handle of the POC whose signed acknowledgement came first.
    pub acknowledged_by: Option<String>,
    /// That acknowledgement's time minus the relay's acceptance time.
    pub time_to_ack_ms: Option<u64>,
    /// No acknowledgement and `now >= unreached_at` (unless the sender stopped before then).
    pub unreached: bool,
    /// When the next step of this state falls due (none once acknowledged or stopped).
    pub next_due_ms: Option<u64>,
    /// The relay reports a cancel for this state without a signed acknowledgement the sender
    /// holds (by a key of the state with no receipt, another state's key, or no key).
    pub relay_claims_cancel_without_ack: bool,
    /// Every POC of the state, in rank order.
    pub pocs: Vec<PocStatus>,
}

/// Where a whole alert stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertStatus {
    /// The alert's message id, hex.
    pub alert_hex: String,
    /// The relay's acceptance time.
    pub accepted_ms: u64,
    /// The plan's window.
    pub ack_within_ms: u64,
    /// The plan's repeats.
    pub repeats: u8,
    /// The sender stopped the escalation (cancel or all-clear): the relay reports cancels by
    /// a key that is not in the plan.
    pub stopped: bool,
    /// When it stopped (the relay's time).
    pub stopped_ms: Option<u64>,
    /// Every state, in plan order.
    pub states: Vec<StateStatus>,
}

fn first(receipts: &[([u8; 32], ReceiptKind, u64)], key: &[u8; 32], kind: ReceiptKind) -> Option<u64> {
    receipts
        .iter()
        .filter(|(k, rk, _)| k == key && *rk == kind)
        .map(|(_, _, t)| *t)
        .min()
}

/// Computes the status (see the module docs for what is trusted). `receipts` are
/// `(signer, kind, at_ms)` of signed receipts the caller verified.
pub fn compute(
    plan: &Plan,
    accepted_ms: u64,
    report: &[StepReport],
    receipts: &[([u8; 32], ReceiptKind, u64)],
    handles: &dyn Fn(&[u8; 32]) -> String,
    now_ms: u64,
) -> AlertStatus {
    let schedule = plan.schedule(accepted_ms);
    let planned = |r: &StepReport| -> Option<&Step> {
        schedule
            .iter()
            .find(|s| s.key == r.recipient && s.rank == r.rank && s.repeat == r.repeat)
    };
    // Only rows that match a planned step count; each with its planned step.
    let rows: Vec<(&Step, &StepReport)> = report.iter().filter_map(|r| planned(r).map(|s| (s, r))).collect();
    let in_plan = |k: &[u8; 32]| plan.state_of(k).is_some();
    let stopped_ms = rows
        .iter()
        .filter_map(|(_, r)| match (r.cancelled_ms, r.cancelled_by) {
            (Some(t), Some(by)) if !in_plan(&by) => Some(t),
            _ => None,
        })
        .min();
    let (ack_within_ms, repeats) = match &plan.kind {
        super::plan::PlanKind::Escalate {
            ack_within_ms, repeats, ..
        } => (*ack_within_ms, *repeats),
        super::plan::PlanKind::FollowUp { .. } => (0, 0),
    };

    let mut states = Vec::new();
    for (si, sp) in plan.states().iter().enumerate() {
        let si = si as u16;
        let keys = plan.state_keys(si);
        let r = sp.ranks.len();
        let mine: Vec<&(&Step, &StepReport)> = rows.iter().filter(|(s, _)| s.state == si).collect();
        let ack = keys
            .iter()
            .filter_map(|k| first(receipts, k, ReceiptKind::Acknowledged).map(|t| (t, *k)))
            .min();
        let unreached_at = plan.unreached_at(si, accepted_ms);
        let stopped_before = stopped_ms.is_some_and(|t| t < unreached_at);
        let unreached = ack.is_none() && !stopped_before && now_ms >= unreached_at;
        let depth = mine
            .iter()
            .filter(|(_, r)| r.released_ms.is_some())
            .map(|(s, _)| s.depth(r))
            .max()
            .unwrap_or(0);
        let relay_claims_cancel_without_ack = mine.iter().any(|(_, row)| {
            row.cancelled_ms.is_some()
                && match row.cancelled_by {
                    Some(by) if !in_plan(&by) => false, // the sender's stop
                    Some(by) => !keys.contains(&by) || first(receipts, &by, ReceiptKind::Acknowledged).is_none(),
                    None => true,
                }
        });
        let next_due_ms = if ack.is_some() || stopped_ms.is_some() {
            None
        } else {
            schedule
                .iter()
                .filter(|s| s.state == si)
                .filter(|s| {
                    !mine
                        .iter()
                        .any(|(p, row)| p.key == s.key && p.repeat == s.repeat && row.released_ms.is_some())
                })
                .map(|s| s.due_ms)
                .min()
        };

        let mut pocs = Vec::new();
        for (rank, rank_keys) in sp.ranks.iter().enumerate() {
            for key in rank_keys {
                let own: Vec<&(&Step, &StepReport)> = mine.iter().copied().filter(|(s, _)| &s.key == key).collect();
                let due_ms = schedule
                    .iter()
                    .find(|s| &s.key == key && s.repeat == 0)
                    .map(|s| s.due_ms);
                let released_ms = own.iter().find(|(s, _)| s.repeat == 0).and_then(|(_, r)| r.released_ms);
                let repeats_released = own
                    .iter()
                    .filter(|(s, r)| s.repeat > 0 && r.released_ms.is_some())
                    .count() as u8;
                let any_released = own.iter().any(|(_, r)| r.released_ms.is_some());
                let late = own.iter().any(|(s, r)| {
                    r.released_ms
                        .is_some_and(|t| t.saturating_sub(s.due_ms) >= LATE_AFTER_MS)
                });
                let delivered_ms = first(receipts, key, ReceiptKind::Delivered);
                let read_ms = first(receipts, key, ReceiptKind::Read);
                let acknowledged_ms = first(receipts, key, ReceiptKind::Acknowledged);
                let state = if acknowledged_ms.is_some() {
                    PocState::Acknowledged
                } else if read_ms.is_some() {
                    PocState::Read
                } else if delivered_ms.is_some() {
                    PocState::Delivered
                } else if unreached {
                    PocState::Unreached
                } else if any_released {
                    PocState::Released
                } else {
                    match (ack, stopped_ms) {
                        (Some((t, _)), stop) if stop.is_none_or(|s| t <= s) => PocState::NotNeeded,
                        (_, Some(_)) => PocState::Stopped,
                        _ => PocState::Held,
                    }
                };
                pocs.push(PocStatus {
                    handle: handles(key),
                    key: *key,
                    rank: rank as u8,
                    state,
                    due_ms,
                    released_ms,
                    late,
                    delivered_ms,
                    read_ms,
                    acknowledged_ms,
                    repeats_released,
                });
            }
        }
        states.push(StateStatus {
            state: sp.state.clone(),
            depth,
            acknowledged_by: ack.map(|(_, k)| handles(&k)),
            time_to_ack_ms: ack.map(|(t, _)| t.saturating_sub(accepted_ms)),
            unreached,
            next_due_ms,
            relay_claims_cancel_without_ack,
            pocs,
        });
    }
    AlertStatus {
        alert_hex: pocnet_crypto::to_hex(&plan.alert),
        accepted_ms,
        ack_within_ms,
        repeats,
        stopped: stopped_ms.is_some(),
        stopped_ms,
        states,
    }
}

/// Replaces control and text-direction characters (a handle is the directory's, but a
/// terminal is no place to trust it).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || crate::signed::is_bidi_control(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn opt_time(t: Option<u64>) -> String {
    t.map(fmt_utc).unwrap_or_else(|| "-".into())
}

impl AlertStatus {
    /// A plain-text view for a terminal, times in UTC; `now_ms` gives "next step in …".
    pub fn render_text(&self, now_ms: u64) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "alert {}  accepted {}  acknowledge within {}  repeats {}",
            self.alert_hex,
            fmt_utc(self.accepted_ms),
            fmt_duration(self.ack_within_ms),
            self.repeats
        );
        if let Some(t) = self.stopped_ms {
            let _ = writeln!(o, "STOPPED by the sender at {}", fmt_utc(t));
        }
        for s in &self.states {
            let summary = match (&s.acknowledged_by, s.unreached) {
                (Some(by), _) => format!(
                    "acknowledged by {} after {}",
                    clean(by),
                    fmt_duration(s.time_to_ack_ms.unwrap_or(0))
                ),
                (None, true) => "UNREACHED: no acknowledgement after the last rank and repeat".into(),
                (None, false) if self.stopped => "stopped".into(),
                (None, false) => match s.next_due_ms {
                    Some(t) if t > now_ms => format!("escalating; next step in {}", fmt_duration(t - now_ms)),
                    Some(_) => "escalating; next step due now".into(),
                    None => "waiting for an acknowledgement".into(),
                },
            };
            let _ = writeln!(o, "\n{}  depth {}  {}", s.state, s.depth, summary);
            if s.relay_claims_cancel_without_ack {
                let _ = writeln!(
                    o,
                    "  ! the relay reports a cancel for {} without a signed acknowledgement: not counted",
                    s.state
                );
            }
            for p in &s.pocs {
                let _ = write!(
                    o,
                    "  {:<20} rank {}  {:<12} due {}  released {}  delivered {}  read {}  acknowledged {}",
                    clean(&p.handle),
                    p.rank,
                    p.state.as_str(),
                    opt_time(p.due_ms),
                    opt_time(p.released_ms),
                    opt_time(p.delivered_ms),
                    opt_time(p.read_ms),
                    opt_time(p.acknowledged_ms),
                );
                if p.repeats_released > 0 {
                    let _ = write!(o, "  repeats {}", p.repeats_released);
                }
                if p.late {
                    let _ = write!(o, "  LATE RELEASE");
                }
                o.push('\n');
            }
        }
        o
    }

    /// The same as JSON (keys hex; POC states as [`PocState::as_str`]).
    pub fn to_json(&self) -> Value {
        json!({
            "alert": self.alert_hex,
            "accepted_ms": self.accepted_ms,
            "ack_within_ms": self.ack_within_ms,
            "repeats": self.repeats,
            "stopped": self.stopped,
            "stopped_ms": self.stopped_ms,
            "states": self.states.iter().map(|s| json!({
                "state": s.state,
                "depth": s.depth,
                "acknowledged_by": s.acknowledged_by,
                "time_to_ack_ms": s.time_to_ack_ms,
                "unreached": s.unreached,
                "next_due_ms": s.next_due_ms,
                "relay_claims_cancel_without_ack": s.relay_claims_cancel_without_ack,
                "pocs": s.pocs.iter().map(|p| json!({
                    "handle": p.handle,
                    "key": pocnet_crypto::to_hex(&p.key),
                    "rank": p.rank,
                    "state": p.state.as_str(),
                    "due_ms": p.due_ms,
                    "released_ms": p.released_ms,
                    "late": p.late,
                    "delivered_ms": p.delivered_ms,
                    "read_ms": p.read_ms,
                    "acknowledged_ms": p.acknowledged_ms,
                    "repeats_released": p.repeats_released,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::Escalation;
    use super::super::plan::tests::{k, plan, A, W};
    use super::*;

    const SENDER: [u8; 32] = [0xee; 32];

    fn handle(key: &[u8; 32]) -> String {
        match key[0] {
            1 => "CL.primary".into(),
            2 => "CL.alternate".into(),
            3 => "AR.primary".into(),
            4 => "AR.primary2".into(),
            5 => "AR.alternate".into(),
            6 => "AR.third".into(),
            _ => "unknown\u{1b}[31m".into(),
        }
    }

    /// The relay's report as the machine saw it: cancels by the acknowledging key, or by the
    /// sender after a stop.
    fn report(e: &Escalation, now: u64) -> Vec<StepReport> {
        let st = e.states(now);
        e.steps()
            .iter()
            .map(|s| StepReport {
                recipient: s.step.key,
                rank: s.step.rank,
                repeat: s.step.repeat,
                due_ms: s.step.due_ms,
                released_ms: s.released_ms,
                cancelled_ms: s.cancelled_ms,
                cancelled_by: s.cancelled_ms.map(|_| match st[s.step.state as usize].acknowledged {
                    Some((_, by)) => by,
                    None => SENDER,
                }),
            })
            .collect()
    }

    fn poc<'a>(a: &'a AlertStatus, handle: &str) -> &'a PocStatus {
        a.states
            .iter()
            .flat_map(|s| &s.pocs)
            .find(|p| p.handle == handle)
            .unwrap()
    }

    #[test]
    fn acknowledged_state_and_unreached_state() {
        let p = plan(2);
        let mut e = Escalation::new(&p, A);
        e.poll(A);
        let ack_at = A + 4 * 60_000;
        e.acknowledge(&k(1), ack_at);
        let end = A + 10 * W;
        e.poll(end);
        let receipts = [
            (k(1), ReceiptKind::Delivered, A + 1000),
            (k(1), ReceiptKind::Acknowledged, ack_at),
            (k(5), ReceiptKind::Delivered, A + W + 500),
        ];
        let s = compute(&p, A, &report(&e, end), &receipts, &handle, end);
        assert!(!s.stopped);
        let (cl, ar) = (&s.states[0], &s.states[1]);
        assert_eq!(cl.acknowledged_by.as_deref(), Some("CL.primary"));
        assert_eq!(cl.time_to_ack_ms, Some(4 * 60_000));
        assert_eq!(cl.depth, 0);
        assert!(!cl.unreached && !cl.relay_claims_cancel_without_ack);
        assert_eq!(poc(&s, "CL.primary").state, PocState::Acknowledged);
        assert_eq!(poc(&s, "CL.alternate").state, PocState::NotNeeded);
        assert_eq!(poc(&s, "CL.alternate").released_ms, None);
        assert_eq!(poc(&s, "CL.alternate").due_ms, Some(A + W));
        // AR: 3 ranks + 2 repeats, silent: depth 4, unreached; a delivered POC stays delivered.
        assert!(ar.unreached && ar.acknowledged_by.is_none());
        assert_eq!(ar.depth, 4);
        assert_eq!(ar.next_due_ms, None);
        assert_eq!(poc(&s, "AR.primary").state, PocState::Unreached);
        assert_eq!(poc(&s, "AR.primary").repeats_released, 2);
        assert_eq!(poc(&s, "AR.alternate").state, PocState::Delivered);
        assert_eq!(poc(&s, "AR.third").released_ms, Some(A + 10 * W));
        // Just before AR's unreached time it is still escalating.
        let before = compute(&p, A, &report(&e, end), &receipts, &handle, A + 5 * W - 1);
        assert!(!before.states[1].unreached);
        assert_eq!(poc(&before, "AR.primary").state, PocState::Released);
    }

    #[test]
    fn delivered_and_read_do_not_acknowledge() {
        let p = plan(0);
        let mut e = Escalation::new(&p, A);
        e.poll(A + W);
        let receipts = [
            (k(1), ReceiptKind::Delivered, A + 10),
            (k(1), ReceiptKind::Read, A + 20),
        ];
        let s = compute(&p, A, &report(&e, A + W), &receipts, &handle, A + W);
        assert_eq!(poc(&s, "CL.primary").state, PocState::Read);
        assert_eq!(poc(&s, "CL.primary").read_ms, Some(A + 20));
        assert_eq!(poc(&s, "CL.alternate").state, PocState::Released);
        assert_eq!(s.states[0].acknowledged_by, None);
        assert_eq!(s.states[0].depth, 1);
        assert_eq!(poc(&s, "AR.third").state, PocState::Held);
        assert_eq!(s.states[1].next_due_ms, Some(A + 2 * W));
    }

    #[test]
    fn a_relay_cancel_without_a_signed_acknowledgement_is_not_believed() {
        let p = plan(1);
        let mut e = Escalation::new(&p, A);
        e.poll(A);
        // The relay claims AR.primary acknowledged; the sender holds no such receipt.
        e.acknowledge(&k(3), A + 60_000);
        let now = A + W + 1;
        e.poll(now);
        let s = compute(&p, A, &report(&e, now), &[], &handle, now);
        let ar = &s.states[1];
        assert!(ar.relay_claims_cancel_without_ack);
        assert_eq!(ar.acknowledged_by, None);
        assert_eq!(poc(&s, "AR.primary").state, PocState::Released);
        assert_eq!(poc(&s, "AR.alternate").state, PocState::Held);
        assert_eq!(ar.next_due_ms, Some(A + W));
        assert!(!s.states[0].relay_claims_cancel_without_ack);
        // Later the state counts as unreached: no signed acknowledgement.
        let late = compute(&p, A, &report(&e, now), &[], &handle, A + 4 * W);
        assert!(late.states[1].unreached);
        // With the receipt, the same report is believed.
        let r = [(k(3), ReceiptKind::Acknowledged, A + 60_000)];
        let s = compute(&p, A, &report(&e, now), &r, &handle, now);
        assert!(!s.states[1].relay_claims_cancel_without_ack);
        assert_eq!(poc(&s, "AR.alternate").state, PocState::NotNeeded);
        // An acknowledgement receipt from another state's key does not acknowledge AR.
        let r = [(k(1), ReceiptKind::Acknowledged, A + 60_000)];
        let s = compute(&p, A, &report(&e, now), &r, &handle, now);
        assert!(s.states[1].relay_claims_cancel_without_ack);
        assert_eq!(s.states[1].acknowledged_by, None);
    }

    #[test]
    fn stop_late_and_rows_outside_the_plan() {
        let p = plan(2);
        let mut e = Escalation::new(&p, A);
        e.poll(A);
        // Relay down for a while: the alternates go out 20 s after their due time.
        e.poll(A + W + 20_000);
        e.stop(A + W + 30_000);
        let now = A + 20 * W;
        let mut rep = report(&e, now);
        // Rows the plan does not have: ignored.
        rep.push(StepReport {
            recipient: k(77),
            rank: 0,
            repeat: 0,
            due_ms: A,
            released_ms: Some(A),
            cancelled_ms: None,
            cancelled_by: None,
        });
        rep.push(StepReport {
            recipient: k(6),
            rank: 0,
            repeat: 0,
            due_ms: A,
            released_ms: Some(A),
            cancelled_ms: None,
            cancelled_by: None,
        });
        let s = compute(&p, A, &rep, &[], &handle, now);
        assert!(s.stopped);
        assert_eq!(s.stopped_ms, Some(A + W + 30_000));
        assert_eq!(s.states.iter().map(|x| x.pocs.len()).sum::<usize>(), 6);
        for st in &s.states {
            assert!(!st.unreached, "a stopped alert is not unreached");
            assert!(!st.relay_claims_cancel_without_ack);
        }
        assert_eq!(poc(&s, "AR.third").state, PocState::Stopped);
        assert_eq!(poc(&s, "AR.third").released_ms, None);
        let alt = poc(&s, "CL.alternate");
        assert_eq!(alt.state, PocState::Released);
        assert!(alt.late);
        assert!(!poc(&s, "CL.primary").late);
        let text = s.render_text(now);
        assert!(text.contains("STOPPED by the sender"));
        assert!(text.contains("LATE RELEASE"));
        let j = s.to_json();
        assert_eq!(j["stopped"], true);
        assert_eq!(j["states"][1]["pocs"][3]["state"], "stopped");
        assert_eq!(j["states"][0]["pocs"][1]["late"], true);
        assert_eq!(j["states"][0]["pocs"][0]["key"], pocnet_crypto::to_hex(&k(1)));
    }

    #[test]
    fn text_view_cleans_handles() {
        let p = plan(0);
        let mut e = Escalation::new(&p, A);
        e.poll(A);
        let odd = |key: &[u8; 32]| {
            if key[0] == 1 {
                "CL\u{1b}[2J\u{202E}x".to_string()
            } else {
                handle(key)
            }
        };
        let s = compute(&p, A, &report(&e, A), &[], &odd, A);
        let t = s.render_text(A + 60_000);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{202E}'));
        assert!(t.contains("CL\u{FFFD}[2J\u{FFFD}x"));
        assert!(t.contains("next step in 14m"), "{t}");
        assert_eq!(s.to_json()["states"][0]["pocs"][0]["handle"], "CL\u{1b}[2J\u{202E}x");
    }
}
