//! The after-action report's renderings: Markdown, JSON and one self-contained HTML file
//! with two inline SVG charts (time to acknowledge per state; states by escalation depth).
//!
//! Every rendering says EXERCISE at its top (and the HTML at its bottom too). Every text
//! that came from a party (scenario text, handles, answers, runner events) is cleaned
//! before it is escaped: control and text-direction characters become U+FFFD, and URLs are
//! defanged (`http` → `hxxp`, `www.` → `www[.]`) so no viewer turns them into links; then
//! HTML entities (HTML, and Markdown, which is often rendered as HTML) and Markdown
//! punctuation are escaped with the round report's helpers. The HTML has no script, no
//! external URL and no font: inline CSS and inline SVG only. JSON carries the exact texts.

use std::fmt::Write;

use super::report::{AfterAction, AlertReport, StateOutcome};
use super::scenario::fmt_drill_time;
use crate::round::render::{fmt_duration, fmt_utc, html_escape, md_escape};
use crate::signed::is_bidi_control;

/// Party text made safe to show: control and text-direction characters replaced (line
/// breaks kept), URLs defanged.
pub fn defang(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if (c.is_control() && c != '\n') || is_bidi_control(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    let mut out = String::with_capacity(cleaned.len());
    let mut rest = cleaned.as_str();
    while let Some(c) = rest.chars().next() {
        let lower = rest.get(..4).map(|p| p.to_ascii_lowercase());
        if lower.as_deref() == Some("http") {
            out.push_str("hxxp");
            rest = &rest[4..];
        } else if lower.as_deref() == Some("www.") {
            out.push_str("www[.]");
            rest = &rest[4..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn h(s: &str) -> String {
    html_escape(&defang(s))
}

fn m(s: &str) -> String {
    md_escape(&defang(s))
}

fn pct(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

fn drill(ms: Option<u64>) -> String {
    ms.map(fmt_drill_time).unwrap_or_else(|| "–".into())
}

fn real(ms: Option<u64>) -> String {
    ms.map(|t| {
        if t < 60_000 {
            format!("{:.1}s", t as f64 / 1000.0)
        } else {
            fmt_duration(t)
        }
    })
    .unwrap_or_else(|| "–".into())
}

fn reach_sentence(a: &AfterAction) -> Vec<String> {
    a.reachability
        .iter()
        .map(|r| {
            let alert = a
                .alerts
                .iter()
                .find(|x| x.alert_id == r.alert_id)
                .map(|x| x.index)
                .unwrap_or(0);
            match r.rate {
                Some(rate) => format!(
                    "Alert {alert}: {} of {} states whose primary did not acknowledge within one window but had a live alternate acknowledged within two windows ({}; target 100%) — {}.",
                    r.within_two_windows.len(),
                    r.eligible.len(),
                    pct(rate),
                    if r.target_met { "target met" } else { "TARGET MISSED" }
                ),
                None => format!(
                    "Alert {alert}: no state needed its alternate ({} states' primaries did not acknowledge within one window, none with a live alternate) — target not applicable.",
                    r.primary_silent.len()
                ),
            }
        })
        .collect()
}

impl AfterAction {
    /// The report as pretty JSON (the field names of [`AfterAction`]; texts exact).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    fn provenance(&self) -> String {
        if self.verified {
            format!(
                "re-derived from the signed drill record; every signature verified (directory {})",
                if self.directory_pinned {
                    "pinned by the verifier"
                } else {
                    "as named in the record, not pinned"
                }
            )
        } else {
            "computed by the runner from its own record (not re-verified)".into()
        }
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# EXERCISE — after-action report: {}\n", m(&self.scenario));
        let _ = writeln!(
            o,
            "> **EXERCISE — DRILL ONLY.** Everything below happened in a drill. Nothing in it is a real incident.\n"
        );
        if !self.description.is_empty() {
            let _ = writeln!(o, "{}\n", m(&self.description));
        }
        let _ = writeln!(o, "- Record: {}", self.provenance());
        if let Some(c) = &self.controller {
            let _ = writeln!(o, "- Drill controller key: `{}`", m(c));
        }
        let _ = writeln!(o, "- Directory: {}", m(&self.directory));
        let _ = writeln!(
            o,
            "- Started {}, ended {}{}",
            fmt_utc(self.started_ms),
            fmt_utc(self.ended_ms),
            if self.ended_early { " (ended early)" } else { "" }
        );
        let _ = writeln!(
            o,
            "- Clock: one wall-clock second = {} drill seconds; drill time {} of {} planned ({} wall-clock)",
            self.clock_rate,
            fmt_drill_time(self.duration_drill_ms),
            fmt_drill_time(self.planned_drill_ms),
            real(Some(self.duration_ms))
        );
        let p = &self.participants;
        let _ = writeln!(
            o,
            "- Participants: {} in {} states ({} simulated, {} human); stale records: {}; keys rotated: {}",
            p.total, p.states, p.simulated, p.humans, p.stale, p.rotated
        );
        let profiles: Vec<String> = p.by_profile.iter().map(|(k, v)| format!("{} {v}", m(k))).collect();
        let _ = writeln!(o, "- Profiles: {}\n", profiles.join(", "));

        let _ = writeln!(o, "## Reachability target\n");
        if self.reachability.is_empty() {
            let _ = writeln!(o, "No escalation alert was sent.\n");
        }
        for s in reach_sentence(self) {
            let _ = writeln!(o, "**{s}**\n");
        }
        for r in &self.reachability {
            if !r.missed.is_empty() {
                let _ = writeln!(
                    o,
                    "Missed: {}\n",
                    r.missed.iter().map(|s| m(s)).collect::<Vec<_>>().join(", ")
                );
            }
        }

        for a in self.alerts.iter().filter(|a| a.kind == "alert") {
            let _ = writeln!(o, "## Time to acknowledge — alert {}: {}\n", a.index, m(&a.headline));
            self.md_alert_head(&mut o, a);
            let _ = writeln!(
                o,
                "| State | Outcome | Acknowledged by | Time to ack (drill) | Time to ack (real) | Escalation depth |\n|---|---|---|---:|---:|---|"
            );
            for s in &a.states {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} ({}) |",
                    m(&s.state),
                    s.outcome.as_str(),
                    s.acknowledged_by.as_deref().map(m).unwrap_or_else(|| "–".into()),
                    drill(s.time_to_ack_drill_ms),
                    real(s.time_to_ack_ms),
                    s.depth,
                    m(&s.depth_label)
                );
            }
            let _ = writeln!(o);
        }
        let follow: Vec<&AlertReport> = self.alerts.iter().filter(|a| a.kind != "alert").collect();
        if !follow.is_empty() {
            let _ = writeln!(o, "## Updates and all-clears\n");
            let _ = writeln!(
                o,
                "| # | Kind | T+ | Headline | Recipients | Delivered | Read |\n|---:|---|---:|---|---:|---:|---:|"
            );
            for a in follow {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    a.index,
                    a.kind,
                    fmt_drill_time(a.at_drill_ms),
                    m(&a.headline),
                    a.recipients,
                    a.delivered,
                    a.read
                );
            }
            let _ = writeln!(o);
        }

        let _ = writeln!(o, "## Unreachable POCs\n");
        if self.unreachable.is_empty() {
            let _ = writeln!(o, "Every alerted POC whose release fell due acknowledged.\n");
        } else {
            let _ = writeln!(
                o,
                "| Alert | POC | Profile | Released (T+) | Why |\n|---:|---|---|---:|---|"
            );
            for u in &self.unreachable {
                let idx = self
                    .alerts
                    .iter()
                    .find(|a| a.alert_id == u.alert_id)
                    .map(|a| a.index)
                    .unwrap_or(0);
                let why: Vec<&str> = u.reasons.iter().map(|r| r.as_str()).collect();
                let _ = writeln!(
                    o,
                    "| {idx} | {} | {} | {} | {} |",
                    m(&u.handle),
                    m(&u.profile),
                    fmt_drill_time(u.released_drill_ms),
                    why.join(", ")
                );
            }
            let _ = writeln!(o);
        }

        let _ = writeln!(o, "## Verification rounds\n");
        if self.rounds.is_empty() {
            let _ = writeln!(o, "None.\n");
        } else {
            let _ = writeln!(
                o,
                "| # | T+ | Request | Targets | Answered | Late | Rate | Median (drill) | Reminders | States without answer |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
            );
            for r in &self.rounds {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.index,
                    fmt_drill_time(r.at_drill_ms),
                    m(&r.request),
                    r.targets,
                    r.answered,
                    r.late,
                    pct(r.rate),
                    drill(r.median_drill_ms),
                    r.reminders_released,
                    list_md(&r.states_without_answer)
                );
            }
            let _ = writeln!(o);
        }

        if !self.questions.is_empty() {
            let _ = writeln!(o, "## Answers to the injected questions\n");
            let _ = writeln!(
                o,
                "Answers are shown as written (never translated); the language is detected from the words.\n"
            );
        }
        for q in &self.questions {
            let _ = writeln!(
                o,
                "### {}{}\n",
                q.number.map(|n| format!("Question {n}: ")).unwrap_or_default(),
                m(&q.question)
            );
            if q.answers.is_empty() {
                let _ = writeln!(o, "No answers.\n");
            } else {
                let _ = writeln!(
                    o,
                    "| State | POC | Language | Answer | Time (drill) |\n|---|---|---|---|---:|"
                );
                for a in &q.answers {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {} | {}{} |",
                        m(&a.state),
                        m(&a.handle),
                        a.language.unwrap_or("?"),
                        m(&a.text),
                        drill(a.time_to_answer_drill_ms),
                        if a.late { " (late)" } else { "" }
                    );
                }
                let _ = writeln!(o);
            }
            let _ = writeln!(o, "States without an answer: {}\n", list_md(&q.states_without_answer));
        }

        if !self.messages.is_empty() {
            let _ = writeln!(o, "## Messages\n");
            let _ = writeln!(
                o,
                "| # | T+ | From | Subject | Recipients | Delivered | Read |\n|---:|---:|---|---|---:|---:|---:|"
            );
            for x in &self.messages {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    x.index,
                    fmt_drill_time(x.at_drill_ms),
                    m(&x.from),
                    m(&x.subject),
                    x.recipients,
                    x.delivered,
                    x.read
                );
            }
            let _ = writeln!(o);
        }

        if !self.humans.is_empty() {
            let _ = writeln!(o, "## Human participants\n");
        }
        for hu in &self.humans {
            let _ = writeln!(o, "### {}\n", m(&hu.handle));
            for a in &hu.alerts {
                let _ = writeln!(
                    o,
                    "- {} {}: delivered {}, read {}, acknowledged {}{}",
                    a.kind,
                    m(&a.alert_id[..8.min(a.alert_id.len())]),
                    opt_utc(a.delivered_ms),
                    opt_utc(a.read_ms),
                    opt_utc(a.acknowledged_ms),
                    a.time_to_ack_drill_ms
                        .map(|t| format!(" ({} after the alert, drill time)", fmt_drill_time(t)))
                        .unwrap_or_default()
                );
            }
            for r in &hu.rounds {
                let _ = writeln!(
                    o,
                    "- round {}: {}{}",
                    r.round,
                    r.answered_ms
                        .map(|t| format!("answered {}", fmt_utc(t)))
                        .unwrap_or_else(|| "no answer".into()),
                    r.text.as_deref().map(|t| format!(" — “{}”", m(t))).unwrap_or_default()
                );
            }
            for x in &hu.messages {
                let _ = writeln!(
                    o,
                    "- message {}: delivered {}, read {}",
                    x.message,
                    opt_utc(x.delivered_ms),
                    opt_utc(x.read_ms)
                );
            }
            let _ = writeln!(o);
        }

        let _ = writeln!(o, "## Timeline\n");
        let _ = writeln!(
            o,
            "Source: *signed* — a signed record says so; *derived* — computed from signed records; *runner (unsigned)* — the runner's own log.\n"
        );
        let _ = writeln!(o, "| T+ (drill) | UTC | Source | Event |\n|---:|---|---|---|");
        for e in &self.timeline {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                fmt_drill_time(e.drill_ms),
                fmt_utc(e.at_ms),
                source_words(e.source),
                m(&e.text)
            );
        }
        let _ = writeln!(o, "\n*EXERCISE — end of the drill report.*");
        o
    }

    fn md_alert_head(&self, o: &mut String, a: &AlertReport) {
        let _ = writeln!(
            o,
            "From {} at T+{} ({}); window {} (drill), {} repeat(s); {} recipients, {} delivered, {} acknowledged; {} of {} states acknowledged, {} unreached; median time to acknowledge {} (drill).{}\n",
            m(&a.sender),
            fmt_drill_time(a.at_drill_ms),
            fmt_utc(a.accepted_ms),
            fmt_drill_time(a.window_drill_ms),
            a.repeats,
            a.recipients,
            a.delivered,
            a.acknowledged,
            a.states_acknowledged,
            a.states.len(),
            a.states_unreached,
            drill(a.median_ack_drill_ms),
            a.stopped_ms
                .map(|t| format!(" Stopped by the all-clear at {}.", fmt_utc(t)))
                .unwrap_or_default()
        );
    }

    /// One self-contained HTML file: inline CSS, inline SVG charts, no script, no external
    /// URL or font.
    pub fn to_html(&self) -> String {
        let mut o = String::new();
        o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        let _ = writeln!(
            o,
            "<title>EXERCISE — after-action report: {}</title>",
            h(&self.scenario)
        );
        o.push_str(
            "<style>\nbody{font-family:sans-serif;margin:2em;color:#222}\n\
             .exercise{background:#b00;color:#fff;font-weight:bold;font-size:1.3em;padding:.5em 1em;text-align:center;letter-spacing:.1em}\n\
             .target{border:3px solid #333;padding:.75em 1em;font-size:1.15em;margin:1em 0}\n\
             .met{border-color:#2a6;background:#eef9f0}.missed{border-color:#b00;background:#fbeaea}\n\
             table{border-collapse:collapse;margin:1em 0}\ntd,th{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}\n\
             td.n{text-align:right}\n.acknowledged{background:#d9f2d9}.unreached{background:#f4c7c7}.stopped{background:#dde4f2}.pending{background:#f5f0c8}\n\
             .answer{white-space:pre-wrap;max-width:50em}\n.runner{color:#666;font-style:italic}\n\
             svg text{font-family:sans-serif;font-size:11px}\n</style>\n</head>\n<body>\n",
        );
        o.push_str("<div class=\"exercise\">EXERCISE — DRILL ONLY — NOT A REAL INCIDENT</div>\n");
        let _ = writeln!(o, "<h1>After-action report: {}</h1>", h(&self.scenario));
        if !self.description.is_empty() {
            let _ = writeln!(o, "<p class=\"answer\">{}</p>", h(&self.description));
        }
        let p = &self.participants;
        let profiles: Vec<String> = p.by_profile.iter().map(|(k, v)| format!("{} {v}", h(k))).collect();
        let _ = writeln!(
            o,
            "<ul><li>Record: {}</li>{}<li>Directory: {}</li><li>Started {}, ended {}{}</li>\
             <li>Clock: one wall-clock second = {} drill seconds; drill time {} of {} planned ({} wall-clock)</li>\
             <li>Participants: {} in {} states ({} simulated, {} human); stale records: {}; keys rotated: {}</li>\
             <li>Profiles: {}</li></ul>",
            h(&self.provenance()),
            self.controller
                .as_deref()
                .map(|c| format!("<li>Drill controller key: <code>{}</code></li>", h(c)))
                .unwrap_or_default(),
            h(&self.directory),
            fmt_utc(self.started_ms),
            fmt_utc(self.ended_ms),
            if self.ended_early { " (ended early)" } else { "" },
            self.clock_rate,
            fmt_drill_time(self.duration_drill_ms),
            fmt_drill_time(self.planned_drill_ms),
            real(Some(self.duration_ms)),
            p.total,
            p.states,
            p.simulated,
            p.humans,
            p.stale,
            p.rotated,
            profiles.join(", ")
        );

        o.push_str("<h2>Reachability target</h2>\n");
        if self.reachability.is_empty() {
            o.push_str("<p>No escalation alert was sent.</p>\n");
        }
        for (r, s) in self.reachability.iter().zip(reach_sentence(self)) {
            let _ = writeln!(
                o,
                "<div class=\"target {}\">{}{}</div>",
                if r.target_met { "met" } else { "missed" },
                h(&s),
                if r.missed.is_empty() {
                    String::new()
                } else {
                    format!("<br>Missed: {}", list_html(&r.missed))
                }
            );
        }

        for a in self.alerts.iter().filter(|a| a.kind == "alert") {
            let _ = writeln!(
                o,
                "<h2>Time to acknowledge — alert {}: {}</h2>",
                a.index,
                h(&a.headline)
            );
            let _ = writeln!(
                o,
                "<p>From {} at T+{} ({}); window {} (drill), {} repeat(s); {} recipients, {} delivered, {} acknowledged; {} of {} states acknowledged, {} unreached; median time to acknowledge {} (drill).</p>",
                h(&a.sender),
                fmt_drill_time(a.at_drill_ms),
                fmt_utc(a.accepted_ms),
                fmt_drill_time(a.window_drill_ms),
                a.repeats,
                a.recipients,
                a.delivered,
                a.acknowledged,
                a.states_acknowledged,
                a.states.len(),
                a.states_unreached,
                drill(a.median_ack_drill_ms)
            );
            o.push_str(&svg_ack_bars(a));
            o.push_str("<h3>States by escalation depth reached</h3>\n");
            o.push_str(&svg_depth(a));
            o.push_str("<table>\n<tr><th>State</th><th>Outcome</th><th>Acknowledged by</th><th>Time to ack (drill)</th><th>Time to ack (real)</th><th>Escalation depth</th></tr>\n");
            for s in &a.states {
                let _ = writeln!(
                    o,
                    "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{} ({})</td></tr>",
                    outcome_class(s.outcome),
                    h(&s.state),
                    s.outcome.as_str(),
                    s.acknowledged_by.as_deref().map(h).unwrap_or_else(|| "–".into()),
                    drill(s.time_to_ack_drill_ms),
                    real(s.time_to_ack_ms),
                    s.depth,
                    h(&s.depth_label)
                );
            }
            o.push_str("</table>\n");
        }
        let follow: Vec<&AlertReport> = self.alerts.iter().filter(|a| a.kind != "alert").collect();
        if !follow.is_empty() {
            o.push_str("<h2>Updates and all-clears</h2>\n<table>\n<tr><th>#</th><th>Kind</th><th>T+</th><th>Headline</th><th>Recipients</th><th>Delivered</th><th>Read</th></tr>\n");
            for a in follow {
                let _ = writeln!(
                    o,
                    "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    a.index,
                    a.kind,
                    fmt_drill_time(a.at_drill_ms),
                    h(&a.headline),
                    a.recipients,
                    a.delivered,
                    a.read
                );
            }
            o.push_str("</table>\n");
        }

        o.push_str("<h2>Unreachable POCs</h2>\n");
        if self.unreachable.is_empty() {
            o.push_str("<p>Every alerted POC whose release fell due acknowledged.</p>\n");
        } else {
            o.push_str(
                "<table>\n<tr><th>Alert</th><th>POC</th><th>Profile</th><th>Released (T+)</th><th>Why</th></tr>\n",
            );
            for u in &self.unreachable {
                let idx = self
                    .alerts
                    .iter()
                    .find(|a| a.alert_id == u.alert_id)
                    .map(|a| a.index)
                    .unwrap_or(0);
                let why: Vec<&str> = u.reasons.iter().map(|r| r.as_str()).collect();
                let _ = writeln!(
                    o,
                    "<tr><td class=\"n\">{idx}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                    h(&u.handle),
                    h(&u.profile),
                    fmt_drill_time(u.released_drill_ms),
                    why.join(", ")
                );
            }
            o.push_str("</table>\n");
        }

        o.push_str("<h2>Verification rounds</h2>\n");
        if self.rounds.is_empty() {
            o.push_str("<p>None.</p>\n");
        } else {
            o.push_str("<table>\n<tr><th>#</th><th>T+</th><th>Request</th><th>Targets</th><th>Answered</th><th>Late</th><th>Rate</th><th>Median (drill)</th><th>Reminders</th><th>States without answer</th></tr>\n");
            for r in &self.rounds {
                let _ = writeln!(
                    o,
                    "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                    r.index,
                    fmt_drill_time(r.at_drill_ms),
                    h(&r.request),
                    r.targets,
                    r.answered,
                    r.late,
                    pct(r.rate),
                    drill(r.median_drill_ms),
                    r.reminders_released,
                    list_html(&r.states_without_answer)
                );
            }
            o.push_str("</table>\n");
        }

        if !self.questions.is_empty() {
            o.push_str("<h2>Answers to the injected questions</h2>\n<p>Answers are shown as written (never translated); the language is detected from the words.</p>\n");
        }
        for q in &self.questions {
            let _ = writeln!(
                o,
                "<h3>{}{}</h3>",
                q.number.map(|n| format!("Question {n}: ")).unwrap_or_default(),
                h(&q.question)
            );
            if q.answers.is_empty() {
                o.push_str("<p>No answers.</p>\n");
            } else {
                o.push_str("<table>\n<tr><th>State</th><th>POC</th><th>Language</th><th>Answer</th><th>Time (drill)</th></tr>\n");
                for a in &q.answers {
                    let _ = writeln!(
                        o,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"answer\">{}</td><td class=\"n\">{}{}</td></tr>",
                        h(&a.state),
                        h(&a.handle),
                        a.language.unwrap_or("?"),
                        h(&a.text),
                        drill(a.time_to_answer_drill_ms),
                        if a.late { " (late)" } else { "" }
                    );
                }
                o.push_str("</table>\n");
            }
            let _ = writeln!(
                o,
                "<p>States without an answer: {}</p>",
                list_html(&q.states_without_answer)
            );
        }

        if !self.messages.is_empty() {
            o.push_str("<h2>Messages</h2>\n<table>\n<tr><th>#</th><th>T+</th><th>From</th><th>Subject</th><th>Recipients</th><th>Delivered</th><th>Read</th></tr>\n");
            for x in &self.messages {
                let _ = writeln!(
                    o,
                    "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    x.index,
                    fmt_drill_time(x.at_drill_ms),
                    h(&x.from),
                    h(&x.subject),
                    x.recipients,
                    x.delivered,
                    x.read
                );
            }
            o.push_str("</table>\n");
        }

        if !self.humans.is_empty() {
            o.push_str("<h2>Human participants</h2>\n");
        }
        for hu in &self.humans {
            let _ = writeln!(o, "<h3>{}</h3>\n<ul>", h(&hu.handle));
            for a in &hu.alerts {
                let _ = writeln!(
                    o,
                    "<li>{} <code>{}</code>: delivered {}, read {}, acknowledged {}{}</li>",
                    a.kind,
                    h(&a.alert_id[..8.min(a.alert_id.len())]),
                    opt_utc(a.delivered_ms),
                    opt_utc(a.read_ms),
                    opt_utc(a.acknowledged_ms),
                    a.time_to_ack_drill_ms
                        .map(|t| format!(" ({} after the alert, drill time)", fmt_drill_time(t)))
                        .unwrap_or_default()
                );
            }
            for r in &hu.rounds {
                let _ = writeln!(
                    o,
                    "<li>round {}: {}{}</li>",
                    r.round,
                    r.answered_ms
                        .map(|t| format!("answered {}", fmt_utc(t)))
                        .unwrap_or_else(|| "no answer".into()),
                    r.text
                        .as_deref()
                        .map(|t| format!(" — <span class=\"answer\">{}</span>", h(t)))
                        .unwrap_or_default()
                );
            }
            for x in &hu.messages {
                let _ = writeln!(
                    o,
                    "<li>message {}: delivered {}, read {}</li>",
                    x.message,
                    opt_utc(x.delivered_ms),
                    opt_utc(x.read_ms)
                );
            }
            o.push_str("</ul>\n");
        }

        o.push_str("<h2>Timeline</h2>\n<p>Source: <b>signed</b> — a signed record says so; <b>derived</b> — computed from signed records; <i>runner (unsigned)</i> — the runner's own log.</p>\n<table>\n<tr><th>T+ (drill)</th><th>UTC</th><th>Source</th><th>Event</th></tr>\n");
        for e in &self.timeline {
            let _ = writeln!(
                o,
                "<tr{}><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if e.source == "runner" { " class=\"runner\"" } else { "" },
                fmt_drill_time(e.drill_ms),
                fmt_utc(e.at_ms),
                source_words(e.source),
                h(&e.text)
            );
        }
        o.push_str(
            "</table>\n<div class=\"exercise\">EXERCISE — DRILL ONLY — NOT A REAL INCIDENT</div>\n</body>\n</html>\n",
        );
        o
    }
}

