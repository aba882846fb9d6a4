//! Policy documents on the directory log: who may publish, versions, bounds, history, the
//! annual-update rule, and the statement's round trip.

mod common;

use common::*;
use pocnet_core::directory::state::STALE_AFTER_MS;
use pocnet_core::directory::{
    Action, ActionKind, Author, Category, DirectoryError, EntryError, PolicyKind, Rank, Refusal, Statement,
};
use pocnet_crypto::Identity;
use proptest::prelude::*;

const DOC: [u8; 16] = [0xd0; 16];

fn refusal(r: Result<pocnet_core::directory::Applied, DirectoryError>) -> Refusal {
    let e = r.expect_err("must be refused");
    assert!(
        e.to_string().starts_with(&format!("log entry {} refused: ", e.index)),
        "{e}"
    );
    e.refusal
}

fn titles() -> Vec<(String, String)> {
    vec![
        ("es".into(), "Política Nacional de Ciberseguridad".into()),
        ("en".into(), "National Cybersecurity Policy".into()),
    ]
}

fn publish(by: &Identity, t: u64, state: &str, document: [u8; 16], version: u32) -> Result<Statement, EntryError> {
    Author::new(by, ORIGIN).policy_publish(
        t,
        state,
        document,
        version,
        PolicyKind::Strategy,
        "2024-03-15",
        "es",
        titles(),
        "politica.pdf",
        "application/pdf",
        12_345,
        [version as u8; 32],
    )
}

fn action(f: impl FnOnce(&mut Action)) -> Action {
    let mut a = publish(&identity("authority CL"), T0, "CL", DOC, 1)
        .unwrap()
        .action()
        .clone();
    f(&mut a);
    a
}

fn fields(
    a: &mut Action,
) -> (
    &mut String,
    &mut String,
    &mut Vec<(String, String)>,
    &mut String,
    &mut String,
) {
    match a {
        Action::PolicyPublish {
            date,
            language,
            titles,
            file_name,
            media_type,
            ..
        } => (date, language, titles, file_name, media_type),
        _ => unreachable!(),
    }
}

#[test]
fn an_authority_publishes_and_supersedes_and_history_stays() {
    let mut w = World::new();
    let t1 = w.tick();
    let a = w.push(publish(&w.cl, t1, "CL", DOC, 1).unwrap()).unwrap();
    assert_eq!(a.kind, ActionKind::PolicyPublish);
    assert!(a.added.is_empty() && a.removed.is_empty() && a.handle_moves.is_empty());
    let t2 = w.tick();
    w.push(publish(&w.cl, t2, "CL", DOC, 2).unwrap()).unwrap();
    let vs = w.dir.policy(&DOC).expect("listed");
    assert_eq!(vs.len(), 2);
    assert_eq!((vs[0].version, vs[0].index, vs[0].time_ms), (1, 3, t1));
    assert_eq!((vs[1].version, vs[1].index, vs[1].time_ms), (2, 4, t2));
    assert_eq!(vs[1].state, "CL");
    assert_eq!(&vs[1].author, w.cl.public_key());
    assert_eq!(vs[1].kind, PolicyKind::Strategy);
    assert_eq!(vs[1].sha256, [2; 32]);
    assert_eq!(vs[1].title_in("en"), "National Cybersecurity Policy");
    assert_eq!(
        vs[1].title_in("fr"),
        "Política Nacional de Ciberseguridad",
        "falls back to the first"
    );
    assert_eq!(w.dir.policies().count(), 1);
    assert_eq!(w.dir.policy_by_hash(&[1; 32]).len(), 1);
    assert_eq!(w.dir.policy_by_hash(&[1; 32])[0].version, 1);
    assert!(w.dir.policy_by_hash(&[9; 32]).is_empty());
    // A second document of the same state, and one of another state.
    let t = w.tick();
    w.push(publish(&w.cl, t, "CL", [1; 16], 1).unwrap()).unwrap();
    let t = w.tick();
    w.push(publish(&w.mx, t, "MX", [2; 16], 1).unwrap()).unwrap();
    assert_eq!(w.dir.policies().count(), 3);
}

#[test]
fn only_the_states_own_authority_publishes() {
    let mut w = World::new();
    let t = w.tick();
    // MX's authority for CL.
    assert_eq!(
        refusal(w.push(publish(&w.mx, t, "CL", DOC, 1).unwrap())),
        Refusal::OtherState {
            author_state: "MX".into(),
            state: "CL".into()
        }
    );
    // The Secretariat, a POC and a stranger.
    let ana = identity("ana");
    w.enrol(&ana, "CL", Category::CyberPolicy, Rank::Primary);
    let sec = identity("secretariat");
    for who in [&sec, &ana, &identity("stranger")] {
        let t = w.tick();
        assert!(matches!(
            refusal(w.push(publish(who, t, "CL", DOC, 1).unwrap())),
            Refusal::WrongAuthor {
                action: ActionKind::PolicyPublish,
                ..
            }
        ));
    }
    // A state with no authority.
    let t = w.tick();
    assert_eq!(
        refusal(w.push(publish(&w.cl, t, "AR", DOC, 1).unwrap())),
        Refusal::NoAuthority("AR".into())
    );
    // A removed authority no longer publishes.
    let t = w.tick();
    let st = w.sec().authority_remove(t, "CL").unwrap();
    w.push(st).unwrap();
    let t = w.tick();
    assert_eq!(
        refusal(w.push(publish(&w.cl, t, "CL", DOC, 1).unwrap())),
        Refusal::NoAuthority("CL".into())
    );
    assert_eq!(w.dir.policies().count(), 0);
}

