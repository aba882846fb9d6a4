//! Request handling, as a function of (peer, request, now) over the store interface.
//!
//! The service decides: who may ask what, which limits apply, what is stored, what is
//! answered. It never touches a socket or the wall clock: the QUIC edge
//! (`server.rs`) moves frames and file bytes in and out and calls in here, and time
//! comes from the [`Clock`] it was built with, so every refusal rule and state change is
//! tested without sockets (`relay/tests/service.rs`) and timers run in simulated time.

// A refusal is the answer to send, built once per refused request: returning it by value
// is the point, not an accident of a large error type.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};

use pocnet_core::alert::plan::{PlanKind, SignedPlan, MAX_PLAN_LEN};
use pocnet_core::signed::FormatError;
use pocnet_crypto::{ContentType, Header, Identity, IdentityKey, Receipt, ReceiptKind};
use pocnet_wire::{AcceptProof, Cancel, Delivery, ErrorCode, Key, Member, MessageId, Request, Response};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::config::Config;
use crate::directory::RelayLog;
use crate::ratelimit::RateLimiter;
use crate::store::{
    Accepted, BlobLimits, Conflict, Hold, Item, NewEnvelope, NewEscalation, PlannedStep, Quota, Store, StoreError,
    Subscription, UploadStart,
};

/// How far ahead an envelope may be held.
pub const MAX_HOLD_MS: u64 = 400 * 86_400_000;
/// Most keys a hold's cancel rule may list.
pub const MAX_CANCEL_SIGNERS: usize = 16;
/// Most steps (releases) one escalation may have, so its `EscalationStatus` answer fits
/// one frame (1,000 POCs with 9 repeats is 10,000).
pub const MAX_ESCALATION_STEPS: usize = 16_384;

/// Request kinds, each with its own rate limit per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `Hello`.
    Hello,
    /// `Enrol`.
    Enrol,
    /// `Lookup`.
    Lookup,
    /// `Send`.
    Send,
    /// `Watch`.
    Watch,
    /// `Ack`.
    Ack,
    /// `SendReceipt`.
    Receipt,
    /// `PutBlob`.
    PutBlob,
    /// `GetBlob`.
    GetBlob,
    /// `Pipeline`.
    Pipeline,
    /// `LogCheckpoint`, `LogLeaves`, `LogProof`.
    LogRead,
    /// `LogAppend`.
    LogAppend,
    /// `LogCosign`.
    LogCosign,
    /// `Register`.
    Register,
    /// `Submit`.
    Submit,
    /// `Registration`, `Submissions`, `Dismiss` (the Secretariat's).
    Secretariat,
    /// `Hold`.
    Hold,
    /// `Escalate`.
    Escalate,
    /// `EscalationStatus`.
    EscalationStatus,
}

impl Kind {
    /// The kind of a request.
    pub fn of(r: &Request) -> Kind {
        match r {
            Request::Hello { .. } => Kind::Hello,
            Request::Enrol { .. } => Kind::Enrol,
            Request::Lookup { .. } => Kind::Lookup,
            Request::Send { .. } => Kind::Send,
            Request::Watch { .. } => Kind::Watch,
            Request::Ack { .. } => Kind::Ack,
            Request::SendReceipt { .. } => Kind::Receipt,
            Request::PutBlob { .. } => Kind::PutBlob,
            Request::GetBlob { .. } => Kind::GetBlob,
            Request::Pipeline => Kind::Pipeline,
            Request::LogCheckpoint | Request::LogLeaves { .. } | Request::LogProof { .. } => Kind::LogRead,
            Request::LogAppend { .. } => Kind::LogAppend,
            Request::LogCosign { .. } => Kind::LogCosign,
            Request::Register { .. } => Kind::Register,
            Request::Submit { .. } => Kind::Submit,
            Request::Registration { .. } | Request::Submissions { .. } | Request::Dismiss { .. } => Kind::Secretariat,
            Request::Hold { .. } => Kind::Hold,
            Request::Escalate { .. } => Kind::Escalate,
            Request::EscalationStatus { .. } => Kind::EscalationStatus,
        }
    }
    /// Whether this request opens a stream of its own (and so cannot travel on a session
    /// stream or be answered by [`Service::handle`]).
    pub fn has_own_stream(self) -> bool {
        matches!(self, Kind::Watch | Kind::PutBlob | Kind::GetBlob | Kind::Pipeline)
    }
    /// What a key that is not enrolled may ask (on a session stream too, where each
    /// request is admitted again): say hello, offer its public identity for the
    /// Secretariat, and — the Secretariat's key only, checked when handled — begin the log.
    pub fn open_to_unenrolled(self) -> bool {
        matches!(
            self,
            Kind::Hello | Kind::Enrol | Kind::Pipeline | Kind::Register | Kind::LogAppend
        )
    }
}

/// Verifies an envelope under the connection's key (`verify_strict`, and a stanza for every
/// listed recipient): `NotSender` if another key signed it, `BadEnvelope` otherwise.
fn verify_envelope(peer: &IdentityKey, envelope: &[u8]) -> Result<(Header, [u8; 32]), Response> {
    match pocnet_crypto::verify_from(envelope, peer) {
        Ok(v) => Ok(v),
        Err(pocnet_crypto::Error::WrongSender) => Err(err(
            ErrorCode::NotSender,
            "the envelope's signed sender is not this connection's key",
        )),
        Err(e) => Err(err(ErrorCode::BadEnvelope, format!("envelope rejected: {e}"))),
    }
}

