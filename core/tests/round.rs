//! Contact verification rounds: real signatures by the Secretariat, the POCs and a test relay;
//! every claim of `verify_bundle` attacked separately; a scripted mix with exact counts; the
//! renderers' escaping.

use pocnet_core::directory::{Author, Category, Contact, Rank};
use pocnet_core::round::{
    verify_bundle, Acceptance, Answer, AnswerRecord, Bundle, BundleBuilder, BundleError, Challenge, Outcome, Report,
    Request, RoundError, SignedAnswer, Status, Target, TargetRecord,
};
use pocnet_crypto::note::{sign_note, Checkpoint, SignedNote};
use pocnet_crypto::{Identity, Receipt, ReceiptKind};
use pocnet_wire::accept::sign_group;
use sha2::{Digest, Sha256};

const ORIGIN: &str = "oas.example/pocnet-directory";
const H: u64 = 3_600_000;
const D: u64 = 24 * H;
const T0: u64 = 1_790_000_000_000;
const DEADLINE: u64 = T0 + 7 * D;
const ROUND: [u8; 16] = [7; 16];

fn identity() -> Identity {
    Identity::generate(&mut pocnet_crypto::os_rng(), T0 / 1000, 365 * 86_400).unwrap()
}

/// What a scripted POC does.
#[derive(Clone, Copy, Debug)]
enum Does {
    /// Answers (confirming) this long after the challenge was accepted.
    Answers(u64),
    /// Answers with a contact update this long after.
    Updates(u64),
    /// Never answers; `delivered` whether its device fetched the challenge; reminders released.
    Silent { delivered: bool, reminders: u8 },
    /// Answers only by phone (the Secretariat records an outcome).
    Phone,
}

struct World {
    sec: Identity,
    relay: Identity,
    pocs: Vec<Identity>,
    challenge: Challenge,
    checkpoint: String,
    records: Vec<TargetRecord>,
}

fn env_hash(kind: &str, i: usize) -> [u8; 32] {
    Sha256::digest(format!("{kind} envelope {i}").as_bytes()).into()
}

fn challenge_id(i: usize) -> [u8; 16] {
    let mut id = [0xc0; 16];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    id
}

fn checkpoint(sec: &Identity, size: u64) -> String {
    let body = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: [9; 32],
    }
    .body();
    SignedNote {
        signatures: vec![sign_note(&body, ORIGIN, sec)],
        body,
    }
    .to_text()
}

fn contact(name: &str) -> Contact {
    Contact {
        name: name.into(),
        position: "Head of cyber policy".into(),
        institution: "Ministry of Foreign Affairs".into(),
        email: "poc@example.org".into(),
        phones: vec!["+56 2 2827 4200".into()],
        languages: vec!["es".into()],
        time_zone: "America/Santiago".into(),
        working_hours: "Mon-Fri 09:00-18:00".into(),
    }
}

