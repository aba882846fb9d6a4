//! Messaging: seal and send, receive the backlog and live deliveries (each stored once,
//! acknowledged after the local commit), read with a signed read receipt.

use std::path::PathBuf;

use pocnet_crypto::{ContentType, HeaderFields, IdentityKey, PublicIdentity, Receipt, ReceiptKind, Suite, Tlp};
use pocnet_wire::content::MessageBody;
use pocnet_wire::{Delivery, Request, Response};
use serde::Serialize;

use crate::app::Client;
use crate::db::{AttachmentRecord, AttachmentState, NewMessage, StoredMessage};
use crate::error::{Error, Result};
use crate::net::{Session, WatchEvent};
use crate::now_ms;
use crate::ops::attachments::check_body_limits;
use crate::types::{Direction, EnvelopeHash, MessageId, Peer};

/// What to send.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub text: String,
    /// TLP marking.
    pub tlp: Tlp,
    /// Files to attach.
    pub attachments: Vec<PathBuf>,
    /// Incident id, if any.
    pub incident_id: Option<String>,
}

/// What `send` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Sent {
    /// The message id.
    pub id: MessageId,
    /// Recipient handles.
    pub recipients: Vec<String>,
    /// When the relay committed it (Unix ms), by its signed statement.
    pub stored_at: u64,
    /// Envelope bytes.
    pub bytes: usize,
    /// The sealed envelope itself (a drill record keeps it).
    #[serde(skip)]
    pub envelope: Vec<u8>,
    /// The relay's acceptance proof (checked).
    #[serde(skip)]
    pub proof: pocnet_wire::AcceptProof,
}

/// Counts from one sync.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncStats {
    /// New messages stored.
    pub new_messages: usize,
    /// Duplicates dropped (already stored).
    pub duplicates: usize,
    /// Receipts recorded.
    pub receipts: usize,
    /// Items the relay sent that failed verification (acknowledged and dropped).
    pub rejected: usize,
}

impl Client {
    /// Seals and sends a message (and its attachments) to everyone `to` names.
    pub async fn send(&self, s: &Session, to: &[String], msg: &Outgoing) -> Result<Sent> {
        s.require_member()?;
        let mut recipients: Vec<pocnet_core::directory::Poc> = Vec::new();
        for t in to {
            for r in self.resolve(s, t).await? {
                if !recipients.iter().any(|m| m.key == r.key) && &r.key != self.identity.public_key() {
                    recipients.push(r);
                }
            }
        }
        self.send_prepared(s, recipients, msg, false).await
    }

    /// Seals and sends `msg` to `recipients` (already resolved from the verified
    /// directory), marked as drill traffic if `exercise`.
    pub async fn send_prepared(
        &self,
        s: &Session,
        recipients: Vec<pocnet_core::directory::Poc>,
        msg: &Outgoing,
        exercise: bool,
    ) -> Result<Sent> {
        let Some(first) = recipients.first() else {
            return Err(Error::NoRecipients);
        };
        let first = first.key;
        let pubs: Vec<PublicIdentity> = Client::publics(&recipients);
        let handles: Vec<String> = recipients.iter().map(|m| m.handle_text()).collect();
        // Every envelope carries our log head: a recipient shown another directory finds out.
        let log_head = Some(self.log()?.head());
        let now = now_ms();
        let mut refs = Vec::new();
        for path in &msg.attachments {
            refs.push(self.send_attachment(s, &pubs, path, msg).await?);
        }
        let body = MessageBody {
            subject: msg.subject.clone(),
            text: msg.text.clone(),
            attachments: refs,
        };
        let plaintext = postcard::to_stdvec(&body).map_err(|e| Error::Protocol(format!("cannot encode: {e}")))?;
        let fields = HeaderFields {
            suite: Suite::XWing,
            tlp: msg.tlp,
            exercise,
            incident_id: msg.incident_id.clone(),
            log_head,
            ..HeaderFields::message(now)
        };
        let sealed = pocnet_crypto::seal(&mut pocnet_crypto::os_rng(), &self.identity, &pubs, &fields, &plaintext)?;
        let bytes = sealed.bytes.len();
        let request = Request::Send { envelope: sealed.bytes };
        let (stored_at, proof) = self.accepted(s, &request, &sealed.envelope_hash).await?;
        let Request::Send { envelope } = request else {
            unreachable!("built above")
        };
        let attachments: Vec<AttachmentRecord> = msg
            .attachments
            .iter()
            .zip(&body.attachments)
            .map(|(p, a)| AttachmentRecord {
                name: a.name.clone(),
                size: a.size,
                state: AttachmentState::Sent {
                    path: p.display().to_string(),
                },
            })
            .collect();
        let keys: Vec<[u8; 32]> = pubs.iter().map(|p| *p.key().as_bytes()).collect();
        let id = MessageId(sealed.message_id);
        self.store.insert_message(&NewMessage {
            id,
            direction: Direction::Out,
            peer_key: &first,
            peer: &Peer::Known {
                handle: handles.join(", "),
            },
            recipients: &handles,
            recipient_keys: &keys,
            subject: &msg.subject,
            body: &msg.text,
            tlp: msg.tlp,
            exercise,
            content_type: ContentType::Message,
            created_at: now,
            received_at: now,
            envelope_hash: EnvelopeHash(sealed.envelope_hash),
            relay_stored_at: Some(stored_at),
            attachments: &attachments,
            incident: msg.incident_id.as_deref(),
        })?;
        Ok(Sent {
            id,
            recipients: handles,
            stored_at,
            bytes,
            envelope,
            proof,
        })
    }