/// Builds an error answer.
pub fn err(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

/// The answer for a store failure: the code says what the client can do about it.
pub fn store_err(e: StoreError) -> Response {
    match e {
        StoreError::Quota(Quota::Queue(_)) | StoreError::Quota(Quota::QueueShare(_)) => {
            err(ErrorCode::QuotaExceeded, format!("{e}; retry later"))
        }
        StoreError::Quota(Quota::Uploads { .. }) | StoreError::Quota(Quota::Watchers(_)) => {
            err(ErrorCode::LimitReached, e.to_string())
        }
        StoreError::Quota(Quota::Storage) | StoreError::Full => {
            tracing::error!("{e}");
            err(
                ErrorCode::StorageFull,
                "the relay's storage is full; nothing was stored. Retry later; the operator has been told",
            )
        }
        StoreError::Quota(Quota::Waiting(_)) => err(ErrorCode::LimitReached, e.to_string()),
        StoreError::Conflict(Conflict::LogMoved(_)) => err(ErrorCode::LogMoved, e.to_string()),
        StoreError::Conflict(Conflict::UnknownAlert) => err(
            ErrorCode::NotFound,
            format!("{e} at this relay (it expired, or went through another relay); send the follow-up as a message"),
        ),
        StoreError::Conflict(Conflict::NotAlerted(_)) => err(
            ErrorCode::Malformed,
            format!("{e}: a follow-up goes only to the POCs of its alert"),
        ),
        StoreError::Conflict(_) => err(ErrorCode::Forbidden, e.to_string()),
        StoreError::Unavailable(_) => {
            tracing::error!("{e}");
            err(
                ErrorCode::Unavailable,
                "the relay's storage failed; nothing was stored, retry later",
            )
        }
    }
}

/// Signs acceptances in groups: one Ed25519 signature over a Merkle root for all the
/// acceptances that are ready together (those of one store commit, typically).
#[derive(Clone)]
pub struct GroupSigner {
    tx: mpsc::UnboundedSender<([u8; 32], u64, oneshot::Sender<AcceptProof>)>,
}

impl GroupSigner {
    /// Starts the signer task.
    pub fn start(identity: Arc<Identity>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<([u8; 32], u64, oneshot::Sender<AcceptProof>)>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(first) = rx.recv().await {
                batch.push(first);
                // Whatever else is ready joins this group, up to the tree's limit.
                while batch.len() < 4096 {
                    match rx.try_recv() {
                        Ok(x) => batch.push(x),
                        Err(_) => break,
                    }
                }
                let items: Vec<([u8; 32], u64)> = batch.iter().map(|(h, t, _)| (*h, *t)).collect();
                let proofs = pocnet_wire::accept::sign_group(&identity, &items);
                for ((_, _, reply), proof) in batch.drain(..).zip(proofs) {
                    let _ = reply.send(proof);
                }
            }
        });
        GroupSigner { tx }
    }
    /// The proof for one stored envelope.
    pub async fn sign(&self, envelope_hash: [u8; 32], stored_at_ms: u64) -> Option<AcceptProof> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((envelope_hash, stored_at_ms, reply)).ok()?;
        rx.await.ok()
    }
    /// Proofs for several envelopes, asked for together so they share a group.
    pub async fn sign_all(&self, items: &[([u8; 32], u64)]) -> Option<Vec<AcceptProof>> {
        let mut waiting = Vec::with_capacity(items.len());
        for (h, t) in items {
            let (reply, rx) = oneshot::channel();
            self.tx.send((*h, *t, reply)).ok()?;
            waiting.push(rx);
        }
        let mut out = Vec::with_capacity(items.len());
        for rx in waiting {
            out.push(rx.await.ok()?);
        }
        Some(out)
    }
}

/// Most leaves in one `Leaves` answer.
pub const LOG_PAGE_LEAVES: u32 = 512;
/// Leaf bytes after which a `Leaves` answer ends (well inside one frame).
pub const LOG_PAGE_BYTES: usize = 768 * 1024;

/// The per-member and relay-wide limits, from the configuration.
struct Limiters {
    per_kind: RateLimiter<(Key, Kind)>,
    unenrolled: RateLimiter<()>,
}

/// What an upload may do next.
#[derive(Debug, PartialEq, Eq)]
pub enum UploadPlan {
    /// Append from `offset` (what the relay holds) up to `total_len`.
    Receive {
        /// Bytes held.
        offset: u64,
    },
    /// Answer at once (complete already, or the client must resume from elsewhere).
    Answer(Response),
}

/// The relay's decisions.
pub struct Service<S: Store, C: Clock> {
    store: S,
    clock: C,
    cfg: Config,
    signer: GroupSigner,
    limits: Mutex<Limiters>,
    log: RelayLog,
}

impl<S: Store, C: Clock> Service<S, C> {
    /// A service over `store`, signing acceptances as `identity`.
    pub fn new(store: S, clock: C, cfg: Config, identity: Arc<Identity>) -> Self {
        let limits = Limiters {
            per_kind: RateLimiter::new(cfg.rate_per_sec, cfg.rate_burst),
            unenrolled: RateLimiter::new(cfg.unenrolled_rate_per_sec, cfg.unenrolled_rate_per_sec * 5.0),
        };
        Service {
            store,
            clock,
            signer: GroupSigner::start(identity),
            limits: Mutex::new(limits),
            log: RelayLog::new(&cfg.directory),
            cfg,
        }
    }

