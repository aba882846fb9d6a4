//! Statement bytes: strict parsing, signatures, bounds and handles.

mod common;

use common::*;
use pocnet_core::directory::entry::{MAX_STATEMENT_LEN, STATEMENT_VERSION};
use pocnet_core::directory::{
    Action, Author, Category, EntryError, Handle, Rank, Statement, StatementBody, WitnessKey,
};
use pocnet_core::iso3166;
use pocnet_crypto::Identity;
use proptest::prelude::*;
use std::sync::OnceLock;

fn ana() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| identity("ana"))
}

fn cl() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| identity("authority CL"))
}

/// A nomination: the richest statement (strings, lists, enums, a fingerprint).
fn nomination() -> Statement {
    nominate_at(cl(), T0, "CL", Category::ForeignAffairs, Rank::Further(2), ana())
}

#[test]
fn round_trip_and_layout() {
    let st = nomination();
    let b = st.as_bytes();
    assert_eq!(b[0], STATEMENT_VERSION);
    assert_eq!(&b[b.len() - 96..b.len() - 64], cl().public_key().as_bytes());
    let p = Statement::parse(b).unwrap();
    assert_eq!(p.body(), st.body());
    assert_eq!(p.author(), cl().public_key());
    assert_eq!(p.as_bytes(), b);
    assert_eq!(p.origin(), ORIGIN);
    assert_eq!(p.time_ms(), T0);
    // The body is plain postcard.
    let body: StatementBody = postcard::from_bytes(&b[1..b.len() - 96]).unwrap();
    assert_eq!(&body, st.body());
}

#[test]
fn signature_is_domain_separated() {
    // The same bytes signed without the directory context do not verify.
    let st = nomination();
    let b = st.as_bytes();
    let signed = &b[..b.len() - 64];
    let raw_sig = cl().sign(pocnet_crypto::context::ENVELOPE, signed);
    let mut forged = signed.to_vec();
    forged.extend_from_slice(&raw_sig);
    assert_eq!(Statement::parse(&forged).unwrap_err(), EntryError::BadSignature);
    let ok = cl().sign(pocnet_crypto::context::DIRECTORY, signed);
    let mut good = signed.to_vec();
    good.extend_from_slice(&ok);
    assert!(Statement::parse(&good).is_ok());
    assert_eq!(pocnet_crypto::context::DIRECTORY.as_bytes(), b"pocnet/v1/directory\0");
}

#[test]
fn signed_by_another_key_than_the_one_named() {
    // Swap in ana's key as author, keeping cl's signature.
    let st = nomination();
    let mut b = st.as_bytes().to_vec();
    let n = b.len();
    b[n - 96..n - 64].copy_from_slice(ana().public_key().as_bytes());
    assert_eq!(Statement::parse(&b).unwrap_err(), EntryError::BadSignature);
    // An author key that is not a valid point (or is weak).
    b[n - 96..n - 64].copy_from_slice(&[0u8; 32]);
    assert_eq!(Statement::parse(&b).unwrap_err(), EntryError::BadAuthorKey);
}

#[test]
fn trailing_and_missing_bytes() {
    let st = nomination();
    let b = st.as_bytes();
    let mut longer = b.to_vec();
    longer.push(0);
    assert_eq!(Statement::parse(&longer).unwrap_err(), EntryError::Tail(97));
    assert_eq!(Statement::parse(&b[..b.len() - 1]).unwrap_err(), EntryError::Tail(95));
    assert!(Statement::parse(&b[..50]).is_err());
    assert!(matches!(Statement::parse(&[]).unwrap_err(), EntryError::TooShort(0)));
    let mut v2 = b.to_vec();
    v2[0] = 2;
    assert_eq!(Statement::parse(&v2).unwrap_err(), EntryError::Version(2));
    let big = vec![1u8; MAX_STATEMENT_LEN + 1];
    assert!(matches!(
        Statement::parse(&big).unwrap_err(),
        EntryError::TooLarge { .. }
    ));
}

/// Re-signs arbitrary body bytes as `who`, so that only the body's syntax is under test.
fn sign_raw(who: &Identity, body: &[u8]) -> Vec<u8> {
    let mut b = vec![STATEMENT_VERSION];
    b.extend_from_slice(body);
    b.extend_from_slice(who.public_key().as_bytes());
    let sig = who.sign(pocnet_crypto::context::DIRECTORY, &b);
    b.extend_from_slice(&sig);
    b
}

