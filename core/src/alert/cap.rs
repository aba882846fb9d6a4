//! OASIS CAP 1.2 export (`pocnet alert export --cap`).
//!
//! One `<alert>` in the namespace `urn:oasis:names:tc:emergency:cap:1.2`, its elements in the
//! schema's order: identifier, sender, sent, status, msgType, scope (always `Restricted`),
//! restriction (the TLP label and its meaning), code (the TLP label, then `pocnet-1`), note
//! (exercise/test marking; the text of a Cancel or Ack), references, incidents, then one
//! `<info>` for an Alert or Update (Cancel and Ack carry none). Times are
//! `YYYY-MM-DDThh:mm:ss+00:00` (UTC); references are space-separated
//! `sender,identifier,sent` triples (CAP 1.2 §3.2.1). Every text is escaped (`&`, `<`, `>`,
//! `"`, `'`) and any character XML 1.0 forbids is replaced by U+FFFD (a checked body has
//! none). In identifiers, sender, reference triples and incident ids — whose CAP syntax is
//! space- and comma-separated — whitespace, commas, `<`, `>`, `&` and quotes become `_`.

use std::fmt::Write;

use pocnet_crypto::Tlp;

use super::content::{AlertBody, MsgType};
use super::i18n::{label, Label, Lang};
use crate::iso3166;
use crate::round::render::fmt_utc;

/// CAP `status` values pocnet exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CapStatus {
    /// Actionable by all targeted recipients.
    Actual,
    /// Only for designated exercise participants (pocnet's `--exercise`).
    Exercise,
    /// Technical testing only; all recipients disregard it.
    Test,
}

impl CapStatus {
    /// The CAP word.
    pub fn as_cap(self) -> &'static str {
        match self {
            CapStatus::Actual => "Actual",
            CapStatus::Exercise => "Exercise",
            CapStatus::Test => "Test",
        }
    }
}

/// Everything one CAP document needs besides the body.
#[derive(Clone, Debug)]
pub struct CapAlert<'a> {
    /// The alert body.
    pub body: &'a AlertBody,
    /// `"pocnet-"` + the alert's message id in hex.
    pub identifier: String,
    /// The sender's fingerprint in hex + `"@pocnet"`.
    pub sender: String,
    /// When it was sent (Unix ms).
    pub sent_ms: u64,
    /// Actual, Exercise or Test.
    pub status: CapStatus,
    /// The envelope's TLP marking.
    pub tlp: Tlp,
    /// The envelope's incident id.
    pub incident: Option<String>,
    /// `(sender, identifier, sent_ms)` of each of `body.references`, in order.
    pub reference_triples: Vec<(String, String, u64)>,
    /// The language the free text is written in (`<info><language>`).
    pub language: Lang,
}

/// A Unix-ms time as CAP writes it: `YYYY-MM-DDThh:mm:ss+00:00`.
pub fn cap_time(ms: u64) -> String {
    // fmt_utc gives "YYYY-MM-DD hh:mm:ssZ".
    let s = fmt_utc(ms);
    format!("{}T{}+00:00", &s[..10], &s[11..19])
}

/// XML text: escaped, and any character XML 1.0 does not allow replaced by U+FFFD.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\n' | '\t' => o.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// A CAP token (identifier, sender, incident): no whitespace, comma, `<`, `>`, `&` or quote.
fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || matches!(c, ',' | '<' | '>' | '&' | '"' | '\'') {
                '_'
            } else {
                c
            }
        })
        .collect();
    esc(&t)
}

fn el(o: &mut String, indent: &str, name: &str, text: &str) {
    let _ = writeln!(o, "{indent}<{name}>{text}</{name}>");
}