    /// Reads and re-verifies the stored directory log. Call once before serving: a log
    /// that no longer verifies (edited on disk) stops the relay rather than being served.
    pub async fn load_directory(&self) -> anyhow::Result<()> {
        self.log.load(&self.store).await
    }

    /// The verified directory log.
    pub fn log(&self) -> &RelayLog {
        &self.log
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Now, by the service's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn ttl_ms(&self) -> u64 {
        self.cfg.ttl_secs.saturating_mul(1000)
    }

    fn rate(&self, kind: Kind) -> (f64, f64) {
        match kind {
            Kind::Send | Kind::Hold | Kind::Escalate | Kind::Receipt | Kind::PutBlob => {
                (self.cfg.rate_per_sec, self.cfg.rate_burst)
            }
            Kind::Ack => (self.cfg.request_rate_per_sec * 4.0, self.cfg.request_burst * 4.0),
            _ => (self.cfg.request_rate_per_sec, self.cfg.request_burst),
        }
    }

    /// Checks who may make this kind of request, and takes a token from its rate limit.
    /// Called before the request's body is looked at (and, at the edge, before a large
    /// frame is read). Returns the member record of an enrolled key.
    pub async fn admit(&self, peer: &IdentityKey, kind: Kind) -> Result<Option<Member>, Response> {
        let member = self.store.member(*peer.as_bytes()).await.map_err(store_err)?;
        let now = self.clock.now_ms();
        match &member {
            Some(m) if m.revoked => {
                return Err(err(
                    ErrorCode::Revoked,
                    "this key has been revoked; contact the Secretariat",
                ));
            }
            Some(_) => {
                let (rate, burst) = self.rate(kind);
                let ok =
                    self.limits
                        .lock()
                        .expect("limits")
                        .per_kind
                        .allow_with((*peer.as_bytes(), kind), now, rate, burst);
                if !ok {
                    return Err(err(
                        ErrorCode::RateLimited,
                        format!("over the relay's limit of {rate} {kind:?} requests/s for one key; retry in a moment"),
                    ));
                }
            }
            None => {
                // Keys that are not enrolled are free to make: one budget for all of them,
                // charged for refusals too, so a stranger's requests cost it as much as ours.
                if !self.limits.lock().expect("limits").unenrolled.allow((), now) {
                    return Err(err(
                        ErrorCode::RateLimited,
                        "the relay is busy with enrolment requests; retry in a moment",
                    ));
                }
                if !kind.open_to_unenrolled() {
                    return Err(err(
                        ErrorCode::NotEnrolled,
                        "this key is not in the directory yet: your national authority nominates you \
                         and the Secretariat approves after a phone call; then run `pocnet enrol` again",
                    ));
                }
            }
        }
        Ok(member)
    }

    /// Answers one request of the request/response kind (`Hello`, `Enrol`, `Lookup`, `Send`,
    /// `Ack`, `SendReceipt`). Streaming requests go through their own calls.
    pub async fn handle(&self, peer: &IdentityKey, req: Request) -> Response {
        let kind = Kind::of(&req);
        if kind.has_own_stream() {
            return err(ErrorCode::Malformed, "this request opens its own stream");
        }
        match self.admit(peer, kind).await {
            Ok(member) => self.handle_admitted(peer, member, req).await,
            Err(r) => r,
        }
    }

