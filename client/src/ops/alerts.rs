//! Escalation alerts.
//!
//! `raise` seals one alert envelope (content type 4, an [`AlertBody`]) to every POC of every
//! targeted state, all ranks, and hands it to the relay with a signed [`Plan`]: the relay
//! queues the primaries' copies now and holds the rest, releasing rank after rank (then
//! repeats to the whole state) until a POC of that state sends a signed `Acknowledged`
//! receipt. The sender may go offline at once. Updates, cancellations and all-clears are
//! follow-ups (a second envelope with a `FollowUp` plan) that reach every rank already
//! released. A POC acknowledges with `ack` (the receipt; kept in an outbox until the relay
//! has it) and an optional note (a CAP `Ack` alert back to the sender). `status` combines
//! the relay's per-step record with the signed receipts the sender holds; `incident` builds
//! one timeline from every signed record of an incident; `forward` enforces TLP 2.0.

use pocnet_core::alert::{
    check_forward, AlertBody, AlertStatus, CapAlert, CapStatus, Event, EventKind, Lang, MsgType, Plan, PlanKind,
    SignedPlan, StatePlan, Timeline,
};
use pocnet_core::directory::{Poc, Rank};
use pocnet_crypto::{ContentType, HeaderFields, IdentityKey, PublicIdentity, Receipt, ReceiptKind, Suite, Tlp};
use pocnet_wire::{Release, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::Client;
use crate::db::{NewMessage, StoredMessage};
use crate::error::{Error, Result};
use crate::net::Session;
use crate::now_ms;
use crate::types::{Direction, EnvelopeHash, MessageId, Peer};

/// What `alert raise` is asked to send.
#[derive(Clone, Debug)]
pub struct RaiseArgs {
    /// States to alert (ISO 3166-1 alpha-2).
    pub states: Vec<String>,
    /// The alert's content (msg_type Alert; targets, times and sender filled in here).
    pub body: AlertBody,
    /// TLP marking.
    pub tlp: Tlp,
    /// Incident id.
    pub incident: Option<String>,
    /// Drill traffic.
    pub exercise: bool,
}

/// What `alert raise` (and a follow-up) reports.
#[derive(Clone, Debug, Serialize)]
pub struct Raised {
    /// The alert id (hex).
    pub id: String,
    /// Per state: its ranks, each the handles in it.
    pub states: Vec<(String, Vec<Vec<String>>)>,
    /// POCs the alert is sealed to.
    pub recipients: usize,
    /// When the relay committed it (its signed statement), Unix ms.
    pub accepted_ms: u64,
    /// Envelope bytes.
    pub bytes: usize,
    /// Listed POCs left out (blocked at this relay), with why.
    pub left_out: Vec<String>,
}

/// An alert (or follow-up) envelope as the relay accepted it: what a drill record keeps.
pub(crate) struct SentAlert {
    /// Its message id.
    pub id: MessageId,
    /// The whole sealed envelope.
    pub envelope: Vec<u8>,
    /// The signed plan.
    pub plan: Vec<u8>,
    /// The relay's signed acceptance time.
    pub stored_at_ms: u64,
    /// The relay's acceptance proof (checked).
    pub proof: pocnet_wire::AcceptProof,
}

/// The record of one alert (sent or received), kept beside its message row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Encoded [`AlertBody`] (sealed in the store).
    #[serde(skip)]
    pub body: Vec<u8>,
    /// Signed plan bytes (sent alerts).
    pub plan: Option<Vec<u8>>,
    /// The relay's acceptance time, Unix ms.
    pub accepted_ms: Option<u64>,
    /// The relay's last release of a copy to us (received alerts).
    pub release: Option<ReleaseInfo>,
    /// How many times it rang here (first delivery and repeats).
    pub rings: u32,
    /// When we acknowledged it.
    pub acked_at: Option<u64>,
}

/// A release as the relay stated it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// When it fell due.
    pub due_ms: u64,
    /// When the relay released it.
    pub released_ms: u64,
    /// Our rank (0 = primary).
    pub rank: u8,
    /// Repeat number (0 = the rank's own release).
    pub repeat: u8,
}

impl From<&Release> for ReleaseInfo {
    fn from(r: &Release) -> Self {
        ReleaseInfo {
            due_ms: r.due_ms,
            released_ms: r.released_ms,
            rank: r.rank,
            repeat: r.repeat,
        }
    }
}

impl ReleaseInfo {
    /// Released well after it fell due (the relay was down).
    pub fn late(&self) -> bool {
        self.released_ms.saturating_sub(self.due_ms) >= pocnet_core::alert::LATE_AFTER_MS
    }
}