/// The CAP 1.2 XML document of `a` (UTF-8, with an XML declaration).
pub fn to_cap_xml(a: &CapAlert) -> String {
    let b = a.body;
    let mut o = String::new();
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.push_str("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n");
    let i = "  ";
    el(&mut o, i, "identifier", &token(&a.identifier));
    el(&mut o, i, "sender", &token(&a.sender));
    el(&mut o, i, "sent", &cap_time(a.sent_ms));
    el(&mut o, i, "status", a.status.as_cap());
    el(&mut o, i, "msgType", b.msg_type.as_cap());
    el(&mut o, i, "scope", "Restricted");
    let restriction = format!("{}: {}", a.tlp.label(), label(Lang::En, Label::TlpMeaning(a.tlp)));
    el(&mut o, i, "restriction", &esc(&restriction));
    el(&mut o, i, "code", a.tlp.label());
    el(&mut o, i, "code", "pocnet-1");
    let mut note = Vec::new();
    match a.status {
        CapStatus::Exercise => note.push(label(Lang::En, Label::Exercise).to_string()),
        CapStatus::Test => note.push("TEST — technical testing only; disregard".to_string()),
        CapStatus::Actual => {}
    }
    if matches!(b.msg_type, MsgType::Cancel | MsgType::Ack) {
        for t in [&b.headline, &b.description, &b.instruction] {
            if !t.is_empty() {
                note.push(t.clone());
            }
        }
    }
    if !note.is_empty() {
        el(&mut o, i, "note", &esc(&note.join("\n")));
    }
    if !a.reference_triples.is_empty() {
        let refs: Vec<String> = a
            .reference_triples
            .iter()
            .map(|(s, id, t)| format!("{},{},{}", token(s), token(id), cap_time(*t)))
            .collect();
        el(&mut o, i, "references", &refs.join(" "));
    }
    if let Some(inc) = &a.incident {
        el(&mut o, i, "incidents", &token(inc));
    }
    if matches!(b.msg_type, MsgType::Alert | MsgType::Update) {
        let i = "    ";
        o.push_str("  <info>\n");
        el(&mut o, i, "language", a.language.tag());
        for c in &b.category {
            el(&mut o, i, "category", c.as_cap());
        }
        let event = if b.headline.is_empty() {
            "Cyber incident"
        } else {
            &b.headline
        };
        el(&mut o, i, "event", &esc(event));
        for r in &b.response_type {
            el(&mut o, i, "responseType", r.as_cap());
        }
        el(&mut o, i, "urgency", b.urgency.as_cap());
        el(&mut o, i, "severity", b.severity.as_cap());
        el(&mut o, i, "certainty", b.certainty.as_cap());
        el(&mut o, i, "senderName", &esc(&b.sender_handle));
        if !b.headline.is_empty() {
            el(&mut o, i, "headline", &esc(&b.headline));
        }
        if !b.description.is_empty() {
            el(&mut o, i, "description", &esc(&b.description));
        }
        if !b.instruction.is_empty() {
            el(&mut o, i, "instruction", &esc(&b.instruction));
        }
        if b.ack_within_ms > 0 {
            o.push_str("    <parameter>\n");
            el(&mut o, "      ", "valueName", "ackWithin");
            el(&mut o, "      ", "value", &b.ack_within_ms.div_ceil(60_000).to_string());
            o.push_str("    </parameter>\n");
        }
        if !b.targets.is_empty() {
            o.push_str("    <area>\n");
            let names: Vec<&str> = b.targets.iter().map(|t| iso3166::name(t).unwrap_or(t)).collect();
            el(&mut o, "      ", "areaDesc", &esc(&names.join("; ")));
            for t in &b.targets {
                o.push_str("      <geocode>\n");
                el(&mut o, "        ", "valueName", "ISO3166-1");
                el(&mut o, "        ", "value", &esc(t));
                o.push_str("      </geocode>\n");
            }
            o.push_str("    </area>\n");
        }
        o.push_str("  </info>\n");
    }
    o.push_str("</alert>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_an_explicit_offset() {
        assert_eq!(cap_time(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(cap_time(1_790_000_000_999), "2026-09-21T14:13:20+00:00");
        assert_eq!(cap_time(951_782_400_000), "2000-02-29T00:00:00+00:00");
    }

    #[test]
    fn escaping_and_tokens() {
        assert_eq!(esc("a<b>&\"'c]]>"), "a&lt;b&gt;&amp;&quot;&apos;c]]&gt;");
        assert_eq!(esc("x\u{1}\u{7f}y\nz"), "x\u{FFFD}\u{FFFD}y\nz");
        assert_eq!(token("a b,c<d&e>\"'"), "a_b_c_d_e___");
    }
}