    /// As [`Service::handle`], for a request [`Service::admit`] has already let through;
    /// `member` is what it returned.
    pub async fn handle_admitted(&self, peer: &IdentityKey, member: Option<Member>, req: Request) -> Response {
        let now = self.clock.now_ms();
        match req {
            Request::Hello { protocol } => {
                if protocol != pocnet_wire::PROTOCOL_VERSION {
                    return err(
                        ErrorCode::UnsupportedVersion,
                        format!(
                            "relay speaks protocol {}, client {protocol}: update the client",
                            pocnet_wire::PROTOCOL_VERSION
                        ),
                    );
                }
                Response::Welcome {
                    relay_time_ms: now,
                    member,
                }
            }
            Request::Enrol { .. } => err(
                ErrorCode::Forbidden,
                "invite codes are gone (protocol 3): the Secretariat lists your key in the directory \
                 after a voice check; run `pocnet enrol --directory ...`",
            ),
            Request::Lookup { query } => {
                if query.len() > 256 {
                    return err(ErrorCode::TooLarge, "lookup query longer than 256 bytes");
                }
                match self.store.lookup(query).await {
                    Ok(members) => {
                        let r = Response::Directory { members };
                        // An answer must fit one frame; a directory that outgrows it needs a
                        // narrower query (the signed directory will page).
                        if pocnet_wire::encode(&r).len() > pocnet_wire::MAX_FRAME {
                            return err(
                                ErrorCode::TooLarge,
                                "too many members match; ask for one state at a time",
                            );
                        }
                        r
                    }
                    Err(e) => store_err(e),
                }
            }
            Request::Send { envelope } => self.send(peer, envelope, None, now).await,
            Request::Hold {
                envelope,
                recipient,
                not_before_ms,
                cancel,
            } => {
                let Cancel { message_id, signers } = cancel;
                if signers.is_empty() {
                    return err(ErrorCode::Malformed, "a hold needs at least one key that may cancel it");
                }
                if signers.len() > MAX_CANCEL_SIGNERS {
                    return err(
                        ErrorCode::TooLarge,
                        format!("a hold's cancel rule lists at most {MAX_CANCEL_SIGNERS} keys"),
                    );
                }
                if not_before_ms > now.saturating_add(MAX_HOLD_MS) {
                    return err(ErrorCode::Malformed, "an envelope may be held at most 400 days ahead");
                }
                let hold = Hold {
                    not_before_ms: not_before_ms.max(now),
                    cancel_message_id: message_id,
                    cancel_signers: signers,
                };
                self.send(peer, envelope, Some((recipient, hold)), now).await
            }
            Request::Ack { seqs } => {
                if seqs.len() > 4096 {
                    return err(ErrorCode::TooLarge, "at most 4096 items per Ack");
                }
                match self.store.ack(*peer.as_bytes(), seqs).await {
                    Ok(_) => Response::Done,
                    Err(e) => store_err(e),
                }
            }
            Request::SendReceipt { to, receipt } => self.receipt(peer, to, receipt, now).await,
            Request::Escalate { envelope, plan } => self.escalate(peer, envelope, plan, now).await,
            Request::EscalationStatus { alert } => match self.store.escalation(*peer.as_bytes(), alert).await {
                Ok(Some(r)) => Response::Escalation {
                    accepted_ms: r.accepted_ms,
                    plan: r.plan,
                    steps: r.steps,
                },
                Ok(None) => err(
                    ErrorCode::NotFound,
                    "no escalation of yours with this alert id is at this relay (only its sender may ask; \
                     the record expires with the alert)",
                ),
                Err(e) => store_err(e),
            },
            Request::Watch { .. } | Request::PutBlob { .. } | Request::GetBlob { .. } | Request::Pipeline => {
                err(ErrorCode::Malformed, "this request opens its own stream")
            }
            Request::LogCheckpoint => match self.store.log_checkpoint().await {
                Ok(Some(cp)) => Response::Checkpoint {
                    note: crate::directory::with_cosignatures(&cp.note, &cp.cosignatures),
                },
                Ok(None) => err(
                    ErrorCode::NotFound,
                    "the Secretariat has not begun the directory log yet",
                ),
                Err(e) => store_err(e),
            },
            Request::LogLeaves { from, limit } => {
                match self
                    .store
                    .log_leaves(from, limit.min(LOG_PAGE_LEAVES), LOG_PAGE_BYTES)
                    .await
                {
                    Ok(leaves) => Response::Leaves { from, leaves },
                    Err(e) => store_err(e),
                }
            }
            Request::LogProof { old_size, new_size } => match self.log.consistency(old_size, new_size) {
                Ok(hashes) => Response::Proof { hashes },
                Err(m) => err(ErrorCode::NotFound, m),
            },
            Request::LogAppend { leaves, checkpoint } => {
                if member.is_none() && !self.log.is_anchor(peer) {
                    return err(ErrorCode::NotEnrolled, "only the Secretariat's key may begin the log");
                }
                self.log.append(&self.store, peer, leaves, checkpoint, now).await
            }
            Request::LogCosign { size, cosignature } => {
                let (witness, cosignature) = match self.log.check_cosignature(size, &cosignature) {
                    Ok(w) => w,
                    Err(r) => return r,
                };
                let line = cosignature.trim_end_matches('\n').to_string();
                match self.store.log_cosign(size, witness, line).await {
                    Ok(true) => Response::Done,
                    Ok(false) => err(
                        ErrorCode::LogMoved,
                        "the log has a newer checkpoint; verify and cosign that one",
                    ),
                    Err(e) => store_err(e),
                }
            }
            Request::Register { public_identity } => {
                if member.is_some() {
                    return err(ErrorCode::Forbidden, "this key is listed already");
                }
                match pocnet_crypto::PublicIdentity::from_bytes(&public_identity) {
                    Ok(pi) if pi.key() == peer => {}
                    Ok(_) => return err(ErrorCode::Forbidden, "register your own key only"),
                    Err(e) => return err(ErrorCode::Malformed, format!("public identity rejected: {e}")),
                }
                match self
                    .store
                    .register(
                        *peer.as_bytes(),
                        peer.fingerprint().to_hex(),
                        public_identity,
                        now,
                        self.cfg.max_registrations,
                    )
                    .await
                {
                    Ok(()) => Response::Done,
                    Err(e) => store_err(e),
                }
            }
            Request::Submit { statement } => {
                if let Err(m) = self.log.check_submission(peer, &statement) {
                    return err(ErrorCode::BadDirectory, m);
                }
                match self
                    .store
                    .submit(*peer.as_bytes(), statement, now, self.cfg.max_submissions_per_author)
                    .await
                {
                    Ok(_) => Response::Done,
                    Err(e) => store_err(e),
                }
            }
            Request::Registration { .. } | Request::Submissions { .. } | Request::Dismiss { .. }
                if !self.log.is_secretariat(peer) =>
            {
                err(ErrorCode::Forbidden, "only the Secretariat reads what waits for it")
            }
            Request::Registration { fingerprint } => match self.store.registration(fingerprint).await {
                Ok(Some(public_identity)) => Response::Registered { public_identity },
                Ok(None) => err(
                    ErrorCode::NotFound,
                    "no key with this fingerprint has registered: the POC runs `pocnet enrol` first",
                ),
                Err(e) => store_err(e),
            },
            Request::Submissions { after } => match self.store.submissions(after, 64).await {
                Ok(items) => Response::Submitted { items },
                Err(e) => store_err(e),
            },
            Request::Dismiss { ids } => {
                if ids.len() > 1024 {
                    return err(ErrorCode::TooLarge, "at most 1024 ids per Dismiss");
                }
                match self.store.dismiss(ids).await {
                    Ok(()) => Response::Done,
                    Err(e) => store_err(e),
                }
            }
        }
    }