/// Builds a round over `script` (state, rank, name, what the POC does): challenges accepted
/// in one relay group, answers in groups of `group`.
fn world(script: &[(&str, Rank, &str, Does)], group: usize) -> World {
    let sec = identity();
    let relay = identity();
    let pocs: Vec<Identity> = script.iter().map(|_| identity()).collect();
    let challenge = Challenge::new(
        ROUND,
        ORIGIN,
        T0,
        DEADLINE,
        Request::ConfirmDetails,
        vec![T0 + 7 * D / 2, T0 + 7 * D * 9 / 10],
        42,
    );
    let c_items: Vec<([u8; 32], u64)> = (0..script.len())
        .map(|i| (env_hash("challenge", i), T0 + i as u64))
        .collect();
    let c_proofs = sign_group(&relay, &c_items);
    let mut records: Vec<TargetRecord> = Vec::new();
    let mut answers: Vec<(usize, [u8; 32], u64)> = Vec::new();
    for (i, ((state, rank, name, does), poc)) in script.iter().zip(&pocs).enumerate() {
        let handle = match rank {
            Rank::Primary => format!("{state}.primary"),
            Rank::Alternate => format!("{state}.alternate"),
            Rank::Further(n) => format!("{state}.further{n}"),
        };
        let target = Target {
            handle,
            name: name.to_string(),
            key: *poc.public_key().as_bytes(),
            state: state.to_string(),
            category: Category::CyberPolicy,
            rank: *rank,
            stale: i % 7 == 3,
        };
        let c_at = c_items[i].1;
        let mut r = TargetRecord::new(
            target,
            challenge_id(i),
            c_items[i].0,
            Acceptance {
                stored_at_ms: c_at,
                proof: c_proofs[i].clone(),
            },
        );
        let answer = |update: Option<Vec<u8>>, delay: u64| {
            Answer::new(
                ROUND,
                challenge_id(i),
                update.is_none(),
                update,
                "all well",
                c_at + delay,
            )
            .sign(poc)
            .unwrap()
        };
        match *does {
            Does::Answers(delay) | Does::Updates(delay) => {
                let update = matches!(does, Does::Updates(_)).then(|| {
                    Author::new(poc, ORIGIN)
                        .contact_update(c_at + delay, contact(name))
                        .unwrap()
                        .into_bytes()
                });
                let sa = answer(update, delay);
                let eh = env_hash("answer", i);
                answers.push((i, eh, c_at + delay));
                r.answer = Some(AnswerRecord {
                    signed: sa.into_bytes(),
                    envelope_hash: eh,
                    accepted: Acceptance {
                        stored_at_ms: c_at + delay,
                        proof: c_proofs[i].clone(), // replaced below, once the groups are signed
                    },
                });
                r.delivered = Some(delivered(poc, &sec, i, c_at + 1000));
            }
            Does::Silent {
                delivered: d,
                reminders,
            } => {
                if d {
                    r.delivered = Some(delivered(poc, &sec, i, c_at + 1000));
                }
                r.reminders_released = reminders;
            }
            Does::Phone => {
                r.reminders_released = 2;
                r.outcome = Some(
                    Outcome::new(ROUND, poc.public_key(), "phone", T0 + 3 * D, "confirmed by phone")
                        .sign(&sec)
                        .unwrap()
                        .into_bytes(),
                );
            }
        }
        records.push(r);
    }
    // The relay signs answers in the order it accepted them, a few groups.
    answers.sort_by_key(|a| a.2);
    for chunk in answers.chunks(group.max(1)) {
        let items: Vec<([u8; 32], u64)> = chunk.iter().map(|(_, h, t)| (*h, *t)).collect();
        for ((i, _, _), p) in chunk.iter().zip(sign_group(&relay, &items)) {
            records[*i].answer.as_mut().unwrap().accepted.proof = p;
        }
    }
    World {
        checkpoint: checkpoint(&sec, 42),
        sec,
        relay,
        pocs,
        challenge,
        records,
    }
}

fn delivered(poc: &Identity, sec: &Identity, i: usize, at: u64) -> Vec<u8> {
    Receipt::sign(
        poc,
        ReceiptKind::Delivered,
        challenge_id(i),
        env_hash("challenge", i),
        sec.public_key(),
        at,
    )
    .as_bytes()
    .to_vec()
}

impl World {
    /// Signs the manifest over the records as they are now.
    fn bundle(&self) -> Bundle {
        let mut b = BundleBuilder::new(&self.challenge, &self.checkpoint, self.relay.public_key()).unwrap();
        for r in &self.records {
            b.push(r.clone()).unwrap();
        }
        b.finish(&self.sec, DEADLINE + D).unwrap()
    }
}

fn small() -> World {
    world(
        &[
            ("CL", Rank::Primary, "Ana", Does::Answers(10 * 60_000)),
            (
                "CL",
                Rank::Alternate,
                "Bruno",
                Does::Silent {
                    delivered: true,
                    reminders: 2,
                },
            ),
            ("MX", Rank::Primary, "Carla", Does::Updates(5 * H)),
            ("AR", Rank::Primary, "Diego", Does::Phone),
        ],
        2,
    )
}

fn verify(b: &Bundle) -> Result<Report, BundleError> {
    verify_bundle(&b.encode().unwrap()).map(|(_, r)| r)
}