/// A follow-up to an alert this client sent.
#[derive(Clone, Debug)]
pub enum FollowUp {
    /// New information (CAP Update); `all_clear` ends the incident and stops escalation.
    Update {
        /// What changed.
        description: String,
        /// New instruction (may be empty).
        instruction: String,
        /// The all-clear.
        all_clear: bool,
    },
    /// The alert was wrong or is withdrawn (CAP Cancel); stops escalation.
    Cancel {
        /// Why.
        reason: String,
    },
}

/// An alert as shown to the POC who received it.
#[derive(Clone, Debug, Serialize)]
pub struct AlertView {
    /// Message id (hex).
    pub id: String,
    /// The decoded body.
    #[serde(skip)]
    pub body: AlertBody,
    /// Sender as shown.
    pub from: String,
    /// TLP.
    #[serde(serialize_with = "tlp_label")]
    pub tlp: Tlp,
    /// Drill traffic.
    pub exercise: bool,
    /// Incident id.
    pub incident: Option<String>,
    /// When the relay accepted it.
    pub accepted_ms: Option<u64>,
    /// Release to us.
    pub release: Option<ReleaseInfo>,
    /// When we acknowledged.
    pub acked_at: Option<u64>,
    /// Rings so far.
    pub rings: u32,
}

impl AlertView {
    /// When the next contact is called if nobody here acknowledges (the alternate for a
    /// primary), or `None` once acknowledged or past the last rank we know of.
    pub fn escalates_at(&self) -> Option<u64> {
        if self.acked_at.is_some() || self.body.msg_type != MsgType::Alert || self.body.ack_within_ms == 0 {
            return None;
        }
        let accepted = self.accepted_ms?;
        let step = match self.release {
            Some(r) if r.repeat > 0 => return None,
            Some(r) => r.rank as u64,
            None => 0,
        };
        Some(accepted + (step + 1) * self.body.ack_within_ms)
    }
}

fn tlp_label<S: serde::Serializer>(t: &Tlp, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(t.label())
}

fn rank_index(r: Rank) -> usize {
    match r {
        Rank::Primary => 0,
        Rank::Alternate => 1,
        Rank::Further(n) => 1 + n as usize,
    }
}

impl Client {
    /// The POCs of `state` by rank (empty ranks dropped), from the verified directory, less
    /// those this relay blocks (returned apart, with their handles).
    async fn state_ranks(&self, s: &Session, state: &str) -> Result<(Vec<Vec<Poc>>, Vec<String>)> {
        let log = self.log()?;
        let pocs: Vec<Poc> = log
            .directory()
            .by_state(state)
            .into_iter()
            .filter(|p| p.key != *self.identity.public_key())
            .cloned()
            .collect();
        if pocs.is_empty() {
            return Err(Error::Usage(format!(
                "the directory lists no POC for {state} (check the code with `pocnet directory list`)"
            )));
        }
        let blocked = self.cross_check(s, state, &pocs).await?;
        let mut ranks: Vec<Vec<Poc>> = Vec::new();
        let mut left_out = Vec::new();
        for p in pocs {
            if blocked.contains(&p.key) {
                left_out.push(format!("{} (blocked at this relay: phone them)", p.handle_text()));
                continue;
            }
            let i = rank_index(p.category_rank().1);
            if ranks.len() <= i {
                ranks.resize_with(i + 1, Vec::new);
            }
            ranks[i].push(p);
        }
        ranks.retain(|r| !r.is_empty());
        Ok((ranks, left_out))
    }

