//! Simulated POCs, sans-IO: what a POC with a given response profile does about what reaches
//! it, as a pure function of (profile, state, stimulus, seed).
//!
//! The runner delivers a [`Stimulus`] to a simulated client at drill time `t` and calls
//! [`react`]; on `Some((delay, reaction))` it performs the reaction (signed receipt, signed
//! answer, read receipt) at drill time `t + delay`. Delays are drill milliseconds (convert
//! with [`super::Scenario::to_real_ms`]). Nothing here draws randomness: the delay is derived
//! from the seed and the stimulus with [`splitmix64`], so a drill replays identically.
//!
//! | profile          | alert (new)                     | question / confirm          | message |
//! |------------------|---------------------------------|-----------------------------|---------|
//! | `prompt`         | ack in 1–3 min                  | answer in 1–3 min (English) | read 1–3 min |
//! | `slow`           | ack in 8–12 min                 | answer in 8–12 min          | read 8–12 min |
//! | `silent`         | nothing                         | nothing                     | nothing |
//! | `offline`        | nothing (never connects)        | nothing                     | nothing |
//! | `other-language` | as prompt, note in its language | as prompt, in its language  | as prompt |
//! | `after-reminder` | nothing on the first release; ack 1–2 min after a repeat | nothing without a reminder; 1–2 min after one | nothing |
//! | `human`          | never simulated                 | never simulated             | never simulated |
//!
//! Updates and all-clears (CAP `Update`/`Cancel`) are read, not acknowledged; an `Ack`
//! stimulus gets no reaction.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alert::{Lang, MsgType};

/// How a simulated POC behaves. A human participant is never simulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Acts within 1–3 drill minutes.
    Prompt,
    /// Acts within 8–12 drill minutes (inside a 15-minute window).
    Slow,
    /// Connects and fetches (its device sends Delivered receipts) but never acts.
    Silent,
    /// Never connects, never fetches.
    Offline,
    /// Like prompt, but answers and notes in Spanish, French or Portuguese.
    OtherLanguage(Lang),
    /// Ignores the first delivery; acts 1–2 drill minutes after a repeat or reminder.
    AfterReminder,
    /// A real POC with its own client: never simulated; the report shows what it did.
    Human,
}

impl Profile {
    /// The label used in scenario files, drill records and reports: `prompt`, `slow`,
    /// `silent`, `offline`, `other-language:es` (`:fr`, `:pt`), `after-reminder`, `human`.
    pub fn label(&self) -> String {
        match self {
            Profile::Prompt => "prompt".into(),
            Profile::Slow => "slow".into(),
            Profile::Silent => "silent".into(),
            Profile::Offline => "offline".into(),
            Profile::OtherLanguage(l) => format!("other-language:{}", l.tag()),
            Profile::AfterReminder => "after-reminder".into(),
            Profile::Human => "human".into(),
        }
    }

    /// Parses a label (exactly as [`Profile::label`] writes it; `other-language` needs its
    /// language here, and English is not another language).
    pub fn from_label(s: &str) -> Option<Profile> {
        Some(match s {
            "prompt" => Profile::Prompt,
            "slow" => Profile::Slow,
            "silent" => Profile::Silent,
            "offline" => Profile::Offline,
            "after-reminder" => Profile::AfterReminder,
            "human" => Profile::Human,
            "other-language:es" => Profile::OtherLanguage(Lang::Es),
            "other-language:fr" => Profile::OtherLanguage(Lang::Fr),
            "other-language:pt" => Profile::OtherLanguage(Lang::Pt),
            _ => return None,
        })
    }

    /// Whether this POC can be expected to answer: not offline, not silent (a human counts
    /// as live).
    pub fn is_live(&self) -> bool {
        !matches!(self, Profile::Offline | Profile::Silent)
    }

