//! Contact verification rounds.
//!
//! The Secretariat starts a round: one signed challenge per target POC (content type 5),
//! and its reminders sealed in advance and held by the relay, each cancelled by the POC's
//! signed `Acknowledged` receipt about its challenge. A POC answers with its key unlocked:
//! a signed answer (content type 6) sealed to the Secretariat, then the receipt. The
//! Secretariat keeps every piece (acceptance proofs, receipts, answers, outcomes outside
//! pocnet) and builds the report and the bundle from them (`pocnet_core::round`).
//!
//! The challenge envelope's plaintext is a [`ChallengeEnvelope`]: the challenge bytes and
//! the Secretariat's public identity to answer to (the directory lists the Secretariat's
//! key, not its encryption key; the envelope's signature binds the two).

use pocnet_core::directory::{Author, Category, Contact, Rank, Statement};
use pocnet_core::round::{
    Acceptance, AnswerRecord, Bundle, BundleBuilder, Challenge, Outcome, Report, Request as RoundRequest, RoundId,
    SignedAnswer, Target, TargetRecord,
};
use pocnet_crypto::{ContentType, HeaderFields, IdentityKey, PublicIdentity, Receipt, ReceiptKind, Suite, Tlp};
use pocnet_wire::{Cancel, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::Client;
use crate::error::{Error, Result};
use crate::net::Session;
use crate::now_ms;
use crate::types::{Direction, EnvelopeHash, MessageId, Peer};

/// Plaintext of a round challenge (or reminder) envelope.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChallengeEnvelope {
    /// The [`Challenge`] bytes (the same for every target; reminders carry `reminder: Some(n)`).
    pub challenge: Vec<u8>,
    /// The Secretariat's public identity: answers are sealed to it.
    pub reply_to: Vec<u8>,
}

/// Who a round targets (empty lists: everyone).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// States (ISO 3166-1 alpha-2).
    pub states: Vec<String>,
    /// Categories.
    pub categories: Vec<Category>,
    /// Ranks.
    pub ranks: Vec<Rank>,
    /// A drill's round: every challenge and reminder carries the EXERCISE flag, and so do
    /// the answers to it.
    pub exercise: bool,
}

/// What `round start` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Started {
    /// The round id (hex).
    pub round: String,
    /// POCs challenged.
    pub targets: usize,
    /// Reminders held at the relay.
    pub reminders: usize,
    /// Deadline (Unix ms).
    pub deadline_ms: u64,
}

/// The Secretariat's record of a round, kept in the profile.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoundState {
    /// The challenge bytes.
    pub challenge: Vec<u8>,
    /// The directory checkpoint note the targets were taken from.
    pub checkpoint: String,
    /// The relay's key.
    pub relay: [u8; 32],
    /// One record per target.
    pub targets: Vec<TargetRecord>,
}

/// A challenge waiting for this POC's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingChallenge {
    /// The round.
    pub round_id: RoundId,
    /// The challenge envelope's message id (what the answer names).
    pub challenge_id: [u8; 16],
    /// Its envelope hash (for the receipt that cancels the reminders).
    pub envelope_hash: [u8; 32],
    /// The Secretariat's key.
    pub secretariat: [u8; 32],
    /// Where to send the answer.
    pub reply_to: Vec<u8>,
    /// The challenge.
    pub challenge: Vec<u8>,
    /// When we answered, if we did.
    pub answered_ms: Option<u64>,
    /// A drill's challenge (EXERCISE in its signed header): the answer is marked so too.
    #[serde(default)]
    pub exercise: bool,
}

fn hex(b: &[u8]) -> String {
    pocnet_crypto::to_hex(b)
}

fn round_err(e: impl std::fmt::Display) -> Error {
    Error::DirectoryRefused(e.to_string())
}

