//! One timeline for an incident id from the signed records (`pocnet incident show`): its
//! messages, alerts, updates, cancellations, all-clears, receipts and forwards, exported as
//! Markdown, JSON and one self-contained HTML file.
//!
//! Real and exercise traffic are never merged: when both carry the same incident id, the
//! renderings show them in separate sections, and any exercise event puts an EXERCISE banner
//! at the top. Every free-text field is escaped for its format; the HTML has no script, no
//! link, no external resource (inline CSS only).

use std::fmt::Write;

use pocnet_crypto::Tlp;
use serde_json::{json, Value};

use crate::round::render::{fmt_utc, html_escape, md_escape};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A plain message.
    Message,
    /// A new alert.
    Alert,
    /// An update of an alert.
    Update,
    /// A cancellation of an alert.
    Cancel,
    /// An all-clear: the incident is over.
    AllClear,
    /// A signed Acknowledged receipt.
    Acknowledged,
    /// A signed Delivered receipt.
    Delivered,
    /// A signed Read receipt.
    Read,
    /// A forward of a message or alert.
    Forwarded,
}

impl EventKind {
    /// `message`, `alert`, `update`, `cancel`, `all_clear`, `acknowledged`, `delivered`,
    /// `read`, `forwarded`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Message => "message",
            EventKind::Alert => "alert",
            EventKind::Update => "update",
            EventKind::Cancel => "cancel",
            EventKind::AllClear => "all_clear",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Delivered => "delivered",
            EventKind::Read => "read",
            EventKind::Forwarded => "forwarded",
        }
    }
}

/// One event of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When (Unix ms).
    pub at_ms: u64,
    /// What.
    pub kind: EventKind,
    /// Who (handle).
    pub from: String,
    /// To whom (handles).
    pub to: Vec<String>,
    /// Its TLP marking.
    pub tlp: Tlp,
    /// Drill traffic.
    pub exercise: bool,
    /// The message id, hex.
    pub id_hex: String,
    /// Headline (alerts) or subject; may be empty.
    pub headline: String,
    /// Body text or note; may be empty.
    pub text: String,
    /// `at_ms` is the relay's signed acceptance time (otherwise the signer's own clock).
    pub relay_time: bool,
}

/// The timeline of one incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// The incident id.
    pub incident: String,
    /// Its events, sorted by `at_ms` then id ([`Timeline::new`] sorts them).
    pub events: Vec<Event>,
}

const EXERCISE: &str = "EXERCISE — NOT A REAL INCIDENT";

impl Timeline {
    /// A timeline with its events sorted by time, then id.
    pub fn new(incident: impl Into<String>, mut events: Vec<Event>) -> Self {
        events.sort_by(|a, b| (a.at_ms, &a.id_hex).cmp(&(b.at_ms, &b.id_hex)));
        Timeline {
            incident: incident.into(),
            events,
        }
    }

    fn sorted(&self) -> Vec<&Event> {
        let mut v: Vec<&Event> = self.events.iter().collect();
        v.sort_by(|a, b| (a.at_ms, &a.id_hex).cmp(&(b.at_ms, &b.id_hex)));
        v
    }

    /// The real events and the exercise events, each sorted.
    fn parts(&self) -> (Vec<&Event>, Vec<&Event>) {
        self.sorted().into_iter().partition(|e| !e.exercise)
    }

    /// Any exercise event.
    pub fn has_exercise(&self) -> bool {
        self.events.iter().any(|e| e.exercise)
    }

    /// An all-clear was seen. With real events, only a real all-clear closes the incident (an
    /// exercise all-clear never closes real traffic); with exercise events only, an exercise
    /// all-clear closes the exercise.
    pub fn closed(&self) -> bool {
        let (real, drill) = self.parts();
        let side = if real.is_empty() { drill } else { real };
        side.iter().any(|e| e.kind == EventKind::AllClear)
    }

