//! The round report: the same figures for every party that computes it from the same bundle.
//!
//! Timing uses only the relay's acceptance times: a POC's *time to answer* is its answer
//! envelope's `stored_at_ms` minus its challenge envelope's `stored_at_ms`. Statuses:
//!
//! - `late`: an answer in pocnet the relay accepted after the deadline;
//! - else `within_1h` (time to answer ≤ 3 600 000 ms), `within_24h` (≤ 86 400 000 ms),
//!   `by_deadline` (any later answer accepted at or before the deadline);
//! - `outside`: no answer in pocnet but a Secretariat outcome (phone, e-mail);
//! - `never`: neither.
//!
//! Medians are of the times to answer of the answers in pocnet (late ones included); with an
//! even count, the floor of the mean of the two middle values.

use std::collections::BTreeMap;

use serde::Serialize;

use super::bundle::Bundle;
use super::format::{Request, RoundError, SignedAnswer, SignedOutcome};
use crate::directory::Category;

/// One hour in milliseconds.
pub const HOUR_MS: u64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// How (and whether) a POC answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Status {
    /// Answered in pocnet within an hour of the challenge's acceptance.
    #[serde(rename = "within_1h")]
    Within1h,
    /// Within 24 hours.
    #[serde(rename = "within_24h")]
    Within24h,
    /// Later, but by the deadline.
    #[serde(rename = "by_deadline")]
    ByDeadline,
    /// After the deadline.
    #[serde(rename = "late")]
    Late,
    /// Not at all.
    #[serde(rename = "never")]
    Never,
    /// Only outside pocnet (the Secretariat's signed outcome).
    #[serde(rename = "outside")]
    Outside,
}

impl Status {
    /// Every status, in report order.
    pub const ALL: [Status; 6] = [
        Status::Within1h,
        Status::Within24h,
        Status::ByDeadline,
        Status::Late,
        Status::Never,
        Status::Outside,
    ];
    /// The name used in JSON, CSV and the text reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Within1h => "within_1h",
            Status::Within24h => "within_24h",
            Status::ByDeadline => "by_deadline",
            Status::Late => "late",
            Status::Never => "never",
            Status::Outside => "outside",
        }
    }
    /// Whether the POC answered in pocnet.
    pub fn in_pocnet(self) -> bool {
        matches!(
            self,
            Status::Within1h | Status::Within24h | Status::ByDeadline | Status::Late
        )
    }
}

/// An answer outside pocnet, as the Secretariat recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutsideAnswer {
    /// How (`phone`, `e-mail`).
    pub how: String,
    /// When (Unix ms, the Secretariat's word).
    pub at_ms: u64,
    /// The Secretariat's note.
    pub note: String,
}

/// One POC's line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PocReport {
    /// Handle, such as `CL.primary`.
    pub handle: String,
    /// The contact's name as listed.
    pub name: String,
    /// Identity key, hex.
    pub key: String,
    /// State (ISO 3166-1 alpha-2).
    pub state: String,
    /// `cyber_policy` or `foreign_affairs`.
    pub category: &'static str,
    /// `primary`, `alternate`, `further1`…
    pub rank: String,
    /// How it answered.
    pub status: Status,
    /// When the relay accepted its challenge (Unix ms).
    pub challenge_accepted_ms: u64,
    /// When the relay accepted its answer (Unix ms), if it answered in pocnet.
    pub answer_accepted_ms: Option<u64>,
    /// Answer acceptance minus challenge acceptance, in ms.
    pub time_to_answer_ms: Option<u64>,
    /// The answer carried a contact update.
    pub details_changed: bool,
    /// The record was stale (over 12 months unconfirmed) at the start.
    pub stale: bool,
    /// The challenge reached its device: a `Delivered` receipt, or an answer in pocnet.
    pub delivered: bool,
    /// Reminders the relay released to it.
    pub reminders_released: u8,
    /// Its answer outside pocnet, if the Secretariat recorded one.
    pub outside: Option<OutsideAnswer>,
}