impl Client {
    /// Secretariat: starts a round. `reminders` are fractions of the window (0 < f < 1).
    pub async fn round_start(
        &self,
        s: &Session,
        sel: &Selection,
        deadline_ms: u64,
        request: RoundRequest,
        reminders: &[f64],
    ) -> Result<Started> {
        self.sync_directory(s).await?;
        let log = self.log()?;
        let dir = log.directory();
        if dir.secretariat() != self.identity.public_key() {
            return Err(Error::Usage("only the Secretariat starts rounds".into()));
        }
        let now = now_ms();
        if deadline_ms <= now {
            return Err(Error::Usage("the deadline must be in the future".into()));
        }
        let targets: Vec<_> = dir
            .members()
            .into_iter()
            .filter(|p| {
                let (c, r) = p.category_rank();
                (sel.states.is_empty() || sel.states.iter().any(|st| st == p.state()))
                    && (sel.categories.is_empty() || sel.categories.contains(&c))
                    && (sel.ranks.is_empty() || sel.ranks.contains(&r))
            })
            .cloned()
            .collect();
        if targets.is_empty() {
            return Err(Error::Usage("no POC in the directory matches this selection".into()));
        }
        let mut round_id = [0u8; 16];
        pocnet_crypto::rand_core::Rng::fill_bytes(&mut pocnet_crypto::os_rng(), &mut round_id);
        let window = deadline_ms - now;
        let mut reminders_ms: Vec<u64> = reminders
            .iter()
            .filter(|f| **f > 0.0 && **f < 1.0)
            .map(|f| now + (window as f64 * f) as u64)
            .collect();
        reminders_ms.sort();
        reminders_ms.dedup();
        let challenge = Challenge::new(
            round_id,
            log.anchor().origin.clone(),
            now,
            deadline_ms,
            request,
            reminders_ms.clone(),
            log.size(),
        );
        challenge.check().map_err(round_err)?;
        let reply_to = self.identity.public().to_bytes();
        let plain = |c: &Challenge| -> Result<Vec<u8>> {
            let env = ChallengeEnvelope {
                challenge: c.encode().map_err(round_err)?,
                reply_to: reply_to.clone(),
            };
            postcard::to_stdvec(&env).map_err(|e| Error::Protocol(e.to_string()))
        };
        let relay_key = self.profile.relay_key().ok_or(Error::NotEnrolledHere)?;
        let mut records = Vec::new();
        let mut held = 0;
        for p in &targets {
            let fields = HeaderFields {
                suite: Suite::XWing,
                tlp: Tlp::Amber,
                content_type: ContentType::RoundChallenge,
                exercise: sel.exercise,
                ..HeaderFields::message(now)
            };
            let sealed = pocnet_crypto::seal(
                &mut pocnet_crypto::os_rng(),
                &self.identity,
                std::slice::from_ref(&p.public),
                &fields,
                &plain(&challenge)?,
            )?;
            let (stored_at_ms, proof) = self.send_sealed(s, &sealed).await?;
            self.store.insert_message(&crate::db::NewMessage {
                id: MessageId(sealed.message_id),
                direction: Direction::Out,
                peer_key: &p.key,
                peer: &Peer::Known {
                    handle: p.handle_text(),
                },
                recipients: &[p.handle_text()],
                recipient_keys: &[*p.key.as_bytes()],
                subject: &format!("Contact verification round {}", hex(&round_id[..4])),
                body: "",
                tlp: Tlp::Amber,
                exercise: sel.exercise,
                content_type: ContentType::RoundChallenge,
                created_at: now,
                received_at: now,
                envelope_hash: EnvelopeHash(sealed.envelope_hash),
                relay_stored_at: Some(stored_at_ms),
                attachments: &[],
                incident: None,
            })?;
            for (n, t) in reminders_ms.iter().enumerate() {
                let fields = HeaderFields {
                    suite: Suite::XWing,
                    tlp: Tlp::Amber,
                    content_type: ContentType::RoundChallenge,
                    exercise: sel.exercise,
                    ..HeaderFields::message(now)
                };
                let r = pocnet_crypto::seal(
                    &mut pocnet_crypto::os_rng(),
                    &self.identity,
                    std::slice::from_ref(&p.public),
                    &fields,
                    &plain(&challenge.reminder(n as u8 + 1))?,
                )?;
                match s
                    .request(&Request::Hold {
                        envelope: r.bytes,
                        recipient: *p.key.as_bytes(),
                        not_before_ms: *t,
                        cancel: Cancel {
                            message_id: sealed.message_id,
                            signers: vec![*p.key.as_bytes()],
                        },
                    })
                    .await?
                {
                    Response::Accepted { .. } => held += 1,
                    other => return Err(Error::Protocol(format!("unexpected answer to Hold: {other:?}"))),
                }
            }
            records.push(TargetRecord::new(
                Target::from_poc(p, now),
                sealed.message_id,
                sealed.envelope_hash,
                Acceptance { stored_at_ms, proof },
            ));
        }
        let state = RoundState {
            challenge: challenge.encode().map_err(round_err)?,
            checkpoint: log.note().to_text(),
            relay: *relay_key.as_bytes(),
            targets: records,
        };
        self.store.round_save(&round_id, &state, now)?;
        Ok(Started {
            round: hex(&round_id),
            targets: targets.len(),
            reminders: held,
            deadline_ms,
        })
    }