    async fn active(&self, key: Key) -> Result<Member, Response> {
        match self.store.member(key).await {
            Ok(Some(m)) if !m.revoked => Ok(m),
            Ok(Some(m)) => Err(err(
                ErrorCode::UnknownRecipient,
                format!("recipient {} has been revoked", m.handle),
            )),
            Ok(None) => Err(err(
                ErrorCode::UnknownRecipient,
                format!(
                    "recipient {} is not enrolled at this relay",
                    pocnet_crypto::to_hex(&key[..8])
                ),
            )),
            Err(e) => Err(store_err(e)),
        }
    }

    /// `Send`, or with `held` a `Hold` for one recipient.
    async fn send(&self, peer: &IdentityKey, envelope: Vec<u8>, held: Option<(Key, Hold)>, now: u64) -> Response {
        if envelope.len() as u64 > self.cfg.max_envelope_bytes {
            return err(
                ErrorCode::TooLarge,
                format!(
                    "envelope is {} bytes, the relay's limit is {}; send large files with --attach",
                    envelope.len(),
                    self.cfg.max_envelope_bytes
                ),
            );
        }
        let (header, envelope_hash) = match verify_envelope(peer, &envelope) {
            Ok(v) => v,
            Err(r) => return r,
        };
        let mut recipients = Vec::with_capacity(header.recipients.len());
        match &held {
            // Held for one recipient only: it must be listed, and only it must be active.
            Some((recipient, _)) => {
                if !header.recipients.iter().any(|r| r.key == *recipient) {
                    return err(
                        ErrorCode::Malformed,
                        "the recipient to hold the envelope for is not one of its recipients",
                    );
                }
                if let Err(resp) = self.active(*recipient).await {
                    return resp;
                }
                recipients.push(*recipient);
            }
            None => {
                for r in &header.recipients {
                    if let Err(resp) = self.active(r.key).await {
                        return resp;
                    }
                    recipients.push(r.key);
                }
            }
        }
        let message_id = header.message_id;
        // A held envelope lives its TTL after release.
        let live_from = held.as_ref().map_or(now, |(_, h)| h.not_before_ms);
        let new = NewEnvelope {
            sender: *peer.as_bytes(),
            message_id,
            envelope_hash,
            bytes: envelope.into(),
            recipients,
            now_ms: now,
            expires_at_ms: live_from.saturating_add(self.ttl_ms()),
        };
        let stored = match held {
            Some((_, hold)) => self.store.hold(new, hold).await,
            None => self.store.accept(new).await,
        };
        self.accepted(message_id, envelope_hash, stored).await
    }

    /// The answer to a store call that stored an envelope: `Accepted` with the relay's
    /// signed acceptance.
    async fn accepted(
        &self,
        message_id: MessageId,
        envelope_hash: [u8; 32],
        stored: Result<Accepted, StoreError>,
    ) -> Response {
        match stored {
            Ok(a) => match self.signer.sign(envelope_hash, a.stored_at_ms).await {
                Some(proof) => Response::Accepted {
                    message_id,
                    envelope_hash,
                    stored_at_ms: a.stored_at_ms,
                    duplicate: a.duplicate,
                    proof,
                },
                None => err(
                    ErrorCode::ShuttingDown,
                    "stored, but the relay is stopping before it could sign; send again to get the acceptance",
                ),
            },
            Err(e) => store_err(e),
        }
    }