fn source_words(s: &str) -> &'static str {
    match s {
        "signed" => "signed",
        "derived" => "derived",
        _ => "runner (unsigned)",
    }
}

fn outcome_class(o: StateOutcome) -> &'static str {
    match o {
        StateOutcome::Acknowledged => "acknowledged",
        StateOutcome::Unreached => "unreached",
        StateOutcome::Stopped => "stopped",
        StateOutcome::Pending => "pending",
    }
}

fn opt_utc(t: Option<u64>) -> String {
    t.map(fmt_utc).unwrap_or_else(|| "–".into())
}

fn list_md(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter().map(|s| m(s)).collect::<Vec<_>>().join(", ")
    }
}

fn list_html(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter().map(|s| h(s)).collect::<Vec<_>>().join(", ")
    }
}

/// Horizontal bars: each alerted state's time to acknowledge in drill minutes, with the
/// first and second window marked; unacknowledged states labelled instead.
fn svg_ack_bars(a: &AlertReport) -> String {
    let (w, l, r, row, top) = (680.0, 60.0, 150.0, 18.0, 24.0);
    let n = a.states.len().max(1) as f64;
    let hgt = top + row * n + 30.0;
    let win = a.window_drill_ms.max(1) as f64;
    let max = a
        .states
        .iter()
        .filter_map(|s| s.time_to_ack_drill_ms)
        .max()
        .unwrap_or(0)
        .max(a.window_drill_ms * 2)
        .max(1) as f64;
    let x = |ms: f64| l + ms / max * (w - l - r);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\" role=\"img\" aria-label=\"EXERCISE: time to acknowledge per state, drill minutes\">"
    );
    let _ = writeln!(
        o,
        "<text x=\"{l}\" y=\"12\" fill=\"#b00\" font-weight=\"bold\">EXERCISE — time to acknowledge (drill time)</text>"
    );
    for (k, label) in [(1.0, "1 window"), (2.0, "2 windows")] {
        let xx = x(win * k);
        let _ = writeln!(
            o,
            "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{yb:.1}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/><text x=\"{xx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" fill=\"#c00\">{label} ({})</text>",
            fmt_drill_time((win * k) as u64),
            yb = top + row * n,
            ty = top + row * n + 14.0
        );
    }
    for (i, s) in a.states.iter().enumerate() {
        let yy = top + row * i as f64;
        let _ = writeln!(
            o,
            "<text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{}</text>",
            h(&s.state),
            tx = l - 6.0,
            ty = yy + row * 0.7
        );
        match s.time_to_ack_drill_ms {
            Some(t) => {
                let bw = (x(t as f64) - l).max(1.0);
                let colour = if t <= a.window_drill_ms {
                    "#2a6"
                } else if t <= a.window_drill_ms * 2 {
                    "#48a"
                } else {
                    "#c80"
                };
                let _ = writeln!(
                    o,
                    "<rect x=\"{l}\" y=\"{ry:.1}\" width=\"{bw:.1}\" height=\"{rh:.1}\" fill=\"{colour}\"/><text x=\"{tx:.1}\" y=\"{ty:.1}\">{} ({})</text>",
                    fmt_drill_time(t),
                    h(&s.depth_label),
                    ry = yy + 2.0,
                    rh = row - 4.0,
                    tx = l + bw + 4.0,
                    ty = yy + row * 0.7
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "<text x=\"{tx}\" y=\"{ty:.1}\" fill=\"#a00\">{}</text>",
                    s.outcome.as_str(),
                    tx = l + 4.0,
                    ty = yy + row * 0.7
                );
            }
        }
    }
    o.push_str("</svg>\n");
    o
}

