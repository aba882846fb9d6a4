//! TLP 2.0 forwarding rules for `pocnet forward`: what may be passed on to whom.
//!
//! - `TLP:RED` is for the named recipients only: it may go to nobody who was not on the
//!   original message (its recipients and its sender).
//! - `TLP:AMBER+STRICT` stays within the recipient's organisation: in pocnet, the forwarder's
//!   own state.
//! - `TLP:AMBER` may be shared on a need-to-know basis (allowed, with a reminder);
//!   `TLP:GREEN` within the community and `TLP:CLEAR` without limit.
//!
//! Exercise traffic may be forwarded only as exercise (the forward copies the flag): the
//! client does that.

use std::fmt;

use pocnet_crypto::Tlp;

/// Why a forward is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardRefusal {
    /// TLP:RED, and these targets (handles) were not on the original message.
    Red {
        /// Handles of the targets that were not on it.
        not_on_it: Vec<String>,
    },
    /// TLP:AMBER+STRICT, and these targets (handles) are outside the forwarder's state.
    AmberStrict {
        /// Handles of the targets outside the state.
        outside: Vec<String>,
        /// The forwarder's state (ISO code).
        state: String,
    },
}

fn list(v: &[String]) -> String {
    match v {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl fmt::Display for ForwardRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardRefusal::Red { not_on_it } => {
                let verb = if not_on_it.len() == 1 { "was" } else { "were" };
                write!(
                    f,
                    "TLP:RED is for the named recipients only: {} {verb} not on the original message. \
                     Ask the sender to add them.",
                    list(not_on_it)
                )
            }
            ForwardRefusal::AmberStrict { outside, state } => {
                let verb = if outside.len() == 1 { "is" } else { "are" };
                write!(
                    f,
                    "TLP:AMBER+STRICT stays within the recipient's organisation: {} {verb} outside {state}. \
                     Forward it only to POCs of {state}, or ask the sender to share it with a lower marking.",
                    list(outside)
                )
            }
        }
    }
}

impl std::error::Error for ForwardRefusal {}

/// Whether a message marked `tlp` may be forwarded to `targets` `(key, handle, state)`.
///
/// `original_recipients`: the keys on the original envelope; `original_sender`: its sender;
/// `forwarder_state`: the forwarder's ISO code. CLEAR, GREEN and AMBER are allowed (for AMBER
/// show [`forward_note`]).
pub fn check_forward(
    tlp: Tlp,
    original_recipients: &[[u8; 32]],
    original_sender: &[u8; 32],
    forwarder_state: &str,
    targets: &[([u8; 32], String, String)],
) -> Result<(), ForwardRefusal> {
    match tlp {
        Tlp::Red => {
            let not_on_it: Vec<String> = targets
                .iter()
                .filter(|(k, _, _)| k != original_sender && !original_recipients.contains(k))
                .map(|(_, h, _)| h.clone())
                .collect();
            if not_on_it.is_empty() {
                Ok(())
            } else {
                Err(ForwardRefusal::Red { not_on_it })
            }
        }
        Tlp::AmberStrict => {
            let outside: Vec<String> = targets
                .iter()
                .filter(|(_, _, s)| s != forwarder_state)
                .map(|(_, h, _)| h.clone())
                .collect();
            if outside.is_empty() {
                Ok(())
            } else {
                Err(ForwardRefusal::AmberStrict {
                    outside,
                    state: forwarder_state.to_string(),
                })
            }
        }
        Tlp::Amber | Tlp::Green | Tlp::Clear => Ok(()),
    }
}

/// The reminder to show when a forward is allowed but limited (TLP:AMBER: need to know).
pub fn forward_note(tlp: Tlp) -> Option<&'static str> {
    match tlp {
        Tlp::Amber => Some(
            "TLP:AMBER: share only on a need-to-know basis, within the recipients' organisations and their clients.",
        ),
        Tlp::Green => Some("TLP:GREEN: share within the community, not publicly."),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(k: u8, h: &str, s: &str) -> ([u8; 32], String, String) {
        ([k; 32], h.into(), s.into())
    }

    #[test]
    fn red_goes_only_to_those_already_on_it() {
        let recips = [[1; 32], [2; 32]];
        let sender = [9; 32];
        // Back to the sender or another original recipient: fine.
        check_forward(
            Tlp::Red,
            &recips,
            &sender,
            "CL",
            &[t(2, "AR.primary", "AR"), t(9, "BR.primary", "BR")],
        )
        .unwrap();
        let e = check_forward(
            Tlp::Red,
            &recips,
            &sender,
            "CL",
            &[t(2, "AR.primary", "AR"), t(3, "CL.alternate", "CL")],
        )
        .unwrap_err();
        assert_eq!(
            e,
            ForwardRefusal::Red {
                not_on_it: vec!["CL.alternate".into()]
            }
        );
        assert_eq!(
            e.to_string(),
            "TLP:RED is for the named recipients only: CL.alternate was not on the original message. \
             Ask the sender to add them."
        );
        let e = check_forward(
            Tlp::Red,
            &recips,
            &sender,
            "CL",
            &[
                t(3, "CL.alternate", "CL"),
                t(4, "PE.primary", "PE"),
                t(5, "MX.primary", "MX"),
            ],
        )
        .unwrap_err();
        assert!(e
            .to_string()
            .contains("CL.alternate, PE.primary and MX.primary were not on the original message"));
    }

    #[test]
    fn amber_strict_stays_in_the_forwarders_state() {
        let recips = [[1; 32]];
        let sender = [9; 32];
        check_forward(Tlp::AmberStrict, &recips, &sender, "CL", &[t(3, "CL.alternate", "CL")]).unwrap();
        // Even someone on the original message, if in another state.
        let e = check_forward(
            Tlp::AmberStrict,
            &recips,
            &sender,
            "CL",
            &[t(3, "CL.alternate", "CL"), t(1, "AR.primary", "AR")],
        )
        .unwrap_err();
        assert_eq!(
            e,
            ForwardRefusal::AmberStrict {
                outside: vec!["AR.primary".into()],
                state: "CL".into()
            }
        );
        assert!(e
            .to_string()
            .starts_with("TLP:AMBER+STRICT stays within the recipient's organisation: AR.primary is outside CL."));
    }

    #[test]
    fn amber_green_clear_may_be_forwarded() {
        let targets = [t(7, "MX.primary", "MX")];
        for tlp in [Tlp::Amber, Tlp::Green, Tlp::Clear] {
            check_forward(tlp, &[[1; 32]], &[9; 32], "CL", &targets).unwrap();
        }
        assert!(forward_note(Tlp::Amber).unwrap().contains("need-to-know"));
        assert_eq!(forward_note(Tlp::Clear), None);
    }
}
