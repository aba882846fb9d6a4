//! What the client shows: view structs (serde `Serialize`, for `--json` and a web view)
//! and their terminal text.
//!
//! **Text from other parties is neutralised.** Subjects, bodies, names, handles, file
//! names and relay messages pass through [`line`] (single-line fields) or [`text`]
//! (bodies) before they reach a terminal: control characters, escape sequences, carriage
//! returns and bidirectional overrides become visible escapes such as `\x1b` or
//! `\u{202e}`. The layout keeps our own labels out of their reach: the TLP label and any
//! UNVERIFIED warning stand on their own lines before the subject, and each body line is
//! shown behind a `| ` gutter, so a sender cannot rewrite a line, hide a warning or
//! fake a TLP label.

use std::fmt::Write as _;

use serde::Serialize;

use crate::app::{SavedAttachment, Sent, Status, SyncStats};
use crate::db::{AttachmentState, StoredMessage};
use crate::types::{Direction, MessageId};

/// Whether `c` could change what a terminal shows beyond printing itself.
fn is_dangerous(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'              // C0 controls, ESC, CR, LF, BEL, BS ...
        | '\u{7f}'                      // DEL
        | '\u{80}'..='\u{9f}'           // C1 controls (CSI, OSC as single code points)
        | '\u{202a}'..='\u{202e}'       // bidi embeddings and overrides
        | '\u{2066}'..='\u{2069}'       // bidi isolates
    )
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

fn neutralise(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\t' || (keep_newlines && c == '\n') || !is_dangerous(c) {
            out.push(c);
        } else {
            escape_into(&mut out, c);
        }
    }
    out
}

/// A single-line field from another party (subject, name, handle, file name, relay
/// message), safe to print: no control characters, no line breaks, no bidi overrides.
pub fn line(s: &str) -> String {
    neutralise(s, false)
}

/// A multi-line text from another party (a body): as [`line`], but line feeds are kept.
pub fn text(s: &str) -> String {
    neutralise(s, true)
}