/// One state's line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateReport {
    /// State (ISO 3166-1 alpha-2).
    pub state: String,
    /// Its POCs in the round.
    pub targets: u32,
    /// Of them, answered in pocnet (late included).
    pub answered: u32,
    /// Of them, answered only outside pocnet.
    pub outside: u32,
    /// `answered / targets`.
    pub rate: f64,
    /// Median time to answer in pocnet (ms).
    pub median_ms: Option<u64>,
}

/// Counts over all targets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Targets.
    pub targets: u32,
    /// Answered within an hour.
    pub within_1h: u32,
    /// Within 24 hours.
    pub within_24h: u32,
    /// Later, by the deadline.
    pub by_deadline: u32,
    /// After the deadline.
    pub late: u32,
    /// Never.
    pub never: u32,
    /// Only outside pocnet.
    pub outside: u32,
    /// Answered in pocnet (the first four).
    pub answered: u32,
    /// Answers carrying a contact update.
    pub details_changed: u32,
    /// Targets whose record was stale at the start.
    pub stale: u32,
    /// Unanswered in pocnet, but the challenge was delivered.
    pub unanswered_delivered: u32,
    /// Unanswered in pocnet, and the challenge never fetched.
    pub unanswered_never_fetched: u32,
    /// Reminders released, in all.
    pub reminders_released: u32,
}

/// The report of one round.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The round id, hex.
    pub round_id: String,
    /// The directory's origin.
    pub origin: String,
    /// The directory size the targets were taken from.
    pub directory_size: u64,
    /// When the round started (Unix ms).
    pub started_ms: u64,
    /// The deadline (Unix ms).
    pub deadline_ms: u64,
    /// What was asked: `confirm details` or the question.
    pub request: String,
    /// When reminders were due (Unix ms).
    pub reminders_ms: Vec<u64>,
    /// Counts.
    pub totals: Totals,
    /// Median time to answer in pocnet over all POCs (ms).
    pub median_ms: Option<u64>,
    /// Every POC, by handle.
    pub pocs: Vec<PocReport>,
    /// Every state, by code.
    pub states: Vec<StateReport>,
    /// States where no POC answered in pocnet.
    pub states_without_answer: Vec<String>,
    /// States where no POC answered at all (neither in pocnet nor outside).
    pub states_unreached: Vec<String>,
}

/// The median as documented in the module: floor of the mean of the middle two when even.
pub fn median(values: &mut [u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        let (a, b) = (values[n / 2 - 1], values[n / 2]);
        a + (b - a) / 2
    })
}

/// The status of an answer accepted `t` ms after its challenge, at `at_ms`.
pub fn status_of(t: u64, at_ms: u64, deadline_ms: u64) -> Status {
    if at_ms > deadline_ms {
        Status::Late
    } else if t <= HOUR_MS {
        Status::Within1h
    } else if t <= DAY_MS {
        Status::Within24h
    } else {
        Status::ByDeadline
    }
}