    /// The language it answers in.
    pub fn language(&self) -> Lang {
        match self {
            Profile::OtherLanguage(l) => *l,
            _ => Lang::En,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl Serialize for Profile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Profile::from_label(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a response profile")))
    }
}

/// What reaches a simulated POC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stimulus {
    /// An alert envelope (message id `alert`) released to it: `repeat` 0 for its own rank's
    /// release, `j` for the j-th repeat to the whole state. `msg_type` is the body's.
    Alert {
        /// The alert's message id.
        alert: [u8; 16],
        /// 0 for the first release, j for the j-th repeat.
        repeat: u8,
        /// The CAP message type inside (Alert, Update, Cancel, Ack).
        msg_type: MsgType,
    },
    /// A round challenge whose request is a question (or one of its reminders).
    Question {
        /// The round.
        round: [u8; 16],
        /// The question text.
        question: String,
        /// `None` for the challenge, `Some(n)` for its n-th reminder.
        reminder: Option<u8>,
    },
    /// A confirm-your-details round challenge (or one of its reminders).
    Confirm {
        /// The round.
        round: [u8; 16],
        /// `None` for the challenge, `Some(n)` for its n-th reminder.
        reminder: Option<u8>,
    },
    /// A person-to-person message.
    Message {
        /// Its message id.
        id: [u8; 16],
    },
}

/// What a simulated POC does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// Sends a signed Acknowledged receipt (and an Ack reply carrying `note`, if any).
    Ack {
        /// The alert acknowledged.
        alert: [u8; 16],
        /// A short note for the Ack reply (in the POC's language).
        note: Option<String>,
    },
    /// Answers a question round with this text (its signed answer's note, ≤ 1000 bytes).
    Answer {
        /// The round.
        round: [u8; 16],
        /// The answer.
        text: String,
    },
    /// Confirms its details in a confirm round.
    Confirm {
        /// The round.
        round: [u8; 16],
    },
    /// Sends a signed Read receipt.
    Read {
        /// The message (or update) read.
        id: [u8; 16],
    },
}

/// One drill minute in drill milliseconds.
pub const MINUTE_MS: u64 = 60_000;

/// The splitmix64 step (Steele, Lea and Flood, 2014): the scenario's only source of
/// "randomness", fully determined by its input.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Folds bytes into a 64-bit value with splitmix64 (not a cryptographic hash; a stable one).
pub fn mix_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = splitmix64(seed ^ bytes.len() as u64);
    for chunk in bytes.chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h = splitmix64(h ^ u64::from_le_bytes(b));
    }
    h
}

/// A delay in `lo..=hi` (drill ms) drawn from the stimulus, the state and the seed.
fn delay(seed: u64, state: &str, id: &[u8; 16], step: u64, lo: u64, hi: u64) -> u64 {
    let h = mix_bytes(
        mix_bytes(seed, state.as_bytes()) ^ step.wrapping_mul(0x1000_0000_01B3),
        id,
    );
    lo + h % (hi - lo + 1)
}

/// What a simulated POC of `profile` in `state` does about `stimulus`: a reaction after a
/// delay (drill ms from the stimulus), or nothing. Deterministic in (profile, state,
/// stimulus, seed); see the module table. Pass a seed per participant (e.g.
/// [`super::Scenario::seed_for`]) so two POCs of one state do not move in lockstep.
pub fn react(profile: &Profile, state: &str, stimulus: &Stimulus, seed: u64) -> Option<(u64, Reaction)> {
    let (id, nudged, step) = match stimulus {
        Stimulus::Alert { alert, repeat, .. } => (alert, *repeat > 0, *repeat as u64),
        Stimulus::Question { round, reminder, .. } | Stimulus::Confirm { round, reminder } => {
            (round, reminder.is_some(), reminder.unwrap_or(0) as u64)
        }
        Stimulus::Message { id } => (id, false, 0),
    };
    let d = match profile {
        Profile::Silent | Profile::Offline | Profile::Human => return None,
        Profile::Prompt | Profile::OtherLanguage(_) => delay(seed, state, id, step, MINUTE_MS, 3 * MINUTE_MS),
        Profile::Slow => delay(seed, state, id, step, 8 * MINUTE_MS, 12 * MINUTE_MS),
        Profile::AfterReminder if nudged => delay(seed, state, id, step, MINUTE_MS, 2 * MINUTE_MS),
        Profile::AfterReminder => return None,
    };
    let lang = profile.language();
    let reaction = match stimulus {
        Stimulus::Alert {
            alert,
            msg_type: MsgType::Alert,
            ..
        } => Reaction::Ack {
            alert: *alert,
            note: Some(ack_note(lang).to_string()),
        },
        Stimulus::Alert {
            msg_type: MsgType::Ack, ..
        } => return None,
        Stimulus::Alert { alert, .. } => Reaction::Read { id: *alert },
        Stimulus::Question { round, question, .. } => Reaction::Answer {
            round: *round,
            text: canned_answer(question, lang).to_string(),
        },
        Stimulus::Confirm { round, .. } => Reaction::Confirm { round: *round },
        Stimulus::Message { id } => Reaction::Read { id: *id },
    };
    Some((d, reaction))
}