    /// POC: a challenge (or reminder) arrived. Returns the text to show in the inbox.
    pub(crate) fn round_received(
        &self,
        sender: &IdentityKey,
        message_id: [u8; 16],
        envelope_hash: [u8; 32],
        plaintext: &[u8],
        exercise: bool,
    ) -> Result<(String, String)> {
        let env: ChallengeEnvelope = postcard::from_bytes(plaintext)
            .map_err(|e| Error::BadEnvelope(format!("round challenge does not decode: {e}")))?;
        let c = Challenge::parse(&env.challenge).map_err(|e| Error::BadEnvelope(e.to_string()))?;
        let reply = PublicIdentity::from_bytes(&env.reply_to).map_err(|e| Error::BadEnvelope(e.to_string()))?;
        if reply.key() != sender {
            return Err(Error::BadEnvelope(
                "a round challenge names another key to answer to than its signer".into(),
            ));
        }
        let log = self.log()?;
        if log.directory().secretariat() != sender {
            return Err(Error::BadEnvelope("a round challenge not from the Secretariat".into()));
        }
        let ask = match &c.request {
            RoundRequest::ConfirmDetails => "Confirm (or update) your contact details.".to_string(),
            RoundRequest::Question(q) => format!("Question: {q}"),
        };
        let due = crate::render::fmt_time(c.deadline_ms);
        // The round's id (8 hex digits) tells concurrent checks apart.
        let rid = hex(&c.round_id[..4]);
        let subject = match c.reminder {
            None => format!("CONTACT CHECK {rid}: answer by {due}"),
            Some(n) => format!("REMINDER {n}: contact check {rid}, answer by {due}"),
        };
        if c.reminder.is_none() {
            self.store.round_pending_save(&PendingChallenge {
                round_id: c.round_id,
                challenge_id: message_id,
                envelope_hash,
                secretariat: *sender.as_bytes(),
                reply_to: env.reply_to.clone(),
                challenge: env.challenge.clone(),
                answered_ms: None,
                exercise,
            })?;
        }
        Ok((
            subject,
            format!(
                "The Secretariat checks that every point of contact still answers.\n{ask}\n\nAnswer with: \
                 pocnet round answer --confirm   (or --update with new details, or --note \"...\")"
            ),
        ))
    }

    /// POC: challenges not answered yet.
    pub fn round_unanswered(&self) -> Result<Vec<PendingChallenge>> {
        Ok(self
            .store
            .round_pending()?
            .into_iter()
            .filter(|p| p.answered_ms.is_none())
            .collect())
    }