#[test]
fn an_honest_bundle_verifies_and_round_trips() {
    let w = small();
    let b = w.bundle();
    let bytes = b.encode().unwrap();
    let (back, report) = verify_bundle(&bytes).unwrap();
    assert_eq!(back, b);
    assert_eq!(report, Report::compute(&b).unwrap());
    assert_eq!(report.count(Status::Within1h), 1);
    assert_eq!(report.count(Status::Within24h), 1);
    assert_eq!(report.count(Status::Never), 1);
    assert_eq!(report.count(Status::Outside), 1);
    assert_eq!(report.totals.details_changed, 1);
}

fn target_of(e: &BundleError) -> Option<&str> {
    use BundleError::*;
    match e {
        TargetAdded { target }
        | TargetAltered { target }
        | AnswerRemoved { target }
        | AnswerAdded { target }
        | AnswerAltered { target }
        | AnswerSigner { target, .. }
        | AnswerSignature { target, .. }
        | AnswerRound { target }
        | AnswerChallenge { target }
        | AnswerAcceptance { target, .. }
        | AnswerBeforeChallenge { target, .. }
        | ChallengeAcceptance { target, .. }
        | Receipt { target, .. }
        | OutcomeSignature { target, .. }
        | OutcomeMismatch { target, .. } => Some(target),
        _ => None,
    }
}

#[test]
fn answer_removed_is_detected() {
    let w = small();
    let mut b = w.bundle();
    b.targets[0].answer = None;
    let e = verify(&b).unwrap_err();
    assert!(matches!(e, BundleError::AnswerRemoved { .. }), "{e}");
    assert_eq!(target_of(&e), Some("CL.primary"));
}

#[test]
fn answer_added_is_detected() {
    let w = small();
    let mut b = w.bundle();
    // A genuine answer by the silent POC, genuinely accepted by the relay, not in the manifest.
    let sa = Answer::new(ROUND, challenge_id(1), true, None, "", T0 + H)
        .sign(&w.pocs[1])
        .unwrap();
    let eh = env_hash("late answer", 1);
    let proof = sign_group(&w.relay, &[(eh, T0 + H)]).remove(0);
    b.targets[1].answer = Some(AnswerRecord {
        signed: sa.into_bytes(),
        envelope_hash: eh,
        accepted: Acceptance {
            stored_at_ms: T0 + H,
            proof,
        },
    });
    let e = verify(&b).unwrap_err();
    assert!(matches!(e, BundleError::AnswerAdded { .. }), "{e}");
    assert_eq!(target_of(&e), Some("CL.alternate"));
}

#[test]
fn answer_altered_is_detected() {
    let w = small();
    // A byte changed inside the signed answer: the POC's signature fails.
    let mut b = w.bundle();
    let a = b.targets[0].answer.as_mut().unwrap();
    let n = a.signed.len() - 100; // inside the body, the last byte of answered_ms
    a.signed[n] ^= 1;
    let e = verify(&b).unwrap_err();
    assert!(matches!(e, BundleError::AnswerSignature { .. }), "{e}");
    assert_eq!(target_of(&e), Some("CL.primary"));

    // Replaced by another answer the same POC really signed: not the one the manifest lists.
    let mut b = w.bundle();
    let other = Answer::new(ROUND, challenge_id(0), true, None, "something else", T0)
        .sign(&w.pocs[0])
        .unwrap();
    b.targets[0].answer.as_mut().unwrap().signed = other.into_bytes();
    let e = verify(&b).unwrap_err();
    assert!(matches!(e, BundleError::AnswerAltered { .. }), "{e}");
}