/// Which of the four seed questions `text` is (1..=4), by keywords in English, Spanish,
/// French or Portuguese; `None` for any other question.
///
/// 1. How would your agency respond?
/// 2. Do you have formal plans?
/// 3. Which agencies do you notify, and who do you contact if they are unavailable?
/// 4. What is the role of regional organisations?
pub fn question_number(text: &str) -> Option<u8> {
    let t = text.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if any(&[
        "regional",
        "régional",
        "international organi",
        "organismos",
        "organisations internationales",
    ]) {
        Some(4)
    } else if any(&[
        "notify",
        "unavailable",
        "notifica",
        "notifier",
        "indisponible",
        "disponible",
    ]) {
        Some(3)
    } else if any(&[
        "formal plan",
        "plans formels",
        "planes formales",
        "planos formais",
        "plan formel",
    ]) {
        Some(2)
    } else if any(&["respond", "responder", "répond", "réagir", "reagir", "responderia"]) {
        Some(1)
    } else {
        None
    }
}

/// The note a simulated POC puts on its acknowledgement.
pub fn ack_note(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Received. The national CSIRT is assessing and will report back.",
        Lang::Es => "Recibido. El CSIRT nacional está evaluando la situación e informará.",
        Lang::Fr => "Bien reçu. Le CSIRT national évalue la situation et vous tiendra informés.",
        Lang::Pt => "Recebido. O CSIRT nacional está avaliando a situação e informará.",
    }
}

/// A simulated POC's answer to `question` in `lang`: the canned answer to the matching seed
/// question (see [`question_number`]), or a generic one. Every institution named is
/// fictional and generic ("the national CSIRT"); every answer is under 1,000 bytes.
pub fn canned_answer(question: &str, lang: Lang) -> &'static str {
    let q = question_number(question).unwrap_or(0) as usize;
    ANSWERS[q][match lang {
        Lang::En => 0,
        Lang::Es => 1,
        Lang::Fr => 2,
        Lang::Pt => 3,
    }]
}