    /// Markdown: a heading, the EXERCISE banner if any event is exercise, then a table per
    /// part (real, exercise) and each event's text as a quote. All free text escaped.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# Incident {}\n", md_escape(&self.incident));
        if self.has_exercise() {
            let _ = writeln!(o, "**{EXERCISE}**\n");
        }
        let _ = writeln!(
            o,
            "Status: {}. Times are UTC; `relay` marks the relay's signed acceptance time, `signer` the signer's own clock.\n",
            if self.closed() { "closed (all clear)" } else { "open" }
        );
        let (real, drill) = self.parts();
        for (title, part) in [("Real traffic", real), ("Exercise traffic (not real)", drill)] {
            if part.is_empty() {
                continue;
            }
            let _ = writeln!(o, "## {title}\n");
            o.push_str("| Time | Clock | Kind | From | To | TLP | Id | Headline |\n");
            o.push_str("|---|---|---|---|---|---|---|---|\n");
            for e in &part {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    fmt_utc(e.at_ms),
                    if e.relay_time { "relay" } else { "signer" },
                    e.kind.as_str(),
                    md_escape(&e.from),
                    md_escape(&e.to.join(", ")),
                    e.tlp.label(),
                    md_escape(&e.id_hex),
                    md_escape(&e.headline),
                );
            }
            o.push('\n');
            for e in part.iter().filter(|e| !e.text.is_empty()) {
                let _ = writeln!(
                    o,
                    "### {} {} {} ({})\n",
                    fmt_utc(e.at_ms),
                    e.kind.as_str(),
                    md_escape(&e.id_hex),
                    e.tlp.label()
                );
                for line in e.text.lines() {
                    let _ = writeln!(o, "> {}", md_escape(line));
                }
                o.push('\n');
            }
        }
        o
    }

    /// JSON: `{incident, closed, exercise, events: [...]}` with events sorted; `real` and
    /// `exercise` are never merged: each event carries its `exercise` flag.
    pub fn json(&self) -> Value {
        json!({
            "incident": self.incident,
            "closed": self.closed(),
            "exercise": self.has_exercise(),
            "events": self.sorted().iter().map(|e| json!({
                "at_ms": e.at_ms,
                "time": fmt_utc(e.at_ms),
                "relay_time": e.relay_time,
                "kind": e.kind.as_str(),
                "from": e.from,
                "to": e.to,
                "tlp": e.tlp.label(),
                "exercise": e.exercise,
                "id": e.id_hex,
                "headline": e.headline,
                "text": e.text,
            })).collect::<Vec<_>>(),
        })
    }

    /// One self-contained HTML file: inline CSS, no script, no link or external resource;
    /// an EXERCISE banner if any event is exercise; real and exercise traffic in separate
    /// sections; all free text HTML-escaped.
    pub fn html(&self) -> String {
        let mut o = String::new();
        let title = format!("Incident {}", html_escape(&self.incident));
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\n\
             body{{font-family:sans-serif;margin:2em;color:#111}}\n\
             table{{border-collapse:collapse;width:100%}}\n\
             th,td{{border:1px solid #999;padding:.3em .5em;vertical-align:top;text-align:left}}\n\
             .exercise{{background:#ffe14d;color:#000;font-weight:bold;font-size:1.4em;padding:.5em;border:4px dashed #000;text-align:center}}\n\
             section.drill{{border:4px dashed #c90;padding:1em;margin-top:2em}}\n\
             .text{{white-space:pre-wrap;margin:0}}\n\
             .tlp{{font-weight:bold}}\n\
             </style>\n</head>\n<body>\n"
        );
        if self.has_exercise() {
            let _ = writeln!(o, "<div class=\"exercise\">{EXERCISE}</div>");
        }
        let _ = writeln!(o, "<h1>{title}</h1>");
        let _ = writeln!(
            o,
            "<p>Status: {}. Times are UTC; <em>relay</em> marks the relay's signed acceptance time, <em>signer</em> the signer's own clock.</p>",
            if self.closed() { "closed (all clear)" } else { "open" }
        );
        let (real, drill) = self.parts();
        for (title, class, part) in [
            ("Real traffic", "real", real),
            ("Exercise traffic — not real", "drill", drill),
        ] {
            if part.is_empty() {
                continue;
            }
            let _ = writeln!(o, "<section class=\"{class}\">\n<h2>{title}</h2>");
            o.push_str(
                "<table>\n<tr><th>Time</th><th>Clock</th><th>Kind</th><th>From</th><th>To</th><th>TLP</th><th>Id</th><th>Headline and text</th></tr>\n",
            );
            for e in &part {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"tlp\">{}</td><td>{}</td><td><strong>{}</strong><p class=\"text\">{}</p></td></tr>",
                    fmt_utc(e.at_ms),
                    if e.relay_time { "relay" } else { "signer" },
                    e.kind.as_str(),
                    html_escape(&e.from),
                    html_escape(&e.to.join(", ")),
                    e.tlp.label(),
                    html_escape(&e.id_hex),
                    html_escape(&e.headline),
                    html_escape(&e.text),
                );
            }
            o.push_str("</table>\n</section>\n");
        }
        o.push_str("</body>\n</html>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at_ms: u64, kind: EventKind, exercise: bool, id: &str, headline: &str, text: &str) -> Event {
        Event {
            at_ms,
            kind,
            from: "CL.primary".into(),
            to: vec!["AR.primary".into(), "PE.primary".into()],
            tlp: Tlp::Amber,
            exercise,
            id_hex: id.into(),
            headline: headline.into(),
            text: text.into(),
            relay_time: true,
        }
    }

    const T: u64 = 1_790_000_000_000;

    #[test]
    fn sorted_by_time_then_id_and_closed_only_by_an_all_clear() {
        let t = Timeline::new(
            "INC-1",
            vec![
                ev(T + 5, EventKind::Update, false, "bb", "u", ""),
                ev(T, EventKind::Alert, false, "cc", "a", ""),
                ev(T + 5, EventKind::Acknowledged, false, "aa", "", ""),
            ],
        );
        let ids: Vec<&str> = t.events.iter().map(|e| e.id_hex.as_str()).collect();
        assert_eq!(ids, ["cc", "aa", "bb"]);
        assert!(!t.closed());
        let mut events = t.events.clone();
        events.push(ev(T + 9, EventKind::AllClear, true, "dd", "drill over", ""));
        let drill_clear = Timeline::new("INC-1", events.clone());
        assert!(!drill_clear.closed(), "an exercise all-clear closed real traffic");
        events.push(ev(T + 10, EventKind::AllClear, false, "ee", "over", ""));
        assert!(Timeline::new("INC-1", events).closed());
        let drill_only = Timeline::new("EX-1", vec![ev(T, EventKind::AllClear, true, "ff", "", "")]);
        assert!(drill_only.closed());
        // Renderers sort even if the fields were set by hand.
        let by_hand = Timeline {
            incident: "X".into(),
            events: vec![
                ev(T + 1, EventKind::Read, false, "b2", "", ""),
                ev(T, EventKind::Alert, false, "a1", "", ""),
            ],
        };
        assert_eq!(by_hand.json()["events"][0]["id"], "a1");
    }

    fn hostile() -> Timeline {
        Timeline::new(
            "INC<7>&\"q\"",
            vec![
                ev(
                    T,
                    EventKind::Alert,
                    false,
                    "0a",
                    "<script>alert(1)</script> | *bold* [x](https://evil.example)",
                    "line 1 <img src=x onerror=alert(2)>\nline 2 ]]> & 'quote'",
                ),
                ev(T + 60_000, EventKind::Alert, true, "0b", "Drill <b>", "drill text"),
                ev(T + 120_000, EventKind::AllClear, false, "0c", "All clear", ""),
            ],
        )
    }

    #[test]
    fn html_is_self_contained_escaped_and_separates_exercise() {
        let h = hostile().html();
        for bad in ["<script", "<img", "href=", "url(", "<b>", "<a ", "@import", "INC<7>"] {
            assert!(!h.contains(bad), "{bad} in HTML");
        }
        // Every tag is one the renderer writes: nothing from the text became markup.
        let allowed = [
            "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "div", "h1", "h2", "p", "em", "section",
            "table", "tr", "th", "td", "strong",
        ];
        for tag in h.split('<').skip(1) {
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
                .collect();
            assert!(allowed.contains(&name.as_str()), "tag {name:?} in HTML");
        }
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(h.contains("&lt;img src=x onerror=alert(2)&gt;"));
        assert!(h.contains("]]&gt; &amp; &#39;quote&#39;"));
        assert!(h.contains("Incident INC&lt;7&gt;&amp;&quot;q&quot;"));
        // The banner comes before any event; real and exercise in separate sections.
        let banner = h.find(EXERCISE).unwrap();
        let real = h.find("<section class=\"real\">").unwrap();
        let drill = h.find("<section class=\"drill\">").unwrap();
        assert!(banner < real && real < drill);
        let real_part = &h[real..drill];
        assert!(!real_part.contains("Drill &lt;b&gt;"));
        assert!(h[drill..].contains("Drill &lt;b&gt;"));
        assert!(h.contains("closed (all clear)"));
        // Without exercise events there is no banner.
        let mut t = hostile();
        t.events.retain(|e| !e.exercise);
        assert!(!t.html().contains(EXERCISE));
        assert!(!t.markdown().contains(EXERCISE));
    }

    #[test]
    fn markdown_escapes_and_separates() {
        let m = hostile().markdown();
        assert!(!m.contains("<script"));
        assert!(!m.contains("[x](https"));
        assert!(m.contains("\\[x\\]\\(https://evil.example\\)"));
        assert!(m.contains("\\| \\*bold\\*"));
        assert!(m.contains("> line 1 &lt;img src=x onerror=alert\\(2\\)&gt;\n> line 2 \\]\\]&gt; &amp; 'quote'"));
        assert!(m.starts_with("# Incident INC&lt;7&gt;&amp;\"q\"\n\n**EXERCISE — NOT A REAL INCIDENT**"));
        let real = m.find("## Real traffic").unwrap();
        let drill = m.find("## Exercise traffic (not real)").unwrap();
        assert!(real < drill);
        assert!(!m[real..drill].contains("Drill"));
        // Every table row has exactly the header's 9 pipes (none injected).
        for line in m.lines().filter(|l| l.starts_with("| ")) {
            assert_eq!(line.matches(" | ").count() + 2, 9, "{line}");
        }
    }

    #[test]
    fn json_keeps_every_field() {
        let j = hostile().json();
        assert_eq!(j["incident"], "INC<7>&\"q\"");
        assert_eq!(j["closed"], true);
        assert_eq!(j["exercise"], true);
        assert_eq!(j["events"][1]["exercise"], true);
        assert_eq!(j["events"][0]["tlp"], "TLP:AMBER");
        assert_eq!(j["events"][2]["kind"], "all_clear");
        assert_eq!(j["events"][0]["to"][1], "PE.primary");
        assert_eq!(
            j["events"][0]["text"],
            "line 1 <img src=x onerror=alert(2)>\nline 2 ]]> & 'quote'"
        );
    }
}
