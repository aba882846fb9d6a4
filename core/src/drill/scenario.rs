//! The scenario file: who takes part, how the simulated POCs behave, and the timeline of
//! injects, in TOML (PROTOCOL.md §15.1 lists every key).
//!
//! Parsing is strict: at most [`MAX_SCENARIO_LEN`] bytes of UTF-8, unknown keys refused,
//! every state an assigned ISO 3166-1 code, every handle a POC handle, every time through
//! [`parse_drill_duration`], injects in time order, every text inside its bound and free of
//! control and text-direction characters. Errors name the line (where TOML gives one) and
//! the field.
//!
//! Times in a scenario are *drill time*: `clock_rate` drill seconds pass per wall-clock
//! second. The runner converts with [`Scenario::to_real_ms`] / [`Scenario::to_drill_ms`];
//! everything a relay or a client signs carries real (Unix) time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use pocnet_crypto::{ContentType, HeaderFields, Suite, Tlp};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::sim::{mix_bytes, splitmix64, Profile};
use crate::alert::content::{MAX_DESCRIPTION, MAX_HEADLINE, MAX_INSTRUCTION};
use crate::alert::{
    AlertBody, Category, Certainty, Lang, MsgType, Plan, ResponseType, Severity, StatePlan, Urgency, ALERT_VERSION,
    MAX_WINDOW_MS, MIN_WINDOW_MS,
};
use crate::directory::{Handle, Rank};
use crate::iso3166;
use crate::round::format::MAX_QUESTION;
use crate::round::{Challenge, Request};
use crate::signed::text;

/// Largest scenario file, in bytes.
pub const MAX_SCENARIO_LEN: usize = 256 * 1024;
/// At most this many injects.
pub const MAX_INJECTS: usize = 512;
/// Longest scenario name (one line).
pub const MAX_SCENARIO_NAME: usize = 120;
/// Longest scenario description (lines allowed).
pub const MAX_SCENARIO_DESCRIPTION: usize = 4000;
/// Longest message subject (one line).
pub const MAX_SUBJECT: usize = 200;
/// Longest message text (lines allowed).
pub const MAX_MESSAGE_TEXT: usize = 16 * 1024;
/// Longest drill time any field may give (30 days).
pub const MAX_DRILL_TIME_MS: u64 = 30 * 24 * 3_600_000;
/// Fastest clock: one drill hour per wall second.
pub const MAX_CLOCK_RATE: u32 = 3600;

/// Why a scenario was refused: the line (when known), the field, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// 1-based line of the scenario file the problem is on (or the table it is in).
    pub line: Option<usize>,
    /// The field or section, e.g. `inject 3 (question) deadline`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "scenario line {l}: {}: {}", self.field, self.reason),
            None => write!(f, "scenario: {}: {}", self.field, self.reason),
        }
    }
}

impl std::error::Error for ScenarioError {}

fn err(line: Option<usize>, field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError {
        line,
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parses a drill time such as `0m`, `90s`, `5m`, `1h30m` or `2h`: one or more
/// `<digits><unit>` groups, units `h`, `m`, `s` each at most once and in that order, no
/// spaces; at most 30 days. Returns milliseconds.
pub fn parse_drill_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a drill time (like 0m, 90s, 5m, 1h30m)");
    if s.is_empty() || s.len() > 24 {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut last_unit = 0usize; // 0 none yet, 1 h, 2 m, 3 s
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (unit, ms) = match c {
            'h' => (1, 3_600_000u64),
            'm' => (2, 60_000),
            's' => (3, 1_000),
            _ => return Err(bad()),
        };
        if digits.is_empty() || unit <= last_unit || digits.len() > 9 {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = total.checked_add(n.checked_mul(ms).ok_or_else(bad)?).ok_or_else(bad)?;
        digits.clear();
        last_unit = unit;
    }
    if !digits.is_empty() || last_unit == 0 {
        return Err(bad());
    }
    if total > MAX_DRILL_TIME_MS {
        return Err(format!("{s:?} is longer than 30 days"));
    }
    Ok(total)
}

/// A drill time for display: `0m`, `45m`, `1h30m`, `1h30m15s`.
pub fn fmt_drill_time(ms: u64) -> String {
    let (h, m, s) = (ms / 3_600_000, ms % 3_600_000 / 60_000, ms % 60_000 / 1000);
    let mut o = String::new();
    if h > 0 {
        o.push_str(&format!("{h}h"));
    }
    if m > 0 || h == 0 {
        o.push_str(&format!("{m}m"));
    }
    if s > 0 {
        o.push_str(&format!("{s}s"));
    }
    o
}

/// Which states take part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateSelection {
    /// Every state with a POC in the directory (`all = true`).
    All,
    /// These states (ISO 3166-1 alpha-2, sorted, unique).
    States(Vec<String>),
}

/// `[participants]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantRules {
    /// Which states.
    pub states: StateSelection,
    /// Which handle ranks of each state, as handle suffixes (`primary`, `alternate`,
    /// `further1`, `fa-primary`…), in order.
    pub ranks: Vec<String>,
    /// Handles of real POCs taking part with their own clients (never simulated).
    pub humans: Vec<String>,
}

/// A profile as a scenario names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileChoice {
    /// This profile.
    Is(Profile),
    /// `other-language` without a language: the state's (see [`other_language_of`]).
    OtherLanguageByState,
}

impl ProfileChoice {
    fn parse(s: &str) -> Option<Self> {
        if s == "other-language" {
            return Some(ProfileChoice::OtherLanguageByState);
        }
        match Profile::from_label(s)? {
            Profile::Human => None,
            p => Some(ProfileChoice::Is(p)),
        }
    }

    fn resolve(self, state: &str) -> Profile {
        match self {
            ProfileChoice::Is(p) => p,
            ProfileChoice::OtherLanguageByState => Profile::OtherLanguage(other_language_of(state)),
        }
    }
}

/// The language an `other-language` POC of `state` answers in when the scenario names none:
/// Portuguese for Brazil, French for Haiti and Canada, Spanish otherwise (including the
/// English- and Dutch-speaking states, for which Spanish is the region's other language).
pub fn other_language_of(state: &str) -> Lang {
    match state {
        "BR" | "PT" | "AO" | "MZ" | "CV" => Lang::Pt,
        "HT" | "CA" | "FR" | "GP" | "MQ" | "GF" | "BE" | "LU" | "CH" | "SN" | "CI" => Lang::Fr,
        _ => Lang::Es,
    }
}

/// A deterministic mix: `share` of the participants matching `rank` and `states` get
/// `profile`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    /// Share of the matching participants, 0.0..=1.0.
    pub share: f64,
    /// Only participants of this handle rank (suffix, e.g. `primary`).
    pub rank: Option<String>,
    /// Only participants of these states (empty: any).
    pub states: Vec<String>,
    /// The profile they get.
    pub profile: ProfileChoice,
    /// Line of the `[[profiles.mix]]` table.
    pub line: usize,
}

/// `[profiles]`: precedence humans > `handles` > `mix` (in order) > `states` > `default`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRules {
    /// Everyone not otherwise assigned (`prompt` if absent).
    pub default: ProfileChoice,
    /// Per state.
    pub states: BTreeMap<String, ProfileChoice>,
    /// Per handle.
    pub handles: BTreeMap<String, ProfileChoice>,
    /// Deterministic mixes, applied in order.
    pub mix: Vec<Mix>,
}

/// Who an alert goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertTargets {
    /// `["*"]`: every participating state except the sender's own.
    AllOthers,
    /// These states (never the sender's own).
    States(Vec<String>),
}