    /// The acceptance must be a group signature by the pinned relay key over a Merkle root
    /// that provably contains exactly this envelope at `stored_at` (PROTOCOL.md §8.2).
    pub(crate) fn check_relay_signature(
        &self,
        envelope_hash: &[u8; 32],
        stored_at: u64,
        proof: &pocnet_wire::AcceptProof,
    ) -> Result<()> {
        let key = self.profile.relay_key().ok_or(Error::NotEnrolledHere)?;
        pocnet_wire::verify_acceptance(&key, envelope_hash, stored_at, proof).map_err(|_| Error::BadRelaySignature)
    }

    /// Sends `request` (a `Send` or an `Escalate` of an envelope whose hash we computed as
    /// `hash`) and returns the relay's acceptance time and proof, both checked: signed by
    /// the pinned relay key, for exactly this envelope.
    pub(crate) async fn accepted(
        &self,
        s: &Session,
        request: &Request,
        hash: &[u8; 32],
    ) -> Result<(u64, pocnet_wire::AcceptProof)> {
        match s.request(request).await? {
            Response::Accepted {
                envelope_hash,
                stored_at_ms,
                proof,
                ..
            } => {
                self.check_relay_signature(&envelope_hash, stored_at_ms, &proof)?;
                if envelope_hash != *hash {
                    return Err(Error::Protocol(
                        "the relay acknowledged a different envelope hash; report this relay".into(),
                    ));
                }
                Ok((stored_at_ms, proof))
            }
            other => {
                let what = if matches!(request, Request::Escalate { .. }) {
                    "Escalate"
                } else {
                    "Send"
                };
                Err(Error::Protocol(format!("unexpected answer to {what}: {other:?}")))
            }
        }
    }

    /// `Send`s a sealed envelope; returns the relay's checked acceptance.
    pub(crate) async fn send_sealed(
        &self,
        s: &Session,
        sealed: &pocnet_crypto::Sealed,
    ) -> Result<(u64, pocnet_wire::AcceptProof)> {
        let request = Request::Send {
            envelope: sealed.bytes.clone(),
        };
        self.accepted(s, &request, &sealed.envelope_hash).await
    }

    /// Receives the backlog (and, with `follow`, everything after), storing each message
    /// once, sending delivered receipts and acknowledging each item after it is stored.
    /// With `stop_after`, returns once that many new messages were stored.
    pub async fn sync(
        &self,
        s: &Session,
        follow: bool,
        stop_after: Option<usize>,
        on_message: impl FnMut(&StoredMessage, ContentType),
    ) -> Result<SyncStats> {
        self.sync_with(s, follow, stop_after, on_message, || {}).await
    }

    /// As [`Client::sync`], calling `on_caught_up` each time the backlog has been received.
    /// With `follow`, a stream the relay ends (a watcher that fell too far behind is cut
    /// off) is opened again and resumes from the backlog.
    pub async fn sync_with(
        &self,
        s: &Session,
        follow: bool,
        stop_after: Option<usize>,
        on_message: impl FnMut(&StoredMessage, ContentType),
        on_caught_up: impl FnMut(),
    ) -> Result<SyncStats> {
        self.sync_inner(s, follow, stop_after, on_message, on_caught_up, || {})
            .await
    }