/// Serialises a view as pretty JSON that is safe on a terminal too: besides the control
/// characters JSON always escapes, DEL, C1 controls and bidi overrides are written as
/// `\uXXXX` escapes (the same string to a JSON parser).
pub fn json<T: Serialize>(v: &T, pretty: bool) -> String {
    let raw = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .unwrap_or_else(|e| format!("{{\"error\":\"cannot render: {e}\"}}"));
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if is_dangerous(c) && !matches!(c, '\n' | ' ') {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SSZ`.
pub fn fmt_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (d, s) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = d as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// An attachment as shown.
#[derive(Clone, Debug, Serialize)]
pub struct AttachmentView {
    /// File name (sender's text).
    pub name: String,
    /// Plaintext size in bytes (as declared and verified).
    pub size: u64,
    /// `sent`, `kept` (received, verified, encrypted in the profile), `missing`, `legacy`.
    pub state: &'static str,
    /// For `sent`: the path it was read from; for `legacy`: what an earlier version noted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For `missing`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A message as listed and shown.
#[derive(Clone, Debug, Serialize)]
pub struct MessageView {
    /// Hex id.
    pub id: MessageId,
    /// In or out.
    pub direction: Direction,
    /// Sender (in) or recipients (out) as shown; an untrusted sender starts `UNVERIFIED`
    /// or `UNKNOWN`.
    pub peer: String,
    /// Whether the sender is not a pinned, matching contact.
    pub peer_unverified: bool,
    /// Recipient handles.
    pub recipients: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// TLP 2.0 label.
    pub tlp: &'static str,
    /// Drill traffic.
    pub exercise: bool,
    /// An alert (rings the terminal bell in `watch`).
    pub alert: bool,
    /// Sender's creation time (Unix ms).
    pub created_at: u64,
    /// When this device stored it (Unix ms).
    pub received_at: u64,
    /// When a person here read it.
    pub read_at: Option<u64>,
    /// Attachments.
    pub attachments: Vec<AttachmentView>,
}

impl From<&StoredMessage> for MessageView {
    fn from(m: &StoredMessage) -> Self {
        MessageView {
            id: m.id,
            direction: m.direction,
            peer: m.peer.to_stored(),
            peer_unverified: m.peer.is_warning(),
            recipients: m.recipients.clone(),
            subject: m.subject.clone(),
            body: m.body.clone(),
            tlp: m.tlp.label(),
            exercise: m.exercise,
            alert: m.content_type == pocnet_crypto::ContentType::Alert,
            created_at: m.created_at,
            received_at: m.received_at,
            read_at: m.read_at,
            attachments: m
                .attachments
                .iter()
                .map(|a| {
                    let (state, path, reason) = match &a.state {
                        AttachmentState::Sent { path } => ("sent", Some(path.clone()), None),
                        AttachmentState::Kept { .. } | AttachmentState::Resealed { .. } => ("kept", None, None),
                        AttachmentState::Missing { reason } => ("missing", None, Some(reason.clone())),
                        AttachmentState::Legacy { text } => ("legacy", Some(text.clone()), None),
                    };
                    AttachmentView {
                        name: a.name.clone(),
                        size: a.size,
                        state,
                        path,
                        reason,
                    }
                })
                .collect(),
        }
    }
}

impl MessageView {
    /// The full message, as `read` and `watch` print it.
    pub fn text(&self) -> String {
        let mut o = String::new();
        // Our labels first, each on a line of its own that no sender text shares.
        let _ = writeln!(o, "[{}]", self.tlp);
        if self.exercise {
            o.push_str("EXERCISE EXERCISE EXERCISE — not a real incident\n");
        }
        if self.peer_unverified {
            o.push_str("WARNING: UNVERIFIED SENDER — this key is not the one pinned for the handle it claims (or is unknown); check with `pocnet verify`\n");
        }
        let _ = writeln!(o, "subject: {}", line(&self.subject));
        let _ = writeln!(o, "id:      {}", self.id);
        let _ = writeln!(o, "from:    {}", line(&self.peer));
        let _ = writeln!(
            o,
            "to:      {}",
            self.recipients.iter().map(|r| line(r)).collect::<Vec<_>>().join(", ")
        );
        let _ = writeln!(o, "sent:    {}", fmt_time(self.created_at));
        for a in &self.attachments {
            let _ = write!(o, "attached: {} ({} bytes, {})", line(&a.name), a.size, a.state);
            if let Some(r) = &a.reason {
                let _ = write!(o, ": {}", line(r));
            }
            o.push('\n');
        }
        // The body behind a gutter: none of its lines can pass for one of ours.
        o.push('\n');
        for l in text(&self.body).split('\n') {
            let _ = writeln!(o, "| {l}");
        }
        let _ = writeln!(o, "\n[{}]", self.tlp);
        o
    }

    /// One line of a listing. Our fields (read flag, id, time, TLP, warnings) come before
    /// any other party's text; the subject is last.
    pub fn list_line(&self) -> String {
        let flag = if self.read_at.is_none() { "*" } else { " " };
        let ex = if self.exercise { " [EXERCISE]" } else { "" };
        let id = self.id.to_hex();
        format!(
            "{flag} {}  {}  {:<18}{ex} {:<14} {}",
            &id[..12],
            fmt_time(self.created_at),
            self.tlp,
            line(&self.peer),
            line(&self.subject)
        )
    }
}

/// What `inbox` shows: the counts of the fetch (if any) and the messages.
#[derive(Clone, Debug, Serialize)]
pub struct InboxView {
    /// What the fetch brought, unless offline.
    pub fetched: Option<SyncStats>,
    /// Messages, newest first.
    pub messages: Vec<MessageView>,
}

impl InboxView {
    /// The one-line summary of the fetch (for standard error).
    pub fn summary(&self) -> Option<String> {
        self.fetched.as_ref().map(|f| {
            format!(
                "{} new, {} receipts{}",
                f.new_messages,
                f.receipts,
                if f.rejected > 0 {
                    format!(", {} REJECTED (failed verification)", f.rejected)
                } else {
                    String::new()
                }
            )
        })
    }

    /// The listing.
    pub fn text(&self) -> String {
        self.messages.iter().map(|m| m.list_line() + "\n").collect()
    }
}

/// What `send` shows.
#[derive(Clone, Debug, Serialize)]
pub struct SentView(pub Sent);

impl SentView {
    /// One line.
    pub fn text(&self) -> String {
        format!(
            "{}  stored at relay {} for {}\n",
            self.0.id,
            fmt_time(self.0.stored_at),
            self.0.recipients.iter().map(|r| line(r)).collect::<Vec<_>>().join(", ")
        )
    }
}

/// What `status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct StatusView(pub Status);

impl StatusView {
    /// The status lines.
    pub fn text(&self) -> String {
        let st = &self.0;
        let mut o = format!("{}  {}\n", st.id, line(&st.subject));
        let _ = writeln!(
            o,
            "sent; stored at relay {}",
            st.stored_at.map(fmt_time).unwrap_or_else(|| "(not confirmed)".into())
        );
        for r in &st.recipients {
            let _ = writeln!(
                o,
                "  {:<16} {:<10} {}",
                line(&r.handle),
                r.state.as_str(),
                r.at.map(fmt_time).unwrap_or_default()
            );
        }
        o
    }
}

/// What `read --save DIR` shows.
#[derive(Clone, Debug, Serialize)]
pub struct SavedView(pub Vec<SavedAttachment>);

impl SavedView {
    /// One line per attachment.
    pub fn text(&self) -> String {
        let mut o = String::new();
        for s in &self.0 {
            match (&s.path, &s.missing) {
                (Some(p), _) => {
                    let _ = writeln!(o, "saved:   {}", line(&p.display().to_string()));
                }
                (None, why) => {
                    let _ = writeln!(
                        o,
                        "MISSING: {} ({})",
                        line(&s.name),
                        line(why.as_deref().unwrap_or("not available"))
                    );
                }
            }
        }
        o
    }
}

/// What `verify` shows.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyView {
    /// The handle.
    pub handle: String,
    /// The directory's display name.
    #[serde(skip)]
    pub name: String,
    /// The key's fingerprint (hex).
    pub fingerprint: String,
    /// Grouped for reading aloud.
    #[serde(skip)]
    pub fingerprint_grouped: String,
    /// The 60-digit safety number.
    pub safety_number: String,
    /// The pinned key's fingerprint, when the directory's key differs.
    pub key_changed_from: Option<String>,
    /// Grouped.
    #[serde(skip)]
    pub key_changed_from_grouped: Option<String>,
    /// Whether this run pinned the key.
    pub accepted: bool,
    /// Where the contact stands on the trust ladder.
    pub trust: String,
}

impl VerifyView {
    /// The text.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let h = line(&self.handle);
        if let Some(old) = &self.key_changed_from_grouped {
            let _ = writeln!(o, "WARNING: the key for {h} CHANGED (you had {old}).");
        }
        let _ = writeln!(
            o,
            "{h} ({})\ntrust:         {}\nfingerprint:   {}\nsafety number: {}",
            line(&self.name),
            self.trust,
            self.fingerprint_grouped,
            grouped_digits(&self.safety_number)
        );
        if self.accepted {
            let _ = writeln!(o, "Marked this key for {h} as voice-verified by you.");
        } else {
            let _ = writeln!(
                o,
                "Read the safety number aloud on a call with {h}; if it matches theirs exactly, run \
                 `pocnet verify {h} --accept <the number>`."
            );
        }
        o
    }
}