/// An `alert` inject: a new escalation alert from a participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertInject {
    /// A name `update` and `all-clear` injects refer to (`of`).
    pub id: Option<String>,
    /// The sender's handle (a simulated participant).
    pub from: String,
    /// The states alerted.
    pub to: AlertTargets,
    /// CAP headline.
    pub headline: String,
    /// CAP description.
    pub description: String,
    /// CAP instruction.
    pub instruction: String,
    /// CAP severity (default Severe).
    pub severity: Severity,
    /// CAP urgency (default Immediate).
    pub urgency: Urgency,
    /// CAP certainty (default Observed).
    pub certainty: Certainty,
    /// CAP categories (default Infra).
    pub category: Vec<Category>,
    /// CAP response types (default Assess).
    pub response_type: Vec<ResponseType>,
    /// TLP marking (default AMBER).
    pub tlp: Tlp,
    /// Incident id for the envelope header.
    pub incident: Option<String>,
    /// The escalation window in drill time (default: the scenario's).
    pub window_ms: u64,
    /// Repeats (default: the scenario's).
    pub repeats: u8,
}

/// An `update` or `all-clear` inject: a follow-up of an earlier alert by its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUpInject {
    /// Index (in [`Scenario::injects`]) of the alert followed up.
    pub of: usize,
    /// CAP headline.
    pub headline: String,
    /// CAP description.
    pub description: String,
    /// CAP instruction.
    pub instruction: String,
    /// CAP severity (default: the alert's; an all-clear's: Minor).
    pub severity: Severity,
    /// CAP urgency (default: the alert's; an all-clear's: Past).
    pub urgency: Urgency,
    /// CAP certainty (default: the alert's).
    pub certainty: Certainty,
}

/// What a `message` inject's `to` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageTarget {
    /// `*`: every participant.
    All,
    /// Every participant of a state.
    State(String),
    /// One participant.
    Handle(String),
}

/// A `message` inject: a person-to-person message between participants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInject {
    /// The sender's handle (a simulated participant).
    pub from: String,
    /// Recipients (the sender is never its own recipient).
    pub to: Vec<MessageTarget>,
    /// Subject, one line.
    pub subject: String,
    /// Text, lines allowed.
    pub text: String,
    /// TLP marking (default AMBER).
    pub tlp: Tlp,
    /// Incident id for the envelope header.
    pub incident: Option<String>,
}

/// A `question` or `round` inject: a verification round from the controller to every
/// participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundInject {
    /// The question (`question`), or `None` (`round`: confirm your details).
    pub question: Option<String>,
    /// Answers due this long after the inject (drill time).
    pub deadline_ms: u64,
    /// Reminders this long after the inject (drill time, increasing, before the deadline).
    pub reminders_ms: Vec<u64>,
}

/// What an inject does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InjectKind {
    /// `alert`.
    Alert(AlertInject),
    /// `update`: an Update of an earlier alert (escalation continues).
    Update(FollowUpInject),
    /// `all-clear`: an Update with response type AllClear that stops the escalation.
    AllClear(FollowUpInject),
    /// `message`.
    Message(MessageInject),
    /// `question`: a round whose request is the question.
    Question(RoundInject),
    /// `round`: a confirm-your-details round.
    Round(RoundInject),
    /// `offline`: the target stops connecting from then on.
    Offline {
        /// Its handle.
        target: String,
    },
    /// `rotate`: the target lost its key; a new key is published through the directory.
    Rotate {
        /// Its handle.
        target: String,
    },
}

impl InjectKind {
    /// The `kind` word of the scenario file.
    pub fn word(&self) -> &'static str {
        match self {
            InjectKind::Alert(_) => "alert",
            InjectKind::Update(_) => "update",
            InjectKind::AllClear(_) => "all-clear",
            InjectKind::Message(_) => "message",
            InjectKind::Question(_) => "question",
            InjectKind::Round(_) => "round",
            InjectKind::Offline { .. } => "offline",
            InjectKind::Rotate { .. } => "rotate",
        }
    }

    /// Whether it sends an alert envelope (alert, update, all-clear).
    pub fn is_alert(&self) -> bool {
        matches!(
            self,
            InjectKind::Alert(_) | InjectKind::Update(_) | InjectKind::AllClear(_)
        )
    }

    /// Whether it starts a verification round (question, round).
    pub fn is_round(&self) -> bool {
        matches!(self, InjectKind::Question(_) | InjectKind::Round(_))
    }
}

/// One step of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inject {
    /// When, in drill time from the start.
    pub at_ms: u64,
    /// The line of its `[[inject]]` table.
    pub line: usize,
    /// What it does.
    pub kind: InjectKind,
}

/// A parsed, checked scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// One-line name.
    pub name: String,
    /// Description (lines allowed).
    pub description: String,
    /// Drill seconds per wall-clock second, 1..=3600.
    pub clock_rate: u32,
    /// The escalation window, drill time.
    pub window_ms: u64,
    /// Repeats after the last rank.
    pub repeats: u8,
    /// The seed of the profile mixes and the simulated delays.
    pub seed: u64,
    /// The drill's length in drill time (`duration`, or computed: see
    /// [`Scenario::duration_ms`]).
    pub duration_ms: u64,
    /// Who takes part.
    pub participants: ParticipantRules,
    /// How simulated POCs behave.
    pub profiles: ProfileRules,
    /// The timeline, in time order.
    pub injects: Vec<Inject>,
}

/// A POC of the directory as the runner hands it to [`Scenario::roster`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterEntry {
    /// Its handle, e.g. `CL.primary`.
    pub handle: String,
    /// Its state (as in the handle).
    pub state: String,
    /// Its rank as a number: primary 0, alternate 1, further`n` → `n + 1` (as in the
    /// handle; the category does not count).
    pub rank: u8,
    /// Its identity key.
    pub key: [u8; 32],
}

impl RosterEntry {
    /// The entry of a POC listed in the directory.
    pub fn from_poc(poc: &crate::directory::Poc) -> Self {
        RosterEntry {
            handle: poc.handle_text(),
            state: poc.state().to_string(),
            rank: rank_number(poc.category_rank().1),
            key: *poc.key.as_bytes(),
        }
    }
}

/// A participant of a drill (also the drill record's participant entry, PROTOCOL.md §15.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Its handle at the start.
    pub handle: String,
    /// Its state.
    pub state: String,
    /// Its rank number (see [`RosterEntry::rank`]).
    pub rank: u8,
    /// Its identity key at the start.
    pub key: [u8; 32],
    /// Its response profile (a human's is [`Profile::Human`]), as a label on the wire.
    pub profile: Profile,
    /// Its directory record was stale (not confirmed for 365 days) at the drill's start.
    /// [`Scenario::roster`] leaves it `false`; the drill record's builder sets it from the
    /// directory log and the verifier checks it.
    pub stale: bool,
    /// Keys that held this handle after `key` during the drill (a lost key rotated through
    /// the directory), in log order. Set by the builder from the log, checked by the verifier.
    pub rotated_to: Vec<[u8; 32]>,
}

impl Participant {
    /// The key it uses now: the last rotated key, else its starting key.
    pub fn current_key(&self) -> [u8; 32] {
        *self.rotated_to.last().unwrap_or(&self.key)
    }

    /// Whether `key` is (or was, during the drill) this participant's.
    pub fn has_key(&self, key: &[u8; 32]) -> bool {
        &self.key == key || self.rotated_to.contains(key)
    }
}

/// The rank number of a POC handle (primary 0, alternate 1, further`n` → n + 1).
pub fn rank_number(rank: Rank) -> u8 {
    match rank {
        Rank::Primary => 0,
        Rank::Alternate => 1,
        Rank::Further(n) => n + 1,
    }
}

