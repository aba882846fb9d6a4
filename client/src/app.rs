//! What the CLI does, as a library: enrol, resolve contacts, send, sync deliveries,
//! read, and report status from signed receipts. The binary only parses and prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pocnet_crypto::{
    ContentType, HeaderFields, Identity, IdentityKey, PublicIdentity, Receipt, ReceiptKind, Suite, Tlp,
};
use pocnet_wire::content::{AttachmentRef, MessageBody};
use pocnet_wire::{Delivery, Member, Request, Response};
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::db::{self, MessageRow};
use crate::net::{Session, WatchEvent};
use crate::now_ms;
use crate::profile::Profile;

/// An unlocked profile with its store.
pub struct Client {
    /// The profile directory and its settings.
    pub profile: Profile,
    /// The unlocked identity.
    pub identity: Identity,
    /// The local store.
    pub db: Connection,
}

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
    /// Hex message id.
    pub id: String,
    /// Recipient handles.
    pub recipients: Vec<String>,
    /// When the relay committed it (Unix ms), by its signed statement.
    pub stored_at: u64,
    /// Envelope bytes.
    pub bytes: usize,
}

/// Per-recipient delivery state of a sent message.
#[derive(Clone, Debug, Serialize)]
pub struct RecipientStatus {
    /// Handle.
    pub handle: String,
    /// `stored`, `delivered`, `read` or `expired`.
    pub state: String,
    /// When the latest receipt says so (Unix ms).
    pub at: Option<u64>,
}