#[test]
fn versions_follow_one_another_within_one_state() {
    let mut w = World::new();
    let t = w.tick();
    // No version 2 of a document that does not exist.
    assert!(matches!(
        refusal(w.push(publish(&w.cl, t, "CL", DOC, 2).unwrap())),
        Refusal::NoSuchPolicy { version: 2, .. }
    ));
    w.push(publish(&w.cl, t, "CL", DOC, 1).unwrap()).unwrap();
    // Version 1 again (a new document with a used id), a gap, a repeat.
    for (v, want) in [
        (1, "exists already"),
        (3, "next version must be 2"),
        (1, "exists already"),
    ] {
        let t = w.tick();
        let r = refusal(w.push(publish(&w.cl, t, "CL", DOC, v).unwrap()));
        assert!(r.to_string().contains(want), "{r}");
    }
    // MX cannot publish a version of CL's document, not even as its own state.
    let t = w.tick();
    assert!(matches!(
        refusal(w.push(publish(&w.mx, t, "MX", DOC, 2).unwrap())),
        Refusal::PolicyOtherState { .. }
    ));
    // The same statement twice.
    let t = w.tick();
    let st = publish(&w.cl, t, "CL", DOC, 2).unwrap();
    w.push(st.clone()).unwrap();
    assert_eq!(refusal(w.push(st)), Refusal::Replayed);
    assert_eq!(w.dir.policy(&DOC).unwrap().len(), 2);
}

#[test]
fn fields_are_bounded_and_checked() {
    let ok = action(|_| {});
    assert!(ok.check().is_ok());
    let bad: Vec<(&str, Action)> = vec![
        (
            "version",
            action(|a| {
                if let Action::PolicyPublish { version, .. } = a {
                    *version = 0
                }
            }),
        ),
        (
            "state",
            action(|a| {
                if let Action::PolicyPublish { state, .. } = a {
                    *state = "XX".into()
                }
            }),
        ),
        ("date", action(|a| *fields(a).0 = "2023-02-29".into())),
        ("date", action(|a| *fields(a).0 = "2024-13-01".into())),
        ("date", action(|a| *fields(a).0 = "15/03/2024".into())),
        ("date", action(|a| *fields(a).0 = "2024-3-15".into())),
        ("date", action(|a| *fields(a).0 = "+024-03-15".into())),
        ("language", action(|a| *fields(a).1 = "ES".into())),
        ("language", action(|a| *fields(a).1 = "spa".into())),
        ("titles", action(|a| fields(a).2.clear())),
        (
            "titles",
            action(|a| {
                let t = fields(a).2;
                for i in 0..8 {
                    t.push((format!("a{}", (b'a' + i) as char), "x".into()));
                }
            }),
        ),
        ("titles", action(|a| fields(a).2.push(("es".into(), "again".into())))),
        ("titles", action(|a| fields(a).2.swap(0, 1))),
        ("title", action(|a| fields(a).2[1].1 = "evil\u{202E}fdp.exe".into())),
        ("title", action(|a| fields(a).2[1].1 = "line\nbreak".into())),
        ("title", action(|a| fields(a).2[1].1 = String::new())),
        ("title", action(|a| fields(a).2[1].1 = "x".repeat(501))),
        ("file name", action(|a| *fields(a).3 = "../etc/passwd".into())),
        ("file name", action(|a| *fields(a).3 = "a\\b.pdf".into())),
        ("file name", action(|a| *fields(a).3 = "..".into())),
        ("file name", action(|a| *fields(a).3 = "n".repeat(256))),
        ("file name", action(|a| *fields(a).3 = "a\u{1b}[2J.pdf".into())),
        ("media type", action(|a| *fields(a).4 = "pdf".into())),
        (
            "media type",
            action(|a| *fields(a).4 = "application/pdf; x=\u{e9}".into()),
        ),
        ("media type", action(|a| *fields(a).4 = "application /pdf".into())),
        (
            "size",
            action(|a| {
                if let Action::PolicyPublish { size, .. } = a {
                    *size = u64::MAX
                }
            }),
        ),
    ];
    for (what, a) in bad {
        let e = a.check().expect_err(what);
        assert!(e.to_string().contains(what), "{what}: {e}");
        // And signing refuses it too: no such statement can be made.
        assert!(Author::new(&identity("authority CL"), ORIGIN).sign(T0, a).is_err());
    }
    // Leap day and the longest accepted values are fine.
    assert!(action(|a| *fields(a).0 = "2024-02-29".into()).check().is_ok());
    assert!(action(|a| *fields(a).3 = "n".repeat(255)).check().is_ok());
    assert!(action(|a| fields(a).2[1].1 = "x".repeat(500)).check().is_ok());
}

