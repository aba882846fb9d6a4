//! The report's four renderings: Markdown, JSON, CSV and one self-contained HTML file.
//!
//! Every text that a party supplied (names, questions, outcome notes) is escaped for the
//! format: HTML entities in HTML (and in Markdown, which is often rendered as HTML), RFC 4180
//! quoting in CSV, where a field starting with `=`, `+`, `-`, `@`, tab or carriage return
//! also gets a leading `'` so no spreadsheet runs it as a formula. The HTML has no script,
//! no external URL and no font: inline CSS and inline SVG only.

use std::fmt::Write;

use super::report::{Report, DAY_MS, HOUR_MS};

/// A Unix-ms time as `YYYY-MM-DD hh:mm:ssZ` (UTC, proleptic Gregorian).
pub fn fmt_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A duration as `45m`, `3h 05m` or `2d 03h`.
pub fn fmt_duration(ms: u64) -> String {
    let mins = ms / 60_000;
    if ms < HOUR_MS {
        format!("{mins}m")
    } else if ms < DAY_MS {
        format!("{}h {:02}m", mins / 60, mins % 60)
    } else {
        format!("{}d {:02}h", ms / DAY_MS, ms % DAY_MS / HOUR_MS)
    }
}

fn pct(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Escapes text for a Markdown table cell: HTML entities, a backslash before Markdown
/// punctuation, and line breaks as spaces.
pub fn md_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\n' | '\r' => o.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' | '(' | ')' | '~' => {
                o.push('\\');
                o.push(c);
            }
            c => o.push(c),
        }
    }
    o
}