    /// Follows the relay like [`Client::sync_with`], and also calls `on_item` after every
    /// stored delivery, receipts included (a live view redraws an alert's status on it).
    pub async fn sync_events(
        &self,
        s: &Session,
        on_message: impl FnMut(&StoredMessage, ContentType),
        on_caught_up: impl FnMut(),
        on_item: impl FnMut(),
    ) -> Result<SyncStats> {
        self.sync_inner(s, true, None, on_message, on_caught_up, on_item).await
    }

    async fn sync_inner(
        &self,
        s: &Session,
        follow: bool,
        stop_after: Option<usize>,
        mut on_message: impl FnMut(&StoredMessage, ContentType),
        mut on_caught_up: impl FnMut(),
        mut on_item: impl FnMut(),
    ) -> Result<SyncStats> {
        s.require_member()?;
        let mut stats = SyncStats::default();
        loop {
            let mut watch = s.watch(follow).await?;
            while let Some(ev) = watch.next().await? {
                match ev {
                    WatchEvent::CaughtUp => {
                        on_caught_up();
                        if !follow {
                            return Ok(stats);
                        }
                    }
                    WatchEvent::Item(d) => {
                        let seq = d.seq();
                        if let Some(m) = self.handle_delivery(s, d, &mut stats).await? {
                            on_message(&m, m.content_type);
                        }
                        // Acknowledge only after the message is committed locally.
                        s.request(&Request::Ack { seqs: vec![seq] }).await?;
                        on_item();
                        if stop_after.is_some_and(|n| stats.new_messages >= n) {
                            return Ok(stats);
                        }
                    }
                }
            }
            if !follow {
                return Ok(stats);
            }
            tracing::info!("watch stream ended by the relay; reopening");
        }
    }

    async fn handle_delivery(&self, s: &Session, d: Delivery, stats: &mut SyncStats) -> Result<Option<StoredMessage>> {
        // A protocol-3 relay states when it stored the envelope, with its signed proof.
        let d_acceptance = match &d {
            Delivery::Stored {
                stored_at_ms, proof, ..
            }
            | Delivery::Escalated {
                stored_at_ms, proof, ..
            } => Some((*stored_at_ms, proof.clone())),
            _ => None,
        };
        let release = match &d {
            Delivery::Escalated { release, .. } => Some(crate::ops::alerts::ReleaseInfo::from(release)),
            _ => None,
        };
        match d {
            Delivery::Envelope { envelope, .. }
            | Delivery::Stored { envelope, .. }
            | Delivery::Escalated { envelope, .. } => {
                match self.receive(s, &envelope, d_acceptance, release).await {
                    Ok(Some(r)) => {
                        stats.new_messages += 1;
                        Ok(Some(r))
                    }
                    Ok(None) => {
                        stats.duplicates += 1;
                        Ok(None)
                    }
                    Err(e) if e.condemns_envelope() => {
                        tracing::warn!(
                            "dropped an envelope that failed verification: {}",
                            crate::render::line(&e.to_string())
                        );
                        stats.rejected += 1;
                        Ok(None)
                    }
                    // Anything else (network, disk) is not the envelope's fault: no ack, retry later.
                    Err(e) => Err(e),
                }
            }
            Delivery::Receipt { from, receipt, .. } => {
                let Ok(key) = IdentityKey::from_bytes(&from) else {
                    return Ok(None);
                };
                match Receipt::verify(&receipt, &key) {
                    Ok(r)
                        if r.sender == *self.identity.public_key().as_bytes()
                            && self
                                .store
                                .sent_to(MessageId(r.message_id), EnvelopeHash(r.envelope_hash), &key)? =>
                    {
                        self.store
                            .insert_receipt(MessageId(r.message_id), &key, r.kind, r.at_ms, &receipt)?;
                        stats.receipts += 1;
                    }
                    _ => stats.rejected += 1,
                }
                Ok(None)
            }
            Delivery::Expired {
                message_id, recipient, ..
            } => {
                // A notice about a key that is not a key cannot concern anything we sent.
                if let Ok(recipient) = IdentityKey::from_bytes(&recipient) {
                    self.store.insert_expired(MessageId(message_id), &recipient, now_ms())?;
                }
                Ok(None)
            }
        }
    }

