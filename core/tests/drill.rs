//! Drills through the public API: the scenario format (shipped scenarios, strictness, the
//! seeded profile mixes), the simulated POCs' decisions, a scripted drill in simulated time
//! with real signatures (a directory log built with `Publisher`, envelopes sealed EXERCISE,
//! plans signed, a relay signing acceptances, receipts signed at chosen times, a question
//! round built with `BundleBuilder`) whose report has exact figures, tampering caught and
//! named, and the renderers' escaping. No sleeps: every time is chosen.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::{contact, SeededRng, NOW, ORIGIN, YEAR};
use pocnet_core::alert::{Lang, MsgType, Plan};
use pocnet_core::directory::{vkey, Author, Category, Publisher, Rank};
use pocnet_core::drill::scenario::rank_number;
use pocnet_core::drill::{
    builtin, canned_answer, parse_drill_duration, question_number, react, verify_drill, AfterAction, DrillBundle,
    DrillBundleBuilder, DrillError, DrillEventKind, Participant, Profile, Reaction, Reason, RosterEntry, Scenario,
    StateOutcome, Stimulus, BUILTIN,
};
use pocnet_core::round::{Acceptance, Answer, AnswerRecord, BundleBuilder, Target, TargetRecord};
use pocnet_crypto::{Identity, PublicIdentity, Receipt, ReceiptKind};
use pocnet_wire::accept::sign_group;
use sha2::{Digest, Sha256};

const DAY: u64 = 86_400_000;
/// The drill starts 400 days after the tests' base time.
const S: u64 = common::T0 + 400 * DAY;
/// The escalation window in real ms: 15 drill minutes at clock rate 60.
const W: u64 = 15_000;
/// The alert's acceptance.
const A: u64 = S + 1_000;
/// The question round's start (2 drill minutes).
const R0: u64 = S + 2_000;
/// The message's acceptance.
const M: u64 = S + 3_000;
/// The update's and the all-clear's acceptance (35 and 40 drill minutes).
const U: u64 = S + 35_000;
const C: u64 = S + 40_000;
/// The drill's end (45 drill minutes).
const END: u64 = S + 45_000;
const MIN: u64 = 60_000;

// ------------------------------------------------------------------------------------
// Scenario format.