/// One CSV field: neutralised against formula injection, then quoted per RFC 4180 if it
/// holds a comma, a quote, CR or LF (or was neutralised).
pub fn csv_field(s: &str) -> String {
    let neutral = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let s = if neutral { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl Report {
    /// The report as pretty JSON (the field names of [`Report`]).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// One row per POC, with a header row, CRLF line ends (RFC 4180).
    pub fn to_csv(&self) -> String {
        let mut o = String::new();
        o.push_str(
            "handle,name,key,state,category,rank,status,challenge_accepted_ms,answer_accepted_ms,\
             time_to_answer_ms,details_changed,stale,delivered,reminders_released,outside_how,\
             outside_at_ms,outside_note\r\n",
        );
        for p in &self.pocs {
            let fields = [
                p.handle.clone(),
                p.name.clone(),
                p.key.clone(),
                p.state.clone(),
                p.category.to_string(),
                p.rank.clone(),
                p.status.as_str().to_string(),
                p.challenge_accepted_ms.to_string(),
                opt(p.answer_accepted_ms),
                opt(p.time_to_answer_ms),
                p.details_changed.to_string(),
                p.stale.to_string(),
                p.delivered.to_string(),
                p.reminders_released.to_string(),
                opt(p.outside.as_ref().map(|x| x.how.clone())),
                opt(p.outside.as_ref().map(|x| x.at_ms)),
                opt(p.outside.as_ref().map(|x| x.note.clone())),
            ];
            let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            o.push_str(&row.join(","));
            o.push_str("\r\n");
        }
        o
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let t = &self.totals;
        let mut o = String::new();
        let _ = writeln!(o, "# Contact verification round {}\n", self.round_id);
        let _ = writeln!(
            o,
            "- Directory: {} (size {})",
            md_escape(&self.origin),
            self.directory_size
        );
        let _ = writeln!(o, "- Started: {}", fmt_utc(self.started_ms));
        let _ = writeln!(o, "- Deadline: {}", fmt_utc(self.deadline_ms));
        let _ = writeln!(o, "- Request: {}", md_escape(&self.request));
        let _ = writeln!(o, "- Reminders due: {}\n", self.reminders_ms.len());
        let _ = writeln!(o, "## Totals\n");
        let _ = writeln!(o, "| Figure | Count |\n|---|---:|");
        for (k, v) in [
            ("Targets", t.targets),
            ("Answered within 1 hour", t.within_1h),
            ("Answered within 24 hours", t.within_24h),
            ("Answered by the deadline", t.by_deadline),
            ("Answered late", t.late),
            ("Never answered", t.never),
            ("Answered outside pocnet", t.outside),
            ("Details changed", t.details_changed),
            ("Stale records (over 12 months)", t.stale),
            ("Unanswered, challenge delivered", t.unanswered_delivered),
            ("Unanswered, challenge never fetched", t.unanswered_never_fetched),
            ("Reminders released", t.reminders_released),
        ] {
            let _ = writeln!(o, "| {k} | {v} |");
        }
        let _ = writeln!(
            o,
            "\nMedian time to answer: {}\n",
            self.median_ms.map(fmt_duration).unwrap_or_else(|| "none".into())
        );
        let _ = writeln!(o, "## States\n");
        let _ = writeln!(
            o,
            "| State | Targets | Answered in pocnet | Outside | Rate | Median time |\n|---|---:|---:|---:|---:|---:|"
        );
        for s in &self.states {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                md_escape(&s.state),
                s.targets,
                s.answered,
                s.outside,
                pct(s.rate),
                s.median_ms.map(fmt_duration).unwrap_or_else(|| "–".into())
            );
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(|s| md_escape(s)).collect::<Vec<_>>().join(", ")
            }
        };
        let _ = writeln!(
            o,
            "\nStates with no POC answering in pocnet: {}",
            list(&self.states_without_answer)
        );
        let _ = writeln!(
            o,
            "\nStates with no POC answering at all: {}\n",
            list(&self.states_unreached)
        );
        let _ = writeln!(o, "## POCs\n");
        let _ = writeln!(
            o,
            "| Handle | Name | Status | Time to answer | Details changed | Stale | Delivered | Reminders | Outside |\n|---|---|---|---:|---|---|---|---:|---|"
        );
        for p in &self.pocs {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md_escape(&p.handle),
                md_escape(&p.name),
                p.status.as_str(),
                p.time_to_answer_ms.map(fmt_duration).unwrap_or_else(|| "–".into()),
                yes(p.details_changed),
                yes(p.stale),
                yes(p.delivered),
                p.reminders_released,
                p.outside
                    .as_ref()
                    .map(|x| md_escape(&format!("{} {} {}", x.how, fmt_utc(x.at_ms), x.note)))
                    .unwrap_or_default()
            );
        }
        o
    }

    /// One self-contained HTML file: inline CSS, two inline SVG charts (response rate over
    /// time; median time to answer by state), the tables. No script, no external URL.
    pub fn to_html(&self) -> String {
        let t = &self.totals;
        let e = html_escape;
        let mut o = String::new();
        o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        let _ = writeln!(o, "<title>Contact verification round {}</title>", e(&self.round_id));
        o.push_str(
            "<style>\nbody{font-family:sans-serif;margin:2em;color:#222}\ntable{border-collapse:collapse;margin:1em 0}\n\
             td,th{border:1px solid #bbb;padding:.25em .5em;text-align:left}\ntd.n{text-align:right}\n\
             .within_1h{background:#d9f2d9}.within_24h{background:#e8f5d0}.by_deadline{background:#f5f0c8}\n\
             .late{background:#f8dcc0}.never{background:#f4c7c7}.outside{background:#dde4f2}\n\
             svg text{font-family:sans-serif;font-size:11px}\n</style>\n</head>\n<body>\n",
        );
        let _ = writeln!(
            o,
            "<h1>Contact verification round <code>{}</code></h1>",
            e(&self.round_id)
        );
        let _ = writeln!(
            o,
            "<ul><li>Directory: {} (size {})</li><li>Started: {}</li><li>Deadline: {}</li><li>Request: {}</li><li>Reminders due: {}</li></ul>",
            e(&self.origin),
            self.directory_size,
            fmt_utc(self.started_ms),
            fmt_utc(self.deadline_ms),
            e(&self.request),
            self.reminders_ms.len()
        );
        o.push_str("<h2>Totals</h2>\n<table>\n");
        for (k, v) in [
            ("Targets", t.targets),
            ("Answered within 1 hour", t.within_1h),
            ("Answered within 24 hours", t.within_24h),
            ("Answered by the deadline", t.by_deadline),
            ("Answered late", t.late),
            ("Never answered", t.never),
            ("Answered outside pocnet", t.outside),
            ("Details changed", t.details_changed),
            ("Stale records (over 12 months)", t.stale),
            ("Unanswered, challenge delivered", t.unanswered_delivered),
            ("Unanswered, challenge never fetched", t.unanswered_never_fetched),
            ("Reminders released", t.reminders_released),
        ] {
            let _ = writeln!(o, "<tr><th>{k}</th><td class=\"n\">{v}</td></tr>");
        }
        let _ = writeln!(
            o,
            "<tr><th>Median time to answer</th><td class=\"n\">{}</td></tr>\n</table>",
            self.median_ms.map(fmt_duration).unwrap_or_else(|| "none".into())
        );
        o.push_str("<h2>Response rate over time</h2>\n");
        o.push_str(&self.svg_response_curve());
        o.push_str("<h2>Median time to answer by state</h2>\n");
        o.push_str(&self.svg_state_bars());
        o.push_str("<h2>States</h2>\n<table>\n<tr><th>State</th><th>Targets</th><th>Answered in pocnet</th><th>Outside</th><th>Rate</th><th>Median time</th></tr>\n");
        for s in &self.states {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                e(&s.state),
                s.targets,
                s.answered,
                s.outside,
                pct(s.rate),
                s.median_ms.map(fmt_duration).unwrap_or_else(|| "–".into())
            );
        }
        o.push_str("</table>\n");
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(|s| e(s)).collect::<Vec<_>>().join(", ")
            }
        };
        let _ = writeln!(
            o,
            "<p>States with no POC answering in pocnet: {}</p>\n<p>States with no POC answering at all: {}</p>",
            list(&self.states_without_answer),
            list(&self.states_unreached)
        );
        o.push_str("<h2>POCs</h2>\n<table>\n<tr><th>Handle</th><th>Name</th><th>Status</th><th>Time to answer</th><th>Details changed</th><th>Stale</th><th>Delivered</th><th>Reminders</th><th>Outside</th></tr>\n");
        for p in &self.pocs {
            let _ = writeln!(
                o,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                p.status.as_str(),
                e(&p.handle),
                e(&p.name),
                p.status.as_str(),
                p.time_to_answer_ms.map(fmt_duration).unwrap_or_else(|| "–".into()),
                yes(p.details_changed),
                yes(p.stale),
                yes(p.delivered),
                p.reminders_released,
                p.outside
                    .as_ref()
                    .map(|x| e(&format!("{} {} {}", x.how, fmt_utc(x.at_ms), x.note)))
                    .unwrap_or_default()
            );
        }
        o.push_str("</table>\n</body>\n</html>\n");
        o
    }

    /// Cumulative share of targets answered in pocnet against hours since the challenge.
    fn svg_response_curve(&self) -> String {
        let (w, h, l, r, top, b) = (640.0, 260.0, 50.0, 20.0, 15.0, 35.0);
        let pts = self.response_curve();
        let window = self.deadline_ms.saturating_sub(self.started_ms);
        let last = pts.last().map(|p| p.0).unwrap_or(0);
        let span_h = (window.max(last).max(HOUR_MS) as f64 / HOUR_MS as f64).ceil();
        let x = |ms: u64| l + (ms as f64 / HOUR_MS as f64) / span_h * (w - l - r);
        let y = |share: f64| top + (1.0 - share) * (h - top - b);
        let mut o = String::new();
        let _ = writeln!(
            o,
            "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Share of POCs answered in pocnet against hours since the challenge\">"
        );
        for i in 0..=4 {
            let s = i as f64 / 4.0;
            let _ = writeln!(
                o,
                "<line x1=\"{l}\" y1=\"{yy:.1}\" x2=\"{x2}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{p}%</text>",
                yy = y(s),
                x2 = w - r,
                tx = l - 5.0,
                ty = y(s) + 4.0,
                p = i * 25
            );
        }
        for i in 0..=5 {
            let hh = span_h * i as f64 / 5.0;
            let xx = l + hh / span_h * (w - l - r);
            let _ = writeln!(
                o,
                "<text x=\"{xx:.1}\" y=\"{ty}\" text-anchor=\"middle\">{hh:.0}h</text>",
                ty = h - b + 15.0
            );
        }
        let _ = writeln!(
            o,
            "<text x=\"{cx}\" y=\"{cy}\" text-anchor=\"middle\">hours since the challenge was accepted</text>",
            cx = (l + w - r) / 2.0,
            cy = h - 5.0
        );
        let dx = x(window);
        let _ = writeln!(
            o,
            "<line x1=\"{dx:.1}\" y1=\"{top}\" x2=\"{dx:.1}\" y2=\"{yb}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/><text x=\"{tx:.1}\" y=\"{ty}\" fill=\"#c00\">deadline</text>",
            yb = h - b,
            tx = dx - 45.0,
            ty = top + 10.0
        );
        let mut path = String::new();
        let mut prev = 0.0;
        for (i, (ms, share)) in pts.iter().enumerate() {
            if i == 0 {
                let _ = write!(path, "{:.1},{:.1}", x(*ms), y(*share));
            } else {
                let _ = write!(path, " {:.1},{:.1} {:.1},{:.1}", x(*ms), y(prev), x(*ms), y(*share));
            }
            prev = *share;
        }
        let _ = write!(path, " {:.1},{:.1}", x((span_h * HOUR_MS as f64) as u64), y(prev));
        let _ = writeln!(
            o,
            "<polyline fill=\"none\" stroke=\"#2a6\" stroke-width=\"2\" points=\"{path}\"/>\n<line x1=\"{l}\" y1=\"{yb}\" x2=\"{x2}\" y2=\"{yb}\" stroke=\"#333\"/><line x1=\"{l}\" y1=\"{top}\" x2=\"{l}\" y2=\"{yb}\" stroke=\"#333\"/>\n</svg>",
            yb = h - b,
            x2 = w - r
        );
        o
    }

    /// Horizontal bars: each state's median time to answer in pocnet, in hours.
    fn svg_state_bars(&self) -> String {
        let (w, l, r, row, top) = (640.0, 60.0, 90.0, 18.0, 10.0);
        let h = top + row * self.states.len().max(1) as f64 + 30.0;
        let max = self
            .states
            .iter()
            .filter_map(|s| s.median_ms)
            .max()
            .unwrap_or(HOUR_MS)
            .max(1) as f64;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Median time to answer by state\">"
        );
        for (i, s) in self.states.iter().enumerate() {
            let yy = top + row * i as f64;
            let _ = writeln!(
                o,
                "<text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{}</text>",
                html_escape(&s.state),
                tx = l - 6.0,
                ty = yy + row * 0.7
            );
            match s.median_ms {
                Some(m) => {
                    let bw = (m as f64 / max * (w - l - r)).max(1.0);
                    let _ = writeln!(
                        o,
                        "<rect x=\"{l}\" y=\"{ry:.1}\" width=\"{bw:.1}\" height=\"{rh:.1}\" fill=\"#48a\"/><text x=\"{tx:.1}\" y=\"{ty:.1}\">{}</text>",
                        fmt_duration(m),
                        ry = yy + 2.0,
                        rh = row - 4.0,
                        tx = l + bw + 4.0,
                        ty = yy + row * 0.7
                    );
                }
                None => {
                    let _ = writeln!(
                        o,
                        "<text x=\"{tx}\" y=\"{ty:.1}\" fill=\"#a00\">no answer in pocnet</text>",
                        tx = l + 4.0,
                        ty = yy + row * 0.7
                    );
                }
            }
        }
        let _ = writeln!(
            o,
            "<text x=\"{l}\" y=\"{ty:.1}\">longest median: {}</text>\n</svg>",
            fmt_duration(max as u64),
            ty = h - 8.0
        );
        o
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