#[test]
fn answer_signed_by_another_key_is_refused() {
    let mut w = small();
    let mallory = identity();
    let forged = Answer::new(ROUND, challenge_id(0), true, None, "", T0)
        .sign(&mallory)
        .unwrap();
    w.records[0].answer.as_mut().unwrap().signed = forged.into_bytes();
    // Even with a manifest the Secretariat signed over the forgery.
    let e = verify(&w.bundle()).unwrap_err();
    match &e {
        BundleError::AnswerSigner { target, signer } => {
            assert_eq!(target, "CL.primary");
            assert_eq!(signer, &pocnet_crypto::to_hex(mallory.public_key().as_bytes()));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn answer_to_another_round_or_challenge_is_refused() {
    let mut w = small();
    let other_round = Answer::new([8; 16], challenge_id(0), true, None, "", T0)
        .sign(&w.pocs[0])
        .unwrap();
    w.records[0].answer.as_mut().unwrap().signed = other_round.into_bytes();
    let e = verify(&w.bundle()).unwrap_err();
    assert!(matches!(e, BundleError::AnswerRound { .. }), "{e}");

    let mut w = small();
    let other_challenge = Answer::new(ROUND, challenge_id(2), true, None, "", T0)
        .sign(&w.pocs[0])
        .unwrap();
    w.records[0].answer.as_mut().unwrap().signed = other_challenge.into_bytes();
    let e = verify(&w.bundle()).unwrap_err();
    assert!(matches!(e, BundleError::AnswerChallenge { .. }), "{e}");
}

#[test]
fn back_dating_fails() {
    // The acceptance time changed: the relay's proof no longer holds.
    let w = small();
    let mut b = w.bundle();
    b.targets[2].answer.as_mut().unwrap().accepted.stored_at_ms -= 4 * H;
    let e = verify(&b).unwrap_err();
    assert!(matches!(e, BundleError::AnswerAcceptance { .. }), "{e}");
    assert_eq!(target_of(&e), Some("MX.primary"));
    // Even re-signed by the Secretariat, the relay's signature does not follow.
    let mut w2 = small();
    w2.records[2].answer.as_mut().unwrap().accepted.stored_at_ms -= 4 * H;
    assert!(matches!(
        verify(&w2.bundle()).unwrap_err(),
        BundleError::AnswerAcceptance { .. }
    ));

    // The challenge's time changed (to make the answer look faster): the relay's proof fails.
    let mut b = w.bundle();
    b.targets[2].challenge_accepted.stored_at_ms += 4 * H;
    let e = verify(&b).unwrap_err();
    assert!(matches!(e, BundleError::ChallengeAcceptance { .. }), "{e}");

    // An acceptance the relay really signed, but earlier than the challenge's.
    let mut w = small();
    let a = w.records[2].answer.as_mut().unwrap();
    a.accepted = Acceptance {
        stored_at_ms: T0 - H,
        proof: sign_group(&w.relay, &[(a.envelope_hash, T0 - H)]).remove(0),
    };
    let e = verify(&w.bundle()).unwrap_err();
    assert!(matches!(e, BundleError::AnswerBeforeChallenge { .. }), "{e}");

    // A time signed by another "relay" key.
    let mut w = small();
    let fake_relay = identity();
    let a = w.records[2].answer.as_mut().unwrap();
    a.accepted = Acceptance {
        stored_at_ms: T0 + 1,
        proof: sign_group(&fake_relay, &[(a.envelope_hash, T0 + 1)]).remove(0),
    };
    assert!(matches!(
        verify(&w.bundle()).unwrap_err(),
        BundleError::AnswerAcceptance { .. }
    ));

    // The answer's envelope swapped for the challenge's own (genuinely accepted, earlier).
    let mut w = small();
    let c = w.records[0].challenge_accepted.clone();
    let a = w.records[0].answer.as_mut().unwrap();
    a.envelope_hash = env_hash("challenge", 0);
    a.accepted = c;
    assert!(matches!(
        verify(&w.bundle()).unwrap_err(),
        BundleError::EnvelopeReused { .. }
    ));
}

#[test]
fn answer_envelope_or_time_swapped_after_signing_breaks_the_manifest() {
    // Another target's genuine answer acceptance moved over (relay proof valid for that hash).
    let w = small();
    let mut b = w.bundle();
    let other = b.targets[2].answer.clone().unwrap();
    let a = b.targets[0].answer.as_mut().unwrap();
    a.envelope_hash = other.envelope_hash;
    a.accepted = other.accepted;
    // The reused envelope is caught first or the record hash is.
    let e = verify(&b).unwrap_err();
    assert!(
        matches!(
            e,
            BundleError::TargetAltered { .. } | BundleError::EnvelopeReused { .. }
        ),
        "{e}"
    );
}

#[test]
fn manifest_tampering_fails() {
    let w = small();
    let mut b = w.bundle();
    let n = b.manifest.len() - 1;
    b.manifest[n] ^= 1;
    assert!(matches!(verify(&b).unwrap_err(), BundleError::ManifestSignature(_)));

    // A manifest re-signed by someone else: the checkpoint is not theirs.
    let mallory = identity();
    let mut builder = BundleBuilder::new(&w.challenge, &w.checkpoint, w.relay.public_key()).unwrap();
    for r in &w.records {
        builder.push(r.clone()).unwrap();
    }
    let b = builder.finish(&mallory, DEADLINE).unwrap();
    assert!(matches!(verify(&b).unwrap_err(), BundleError::Checkpoint(_)));

    // Another relay named in the bundle than in the manifest.
    let mut b = w.bundle();
    b.relay = *identity().public_key().as_bytes();
    assert!(matches!(verify(&b).unwrap_err(), BundleError::ManifestMismatch(_)));

    // The challenge changed (a later deadline makes late answers on time).
    let mut b = w.bundle();
    let mut c = w.challenge.clone();
    c.deadline_ms += 30 * D;
    b.challenge = c.encode().unwrap();
    assert!(matches!(verify(&b).unwrap_err(), BundleError::ManifestMismatch(_)));
}

#[test]
fn targets_removed_added_or_altered_fail() {
    let w = small();
    let mut b = w.bundle();
    b.targets.remove(1);
    assert!(matches!(verify(&b).unwrap_err(), BundleError::TargetRemoved { .. }));

    let mut b = w.bundle();
    let mut extra = b.targets[1].clone();
    extra.target.key = *identity().public_key().as_bytes();
    extra.target.handle = "CL.further1".into();
    extra.target.rank = Rank::Further(1);
    b.targets.push(extra);
    let e = verify(&b).unwrap_err();
    assert!(matches!(e, BundleError::TargetAdded { .. }), "{e}");
    assert_eq!(target_of(&e), Some("CL.further1"));

    let mut b = w.bundle();
    b.targets[1].target.stale = !b.targets[1].target.stale;
    assert!(matches!(verify(&b).unwrap_err(), BundleError::TargetAltered { .. }));

    let mut b = w.bundle();
    b.targets[1].reminders_released = 0;
    assert!(matches!(verify(&b).unwrap_err(), BundleError::TargetAltered { .. }));

    let mut b = w.bundle();
    b.targets[1].delivered = None; // "never fetched" instead of "delivered"
    assert!(matches!(verify(&b).unwrap_err(), BundleError::TargetAltered { .. }));

    let mut b = w.bundle();
    b.targets.push(b.targets[0].clone());
    assert!(matches!(verify(&b).unwrap_err(), BundleError::DuplicateTarget { .. }));
}

#[test]
fn receipts_and_outcomes_are_checked() {
    // A receipt signed by someone else than the POC.
    let mut w = small();
    let mallory = identity();
    w.records[1].delivered = Some(delivered(&mallory, &w.sec, 1, T0));
    let e = verify(&w.bundle()).unwrap_err();
    assert!(matches!(e, BundleError::Receipt { .. }), "{e}");
    assert_eq!(target_of(&e), Some("CL.alternate"));

    // A genuine receipt about another envelope.
    let mut w = small();
    w.records[1].delivered = Some(delivered(&w.pocs[1], &w.sec, 2, T0));
    assert!(matches!(verify(&w.bundle()).unwrap_err(), BundleError::Receipt { .. }));

    // An outcome signed by another key than the Secretariat's.
    let mut w = small();
    w.records[3].outcome = Some(
        Outcome::new(ROUND, w.pocs[3].public_key(), "phone", T0, "")
            .sign(&w.pocs[3])
            .unwrap()
            .into_bytes(),
    );
    let e = verify(&w.bundle()).unwrap_err();
    assert!(matches!(e, BundleError::OutcomeSignature { .. }), "{e}");
    assert_eq!(target_of(&e), Some("AR.primary"));

    // An outcome about another POC, and one removed after signing.
    let mut w = small();
    w.records[3].outcome = Some(
        Outcome::new(ROUND, w.pocs[0].public_key(), "phone", T0, "")
            .sign(&w.sec)
            .unwrap()
            .into_bytes(),
    );
    assert!(matches!(
        verify(&w.bundle()).unwrap_err(),
        BundleError::OutcomeMismatch { .. }
    ));
    let w = small();
    let mut b = w.bundle();
    b.targets[3].outcome = None;
    assert!(matches!(verify(&b).unwrap_err(), BundleError::OutcomeMismatch { .. }));
}

#[test]
fn malformed_bundles_are_refused() {
    let w = small();
    let bytes = w.bundle().encode().unwrap();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(verify_bundle(&trailing), Err(BundleError::Format(_))));
    let mut version = bytes.clone();
    version[0] = 2;
    assert!(matches!(
        verify_bundle(&version),
        Err(BundleError::Format(RoundError::Version { .. }))
    ));
    assert!(verify_bundle(&bytes[..bytes.len() / 2]).is_err());
    assert!(verify_bundle(&[]).is_err());
    // A non-canonical varint: round_id follows the version, so re-encode a target count.
    // Flip any single byte: never a panic, always an error or (if it hit nothing signed) Ok.
    for i in (0..bytes.len()).step_by(97) {
        let mut t = bytes.clone();
        t[i] ^= 0x40;
        let _ = verify_bundle(&t);
    }
}

#[test]
fn formats_are_strict() {
    let c = Challenge::new(
        ROUND,
        ORIGIN,
        T0,
        DEADLINE,
        Request::Question("Still there?".into()),
        vec![],
        1,
    );
    let bytes = c.encode().unwrap();
    assert_eq!(Challenge::parse(&bytes).unwrap(), c);
    let mut long = bytes.clone();
    long.push(0);
    assert!(Challenge::parse(&long).is_err());
    // A reminder is the challenge with its number.
    let mut c2 = c.clone();
    c2.reminders_ms = vec![T0 + D];
    let r = c2.reminder(1);
    assert_eq!(Challenge::parse(&r.encode().unwrap()).unwrap().reminder, Some(1));
    assert!(c2.reminder(2).encode().is_err());
    // Bounds.
    let q = Challenge::new(
        ROUND,
        ORIGIN,
        T0,
        DEADLINE,
        Request::Question("x".repeat(2001)),
        vec![],
        1,
    );
    assert!(q.encode().is_err());
    let backwards = Challenge::new(ROUND, ORIGIN, T0, T0, Request::ConfirmDetails, vec![], 1);
    assert!(backwards.encode().is_err());
    // Over-long varint for directory_size (canonical check): last field before reminder.
    let mut nc = bytes.clone();
    let n = nc.len();
    // directory_size = 1 is the byte before the final `reminder: None` (0x00).
    assert_eq!(&nc[n - 2..], &[1, 0]);
    nc.splice(n - 2..n - 1, [0x81, 0x00]);
    assert!(matches!(Challenge::parse(&nc), Err(RoundError::NonCanonical { .. })));

    let poc = identity();
    let sa = Answer::new(ROUND, [1; 16], true, None, "ok", T0).sign(&poc).unwrap();
    assert_eq!(
        SignedAnswer::verify(sa.as_bytes(), poc.public_key()).unwrap().answer(),
        sa.answer()
    );
    assert!(Answer::new(ROUND, [1; 16], true, None, "\u{202E}evil", T0)
        .sign(&poc)
        .is_err());
    assert!(Answer::new(ROUND, [1; 16], true, None, &"x".repeat(1001), T0)
        .sign(&poc)
        .is_err());
    // An update signed by another key is refused.
    let other = identity();
    let upd = Author::new(&other, ORIGIN)
        .contact_update(T0, contact("X"))
        .unwrap()
        .into_bytes();
    assert!(Answer::new(ROUND, [1; 16], false, Some(upd), "", T0)
        .sign(&poc)
        .is_err());
}

/// The 35 states of the scripted mix.
const STATES: [&str; 35] = [
    "AG", "AR", "BS", "BB", "BZ", "BO", "BR", "CA", "CL", "CO", "CR", "CU", "DM", "DO", "EC", "SV", "US", "GD", "GT",
    "GY", "HT", "HN", "JM", "MX", "NI", "PA", "PY", "PE", "KN", "LC", "VC", "SR", "TT", "UY", "VE",
];

#[test]
fn scripted_mix_gives_exact_counts() {
    // Two POCs per state. State i's primary and alternate follow this script.
    let mut script = Vec::new();
    for (i, s) in STATES.iter().enumerate() {
        let (p, a) = match i % 7 {
            0 => (Does::Answers(5 * 60_000), Does::Answers(50 * 60_000)), // prompt, prompt
            1 => (
                Does::Answers(3 * H),
                Does::Silent {
                    delivered: true,
                    reminders: 2,
                },
            ), // slow, silent
            2 => (Does::Answers(3 * D), Does::Updates(20 * H)),           // by deadline, slow with update
            3 => (
                Does::Answers(8 * D),
                Does::Silent {
                    delivered: false,
                    reminders: 2,
                },
            ), // late, never fetched
            4 => (
                Does::Phone,
                Does::Silent {
                    delivered: true,
                    reminders: 1,
                },
            ), // outside only
            5 => (
                Does::Silent {
                    delivered: false,
                    reminders: 2,
                },
                Does::Silent {
                    delivered: true,
                    reminders: 2,
                },
            ), // silent state
            _ => (Does::Answers(H), Does::Answers(H + 1)), // exactly 1 h (within), 1 h + 1 ms (within 24 h)
        };
        script.push((*s, Rank::Primary, "Primary", p));
        script.push((*s, Rank::Alternate, "Alternate", a));
    }
    let w = world(&script, 16);
    let (_, r) = verify_bundle(&w.bundle().encode().unwrap()).unwrap();
    // 35 states: i % 7 == k for k = 0..6 occurs 5 times each.
    let t = &r.totals;
    assert_eq!(t.targets, 70);
    assert_eq!(t.within_1h, 5 * 2 + 5); // case 0 both, case 6 primary
    assert_eq!(t.within_24h, 5 + 5 + 5); // case 1 primary, case 2 alternate, case 6 alternate
    assert_eq!(t.by_deadline, 5); // case 2 primary
    assert_eq!(t.late, 5); // case 3 primary
    assert_eq!(t.outside, 5); // case 4 primary
    assert_eq!(t.never, 5 + 5 + 5 + 10); // cases 1, 3, 4 alternates; case 5 both
    assert_eq!(t.answered, 40);
    assert_eq!(t.details_changed, 5);
    assert_eq!(t.unanswered_delivered, 5 + 5 + 5); // case 1 alt, case 4 alt, case 5 alt
    assert_eq!(t.unanswered_never_fetched, 5 + 5 + 5); // case 3 alt, case 4 primary (phone), case 5 primary
    assert_eq!(t.reminders_released, 5 * 2 + 5 * 2 + 5 * (2 + 1) + 5 * (2 + 2));
    assert_eq!(t.stale, (0..70).filter(|i| i % 7 == 3).count() as u32);
    // States: case 4 answered only outside, case 5 not at all.
    let mut without: Vec<String> = STATES
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 == 4 || i % 7 == 5)
        .map(|(_, s)| s.to_string())
        .collect();
    without.sort();
    assert_eq!(r.states_without_answer, without);
    let mut unreached: Vec<String> = STATES
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 == 5)
        .map(|(_, s)| s.to_string())
        .collect();
    unreached.sort();
    assert_eq!(r.states_unreached, unreached);
    assert_eq!(r.states.len(), 35);
    // Per-state figures and medians.
    let st = |code: &str| r.states.iter().find(|s| s.state == code).unwrap();
    assert_eq!(
        (st("AG").answered, st("AG").rate, st("AG").median_ms),
        (2, 1.0, Some(27 * 60_000 + 30_000))
    ); // case 0
    assert_eq!(
        (st("AR").answered, st("AR").rate, st("AR").median_ms),
        (1, 0.5, Some(3 * H))
    ); // case 1
    assert_eq!(st("BS").median_ms, Some((3 * D + 20 * H) / 2)); // case 2
    assert_eq!(st("BB").median_ms, Some(8 * D)); // case 3: late counts in the median
    assert_eq!((st("BZ").answered, st("BZ").outside, st("BZ").median_ms), (0, 1, None)); // case 4
    assert_eq!((st("BO").answered, st("BO").outside), (0, 0)); // case 5
                                                               // Per POC.
    let p = |h: &str| r.pocs.iter().find(|p| p.handle == h).unwrap();
    assert_eq!(p("BO.primary").status, Status::Never);
    assert!(!p("BO.primary").delivered && p("BO.alternate").delivered);
    assert_eq!(p("BB.primary").status, Status::Late);
    assert_eq!(p("BB.primary").time_to_answer_ms, Some(8 * D));
    assert!(p("BS.alternate").details_changed);
    assert_eq!(p("BZ.primary").outside.as_ref().unwrap().how, "phone");
    // The Secretariat's direct computation gives the very same report.
    assert_eq!(Report::compute(&w.bundle()).unwrap(), r);
    // Response curve ends at the share answered in pocnet.
    assert_eq!(r.response_curve().last().unwrap().1, 40.0 / 70.0);
}

