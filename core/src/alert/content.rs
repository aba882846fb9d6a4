//! The alert plaintext: [`AlertBody`], sealed inside a `ContentType::Alert` envelope. The relay
//! never sees it.
//!
//! Format: `postcard(AlertBody)`, version byte first, at most [`MAX_ALERT_BODY`] bytes, parsed
//! strictly (bound, version, canonical re-encoding, nothing after it) and then checked. The
//! structured fields are CAP 1.2's vocabularies (OASIS CAP 1.2 §3.2.1–3.2.2); their variant
//! order is the format: append only.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::plan::{MAX_PLAN_STATES, MAX_REPEATS, MAX_WINDOW_MS, MIN_WINDOW_MS};
use crate::iso3166;
use crate::signed::{decode, encode, field, text, FormatError};

/// The version byte of an alert body.
pub const ALERT_VERSION: u8 = 1;
/// Largest encoded alert body, in bytes.
pub const MAX_ALERT_BODY: usize = 64 * 1024;
/// Longest headline, in UTF-8 bytes (one line).
pub const MAX_HEADLINE: usize = 160;
/// Longest description, in UTF-8 bytes (lines allowed).
pub const MAX_DESCRIPTION: usize = 16 * 1024;
/// Longest instruction, in UTF-8 bytes (lines allowed).
pub const MAX_INSTRUCTION: usize = 4 * 1024;
/// Longest sender handle, in UTF-8 bytes (one line).
pub const MAX_SENDER_HANDLE: usize = 64;
/// At most this many referenced alerts.
pub const MAX_REFERENCES: usize = 64;

const WHAT: &str = "alert body";

macro_rules! cap_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $word:literal,)+ }) => {
        $(#[$m])*
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $v,)+
        }

        impl $name {
            /// Every value, in format order.
            pub const ALL: &'static [$name] = &[$($name::$v,)+];

            /// The CAP 1.2 word, e.g. `Severe`.
            pub fn as_cap(&self) -> &'static str {
                match self {
                    $($name::$v => $word,)+
                }
            }

            /// Parses a CAP word, in any case (`severe`, `SEVERE`, `Severe`).
            pub fn parse_cli(s: &str) -> Option<Self> {
                let s = s.trim();
                Self::ALL.iter().copied().find(|v| v.as_cap().eq_ignore_ascii_case(s))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_cap())
            }
        }
    };
}

cap_enum! {
    /// CAP `msgType` (without `Error`, which pocnet does not send).
    MsgType {
        /// A new alert.
        Alert = "Alert",
        /// Updates and supersedes the referenced alert.
        Update = "Update",
        /// Cancels the referenced alert.
        Cancel = "Cancel",
        /// Acknowledges the referenced alert.
        Ack = "Ack",
    }
}

cap_enum! {
    /// CAP `category`.
    Category {
        /// Geophysical (landslide, earthquake, …).
        Geo = "Geo",
        /// Meteorological.
        Met = "Met",
        /// General emergency and public safety.
        Safety = "Safety",
        /// Law enforcement, military, homeland and local/private security.
        Security = "Security",
        /// Rescue and recovery.
        Rescue = "Rescue",
        /// Fire suppression and rescue.
        Fire = "Fire",
        /// Medical and public health.
        Health = "Health",
        /// Pollution and other environmental.
        Env = "Env",
        /// Public and private transportation.
        Transport = "Transport",
        /// Utility, telecommunication, other non-transport infrastructure.
        Infra = "Infra",
        /// Chemical, biological, radiological, nuclear or high-yield explosive threat or attack.
        Cbrne = "CBRNE",
        /// Other events.
        Other = "Other",
    }
}

cap_enum! {
    /// CAP `severity`.
    Severity {
        /// Extraordinary threat to life or property.
        Extreme = "Extreme",
        /// Significant threat to life or property.
        Severe = "Severe",
        /// Possible threat to life or property.
        Moderate = "Moderate",
        /// Minimal to no known threat to life or property.
        Minor = "Minor",
        /// Severity unknown.
        Unknown = "Unknown",
    }
}

cap_enum! {
    /// CAP `urgency`.
    Urgency {
        /// Responsive action should be taken immediately.
        Immediate = "Immediate",
        /// Responsive action should be taken soon (within the next hour).
        Expected = "Expected",
        /// Responsive action should be taken in the near future.
        Future = "Future",
        /// Responsive action is no longer required.
        Past = "Past",
        /// Urgency not known.
        Unknown = "Unknown",
    }
}

cap_enum! {
    /// CAP `certainty`.
    Certainty {
        /// Determined to have occurred or to be ongoing.
        Observed = "Observed",
        /// Likely (p > ~50%).
        Likely = "Likely",
        /// Possible but not likely (p <= ~50%).
        Possible = "Possible",
        /// Not expected to occur (p ~ 0).
        Unlikely = "Unlikely",
        /// Certainty unknown.
        Unknown = "Unknown",
    }
}