    /// POC: answers the one open challenge (or the one whose round id starts with `round`):
    /// confirms, or updates with `update`, with an optional note. The key is unlocked to
    /// open the profile, so the answer is the key holder's.
    pub async fn round_answer(
        &self,
        s: &Session,
        round: Option<&str>,
        update: Option<Contact>,
        note: &str,
    ) -> Result<String> {
        let open = self.round_unanswered()?;
        let mut matching: Vec<&PendingChallenge> = open
            .iter()
            .filter(|p| round.is_none_or(|r| hex(&p.round_id).starts_with(&r.to_ascii_lowercase())))
            .collect();
        let p = match (matching.len(), round) {
            (1, _) => matching.remove(0),
            (0, _) => return Err(Error::Usage("no contact check waits for your answer".into())),
            (n, _) => {
                return Err(Error::Usage(format!(
                    "{n} contact checks wait; name one: pocnet round answer --round <id> (see pocnet round pending)"
                )))
            }
        };
        let now = now_ms();
        let update_bytes = match update {
            Some(c) => Some(
                Author::new(&self.identity, self.anchor()?.origin)
                    .contact_update(now, c)
                    .map_err(round_err)?
                    .into_bytes(),
            ),
            None => None,
        };
        let answer = pocnet_core::round::Answer::new(
            p.round_id,
            p.challenge_id,
            update_bytes.is_none(),
            update_bytes,
            note,
            now,
        );
        let signed = answer.sign(&self.identity).map_err(round_err)?;
        let to = PublicIdentity::from_bytes(&p.reply_to).map_err(|e| Error::BadEnvelope(e.to_string()))?;
        let fields = HeaderFields {
            suite: Suite::XWing,
            tlp: Tlp::Amber,
            content_type: ContentType::RoundResponse,
            exercise: p.exercise,
            log_head: Some(self.log()?.head()),
            ..HeaderFields::message(now)
        };
        let sealed = pocnet_crypto::seal(
            &mut pocnet_crypto::os_rng(),
            &self.identity,
            std::slice::from_ref(&to),
            &fields,
            signed.as_bytes(),
        )?;
        self.send_sealed(s, &sealed).await?;
        // The signed acknowledgement cancels the reminders the relay holds for us.
        let secretariat = IdentityKey::from_bytes(&p.secretariat).map_err(|e| Error::BadEnvelope(e.to_string()))?;
        let receipt = Receipt::sign(
            &self.identity,
            ReceiptKind::Acknowledged,
            p.challenge_id,
            p.envelope_hash,
            &secretariat,
            now,
        );
        s.request(&Request::SendReceipt {
            to: p.secretariat,
            receipt: receipt.as_bytes().to_vec(),
        })
        .await?;
        let mut done = p.clone();
        done.answered_ms = Some(now);
        self.store.round_pending_save(&done)?;
        Ok(hex(&p.round_id))
    }

    /// Secretariat: an answer arrived (content type 6) with the relay's acceptance.
    pub(crate) async fn round_answer_received(
        &self,
        s: &Session,
        sender: &IdentityKey,
        envelope_hash: [u8; 32],
        plaintext: &[u8],
        accepted: Option<Acceptance>,
    ) -> Result<String> {
        let signed = SignedAnswer::verify(plaintext, sender).map_err(|e| Error::BadEnvelope(e.to_string()))?;
        let a = signed.answer().clone();
        let Some(mut state) = self.store.round_load(&a.round_id)? else {
            return Err(Error::BadEnvelope(
                "an answer to a round this Secretariat did not start".into(),
            ));
        };
        let Some(rec) = state
            .targets
            .iter_mut()
            .find(|t| &t.target.key == sender.as_bytes() && t.challenge_id == a.challenge_id)
        else {
            return Err(Error::BadEnvelope(
                "an answer from a key this round did not challenge".into(),
            ));
        };
        let Some(accepted) = accepted else {
            return Err(Error::Protocol(
                "the relay delivered an answer without its signed acceptance time".into(),
            ));
        };
        if rec.answer.is_none() {
            rec.answer = Some(AnswerRecord {
                signed: signed.as_bytes().to_vec(),
                envelope_hash,
                accepted,
            });
            let handle = rec.target.handle.clone();
            self.store.round_save(&a.round_id, &state, now_ms())?;
            if let Some(u) = &a.update {
                let st = Statement::parse(u).map_err(|e| Error::BadEnvelope(e.to_string()))?;
                if let Err(e) = self.publish(s, &[st]).await {
                    tracing::warn!(
                        "the contact update in {}'s answer was not published: {}",
                        crate::render::line(&handle),
                        crate::render::line(&e.to_string())
                    );
                }
            }
            return Ok(handle);
        }
        Ok(rec.target.handle.clone())
    }