/// Vertical bars: how many states the escalation reached each depth in.
fn svg_depth(a: &AlertReport) -> String {
    let max_depth = a.states.iter().map(|s| s.depth).max().unwrap_or(0) as usize;
    let mut counts = vec![0u32; max_depth + 1];
    let mut labels = vec![String::new(); max_depth + 1];
    for s in &a.states {
        counts[s.depth as usize] += 1;
        let l = &mut labels[s.depth as usize];
        if l.is_empty() {
            *l = s.depth_label.clone();
        } else if !l.split(" / ").any(|x| x == s.depth_label) {
            l.push_str(" / ");
            l.push_str(&s.depth_label);
        }
    }
    let (col, l, top, hb) = (150.0, 40.0, 24.0, 160.0);
    let w = l + col * counts.len() as f64 + 20.0;
    let hgt = top + hb + 40.0;
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\" role=\"img\" aria-label=\"EXERCISE: states by escalation depth reached\">"
    );
    let _ = writeln!(
        o,
        "<text x=\"{l}\" y=\"12\" fill=\"#b00\" font-weight=\"bold\">EXERCISE — states by escalation depth</text>"
    );
    for (i, c) in counts.iter().enumerate() {
        let bh = *c as f64 / max * hb;
        let xx = l + col * i as f64 + 10.0;
        let _ = writeln!(
            o,
            "<rect x=\"{xx:.1}\" y=\"{ry:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"#48a\"/><text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{c}</text><text x=\"{cx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\">{i}: {}</text>",
            h(&labels[i]),
            ry = top + hb - bh,
            bw = col - 20.0,
            cx = xx + (col - 20.0) / 2.0,
            ty = top + hb - bh - 4.0,
            ly = top + hb + 16.0
        );
    }
    let _ = writeln!(
        o,
        "<line x1=\"{l}\" y1=\"{yb}\" x2=\"{x2}\" y2=\"{yb}\" stroke=\"#333\"/>\n</svg>",
        yb = top + hb,
        x2 = w - 10.0
    );
    o
}