    /// `Escalate`: an alert envelope with its signed plan. Checked like `Send` (under the
    /// alert size limit), then the plan: signed by the connection's key, for exactly this
    /// envelope; an `Escalate` plan names every recipient of the envelope and only them,
    /// each an active POC the directory lists for the plan's state; a `FollowUp` plan
    /// follows an escalation of this sender, to its POCs only.
    async fn escalate(&self, peer: &IdentityKey, envelope: Vec<u8>, plan: Vec<u8>, now: u64) -> Response {
        if envelope.len() as u64 > self.cfg.max_alert_bytes {
            return err(
                ErrorCode::TooLarge,
                format!(
                    "alert envelope is {} bytes, the relay's limit for alerts is {}; alert fewer states at once",
                    envelope.len(),
                    self.cfg.max_alert_bytes
                ),
            );
        }
        if plan.len() > MAX_PLAN_LEN {
            return err(
                ErrorCode::TooLarge,
                format!("escalation plan is {} bytes, the limit is {MAX_PLAN_LEN}", plan.len()),
            );
        }
        let (header, envelope_hash) = match verify_envelope(peer, &envelope) {
            Ok(v) => v,
            Err(r) => return r,
        };
        if header.content_type != ContentType::Alert {
            return err(
                ErrorCode::BadEnvelope,
                format!(
                    "Escalate carries an alert envelope (content type Alert), this one is {:?}: send it with Send",
                    header.content_type
                ),
            );
        }
        let signed = match SignedPlan::parse(&plan, Some(peer)) {
            Ok(p) => p,
            Err(e @ FormatError::Signer { .. }) => {
                return err(
                    ErrorCode::NotSender,
                    format!("{e}: an alert's plan is signed by its sender, this connection's key"),
                )
            }
            Err(e) => return err(ErrorCode::BadEnvelope, format!("escalation plan rejected: {e}")),
        };
        let p = signed.plan();
        if p.alert != header.message_id || p.envelope_hash != envelope_hash {
            return err(
                ErrorCode::BadEnvelope,
                "the escalation plan is for another envelope (its alert id or envelope hash differs): \
                 sign the plan over this envelope",
            );
        }
        let recipients: Vec<Key> = header.recipients.iter().map(|r| r.key).collect();
        let message_id = header.message_id;
        let new = |expires_at_ms: u64| NewEnvelope {
            sender: *peer.as_bytes(),
            message_id,
            envelope_hash,
            bytes: envelope.into(),
            recipients,
            now_ms: now,
            expires_at_ms,
        };
        match &p.kind {
            PlanKind::Escalate { .. } => {
                let esc = match self.plan_steps(&signed, &header, now).await {
                    Ok(esc) => esc,
                    Err(r) => return r,
                };
                // The envelope (and the escalation's record) lives its TTL after the last step.
                let last = esc.steps.iter().map(|s| s.due_ms).max().unwrap_or(now);
                let env = new(last.saturating_add(self.ttl_ms()));
                let stored = self.store.escalate(env, esc).await;
                self.accepted(message_id, envelope_hash, stored).await
            }
            PlanKind::FollowUp { of, stop } => {
                let record = match self.store.escalation(*peer.as_bytes(), *of).await {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        return err(
                            ErrorCode::NotFound,
                            format!(
                                "no escalating alert {} of yours is at this relay (it expired, or went through \
                                 another relay); send the follow-up as a message",
                                pocnet_crypto::to_hex(of)
                            ),
                        )
                    }
                    Err(e) => return store_err(e),
                };
                for r in &header.recipients {
                    let m = match self.active(r.key).await {
                        Ok(m) => m,
                        Err(resp) => return resp,
                    };
                    if !record.steps.iter().any(|s| s.recipient == r.key) {
                        return err(
                            ErrorCode::Malformed,
                            format!(
                                "the follow-up is sealed to {}, whom alert {} never named: a follow-up goes \
                                 only to the POCs of its alert",
                                m.handle,
                                pocnet_crypto::to_hex(of)
                            ),
                        );
                    }
                }
                let last = record.steps.iter().map(|s| s.due_ms).max().unwrap_or(now).max(now);
                let env = new(last.saturating_add(self.ttl_ms()));
                let stored = self.store.follow_up(env, *of, *stop).await;
                self.accepted(message_id, envelope_hash, stored).await
            }
        }
    }

    /// The steps of an `Escalate` plan accepted now, after checking its keys against the
    /// envelope and the directory.
    async fn plan_steps(&self, signed: &SignedPlan, header: &Header, now: u64) -> Result<NewEscalation, Response> {
        let p = signed.plan();
        for (si, state) in p.states().iter().enumerate() {
            for key in p.state_keys(si as u16) {
                if !header.recipients.iter().any(|r| r.key == key) {
                    return Err(err(
                        ErrorCode::Malformed,
                        format!(
                            "the plan names key {} for {}, but the envelope is not sealed to it: seal the alert \
                             to every key of its plan",
                            pocnet_crypto::to_hex(&key[..8]),
                            state.state
                        ),
                    ));
                }
                let m = self.active(key).await?;
                match self.log.poc_state(&key) {
                    Some(listed) if listed == state.state => {}
                    Some(listed) => {
                        return Err(err(
                            ErrorCode::Forbidden,
                            format!(
                                "{} is listed for {listed} in the directory, not for {} as the plan says: \
                                 rebuild the plan from the current directory",
                                m.handle, state.state
                            ),
                        ))
                    }
                    None => {
                        return Err(err(
                            ErrorCode::Forbidden,
                            format!(
                                "{} is not a POC in the directory: an alert plan names POCs only",
                                m.handle
                            ),
                        ))
                    }
                }
            }
        }
        for r in &header.recipients {
            if p.state_of(&r.key).is_none() {
                return Err(err(
                    ErrorCode::Malformed,
                    format!(
                        "the envelope is sealed to key {}, which the plan gives no state or rank: every \
                         recipient of an alert is in its plan",
                        pocnet_crypto::to_hex(&r.key[..8])
                    ),
                ));
            }
        }
        let schedule = p.schedule(now);
        if schedule.len() > MAX_ESCALATION_STEPS {
            return Err(err(
                ErrorCode::TooLarge,
                format!(
                    "the plan makes {} releases, the relay's limit is {MAX_ESCALATION_STEPS}: fewer repeats or \
                     fewer POCs per alert",
                    schedule.len()
                ),
            ));
        }
        let signers: Vec<Vec<Key>> = (0..p.states().len()).map(|si| p.state_keys(si as u16)).collect();
        let steps = schedule
            .into_iter()
            .map(|s| PlannedStep {
                recipient: s.key,
                rank: s.rank,
                repeat: s.repeat,
                due_ms: s.due_ms,
                cancel_signers: signers[s.state as usize].clone(),
            })
            .collect();
        Ok(NewEscalation {
            plan: signed.as_bytes().to_vec(),
            steps,
        })
    }

    async fn receipt(&self, peer: &IdentityKey, to: Key, receipt: Vec<u8>, now: u64) -> Response {
        if receipt.len() > 1024 {
            return err(ErrorCode::TooLarge, "receipt larger than 1024 bytes");
        }
        let r = match Receipt::verify(&receipt, peer) {
            Err(e) => return err(ErrorCode::BadEnvelope, format!("receipt rejected: {e}")),
            Ok(r) if r.sender != to => return err(ErrorCode::Malformed, "receipt is addressed to another sender"),
            Ok(r) => r,
        };
        if self.active(to).await.is_err() {
            return err(
                ErrorCode::UnknownRecipient,
                "the receipt's addressee is not an active member",
            );
        }
        // Only about an envelope `to` really sent (its hash is known only to those who got
        // it): receipts cannot be minted to fill someone's queue.
        match self.store.has_envelope(to, r.message_id, r.envelope_hash).await {
            Ok(true) => {}
            Ok(false) => {
                return err(
                    ErrorCode::NotFound,
                    "the receipt is about no message its addressee sent through this relay",
                )
            }
            Err(e) => return store_err(e),
        }
        // An explicit acknowledgement (not the automatic "delivered" or "read") cancels, in the
        // same commit, the held envelopes of `to` waiting on this message whose cancel rule
        // lists the signer, whoever their recipient (an alert state's remaining steps).
        let cancel = (r.kind == ReceiptKind::Acknowledged).then_some(r.message_id);
        match self
            .store
            .queue_receipt(
                to,
                *peer.as_bytes(),
                receipt,
                now,
                now.saturating_add(self.ttl_ms()),
                cancel,
            )
            .await
        {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!("a receipt cancelled {n} held envelopes");
                }
                Response::Done
            }
            Err(e) => store_err(e),
        }
    }

    /// Starts a watch: a live subscription (if `follow`), taken before the backlog is read
    /// so nothing committed in between is missed. Bounded per key.
    pub fn subscribe(&self, peer: &IdentityKey) -> Result<Subscription, Response> {
        self.store
            .subscribe(*peer.as_bytes(), self.cfg.max_watchers_per_key)
            .map_err(store_err)
    }

    /// One page of a recipient's backlog after `after_seq`.
    pub async fn backlog(&self, peer: &IdentityKey, after_seq: u64) -> Result<Vec<Item>, Response> {
        self.store
            .pending(*peer.as_bytes(), after_seq, 256, self.clock.now_ms())
            .await
            .map_err(store_err)
    }

    /// Whether `peer` may still receive (a key revoked while watching stops at once).
    pub async fn still_member(&self, peer: &IdentityKey) -> Result<(), Response> {
        match self.store.member(*peer.as_bytes()).await {
            Ok(Some(m)) if !m.revoked => Ok(()),
            Ok(Some(_)) => Err(err(
                ErrorCode::Revoked,
                "this key has been revoked; contact the Secretariat",
            )),
            Ok(None) => Err(err(ErrorCode::NotEnrolled, "this key is not enrolled")),
            Err(e) => Err(store_err(e)),
        }
    }

    /// The wire form of queue items for `me`: envelopes trimmed to `me`'s stanza, as
    /// `Delivery::Stored` with the relay's acceptance signed now (one group signature for
    /// the lot). `None` if the relay is stopping before it could sign.
    pub async fn deliveries(&self, items: &[Arc<Item>], me: &Key) -> Option<Vec<Delivery>> {
        let wanted: Vec<([u8; 32], u64)> = items
            .iter()
            .filter_map(|i| match &**i {
                Item::Envelope {
                    stored_at_ms,
                    envelope_hash,
                    ..
                } => Some((*envelope_hash, *stored_at_ms)),
                _ => None,
            })
            .collect();
        let mut proofs = self.signer.sign_all(&wanted).await?.into_iter();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let proof = match &**item {
                Item::Envelope { .. } => Some(proofs.next()?),
                _ => None,
            };
            out.extend(Self::delivery(item, me, proof));
        }
        Some(out)
    }

    /// The wire form of one queue item for `me` (an envelope needs its acceptance proof).
    fn delivery(item: &Item, me: &Key, proof: Option<AcceptProof>) -> Option<Delivery> {
        Some(match item {
            Item::Envelope {
                seq,
                envelope,
                stored_at_ms,
                release,
                ..
            } => match pocnet_crypto::trim_for_recipient(envelope, me) {
                // A released escalation step says when it fell due and was released.
                Ok(envelope) => match release {
                    Some(release) => Delivery::Escalated {
                        seq: *seq,
                        envelope,
                        stored_at_ms: *stored_at_ms,
                        proof: proof?,
                        release: *release,
                    },
                    None => Delivery::Stored {
                        seq: *seq,
                        envelope,
                        stored_at_ms: *stored_at_ms,
                        proof: proof?,
                    },
                },
                Err(e) => {
                    // Refused at send, so only a damaged store gets here.
                    tracing::error!("stored envelope {seq} cannot be trimmed: {e}");
                    return None;
                }
            },
            Item::Receipt { seq, from, receipt } => Delivery::Receipt {
                seq: *seq,
                from: *from,
                receipt: receipt.clone(),
            },
            Item::Expired {
                seq,
                message_id,
                recipient,
            } => Delivery::Expired {
                seq: *seq,
                message_id: *message_id,
                recipient: *recipient,
            },
        })
    }

    /// Decides an upload before any byte is read: size limits, ownership, quota and cap
    /// (space is reserved here), and where to resume given `held` bytes already on disk.
    pub async fn upload_start(
        &self,
        peer: &IdentityKey,
        message_id: MessageId,
        total_len: u64,
        offset: u64,
        held: u64,
    ) -> UploadPlan {
        if total_len > self.cfg.max_attachment_bytes {
            return UploadPlan::Answer(err(
                ErrorCode::TooLarge,
                format!(
                    "attachment is {total_len} bytes, the relay's limit is {}",
                    self.cfg.max_attachment_bytes
                ),
            ));
        }
        let limits = BlobLimits {
            per_member: self.cfg.upload_quota_mib.saturating_mul(1024 * 1024),
            total: self.cfg.max_blob_mib.saturating_mul(1024 * 1024),
        };
        match self
            .store
            .begin_upload(*peer.as_bytes(), message_id, total_len, limits, self.clock.now_ms())
            .await
        {
            Ok(UploadStart::Complete) => UploadPlan::Answer(Response::BlobStored {
                stored: total_len,
                complete: true,
            }),
            Ok(UploadStart::Reserved) if offset != held || held > total_len => {
                // The client resumes from what is on disk.
                UploadPlan::Answer(Response::BlobStored {
                    stored: held.min(total_len),
                    complete: false,
                })
            }
            Ok(UploadStart::Reserved) => UploadPlan::Receive { offset },
            Err(StoreError::Conflict(Conflict::BlobOwned)) => {
                UploadPlan::Answer(err(ErrorCode::Forbidden, "another sender holds this attachment id"))
            }
            Err(e) => UploadPlan::Answer(store_err(e)),
        }
    }

    /// Decides a complete upload, given the verification result of its bytes.
    pub async fn upload_finish(
        &self,
        peer: &IdentityKey,
        message_id: MessageId,
        total_len: u64,
        verified: Result<Header, String>,
    ) -> Response {
        let header = match verified {
            Ok(h) => h,
            Err(e) => {
                let _ = self.store.abandon_upload(*peer.as_bytes(), message_id).await;
                return err(ErrorCode::BadEnvelope, format!("attachment rejected: {e}"));
            }
        };
        if header.sender != *peer || header.message_id != message_id || header.content_type != ContentType::Attachment {
            let _ = self.store.abandon_upload(*peer.as_bytes(), message_id).await;
            return err(
                ErrorCode::BadEnvelope,
                "attachment envelope does not match its upload (sender, id or content type)",
            );
        }
        let recipients = header.recipients.iter().map(|r| r.key).collect();
        match self
            .store
            .complete_upload(*peer.as_bytes(), message_id, recipients)
            .await
        {
            Ok(()) => Response::BlobStored {
                stored: total_len,
                complete: true,
            },
            Err(e) => store_err(e),
        }
    }

    /// Decides a download: the attachment's length, if `peer` may read it.
    pub async fn download_start(&self, peer: &IdentityKey, message_id: MessageId) -> Result<u64, Response> {
        match self.store.blob(message_id).await {
            Ok(Some(b)) if b.complete => {
                if b.sender == *peer.as_bytes() || b.recipients.contains(peer.as_bytes()) {
                    Ok(b.total_len)
                } else {
                    Err(err(
                        ErrorCode::Forbidden,
                        "this key is not a recipient of the attachment",
                    ))
                }
            }
            Ok(_) => Err(err(ErrorCode::NotFound, "no such attachment at this relay")),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Releases the held envelopes due by the clock into their recipients' queues (live
    /// watchers get them now); returns how many. The edge calls it every second.
    pub async fn release(&self) -> u64 {
        match self.store.release(self.clock.now_ms()).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!("released {n} held envelopes");
                }
                n
            }
            Err(e) => {
                tracing::error!("release of held envelopes failed: {e}");
                0
            }
        }
    }

    /// Expires queue items and attachments by the clock; returns the attachments whose
    /// files the edge must delete.
    pub async fn sweep(&self) -> Vec<(Key, MessageId)> {
        let now = self.clock.now_ms();
        // Held envelopes due are released before anything expires.
        self.release().await;
        match self.store.expire(now).await {
            Ok(n) if n > 0 => tracing::info!("expired {n} undelivered items"),
            Ok(_) => {}
            Err(e) => tracing::error!("expiry sweep failed: {e}"),
        }
        let waited = self.cfg.waiting_days.saturating_mul(86_400_000);
        if let Err(e) = self.store.expire_waiting(now.saturating_sub(waited)).await {
            tracing::error!("sweep of registrations and submissions failed: {e}");
        }
        match self.store.expire_blobs(now.saturating_sub(self.ttl_ms())).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!("attachment sweep failed: {e}");
                Vec::new()
            }
        }
    }
}