    /// Secretariat: records that `handle` answered outside pocnet (phone, e-mail).
    pub fn round_outcome(&self, round: &str, handle: &str, how: &str, note: &str) -> Result<()> {
        let (id, mut state) = self.round_find(round)?;
        let rec = state
            .targets
            .iter_mut()
            .find(|t| t.target.handle == handle)
            .ok_or_else(|| Error::UnknownContact { query: handle.into() })?;
        let key = IdentityKey::from_bytes(&rec.target.key).map_err(|e| Error::DamagedStore(e.to_string()))?;
        let o = Outcome::new(id, &key, how, now_ms(), note)
            .sign(&self.identity)
            .map_err(round_err)?;
        rec.outcome = Some(o.into_bytes());
        self.store.round_save(&id, &state, now_ms())
    }

    fn round_find(&self, round: &str) -> Result<(RoundId, RoundState)> {
        let all = self.store.rounds()?;
        let m: Vec<_> = all
            .into_iter()
            .filter(|(id, _, _)| hex(id).starts_with(&round.to_ascii_lowercase()))
            .collect();
        match m.len() {
            1 => {
                let (id, s, _) = m.into_iter().next().expect("one");
                Ok((id, s))
            }
            0 => Err(Error::Usage(format!(
                "no round {round:?}: list them with `pocnet round list`"
            ))),
            n => Err(Error::Usage(format!(
                "{n} rounds start with {round:?}; give more digits"
            ))),
        }
    }

    /// Secretariat: the signed bundle of a round as it stands now.
    pub fn round_bundle(&self, round: &str) -> Result<Bundle> {
        self.round_bundle_at(round, now_ms())
    }

    /// As [`Client::round_bundle`], as of `now` (Unix ms): reminders due by then and not
    /// cancelled count as released.
    pub fn round_bundle_at(&self, round: &str, now: u64) -> Result<Bundle> {
        let (_, mut state) = self.round_find(round)?;
        let challenge = Challenge::parse(&state.challenge).map_err(round_err)?;
        let relay = IdentityKey::from_bytes(&state.relay).map_err(|e| Error::DamagedStore(e.to_string()))?;
        let mut b = BundleBuilder::new(&challenge, &state.checkpoint, &relay).map_err(round_err)?;
        for rec in state.targets.iter_mut() {
            let key = IdentityKey::from_bytes(&rec.target.key).map_err(|e| Error::DamagedStore(e.to_string()))?;
            rec.delivered = self
                .store
                .receipt_bytes(MessageId(rec.challenge_id), &key, ReceiptKind::Delivered)?;
            // The relay released every reminder whose time came before the POC's signed
            // acknowledgement (sent right after its answer) cancelled it.
            let until = rec.answer.as_ref().map(|a| a.accepted.stored_at_ms).unwrap_or(now);
            rec.reminders_released = challenge.reminders_ms.iter().filter(|t| **t <= until).count() as u8;
            b.push(rec.clone()).map_err(round_err)?;
        }
        b.finish(&self.identity, now).map_err(round_err)
    }

    /// Secretariat: the report of a round as it stands now.
    pub fn round_report(&self, round: &str) -> Result<Report> {
        self.round_report_at(round, now_ms())
    }

    /// As [`Client::round_report`], as of `now` (Unix ms).
    pub fn round_report_at(&self, round: &str, now: u64) -> Result<Report> {
        let b = self.round_bundle_at(round, now)?;
        Report::compute(&b).map_err(round_err)
    }

    /// Secretariat: rounds started, newest first: (id hex, targets, answered, started ms).
    pub fn round_list(&self) -> Result<Vec<(String, usize, usize, u64)>> {
        Ok(self
            .store
            .rounds()?
            .into_iter()
            .map(|(id, s, at)| {
                let answered = s
                    .targets
                    .iter()
                    .filter(|t| t.answer.is_some() || t.outcome.is_some())
                    .count();
                (hex(&id), s.targets.len(), answered, at)
            })
            .collect())
    }
}