/// A sent message's status.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Hex id.
    pub id: String,
    /// Subject.
    pub subject: String,
    /// When the relay committed it.
    pub stored_at: Option<u64>,
    /// Each recipient.
    pub recipients: Vec<RecipientStatus>,
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
    /// Opens and unlocks the profile at `home`.
    pub fn open(home: &Path, passphrase: &[u8]) -> anyhow::Result<Client> {
        let profile = Profile::open(home)?;
        let identity = profile.unlock(passphrase)?;
        let db = db::open(&profile.db_path())?;
        Ok(Client { profile, identity, db })
    }

    /// Connects to the pinned relay.
    pub async fn connect(&self) -> anyhow::Result<Session> {
        let relay = self.profile.relay()?;
        let s = Session::connect(&self.identity, &relay.address, self.profile.relay_fingerprint()?).await?;
        if let Some(m) = &s.member {
            if m.revoked {
                bail!("this key has been revoked at the relay");
            }
        }
        Ok(s)
    }

    /// Enrols at a relay with an invite; pins the relay's key.
    pub async fn enrol(&mut self, address: &str, fingerprint: &str, invite: &str) -> anyhow::Result<Member> {
        let pin = pocnet_crypto::Fingerprint::parse(fingerprint)
            .context("--relay-key must be the relay's 64-hex-digit fingerprint")?;
        let s = Session::connect(&self.identity, address, pin).await?;
        let member = match &s.member {
            Some(m) => m.clone(),
            None => match s
                .request(&Request::Enrol {
                    invite: invite.trim().to_string(),
                    public_identity: self.identity.public().to_bytes(),
                })
                .await?
            {
                Response::Enrolled { member } => member,
                other => bail!("unexpected answer to Enrol: {other:?}"),
            },
        };
        self.profile.config.relay = Some(crate::profile::RelayPin {
            address: address.to_string(),
            fingerprint: pin.to_hex(),
            key: Some(pocnet_crypto::to_hex(s.relay_key.as_bytes())),
        });
        self.profile.config.handle = Some(member.handle.clone());
        self.profile.save()?;
        s.close().await;
        Ok(member)
    }

    /// Looks members up at the relay, without the pin check (for `verify`).
    pub async fn lookup(&self, s: &Session, query: &str) -> anyhow::Result<Vec<(Member, PublicIdentity)>> {
        let members = match s
            .request(&Request::Lookup {
                query: query.to_string(),
            })
            .await?
        {
            Response::Directory { members } => members,
            other => bail!("unexpected answer to Lookup: {other:?}"),
        };
        if members.is_empty() {
            bail!("no enrolled POC matches {query:?}; handles look like CL.primary, or use a state code or a fingerprint prefix");
        }
        members
            .into_iter()
            .map(|m| {
                let pi = PublicIdentity::from_bytes(&m.public_identity)
                    .with_context(|| format!("the relay's record for {} does not verify", m.handle))?;
                Ok((m, pi))
            })
            .collect()
    }

    /// The key pinned for `handle`, if it is not `key`.
    fn pinned_other(&self, handle: &str, key: &IdentityKey) -> anyhow::Result<Option<IdentityKey>> {
        Ok(match db::key_for_handle(&self.db, handle)? {
            Some(k) if k.as_slice() != key.as_bytes() => Some(IdentityKey::from_bytes(
                &k.as_slice().try_into().context("damaged contact key")?,
            )?),
            _ => None,
        })
    }

    /// Resolves an address (`CL.primary`, `CL` for every POC of a state, or a fingerprint
    /// prefix) to members, checking each key against the one pinned for that handle.
    pub async fn resolve(&self, s: &Session, to: &str) -> anyhow::Result<Vec<(Member, PublicIdentity)>> {
        let found = self.lookup(s, to).await?;
        for (m, pi) in &found {
            if let Some(old) = self.pinned_other(&m.handle, pi.key())? {
                bail!(
                    "the key for {} has CHANGED since you first saw it (was {}, now {}). Do not send until you have \
                     confirmed the new key by voice: `pocnet verify {}` shows the safety number, and \
                     `pocnet verify {} --accept` pins the new key once it matches.",
                    m.handle,
                    old.fingerprint().short(),
                    pi.fingerprint().short(),
                    m.handle,
                    m.handle
                );
            }
        }
        for (m, pi) in &found {
            db::remember(
                &self.db,
                pi.key().as_bytes(),
                &m.handle,
                &m.name,
                &m.public_identity,
                now_ms(),
            )?;
        }
        Ok(found)
    }

    /// For `verify`: the member, its key, the key pinned before if it differs; with
    /// `accept`, pins the current key as verified by voice.
    pub async fn verify_contact(
        &self,
        s: &Session,
        handle: &str,
        accept: bool,
    ) -> anyhow::Result<(Member, PublicIdentity, Option<IdentityKey>)> {
        let found = self.lookup(s, handle).await?;
        let [(m, pi)] = found.as_slice() else {
            bail!("{handle:?} matches {} POCs; name one handle", found.len())
        };
        let previous = self.pinned_other(&m.handle, pi.key())?;
        if accept {
            db::repin(
                &self.db,
                pi.key().as_bytes(),
                &m.handle,
                &m.name,
                &m.public_identity,
                now_ms(),
            )?;
        }
        Ok((m.clone(), pi.clone(), previous))
    }

    /// Seals and sends a message (and its attachments) to everyone `to` names.
    pub async fn send(&self, s: &Session, to: &[String], msg: &Outgoing) -> anyhow::Result<Sent> {
        s.require_member()?;
        let mut recipients: Vec<(Member, PublicIdentity)> = Vec::new();
        for t in to {
            for r in self.resolve(s, t).await? {
                if !recipients.iter().any(|(m, _)| m.handle == r.0.handle) && r.1.key() != self.identity.public_key() {
                    recipients.push(r);
                }
            }
        }
        if recipients.is_empty() {
            bail!("no recipients left (you cannot send only to yourself)");
        }
        let pubs: Vec<PublicIdentity> = recipients.iter().map(|(_, p)| p.clone()).collect();
        let handles: Vec<String> = recipients.iter().map(|(m, _)| m.handle.clone()).collect();
        let now = now_ms();
        let mut refs = Vec::new();
        for path in &msg.attachments {
            refs.push(self.send_attachment(s, &pubs, path, msg).await?);
        }
        let body = MessageBody {
            subject: msg.subject.clone(),
            text: msg.text.clone(),
            attachments: refs.clone(),
        };
        let plaintext = postcard::to_stdvec(&body)?;
        let fields = HeaderFields {
            suite: Suite::XWing,
            tlp: msg.tlp,
            incident_id: msg.incident_id.clone(),
            ..HeaderFields::message(now)
        };
        let sealed = pocnet_crypto::seal(&mut pocnet_crypto::os_rng(), &self.identity, &pubs, &fields, &plaintext)?;
        let bytes = sealed.bytes.len();
        let stored_at = match s.request(&Request::Send { envelope: sealed.bytes }).await? {
            Response::Accepted {
                envelope_hash,
                stored_at_ms,
                proof,
                ..
            } => {
                self.check_relay_signature(&envelope_hash, stored_at_ms, &proof)?;
                if envelope_hash != sealed.envelope_hash {
                    bail!("the relay acknowledged a different envelope hash; report this relay");
                }
                stored_at_ms
            }
            other => bail!("unexpected answer to Send: {other:?}"),
        };
        let names: Vec<String> = msg.attachments.iter().map(|p| p.display().to_string()).collect();
        db::insert_message(
            &self.db,
            &sealed.message_id,
            "out",
            recipients[0].1.key().as_bytes(),
            &handles.join(", "),
            &handles,
            &pubs.iter().map(|p| *p.key().as_bytes()).collect::<Vec<_>>(),
            &msg.subject,
            &msg.text,
            msg.tlp.label(),
            false,
            ContentType::Message as u8,
            now,
            now,
            &sealed.envelope_hash,
            &names,
        )?;
        self.db.execute(
            "UPDATE messages SET relay_stored_at = ?1 WHERE message_id = ?2",
            params![stored_at as i64, sealed.message_id.as_slice()],
        )?;
        Ok(Sent {
            id: pocnet_crypto::to_hex(&sealed.message_id),
            recipients: handles,
            stored_at,
            bytes,
        })
    }

    fn check_relay_signature(
        &self,
        envelope_hash: &[u8; 32],
        stored_at: u64,
        proof: &pocnet_wire::AcceptProof,
    ) -> anyhow::Result<()> {
        let key = self.profile.relay_key().context("no relay key pinned; enrol again")?;
        pocnet_wire::verify_acceptance(&key, envelope_hash, stored_at, proof)
            .context("the relay's signed acceptance does not verify; report this relay")?;
        Ok(())
    }

    async fn send_attachment(
        &self,
        s: &Session,
        pubs: &[PublicIdentity],
        path: &Path,
        msg: &Outgoing,
    ) -> anyhow::Result<AttachmentRef> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .context("attachment needs a file name")?
            .to_string();
        let size = std::fs::metadata(path)
            .with_context(|| format!("cannot read attachment {}", path.display()))?
            .len();
        std::fs::create_dir_all(self.profile.tmp())?;
        let tmp = self
            .profile
            .tmp()
            .join(format!("out-{}.env", pocnet_crypto::to_hex(&rand16())));
        let fields = HeaderFields {
            suite: Suite::XWing,
            content_type: ContentType::Attachment,
            tlp: msg.tlp,
            incident_id: msg.incident_id.clone(),
            ..HeaderFields::message(now_ms())
        };
        let (pubs2, path2, tmp2) = (pubs.to_vec(), path.to_path_buf(), tmp.clone());
        let secret = self.identity.to_secret_bytes();
        // Sealing 100 MiB is CPU work: off the async runtime, with its own copy of the key.
        let info = tokio::task::spawn_blocking(move || -> anyhow::Result<pocnet_crypto::envelope::SealedInfo> {
            let me = Identity::from_secret_bytes(&secret)?;
            let mut input = std::io::BufReader::new(std::fs::File::open(&path2)?);
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp2)?);
            let info = pocnet_crypto::seal_stream(
                &mut pocnet_crypto::os_rng(),
                &me,
                &pubs2,
                &fields,
                size,
                &mut input,
                &mut out,
            )?;
            use std::io::Write;
            out.flush()?;
            Ok(info)
        })
        .await??;
        let r = self.upload(s, info.message_id, &tmp).await;
        let _ = std::fs::remove_file(&tmp);
        r?;
        Ok(AttachmentRef {
            message_id: info.message_id,
            envelope_hash: info.envelope_hash,
            name,
            size,
        })
    }

    /// Uploads an attachment envelope; if the connection drops, reconnects and resumes
    /// from the bytes the relay kept.
    async fn upload(&self, s: &Session, message_id: [u8; 16], path: &Path) -> anyhow::Result<()> {
        let mut last = match s.put_blob(message_id, path).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        for _ in 0..3 {
            tracing::warn!("attachment upload interrupted ({last:#}); reconnecting to resume");
            match self.connect().await {
                Ok(fresh) => match fresh.put_blob(message_id, path).await {
                    Ok(()) => {
                        fresh.close().await;
                        return Ok(());
                    }
                    Err(e) => last = e,
                },
                Err(e) => last = e,
            }
        }
        Err(last.context("attachment upload failed after retries"))
    }

    /// Receives the backlog (and, with `follow`, everything after), storing each message
    /// once, sending delivered receipts and acknowledging each item after it is stored.
    /// With `stop_after`, returns once that many new messages were stored.
    pub async fn sync(
        &self,
        s: &Session,
        follow: bool,
        stop_after: Option<usize>,
        on_message: impl FnMut(&MessageRow, ContentType),
    ) -> anyhow::Result<SyncStats> {
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
        mut on_message: impl FnMut(&MessageRow, ContentType),
        mut on_caught_up: impl FnMut(),
    ) -> anyhow::Result<SyncStats> {
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
                        if let Some((row, ct)) = self.handle(s, d, &mut stats).await? {
                            on_message(&row, ct);
                        }
                        // Acknowledge only after the message is committed locally.
                        s.request(&Request::Ack { seqs: vec![seq] }).await?;
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

    async fn handle(
        &self,
        s: &Session,
        d: Delivery,
        stats: &mut SyncStats,
    ) -> anyhow::Result<Option<(MessageRow, ContentType)>> {
        match d {
            Delivery::Envelope { envelope, .. } => match self.receive(s, &envelope).await {
                Ok(Some(r)) => {
                    stats.new_messages += 1;
                    Ok(Some(r))
                }
                Ok(None) => {
                    stats.duplicates += 1;
                    Ok(None)
                }
                Err(e) if e.is::<Rejected>() => {
                    tracing::warn!("dropped an envelope that failed verification: {e:#}");
                    stats.rejected += 1;
                    Ok(None)
                }
                // Anything else (network, disk) is not the envelope's fault: no ack, retry later.
                Err(e) => Err(e),
            },
            Delivery::Receipt { from, receipt, .. } => {
                let Ok(key) = IdentityKey::from_bytes(&from) else {
                    return Ok(None);
                };
                match Receipt::verify(&receipt, &key) {
                    Ok(r)
                        if r.sender == *self.identity.public_key().as_bytes()
                            && db::sent_to(&self.db, &r.message_id, &r.envelope_hash, &from)? =>
                    {
                        self.db.execute(
                            "INSERT OR IGNORE INTO receipts(message_id, signer, kind, at, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![r.message_id.as_slice(), from.as_slice(), r.kind as u8, r.at_ms as i64, receipt],
                        )?;
                        stats.receipts += 1;
                    }
                    _ => stats.rejected += 1,
                }
                Ok(None)
            }
            Delivery::Expired {
                message_id, recipient, ..
            } => {
                self.db.execute(
                    "INSERT OR IGNORE INTO expired(message_id, recipient, at) VALUES (?1, ?2, ?3)",
                    params![message_id.as_slice(), recipient.as_slice(), now_ms() as i64],
                )?;
                Ok(None)
            }
        }
    }

    /// Verifies, opens and stores one envelope; `None` if it was already stored. Errors
    /// that condemn the envelope itself are [`Rejected`]; others leave it at the relay.
    async fn receive(&self, s: &Session, envelope: &[u8]) -> anyhow::Result<Option<(MessageRow, ContentType)>> {
        let reject = |e: &dyn std::fmt::Display| anyhow::Error::new(Rejected(e.to_string()));
        // Verify under the key the envelope claims, before parsing anything else of it.
        let sender = pocnet_crypto::claimed_sender(envelope).map_err(|e| reject(&e))?;
        let opened = pocnet_crypto::open(&self.identity, envelope, &sender).map_err(|e| reject(&e))?;
        let h = &opened.header;
        if db::has_message(&self.db, "in", sender.as_bytes(), &h.message_id)? {
            return Ok(None);
        }
        let handle = self.handle_of(s, &sender).await;
        let body: MessageBody = match h.content_type {
            ContentType::Message | ContentType::Alert => postcard::from_bytes(&opened.plaintext)
                .map_err(|e| reject(&format!("message body does not decode: {e}")))?,
            other => return Err(reject(&format!("unexpected content type {other:?} in the inbox"))),
        };
        let mut saved = Vec::new();
        for a in &body.attachments {
            saved.push(match self.fetch_attachment(s, &sender, h.message_id, a).await {
                Ok(path) => path.display().to_string(),
                // The message itself is good: keep it, and say which attachment is missing.
                Err(e) if e.is::<Rejected>() => format!("MISSING {} ({e:#})", a.name),
                Err(e) => return Err(e),
            });
        }
        let mut recipients = Vec::new();
        for r in &h.recipients {
            recipients.push(if &r.key == self.identity.public_key().as_bytes() {
                self.profile.config.handle.clone().unwrap_or_else(|| "me".into())
            } else {
                match IdentityKey::from_bytes(&r.key) {
                    Ok(k) => self.handle_of(s, &k).await,
                    Err(_) => pocnet_crypto::to_hex(&r.key[..8]),
                }
            });
        }
        let keys: Vec<[u8; 32]> = h.recipients.iter().map(|r| r.key).collect();
        let now = now_ms();
        let new = db::insert_message(
            &self.db,
            &h.message_id,
            "in",
            sender.as_bytes(),
            &handle,
            &recipients,
            &keys,
            &body.subject,
            &body.text,
            h.tlp.label(),
            h.exercise,
            h.content_type as u8,
            h.created_at_ms,
            now,
            &opened.envelope_hash,
            &saved,
        )?;
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
            tracing::warn!("delivered receipt not sent: {e:#}");
        }
        let (_, row) = db::find(&self.db, &pocnet_crypto::to_hex(&h.message_id))?;
        Ok(Some((row, h.content_type)))
    }

    /// How to show a key: its pinned handle, or a warning when the directory's handle for
    /// it is pinned to another key (never silently re-pinned).
    async fn handle_of(&self, s: &Session, key: &IdentityKey) -> String {
        if let Ok(Some((h, _, _))) = db::contact(&self.db, key.as_bytes()) {
            return match self.pinned_other(&h, key) {
                Ok(None) => h,
                _ => format!("UNVERIFIED {} (claims {h})", key.fingerprint().short()),
            };
        }
        if let Ok(Response::Directory { members }) = s
            .request(&Request::Lookup {
                query: key.fingerprint().to_hex(),
            })
            .await
        {
            if let Some(m) = members.into_iter().next() {
                if PublicIdentity::from_bytes(&m.public_identity)
                    .map(|p| p.key() == key)
                    .unwrap_or(false)
                {
                    if let Ok(Some(_)) = self.pinned_other(&m.handle, key) {
                        return format!("UNVERIFIED {} (claims {})", key.fingerprint().short(), m.handle);
                    }
                    let _ = db::remember(
                        &self.db,
                        key.as_bytes(),
                        &m.handle,
                        &m.name,
                        &m.public_identity,
                        now_ms(),
                    );
                    return m.handle;
                }
            }
        }
        format!("UNKNOWN {}", key.fingerprint().short())
    }

    /// Downloads, verifies and saves one attachment. Failures of the attachment itself
    /// (altered, wrong size, withheld by the relay) are [`Rejected`]; I/O errors are not.
    async fn fetch_attachment(
        &self,
        s: &Session,
        sender: &IdentityKey,
        msg_id: [u8; 16],
        a: &AttachmentRef,
    ) -> anyhow::Result<PathBuf> {
        let reject = |e: &dyn std::fmt::Display| anyhow::Error::new(Rejected(format!("attachment {}: {e}", a.name)));
        std::fs::create_dir_all(self.profile.tmp())?;
        let att = pocnet_crypto::to_hex(&a.message_id);
        let env_path = self.profile.tmp().join(format!("in-{att}.env"));
        // The envelope can be no larger than the body the message names plus the largest
        // header, stanza block and signature: a relay cannot fill the disk.
        let max = pocnet_crypto::stream::ciphertext_len(a.size)
            + 9
            + pocnet_crypto::envelope::MAX_HEADER_LEN as u64
            + 2
            + (pocnet_crypto::envelope::MAX_RECIPIENTS * (2 + Suite::XWing.stanza_len())) as u64
            + 64;
        match s.get_blob(a.message_id, &env_path, max).await {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<crate::net::RelayError>().is_some() || e.is::<crate::net::TooLong>() => {
                let _ = std::fs::remove_file(&env_path);
                return Err(reject(&e));
            }
            Err(e) => return Err(e),
        }
        let safe: String = Path::new(&a.name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("attachment")
            .replace(['/', '\\'], "_");
        let dir = self.profile.attachments().join(&pocnet_crypto::to_hex(&msg_id)[..16]);
        std::fs::create_dir_all(&dir)?;
        let part = dir.join(format!(".{att}.part"));
        let (secret, sender2, env2, part2) = (self.identity.to_secret_bytes(), *sender, env_path.clone(), part.clone());
        let opened = tokio::task::spawn_blocking(
            move || -> anyhow::Result<Result<pocnet_crypto::Opened, pocnet_crypto::Error>> {
                let me = Identity::from_secret_bytes(&secret)?;
                let mut input = std::io::BufReader::new(std::fs::File::open(&env2)?);
                let mut out = std::io::BufWriter::new(std::fs::File::create(&part2)?);
                let o = pocnet_crypto::open_stream(&me, &mut input, &sender2, &mut out);
                use std::io::Write;
                out.flush()?;
                out.get_ref().sync_all()?;
                Ok(o)
            },
        )
        .await??;
        let _ = std::fs::remove_file(&env_path);
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(reject(&format!("failed verification and was discarded: {e}")));
            }
        };
        if opened.envelope_hash != a.envelope_hash
            || opened.header.message_id != a.message_id
            || opened.header.body_len != a.size
        {
            let _ = std::fs::remove_file(&part);
            return Err(reject(&"is not the one the message names; discarded"));
        }
        // Never overwrite: a second attachment of the same name gets its id in front.
        let mut final_path = dir.join(&safe);
        if final_path.exists() {
            final_path = dir.join(format!("{}-{safe}", &att[..8]));
        }
        std::fs::rename(&part, &final_path)?;
        Ok(final_path)
    }

    /// Shows a message: marks it read and, for incoming ones, sends a read receipt.
    pub async fn read(&self, id: &str, s: Option<&Session>) -> anyhow::Result<MessageRow> {
        let (mid, row) = db::find(&self.db, id)?;
        if row.direction == "in" && row.read_at.is_none() {
            let now = now_ms();
            self.db.execute(
                "UPDATE messages SET read_at = ?1 WHERE message_id = ?2",
                params![now as i64, mid],
            )?;
            if let Some(s) = s {
                let (peer, hash): (Vec<u8>, Vec<u8>) = self.db.query_row(
                    "SELECT peer, envelope_hash FROM messages WHERE message_id = ?1",
                    [&mid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let sender = IdentityKey::from_bytes(&peer.as_slice().try_into()?)?;
                let receipt = Receipt::sign(
                    &self.identity,
                    ReceiptKind::Read,
                    mid.as_slice().try_into()?,
                    hash.as_slice().try_into()?,
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
        Ok(db::find(&self.db, id)?.1)
    }

    /// Delivery status of a sent message, from the relay's signed acceptance and the
    /// recipients' signed receipts.
    pub fn status(&self, id: &str) -> anyhow::Result<Status> {
        let (mid, row) = db::find(&self.db, id)?;
        if row.direction != "out" {
            bail!("{id} is a message you received; status is for messages you sent");
        }
        let stored_at: Option<i64> = self.db.query_row(
            "SELECT relay_stored_at FROM messages WHERE message_id = ?1",
            [&mid],
            |r| r.get(0),
        )?;
        let mut recipients = Vec::new();
        for handle in &row.recipients {
            let key = db::key_for_handle(&self.db, handle)?.unwrap_or_default();
            let best: Option<(u8, i64)> = self
                .db
                .query_row(
                    "SELECT kind, at FROM receipts WHERE message_id = ?1 AND signer = ?2 ORDER BY kind DESC LIMIT 1",
                    params![&mid, &key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ok();
            let expired: bool = self.db.query_row(
                "SELECT COUNT(*) FROM expired WHERE message_id = ?1 AND recipient = ?2",
                params![&mid, &key],
                |r| r.get::<_, i64>(0),
            )? > 0;
            let (state, at) = match best {
                Some((3, at)) => ("acknowledged", Some(at as u64)),
                Some((2, at)) => ("read", Some(at as u64)),
                Some((_, at)) => ("delivered", Some(at as u64)),
                None if expired => ("expired", None),
                None => ("stored", stored_at.map(|v| v as u64)),
            };
            recipients.push(RecipientStatus {
                handle: handle.clone(),
                state: state.into(),
                at,
            });
        }
        Ok(Status {
            id: row.id,
            subject: row.subject,
            stored_at: stored_at.map(|v| v as u64),
            recipients,
        })
    }
}

/// An envelope or attachment that failed verification: acknowledged and dropped, never shown.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(String);

fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    pocnet_crypto::rand_core::Rng::fill_bytes(&mut pocnet_crypto::os_rng(), &mut b);
    b
}