    /// Raises an alert: seals it once to every POC of every state in `args.states`, all
    /// ranks, and gives the relay the signed plan that releases it rank by rank.
    pub async fn alert_raise(&self, s: &Session, args: RaiseArgs) -> Result<Raised> {
        s.require_member()?;
        self.sync_directory(s).await?;
        let mut states: Vec<String> = Vec::new();
        for st in &args.states {
            let st = st.trim().to_ascii_uppercase();
            if !states.contains(&st) {
                states.push(st);
            }
        }
        if states.is_empty() {
            return Err(Error::NoRecipients);
        }
        let mut plan_states = Vec::new();
        let mut shown = Vec::new();
        let mut to: Vec<Poc> = Vec::new();
        let mut left_out = Vec::new();
        for st in &states {
            let (ranks, out) = self.state_ranks(s, st).await?;
            left_out.extend(out);
            if ranks.is_empty() {
                return Err(Error::BlockedAtRelay {
                    handles: format!("every POC of {st}"),
                });
            }
            plan_states.push(StatePlan {
                state: st.clone(),
                ranks: ranks
                    .iter()
                    .map(|r| r.iter().map(|p| *p.key.as_bytes()).collect())
                    .collect(),
            });
            shown.push((
                st.clone(),
                ranks
                    .iter()
                    .map(|r| r.iter().map(|p| p.handle_text()).collect())
                    .collect(),
            ));
            to.extend(ranks.into_iter().flatten());
        }
        let now = now_ms();
        let mut body = args.body;
        body.msg_type = MsgType::Alert;
        body.targets = states.clone();
        body.sent_ms = now;
        body.sender_handle = self.handle().unwrap_or_default().to_string();
        let fields = HeaderFields {
            suite: Suite::XWing,
            content_type: ContentType::Alert,
            tlp: args.tlp,
            exercise: args.exercise,
            incident_id: args.incident.clone(),
            log_head: Some(self.log()?.head()),
            ..HeaderFields::message(now)
        };
        let (window, repeats) = (body.ack_within_ms, body.repeats);
        let sent = self
            .send_alert(s, &to, &fields, &body, |id, hash| {
                Ok(Plan::escalate(id, hash, window, repeats, plan_states))
            })
            .await?;
        Ok(Raised {
            id: sent.id.to_hex(),
            states: shown,
            recipients: to.len(),
            accepted_ms: sent.stored_at_ms,
            bytes: sent.envelope.len(),
            left_out,
        })
    }

    /// Seals `body` once to every POC in `to`, signs the plan `plan` makes for that exact
    /// envelope (its id and hash), sends `Escalate`, checks the relay's signed acceptance,
    /// and records the alert as sent (with its plan, if it escalates). The one path for
    /// alerts, follow-ups and a drill's alerts.
    pub(crate) async fn send_alert(
        &self,
        s: &Session,
        to: &[Poc],
        fields: &HeaderFields,
        body: &AlertBody,
        plan: impl FnOnce([u8; 16], [u8; 32]) -> Result<Plan>,
    ) -> Result<SentAlert> {
        let plaintext = body.encode().map_err(|e| Error::Usage(e.to_string()))?;
        let pubs: Vec<PublicIdentity> = to.iter().map(|p| p.public.clone()).collect();
        let sealed = pocnet_crypto::seal(&mut pocnet_crypto::os_rng(), &self.identity, &pubs, fields, &plaintext)?;
        let signed = plan(sealed.message_id, sealed.envelope_hash)?
            .sign(&self.identity)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let (stored_at_ms, proof) = self
            .escalate(
                s,
                sealed.bytes.clone(),
                signed.as_bytes().to_vec(),
                sealed.envelope_hash,
            )
            .await?;
        let keys: Vec<[u8; 32]> = to.iter().map(|p| *p.key.as_bytes()).collect();
        let handles: Vec<String> = to.iter().map(|p| p.handle_text()).collect();
        let id = MessageId(sealed.message_id);
        let escalates = matches!(signed.plan().kind, PlanKind::Escalate { .. });
        self.record_sent_alert(
            id,
            EnvelopeHash(sealed.envelope_hash),
            body,
            &plaintext,
            &keys,
            &handles,
            fields,
            stored_at_ms,
            escalates.then(|| signed.as_bytes().to_vec()),
        )?;
        Ok(SentAlert {
            id,
            envelope: sealed.bytes,
            plan: signed.into_bytes(),
            stored_at_ms,
            proof,
        })
    }

    /// Sends `Escalate`; returns the relay's signed acceptance time and its proof (checked).
    async fn escalate(
        &self,
        s: &Session,
        envelope: Vec<u8>,
        plan: Vec<u8>,
        hash: [u8; 32],
    ) -> Result<(u64, pocnet_wire::AcceptProof)> {
        self.accepted(s, &Request::Escalate { envelope, plan }, &hash).await
    }

    #[allow(clippy::too_many_arguments)]
    fn record_sent_alert(
        &self,
        id: MessageId,
        hash: EnvelopeHash,
        body: &AlertBody,
        plaintext: &[u8],
        keys: &[[u8; 32]],
        handles: &[String],
        fields: &HeaderFields,
        accepted_ms: u64,
        plan: Option<Vec<u8>>,
    ) -> Result<()> {
        let me = *self.identity.public_key();
        let first = keys.first().and_then(|k| IdentityKey::from_bytes(k).ok()).unwrap_or(me);
        self.store.insert_message(&NewMessage {
            id,
            direction: Direction::Out,
            peer_key: &first,
            peer: &Peer::Known {
                handle: handles.join(", "),
            },
            recipients: handles,
            recipient_keys: keys,
            subject: &body.headline,
            body: &body.description,
            tlp: fields.tlp,
            exercise: fields.exercise,
            content_type: ContentType::Alert,
            created_at: fields.created_at_ms,
            received_at: accepted_ms,
            envelope_hash: hash,
            relay_stored_at: Some(accepted_ms),
            attachments: &[],
            incident: fields.incident_id.as_deref(),
        })?;
        self.store.alert_save(
            Direction::Out,
            &first,
            id,
            fields.incident_id.as_deref(),
            body,
            plaintext,
            &AlertRecord {
                body: plaintext.to_vec(),
                plan,
                accepted_ms: Some(accepted_ms),
                release: None,
                rings: 0,
                acked_at: None,
            },
        )
    }