#[test]
fn non_canonical_encoding_is_refused_even_when_signed() {
    let st = Author::new(ana(), ORIGIN).confirm(5).unwrap();
    let b = st.as_bytes();
    let body = &b[1..b.len() - 96];
    // origin length, then time 5 as a one-byte varint: re-encode 5 as 0x85 0x00.
    let olen = ORIGIN.len();
    assert_eq!(body[0] as usize, olen);
    assert_eq!(body[1 + olen], 5);
    let mut over = body[..1 + olen].to_vec();
    over.extend_from_slice(&[0x85, 0x00]);
    over.extend_from_slice(&body[2 + olen..]);
    let forged = sign_raw(ana(), &over);
    // postcard itself may accept or refuse the over-long varint; either way it is refused.
    let e = Statement::parse(&forged).unwrap_err();
    assert!(matches!(e, EntryError::NonCanonical | EntryError::Decode(_)), "{e}");
    // The canonical body signed the same way parses.
    assert!(Statement::parse(&sign_raw(ana(), body)).is_ok());
    // An unknown action variant.
    let mut unknown = body.to_vec();
    let last = unknown.len() - 1;
    assert_eq!(unknown[last], 12); // Confirm
    unknown[last] = 13;
    assert!(matches!(
        Statement::parse(&sign_raw(ana(), &unknown)).unwrap_err(),
        EntryError::Decode(_)
    ));
}

fn signed(action: Action) -> Result<Statement, EntryError> {
    Author::new(ana(), ORIGIN).sign(T0, action)
}

/// Bounds hold at parse time too: encode an out-of-bounds body by hand and sign it.
fn parse_signed_body(body: &StatementBody) -> Result<Statement, EntryError> {
    Statement::parse(&sign_raw(ana(), &postcard::to_allocvec(body).unwrap()))
}

#[test]
fn string_and_list_bounds() {
    let mut c = contact("Ana");
    let check = |c: &pocnet_core::directory::Contact| {
        let a = Action::ContactUpdate { contact: c.clone() };
        let body = StatementBody {
            origin: ORIGIN.into(),
            time_ms: T0,
            action: a.clone(),
        };
        let (x, y) = (signed(a).is_ok(), parse_signed_body(&body).is_ok());
        assert_eq!(x, y, "signing and parsing agree");
        x
    };
    assert!(check(&c));
    c.name = "n".repeat(200);
    assert!(check(&c));
    c.name = "n".repeat(201);
    assert!(!check(&c));
    c.name = String::new();
    assert!(!check(&c));
    c.name = "Ana\u{202E}".into(); // right-to-left override
    assert!(!check(&c));
    c.name = "Ana\x1b[31m".into(); // terminal escape
    assert!(!check(&c));
    c = contact("Ana");
    c.email = format!("{}@example.org", "a".repeat(254 - 12));
    assert!(check(&c));
    c.email.insert(0, 'a');
    assert!(!check(&c));
    c.email = "no-at-sign".into();
    assert!(!check(&c));
    c = contact("Ana");
    c.phones = vec!["1".repeat(32); 10];
    assert!(check(&c));
    c.phones.push("1".into());
    assert!(!check(&c));
    c.phones = vec!["1".repeat(33)];
    assert!(!check(&c));
    c.phones = vec![];
    assert!(!check(&c));
    c = contact("Ana");
    c.languages = vec!["x".repeat(35); 8];
    assert!(check(&c));
    c.languages.push("es".into());
    assert!(!check(&c));
    c.languages = vec!["x".repeat(36)];
    assert!(!check(&c));
    c = contact("Ana");
    c.time_zone = "z".repeat(65);
    assert!(!check(&c));
    c = contact("Ana");
    c.working_hours = "h".repeat(201);
    assert!(!check(&c));
    // Reasons.
    assert!(signed(Action::Remove {
        handle: "CL.primary".into(),
        reason: "r".repeat(500)
    })
    .is_ok());
    assert!(signed(Action::Remove {
        handle: "CL.primary".into(),
        reason: "r".repeat(501)
    })
    .is_err());
    // The whole statement is at most 16 KiB.
    assert!(matches!(
        signed(Action::Approve {
            nomination: vec![0; 16 * 1024],
            public_identity: vec![1],
            voice_checked_ms: 0
        }),
        Err(EntryError::TooLarge { .. })
    ));
}