cap_enum! {
    /// CAP `responseType`.
    ResponseType {
        /// Take shelter in place.
        Shelter = "Shelter",
        /// Relocate.
        Evacuate = "Evacuate",
        /// Make preparations.
        Prepare = "Prepare",
        /// Execute a pre-planned activity.
        Execute = "Execute",
        /// Avoid the subject event.
        Avoid = "Avoid",
        /// Attend to information sources.
        Monitor = "Monitor",
        /// Evaluate the information in this message.
        Assess = "Assess",
        /// The subject event no longer poses a threat or concern.
        AllClear = "AllClear",
        /// No action recommended.
        None = "None",
    }
}

/// The plaintext of an alert, an update, a cancel or an acknowledgement. The field order is
/// the format.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AlertBody {
    /// [`ALERT_VERSION`].
    pub version: u8,
    /// CAP msgType.
    pub msg_type: MsgType,
    /// Earlier alert ids (envelope message ids) this one refers to: none for an Alert, at
    /// least one for an Update, Cancel or Ack.
    pub references: Vec<[u8; 16]>,
    /// One line, at most [`MAX_HEADLINE`] bytes; may be empty only for an Ack.
    pub headline: String,
    /// At most [`MAX_DESCRIPTION`] bytes, lines allowed; required for an Alert.
    pub description: String,
    /// At most [`MAX_INSTRUCTION`] bytes, lines allowed, may be empty.
    pub instruction: String,
    /// CAP categories, no value twice; at least one unless Ack or Cancel.
    pub category: Vec<Category>,
    /// CAP severity.
    pub severity: Severity,
    /// CAP urgency.
    pub urgency: Urgency,
    /// CAP certainty.
    pub certainty: Certainty,
    /// CAP response types, no value twice; `None` only alone; `AllClear` only in an Update or
    /// Cancel.
    pub response_type: Vec<ResponseType>,
    /// The acknowledgement window of an Alert (as in its plan); 0 for every other type.
    pub ack_within_ms: u64,
    /// Repeats of an Alert (as in its plan); 0 for every other type.
    pub repeats: u8,
    /// States alerted (ISO 3166-1 alpha-2, unique); at least one for an Alert.
    pub targets: Vec<String>,
    /// When the sender made it (Unix ms, the sender's clock; informational).
    pub sent_ms: u64,
    /// The sender's handle, e.g. `CL.primary` (display only: the envelope signature is what
    /// counts), 1..=[`MAX_SENDER_HANDLE`] bytes, one line.
    pub sender_handle: String,
}

fn unique<T: Eq + std::hash::Hash>(name: &'static str, v: &[T]) -> Result<(), FormatError> {
    let mut seen = HashSet::new();
    if v.iter().all(|x| seen.insert(x)) {
        Ok(())
    } else {
        Err(field(name, "names one value twice"))
    }
}