/// The handle's state and rank number if it is a POC handle.
pub fn poc_handle(handle: &str) -> Option<(String, u8)> {
    match handle.parse::<Handle>() {
        Ok(Handle::Poc { state, rank, .. }) => Some((state, rank_number(rank))),
        _ => None,
    }
}

fn suffix(handle: &str) -> &str {
    handle.split_once('.').map(|(_, s)| s).unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// The TOML shape.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    clock_rate: u32,
    window: String,
    #[serde(default = "one")]
    repeats: u8,
    #[serde(default)]
    seed: u64,
    duration: Option<String>,
    participants: Spanned<RawParticipants>,
    profiles: Option<Spanned<RawProfiles>>,
    #[serde(default)]
    inject: Vec<Spanned<RawInject>>,
}

fn one() -> u8 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParticipants {
    states: Option<Vec<String>>,
    all: Option<bool>,
    ranks: Option<Vec<String>>,
    #[serde(default)]
    humans: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProfiles {
    default: Option<String>,
    #[serde(default)]
    states: BTreeMap<String, String>,
    #[serde(default)]
    handles: BTreeMap<String, String>,
    #[serde(default)]
    mix: Vec<Spanned<RawMix>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMix {
    share: f64,
    rank: Option<String>,
    states: Option<Vec<String>>,
    profile: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInject {
    at: String,
    kind: String,
    id: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
    of: Option<String>,
    headline: Option<String>,
    description: Option<String>,
    instruction: Option<String>,
    severity: Option<String>,
    urgency: Option<String>,
    certainty: Option<String>,
    category: Option<Vec<String>>,
    response_type: Option<Vec<String>>,
    tlp: Option<String>,
    incident: Option<String>,
    window: Option<String>,
    repeats: Option<u8>,
    subject: Option<String>,
    text: Option<String>,
    deadline: Option<String>,
    reminders: Option<Vec<String>>,
    target: Option<String>,
}

impl RawInject {
    /// The optional keys present, by name.
    fn present(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! p {
            ($($f:ident),*) => { $( if self.$f.is_some() { v.push(stringify!($f)); } )* };
        }
        p!(
            id,
            from,
            to,
            of,
            headline,
            description,
            instruction,
            severity,
            urgency,
            certainty,
            category,
            response_type,
            tlp,
            incident,
            window,
            repeats,
            subject,
            text,
            deadline,
            reminders,
            target
        );
        v
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Checks an ISO code.
fn state_code(line: Option<usize>, field: &str, s: &str) -> Result<String, ScenarioError> {
    if iso3166::is_assigned(s) {
        Ok(s.to_string())
    } else {
        Err(err(
            line,
            field,
            format!("{s:?} is not an assigned ISO 3166-1 alpha-2 code"),
        ))
    }
}

fn poc_handle_checked(line: Option<usize>, field: &str, s: &str) -> Result<(String, u8), ScenarioError> {
    poc_handle(s).ok_or_else(|| {
        err(
            line,
            field,
            format!("{s:?} is not a POC handle (like CL.primary, CL.alternate, CL.fa-primary)"),
        )
    })
}

fn check_text(
    line: Option<usize>,
    field: &str,
    s: &str,
    min: usize,
    max: usize,
    lines: bool,
) -> Result<String, ScenarioError> {
    text("text", s, min, max, lines).map_err(|e| {
        let reason = match e {
            crate::signed::FormatError::Field { reason, .. } => reason,
            e => e.to_string(),
        };
        err(line, field, reason)
    })?;
    Ok(s.to_string())
}

fn duration(line: Option<usize>, field: &str, s: &str) -> Result<u64, ScenarioError> {
    parse_drill_duration(s).map_err(|r| err(line, field, r))
}

fn incident_id(line: Option<usize>, field: &str, s: &str) -> Result<String, ScenarioError> {
    if s.is_empty() || s.len() > pocnet_crypto::envelope::MAX_INCIDENT_ID || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(
            line,
            field,
            "must be 1..=64 bytes of printable ASCII without spaces",
        ));
    }
    Ok(s.to_string())
}

fn cap_word<T: Copy>(
    line: Option<usize>,
    field: &str,
    s: Option<&String>,
    default: T,
    parse: fn(&str) -> Option<T>,
) -> Result<T, ScenarioError> {
    match s {
        None => Ok(default),
        Some(s) => parse(s).ok_or_else(|| err(line, field, format!("{s:?} is not a CAP value here"))),
    }
}

fn cap_list<T: Copy + PartialEq>(
    line: Option<usize>,
    field: &str,
    s: Option<&Vec<String>>,
    default: Vec<T>,
    parse: fn(&str) -> Option<T>,
) -> Result<Vec<T>, ScenarioError> {
    let Some(list) = s else { return Ok(default) };
    let mut out = Vec::new();
    for w in list {
        let v = parse(w).ok_or_else(|| err(line, field, format!("{w:?} is not a CAP value here")))?;
        if out.contains(&v) {
            return Err(err(line, field, format!("names {w:?} twice")));
        }
        out.push(v);
    }
    Ok(out)
}

fn profile_choice(line: Option<usize>, field: &str, s: &str) -> Result<ProfileChoice, ScenarioError> {
    ProfileChoice::parse(s).ok_or_else(|| {
        err(
            line,
            field,
            format!(
                "{s:?} is not a profile (prompt, slow, silent, offline, other-language, \
                 other-language:es|fr|pt, after-reminder; humans are listed in [participants])"
            ),
        )
    })
}

impl Scenario {
    /// Parses and checks a scenario file (see the module docs and PROTOCOL.md §15.1).
    pub fn parse(src: &str) -> Result<Scenario, ScenarioError> {
        if src.len() > MAX_SCENARIO_LEN {
            return Err(err(
                None,
                "file",
                format!("is {} bytes; the limit is {MAX_SCENARIO_LEN}", src.len()),
            ));
        }
        let raw: RawScenario = toml::from_str(src).map_err(|e| {
            err(
                e.span().map(|s| line_of(src, s.start)),
                "TOML",
                e.message().trim().to_string(),
            )
        })?;
        let name = check_text(Some(1), "name", &raw.name, 1, MAX_SCENARIO_NAME, false)?;
        let description = check_text(None, "description", &raw.description, 0, MAX_SCENARIO_DESCRIPTION, true)?;
        if raw.clock_rate == 0 || raw.clock_rate > MAX_CLOCK_RATE {
            return Err(err(
                None,
                "clock_rate",
                format!(
                    "is {}; it must be 1..={MAX_CLOCK_RATE} drill seconds per second",
                    raw.clock_rate
                ),
            ));
        }
        let window_ms = duration(None, "window", &raw.window)?;
        check_window(None, "window", window_ms, raw.clock_rate)?;
        if raw.repeats > crate::alert::MAX_REPEATS {
            return Err(err(
                None,
                "repeats",
                format!("at most {} are allowed", crate::alert::MAX_REPEATS),
            ));
        }

        // [participants]
        let pline = Some(line_of(src, raw.participants.span().start));
        let rp = raw.participants.into_inner();
        let states = match (rp.all, rp.states) {
            (Some(true), None) => StateSelection::All,
            (None | Some(false), Some(list)) => {
                if list.is_empty() {
                    return Err(err(pline, "participants.states", "is empty"));
                }
                let mut set = BTreeSet::new();
                for s in &list {
                    let s = state_code(pline, "participants.states", s)?;
                    if !set.insert(s.clone()) {
                        return Err(err(pline, "participants.states", format!("lists {s} twice")));
                    }
                }
                StateSelection::States(set.into_iter().collect())
            }
            (Some(true), Some(_)) => {
                return Err(err(
                    pline,
                    "participants",
                    "give either `states` or `all = true`, not both",
                ))
            }
            _ => return Err(err(pline, "participants", "give `states = [...]` or `all = true`")),
        };
        let ranks = rp.ranks.unwrap_or_else(|| vec!["primary".into(), "alternate".into()]);
        if ranks.is_empty() {
            return Err(err(pline, "participants.ranks", "is empty"));
        }
        let mut seen = HashSet::new();
        for r in &ranks {
            if poc_handle(&format!("CL.{r}")).is_none() {
                return Err(err(
                    pline,
                    "participants.ranks",
                    format!("{r:?} is not a rank (primary, alternate, further1..9, fa-primary…)"),
                ));
            }
            if !seen.insert(r.as_str()) {
                return Err(err(pline, "participants.ranks", format!("lists {r:?} twice")));
            }
        }
        let mut humans = Vec::new();
        for h in &rp.humans {
            let (state, _) = poc_handle_checked(pline, "participants.humans", h)?;
            if let StateSelection::States(list) = &states {
                if !list.contains(&state) {
                    return Err(err(
                        pline,
                        "participants.humans",
                        format!("{h} is of {state}, which is not a participating state"),
                    ));
                }
            }
            if humans.contains(h) {
                return Err(err(pline, "participants.humans", format!("lists {h} twice")));
            }
            humans.push(h.clone());
        }
        let participants = ParticipantRules { states, ranks, humans };
        let in_states = |s: &str| match &participants.states {
            StateSelection::All => true,
            StateSelection::States(l) => l.iter().any(|x| x == s),
        };

        // [profiles]
        let (prof_line, rprof) = match raw.profiles {
            Some(p) => (Some(line_of(src, p.span().start)), p.into_inner()),
            None => (None, RawProfiles::default()),
        };
        let default = match &rprof.default {
            Some(s) => profile_choice(prof_line, "profiles.default", s)?,
            None => ProfileChoice::Is(Profile::Prompt),
        };
        let mut pstates = BTreeMap::new();
        for (s, p) in &rprof.states {
            let s = state_code(prof_line, "profiles.states", s)?;
            if !in_states(&s) {
                return Err(err(
                    prof_line,
                    "profiles.states",
                    format!("{s} is not a participating state"),
                ));
            }
            pstates.insert(s, profile_choice(prof_line, "profiles.states", p)?);
        }
        let mut phandles = BTreeMap::new();
        for (h, p) in &rprof.handles {
            let (state, _) = poc_handle_checked(prof_line, "profiles.handles", h)?;
            if !in_states(&state) {
                return Err(err(
                    prof_line,
                    "profiles.handles",
                    format!("{h} is not of a participating state"),
                ));
            }
            if participants.humans.contains(h) {
                return Err(err(
                    prof_line,
                    "profiles.handles",
                    format!("{h} is a human participant"),
                ));
            }
            phandles.insert(h.clone(), profile_choice(prof_line, "profiles.handles", p)?);
        }
        let mut mix = Vec::new();
        for m in rprof.mix {
            let line = line_of(src, m.span().start);
            let m = m.into_inner();
            if !(0.0..=1.0).contains(&m.share) {
                return Err(err(Some(line), "profiles.mix share", "must be 0.0..=1.0"));
            }
            if let Some(r) = &m.rank {
                if !participants.ranks.contains(r) {
                    return Err(err(
                        Some(line),
                        "profiles.mix rank",
                        format!("{r:?} is not one of the participating ranks"),
                    ));
                }
            }
            let mut states = Vec::new();
            for s in m.states.iter().flatten() {
                let s = state_code(Some(line), "profiles.mix states", s)?;
                if !in_states(&s) {
                    return Err(err(
                        Some(line),
                        "profiles.mix states",
                        format!("{s} is not a participating state"),
                    ));
                }
                states.push(s);
            }
            mix.push(Mix {
                share: m.share,
                rank: m.rank,
                states,
                profile: profile_choice(Some(line), "profiles.mix profile", &m.profile)?,
                line,
            });
        }
        let profiles = ProfileRules {
            default,
            states: pstates,
            handles: phandles,
            mix,
        };

        // [[inject]]
        if raw.inject.is_empty() {
            return Err(err(None, "inject", "a scenario needs at least one [[inject]]"));
        }
        if raw.inject.len() > MAX_INJECTS {
            return Err(err(None, "inject", format!("at most {MAX_INJECTS} are allowed")));
        }
        let mut ctx = InjectCtx {
            participants: &participants,
            window_ms,
            repeats: raw.repeats,
            clock_rate: raw.clock_rate,
            alert_ids: HashMap::new(),
            offline_at: HashMap::new(),
            injects: Vec::new(),
        };
        let mut prev_at = 0;
        for (i, ri) in raw.inject.into_iter().enumerate() {
            let line = line_of(src, ri.span().start);
            let ri = ri.into_inner();
            let inject = ctx.inject(i + 1, line, &ri)?;
            if inject.at_ms < prev_at {
                return Err(err(
                    Some(line),
                    format!("inject {} at", i + 1),
                    format!(
                        "{} comes before the previous inject ({}): injects must be in time order",
                        ri.at,
                        fmt_drill_time(prev_at)
                    ),
                ));
            }
            prev_at = inject.at_ms;
            ctx.injects.push(inject);
        }
        let injects = ctx.injects;
        let natural = natural_end(&injects, participants.ranks.len() as u64);
        let duration_ms = match &raw.duration {
            Some(d) => {
                let d = duration(None, "duration", d)?;
                if d < prev_at {
                    return Err(err(
                        None,
                        "duration",
                        format!(
                            "ends at {} before the last inject ({})",
                            fmt_drill_time(d),
                            fmt_drill_time(prev_at)
                        ),
                    ));
                }
                d
            }
            None => natural,
        };
        Ok(Scenario {
            name,
            description,
            clock_rate: raw.clock_rate,
            window_ms,
            repeats: raw.repeats,
            seed: raw.seed,
            duration_ms,
            participants,
            profiles,
            injects,
        })
    }

    /// A wall-clock duration as drill time: `real_ms × clock_rate`.
    pub fn to_drill_ms(&self, real_ms: u64) -> u64 {
        real_ms.saturating_mul(self.clock_rate as u64)
    }

    /// A drill-time duration as wall-clock time: `drill_ms / clock_rate`, rounded down.
    pub fn to_real_ms(&self, drill_ms: u64) -> u64 {
        drill_ms / self.clock_rate as u64
    }

    /// The seed of one participant's simulated delays: the scenario's seed mixed with its
    /// handle (pass it to [`super::react`]).
    pub fn seed_for(&self, handle: &str) -> u64 {
        mix_bytes(self.seed, handle.as_bytes())
    }

    /// Resolves the participants against the directory and gives each its profile (humans
    /// → [`Profile::Human`]; then per-handle overrides, the mixes in order, per-state
    /// overrides, the default). Sorted by state, rank, handle.
    ///
    /// A mix of share `s` over the `n` non-human participants matching its rank and states
    /// takes `round(s × n)` (halves up) of those not yet given a profile by a handle
    /// override or an earlier mix, in the order of `splitmix64(seed ^ hash(handle))`.
    ///
    /// Refused: a malformed or duplicate directory entry, a listed state with no POC at the
    /// participating ranks, a human, handle override, sender or target not in the roster, an
    /// alert or message sender whose profile is `offline`.
    pub fn roster(&self, directory: &[RosterEntry]) -> Result<Vec<Participant>, ScenarioError> {
        let mut keys = HashSet::new();
        let mut handles = HashSet::new();
        for e in directory {
            match poc_handle(&e.handle) {
                Some((s, r)) if s == e.state && r == e.rank => {}
                _ => {
                    return Err(err(
                        None,
                        "directory",
                        format!("entry {:?} does not agree with its state and rank", e.handle),
                    ))
                }
            }
            if !keys.insert(e.key) || !handles.insert(e.handle.as_str()) {
                return Err(err(None, "directory", format!("{} is listed twice", e.handle)));
            }
        }
        let in_states = |s: &str| match &self.participants.states {
            StateSelection::All => true,
            StateSelection::States(l) => l.iter().any(|x| x == s),
        };
        let mut chosen: Vec<&RosterEntry> = directory
            .iter()
            .filter(|e| {
                in_states(&e.state)
                    && (self.participants.ranks.iter().any(|r| r == suffix(&e.handle))
                        || self.participants.humans.contains(&e.handle))
            })
            .collect();
        if let StateSelection::States(list) = &self.participants.states {
            for s in list {
                if !chosen.iter().any(|e| &e.state == s) {
                    return Err(err(
                        None,
                        "participants.states",
                        format!(
                            "{s} has no POC listed at the participating ranks ({})",
                            self.participants.ranks.join(", ")
                        ),
                    ));
                }
            }
        }
        for h in &self.participants.humans {
            if !chosen.iter().any(|e| &e.handle == h) {
                return Err(err(None, "participants.humans", format!("{h} is not in the directory")));
            }
        }
        for h in self.profiles.handles.keys() {
            if !chosen.iter().any(|e| &e.handle == h) {
                return Err(err(None, "profiles.handles", format!("{h} is not a participant")));
            }
        }
        chosen.sort_by(|a, b| (&a.state, a.rank, &a.handle).cmp(&(&b.state, b.rank, &b.handle)));

        let mut assigned: HashMap<&str, Profile> = HashMap::new();
        for e in &chosen {
            if self.participants.humans.contains(&e.handle) {
                assigned.insert(&e.handle, Profile::Human);
            } else if let Some(c) = self.profiles.handles.get(&e.handle) {
                assigned.insert(&e.handle, c.resolve(&e.state));
            }
        }
        for m in &self.profiles.mix {
            let matching: Vec<&&RosterEntry> = chosen
                .iter()
                .filter(|e| !self.participants.humans.contains(&e.handle))
                .filter(|e| m.rank.as_deref().is_none_or(|r| r == suffix(&e.handle)))
                .filter(|e| m.states.is_empty() || m.states.contains(&e.state))
                .collect();
            let want = (m.share * matching.len() as f64 + 1e-9).round() as usize;
            let mut free: Vec<(u64, &str, &str)> = matching
                .iter()
                .filter(|e| !assigned.contains_key(e.handle.as_str()))
                .map(|e| {
                    (
                        splitmix64(self.seed ^ mix_bytes(0, e.handle.as_bytes())),
                        e.handle.as_str(),
                        e.state.as_str(),
                    )
                })
                .collect();
            free.sort();
            for (_, h, s) in free.into_iter().take(want) {
                assigned.insert(h, m.profile.resolve(s));
            }
        }
        let out: Vec<Participant> = chosen
            .iter()
            .map(|e| Participant {
                handle: e.handle.clone(),
                state: e.state.clone(),
                rank: e.rank,
                key: e.key,
                profile: assigned.get(e.handle.as_str()).copied().unwrap_or_else(|| {
                    self.profiles
                        .states
                        .get(&e.state)
                        .unwrap_or(&self.profiles.default)
                        .resolve(&e.state)
                }),
                stale: false,
                rotated_to: Vec::new(),
            })
            .collect();

        let find = |h: &str| out.iter().find(|p| p.handle == h);
        for (i, inj) in self.injects.iter().enumerate() {
            let (who, sends) = match &inj.kind {
                InjectKind::Alert(a) => (a.from.as_str(), true),
                InjectKind::Message(m) => (m.from.as_str(), true),
                InjectKind::Offline { target } | InjectKind::Rotate { target } => (target.as_str(), false),
                InjectKind::Update(_) | InjectKind::AllClear(_) | InjectKind::Question(_) | InjectKind::Round(_) => {
                    continue
                }
            };
            let field = format!("inject {} ({})", i + 1, inj.kind.word());
            match find(who) {
                None => return Err(err(Some(inj.line), field, format!("{who} is not a participant"))),
                Some(p) if sends && p.profile == Profile::Offline => {
                    return Err(err(
                        Some(inj.line),
                        field,
                        format!("{who} sends, but its profile is offline"),
                    ))
                }
                Some(_) => {}
            }
            if let InjectKind::Message(m) = &inj.kind {
                for t in &m.to {
                    match t {
                        MessageTarget::Handle(h) if find(h).is_none() => {
                            return Err(err(Some(inj.line), field, format!("{h} is not a participant")))
                        }
                        MessageTarget::State(s) if !out.iter().any(|p| &p.state == s) => {
                            return Err(err(Some(inj.line), field, format!("{s} has no participant")))
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(out)
    }

    fn inject_at(&self, inject: usize) -> Result<&Inject, ScenarioError> {
        self.injects
            .get(inject)
            .ok_or_else(|| err(None, "inject", format!("there is no inject {}", inject + 1)))
    }

    fn alert_of(&self, inject: usize) -> Result<&AlertInject, ScenarioError> {
        match &self.inject_at(inject)?.kind {
            InjectKind::Alert(a) => Ok(a),
            InjectKind::Update(f) | InjectKind::AllClear(f) => self.alert_of(f.of),
            k => Err(err(
                None,
                "inject",
                format!("inject {} is a {}, not an alert", inject + 1, k.word()),
            )),
        }
    }

    /// The states an `alert` inject (or the alert an `update` / `all-clear` follows) goes
    /// to, sorted: `*` is every participating state except the sender's.
    pub fn alert_states(&self, inject: usize, participants: &[Participant]) -> Result<Vec<String>, ScenarioError> {
        let a = self.alert_of(inject)?;
        let own = poc_handle(&a.from).map(|(s, _)| s).unwrap_or_default();
        let mut v: Vec<String> = match &a.to {
            AlertTargets::AllOthers => participants
                .iter()
                .map(|p| p.state.clone())
                .filter(|s| s != &own)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            AlertTargets::States(l) => l.clone(),
        };
        v.sort();
        v.dedup();
        Ok(v)
    }

    /// The escalation window of an alert inject in wall-clock ms (what its plan and body
    /// carry).
    pub fn real_window_ms(&self, inject: usize) -> Result<u64, ScenarioError> {
        Ok(self.to_real_ms(self.alert_of(inject)?.window_ms))
    }

    /// Who receives an inject's envelope(s): for an alert (and its follow-ups) every
    /// participant of the alerted states, all ranks; for a message its resolved recipients
    /// minus the sender; for a round every participant; nobody for offline and rotate.
    pub fn recipients<'p>(
        &self,
        inject: usize,
        participants: &'p [Participant],
    ) -> Result<Vec<&'p Participant>, ScenarioError> {
        let inj = self.inject_at(inject)?;
        Ok(match &inj.kind {
            InjectKind::Alert(_) | InjectKind::Update(_) | InjectKind::AllClear(_) => {
                let states = self.alert_states(inject, participants)?;
                participants.iter().filter(|p| states.contains(&p.state)).collect()
            }
            InjectKind::Message(m) => participants
                .iter()
                .filter(|p| p.handle != m.from)
                .filter(|p| {
                    m.to.iter().any(|t| match t {
                        MessageTarget::All => true,
                        MessageTarget::State(s) => &p.state == s,
                        MessageTarget::Handle(h) => &p.handle == h,
                    })
                })
                .collect(),
            InjectKind::Question(_) | InjectKind::Round(_) => participants.iter().collect(),
            InjectKind::Offline { .. } | InjectKind::Rotate { .. } => Vec::new(),
        })
    }

    /// The envelope header fields of an alert, update, all-clear or message inject:
    /// **always `exercise: true`**, the inject's TLP and incident, X-Wing.
    pub fn header_fields(&self, inject: usize, created_at_ms: u64) -> Result<HeaderFields, ScenarioError> {
        let inj = self.inject_at(inject)?;
        let (content_type, tlp, incident) = match &inj.kind {
            InjectKind::Message(m) => (ContentType::Message, m.tlp, m.incident.clone()),
            k if k.is_alert() => {
                let a = self.alert_of(inject)?;
                (ContentType::Alert, a.tlp, a.incident.clone())
            }
            k => {
                return Err(err(
                    None,
                    "inject",
                    format!(
                        "inject {} is a {}: it sends no envelope of its own",
                        inject + 1,
                        k.word()
                    ),
                ))
            }
        };
        Ok(HeaderFields {
            suite: Suite::XWing,
            content_type,
            tlp,
            exercise: true,
            incident_id: incident,
            log_head: None,
            created_at_ms,
        })
    }

    /// The alert body of an alert, update or all-clear inject. `sender_handle` is the
    /// sender's handle now; `of_alert` the message id of the alert an update or all-clear
    /// follows (ignored for an alert).
    pub fn alert_body(
        &self,
        inject: usize,
        participants: &[Participant],
        sent_ms: u64,
        of_alert: Option<[u8; 16]>,
    ) -> Result<AlertBody, ScenarioError> {
        let inj = self.inject_at(inject)?;
        let a = self.alert_of(inject)?;
        let targets = self.alert_states(inject, participants)?;
        let refs = || {
            of_alert.map(|id| vec![id]).ok_or_else(|| {
                err(
                    None,
                    "inject",
                    "an update or all-clear needs the id of the alert it follows",
                )
            })
        };
        let body = match &inj.kind {
            InjectKind::Alert(a) => AlertBody {
                version: ALERT_VERSION,
                msg_type: MsgType::Alert,
                references: vec![],
                headline: a.headline.clone(),
                description: a.description.clone(),
                instruction: a.instruction.clone(),
                category: a.category.clone(),
                severity: a.severity,
                urgency: a.urgency,
                certainty: a.certainty,
                response_type: a.response_type.clone(),
                ack_within_ms: self.to_real_ms(a.window_ms),
                repeats: a.repeats,
                targets,
                sent_ms,
                sender_handle: a.from.clone(),
            },
            InjectKind::Update(f) | InjectKind::AllClear(f) => {
                let clear = matches!(inj.kind, InjectKind::AllClear(_));
                AlertBody {
                    version: ALERT_VERSION,
                    msg_type: MsgType::Update,
                    references: refs()?,
                    headline: f.headline.clone(),
                    description: f.description.clone(),
                    instruction: f.instruction.clone(),
                    category: a.category.clone(),
                    severity: f.severity,
                    urgency: f.urgency,
                    certainty: f.certainty,
                    response_type: if clear {
                        vec![ResponseType::AllClear]
                    } else {
                        a.response_type.clone()
                    },
                    ack_within_ms: 0,
                    repeats: 0,
                    targets,
                    sent_ms,
                    sender_handle: a.from.clone(),
                }
            }
            _ => unreachable!("alert_of accepted it"),
        };
        body.check()
            .map_err(|e| err(Some(inj.line), format!("inject {}", inject + 1), e.to_string()))?;
        Ok(body)
    }

    /// The plan of an alert, update or all-clear inject for the envelope `alert_id` /
    /// `envelope_hash`. An alert's states list each alerted state's participants by rank
    /// number (lowest first; one plan rank per distinct rank number), each with its current
    /// key ([`Participant::current_key`]). An update is `FollowUp { of, stop: false }`, an
    /// all-clear `stop: true`.
    pub fn plan(
        &self,
        inject: usize,
        participants: &[Participant],
        alert_id: [u8; 16],
        envelope_hash: [u8; 32],
        of_alert: Option<[u8; 16]>,
    ) -> Result<Plan, ScenarioError> {
        let inj = self.inject_at(inject)?;
        let plan = match &inj.kind {
            InjectKind::Alert(a) => {
                let mut states = Vec::new();
                for s in self.alert_states(inject, participants)? {
                    let mut by_rank: BTreeMap<u8, Vec<[u8; 32]>> = BTreeMap::new();
                    for p in participants.iter().filter(|p| p.state == s) {
                        by_rank.entry(p.rank).or_default().push(p.current_key());
                    }
                    states.push(StatePlan {
                        state: s,
                        ranks: by_rank.into_values().collect(),
                    });
                }
                Plan::escalate(alert_id, envelope_hash, self.to_real_ms(a.window_ms), a.repeats, states)
            }
            InjectKind::Update(_) | InjectKind::AllClear(_) => {
                let of = of_alert.ok_or_else(|| {
                    err(
                        None,
                        "inject",
                        "an update or all-clear needs the id of the alert it follows",
                    )
                })?;
                Plan::follow_up(alert_id, envelope_hash, of, matches!(inj.kind, InjectKind::AllClear(_)))
            }
            k => {
                return Err(err(
                    None,
                    "inject",
                    format!("inject {} is a {}, not an alert", inject + 1, k.word()),
                ))
            }
        };
        plan.check()
            .map_err(|e| err(Some(inj.line), format!("inject {}", inject + 1), e.to_string()))?;
        Ok(plan)
    }

    /// The challenge of a question or round inject sent at real time `sent_ms`: deadline and
    /// reminders converted to real time from `sent_ms`.
    pub fn challenge(
        &self,
        inject: usize,
        round_id: [u8; 16],
        origin: &str,
        sent_ms: u64,
        directory_size: u64,
    ) -> Result<Challenge, ScenarioError> {
        let inj = self.inject_at(inject)?;
        let (r, request) = match &inj.kind {
            InjectKind::Question(r) => (r, Request::Question(r.question.clone().unwrap_or_default())),
            InjectKind::Round(r) => (r, Request::ConfirmDetails),
            k => {
                return Err(err(
                    None,
                    "inject",
                    format!("inject {} is a {}, not a round", inject + 1, k.word()),
                ))
            }
        };
        let c = Challenge::new(
            round_id,
            origin,
            sent_ms,
            sent_ms + self.to_real_ms(r.deadline_ms),
            request,
            r.reminders_ms.iter().map(|m| sent_ms + self.to_real_ms(*m)).collect(),
            directory_size,
        );
        c.check()
            .map_err(|e| err(Some(inj.line), format!("inject {}", inject + 1), e.to_string()))?;
        Ok(c)
    }

    /// Whether `handle` was taken offline by an `offline` inject at or before drill time
    /// `drill_ms`.
    pub fn offline_by_inject(&self, handle: &str, drill_ms: u64) -> bool {
        self.injects
            .iter()
            .any(|i| i.at_ms <= drill_ms && matches!(&i.kind, InjectKind::Offline { target } if target == handle))
    }

    /// Indices of the injects that send alert envelopes (alert, update, all-clear), in
    /// order: the drill record's k-th alert is the k-th of these.
    pub fn alert_injects(&self) -> Vec<usize> {
        (0..self.injects.len())
            .filter(|&i| self.injects[i].kind.is_alert())
            .collect()
    }

    /// Indices of the message injects, in order.
    pub fn message_injects(&self) -> Vec<usize> {
        (0..self.injects.len())
            .filter(|&i| matches!(self.injects[i].kind, InjectKind::Message(_)))
            .collect()
    }

    /// Indices of the question and round injects, in order.
    pub fn round_injects(&self) -> Vec<usize> {
        (0..self.injects.len())
            .filter(|&i| self.injects[i].kind.is_round())
            .collect()
    }
}

fn check_window(line: Option<usize>, field: &str, window_ms: u64, clock_rate: u32) -> Result<(), ScenarioError> {
    let real = window_ms / clock_rate as u64;
    if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&real) {
        return Err(err(
            line,
            field,
            format!(
                "is {} of drill time, {real} ms of wall-clock time at clock rate {clock_rate}; \
                 an escalation window must be 1 s ..= 7 days of wall-clock time",
                fmt_drill_time(window_ms)
            ),
        ));
    }
    Ok(())
}

/// The end of the last thing the injects set going: an alert's last repeat
/// (`at + (ranks + repeats) × window`), a round's deadline, or the inject itself.
fn natural_end(injects: &[Inject], ranks: u64) -> u64 {
    injects
        .iter()
        .map(|i| match &i.kind {
            InjectKind::Alert(a) => i.at_ms + (ranks + a.repeats as u64) * a.window_ms,
            InjectKind::Question(r) | InjectKind::Round(r) => i.at_ms + r.deadline_ms,
            _ => i.at_ms,
        })
        .max()
        .unwrap_or(0)
}

struct InjectCtx<'a> {
    participants: &'a ParticipantRules,
    window_ms: u64,
    repeats: u8,
    clock_rate: u32,
    /// Alert id → inject index.
    alert_ids: HashMap<String, usize>,
    /// Handle → drill time it went offline.
    offline_at: HashMap<String, u64>,
    injects: Vec<Inject>,
}

impl InjectCtx<'_> {
    fn in_states(&self, s: &str) -> bool {
        match &self.participants.states {
            StateSelection::All => true,
            StateSelection::States(l) => l.iter().any(|x| x == s),
        }
    }

    /// A participant handle that the runner drives (participating state and rank, not a
    /// human).
    fn simulated(&self, line: usize, field: &str, h: &str) -> Result<String, ScenarioError> {
        let (state, _) = poc_handle_checked(Some(line), field, h)?;
        if !self.in_states(&state) || !self.participants.ranks.iter().any(|r| r == suffix(h)) {
            return Err(err(
                Some(line),
                field,
                format!("{h} is not a participant (its state or rank does not take part)"),
            ));
        }
        if self.participants.humans.iter().any(|x| x == h) {
            return Err(err(
                Some(line),
                field,
                format!("{h} is a human participant; the runner cannot act for it"),
            ));
        }
        Ok(h.to_string())
    }

    fn inject(&mut self, n: usize, line: usize, r: &RawInject) -> Result<Inject, ScenarioError> {
        let l = Some(line);
        let at_ms = duration(l, &format!("inject {n} at"), &r.at)?;
        let allowed: &[&str] = match r.kind.as_str() {
            "alert" => &[
                "id",
                "from",
                "to",
                "headline",
                "description",
                "instruction",
                "severity",
                "urgency",
                "certainty",
                "category",
                "response_type",
                "tlp",
                "incident",
                "window",
                "repeats",
            ],
            "update" => &[
                "of",
                "headline",
                "description",
                "instruction",
                "severity",
                "urgency",
                "certainty",
            ],
            "all-clear" => &["of", "headline", "description", "instruction"],
            "message" => &["from", "to", "subject", "text", "tlp", "incident"],
            "question" => &["text", "deadline", "reminders"],
            "round" => &["deadline", "reminders"],
            "offline" | "rotate" => &["target"],
            k => {
                return Err(err(
                    l,
                    format!("inject {n} kind"),
                    format!(
                    "{k:?} is not an inject kind (alert, update, all-clear, message, question, round, offline, rotate)"
                ),
                ))
            }
        };
        let kind_word = r.kind.as_str();
        let f = |name: &str| format!("inject {n} ({kind_word}) {name}");
        for p in r.present() {
            if !allowed.contains(&p) {
                return Err(err(l, f(p), format!("does not belong in a {kind_word} inject")));
            }
        }
        let need = |v: &Option<String>, name: &str| -> Result<String, ScenarioError> {
            v.clone().ok_or_else(|| err(l, f(name), "is required"))
        };
        let opt_text = |v: &Option<String>, name: &str, max: usize, lines: bool| -> Result<String, ScenarioError> {
            check_text(l, &f(name), v.as_deref().unwrap_or(""), 0, max, lines)
        };
        let kind = match kind_word {
            "alert" => {
                let from = self.simulated(line, &f("from"), &need(&r.from, "from")?)?;
                self.not_offline(line, &f("from"), &from, at_ms)?;
                let own = poc_handle(&from).map(|(s, _)| s).unwrap_or_default();
                let to_list = r.to.clone().ok_or_else(|| err(l, f("to"), "is required"))?;
                let to = if to_list == ["*"] {
                    AlertTargets::AllOthers
                } else {
                    let mut v = Vec::new();
                    for s in &to_list {
                        let s = state_code(l, &f("to"), s)?;
                        if !self.in_states(&s) {
                            return Err(err(l, f("to"), format!("{s} is not a participating state")));
                        }
                        if s == own {
                            return Err(err(l, f("to"), format!("{s} is the sender's own state")));
                        }
                        if v.contains(&s) {
                            return Err(err(l, f("to"), format!("lists {s} twice")));
                        }
                        v.push(s);
                    }
                    if v.is_empty() {
                        return Err(err(l, f("to"), "is empty"));
                    }
                    AlertTargets::States(v)
                };
                if let Some(id) = &r.id {
                    check_text(l, &f("id"), id, 1, 64, false)?;
                    if self.alert_ids.insert(id.clone(), self.injects.len()).is_some() {
                        return Err(err(l, f("id"), format!("{id:?} names another alert already")));
                    }
                }
                let window_ms = match &r.window {
                    Some(w) => {
                        let w = duration(l, &f("window"), w)?;
                        check_window(l, &f("window"), w, self.clock_rate)?;
                        w
                    }
                    None => self.window_ms,
                };
                let repeats = r.repeats.unwrap_or(self.repeats);
                if repeats > crate::alert::MAX_REPEATS {
                    return Err(err(l, f("repeats"), "at most 9 are allowed"));
                }
                InjectKind::Alert(AlertInject {
                    id: r.id.clone(),
                    from,
                    to,
                    headline: check_text(
                        l,
                        &f("headline"),
                        &need(&r.headline, "headline")?,
                        1,
                        MAX_HEADLINE,
                        false,
                    )?,
                    description: check_text(
                        l,
                        &f("description"),
                        &need(&r.description, "description")?,
                        1,
                        MAX_DESCRIPTION,
                        true,
                    )?,
                    instruction: opt_text(&r.instruction, "instruction", MAX_INSTRUCTION, true)?,
                    severity: cap_word(
                        l,
                        &f("severity"),
                        r.severity.as_ref(),
                        Severity::Severe,
                        Severity::parse_cli,
                    )?,
                    urgency: cap_word(
                        l,
                        &f("urgency"),
                        r.urgency.as_ref(),
                        Urgency::Immediate,
                        Urgency::parse_cli,
                    )?,
                    certainty: cap_word(
                        l,
                        &f("certainty"),
                        r.certainty.as_ref(),
                        Certainty::Observed,
                        Certainty::parse_cli,
                    )?,
                    category: cap_list(
                        l,
                        &f("category"),
                        r.category.as_ref(),
                        vec![Category::Infra],
                        Category::parse_cli,
                    )?,
                    response_type: cap_list(
                        l,
                        &f("response_type"),
                        r.response_type.as_ref(),
                        vec![ResponseType::Assess],
                        |s| ResponseType::parse_cli(s).filter(|v| *v != ResponseType::AllClear),
                    )?,
                    tlp: tlp(l, &f("tlp"), r.tlp.as_deref())?,
                    incident: r
                        .incident
                        .as_deref()
                        .map(|s| incident_id(l, &f("incident"), s))
                        .transpose()?,
                    window_ms,
                    repeats,
                })
            }
            "update" | "all-clear" => {
                let of = match &r.of {
                    Some(id) => *self
                        .alert_ids
                        .get(id)
                        .ok_or_else(|| err(l, f("of"), format!("no earlier alert has id {id:?}")))?,
                    None => (0..self.injects.len())
                        .rev()
                        .find(|&i| matches!(self.injects[i].kind, InjectKind::Alert(_)))
                        .ok_or_else(|| err(l, f("of"), "there is no earlier alert to follow up"))?,
                };
                let InjectKind::Alert(a) = &self.injects[of].kind else {
                    unreachable!("alert ids name alerts")
                };
                self.not_offline(line, &f("of"), &a.from.clone(), at_ms)?;
                let clear = kind_word == "all-clear";
                let follow = FollowUpInject {
                    of,
                    headline: check_text(
                        l,
                        &f("headline"),
                        &need(&r.headline, "headline")?,
                        1,
                        MAX_HEADLINE,
                        false,
                    )?,
                    description: opt_text(&r.description, "description", MAX_DESCRIPTION, true)?,
                    instruction: opt_text(&r.instruction, "instruction", MAX_INSTRUCTION, true)?,
                    severity: cap_word(
                        l,
                        &f("severity"),
                        r.severity.as_ref(),
                        if clear { Severity::Minor } else { a.severity },
                        Severity::parse_cli,
                    )?,
                    urgency: cap_word(
                        l,
                        &f("urgency"),
                        r.urgency.as_ref(),
                        if clear { Urgency::Past } else { a.urgency },
                        Urgency::parse_cli,
                    )?,
                    certainty: cap_word(
                        l,
                        &f("certainty"),
                        r.certainty.as_ref(),
                        a.certainty,
                        Certainty::parse_cli,
                    )?,
                };
                if clear {
                    InjectKind::AllClear(follow)
                } else {
                    InjectKind::Update(follow)
                }
            }
            "message" => {
                let from = self.simulated(line, &f("from"), &need(&r.from, "from")?)?;
                self.not_offline(line, &f("from"), &from, at_ms)?;
                let to_list = r.to.clone().ok_or_else(|| err(l, f("to"), "is required"))?;
                if to_list.is_empty() {
                    return Err(err(l, f("to"), "is empty"));
                }
                let mut to = Vec::new();
                for t in &to_list {
                    let target = if t == "*" {
                        MessageTarget::All
                    } else if t.len() == 2 {
                        let s = state_code(l, &f("to"), t)?;
                        if !self.in_states(&s) {
                            return Err(err(l, f("to"), format!("{s} is not a participating state")));
                        }
                        MessageTarget::State(s)
                    } else {
                        let (s, _) = poc_handle_checked(l, &f("to"), t)?;
                        if !self.in_states(&s) {
                            return Err(err(l, f("to"), format!("{t} is not of a participating state")));
                        }
                        if t == &from {
                            return Err(err(l, f("to"), "names the sender"));
                        }
                        MessageTarget::Handle(t.clone())
                    };
                    if to.contains(&target) {
                        return Err(err(l, f("to"), format!("names {t} twice")));
                    }
                    to.push(target);
                }
                InjectKind::Message(MessageInject {
                    from,
                    to,
                    subject: check_text(l, &f("subject"), &need(&r.subject, "subject")?, 1, MAX_SUBJECT, false)?,
                    text: check_text(l, &f("text"), &need(&r.text, "text")?, 1, MAX_MESSAGE_TEXT, true)?,
                    tlp: tlp(l, &f("tlp"), r.tlp.as_deref())?,
                    incident: r
                        .incident
                        .as_deref()
                        .map(|s| incident_id(l, &f("incident"), s))
                        .transpose()?,
                })
            }
            "question" | "round" => {
                let deadline_ms = duration(l, &f("deadline"), &need(&r.deadline, "deadline")?)?;
                if self.to_real(deadline_ms) == 0 {
                    return Err(err(
                        l,
                        f("deadline"),
                        "is under a wall-clock millisecond at this clock rate",
                    ));
                }
                let mut reminders_ms = Vec::new();
                for rm in r.reminders.iter().flatten() {
                    let t = duration(l, &f("reminders"), rm)?;
                    let prev = reminders_ms.last().copied().unwrap_or(0);
                    if t <= prev || t >= deadline_ms {
                        return Err(err(
                            l,
                            f("reminders"),
                            "must be increasing, after the inject and before the deadline",
                        ));
                    }
                    if self.to_real(t) <= self.to_real(prev) || self.to_real(t) >= self.to_real(deadline_ms) {
                        return Err(err(
                            l,
                            f("reminders"),
                            "fall together in wall-clock time at this clock rate",
                        ));
                    }
                    reminders_ms.push(t);
                }
                if reminders_ms.len() > crate::round::format::MAX_REMINDERS {
                    return Err(err(l, f("reminders"), "at most 16 are allowed"));
                }
                let question = if kind_word == "question" {
                    Some(check_text(
                        l,
                        &f("text"),
                        &need(&r.text, "text")?,
                        1,
                        MAX_QUESTION,
                        true,
                    )?)
                } else {
                    None
                };
                let ri = RoundInject {
                    question,
                    deadline_ms,
                    reminders_ms,
                };
                if kind_word == "question" {
                    InjectKind::Question(ri)
                } else {
                    InjectKind::Round(ri)
                }
            }
            "offline" | "rotate" => {
                let target = self.simulated(line, &f("target"), &need(&r.target, "target")?)?;
                if kind_word == "offline" {
                    if self.offline_at.insert(target.clone(), at_ms).is_some() {
                        return Err(err(l, f("target"), format!("{target} is already offline")));
                    }
                    InjectKind::Offline { target }
                } else {
                    InjectKind::Rotate { target }
                }
            }
            _ => unreachable!("kinds checked above"),
        };
        Ok(Inject { at_ms, line, kind })
    }

    fn to_real(&self, drill_ms: u64) -> u64 {
        drill_ms / self.clock_rate as u64
    }

    fn not_offline(&self, line: usize, field: &str, h: &str, at_ms: u64) -> Result<(), ScenarioError> {
        match self.offline_at.get(h) {
            Some(&t) if t <= at_ms => Err(err(
                Some(line),
                field,
                format!("{h} went offline at {} and cannot send", fmt_drill_time(t)),
            )),
            _ => Ok(()),
        }
    }
}

fn tlp(line: Option<usize>, field: &str, s: Option<&str>) -> Result<Tlp, ScenarioError> {
    match s {
        None => Ok(Tlp::Amber),
        Some(s) => Tlp::parse(s).ok_or_else(|| {
            err(
                line,
                field,
                format!("{s:?} is not a TLP 2.0 marking (clear, green, amber, amber+strict, red)"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drill_durations() {
        assert_eq!(parse_drill_duration("0m"), Ok(0));
        assert_eq!(parse_drill_duration("90s"), Ok(90_000));
        assert_eq!(parse_drill_duration("5m"), Ok(300_000));
        assert_eq!(parse_drill_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_drill_duration("1h0m5s"), Ok(3_605_000));
        for bad in ["", "5", "m", "5x", "1m1h", "1h1h", " 5m", "5m ", "-5m", "1.5h", "721h"] {
            assert!(parse_drill_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(fmt_drill_time(5_400_000), "1h30m");
        assert_eq!(fmt_drill_time(0), "0m");
        assert_eq!(fmt_drill_time(3_605_000), "1h5s");
    }
}