#[test]
fn shipped_scenarios_parse_with_their_promised_shape() {
    for name in BUILTIN {
        Scenario::parse(builtin(name).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(builtin("nope").is_none());

    let airport = Scenario::parse(builtin("airport").unwrap()).unwrap();
    assert_eq!(airport.clock_rate, 60);
    assert_eq!(airport.window_ms, 15 * MIN);
    assert_eq!(airport.repeats, 1);
    assert!(airport.duration_ms <= 90 * MIN);
    let pocnet_core::drill::StateSelection::States(states) = &airport.participants.states else {
        panic!("airport lists its states")
    };
    let oas = [
        "AG", "AR", "BS", "BB", "BZ", "BO", "BR", "CA", "CL", "CO", "CR", "CU", "DM", "DO", "EC", "SV", "GD", "GT",
        "GY", "HT", "HN", "JM", "MX", "NI", "PA", "PY", "PE", "KN", "LC", "VC", "SR", "TT", "US", "UY", "VE",
    ];
    let mut oas_sorted: Vec<String> = oas.iter().map(|s| s.to_string()).collect();
    oas_sorted.sort();
    assert_eq!(states, &oas_sorted, "the 35 OAS member states");
    // The four seed questions, in order, each with a 30-minute deadline.
    let questions: Vec<(Option<u8>, u64)> = airport
        .injects
        .iter()
        .filter_map(|i| match &i.kind {
            pocnet_core::drill::InjectKind::Question(r) => {
                Some((question_number(r.question.as_deref().unwrap()), r.deadline_ms))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        questions,
        [
            (Some(1), 30 * MIN),
            (Some(2), 30 * MIN),
            (Some(3), 30 * MIN),
            (Some(4), 30 * MIN)
        ]
    );
    let kinds: Vec<&str> = airport.injects.iter().map(|i| i.kind.word()).collect();
    assert_eq!(
        kinds,
        [
            "alert",
            "question",
            "question",
            "question",
            "question",
            "update",
            "all-clear"
        ]
    );
    assert_eq!(airport.to_real_ms(airport.window_ms), 15_000);
    assert_eq!(airport.to_drill_ms(1_000), MIN);
}

/// A directory entry list of `states` with a primary and an alternate each.
fn roster_of(states: &[&str]) -> Vec<RosterEntry> {
    let mut v = Vec::new();
    for (i, s) in states.iter().enumerate() {
        for (r, rank) in [(0u8, "primary"), (1, "alternate")] {
            let mut key = [0u8; 32];
            key[0] = i as u8;
            key[1] = r;
            v.push(RosterEntry {
                handle: format!("{s}.{rank}"),
                state: s.to_string(),
                rank: r,
                key,
            });
        }
    }
    v
}

#[test]
fn airport_roster_resolves_the_mixes_exactly_and_deterministically() {
    let sc = Scenario::parse(builtin("airport").unwrap()).unwrap();
    let pocnet_core::drill::StateSelection::States(states) = &sc.participants.states else {
        unreachable!()
    };
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    let mut dir = roster_of(&states);
    // A further rank and another state are not selected.
    dir.push(RosterEntry {
        handle: "CL.further1".into(),
        state: "CL".into(),
        rank: 2,
        key: [0xf1; 32],
    });
    dir.push(RosterEntry {
        handle: "FR.primary".into(),
        state: "FR".into(),
        rank: 0,
        key: [0xf2; 32],
    });
    let ps = sc.roster(&dir).unwrap();
    assert_eq!(ps.len(), 70);
    assert_eq!(sc.roster(&dir).unwrap(), ps, "deterministic");
    let count = |rank: u8, p: Profile| ps.iter().filter(|x| x.rank == rank && x.profile == p).count();
    // Shares of the 35 primaries: 0.2 → 7 offline, 0.1 → 4 silent (3.5 rounds up), 0.1 → 4
    // after-reminder, 0.1 → 4 slow; of the 35 alternates 0.15 → 5 slow.
    assert_eq!(count(0, Profile::Offline), 7);
    assert_eq!(count(0, Profile::Silent), 4);
    assert_eq!(count(0, Profile::AfterReminder), 4);
    assert_eq!(count(0, Profile::Slow), 4);
    assert_eq!(count(1, Profile::Slow), 5);
    assert!(ps.iter().filter(|p| p.rank == 0 && !p.profile.is_live()).count() * 100 / 35 >= 30);
    // The sender is never drawn; every alternate is live.
    assert_eq!(
        ps.iter().find(|p| p.handle == "PA.primary").unwrap().profile,
        Profile::Prompt
    );
    assert!(ps.iter().filter(|p| p.rank == 1).all(|p| p.profile.is_live()));
    // Per-state languages where the mix left the POC alone.
    let br = ps.iter().find(|p| p.handle == "BR.alternate").unwrap();
    assert!(matches!(br.profile, Profile::OtherLanguage(Lang::Pt) | Profile::Slow));
    // The alert goes to the 34 other states, all ranks; the plan's window is real time.
    let alert = sc.alert_injects()[0];
    assert_eq!(sc.alert_states(alert, &ps).unwrap().len(), 34);
    assert_eq!(sc.recipients(alert, &ps).unwrap().len(), 68);
    let plan = sc.plan(alert, &ps, [1; 16], [2; 32], None).unwrap();
    assert_eq!(plan.states().len(), 34);
    assert!(plan.states().iter().all(|s| s.ranks.len() == 2));
    assert!(sc.header_fields(alert, S).unwrap().exercise);

    // Another seed draws other POCs (the mix is not fixed by the file order).
    let other = Scenario::parse(&builtin("airport").unwrap().replace("seed = 20210727", "seed = 1")).unwrap();
    let ps2 = other.roster(&dir).unwrap();
    let offline = |v: &[Participant]| -> Vec<String> {
        v.iter()
            .filter(|p| p.profile == Profile::Offline)
            .map(|p| p.handle.clone())
            .collect()
    };
    assert_eq!(offline(&ps2).len(), 7);
    assert_ne!(offline(&ps2), offline(&ps));

    // `all = true` takes every state of the directory; shares of the 6 POCs: silent 0.1 → 1,
    // offline 0.05 → 0, after-reminder 0.15 → 1, slow 0.2 → 1; the other 3 prompt.
    let cc = Scenario::parse(builtin("contact-check").unwrap()).unwrap();
    let ps = cc.roster(&roster_of(&["CL", "MX", "PE"])).unwrap();
    assert_eq!(ps.len(), 6);
    let n = |p: Profile| ps.iter().filter(|x| x.profile == p).count();
    assert_eq!(
        [
            n(Profile::Silent),
            n(Profile::Offline),
            n(Profile::AfterReminder),
            n(Profile::Slow),
            n(Profile::Prompt)
        ],
        [1, 0, 1, 1, 3]
    );
    let round = cc.challenge(0, [1; 16], ORIGIN, S, 10).unwrap();
    assert_eq!(round.deadline_ms, S + 60_000, "2 drill hours at clock rate 120");
    assert_eq!(round.reminders_ms, [S + 30_000, S + 50_000]);
}

fn refused(src: &str) -> String {
    match Scenario::parse(src) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e.to_string(),
    }
}

const MINI: &str = r#"name = "Mini"
clock_rate = 60
window = "15m"

[participants]
states = ["CL", "AR"]

[[inject]]
at = "0m"
kind = "alert"
from = "CL.primary"
to = ["*"]
headline = "H"
description = "D"

[[inject]]
at = "5m"
kind = "question"
text = "How would your agency respond?"
deadline = "30m"
"#;

#[test]
fn scenario_errors_name_the_line_and_field() {
    let s = Scenario::parse(MINI).unwrap();
    assert_eq!(s.injects.len(), 2);
    assert_eq!(s.injects[1].line, 16);

    // Unknown key at the top, in a table, and in an inject.
    let e = refused(&MINI.replace("clock_rate = 60", "clock_rate = 60\ncolour = \"red\""));
    assert!(e.contains("colour") && e.contains("line 3"), "{e}");
    let e = refused(&MINI.replace("states = [\"CL\", \"AR\"]", "states = [\"CL\", \"AR\"]\nvip = true"));
    assert!(e.contains("vip"), "{e}");
    let e = refused(&MINI.replace("deadline = \"30m\"", "deadline = \"30m\"\nheadline = \"x\""));
    assert!(
        e.contains("line 16") && e.contains("headline") && e.contains("does not belong"),
        "{e}"
    );

    // Bad state, bad handle, bad time, unsorted injects.
    let e = refused(&MINI.replace("\"CL\", \"AR\"", "\"CL\", \"XX\""));
    assert!(e.contains("\"XX\"") && e.contains("ISO 3166"), "{e}");
    let e = refused(&MINI.replace("from = \"CL.primary\"", "from = \"CL.boss\""));
    assert!(
        e.contains("line 8") && e.contains("from") && e.contains("CL.boss"),
        "{e}"
    );
    let e = refused(&MINI.replace("at = \"5m\"", "at = \"5 minutes\""));
    assert!(e.contains("line 16") && e.contains("not a drill time"), "{e}");
    let e = refused(&MINI.replace("at = \"0m\"", "at = \"10m\""));
    assert!(e.contains("line 16") && e.contains("time order"), "{e}");
    // A sender from a state that does not take part; a human sender; an empty headline; a
    // control character; a window too short for the clock.
    let e = refused(&MINI.replace("from = \"CL.primary\"", "from = \"PE.primary\""));
    assert!(e.contains("not a participant"), "{e}");
    let e = refused(&MINI.replace(
        "states = [\"CL\", \"AR\"]",
        "states = [\"CL\", \"AR\"]\nhumans = [\"CL.primary\"]",
    ));
    assert!(e.contains("human"), "{e}");
    let e = refused(&MINI.replace("headline = \"H\"", "headline = \"\""));
    assert!(e.contains("headline") && e.contains("empty"), "{e}");
    let e = refused(&MINI.replace("description = \"D\"", "description = \"D\\u0007\""));
    assert!(e.contains("description") && e.contains("control"), "{e}");
    let e = refused(&MINI.replace("clock_rate = 60", "clock_rate = 3600"));
    assert!(e.contains("window"), "{e}");
    let e = refused(&MINI.replace("kind = \"question\"", "kind = \"quiz\""));
    assert!(e.contains("quiz"), "{e}");
    let e = refused(&MINI.replace("to = [\"*\"]", "to = [\"CL\"]"));
    assert!(e.contains("sender's own state"), "{e}");
    assert!(refused(&"x".repeat(300_000)).contains("limit"));
}

#[test]
fn drill_time_parser() {
    assert_eq!(parse_drill_duration("1h30m"), Ok(90 * MIN));
    assert_eq!(parse_drill_duration("0m"), Ok(0));
    assert!(parse_drill_duration("30m1h").is_err());
    assert!(parse_drill_duration("1d").is_err());
}

// ------------------------------------------------------------------------------------
// Simulated POCs.

fn alert(repeat: u8) -> Stimulus {
    Stimulus::Alert {
        alert: [7; 16],
        repeat,
        msg_type: MsgType::Alert,
    }
}

fn question(reminder: Option<u8>) -> Stimulus {
    Stimulus::Question {
        round: [3; 16],
        question: "Do you have formal plans for a response?".into(),
        reminder,
    }
}

#[test]
fn each_profile_reacts_as_documented_and_deterministically() {
    let delays = |p: Profile, s: &Stimulus| -> Vec<Option<u64>> {
        (0..40u64)
            .map(|seed| react(&p, "AR", s, seed).map(|(d, _)| d))
            .collect()
    };
    let within = |v: &[Option<u64>], lo: u64, hi: u64| v.iter().all(|d| d.is_some_and(|d| (lo..=hi).contains(&d)));
    let spread = |v: &[Option<u64>]| v.iter().collect::<std::collections::BTreeSet<_>>().len();

    for p in [Profile::Prompt, Profile::OtherLanguage(Lang::Fr)] {
        let d = delays(p, &alert(0));
        assert!(within(&d, MIN, 3 * MIN), "{p}: {d:?}");
        assert!(spread(&d) > 10, "{p} varies with the seed");
    }
    let d = delays(Profile::Slow, &alert(0));
    assert!(within(&d, 8 * MIN, 12 * MIN), "{d:?}");
    assert!(spread(&d) > 10);
    for p in [Profile::Silent, Profile::Offline, Profile::Human] {
        for s in [
            alert(0),
            alert(2),
            question(None),
            question(Some(1)),
            Stimulus::Message { id: [1; 16] },
        ] {
            assert_eq!(react(&p, "AR", &s, 5), None, "{p}");
        }
    }
    // After-reminder: nothing on the first release or the challenge; 1–2 minutes after a
    // repeat or a reminder.
    assert!(delays(Profile::AfterReminder, &alert(0)).iter().all(Option::is_none));
    assert!(delays(Profile::AfterReminder, &question(None))
        .iter()
        .all(Option::is_none));
    assert!(within(&delays(Profile::AfterReminder, &alert(1)), MIN, 2 * MIN));
    assert!(within(
        &delays(Profile::AfterReminder, &question(Some(1))),
        MIN,
        2 * MIN
    ));

    // Deterministic in every input.
    assert_eq!(
        react(&Profile::Prompt, "AR", &alert(0), 9),
        react(&Profile::Prompt, "AR", &alert(0), 9)
    );
    let by_state: Vec<_> = ["AR", "BR", "CL", "PE", "UY", "MX"]
        .iter()
        .map(|s| react(&Profile::Prompt, s, &alert(0), 9).unwrap().0)
        .collect();
    assert!(by_state.iter().collect::<std::collections::BTreeSet<_>>().len() > 1);

    // What they do: an alert is acknowledged (note in the POC's language), an update read,
    // an Ack ignored, a question answered in the POC's language, a confirm round confirmed.
    match react(&Profile::OtherLanguage(Lang::Es), "AR", &alert(0), 1) {
        Some((_, Reaction::Ack { alert, note: Some(n) })) => {
            assert_eq!(alert, [7; 16]);
            assert!(n.contains("Recibido"), "{n}");
        }
        r => panic!("{r:?}"),
    }
    let update = Stimulus::Alert {
        alert: [8; 16],
        repeat: 0,
        msg_type: MsgType::Update,
    };
    assert!(matches!(react(&Profile::Prompt, "AR", &update, 1), Some((_, Reaction::Read { id })) if id == [8; 16]));
    let ack = Stimulus::Alert {
        alert: [8; 16],
        repeat: 0,
        msg_type: MsgType::Ack,
    };
    assert_eq!(react(&Profile::Prompt, "AR", &ack, 1), None);
    for (p, lang, word) in [
        (Profile::Prompt, Lang::En, "national cyber incident response plan"),
        (Profile::OtherLanguage(Lang::Es), Lang::Es, "plan nacional"),
        (Profile::OtherLanguage(Lang::Fr), Lang::Fr, "plan national"),
        (Profile::OtherLanguage(Lang::Pt), Lang::Pt, "plano nacional"),
    ] {
        match react(&p, "AR", &question(None), 2) {
            Some((_, Reaction::Answer { round, text })) => {
                assert_eq!(round, [3; 16]);
                assert_eq!(text, canned_answer("Do you have formal plans for a response?", lang));
                assert!(text.contains(word), "{p}: {text}");
            }
            r => panic!("{r:?}"),
        }
    }
    let confirm = Stimulus::Confirm {
        round: [4; 16],
        reminder: None,
    };
    assert!(
        matches!(react(&Profile::Slow, "AR", &confirm, 2), Some((d, Reaction::Confirm { round })) if round == [4; 16] && d >= 8 * MIN)
    );

    // The four seed questions as the airport scenario words them, and an unknown one.
    let airport = Scenario::parse(builtin("airport").unwrap()).unwrap();
    let numbers: Vec<Option<u8>> = airport
        .round_injects()
        .iter()
        .map(|&i| match &airport.injects[i].kind {
            pocnet_core::drill::InjectKind::Question(r) => question_number(r.question.as_deref().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(numbers, [Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(question_number("What is the weather like?"), None);
    let answers: std::collections::BTreeSet<&str> = (1..=4)
        .map(|n| canned_answer(["", "respond", "formal plan", "notify", "regional"][n], Lang::En))
        .collect();
    assert_eq!(answers.len(), 4, "one answer per question");
}

// ------------------------------------------------------------------------------------
// A scripted drill.

const SCRIPT: &str = r#"name = "Scripted drill"
description = "A drill with exact figures."
clock_rate = 60
window = "15m"
repeats = 1
seed = 42
duration = "45m"

[participants]
states = ["AR", "BR", "CL", "CO", "PE", "UY"]
ranks = ["primary", "alternate"]
humans = ["UY.alternate"]

[profiles]
default = "prompt"

[profiles.states]
BR = "other-language:pt"

[profiles.handles]
"CO.primary" = "offline"
"CO.alternate" = "after-reminder"
"PE.primary" = "silent"
"UY.primary" = "silent"

[[inject]]
at = "0m"
kind = "offline"
target = "BR.primary"

[[inject]]
at = "0m"
kind = "alert"
id = "a"
from = "CL.primary"
to = ["*"]
headline = "Ransomware at a regional airport"
description = "ATC support systems are down."
incident = "DRILL-1"

[[inject]]
at = "2m"
kind = "question"
text = "How would your agency respond to such an incident?"
deadline = "30m"
reminders = ["15m"]

[[inject]]
at = "3m"
kind = "message"
from = "CL.primary"
to = ["*"]
subject = "Indicators"
text = "Fictional indicators."

[[inject]]
at = "35m"
kind = "update"
of = "a"
headline = "Systems partly restored"

[[inject]]
at = "38m"
kind = "rotate"
target = "AR.alternate"

[[inject]]
at = "40m"
kind = "all-clear"
of = "a"
headline = "All clear"
"#;

const HUMAN_ANSWER: &str = "Nous activons notre plan national et prévenons le CSIRT avec les autorités de l'aviation.";
const LATE_ANSWER: &str = "We coordinate with the national CSIRT and the foreign ministry.";

fn ident(label: &str) -> Identity {
    Identity::generate(&mut SeededRng::new(label), NOW, 3 * YEAR).unwrap()
}

struct World {
    sec: Identity,
    sender: Identity,
    scenario: Scenario,
    vkey: String,
    bytes: Vec<u8>,
    pocs: BTreeMap<String, Identity>,
    /// The alert's envelope (sealed EXERCISE) and the relay.
    relay: Identity,
}

fn h32(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn receipt(poc: &Identity, kind: ReceiptKind, id: [u8; 16], hash: [u8; 32], sender: &Identity, at: u64) -> Vec<u8> {
    Receipt::sign(poc, kind, id, hash, sender.public_key(), at)
        .as_bytes()
        .to_vec()
}

/// Seals and signs inject `inject` as the runner would: returns (envelope, plan, id, hash).
#[allow(clippy::too_many_arguments)]
fn send_alert(
    sc: &Scenario,
    inject: usize,
    ps: &[Participant],
    publics: &BTreeMap<[u8; 32], PublicIdentity>,
    sender: &Identity,
    at: u64,
    of: Option<[u8; 16]>,
    exercise: bool,
) -> (Vec<u8>, Vec<u8>, [u8; 16], [u8; 32]) {
    let body = sc.alert_body(inject, ps, at, of).unwrap().encode().unwrap();
    let recipients: Vec<PublicIdentity> = sc
        .recipients(inject, ps)
        .unwrap()
        .iter()
        .map(|p| publics[&p.current_key()].clone())
        .collect();
    let mut fields = sc.header_fields(inject, at).unwrap();
    assert!(fields.exercise, "the scenario always marks EXERCISE");
    fields.exercise = exercise;
    let sealed = pocnet_crypto::seal(
        &mut SeededRng::new(&format!("seal {inject} {exercise}")),
        sender,
        &recipients,
        &fields,
        &body,
    )
    .unwrap();
    let plan = sc
        .plan(inject, ps, sealed.message_id, sealed.envelope_hash, of)
        .unwrap()
        .sign(sender)
        .unwrap()
        .into_bytes();
    (sealed.bytes, plan, sealed.message_id, sealed.envelope_hash)
}

fn world() -> &'static World {
    static W0: OnceLock<World> = OnceLock::new();
    W0.get_or_init(build_world)
}

fn build_world() -> World {
    let sc = Scenario::parse(SCRIPT).unwrap();
    let sec = ident("drill secretariat");
    let relay = ident("drill relay");
    let handles = [
        "AR.primary",
        "AR.alternate",
        "BR.primary",
        "BR.alternate",
        "CL.primary",
        "CL.alternate",
        "CO.primary",
        "CO.alternate",
        "PE.primary",
        "UY.primary",
        "UY.alternate",
        "AR.further1",
        "MX.primary",
    ];
    let mut pocs: BTreeMap<String, Identity> = handles.iter().map(|h| (h.to_string(), ident(h))).collect();
    let auths: BTreeMap<&str, Identity> = ["AR", "BR", "CL", "CO", "PE", "UY", "MX"]
        .iter()
        .map(|s| (*s, ident(&format!("authority {s}"))))
        .collect();
    let t0 = common::T0;
    let mut log = Publisher::genesis(&sec, ORIGIN, t0, vec![], 0).unwrap();
    let secr = Author::new(&sec, ORIGIN);
    for (i, (s, a)) in auths.iter().enumerate() {
        log.push(
            &secr
                .authority_enrol(t0 + i as u64, s, a.public_key(), "Authority", "MFA")
                .unwrap(),
        )
        .unwrap();
    }
    let enrol = |log: &mut Publisher, h: &str, poc: &Identity, t: u64| {
        let (state, rank) = h.split_once('.').unwrap();
        let rank = match rank {
            "primary" => Rank::Primary,
            "alternate" => Rank::Alternate,
            _ => Rank::Further(1),
        };
        let n = Author::new(&auths[state], ORIGIN)
            .nominate(
                t,
                state,
                Category::CyberPolicy,
                rank,
                contact("Ana Pérez"),
                &poc.public(),
            )
            .unwrap();
        log.push(&Author::new(&sec, ORIGIN).approve(t + 1, &n, &poc.public(), t).unwrap())
            .unwrap();
    };
    // PE.primary was enrolled 399 days before the drill and never confirmed since: stale.
    enrol(&mut log, "PE.primary", &pocs["PE.primary"], t0 + DAY);
    for (i, h) in handles.iter().filter(|h| **h != "PE.primary").enumerate() {
        enrol(&mut log, h, &pocs[*h], t0 + 390 * DAY + 10 * i as u64);
    }
    let round_checkpoint = log.checkpoint(&sec).to_text();
    let round_size = log.leaves().len() as u64;
    let dir = log.directory();
    let entries: Vec<RosterEntry> = dir.members().into_iter().map(RosterEntry::from_poc).collect();
    assert_eq!(
        entries[0].rank,
        rank_number(Rank::Alternate),
        "AR.alternate sorts first"
    );
    let ps = sc.roster(&entries).unwrap();
    assert_eq!(ps.len(), 11);
    let mut publics: BTreeMap<[u8; 32], PublicIdentity> = pocs
        .values()
        .map(|i| (*i.public_key().as_bytes(), i.public()))
        .collect();
    let sender = ident("CL.primary"); // the same identity: labels fix every key
    let p = |h: &str| &pocs[h];

    let mut b = DrillBundleBuilder::new(SCRIPT, relay.public_key(), S, ps.clone()).unwrap();
    b.event_kind(S, DrillEventKind::Inject, "BR.primary goes offline")
        .unwrap();

    // The alert, accepted at A; receipts at chosen times.
    let (env, plan, id, hash) = send_alert(&sc, 1, &ps, &publics, &sender, A - 100, None, true);
    let proof = sign_group(&relay, &[(hash, A)]).remove(0);
    assert_eq!(b.add_alert(env, plan, A, proof).unwrap(), id);
    let rc = |h: &str, k: ReceiptKind, at: u64| receipt(p(h), k, id, hash, &sender, at);
    for r in [
        rc("AR.primary", ReceiptKind::Delivered, A + 500),
        rc("AR.primary", ReceiptKind::Acknowledged, A + 2_000),
        rc("BR.alternate", ReceiptKind::Delivered, A + W + 200),
        rc("BR.alternate", ReceiptKind::Acknowledged, A + W + 1_000),
        rc("CO.alternate", ReceiptKind::Delivered, A + W + 100),
        rc("CO.alternate", ReceiptKind::Acknowledged, A + 2 * W + 1_500),
        rc("UY.primary", ReceiptKind::Delivered, A + 300),
        rc("UY.alternate", ReceiptKind::Delivered, A + W + 50),
        rc("UY.alternate", ReceiptKind::Read, A + 17_000),
        rc("UY.alternate", ReceiptKind::Acknowledged, A + 20_000),
        // A later duplicate Delivered receipt: the builder keeps the earlier one.
        rc("UY.primary", ReceiptKind::Delivered, A + 9_000),
    ] {
        b.add_receipt(id, r).unwrap();
    }

    // The question round: challenges accepted at R0 by the relay, four answers.
    let challenge = sc.challenge(2, [0x51; 16], ORIGIN, R0, round_size).unwrap();
    let mut rb = BundleBuilder::new(&challenge, &round_checkpoint, relay.public_key()).unwrap();
    let c_items: Vec<([u8; 32], u64)> = ps
        .iter()
        .map(|x| (h32(&format!("challenge {}", x.handle)), R0))
        .collect();
    let c_proofs = sign_group(&relay, &c_items);
    let answers: BTreeMap<&str, (u64, String)> = [
        (
            "AR.primary",
            (R0 + 2_000, canned_answer(sc_question(&sc), Lang::En).to_string()),
        ),
        (
            "BR.alternate",
            (R0 + 3_000, canned_answer(sc_question(&sc), Lang::Pt).to_string()),
        ),
        ("UY.alternate", (R0 + 10_000, HUMAN_ANSWER.to_string())),
        ("CL.primary", (R0 + 31_000, LATE_ANSWER.to_string())),
    ]
    .into_iter()
    .collect();
    let a_items: Vec<([u8; 32], u64)> = answers
        .iter()
        .map(|(h, (t, _))| (h32(&format!("answer {h}")), *t))
        .collect();
    let a_proofs: BTreeMap<[u8; 32], _> = a_items.iter().map(|x| x.0).zip(sign_group(&relay, &a_items)).collect();
    for (i, x) in ps.iter().enumerate() {
        let mut cid = [0xc0; 16];
        cid[0] = i as u8;
        let (category, rank) = (
            Category::CyberPolicy,
            if x.rank == 0 { Rank::Primary } else { Rank::Alternate },
        );
        let mut r = TargetRecord::new(
            Target {
                handle: x.handle.clone(),
                name: "Ana Pérez".into(),
                key: x.key,
                state: x.state.clone(),
                category,
                rank,
                stale: x.handle == "PE.primary",
            },
            cid,
            c_items[i].0,
            Acceptance {
                stored_at_ms: R0,
                proof: c_proofs[i].clone(),
            },
        );
        if x.handle == "CO.alternate" {
            r.reminders_released = 1;
        }
        if let Some((t, text)) = answers.get(x.handle.as_str()) {
            let eh = h32(&format!("answer {}", x.handle));
            r.answer = Some(AnswerRecord {
                signed: Answer::new(challenge.round_id, cid, false, None, text, *t)
                    .sign(p(&x.handle))
                    .unwrap()
                    .into_bytes(),
                envelope_hash: eh,
                accepted: Acceptance {
                    stored_at_ms: *t,
                    proof: a_proofs[&eh].clone(),
                },
            });
        }
        rb.push(r).unwrap();
    }
    b.add_round(rb.finish(&sec, R0 + 40_000).unwrap().encode().unwrap())
        .unwrap();

    // The message, read by two.
    let recipients: Vec<PublicIdentity> = sc
        .recipients(3, &ps)
        .unwrap()
        .iter()
        .map(|x| publics[&x.key].clone())
        .collect();
    assert_eq!(recipients.len(), 10);
    let sealed = pocnet_crypto::seal(
        &mut SeededRng::new("message"),
        &sender,
        &recipients,
        &sc.header_fields(3, M - 100).unwrap(),
        b"Fictional indicators.",
    )
    .unwrap();
    let mproof = sign_group(&relay, &[(sealed.envelope_hash, M)]).remove(0);
    let mid = b.add_message(sealed.bytes, M, mproof).unwrap();
    for (h, k, t) in [
        ("AR.primary", ReceiptKind::Delivered, M + 100),
        ("AR.primary", ReceiptKind::Read, M + 500),
        ("UY.alternate", ReceiptKind::Delivered, M + 200),
        ("UY.alternate", ReceiptKind::Read, M + 800),
    ] {
        b.add_receipt(mid, receipt(p(h), k, mid, sealed.envelope_hash, &sender, t))
            .unwrap();
    }

    // Paused for five wall-clock seconds (five drill minutes) at 20 minutes.
    b.event_kind(S + 20_000, DrillEventKind::Pause, "paused by the controller")
        .unwrap();
    b.event_kind(S + 25_000, DrillEventKind::Resume, "resumed").unwrap();

    // The update, read by AR.primary.
    let (env, plan, uid, uhash) = send_alert(&sc, 4, &ps, &publics, &sender, U - 100, Some(id), true);
    let uproof = sign_group(&relay, &[(uhash, U)]).remove(0);
    b.add_alert(env, plan, U, uproof).unwrap();
    b.add_receipt(
        uid,
        receipt(p("AR.primary"), ReceiptKind::Read, uid, uhash, &sender, U + 1_000),
    )
    .unwrap();

    // AR.alternate lost its key: revoked by its authority, a new key nominated and approved.
    let new_key = ident("AR.alternate new");
    log.push(
        &Author::new(&auths["AR"], ORIGIN)
            .revoke(S + 38_000, pocs["AR.alternate"].public_key(), "key lost")
            .unwrap(),
    )
    .unwrap();
    enrol(&mut log, "AR.alternate", &new_key, S + 38_100);
    b.event_kind(
        S + 38_200,
        DrillEventKind::Rotate,
        "AR.alternate lost its key; new key published",
    )
    .unwrap();
    publics.insert(*new_key.public_key().as_bytes(), new_key.public());
    let mut ps_now = ps.clone();
    ps_now
        .iter_mut()
        .find(|x| x.handle == "AR.alternate")
        .unwrap()
        .rotated_to = vec![*new_key.public_key().as_bytes()];

    // The all-clear, to the new key; read by it.
    let (env, plan, cid, chash) = send_alert(&sc, 6, &ps_now, &publics, &sender, C - 100, Some(id), true);
    let cproof = sign_group(&relay, &[(chash, C)]).remove(0);
    b.add_alert(env, plan, C, cproof).unwrap();
    b.add_receipt(cid, receipt(&new_key, ReceiptKind::Read, cid, chash, &sender, C + 500))
        .unwrap();
    pocs.insert("AR.alternate (new)".into(), new_key);

    let vk = vkey(ORIGIN, sec.public_key());
    b.directory(&vk, &log.checkpoint(&sec).to_text(), log.leaves().to_vec())
        .unwrap();
    let bytes = b.finish(&sec, END, false).unwrap();
    World {
        sec,
        sender,
        scenario: sc,
        vkey: vk,
        bytes,
        pocs,
        relay,
    }
}

fn sc_question(sc: &Scenario) -> &str {
    match &sc.injects[2].kind {
        pocnet_core::drill::InjectKind::Question(r) => r.question.as_deref().unwrap(),
        _ => unreachable!(),
    }
}

/// State, outcome, acknowledged by, time to ack (real, drill), depth, depth label.
type StateRow<'a> = (
    &'a str,
    StateOutcome,
    Option<&'a str>,
    Option<u64>,
    Option<u64>,
    u8,
    &'a str,
);
/// State, handle, language, late, time to answer (drill).
type AnswerRow<'a> = (&'a str, &'a str, Option<&'a str>, bool, Option<u64>);

fn report() -> AfterAction {
    let w = world();
    verify_drill(&w.bytes, Some(&w.vkey)).unwrap().1
}

#[test]
fn the_scripted_drill_report_has_exact_figures() {
    let w = world();
    let (bundle, r) = verify_drill(&w.bytes, Some(&w.vkey)).unwrap();
    assert!(r.verified && r.directory_pinned);
    assert_eq!(r.marking, "EXERCISE");
    assert_eq!(
        r.controller.as_deref(),
        Some(pocnet_crypto::to_hex(w.sec.public_key().as_bytes()).as_str())
    );
    assert_eq!(r.participants.total, 11);
    assert_eq!(r.participants.humans, 1);
    assert_eq!(r.participants.states, 6);
    assert_eq!(r.participants.stale, 1);
    assert_eq!(r.participants.rotated, 1);
    // The builder filled in what the log says.
    let part = |h: &str| bundle.participants.iter().find(|p| p.handle == h).unwrap();
    assert!(part("PE.primary").stale);
    assert!(!part("AR.primary").stale);
    assert_eq!(
        part("AR.alternate").rotated_to,
        vec![*w.pocs["AR.alternate (new)"].public_key().as_bytes()]
    );
    assert_eq!(part("UY.alternate").profile, Profile::Human);
    assert_eq!(part("BR.alternate").profile, Profile::OtherLanguage(Lang::Pt));
    assert_eq!(r.duration_ms, 45_000);
    // Five wall-clock seconds were paused: the drill clock shows 40 minutes, not 45.
    assert_eq!(r.duration_drill_ms, 40 * MIN);

    // The alert.
    assert_eq!(r.alerts.len(), 3);
    let a = &r.alerts[0];
    assert_eq!((a.kind, a.sender.as_str()), ("alert", "CL.primary"));
    assert_eq!(a.headline, "Ransomware at a regional airport");
    assert_eq!((a.accepted_ms, a.at_drill_ms), (A, MIN));
    assert_eq!((a.window_ms, a.window_drill_ms, a.repeats), (W, 15 * MIN, 1));
    assert_eq!((a.recipients, a.delivered, a.read, a.acknowledged), (9, 5, 1, 4));
    assert_eq!(a.stopped_ms, Some(C));
    assert_eq!((a.states_acknowledged, a.states_unreached), (4, 1));
    // Times to acknowledge 2 s, 16 s, 20 s, 31.5 s: median (16 + 20) / 2 = 18 s = 18 drill min.
    assert_eq!((a.median_ack_ms, a.median_ack_drill_ms), (Some(18_000), Some(18 * MIN)));
    let lines: Vec<StateRow> = a
        .states
        .iter()
        .map(|s| {
            (
                s.state.as_str(),
                s.outcome,
                s.acknowledged_by.as_deref(),
                s.time_to_ack_ms,
                s.time_to_ack_drill_ms,
                s.depth,
                s.depth_label.as_str(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (
                "AR",
                StateOutcome::Acknowledged,
                Some("AR.primary"),
                Some(2_000),
                Some(2 * MIN),
                0,
                "primary"
            ),
            (
                "BR",
                StateOutcome::Acknowledged,
                Some("BR.alternate"),
                Some(16_000),
                Some(16 * MIN),
                1,
                "alternate"
            ),
            (
                "CO",
                StateOutcome::Acknowledged,
                Some("CO.alternate"),
                Some(31_500),
                Some(31 * MIN + 30_000),
                2,
                "repeat 1"
            ),
            // PE has one rank: its repeat is depth 1; unreached at A + 2W, before the all-clear.
            ("PE", StateOutcome::Unreached, None, None, None, 1, "repeat 1"),
            (
                "UY",
                StateOutcome::Acknowledged,
                Some("UY.alternate"),
                Some(20_000),
                Some(20 * MIN),
                1,
                "alternate"
            ),
        ]
    );

    // Who was unreachable and why (AR.alternate was never needed: AR acknowledged first).
    let un: Vec<(&str, Vec<Reason>, u64)> = r
        .unreachable
        .iter()
        .map(|u| (u.handle.as_str(), u.reasons.clone(), u.released_drill_ms))
        .collect();
    assert_eq!(
        un,
        [
            ("BR.primary", vec![Reason::Offline], MIN),
            ("CO.primary", vec![Reason::Offline], MIN),
            (
                "PE.primary",
                vec![Reason::NeverFetched, Reason::NoAlternate, Reason::StaleRecord],
                MIN
            ),
            ("UY.primary", vec![Reason::DeliveredNotAcknowledged], MIN),
        ]
    );

    // Reachability: primaries of BR, CO, PE, UY did not acknowledge within one window; PE has
    // no alternate; of BR, CO, UY (live alternates), BR and UY made it within two windows,
    // CO (its alternate acts only after the repeat) did not.
    assert_eq!(r.reachability.len(), 1);
    let f = &r.reachability[0];
    assert_eq!(f.primary_silent, ["BR", "CO", "PE", "UY"]);
    assert_eq!(f.eligible, ["BR", "CO", "UY"]);
    assert_eq!(f.within_two_windows, ["BR", "UY"]);
    assert_eq!(f.missed, ["CO"]);
    assert_eq!(f.rate, Some(2.0 / 3.0));
    assert!(!f.target_met);

    // The follow-ups.
    let u = &r.alerts[1];
    assert_eq!((u.kind, u.recipients, u.read), ("update", 9, 1));
    assert_eq!(u.follows.as_deref(), Some(a.alert_id.as_str()));
    // Accepted at 35 s of wall-clock time; 5 s were paused: T+30 drill minutes.
    assert_eq!(u.at_drill_ms, 30 * MIN);
    let c = &r.alerts[2];
    assert_eq!((c.kind, c.recipients, c.read), ("all-clear", 9, 1));
    assert!(c.states.is_empty());

    // The round and the answers to the question.
    assert_eq!(r.rounds.len(), 1);
    let q = &r.rounds[0];
    assert_eq!(
        (q.kind, q.targets, q.answered, q.late, q.reminders_released),
        ("question", 11, 4, 1, 1)
    );
    assert_eq!(q.rate, 4.0 / 11.0);
    // Times to answer 2, 3, 10, 31 s: median 6.5 s = 6 min 30 s of drill time.
    assert_eq!((q.median_ms, q.median_drill_ms), (Some(6_500), Some(6 * MIN + 30_000)));
    assert_eq!(q.at_drill_ms, 2 * MIN);
    assert_eq!(q.states_without_answer, ["CO", "PE"]);
    assert_eq!(r.questions.len(), 1);
    let qa = &r.questions[0];
    assert_eq!(qa.number, Some(1));
    let got: Vec<AnswerRow> = qa
        .answers
        .iter()
        .map(|x| {
            (
                x.state.as_str(),
                x.handle.as_str(),
                x.language,
                x.late,
                x.time_to_answer_drill_ms,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("AR", "AR.primary", Some("en"), false, Some(2 * MIN)),
            ("BR", "BR.alternate", Some("pt"), false, Some(3 * MIN)),
            ("CL", "CL.primary", Some("en"), true, Some(31 * MIN)),
            ("UY", "UY.alternate", Some("fr"), false, Some(10 * MIN)),
        ]
    );
    assert_eq!(qa.answers[3].text, HUMAN_ANSWER);
    assert_eq!(qa.answers[1].text, canned_answer(sc_question(&w.scenario), Lang::Pt));
    assert_eq!(qa.states_without_answer, ["CO", "PE"]);

    // The message.
    assert_eq!(r.messages.len(), 1);
    let m = &r.messages[0];
    assert_eq!(
        (m.from.as_str(), m.subject.as_str(), m.recipients, m.delivered, m.read),
        ("CL.primary", "Indicators", 10, 2, 2)
    );
    assert_eq!(m.at_drill_ms, 3 * MIN);

    // The human participant.
    assert_eq!(r.humans.len(), 1);
    let hu = &r.humans[0];
    assert_eq!(hu.handle, "UY.alternate");
    assert_eq!(hu.alerts.len(), 3);
    assert_eq!(
        (
            hu.alerts[0].delivered_ms,
            hu.alerts[0].read_ms,
            hu.alerts[0].acknowledged_ms,
            hu.alerts[0].time_to_ack_drill_ms
        ),
        (Some(A + W + 50), Some(A + 17_000), Some(A + 20_000), Some(20 * MIN))
    );
    assert_eq!(hu.alerts[1].kind, "update");
    assert_eq!(hu.alerts[1].acknowledged_ms, None);
    assert_eq!(hu.rounds.len(), 1);
    assert_eq!(hu.rounds[0].answered_ms, Some(R0 + 10_000));
    assert_eq!(hu.rounds[0].text.as_deref(), Some(HUMAN_ANSWER));
    assert_eq!(hu.messages.len(), 1);
    assert_eq!(
        (hu.messages[0].delivered_ms, hu.messages[0].read_ms),
        (Some(M + 200), Some(M + 800))
    );

    // The timeline: in time order; runner events marked as such; PE's unreached moment derived.
    assert!(r.timeline.windows(2).all(|p| p[0].at_ms <= p[1].at_ms));
    let kinds = |k: &str| r.timeline.iter().filter(|e| e.kind == k).count();
    assert_eq!(kinds("ack"), 4);
    assert_eq!(kinds("answer"), 4);
    assert_eq!(
        (
            kinds("alert"),
            kinds("update"),
            kinds("all-clear"),
            kinds("message"),
            kinds("round")
        ),
        (1, 1, 1, 1, 1)
    );
    let pe = r.timeline.iter().find(|e| e.kind == "unreached").unwrap();
    assert_eq!((pe.at_ms, pe.source), (A + 2 * W, "derived"));
    assert!(pe.text.starts_with("PE unreached"));
    let runner: Vec<&str> = r
        .timeline
        .iter()
        .filter(|e| e.source == "runner")
        .map(|e| e.kind)
        .collect();
    assert_eq!(runner, ["inject", "pause", "resume", "rotate"]);
    assert!(r
        .timeline
        .iter()
        .filter(|e| e.source != "runner")
        .all(|e| e.source == "signed" || e.kind == "unreached"));

    // The runner's own computation is the verifier's, apart from what only the verifier knows.
    let mut direct = AfterAction::compute(&DrillBundle::decode_unverified(&w.bytes).unwrap()).unwrap();
    assert!(!direct.verified);
    direct.verified = true;
    direct.directory_pinned = true;
    direct.controller = r.controller.clone();
    assert_eq!(direct, r);
}

// ------------------------------------------------------------------------------------
// Tampering.

fn tampered(f: impl FnOnce(&mut DrillBundle)) -> Result<AfterAction, DrillError> {
    let w = world();
    let (mut b, _) = DrillBundle::open(&w.bytes).unwrap();
    f(&mut b);
    verify_drill(&b.sign(&w.sec).unwrap(), Some(&w.vkey)).map(|x| x.1)
}

#[test]
fn an_untouched_record_resigned_still_verifies() {
    assert_eq!(tampered(|_| {}).unwrap(), report());
}

#[test]
fn a_flipped_receipt_byte_is_caught_and_named() {
    let e = tampered(|b| b.alerts[0].receipts[1][130] ^= 1).unwrap_err();
    match &e {
        DrillError::Receipt { of, index, signer, .. } => {
            assert!(of.starts_with("alert 1 ("), "{e}");
            assert_eq!((*index, signer.as_str()), (2, "AR.primary"));
        }
        e => panic!("{e}"),
    }
    assert!(e.to_string().contains("signature does not verify"), "{e}");
    // Moving a receipt to another envelope fails too.
    let e = tampered(|b| {
        let r = b.alerts[0].receipts[0].clone();
        b.messages[0].receipts.push(r);
    })
    .unwrap_err();
    assert!(
        matches!(&e, DrillError::Receipt { of, .. } if of.starts_with("message 1")),
        "{e}"
    );
}

#[test]
fn a_removed_receipt_is_not_detectable_and_understates() {
    // Receipts are signed one by one and nobody signs the set: the controller can leave one
    // out. The record still verifies; the report shows less than happened, never more.
    let r = tampered(|b| {
        b.alerts[0].receipts.retain(|x| {
            pocnet_core::drill::receipt_fields(x)
                .is_some_and(|f| !(f.kind == ReceiptKind::Acknowledged && f.at_ms == A + 20_000))
        })
    })
    .unwrap();
    let a = &r.alerts[0];
    assert_eq!((a.acknowledged, a.states_acknowledged), (3, 3));
    let uy = a.states.iter().find(|s| s.state == "UY").unwrap();
    assert_eq!(uy.outcome, StateOutcome::Stopped);
}

#[test]
fn a_swapped_plan_is_caught() {
    let w = world();
    // The update's plan in the alert's place: not bound to the alert's envelope.
    let e = tampered(|b| b.alerts[0].plan = b.alerts[1].plan.clone()).unwrap_err();
    assert!(
        matches!(&e, DrillError::Alert { index: 1, reason, .. } if reason.contains("not bound")),
        "{e}"
    );
    // A plan for the same envelope, re-signed by the sender, with a longer window.
    let e = tampered(|b| {
        let sp = pocnet_core::alert::SignedPlan::parse(&b.alerts[0].plan, None).unwrap();
        let p = sp.plan();
        let forged = Plan::escalate(p.alert, p.envelope_hash, 2 * W, 1, p.states().to_vec());
        b.alerts[0].plan = forged.sign(&w.sender).unwrap().into_bytes();
    })
    .unwrap_err();
    assert!(
        matches!(&e, DrillError::Alert { index: 1, reason, .. } if reason.contains("window")),
        "{e}"
    );
    // The same plan signed by someone else: the envelope's signature is not theirs.
    let e = tampered(|b| {
        let sp = pocnet_core::alert::SignedPlan::parse(&b.alerts[0].plan, None).unwrap();
        b.alerts[0].plan = sp.plan().sign(&w.pocs["AR.primary"]).unwrap().into_bytes();
    })
    .unwrap_err();
    assert!(
        matches!(&e, DrillError::Alert { index: 1, reason, .. } if reason.contains("does not verify")),
        "{e}"
    );
}

#[test]
fn real_traffic_is_refused_by_the_builder_and_the_verifier() {
    let w = world();
    let (b0, _) = DrillBundle::open(&w.bytes).unwrap();
    let ps = b0.participants.clone();
    let publics: BTreeMap<[u8; 32], PublicIdentity> = w
        .pocs
        .values()
        .map(|i| (*i.public_key().as_bytes(), i.public()))
        .collect();
    // The same alert re-sealed as real traffic, with its own plan and a genuine relay proof.
    let (env, plan, _, hash) = send_alert(&w.scenario, 1, &ps, &publics, &w.sender, A - 100, None, false);
    let proof = sign_group(&w.relay, &[(hash, A)]).remove(0);
    let mut builder = DrillBundleBuilder::new(SCRIPT, w.relay.public_key(), S, ps).unwrap();
    let e = builder
        .add_alert(env.clone(), plan.clone(), A, proof.clone())
        .unwrap_err();
    assert!(matches!(e, DrillError::NotExercise { .. }), "{e}");
    assert!(e.to_string().contains("cannot carry real traffic"), "{e}");

    let e = tampered(|b| {
        b.alerts[0].envelope = env;
        b.alerts[0].plan = plan;
        b.alerts[0].proof = proof;
        b.alerts[0].receipts.clear();
    })
    .unwrap_err();
    assert!(
        matches!(&e, DrillError::NotExercise { what } if what.starts_with("alert 1")),
        "{e}"
    );
}

#[test]
fn a_broken_controller_signature_is_caught() {
    let w = world();
    let mut bytes = w.bytes.clone();
    let n = bytes.len() - 1;
    bytes[n] ^= 1;
    assert!(matches!(
        verify_drill(&bytes, None),
        Err(DrillError::ControllerSignature(_))
    ));
    // A byte of the body changed without re-signing.
    let mut bytes = w.bytes.clone();
    let pos = bytes.len() / 2;
    bytes[pos] ^= 1;
    assert!(verify_drill(&bytes, None).is_err());
    // Signed by someone other than the directory's Secretariat.
    let (b, _) = DrillBundle::open(&w.bytes).unwrap();
    let e = verify_drill(&b.sign(&w.pocs["MX.primary"]).unwrap(), None).unwrap_err();
    assert!(matches!(e, DrillError::ControllerNotSecretariat { .. }), "{e}");
    // Another directory than the one expected.
    let other = vkey(ORIGIN, w.pocs["MX.primary"].public_key());
    assert!(matches!(
        verify_drill(&w.bytes, Some(&other)),
        Err(DrillError::VkeyMismatch { .. })
    ));
}

#[test]
fn participant_changes_are_caught_and_named() {
    let w = world();
    let e = tampered(|b| {
        let k = *w.pocs["MX.primary"].public_key().as_bytes();
        b.participants
            .iter_mut()
            .find(|p| p.handle == "AR.primary")
            .unwrap()
            .key = k;
    })
    .unwrap_err();
    assert!(
        matches!(&e, DrillError::Participant { handle, reason } if handle == "AR.primary" && reason.contains("never listed")),
        "{e}"
    );
    let e = tampered(|b| {
        b.participants
            .iter_mut()
            .find(|p| p.handle == "PE.primary")
            .unwrap()
            .stale = false
    })
    .unwrap_err();
    assert!(
        matches!(&e, DrillError::Participant { handle, .. } if handle == "PE.primary"),
        "{e}"
    );
    let e = tampered(|b| {
        b.participants
            .iter_mut()
            .find(|p| p.handle == "CO.primary")
            .unwrap()
            .profile = Profile::Prompt
    })
    .unwrap_err();
    assert!(
        matches!(&e, DrillError::Participant { handle, reason } if handle == "CO.primary" && reason.contains("profile")),
        "{e}"
    );
    let e = tampered(|b| b.participants.retain(|p| p.handle != "CL.alternate")).unwrap_err();
    assert!(
        matches!(&e, DrillError::Participant { handle, reason } if handle == "CL.alternate" && reason.contains("leaves it out")),
        "{e}"
    );
    // A swapped relay time (back-dating the alert) breaks the relay's proof.
    let e = tampered(|b| b.alerts[0].stored_at_ms -= 500).unwrap_err();
    assert!(
        matches!(&e, DrillError::Alert { index: 1, reason, .. } if reason.contains("relay")),
        "{e}"
    );
    // A round answer altered breaks the round bundle.
    let e = tampered(|b| {
        let n = b.rounds[0].len() / 3;
        b.rounds[0][n] ^= 1;
    })
    .unwrap_err();
    assert!(matches!(e, DrillError::Round { index: 1, .. }), "{e}");
}

// ------------------------------------------------------------------------------------
// Renderers.

#[test]
fn renderings_say_exercise_and_escape_hostile_text() {
    let r = report();
    let html = r.to_html();
    let md = r.to_markdown();
    let json = r.to_json();
    for out in [&html, &md] {
        assert!(out.contains("EXERCISE"));
        assert!(out.contains("Ransomware at a regional airport"));
        assert!(out.contains("UY.alternate"));
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(
        !html.contains("<script") && !html.contains("http"),
        "no script, no external URL"
    );
    assert!(html.contains("2 of 3 states") && html.contains("TARGET MISSED"));
    assert!(md.contains("| PE | unreached after the last repeat |"), "{md}");
    let back: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(back["marking"], "EXERCISE");
    assert_eq!(back["questions"][0]["answers"][3]["text"], HUMAN_ANSWER);

    // Hostile party text everywhere it can appear.
    let evil = "<script>alert(1)</script> ]]> <img src=x onerror=alert(1)> \u{202E}gpj.exe https://evil.example/x www.evil.example [link](javascript:alert(1)) | *bold*";
    let mut r = report();
    r.scenario = evil.into();
    r.description = evil.into();
    r.alerts[0].headline = evil.into();
    r.alerts[0].states[0].acknowledged_by = Some(evil.into());
    r.questions[0].question = evil.into();
    r.questions[0].answers[0].text = format!("{evil}\nsecond line");
    r.questions[0].answers[0].handle = evil.into();
    r.unreachable[0].handle = evil.into();
    r.timeline[0].text = evil.into();
    r.humans[0].rounds[0].text = Some(evil.into());
    r.messages[0].subject = evil.into();
    let html = r.to_html();
    let md = r.to_markdown();
    for out in [&html, &md] {
        assert!(!out.contains("<script"), "raw script tag");
        assert!(!out.contains("<img"), "raw img tag");
        assert!(!out.contains("]]>"), "raw CDATA end");
        assert!(!out.contains('\u{202E}'), "bidi override");
        assert!(!out.contains("http"), "URL not defanged");
        assert!(!out.contains("www.evil"), "www autolink not defanged");
        assert!(out.contains("&lt;script&gt;"));
        assert!(out.contains("hxxps:"));
    }
    assert!(!md.contains("[link](javascript"), "Markdown link syntax escaped");
    assert!(md.contains("\\[link\\]"));
    assert!(!md.contains(" | *bold*"), "table pipe escaped");
    // JSON keeps the exact text (its consumers escape for their own output).
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["scenario"], evil);
}

// ------------------------------------------------------------------------------------
// The shipped scenarios, played through `react` against the real escalation schedule.

/// Plays the first alert of `sc` over a directory of `states` (primary and alternate each):
/// releases each step when due unless its state already acknowledged, lets each simulated
/// POC react with `react`, signs the receipts it would send, and computes the report from
/// the resulting record (no envelope or log: the report reads plans and receipts only).
fn play_first_alert(sc: &Scenario, text: &str, states: &[&str]) -> AfterAction {
    let mut entries = Vec::new();
    let mut ids: BTreeMap<[u8; 32], Identity> = BTreeMap::new();
    for s in states {
        for (r, rank) in [(0u8, "primary"), (1, "alternate")] {
            let handle = format!("{s}.{rank}");
            let id = ident(&format!("play {handle}"));
            entries.push(RosterEntry {
                handle,
                state: s.to_string(),
                rank: r,
                key: *id.public_key().as_bytes(),
            });
            ids.insert(*id.public_key().as_bytes(), id);
        }
    }
    let ps = sc.roster(&entries).unwrap();
    let inject = sc.alert_injects()[0];
    let pocnet_core::drill::InjectKind::Alert(ai) = &sc.injects[inject].kind else {
        unreachable!()
    };
    let sender_key = ps.iter().find(|p| p.handle == ai.from).unwrap().key;
    let sender = &ids[&sender_key];
    let (id, hash) = ([0xa1; 16], [0xe7; 32]);
    let plan = sc.plan(inject, &ps, id, hash, None).unwrap();
    let accepted = S + sc.to_real_ms(sc.injects[inject].at_ms);
    let mut receipts = Vec::new();
    for (si, _) in plan.states().iter().enumerate() {
        let mut ack: Option<u64> = None;
        let mut delivered = std::collections::BTreeSet::new();
        for step in plan.schedule(accepted).iter().filter(|st| st.state == si as u16) {
            if ack.is_some_and(|a| a <= step.due_ms) {
                break;
            }
            let p = ps.iter().find(|p| p.key == step.key).unwrap();
            let drill_now = sc.to_drill_ms(step.due_ms - S);
            if p.profile == Profile::Offline || sc.offline_by_inject(&p.handle, drill_now) {
                continue;
            }
            let poc = &ids[&p.key];
            if delivered.insert(p.key) {
                receipts.push(receipt(
                    poc,
                    ReceiptKind::Delivered,
                    id,
                    hash,
                    sender,
                    step.due_ms + 100,
                ));
            }
            let stimulus = Stimulus::Alert {
                alert: id,
                repeat: step.repeat,
                msg_type: MsgType::Alert,
            };
            if let Some((d, Reaction::Ack { .. })) = react(&p.profile, &p.state, &stimulus, sc.seed_for(&p.handle)) {
                let at = step.due_ms + sc.to_real_ms(d);
                if ack.is_none_or(|a| at < a) {
                    ack = Some(at);
                }
                receipts.push(receipt(poc, ReceiptKind::Acknowledged, id, hash, sender, at));
            }
        }
    }
    // One Acknowledged receipt per key (a POC acts once).
    let mut seen = std::collections::BTreeSet::new();
    receipts.retain(|r| {
        let f = pocnet_core::drill::receipt_fields(r).unwrap();
        seen.insert((f.signer, f.kind))
    });
    let b = DrillBundle {
        version: 1,
        scenario: text.to_string(),
        directory_vkey: String::new(),
        checkpoint: String::new(),
        log_leaves: vec![],
        relay_key: [0; 32],
        started_ms: S,
        ended_ms: S + sc.to_real_ms(sc.duration_ms),
        ended_early: false,
        participants: ps,
        alerts: vec![pocnet_core::drill::AlertEvidence {
            envelope: vec![],
            plan: plan.sign(sender).unwrap().into_bytes(),
            stored_at_ms: accepted,
            proof: sign_group(&world().relay, &[(hash, accepted)]).remove(0),
            receipts,
        }],
        messages: vec![],
        rounds: vec![],
        events: vec![],
    };
    AfterAction::compute(&b).unwrap()
}

#[test]
fn the_airport_scenario_meets_the_reachability_target_in_simulation() {
    let text = builtin("airport").unwrap();
    let sc = Scenario::parse(text).unwrap();
    let pocnet_core::drill::StateSelection::States(states) = &sc.participants.states else {
        unreachable!()
    };
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    let r = play_first_alert(&sc, text, &states);
    let a = &r.alerts[0];
    assert_eq!(a.states.len(), 34, "every state but the sender's");
    assert_eq!(a.states_acknowledged, 34);
    // The 7 offline, 4 silent and 4 after-reminder primaries (none of them Panama's) leave
    // 15 states to their alternates, and every one of them acknowledges within two windows.
    let f = &r.reachability[0];
    assert_eq!(f.eligible.len(), 15);
    assert_eq!(f.within_two_windows, f.eligible);
    assert_eq!(f.rate, Some(1.0));
    assert!(f.target_met);
    assert!(a
        .states
        .iter()
        .all(|s| s.time_to_ack_drill_ms.unwrap() <= 2 * sc.window_ms));
    let html = r.to_html();
    assert!(html.contains("15 of 15 states") && html.contains("target met"));
}

#[test]
fn the_silent_state_scenario_leaves_its_silent_state_unreached() {
    let text = builtin("silent-state").unwrap();
    let sc = Scenario::parse(text).unwrap();
    let states = ["AR", "BR", "CL", "CO", "GY", "JM", "MX", "PE", "TT", "US"];
    let r = play_first_alert(&sc, text, &states);
    let a = &r.alerts[0];
    assert_eq!(a.states.len(), 9);
    for s in &a.states {
        if s.state == "GY" {
            assert_eq!(s.outcome, StateOutcome::Unreached);
            assert_eq!((s.depth, s.depth_label.as_str()), (2, "repeat 1"));
        } else {
            assert_eq!(s.outcome, StateOutcome::Acknowledged, "{}", s.state);
        }
    }
    let gy: Vec<(&str, &[Reason])> = r
        .unreachable
        .iter()
        .filter(|u| u.state == "GY")
        .map(|u| (u.handle.as_str(), u.reasons.as_slice()))
        .collect();
    assert_eq!(
        gy,
        [
            ("GY.alternate", &[Reason::DeliveredNotAcknowledged][..]),
            ("GY.primary", &[Reason::DeliveredNotAcknowledged][..])
        ]
    );
    // Jamaica's offline primary is covered by its alternate within two windows.
    let jm = a.states.iter().find(|s| s.state == "JM").unwrap();
    assert_eq!(jm.acknowledged_by.as_deref(), Some("JM.alternate"));
    assert!(r.reachability[0].eligible.contains(&"JM".to_string()));
    assert!(
        !r.reachability[0].eligible.contains(&"GY".to_string()),
        "GY has no live alternate"
    );
}

#[test]
fn the_builder_checks_participants_and_needs_the_directory() {
    let w = world();
    let (b0, _) = DrillBundle::open(&w.bytes).unwrap();
    let mut ps = b0.participants.clone();
    ps.retain(|p| p.handle != "CL.alternate");
    let mut b = DrillBundleBuilder::new(SCRIPT, w.relay.public_key(), S, ps).unwrap();
    let e = b
        .directory(&b0.directory_vkey, &b0.checkpoint, b0.log_leaves.clone())
        .unwrap_err();
    assert!(
        matches!(&e, DrillError::Participant { handle, .. } if handle == "CL.alternate"),
        "{e}"
    );
    let b = DrillBundleBuilder::new(SCRIPT, w.relay.public_key(), S, b0.participants.clone()).unwrap();
    assert!(matches!(b.finish(&w.sec, END, false), Err(DrillError::Builder(_))));
}

#[test]
fn a_drill_ended_early_still_yields_a_verified_report() {
    let w = world();
    let (b0, _) = DrillBundle::open(&w.bytes).unwrap();
    let end = S + 10_000;
    let mut b = DrillBundleBuilder::new(SCRIPT, w.relay.public_key(), S, b0.participants.clone()).unwrap();
    let a = &b0.alerts[0];
    let id = b
        .add_alert(a.envelope.clone(), a.plan.clone(), a.stored_at_ms, a.proof.clone())
        .unwrap();
    for r in &a.receipts {
        if pocnet_core::drill::receipt_fields(r).unwrap().at_ms <= end {
            b.add_receipt(id, r.clone()).unwrap();
        }
    }
    b.event_kind(end, DrillEventKind::End, "ended early by the controller")
        .unwrap();
    b.directory(&b0.directory_vkey, &b0.checkpoint, b0.log_leaves.clone())
        .unwrap();
    let bytes = b.finish(&w.sec, end, true).unwrap();
    let (_, r) = verify_drill(&bytes, Some(&w.vkey)).unwrap();
    assert!(r.ended_early);
    assert_eq!(r.duration_drill_ms, 10 * MIN);
    let outcomes: Vec<(&str, StateOutcome)> = r.alerts[0]
        .states
        .iter()
        .map(|s| (s.state.as_str(), s.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("AR", StateOutcome::Acknowledged),
            ("BR", StateOutcome::Pending),
            ("CO", StateOutcome::Pending),
            ("PE", StateOutcome::Pending),
            ("UY", StateOutcome::Pending),
        ]
    );
    // Nothing past the end was released: the depth stays at the primary.
    assert!(r.alerts[0].states.iter().all(|s| s.depth == 0));
    assert!(r.rounds.is_empty() && r.messages.is_empty());
    assert!(r.to_markdown().contains("(ended early)"));
}