impl AlertBody {
    /// Checks every rule (see the field docs).
    pub fn check(&self) -> Result<(), FormatError> {
        if self.version != ALERT_VERSION {
            return Err(FormatError::Version {
                what: WHAT,
                found: self.version,
            });
        }
        let is_alert = self.msg_type == MsgType::Alert;
        let min_headline = usize::from(self.msg_type != MsgType::Ack);
        text("headline", &self.headline, min_headline, MAX_HEADLINE, false)?;
        text(
            "description",
            &self.description,
            usize::from(is_alert),
            MAX_DESCRIPTION,
            true,
        )?;
        text("instruction", &self.instruction, 0, MAX_INSTRUCTION, true)?;
        text("sender handle", &self.sender_handle, 1, MAX_SENDER_HANDLE, false)?;
        if is_alert {
            if !self.references.is_empty() {
                return Err(field("references", "must be empty in a new Alert"));
            }
        } else if self.references.is_empty() {
            return Err(field(
                "references",
                format!("are empty: an {} refers to at least one alert", self.msg_type),
            ));
        }
        if self.references.len() > MAX_REFERENCES {
            return Err(field("references", format!("at most {MAX_REFERENCES} are allowed")));
        }
        unique("references", &self.references)?;
        if self.category.is_empty() && !matches!(self.msg_type, MsgType::Ack | MsgType::Cancel) {
            return Err(field("category", format!("is empty: an {} needs one", self.msg_type)));
        }
        unique("category", &self.category)?;
        unique("response type", &self.response_type)?;
        if self.response_type.contains(&ResponseType::None) && self.response_type.len() > 1 {
            return Err(field("response type", "None cannot be combined with another"));
        }
        if self.response_type.contains(&ResponseType::AllClear)
            && !matches!(self.msg_type, MsgType::Update | MsgType::Cancel)
        {
            return Err(field("response type", "AllClear belongs in an Update or a Cancel"));
        }
        if is_alert {
            if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&self.ack_within_ms) {
                return Err(field(
                    "ack window",
                    format!("must be {MIN_WINDOW_MS}..={MAX_WINDOW_MS} ms in an Alert"),
                ));
            }
            if self.repeats > MAX_REPEATS {
                return Err(field("repeats", format!("at most {MAX_REPEATS} are allowed")));
            }
            if self.targets.is_empty() {
                return Err(field("targets", "are empty: an Alert targets at least one state"));
            }
        } else if self.ack_within_ms != 0 || self.repeats != 0 {
            return Err(field(
                "ack window",
                format!("and repeats must be 0 in an {}", self.msg_type),
            ));
        }
        if self.targets.len() > MAX_PLAN_STATES {
            return Err(field("targets", format!("at most {MAX_PLAN_STATES} are allowed")));
        }
        for t in &self.targets {
            if !iso3166::is_assigned(t) {
                return Err(field(
                    "targets",
                    format!("{t:?} is not an assigned ISO 3166-1 alpha-2 code"),
                ));
            }
        }
        unique("targets", &self.targets)
    }

    /// The exact plaintext bytes (checked first).
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        self.check()?;
        let b = encode(WHAT, self)?;
        if b.len() > MAX_ALERT_BODY {
            return Err(FormatError::TooLarge {
                what: WHAT,
                len: b.len(),
                max: MAX_ALERT_BODY,
            });
        }
        Ok(b)
    }

    /// Parses strictly (bound, version, canonical, nothing after it) and checks every rule.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        let b: AlertBody = decode(WHAT, bytes, MAX_ALERT_BODY, 0)?;
        b.check()?;
        Ok(b)
    }

    /// An all-clear: an Update or Cancel whose response types include `AllClear`. It ends the
    /// incident.
    pub fn is_all_clear(&self) -> bool {
        matches!(self.msg_type, MsgType::Update | MsgType::Cancel)
            && self.response_type.contains(&ResponseType::AllClear)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn alert() -> AlertBody {
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
            sent_ms: 1_790_000_000_000,
            sender_handle: "CL.primary".into(),
        }
    }

    pub(crate) fn follow(msg_type: MsgType) -> AlertBody {
        AlertBody {
            msg_type,
            references: vec![[0xa1; 16]],
            ack_within_ms: 0,
            repeats: 0,
            category: vec![],
            response_type: vec![],
            headline: if msg_type == MsgType::Ack {
                String::new()
            } else {
                "Follow-up".into()
            },
            description: String::new(),
            ..alert()
        }
    }

    fn refused(b: &AlertBody, name: &str) {
        match b.check() {
            Err(FormatError::Field { field, .. }) => assert_eq!(field, name, "{b:?}"),
            other => panic!("expected {name} refused, got {other:?}"),
        }
        assert!(b.encode().is_err());
    }

    #[test]
    fn round_trips_every_type() {
        let mut update = follow(MsgType::Update);
        update.category = vec![Category::Security];
        for b in [alert(), update, follow(MsgType::Cancel), follow(MsgType::Ack)] {
            let bytes = b.encode().unwrap();
            assert_eq!(bytes[0], ALERT_VERSION);
            assert_eq!(AlertBody::parse(&bytes).unwrap(), b);
        }
    }

    #[test]
    fn text_bounds_and_characters() {
        let with = |f: fn(&mut AlertBody)| {
            let mut b = alert();
            f(&mut b);
            b
        };
        refused(&with(|b| b.headline = "x".repeat(MAX_HEADLINE + 1)), "headline");
        with(|b| b.headline = "é".repeat(MAX_HEADLINE / 2)).check().unwrap();
        refused(&with(|b| b.headline = "two\nlines".into()), "headline");
        refused(&with(|b| b.headline.clear()), "headline");
        refused(&with(|b| b.headline = "evil \u{202E}txt.exe".into()), "headline");
        refused(&with(|b| b.description = "bell \u{7}".into()), "description");
        refused(&with(|b| b.description = "cr\r\n".into()), "description");
        refused(&with(|b| b.description = "isolate \u{2066}x".into()), "description");
        refused(&with(|b| b.description.clear()), "description");
        refused(
            &with(|b| b.description = "d".repeat(MAX_DESCRIPTION + 1)),
            "description",
        );
        with(|b| b.description = "d".repeat(MAX_DESCRIPTION)).encode().unwrap();
        refused(
            &with(|b| b.instruction = "i".repeat(MAX_INSTRUCTION + 1)),
            "instruction",
        );
        refused(&with(|b| b.instruction = "tab\there".into()), "instruction");
        with(|b| b.instruction = "line one\nline two".into()).check().unwrap();
        refused(&with(|b| b.sender_handle = String::new()), "sender handle");
        refused(&with(|b| b.sender_handle = "CL\u{200F}primary".into()), "sender handle");
        // An Ack may have an empty headline; nothing else may.
        follow(MsgType::Ack).check().unwrap();
        let mut c = follow(MsgType::Cancel);
        c.headline.clear();
        refused(&c, "headline");
    }

    #[test]
    fn structure_rules() {
        let with = |f: fn(&mut AlertBody)| {
            let mut b = alert();
            f(&mut b);
            b
        };
        refused(&with(|b| b.references = vec![[1; 16]]), "references");
        refused(&with(|b| b.category.clear()), "category");
        refused(&with(|b| b.category = vec![Category::Fire, Category::Fire]), "category");
        refused(
            &with(|b| b.response_type = vec![ResponseType::None, ResponseType::Monitor]),
            "response type",
        );
        refused(
            &with(|b| b.response_type = vec![ResponseType::AllClear]),
            "response type",
        );
        refused(&with(|b| b.ack_within_ms = 0), "ack window");
        refused(&with(|b| b.repeats = MAX_REPEATS + 1), "repeats");
        refused(&with(|b| b.targets.clear()), "targets");
        refused(&with(|b| b.targets = vec!["AR".into(), "AR".into()]), "targets");
        refused(&with(|b| b.targets = vec!["EU".into()]), "targets");
        let mut u = follow(MsgType::Update);
        refused(&u, "category");
        u.category = vec![Category::Security];
        u.check().unwrap();
        u.references.clear();
        refused(&u, "references");
        let mut c = follow(MsgType::Cancel);
        c.ack_within_ms = 1000;
        refused(&c, "ack window");
        c.ack_within_ms = 0;
        c.references = vec![[2; 16], [2; 16]];
        refused(&c, "references");
    }

    #[test]
    fn all_clear() {
        assert!(!alert().is_all_clear());
        let mut u = follow(MsgType::Update);
        u.category = vec![Category::Security];
        assert!(!u.is_all_clear());
        u.response_type = vec![ResponseType::AllClear];
        u.check().unwrap();
        assert!(u.is_all_clear());
        let mut c = follow(MsgType::Cancel);
        c.response_type = vec![ResponseType::AllClear];
        assert!(c.is_all_clear());
    }

    #[test]
    fn strict_parse() {
        let bytes = alert().encode().unwrap();
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(AlertBody::parse(&long), Err(FormatError::Tail { .. })));
        let mut v = bytes.clone();
        v[0] = 2;
        assert!(matches!(
            AlertBody::parse(&v),
            Err(FormatError::Version { found: 2, .. })
        ));
        assert!(matches!(
            AlertBody::parse(&vec![1; MAX_ALERT_BODY + 1]),
            Err(FormatError::TooLarge { .. })
        ));
        // msg_type 0 (Alert) as the over-long varint 0x80 0x00.
        assert_eq!(bytes[1], 0);
        let mut over = vec![bytes[0], 0x80, 0x00];
        over.extend_from_slice(&bytes[2..]);
        assert!(matches!(AlertBody::parse(&over), Err(FormatError::NonCanonical { .. })));
        // An unknown msg_type is refused.
        let mut unknown = bytes.clone();
        unknown[1] = 9;
        assert!(matches!(AlertBody::parse(&unknown), Err(FormatError::Decode { .. })));
        // Valid postcard breaking a rule is refused on parse.
        let mut b = alert();
        b.targets = vec!["ZZ".into()];
        let raw = crate::signed::encode(WHAT, &b).unwrap();
        assert!(matches!(
            AlertBody::parse(&raw),
            Err(FormatError::Field { field: "targets", .. })
        ));
    }

    #[test]
    fn cap_words() {
        assert_eq!(Category::Cbrne.as_cap(), "CBRNE");
        assert_eq!(Category::parse_cli("cbrne"), Some(Category::Cbrne));
        assert_eq!(ResponseType::parse_cli("ALLCLEAR"), Some(ResponseType::AllClear));
        assert_eq!(Severity::parse_cli(" severe "), Some(Severity::Severe));
        assert_eq!(Urgency::parse_cli("soon"), None);
        assert_eq!(MsgType::parse_cli("error"), None);
        for c in Category::ALL {
            assert_eq!(Category::parse_cli(&c.as_cap().to_lowercase()), Some(*c));
        }
        assert_eq!(Category::ALL.len(), 12);
        assert_eq!(ResponseType::ALL.len(), 9);
        assert_eq!(Certainty::ALL.len(), 5);
    }
}