    /// The alert this client sent with id prefix `id`, with its plan.
    fn sent_alert(&self, id: &str) -> Result<(StoredMessage, AlertBody, SignedPlan, u64)> {
        let m = self.store.find(id)?;
        if m.direction != Direction::Out || m.content_type != ContentType::Alert {
            return Err(Error::NotSentByYou(id.to_string()));
        }
        let (body, rec) = self
            .store
            .alert_load(Direction::Out, &m.peer_key, m.id)?
            .ok_or_else(|| Error::NotSentByYou(id.to_string()))?;
        let plan_bytes = rec
            .plan
            .ok_or_else(|| Error::Usage(format!("{} is a follow-up; name the alert it follows", m.id.to_hex())))?;
        let plan = SignedPlan::parse(&plan_bytes, Some(self.identity.public_key()))
            .map_err(|e| Error::DamagedStore(format!("stored plan: {e}")))?;
        if !matches!(plan.plan().kind, PlanKind::Escalate { .. }) {
            return Err(Error::Usage(format!(
                "{} is a follow-up; name the alert it follows",
                m.id.to_hex()
            )));
        }
        let accepted = rec.accepted_ms.unwrap_or(m.received_at);
        Ok((m, body, plan, accepted))
    }

    /// Sends an update, cancellation or all-clear of alert `id` to every POC of its plan
    /// (the relay delivers it to the ranks already released, and with the alert to any
    /// released later unless escalation stops).
    pub async fn alert_follow_up(&self, s: &Session, id: &str, what: FollowUp) -> Result<Raised> {
        s.require_member()?;
        let (m, original, plan, _) = self.sent_alert(id)?;
        self.sync_directory(s).await?;
        let log = self.log()?;
        let dir = log.directory();
        let PlanKind::Escalate { states, .. } = &plan.plan().kind else {
            unreachable!("checked by sent_alert")
        };
        let mut to: Vec<Poc> = Vec::new();
        let mut shown = Vec::new();
        let mut left_out = Vec::new();
        for st in states {
            let mut ranks_shown = Vec::new();
            for rank in &st.ranks {
                let mut names = Vec::new();
                for k in rank {
                    let Ok(key) = IdentityKey::from_bytes(k) else { continue };
                    match dir.by_key(&key) {
                        Some(p) => {
                            names.push(p.handle_text());
                            to.push(p.clone());
                        }
                        None => left_out.push(format!("{} (no longer in the directory)", key.fingerprint().short())),
                    }
                }
                ranks_shown.push(names);
            }
            shown.push((st.state.clone(), ranks_shown));
        }
        if to.is_empty() {
            return Err(Error::NoRecipients);
        }
        let now = now_ms();
        let (stop, mut body) = match what {
            FollowUp::Update {
                description,
                instruction,
                all_clear,
            } => {
                let mut b = original.clone();
                b.msg_type = MsgType::Update;
                b.description = description;
                if !instruction.is_empty() {
                    b.instruction = instruction;
                }
                if all_clear {
                    b.response_type = vec![pocnet_core::alert::ResponseType::AllClear];
                    if !b.headline.starts_with("ALL CLEAR") {
                        b.headline = truncate_line(&format!("ALL CLEAR: {}", original.headline), 160);
                    }
                }
                (all_clear, b)
            }
            FollowUp::Cancel { reason } => {
                let mut b = original.clone();
                b.msg_type = MsgType::Cancel;
                b.description = reason;
                b.instruction = String::new();
                b.headline = truncate_line(&format!("CANCELLED: {}", original.headline), 160);
                (true, b)
            }
        };
        body.references = vec![m.id.0];
        body.ack_within_ms = 0;
        body.repeats = 0;
        body.sent_ms = now;
        body.sender_handle = self.handle().unwrap_or_default().to_string();
        let fields = HeaderFields {
            suite: Suite::XWing,
            content_type: ContentType::Alert,
            tlp: m.tlp,
            exercise: m.exercise,
            incident_id: m.incident.clone(),
            log_head: Some(log.head()),
            ..HeaderFields::message(now)
        };
        let of = m.id.0;
        let sent = self
            .send_alert(s, &to, &fields, &body, |id, hash| {
                Ok(Plan::follow_up(id, hash, of, stop))
            })
            .await?;
        Ok(Raised {
            id: sent.id.to_hex(),
            states: shown,
            recipients: to.len(),
            accepted_ms: sent.stored_at_ms,
            bytes: sent.envelope.len(),
            left_out,
        })
    }