impl Report {
    /// Computes the report from a bundle. Decodes but does not verify signatures: use
    /// [`super::verify_bundle`] on a bundle from elsewhere (it calls this); the Secretariat
    /// calls this directly on bundles it made.
    pub fn compute(bundle: &Bundle) -> Result<Report, RoundError> {
        let ch = bundle.challenge()?;
        let mut totals = Totals::default();
        let mut pocs = Vec::with_capacity(bundle.targets.len());
        for r in &bundle.targets {
            let t = &r.target;
            let c_at = r.challenge_accepted.stored_at_ms;
            let (status, answer_at, tta, changed) = match &r.answer {
                Some(a) => {
                    let ans = SignedAnswer::decode_unverified(&a.signed)?;
                    let at = a.accepted.stored_at_ms;
                    let tta = at.saturating_sub(c_at);
                    (
                        status_of(tta, at, ch.deadline_ms),
                        Some(at),
                        Some(tta),
                        ans.update.is_some(),
                    )
                }
                None => (Status::Never, None, None, false),
            };
            let outside = match &r.outcome {
                Some(o) => {
                    let o = SignedOutcome::decode_unverified(o)?;
                    Some(OutsideAnswer {
                        how: o.how,
                        at_ms: o.at_ms,
                        note: o.note,
                    })
                }
                None => None,
            };
            let status = if status == Status::Never && outside.is_some() {
                Status::Outside
            } else {
                status
            };
            let delivered = r.delivered.is_some() || status.in_pocnet();
            match status {
                Status::Within1h => totals.within_1h += 1,
                Status::Within24h => totals.within_24h += 1,
                Status::ByDeadline => totals.by_deadline += 1,
                Status::Late => totals.late += 1,
                Status::Never => totals.never += 1,
                Status::Outside => totals.outside += 1,
            }
            totals.targets += 1;
            if status.in_pocnet() {
                totals.answered += 1;
            } else if delivered {
                totals.unanswered_delivered += 1;
            } else {
                totals.unanswered_never_fetched += 1;
            }
            totals.details_changed += changed as u32;
            totals.stale += t.stale as u32;
            totals.reminders_released += r.reminders_released as u32;
            pocs.push(PocReport {
                handle: t.handle.clone(),
                name: t.name.clone(),
                key: pocnet_crypto::to_hex(&t.key),
                state: t.state.clone(),
                category: match t.category {
                    Category::CyberPolicy => "cyber_policy",
                    Category::ForeignAffairs => "foreign_affairs",
                },
                rank: t.rank.to_string(),
                status,
                challenge_accepted_ms: c_at,
                answer_accepted_ms: answer_at,
                time_to_answer_ms: tta,
                details_changed: changed,
                stale: t.stale,
                delivered,
                reminders_released: r.reminders_released,
                outside,
            });
        }
        pocs.sort_by(|a, b| a.handle.cmp(&b.handle).then(a.key.cmp(&b.key)));

        let mut by_state: BTreeMap<&str, Vec<&PocReport>> = BTreeMap::new();
        for p in &pocs {
            by_state.entry(&p.state).or_default().push(p);
        }
        let mut states = Vec::with_capacity(by_state.len());
        let (mut without, mut unreached) = (Vec::new(), Vec::new());
        for (state, ps) in &by_state {
            let answered = ps.iter().filter(|p| p.status.in_pocnet()).count() as u32;
            let outside = ps.iter().filter(|p| p.status == Status::Outside).count() as u32;
            let mut times: Vec<u64> = ps.iter().filter_map(|p| p.time_to_answer_ms).collect();
            if answered == 0 {
                without.push(state.to_string());
                if outside == 0 {
                    unreached.push(state.to_string());
                }
            }
            states.push(StateReport {
                state: state.to_string(),
                targets: ps.len() as u32,
                answered,
                outside,
                rate: answered as f64 / ps.len() as f64,
                median_ms: median(&mut times),
            });
        }
        let mut all: Vec<u64> = pocs.iter().filter_map(|p| p.time_to_answer_ms).collect();
        Ok(Report {
            round_id: pocnet_crypto::to_hex(&ch.round_id),
            origin: ch.origin.clone(),
            directory_size: ch.directory_size,
            started_ms: ch.started_ms,
            deadline_ms: ch.deadline_ms,
            request: match &ch.request {
                Request::ConfirmDetails => "confirm details".into(),
                Request::Question(q) => q.clone(),
            },
            reminders_ms: ch.reminders_ms.clone(),
            totals,
            median_ms: median(&mut all),
            pocs,
            states,
            states_without_answer: without,
            states_unreached: unreached,
        })
    }

    /// The count of POCs with `status`.
    pub fn count(&self, status: Status) -> u32 {
        let t = &self.totals;
        match status {
            Status::Within1h => t.within_1h,
            Status::Within24h => t.within_24h,
            Status::ByDeadline => t.by_deadline,
            Status::Late => t.late,
            Status::Never => t.never,
            Status::Outside => t.outside,
        }
    }

    /// The response curve: `(ms since each POC's challenge, share of all targets answered in
    /// pocnet by then)`, one point per answer in time order, starting at `(0, 0)`.
    pub fn response_curve(&self) -> Vec<(u64, f64)> {
        let mut times: Vec<u64> = self.pocs.iter().filter_map(|p| p.time_to_answer_ms).collect();
        times.sort_unstable();
        let n = self.totals.targets.max(1) as f64;
        let mut out = vec![(0, 0.0)];
        for (i, t) in times.into_iter().enumerate() {
            out.push((t, (i + 1) as f64 / n));
        }
        out
    }
}