/// `ANSWERS[q][lang]`: q = 0 generic, 1..=4 the seed questions; lang = en, es, fr, pt.
const ANSWERS: [[&str; 4]; 5] = [
    [
        "Noted. Our team is reviewing the question and will send a fuller answer through the network.",
        "Recibido. Nuestro equipo está revisando la pregunta y enviará una respuesta completa por la red.",
        "Bien noté. Notre équipe examine la question et enverra une réponse complète par le réseau.",
        "Recebido. Nossa equipe está analisando a pergunta e enviará uma resposta completa pela rede.",
    ],
    [
        "The national CSIRT would lead the technical response and open an incident with the civil aviation authority and the airport operator. The cyber policy point of contact informs the foreign ministry and coordinates with affected neighbours through this network. A crisis cell meets within the hour if flights are affected.",
        "El CSIRT nacional dirigiría la respuesta técnica y abriría un incidente con la autoridad de aviación civil y el operador del aeropuerto. El punto de contacto de política cibernética informa a la cancillería y coordina con los vecinos afectados a través de esta red. Una célula de crisis se reúne dentro de la hora si hay vuelos afectados.",
        "Le CSIRT national dirigerait la réponse technique et ouvrirait un incident avec l'autorité de l'aviation civile et l'exploitant de l'aéroport. Le point de contact pour la politique cyber informe le ministère des affaires étrangères et coordonne avec les voisins touchés par ce réseau. Une cellule de crise se réunit dans l'heure si des vols sont touchés.",
        "O CSIRT nacional lideraria a resposta técnica e abriria um incidente com a autoridade de aviação civil e o operador do aeroporto. O ponto de contato de política cibernética informa o ministério das relações exteriores e coordena com os vizinhos afetados por meio desta rede. Uma célula de crise se reúne em até uma hora se houver voos afetados.",
    ],
    [
        "Yes. The national cyber incident response plan covers critical infrastructure, including transport, and names the national CSIRT as coordinator. The aviation annex is being revised; it was last exercised two years ago.",
        "Sí. El plan nacional de respuesta a incidentes cibernéticos cubre la infraestructura crítica, incluido el transporte, y designa al CSIRT nacional como coordinador. El anexo de aviación está en revisión; se ejercitó por última vez hace dos años.",
        "Oui. Le plan national de réponse aux incidents cyber couvre les infrastructures critiques, dont les transports, et désigne le CSIRT national comme coordinateur. L'annexe aviation est en cours de révision ; elle a été exercée il y a deux ans.",
        "Sim. O plano nacional de resposta a incidentes cibernéticos cobre a infraestrutura crítica, incluindo o transporte, e designa o CSIRT nacional como coordenador. O anexo de aviação está em revisão; foi exercitado pela última vez há dois anos.",
    ],
    [
        "We notify the national CSIRT, the civil aviation authority, the airport operator, the police cybercrime unit and the foreign ministry. If the primary contact is unavailable we call the listed alternate, then the duty officer of the national CSIRT, which is staffed around the clock.",
        "Notificamos al CSIRT nacional, a la autoridad de aviación civil, al operador del aeropuerto, a la unidad de delitos informáticos de la policía y a la cancillería. Si el contacto principal no está disponible llamamos al alterno registrado y luego al oficial de guardia del CSIRT nacional, disponible las 24 horas.",
        "Nous notifions le CSIRT national, l'autorité de l'aviation civile, l'exploitant de l'aéroport, l'unité de lutte contre la cybercriminalité de la police et le ministère des affaires étrangères. Si le contact principal est indisponible, nous appelons le suppléant inscrit, puis l'officier de permanence du CSIRT national, joignable jour et nuit.",
        "Notificamos o CSIRT nacional, a autoridade de aviação civil, o operador do aeroporto, a unidade de crimes cibernéticos da polícia e o ministério das relações exteriores. Se o contato principal não estiver disponível, ligamos para o suplente cadastrado e depois para o oficial de plantão do CSIRT nacional, disponível 24 horas.",
    ],
    [
        "Regional organisations help us share indicators quickly, reach counterparts we do not know personally and coordinate public messages across borders. We would also ask the regional CSIRT network for technical assistance if the attack spreads.",
        "Los organismos regionales nos ayudan a compartir indicadores con rapidez, a contactar contrapartes que no conocemos personalmente y a coordinar los mensajes públicos entre países. También pediríamos asistencia técnica a la red regional de CSIRT si el ataque se extiende.",
        "Les organisations régionales nous aident à partager rapidement des indicateurs, à joindre des homologues que nous ne connaissons pas personnellement et à coordonner les messages publics entre pays. Nous demanderions aussi une assistance technique au réseau régional de CSIRT si l'attaque s'étend.",
        "As organizações regionais nos ajudam a compartilhar indicadores rapidamente, a contatar contrapartes que não conhecemos pessoalmente e a coordenar mensagens públicas entre países. Também pediríamos assistência técnica à rede regional de CSIRT se o ataque se espalhar.",
    ],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_answers_fit_a_round_note_and_have_no_control_characters() {
        for row in ANSWERS {
            for a in row {
                crate::signed::text("answer", a, 1, crate::round::format::MAX_NOTE, true).unwrap();
            }
        }
        for l in [Lang::En, Lang::Es, Lang::Fr, Lang::Pt] {
            crate::signed::text("note", ack_note(l), 1, 1000, false).unwrap();
        }
    }

    #[test]
    fn profile_labels_round_trip() {
        for p in [
            Profile::Prompt,
            Profile::Slow,
            Profile::Silent,
            Profile::Offline,
            Profile::OtherLanguage(Lang::Es),
            Profile::OtherLanguage(Lang::Fr),
            Profile::OtherLanguage(Lang::Pt),
            Profile::AfterReminder,
            Profile::Human,
        ] {
            assert_eq!(Profile::from_label(&p.label()), Some(p));
        }
        assert_eq!(Profile::from_label("other-language:en"), None);
        assert_eq!(Profile::from_label("Prompt"), None);
    }
}