    /// Where alert `id` stands: the relay's record of each step (its plan checked against
    /// ours) with the signed receipts we hold. Syncs receipts first.
    pub async fn alert_status(&self, s: &Session, id: &str) -> Result<AlertStatus> {
        self.sync(s, false, None, |_, _| {}).await?;
        self.alert_status_held(s, id).await
    }

    /// As [`Client::alert_status`] with the receipts already held (for a caller that is
    /// watching on the same session).
    pub async fn alert_status_held(&self, s: &Session, id: &str) -> Result<AlertStatus> {
        let (m, _, plan, accepted) = self.sent_alert(id)?;
        let (relay_accepted, steps) = match s.request(&Request::EscalationStatus { alert: m.id.0 }).await? {
            Response::Escalation {
                accepted_ms,
                plan: relay_plan,
                steps,
            } => {
                if relay_plan != plan.as_bytes() {
                    return Err(Error::RelayLied(
                        "the relay reports another plan for this alert than the one we signed".into(),
                    ));
                }
                (accepted_ms, steps)
            }
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected answer to EscalationStatus: {other:?}"
                )))
            }
        };
        if relay_accepted != accepted {
            return Err(Error::RelayLied(format!(
                "the relay reports accepting this alert at {relay_accepted}, but signed {accepted}"
            )));
        }
        let receipts = self.store.receipts_for(m.id)?;
        let log = self.log()?;
        let dir = log.directory();
        let handle = |k: &[u8; 32]| -> String {
            IdentityKey::from_bytes(k)
                .ok()
                .and_then(|key| dir.by_key(&key).map(|p| p.handle_text()))
                .unwrap_or_else(|| pocnet_crypto::to_hex(&k[..4]))
        };
        Ok(pocnet_core::alert::status::compute(
            plan.plan(),
            accepted,
            &steps,
            &receipts,
            &handle,
            now_ms(),
        ))
    }

    /// Acknowledges received alert `id`: the signed `Acknowledged` receipt that stops
    /// escalation for our state (kept in the outbox until the relay has it), and with
    /// `note` a CAP Ack back to the sender. Returns whether the receipt reached the relay.
    pub async fn alert_ack(&self, s: Option<&Session>, id: &str, note: Option<&str>) -> Result<bool> {
        let m = self.store.find(id)?;
        if m.direction != Direction::In || m.content_type != ContentType::Alert {
            return Err(Error::Usage(format!(
                "{} is not an alert you received (see `pocnet inbox`)",
                m.id.to_hex()
            )));
        }
        let now = now_ms();
        let receipt = Receipt::sign(
            &self.identity,
            ReceiptKind::Acknowledged,
            m.id.0,
            m.envelope_hash.0,
            &m.peer_key,
            now,
        );
        self.store.outbox_put(&m.peer_key, receipt.as_bytes())?;
        self.store.alert_acked(Direction::In, &m.peer_key, m.id, now)?;
        if m.read_at.is_none() {
            self.store.mark_read(&m, now)?;
        }
        let Some(s) = s else { return Ok(false) };
        let sent = self.flush_outbox(s).await? > 0 || self.store.outbox_len()? == 0;
        if let Some(note) = note.filter(|n| !n.trim().is_empty()) {
            let original = self.store.alert_load(Direction::In, &m.peer_key, m.id)?.map(|(b, _)| b);
            let log = self.log()?;
            let Some(sender) = log.directory().by_key(&m.peer_key).cloned() else {
                return Err(Error::BadEnvelope(
                    "the alert's sender is no longer in the directory".into(),
                ));
            };
            let Some(mut body) = original else {
                return Err(Error::DamagedStore(format!(
                    "alert {} has no stored body",
                    m.id.to_hex()
                )));
            };
            body.msg_type = MsgType::Ack;
            body.references = vec![m.id.0];
            body.headline = truncate_line(&format!("Acknowledged: {}", body.headline), 160);
            body.description = note.to_string();
            body.instruction = String::new();
            body.ack_within_ms = 0;
            body.repeats = 0;
            body.sent_ms = now;
            body.sender_handle = self.handle().unwrap_or_default().to_string();
            let plaintext = body.encode().map_err(|e| Error::Usage(e.to_string()))?;
            let fields = HeaderFields {
                suite: Suite::XWing,
                content_type: ContentType::Alert,
                tlp: m.tlp,
                exercise: m.exercise,
                incident_id: m.incident.clone(),
                log_head: Some(log.head()),
                ..HeaderFields::message(now)
            };
            let pubs = vec![sender.public.clone()];
            let sealed = pocnet_crypto::seal(&mut pocnet_crypto::os_rng(), &self.identity, &pubs, &fields, &plaintext)?;
            let hash = sealed.envelope_hash;
            let mid = sealed.message_id;
            let (accepted, _) = self
                .accepted(s, &Request::Send { envelope: sealed.bytes }, &hash)
                .await?;
            self.record_sent_alert(
                MessageId(mid),
                EnvelopeHash(hash),
                &body,
                &plaintext,
                &[*sender.key.as_bytes()],
                &[sender.handle_text()],
                &fields,
                accepted,
                None,
            )?;
        }
        Ok(sent)
    }

    /// Sends receipts waiting in the outbox (acknowledgements made while the relay was
    /// unreachable); returns how many the relay took. A receipt the relay refuses for good
    /// (its message expired) is dropped with a warning.
    pub async fn flush_outbox(&self, s: &Session) -> Result<usize> {
        let mut sent = 0;
        for (row, to, receipt) in self.store.outbox()? {
            match s.request(&Request::SendReceipt { to, receipt }).await {
                Ok(_) => {
                    self.store.outbox_drop(row)?;
                    sent += 1;
                }
                Err(Error::Relay { code, message })
                    if !matches!(
                        code,
                        pocnet_wire::ErrorCode::RateLimited
                            | pocnet_wire::ErrorCode::ShuttingDown
                            | pocnet_wire::ErrorCode::Unavailable
                            | pocnet_wire::ErrorCode::StorageFull
                            | pocnet_wire::ErrorCode::Internal
                    ) =>
                {
                    tracing::warn!(
                        "an acknowledgement could not be delivered and is dropped: {}",
                        crate::render::line(&message)
                    );
                    self.store.outbox_drop(row)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Received alerts not yet acknowledged, newest first.
    pub fn alerts_open(&self) -> Result<Vec<AlertView>> {
        Ok(self
            .alerts_received()?
            .into_iter()
            .filter(|a| a.acked_at.is_none() && a.body.msg_type == MsgType::Alert)
            .collect())
    }

    /// Every received alert (and follow-up), newest first.
    pub fn alerts_received(&self) -> Result<Vec<AlertView>> {
        let mut out = Vec::new();
        for m in self.store.list_of(Direction::In, ContentType::Alert)? {
            if let Some(v) = self.alert_view(&m)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The alert view of a stored message, if it is one.
    pub fn alert_view(&self, m: &StoredMessage) -> Result<Option<AlertView>> {
        let Some((body, rec)) = self.store.alert_load(m.direction, &m.peer_key, m.id)? else {
            return Ok(None);
        };
        Ok(Some(AlertView {
            id: m.id.to_hex(),
            body,
            from: m.peer.to_stored(),
            tlp: m.tlp,
            exercise: m.exercise,
            incident: m.incident.clone(),
            accepted_ms: rec.accepted_ms.or(m.relay_stored_at),
            release: rec.release,
            acked_at: rec.acked_at,
            rings: rec.rings,
        }))
    }

    /// Called by the receive path for an opened Alert envelope: decodes and keeps the body.
    pub(crate) fn alert_received(
        &self,
        sender: &IdentityKey,
        id: MessageId,
        incident: Option<&str>,
        plaintext: &[u8],
        accepted_ms: Option<u64>,
        release: Option<ReleaseInfo>,
    ) -> Result<AlertBody> {
        let body =
            AlertBody::parse(plaintext).map_err(|e| Error::BadEnvelope(format!("alert does not decode: {e}")))?;
        self.store.alert_save(
            Direction::In,
            sender,
            id,
            incident,
            &body,
            plaintext,
            &AlertRecord {
                body: plaintext.to_vec(),
                plan: None,
                accepted_ms,
                release,
                rings: 1,
                acked_at: None,
            },
        )?;
        Ok(body)
    }

    /// A repeat (or late copy) of an alert we already hold: rings again unless acknowledged.
    pub(crate) fn alert_rang_again(&self, sender: &IdentityKey, id: MessageId, release: &ReleaseInfo) -> Result<bool> {
        self.store.alert_ring(sender, id, release)
    }

    /// The CAP 1.2 XML of an alert (sent or received) or of an acknowledgement note.
    pub fn alert_cap(&self, id: &str) -> Result<String> {
        let m = self.store.find(id)?;
        let (body, _) = self
            .store
            .alert_load(m.direction, &m.peer_key, m.id)?
            .ok_or_else(|| Error::Usage(format!("{} is not an alert", m.id.to_hex())))?;
        let sender_key = match m.direction {
            Direction::In => m.peer_key,
            Direction::Out => *self.identity.public_key(),
        };
        let cap_sender = |k: &IdentityKey| format!("{}@pocnet", k.fingerprint().to_hex());
        let mut triples = Vec::new();
        for r in &body.references {
            // The referenced alert: ours or the sender's, whichever we hold.
            let found = self.store.find(&pocnet_crypto::to_hex(r)).ok();
            let (who, sent) = match &found {
                Some(f) if f.direction == Direction::Out => (cap_sender(self.identity.public_key()), f.created_at),
                Some(f) => (cap_sender(&f.peer_key), f.created_at),
                None => (cap_sender(&sender_key), body.sent_ms),
            };
            triples.push((who, format!("pocnet-{}", pocnet_crypto::to_hex(r)), sent));
        }
        let lang = self.own_language();
        Ok(pocnet_core::alert::to_cap_xml(&CapAlert {
            body: &body,
            identifier: format!("pocnet-{}", m.id.to_hex()),
            sender: cap_sender(&sender_key),
            sent_ms: m.created_at,
            status: if m.exercise {
                CapStatus::Exercise
            } else {
                CapStatus::Actual
            },
            tlp: m.tlp,
            incident: m.incident.clone(),
            reference_triples: triples,
            language: lang,
        }))
    }

    /// This POC's language for structured fields, from its directory record.
    pub fn own_language(&self) -> Lang {
        self.own_record()
            .ok()
            .flatten()
            .map(|p| Lang::from_tags(&p.contact.languages))
            .unwrap_or(Lang::En)
    }

    /// One timeline of everything signed under incident `incident`: messages, alerts,
    /// updates, cancellations, acknowledgements and receipts we hold.
    pub fn incident(&self, incident: &str) -> Result<Timeline> {
        let mut events = Vec::new();
        for dir in [Direction::In, Direction::Out] {
            for m in self.store.list(dir)? {
                let inc = m.incident.clone();
                if inc.as_deref() != Some(incident) {
                    continue;
                }
                let from = match m.direction {
                    Direction::In => m.peer.to_stored(),
                    Direction::Out => self.handle().unwrap_or("me").to_string(),
                };
                let (kind, headline, text) = match m.content_type {
                    ContentType::Alert => {
                        let body = self.store.alert_load(m.direction, &m.peer_key, m.id)?.map(|(b, _)| b);
                        match body {
                            Some(b) => {
                                let kind = match b.msg_type {
                                    MsgType::Alert => EventKind::Alert,
                                    MsgType::Update if b.is_all_clear() => EventKind::AllClear,
                                    MsgType::Update => EventKind::Update,
                                    MsgType::Cancel => EventKind::Cancel,
                                    MsgType::Ack => EventKind::Acknowledged,
                                };
                                (kind, b.headline.clone(), b.description.clone())
                            }
                            None => (EventKind::Alert, m.subject.clone(), m.body.clone()),
                        }
                    }
                    _ if m.subject.starts_with("Fwd: ") => (EventKind::Forwarded, m.subject.clone(), m.body.clone()),
                    _ => (EventKind::Message, m.subject.clone(), m.body.clone()),
                };
                events.push(Event {
                    at_ms: m.relay_stored_at.unwrap_or(m.created_at),
                    kind,
                    from: from.clone(),
                    to: m.recipients.clone(),
                    tlp: m.tlp,
                    exercise: m.exercise,
                    id_hex: m.id.to_hex(),
                    headline,
                    text,
                    relay_time: m.relay_stored_at.is_some(),
                });
                if m.direction == Direction::Out {
                    // Receipts are signed by their recipients: each is an event of its own.
                    for (signer, kind, at) in self.store.receipts_for(m.id)? {
                        let who = IdentityKey::from_bytes(&signer)
                            .ok()
                            .and_then(|k| self.log().ok()?.directory().by_key(&k).map(|p| p.handle_text()))
                            .unwrap_or_else(|| pocnet_crypto::to_hex(&signer[..4]));
                        events.push(Event {
                            at_ms: at,
                            kind: match kind {
                                ReceiptKind::Delivered => EventKind::Delivered,
                                ReceiptKind::Read => EventKind::Read,
                                ReceiptKind::Acknowledged => EventKind::Acknowledged,
                            },
                            from: who,
                            to: vec![from.clone()],
                            tlp: m.tlp,
                            exercise: m.exercise,
                            id_hex: m.id.to_hex(),
                            headline: m.subject.clone(),
                            text: String::new(),
                            relay_time: false,
                        });
                    }
                } else if let Some((_, rec)) = self.store.alert_load(m.direction, &m.peer_key, m.id)? {
                    if let Some(at) = rec.acked_at {
                        events.push(Event {
                            at_ms: at,
                            kind: EventKind::Acknowledged,
                            from: self.handle().unwrap_or("me").to_string(),
                            to: vec![m.peer.to_stored()],
                            tlp: m.tlp,
                            exercise: m.exercise,
                            id_hex: m.id.to_hex(),
                            headline: m.subject.clone(),
                            text: String::new(),
                            relay_time: false,
                        });
                    }
                }
            }
        }
        events.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.id_hex.cmp(&b.id_hex)));
        if events.is_empty() {
            return Err(Error::Usage(format!(
                "nothing on record for incident {}",
                crate::render::line(incident)
            )));
        }
        Ok(Timeline {
            incident: incident.to_string(),
            events,
        })
    }

    /// Forwards message or alert `id` to `to` (handles, states or fingerprints), keeping its
    /// TLP, incident and exercise flag; refused when TLP 2.0 forbids it.
    pub async fn forward(
        &self,
        s: &Session,
        id: &str,
        to: &[String],
        note: &str,
    ) -> Result<crate::ops::messaging::Sent> {
        s.require_member()?;
        let m = self.store.find(id)?;
        let mut targets: Vec<Poc> = Vec::new();
        for t in to {
            for p in self.resolve(s, t).await? {
                if !targets.iter().any(|x| x.key == p.key) && p.key != *self.identity.public_key() {
                    targets.push(p);
                }
            }
        }
        if targets.is_empty() {
            return Err(Error::NoRecipients);
        }
        let original_sender = match m.direction {
            Direction::In => *m.peer_key.as_bytes(),
            Direction::Out => *self.identity.public_key().as_bytes(),
        };
        let original_recipients = self.store.recipient_keys(&m)?;
        let my_state = self
            .own_record()?
            .map(|p| p.state().to_string())
            .ok_or_else(|| Error::Usage("only a POC listed in the directory can forward".into()))?;
        let t: Vec<([u8; 32], String, String)> = targets
            .iter()
            .map(|p| (*p.key.as_bytes(), p.handle_text(), p.state().to_string()))
            .collect();
        check_forward(m.tlp, &original_recipients, &original_sender, &my_state, &t)
            .map_err(|r| Error::TlpRefused(r.to_string()))?;
        let (headline, text) = match m.content_type {
            ContentType::Alert => match self.store.alert_load(m.direction, &m.peer_key, m.id)? {
                Some((b, _)) => (b.headline.clone(), alert_plain_text(&b)),
                None => (m.subject.clone(), m.body.clone()),
            },
            _ => (m.subject.clone(), m.body.clone()),
        };
        let from = match m.direction {
            Direction::In => m.peer.to_stored(),
            Direction::Out => self.handle().unwrap_or("me").to_string(),
        };
        let mut body = String::new();
        if !note.trim().is_empty() {
            body.push_str(note.trim_end());
            body.push_str("\n\n");
        }
        body.push_str(&format!(
            "---- Forwarded ({}{}) from {} ----\n{}",
            m.tlp.label(),
            if m.exercise { ", EXERCISE" } else { "" },
            from,
            text
        ));
        let incident = m.incident.clone();
        let handles: Vec<String> = targets.iter().map(|p| p.handle_text()).collect();
        self.send_prepared(
            s,
            targets,
            &crate::ops::messaging::Outgoing {
                subject: truncate_line(&format!("Fwd: {headline}"), 200),
                text: body,
                tlp: m.tlp,
                attachments: Vec::new(),
                incident_id: incident,
            },
            m.exercise,
        )
        .await
        .map(|mut sent| {
            sent.recipients = handles;
            sent
        })
    }
}

/// An alert's text for a forward or an export: every structured field in English words.
pub fn alert_plain_text(b: &AlertBody) -> String {
    let mut s = String::new();
    s.push_str(&b.description);
    if !b.instruction.is_empty() {
        s.push_str("\n\nInstruction: ");
        s.push_str(&b.instruction);
    }
    s.push_str(&format!(
        "\n\nSeverity: {}; urgency: {}; certainty: {}",
        b.severity.as_cap(),
        b.urgency.as_cap(),
        b.certainty.as_cap()
    ));
    s
}

/// `s` cut to at most `max` bytes on a character boundary, one line.
pub fn truncate_line(s: &str, max: usize) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