#[test]
fn field_syntax() {
    let k = *cl().public_key().as_bytes();
    for bad_state in ["XX", "UK", "EU", "cl", "", "CHL"] {
        let a = Action::AuthorityEnrol {
            state: bad_state.into(),
            key: k,
            name: "n".into(),
            institution: String::new(),
        };
        assert!(signed(a.clone()).is_err(), "{bad_state}");
        let body = StatementBody {
            origin: ORIGIN.into(),
            time_ms: T0,
            action: a,
        };
        assert!(parse_signed_body(&body).is_err(), "{bad_state}");
    }
    // Invalid keys.
    let mut small_order = [0u8; 32];
    small_order[0] = 1; // the identity point
    assert!(signed(Action::SecretariatRotate { new_key: small_order }).is_err());
    assert!(signed(Action::Revoke {
        key: small_order,
        reason: String::new()
    })
    .is_err());
    // Further ranks 1..=9.
    for (n, ok) in [(0u8, false), (1, true), (9, true), (10, false)] {
        let a = Action::RankChange {
            handle: "CL.primary".into(),
            category: Category::CyberPolicy,
            rank: Rank::Further(n),
        };
        assert_eq!(signed(a).is_ok(), ok, "further{n}");
    }
    // Handles in Remove and RankChange must be POC handles.
    for h in ["CL.authority", "secretariat", "CL.boss", "cl.primary"] {
        assert!(signed(Action::Remove {
            handle: h.into(),
            reason: String::new()
        })
        .is_err());
    }
    // Witness policies: names as note key names, no duplicates, quorum within the list.
    let w = |name: &str, key: [u8; 32]| WitnessKey { name: name.into(), key };
    let k2 = *ana().public_key().as_bytes();
    let policy = |ws: Vec<WitnessKey>, quorum| signed(Action::WitnessPolicy { witnesses: ws, quorum });
    assert!(policy(vec![w("w1.example", k), w("w2.example", k2)], 2).is_ok());
    assert!(policy(vec![w("w1.example", k), w("w2.example", k2)], 3).is_err());
    assert!(policy(vec![w("w1.example", k), w("w1.example", k2)], 1).is_err());
    assert!(policy(vec![w("w1.example", k), w("w2.example", k)], 1).is_err());
    assert!(policy(vec![w("w 1", k)], 1).is_err());
    assert!(policy(vec![w("w+1", k)], 1).is_err());
    assert!(policy(vec![], 0).is_ok());
    // Origins.
    assert!(Author::new(ana(), "").confirm(0).is_err());
    assert!(Author::new(ana(), "a\nb").confirm(0).is_err());
}

#[test]
fn handles_parse_and_print() {
    let cases = [
        ("CL.primary", Handle::poc("CL", Category::CyberPolicy, Rank::Primary)),
        (
            "CL.alternate",
            Handle::poc("CL", Category::CyberPolicy, Rank::Alternate),
        ),
        (
            "CL.further2",
            Handle::poc("CL", Category::CyberPolicy, Rank::Further(2)),
        ),
        (
            "CL.fa-alternate",
            Handle::poc("CL", Category::ForeignAffairs, Rank::Alternate),
        ),
        (
            "MX.fa-further9",
            Handle::poc("MX", Category::ForeignAffairs, Rank::Further(9)),
        ),
        ("CL.authority", Handle::Authority { state: "CL".into() }),
        ("secretariat", Handle::Secretariat),
    ];
    for (text, h) in cases {
        assert_eq!(text.parse::<Handle>().unwrap(), h, "{text}");
        assert_eq!(h.to_string(), text);
    }
    for bad in [
        "CL.further0",
        "CL.further10",
        "CL.further02",
        "CL.further",
        "CL.fa-authority",
        "CL.fa-",
        "XX.primary",
        "UK.primary",
        "cl.primary",
        "CL.PRIMARY",
        "CL.primary ",
        "CL..primary",
        "CL",
        "Secretariat",
        "secretariat.",
        "\u{0421}L.primary",
        "CL.prіmary", // Cyrillic і
        "",
    ] {
        assert!(bad.parse::<Handle>().is_err(), "{bad:?}");
    }
}

#[test]
fn iso3166_real_codes_only() {
    assert_eq!(iso3166::ASSIGNED.len(), 249);
    assert_eq!(iso3166::name("CL"), Some("Chile"));
    assert_eq!(iso3166::name("BR"), Some("Brazil"));
    assert_eq!(iso3166::name("TT"), Some("Trinidad and Tobago"));
    for bad in ["XX", "UK", "EU", "cl", "mx", "XK", "AN", "ZZ", "QO", "C"] {
        assert!(!iso3166::is_assigned(bad), "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Flipping any bit of a statement, anywhere, makes it invalid.
    #[test]
    fn any_tampered_byte_is_refused(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let st = nomination_cached();
        let mut b = st.to_vec();
        let i = pos.index(b.len());
        b[i] ^= 1 << bit;
        prop_assert!(Statement::parse(&b).is_err(), "flip at byte {} bit {} accepted", i, bit);
    }

    /// Truncating or extending a statement makes it invalid.
    #[test]
    fn any_truncation_or_extension_is_refused(cut in any::<prop::sample::Index>(), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        let b = nomination_cached();
        let i = cut.index(b.len());
        prop_assert!(Statement::parse(&b[..i]).is_err());
        let mut longer = b.to_vec();
        longer.extend_from_slice(&extra);
        prop_assert!(Statement::parse(&longer).is_err());
    }
}

fn nomination_cached() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| nomination().into_bytes())
}