#[test]
fn renderers_escape_party_text() {
    let w = world(
        &[
            ("CL", Rank::Primary, "<b>Bold</b> & \"quoted\"", Does::Answers(60_000)),
            ("MX", Rank::Primary, "=HYPERLINK(\"http://evil\",\"x\")", Does::Phone),
            (
                "AR",
                Rank::Primary,
                "-2+3, @sum",
                Does::Silent {
                    delivered: false,
                    reminders: 0,
                },
            ),
        ],
        4,
    );
    let (_, r) = verify_bundle(&w.bundle().encode().unwrap()).unwrap();

    let html = r.to_html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.to_lowercase().contains("<script"));
    assert!(!html.contains("<b>"), "a party's markup must not reach the HTML");
    assert!(html.contains("&lt;b&gt;Bold&lt;/b&gt; &amp; &quot;quoted&quot;"));
    assert!(html.contains("=HYPERLINK(&quot;http:"));
    for bad in [
        "https://", "src=", "href=", "@import", "url(", "<link", "<iframe", "<object", "onload", "onerror",
    ] {
        assert!(!html.contains(bad), "HTML contains {bad}");
    }
    assert_eq!(html.matches("<svg ").count(), 2);
    assert!(html.contains("<polyline"));
    assert!(html.contains("<rect"));

    let csv = r.to_csv();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines.len(), 1 + 3 + 1); // header, three rows, the empty string after the last CRLF
    assert!(lines[0].starts_with("handle,name,key,state"));
    let ar = lines.iter().find(|l| l.starts_with("AR.primary,")).unwrap();
    assert!(ar.starts_with("AR.primary,\"'-2+3, @sum\","), "{ar}");
    let mx = lines.iter().find(|l| l.starts_with("MX.primary,")).unwrap();
    assert!(
        mx.starts_with("MX.primary,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\","),
        "{mx}"
    );
    let cl = lines.iter().find(|l| l.starts_with("CL.primary,")).unwrap();
    assert!(cl.contains(",within_1h,"));

    let md = r.to_markdown();
    assert!(!md.contains("<b>"));
    assert!(md.contains("&lt;b&gt;Bold&lt;/b&gt;"));

    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["totals"]["within_1h"], 1);
    let cl = json["pocs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["handle"] == "CL.primary")
        .unwrap();
    assert_eq!(cl["name"], "<b>Bold</b> & \"quoted\"");
    assert_eq!(cl["status"], "within_1h");
}