#[test]
fn the_annual_update_rule_reminds_after_twelve_months() {
    let mut w = World::new();
    let enrolled = w.dir.authority("CL").unwrap().enrolled_ms;
    assert_eq!(enrolled, w.dir.authority("CL").unwrap().enrolled_ms);
    // Nothing is due in the first year after enrolment...
    assert!(w.dir.policy_stale_states(enrolled + STALE_AFTER_MS).is_empty());
    // ...and both states are reminded a day after it, with the enrolment as their last time.
    let later = enrolled + STALE_AFTER_MS + DAY_MS;
    let stale = w.dir.policy_stale_states(later);
    assert_eq!(stale.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["CL", "MX"]);
    assert_eq!(stale[0].1, enrolled);
    // CL publishes eleven months later: only MX is reminded at the one-year mark.
    w.t = enrolled + 335 * DAY_MS;
    let t = w.tick();
    w.push(publish(&w.cl, t, "CL", DOC, 1).unwrap()).unwrap();
    let stale = w.dir.policy_stale_states(later);
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].0, "MX");
    // Twelve months and a day after CL's publication, CL is due again, dated by it.
    let stale = w.dir.policy_stale_states(t + STALE_AFTER_MS + DAY_MS);
    assert_eq!(stale[0], ("CL".to_string(), t));
    // Re-enrolling the same key (new name) does not restart the clock; a new key does.
    let t2 = w.tick();
    let st = w
        .sec()
        .authority_enrol(t2, "MX", w.mx.public_key(), "Renamed", "SRE")
        .unwrap();
    w.push(st).unwrap();
    assert_eq!(w.dir.authority("MX").unwrap().enrolled_ms, enrolled + 1000);
    let new_mx = identity("authority MX 2");
    let t3 = w.tick();
    let st = w
        .sec()
        .authority_enrol(t3, "MX", new_mx.public_key(), "New", "SRE")
        .unwrap();
    w.push(st).unwrap();
    assert_eq!(w.dir.authority("MX").unwrap().enrolled_ms, t3);
    // A state without an authority is not reminded.
    let st = w.sec().authority_remove(w.t + 1000, "MX").unwrap();
    w.push(st).unwrap();
    assert!(w
        .dir
        .policy_stale_states(t3 + 10 * STALE_AFTER_MS)
        .iter()
        .all(|(s, _)| s != "MX"));
}

fn arb_title() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 áéíóúñçãõ.,:()-]{1,60}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any valid publication signs, parses back to the same statement and bytes, and applies.
    #[test]
    fn publication_round_trips(
        document in any::<[u8; 16]>(),
        kind in 0usize..5,
        y in 1900u32..2100, m in 1u32..13, d in 1u32..29,
        extra in prop::collection::vec(arb_title(), 0..7),
        title in arb_title(),
        file_name in "[a-zA-Z0-9 ._-]{1,40}[a-z]",
        size in 0u64..(1 << 40),
        sha256 in any::<[u8; 32]>(),
    ) {
        let langs = ["en", "fr", "pt", "de", "it", "nl", "ja"];
        let mut titles = vec![("es".to_string(), title)];
        titles.extend(extra.into_iter().zip(langs).map(|(t, l)| (l.to_string(), t)));
        let mut w = World::new();
        let t = w.tick();
        let st = Author::new(&w.cl, ORIGIN)
            .policy_publish(
                t, "CL", document, 1, PolicyKind::ALL[kind], &format!("{y:04}-{m:02}-{d:02}"), "es",
                titles.clone(), &file_name, "application/pdf", size, sha256,
            )
            .unwrap();
        let p = Statement::parse(st.as_bytes()).unwrap();
        prop_assert_eq!(p.body(), st.body());
        prop_assert_eq!(p.as_bytes(), st.as_bytes());
        w.push(p).unwrap();
        let v = &w.dir.policy(&document).unwrap()[0];
        prop_assert_eq!(&v.titles, &titles);
        prop_assert_eq!(v.sha256, sha256);
        prop_assert_eq!(v.size, size);
        prop_assert_eq!(v.kind, PolicyKind::ALL[kind]);
    }
}

#[test]
fn kinds_parse_as_the_cli_spells_them() {
    for k in PolicyKind::ALL {
        assert_eq!(k.name().parse::<PolicyKind>().unwrap(), k);
    }
    assert_eq!("White Paper".parse::<PolicyKind>().unwrap(), PolicyKind::WhitePaper);
    assert!("decree".parse::<PolicyKind>().is_err());
}