    /// Verifies, opens and stores one envelope; `None` if it was already stored. Errors
    /// that condemn the envelope itself are [`Error::BadEnvelope`] or [`Error::TooLarge`];
    /// others leave it at the relay.
    async fn receive(
        &self,
        s: &Session,
        envelope: &[u8],
        acceptance: Option<(u64, pocnet_wire::AcceptProof)>,
        release: Option<crate::ops::alerts::ReleaseInfo>,
    ) -> Result<Option<StoredMessage>> {
        let reject = |e: &dyn std::fmt::Display| Error::BadEnvelope(e.to_string());
        // Verify under the key the envelope claims, before parsing anything else of it.
        let sender = pocnet_crypto::claimed_sender(envelope).map_err(|e| reject(&e))?;
        let opened = pocnet_crypto::open(&self.identity, envelope, &sender).map_err(|e| reject(&e))?;
        let h = &opened.header;
        let id = MessageId(h.message_id);
        if self.store.has_message(Direction::In, &sender, id)? {
            // A repeat of an alert (the same envelope released again): it rings again
            // until someone here acknowledges it.
            if let (ContentType::Alert, Some(r)) = (h.content_type, &release) {
                if self.alert_rang_again(&sender, id, r)? {
                    return self.store.find(&id.to_hex()).map(Some);
                }
            }
            return Ok(None);
        }
        // A national authority's policy document: its own rules (the sender is an authority,
        // not a POC), and no receipt.
        if h.content_type == ContentType::Policy {
            return self.receive_policy(s, &sender, &opened).await;
        }
        let mut alert = None;
        let mut body: MessageBody = match h.content_type {
            ContentType::Message => postcard::from_bytes(&opened.plaintext)
                .map_err(|e| reject(&format!("message body does not decode: {e}")))?,
            ContentType::Alert => {
                let a = pocnet_core::alert::AlertBody::parse(&opened.plaintext)
                    .map_err(|e| reject(&format!("alert does not decode: {e}")))?;
                let b = MessageBody {
                    subject: a.headline.clone(),
                    text: crate::ops::alerts::alert_plain_text(&a),
                    attachments: Vec::new(),
                };
                alert = Some(a);
                b
            }
            // Decoded once the sender is known to be listed (below).
            ContentType::RoundChallenge | ContentType::RoundResponse => MessageBody {
                subject: String::new(),
                text: String::new(),
                attachments: Vec::new(),
            },
            other => return Err(reject(&format!("unexpected content type {other:?} in the inbox"))),
        };
        // Sizes and counts the sender chose are checked before anything is allocated or fetched.
        check_body_limits(&body)?;
        // The sender must be listed in the verified directory (sync once if it is new to us):
        // revoked and removed keys are refused here, not only at the relay.
        let mut log = self.log()?;
        if !log.directory().is_member(&sender) && log.directory().handle_of(&sender).is_none() {
            self.sync_directory(s).await?;
            log = self.log()?;
        }
        let dir = log.directory();
        if !dir.is_member(&sender) && dir.handle_of(&sender).is_none() {
            let why = match dir.former().iter().rev().find(|f| f.key == sender) {
                Some(f) if f.revoked => format!(
                    "the sender's key ({} as {}) was revoked in the directory (log entry {})",
                    sender.fingerprint().short(),
                    f.handle,
                    f.index
                ),
                Some(f) => format!(
                    "the sender ({} as {}) was removed from the directory (log entry {})",
                    sender.fingerprint().short(),
                    f.handle,
                    f.index
                ),
                None => format!("the sender {} is not in the directory", sender.fingerprint().short()),
            };
            return Err(Error::BadEnvelope(why));
        }
        self.check_head(s, &sender, h.log_head).await?;
        let log = self.log()?;
        let dir = log.directory();
        let peer = self.peer_in(dir, &sender);
        match h.content_type {
            ContentType::RoundChallenge => {
                let (subject, text) = self.round_received(
                    &sender,
                    h.message_id,
                    opened.envelope_hash,
                    &opened.plaintext,
                    h.exercise,
                )?;
                body.subject = subject;
                body.text = text;
            }
            ContentType::RoundResponse => {
                // The report times answers by the relay's signed acceptance, so it must verify.
                let accepted = match &acceptance {
                    Some((stored_at, proof)) => {
                        self.check_relay_signature(&opened.envelope_hash, *stored_at, proof)?;
                        Some(pocnet_core::round::Acceptance {
                            stored_at_ms: *stored_at,
                            proof: proof.clone(),
                        })
                    }
                    None => None,
                };
                let handle = self
                    .round_answer_received(s, &sender, opened.envelope_hash, &opened.plaintext, accepted)
                    .await?;
                body.subject = format!("Contact check answered by {handle}");
                let a = pocnet_core::round::SignedAnswer::decode_unverified(&opened.plaintext)
                    .map(|a| a.note)
                    .unwrap_or_default();
                body.text = a;
            }
            _ => {}
        }
        let mut attachments = Vec::new();
        for a in &body.attachments {
            let state = match self.fetch_attachment(s, &sender, a).await {
                Ok(envelope) => AttachmentState::Kept { envelope },
                // The message itself is good: keep it, and say which attachment is missing.
                Err(e) if e.condemns_envelope() || matches!(e, Error::Relay { .. }) => {
                    AttachmentState::Missing { reason: e.to_string() }
                }
                Err(e) => return Err(e),
            };
            attachments.push(AttachmentRecord {
                name: a.name.clone(),
                size: a.size,
                state,
            });
        }
        let mut recipients = Vec::new();
        for r in &h.recipients {
            recipients.push(if &r.key == self.identity.public_key().as_bytes() {
                self.handle().unwrap_or("me").to_string()
            } else {
                match IdentityKey::from_bytes(&r.key) {
                    Ok(k) => self.peer_in(dir, &k).to_stored(),
                    Err(_) => pocnet_crypto::to_hex(&r.key[..8]),
                }
            });
        }
        let keys: Vec<[u8; 32]> = h.recipients.iter().map(|r| r.key).collect();
        // The relay's acceptance time is kept only if the pinned relay key signed it for
        // exactly this envelope; the message itself stands on its sender's signature.
        let relay_stored_at = acceptance.and_then(|(stored_at, proof)| {
            match self.check_relay_signature(&opened.envelope_hash, stored_at, &proof) {
                Ok(()) => Some(stored_at),
                Err(e) => {
                    tracing::warn!(
                        "the relay's acceptance of message {} does not verify ({}); its time is not kept",
                        id.to_hex(),
                        crate::render::line(&e.to_string())
                    );
                    None
                }
            }
        });
        let now = now_ms();
        if alert.is_some() {
            // Kept before the message row: a crash in between leaves nothing half-stored
            // (the alert row alone is overwritten when the envelope comes again).
            self.alert_received(
                &sender,
                id,
                h.incident_id.as_deref(),
                &opened.plaintext,
                relay_stored_at,
                release,
            )?;
        }
        let new = self.store.insert_message(&NewMessage {
            id,
            direction: Direction::In,
            peer_key: &sender,
            peer: &peer,
            recipients: &recipients,
            recipient_keys: &keys,
            subject: &body.subject,
            body: &body.text,
            tlp: h.tlp,
            exercise: h.exercise,
            content_type: h.content_type,
            created_at: h.created_at_ms,
            received_at: now,
            envelope_hash: EnvelopeHash(opened.envelope_hash),
            relay_stored_at,
            attachments: &attachments,
            incident: h.incident_id.as_deref(),
        })?;
        if !new {
            return Ok(None);
        }
        let receipt = Receipt::sign(
            &self.identity,
            ReceiptKind::Delivered,
            h.message_id,
            opened.envelope_hash,
            &sender,
            now,
        );
        if let Err(e) = s
            .request(&Request::SendReceipt {
                to: *sender.as_bytes(),
                receipt: receipt.as_bytes().to_vec(),
            })
            .await
        {
            tracing::warn!("delivered receipt not sent: {}", crate::render::line(&e.to_string()));
        }
        self.store.find(&id.to_hex()).map(Some)
    }

    /// Shows a message: marks it read and, for incoming ones, sends a read receipt.
    pub async fn read(&self, id: &str, s: Option<&Session>) -> Result<StoredMessage> {
        let m = self.store.find(id)?;
        if m.direction == Direction::In && m.read_at.is_none() {
            let now = now_ms();
            self.store.mark_read(&m, now)?;
            if let Some(s) = s {
                let sender = m.peer_key;
                let receipt = Receipt::sign(
                    &self.identity,
                    ReceiptKind::Read,
                    m.id.0,
                    m.envelope_hash.0,
                    &sender,
                    now,
                );
                s.request(&Request::SendReceipt {
                    to: *sender.as_bytes(),
                    receipt: receipt.as_bytes().to_vec(),
                })
                .await?;
            }
        }
        self.store.find(&m.id.to_hex())
    }
}