fn grouped_digits(d: &str) -> String {
    d.as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Other-party text of several lines (a signed note, evidence), each line neutralised.
pub fn block(s: &str) -> String {
    s.lines()
        .map(|l| format!("| {}", line(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The yearly reminder for one's own stale directory record.
pub fn stale_reminder(p: &pocnet_core::directory::Poc) -> String {
    format!(
        "reminder: your directory record was last confirmed on {}, over a year ago. Check it with \
         `pocnet directory show {}`, then run `pocnet directory confirm` (or `pocnet directory update ...`)",
        crate::ops::directory::date(p.confirmed_ms),
        p.handle_text()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(line("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(line("x\ry"), "x\\ry");
        assert_eq!(line("x\ny"), "x\\ny");
        assert_eq!(line("bell\u{7}"), "bell\\x07");
        assert_eq!(line("del\u{7f}"), "del\\x7f");
        assert_eq!(line("nul\u{0}"), "nul\\x00");
        assert_eq!(line("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(line("c1\u{85}"), "c1\\u{85}");
        assert_eq!(line("tab\tok"), "tab\tok");
    }

    #[test]
    fn bidi_overrides_and_isolates_are_escaped() {
        for (c, esc) in [
            ('\u{202a}', "\\u{202a}"),
            ('\u{202e}', "\\u{202e}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2069}', "\\u{2069}"),
        ] {
            assert_eq!(line(&format!("a{c}b")), format!("a{esc}b"));
            assert_eq!(text(&format!("a{c}b")), format!("a{esc}b"));
        }
    }

    #[test]
    fn bodies_keep_line_feeds_only() {
        assert_eq!(
            text("one\ntwo\r\nthree\u{1b}]0;title\u{7}"),
            "one\ntwo\\r\nthree\\x1b]0;title\\x07"
        );
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for s in [
            "SCL airport — ATC degraded",
            "Überfall auf 機場",
            "عربى",
            "a\\x1b literal",
        ] {
            assert_eq!(line(s), s);
            assert_eq!(text(s), s);
        }
    }

    #[test]
    fn neutralised_output_holds_no_raw_control_bytes() {
        let hostile: String = (0u32..0x250).filter_map(char::from_u32).collect::<String>() + "\u{202e}\u{2066}";
        for out in [line(&hostile), text(&hostile)] {
            assert!(
                !out.chars().any(|c| is_dangerous(c) && c != '\t' && c != '\n'),
                "{out:?}"
            );
        }
        assert!(!line(&hostile).contains('\n'));
    }

    fn view(subject: &str, body: &str, peer_unverified: bool) -> MessageView {
        MessageView {
            id: MessageId([0xab; 16]),
            direction: Direction::In,
            peer: "CL.primary".into(),
            peer_unverified,
            recipients: vec!["MX.primary".into()],
            subject: subject.into(),
            body: body.into(),
            tlp: "TLP:RED",
            exercise: false,
            alert: false,
            created_at: 0,
            received_at: 0,
            read_at: None,
            attachments: vec![],
        }
    }

    #[test]
    fn a_sender_cannot_fake_the_label_or_hide_the_warning() {
        let v = view(
            "x\r[TLP:CLEAR] harmless\u{1b}[1A\u{1b}[2K",
            "hello\nTLP:CLEAR\n[TLP:CLEAR]\r\u{1b}[1A",
            true,
        );
        let out = v.text();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "[TLP:RED]");
        assert!(lines[1].starts_with("WARNING: UNVERIFIED SENDER"));
        assert!(lines[2].starts_with("subject: "));
        // Every line that is exactly a label is ours: the first and the last.
        let labels: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with("[TLP:") || l.starts_with("TLP:"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(labels, vec![0, lines.len() - 1]);
        assert!(lines.iter().all(|l| *l != "[TLP:CLEAR]"));
        assert!(!out.contains('\u{1b}') && !out.contains('\r'));
        assert!(!v.list_line().contains('\u{1b}') && !v.list_line().contains('\r'));
    }

    #[test]
    fn json_escapes_what_a_terminal_would_act_on_and_parses_back_the_same() {
        let v = view("s\u{9b}\u{202e}\u{7f}", "b\u{1b}", false);
        let j = json(&v, true);
        assert!(!j.chars().any(|c| is_dangerous(c) && c != '\n'), "{j}");
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back["subject"], "s\u{9b}\u{202e}\u{7f}");
        assert_eq!(back["body"], "b\u{1b}");
    }
}
