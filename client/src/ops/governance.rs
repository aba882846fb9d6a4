//! Who may change the directory, and how: the Secretariat begins the log, enrols national
//! authorities and approves nominations after hearing the POC's voice code by phone; a
//! national authority nominates, removes and re-ranks its own state's POCs and revokes
//! their keys; a POC confirms or updates its details and rotates its encryption key.
//! Everything except the Secretariat's own entries is a signed statement offered to the
//! relay for the Secretariat to publish; the Secretariat appends it with a new signed
//! checkpoint.

use pocnet_core::directory::entry::Action;
use pocnet_core::directory::{Author, Category, Contact, Handle, Publisher, Rank, Statement, WitnessKey};
use pocnet_crypto::note::Witness;
use pocnet_crypto::{Fingerprint, IdentityKey, PublicIdentity};
use pocnet_wire::{Request, Response, Submission};
use serde::Serialize;

use crate::app::Client;
use crate::error::{Error, Result};
use crate::net::Session;
use crate::now_ms;

/// A statement waiting for the Secretariat, described for a person.
#[derive(Clone, Debug, Serialize)]
pub struct Pending {
    /// The relay's id for it.
    pub id: u64,
    /// What it does (`nominate`, `remove`, ...).
    pub kind: String,
    /// Who signed it: a handle, or a fingerprint if the directory does not list it.
    pub author: String,
    /// One line: what it asks for.
    pub summary: String,
    /// For nominations: the nominee's details, for the phone call.
    pub nominee: Option<Nominee>,
    /// Whether the directory rules would accept it now (and why not).
    pub problem: Option<String>,
}

/// Who to phone for a voice check.
#[derive(Clone, Debug, Serialize)]
pub struct Nominee {
    /// State.
    pub state: String,
    /// The handle it would get.
    pub handle: String,
    /// Contact details (other-party text: neutralise before showing).
    pub contact: Contact,
    /// The fingerprint the national authority nominated (hex).
    pub fingerprint: String,
}

/// Parses `cyber` / `foreign` (and the long forms).
pub fn parse_category(s: &str) -> Result<Category> {
    match s.trim().to_ascii_lowercase().as_str() {
        "cyber" | "cyber-policy" | "cyber policy" => Ok(Category::CyberPolicy),
        "foreign" | "foreign-affairs" | "foreign affairs" | "fa" => Ok(Category::ForeignAffairs),
        other => Err(Error::Usage(format!(
            "category must be `cyber` (cyber policy contact) or `foreign` (foreign affairs contact), not {other:?}"
        ))),
    }
}

/// Parses `primary`, `alternate`, `further1`..`further9`.
pub fn parse_rank(s: &str) -> Result<Rank> {
    match s.trim().to_ascii_lowercase().as_str() {
        "primary" => Ok(Rank::Primary),
        "alternate" => Ok(Rank::Alternate),
        other => match other.strip_prefix("further").and_then(|n| n.parse::<u8>().ok()) {
            Some(n) if (1..=9).contains(&n) => Ok(Rank::Further(n)),
            _ => Err(Error::Usage(format!(
                "rank must be primary, alternate or further1 to further9, not {other:?}"
            ))),
        },
    }
}

/// Checks a state code against ISO 3166-1 (the real list, not just the form).
pub fn parse_state(s: &str) -> Result<String> {
    let up = s.trim().to_ascii_uppercase();
    if pocnet_core::iso3166::is_assigned(&up) {
        Ok(up)
    } else {
        Err(Error::Usage(format!(
            "{:?} is not an ISO 3166-1 alpha-2 country code (such as CL, MX, US, BR)",
            crate::render::line(s)
        )))
    }
}

fn refused(e: impl std::fmt::Display) -> Error {
    Error::DirectoryRefused(e.to_string())
}

impl Client {
    fn author(&self) -> Result<Author<'_>> {
        Ok(Author::new(&self.identity, self.anchor()?.origin))
    }

    /// Secretariat, before anything else: makes the log's first entry offline and trusts
    /// it; returns the directory key (C2SP verifier key) every relay and client is given.
    pub fn secretariat_genesis(&mut self, origin: &str, witnesses: &[String], quorum: u32) -> Result<String> {
        if self.profile.config.directory.is_some() {
            return Err(Error::Usage("this profile already belongs to a directory".into()));
        }
        let mut ws = Vec::new();
        for w in witnesses {
            let w = Witness::parse_vkey(w.trim()).map_err(|e| {
                Error::Usage(format!(
                    "--witness must be a witness key as `pocnet directory witness-key` prints it: {e}"
                ))
            })?;
            ws.push(WitnessKey {
                name: w.name,
                key: *w.key.as_bytes(),
            });
        }
        if quorum as usize > ws.len() {
            return Err(Error::Usage(format!(
                "--quorum {quorum} needs at least that many --witness keys (got {})",
                ws.len()
            )));
        }
        let p = Publisher::genesis(&self.identity, origin, now_ms(), ws, quorum).map_err(refused)?;
        let note = p.checkpoint(&self.identity);
        self.store.log_save(0, p.leaves(), &note.to_text())?;
        let vkey = pocnet_core::directory::vkey(origin, self.identity.public_key());
        self.profile.config.directory = Some(vkey.clone());
        self.profile.config.handle = Some("secretariat".into());
        self.profile.save()?;
        Ok(vkey)
    }

    /// Sends the genesis made offline to a relay whose log has not begun.
    pub(crate) async fn publish_genesis(&self, s: &Session) -> Result<()> {
        let leaves = self.store.log_leaves()?;
        let note = self.store.log_checkpoint()?.ok_or_else(|| {
            Error::Usage("this profile holds the directory key but no genesis: run `pocnet secretariat genesis`".into())
        })?;
        match s
            .request(&Request::LogAppend {
                leaves,
                checkpoint: note,
            })
            .await?
        {
            Response::Done => Ok(()),
            other => Err(Error::Protocol(format!("unexpected answer to LogAppend: {other:?}"))),
        }
    }

    /// Secretariat: appends statements with a new checkpoint over the relay's log.
    pub async fn publish(&self, s: &Session, statements: &[Statement]) -> Result<u64> {
        self.publish_signed(s, statements, &self.identity, true).await
    }

    /// Secretariat: hands the directory over to `successor` (another profile's key): a
    /// rotation entry signed with this key, and the checkpoint over it signed with the
    /// successor's, which is the key in force from then on. This key can publish nothing
    /// afterwards.
    pub async fn hand_over(&self, s: &Session, successor: &pocnet_crypto::Identity) -> Result<u64> {
        let st = self
            .author()?
            .secretariat_rotate(now_ms(), successor.public_key())
            .map_err(refused)?;
        // Afterwards the relay no longer admits this key: nothing more to fetch with it.
        self.publish_signed(s, &[st], successor, false).await
    }

    async fn publish_signed(
        &self,
        s: &Session,
        statements: &[Statement],
        signer: &pocnet_crypto::Identity,
        sync_after: bool,
    ) -> Result<u64> {
        self.sync_directory(s).await?;
        let anchor = self.anchor()?;
        let mut leaves = self.store.log_leaves()?;
        // Entries the relay holds beyond our witnessed checkpoint (awaiting cosignatures).
        if let Response::Checkpoint { note } = s.request(&Request::LogCheckpoint).await? {
            let cp = pocnet_crypto::note::SignedNote::parse(&note)
                .and_then(|n| n.checkpoint())
                .map_err(|e| Error::RelayLied(format!("checkpoint: {e}")))?;
            let extra = self.fetch_leaves(s, leaves.len() as u64, cp.size).await?;
            leaves.extend(extra);
        }
        let mut p = Publisher::resume(&anchor.origin, anchor.key, leaves)
            .map_err(|e| Error::RelayLied(format!("the relay's log does not verify for publishing: {e}")))?;
        if p.directory().secretariat() != self.identity.public_key() {
            return Err(Error::Usage(
                "only the Secretariat's key publishes the directory".into(),
            ));
        }
        for st in statements {
            p.push(st).map_err(refused)?;
        }
        let note = p.checkpoint(signer);
        let (_, new) = p.unpublished();
        match s
            .request(&Request::LogAppend {
                leaves: new.to_vec(),
                checkpoint: note.to_text(),
            })
            .await?
        {
            Response::Done => {}
            other => return Err(Error::Protocol(format!("unexpected answer to LogAppend: {other:?}"))),
        }
        let size = p.leaves().len() as u64;
        if sync_after {
            self.sync_directory(s).await?;
        }
        Ok(size)
    }

    /// The public identity a key offered the relay (`pocnet enrol`), by full fingerprint.
    async fn registration(&self, s: &Session, fingerprint: &Fingerprint) -> Result<PublicIdentity> {
        match s
            .request(&Request::Registration {
                fingerprint: fingerprint.to_hex(),
            })
            .await
        {
            Ok(Response::Registered { public_identity }) => {
                let pi = PublicIdentity::from_bytes(&public_identity)
                    .map_err(|e| Error::RelayLied(format!("a registered identity does not verify: {e}")))?;
                if pi.fingerprint() != *fingerprint {
                    return Err(Error::RelayLied("the registration returned is for another key".into()));
                }
                Ok(pi)
            }
            Ok(other) => Err(Error::Protocol(format!("unexpected answer to Registration: {other:?}"))),
            Err(Error::Relay {
                code: pocnet_wire::ErrorCode::NotFound,
                ..
            }) => Err(Error::DirectoryRefused(format!(
                "no key with fingerprint {} has asked to join: the person must first run `pocnet init` and \
                 `pocnet enrol --relay ... --relay-key ... --directory ...`",
                fingerprint.short()
            ))),
            Err(e) => Err(e),
        }
    }

    /// The voice check: what was heard must be the key's voice code.
    fn voice_check(key: &IdentityKey, heard: &str) -> Result<()> {
        if key.voice_code().matches(heard) {
            Ok(())
        } else {
            Err(Error::DirectoryRefused(
                "the digits you heard do not match this key's voice code: NOTHING was approved. Do not approve \
                 this key. Phone the person again on a number you already know; if the digits still differ, \
                 someone else's key may have been put forward"
                    .into(),
            ))
        }
    }

    /// Secretariat: enrols a state's national authority after the voice check.
    pub async fn enrol_authority(
        &self,
        s: &Session,
        state: &str,
        fingerprint: &str,
        name: &str,
        institution: &str,
        heard: impl FnOnce(&str) -> Result<String>,
    ) -> Result<u64> {
        let state = parse_state(state)?;
        let fp = Fingerprint::parse(fingerprint)
            .map_err(|_| Error::Usage("--fingerprint must be the 64 hex digits `pocnet init` printed".into()))?;
        let pi = self.registration(s, &fp).await?;
        Self::voice_check(pi.key(), &heard(name)?)?;
        let st = self
            .author()?
            .authority_enrol(now_ms(), &state, pi.key(), name, institution)
            .map_err(refused)?;
        self.publish(s, &[st]).await
    }

    /// Secretariat: what waits for it, each checked against the directory rules.
    pub async fn pending(&self, s: &Session) -> Result<Vec<(Pending, Submission)>> {
        self.sync_directory(s).await?;
        let log = self.log()?;
        let dir = log.directory();
        let items = match s.request(&Request::Submissions { after: 0 }).await? {
            Response::Submitted { items } => items,
            other => return Err(Error::Protocol(format!("unexpected answer to Submissions: {other:?}"))),
        };
        let mut out = Vec::new();
        for sub in items {
            let st = match Statement::parse(&sub.statement) {
                Ok(st) => st,
                Err(e) => {
                    out.push((
                        Pending {
                            id: sub.id,
                            kind: "unreadable".into(),
                            author: "?".into(),
                            summary: String::new(),
                            nominee: None,
                            problem: Some(e.to_string()),
                        },
                        sub,
                    ));
                    continue;
                }
            };
            let author = dir
                .handle_of(st.author())
                .map(|h| h.to_string())
                .unwrap_or_else(|| st.author().fingerprint().short());
            let (summary, nominee) = match st.action() {
                Action::Nominate {
                    state,
                    category,
                    rank,
                    contact,
                    fingerprint,
                } => {
                    let handle = Handle::poc(state, *category, *rank).to_string();
                    (
                        format!("list {} as {handle}", contact.name),
                        Some(Nominee {
                            state: state.clone(),
                            handle,
                            contact: contact.clone(),
                            fingerprint: Fingerprint(*fingerprint).to_hex(),
                        }),
                    )
                }
                Action::Remove { handle, reason } => (format!("remove {handle}: {reason}"), None),
                Action::RankChange { handle, category, rank } => (
                    format!(
                        "move {handle} to {}",
                        Handle::poc(handle.get(..2).unwrap_or(""), *category, *rank)
                    ),
                    None,
                ),
                Action::Revoke { key, reason } => (
                    format!(
                        "revoke key {}: {reason}",
                        IdentityKey::from_bytes(key)
                            .map(|k| k.fingerprint().short())
                            .unwrap_or_default()
                    ),
                    None,
                ),
                Action::KeyRotation { .. } => ("new encryption key".into(), None),
                Action::ContactUpdate { .. } => ("new contact details".into(), None),
                Action::Confirm => ("details confirmed as still correct".into(), None),
                Action::PolicyPublish {
                    state,
                    document,
                    version,
                    kind,
                    titles,
                    ..
                } => (
                    format!(
                        "list {state}'s {kind} {} version {version}: {}",
                        pocnet_crypto::to_hex(document),
                        titles.first().map(|(_, t)| t.as_str()).unwrap_or_default()
                    ),
                    None,
                ),
                other => (other.kind().to_string(), None),
            };
            // Would the rules accept it now? (A nomination is checked as its approval would be.)
            let problem = if let Some(n) = &nominee {
                match dir.authority(&n.state) {
                    Some(a) if &a.key == st.author() => None,
                    _ => Some("not signed by this state's national authority".to_string()),
                }
            } else {
                let mut d = dir.clone();
                d.apply(st.as_bytes()).err().map(|e| e.refusal.to_string())
            };
            out.push((
                Pending {
                    id: sub.id,
                    kind: st.action().kind().to_string(),
                    author,
                    summary,
                    nominee,
                    problem,
                },
                sub,
            ));
        }
        Ok(out)
    }

    /// Secretariat: approves nomination `id` after the voice check (`heard` is asked
    /// for the digits, given the nominee to phone).
    pub async fn approve(
        &self,
        s: &Session,
        id: u64,
        heard: impl FnOnce(&Nominee) -> Result<String>,
    ) -> Result<String> {
        let pending = self.pending(s).await?;
        let Some((p, sub)) = pending.into_iter().find(|(p, _)| p.id == id) else {
            return Err(Error::Usage(format!(
                "nothing with id {id} waits: list them with `pocnet secretariat pending`"
            )));
        };
        let Some(nominee) = p.nominee.clone() else {
            return Err(Error::Usage(format!(
                "{id} is a {} statement, not a nomination: `pocnet secretariat publish` publishes those",
                p.kind
            )));
        };
        if let Some(problem) = p.problem {
            return Err(Error::DirectoryRefused(format!(
                "nomination {id} cannot be approved: {problem}"
            )));
        }
        let fp = Fingerprint::parse(&nominee.fingerprint).map_err(refused)?;
        let pi = self.registration(s, &fp).await?;
        Self::voice_check(pi.key(), &heard(&nominee)?)?;
        let nomination = Statement::parse(&sub.statement).map_err(refused)?;
        let now = now_ms();
        let st = self.author()?.approve(now, &nomination, &pi, now).map_err(refused)?;
        self.publish(s, &[st]).await?;
        Ok(nominee.handle)
    }

    /// Secretariat: publishes every waiting statement the rules accept that needs no
    /// voice check (removals, rank changes, revocations, key rotations, contact updates,
    /// confirmations, policy publications); dismisses those they refuse. Returns (published, refused).
    pub async fn publish_pending(&self, s: &Session) -> Result<(Vec<Pending>, Vec<Pending>)> {
        let pending = self.pending(s).await?;
        let log = self.log()?;
        let mut dir = log.directory().clone();
        let (mut ok, mut bad, mut sts, mut drop) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (mut p, sub) in pending {
            if p.nominee.is_some() {
                continue;
            }
            let st = match Statement::parse(&sub.statement) {
                Ok(st) => st,
                Err(_) => {
                    drop.push(p.id);
                    bad.push(p);
                    continue;
                }
            };
            if st.time_ms() > now_ms() + 5 * 60 * 1000 {
                p.problem =
                    Some("dated in the future: the signer's clock is wrong; ask them to fix it and send again".into());
                drop.push(p.id);
                bad.push(p);
                continue;
            }
            match dir.apply(st.as_bytes()) {
                Ok(_) => {
                    sts.push(st);
                    ok.push(p);
                }
                Err(e) => {
                    p.problem = Some(e.refusal.to_string());
                    drop.push(p.id);
                    bad.push(p);
                }
            }
        }
        if !sts.is_empty() {
            self.publish(s, &sts).await?;
        }
        if !drop.is_empty() {
            s.request(&Request::Dismiss { ids: drop }).await?;
        }
        Ok((ok, bad))
    }

    /// Secretariat: refuses a waiting statement.
    pub async fn dismiss(&self, s: &Session, id: u64) -> Result<()> {
        s.request(&Request::Dismiss { ids: vec![id] }).await?;
        Ok(())
    }

    /// Offers a statement signed by this key to the Secretariat.
    pub async fn submit(&self, s: &Session, st: &Statement) -> Result<()> {
        match s
            .request(&Request::Submit {
                statement: st.as_bytes().to_vec(),
            })
            .await?
        {
            Response::Done => Ok(()),
            other => Err(Error::Protocol(format!("unexpected answer to Submit: {other:?}"))),
        }
    }

    /// A listed POC of our own state by handle (for a national authority).
    fn own_poc(&self, handle: &str) -> Result<pocnet_core::directory::Poc> {
        let log = self.log()?;
        let dir = log.directory();
        let p: pocnet_core::directory::Poc =
            dir.by_handle(handle.trim())
                .cloned()
                .ok_or_else(|| Error::UnknownContact {
                    query: handle.to_string(),
                })?;
        let me = dir
            .authorities()
            .find(|a| &a.key == self.identity.public_key())
            .cloned();
        match me {
            Some(a) if a.state == p.state() => Ok(p),
            Some(a) => Err(Error::Usage(format!(
                "you are {}'s national authority; {} belongs to {}",
                a.state,
                p.handle_text(),
                p.state()
            ))),
            None => Err(Error::Usage(
                "only a national authority signs this (your key is not one)".into(),
            )),
        }
    }

    /// National authority: nominates the holder of `fingerprint` (the voice check follows
    /// at the Secretariat).
    pub async fn nominate(
        &self,
        s: &Session,
        category: Category,
        rank: Rank,
        contact: Contact,
        fingerprint: &str,
    ) -> Result<String> {
        self.sync_directory(s).await?;
        let log = self.log()?;
        let state = log
            .directory()
            .authorities()
            .find(|a| &a.key == self.identity.public_key())
            .map(|a| a.state.clone())
            .ok_or_else(|| Error::Usage("only a national authority nominates (your key is not one)".into()))?;
        contact.check().map_err(refused)?;
        let fp = Fingerprint::parse(fingerprint)
            .map_err(|_| Error::Usage("--fingerprint must be the 64 hex digits `pocnet init` printed".into()))?;
        let handle = Handle::poc(&state, category, rank).to_string();
        let st = self
            .author()?
            .sign(
                now_ms(),
                Action::Nominate {
                    state,
                    category,
                    rank,
                    contact,
                    fingerprint: fp.0,
                },
            )
            .map_err(refused)?;
        self.submit(s, &st).await?;
        Ok(handle)
    }

    /// National authority: removes one of its POCs.
    pub async fn remove_poc(&self, s: &Session, handle: &str, reason: &str) -> Result<()> {
        self.sync_directory(s).await?;
        let p = self.own_poc(handle)?;
        let st = self
            .author()?
            .remove(now_ms(), &p.handle_text(), reason)
            .map_err(refused)?;
        self.submit(s, &st).await
    }

    /// National authority: moves one of its POCs to another rank.
    pub async fn rerank(&self, s: &Session, handle: &str, category: Category, rank: Rank) -> Result<()> {
        self.sync_directory(s).await?;
        let p = self.own_poc(handle)?;
        let st = self
            .author()?
            .rank_change(now_ms(), &p.handle_text(), category, rank)
            .map_err(refused)?;
        self.submit(s, &st).await
    }

    /// National authority or Secretariat: revokes a POC's key (lost or compromised). The
    /// Secretariat publishes its own revocation at once.
    pub async fn revoke_poc(&self, s: &Session, handle: &str, reason: &str) -> Result<()> {
        self.sync_directory(s).await?;
        let log = self.log()?;
        if log.directory().secretariat() == self.identity.public_key() {
            let p = log
                .directory()
                .by_handle(handle.trim())
                .cloned()
                .ok_or_else(|| Error::UnknownContact {
                    query: handle.to_string(),
                })?;
            let st = self.author()?.revoke(now_ms(), &p.key, reason).map_err(refused)?;
            self.publish(s, &[st]).await?;
            return Ok(());
        }
        let p = self.own_poc(handle)?;
        let st = self.author()?.revoke(now_ms(), &p.key, reason).map_err(refused)?;
        self.submit(s, &st).await
    }

    /// POC: confirms its details are still correct (the yearly update).
    pub async fn confirm_details(&self, s: &Session) -> Result<()> {
        let st = self.author()?.confirm(now_ms()).map_err(refused)?;
        self.submit(s, &st).await
    }

    /// POC: publishes new contact details.
    pub async fn update_details(&self, s: &Session, contact: Contact) -> Result<()> {
        contact.check().map_err(refused)?;
        let st = self.author()?.contact_update(now_ms(), contact).map_err(refused)?;
        self.submit(s, &st).await
    }

    /// POC: offers its current public identity (after an encryption-key rotation).
    pub async fn publish_rotation(&self, s: &Session) -> Result<()> {
        let st = self
            .author()?
            .key_rotation(now_ms(), &self.identity.public())
            .map_err(refused)?;
        self.submit(s, &st).await
    }

    /// Our own directory record, if listed.
    pub fn own_record(&self) -> Result<Option<pocnet_core::directory::Poc>> {
        Ok(self
            .local_log()?
            .and_then(|l| l.directory().by_key(self.identity.public_key()).cloned()))
    }

    /// Witness: cosigns the relay's latest checkpoint under witness name `name`, after
    /// verifying it: every entry from the first (or from the last checkpoint this witness
    /// cosigned, which must be a prefix), the root, and the Secretariat's signature. A
    /// witness never needs other witnesses' cosignatures to do this.
    pub async fn cosign(&self, s: &Session, name: &str) -> Result<u64> {
        let note = match s.request(&Request::LogCheckpoint).await? {
            Response::Checkpoint { note } => note,
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected answer to LogCheckpoint: {other:?}"
                )))
            }
        };
        let n = pocnet_crypto::note::SignedNote::parse(&note).map_err(|e| Error::RelayLied(e.to_string()))?;
        let cp = n.checkpoint().map_err(|e| Error::RelayLied(e.to_string()))?;
        let ours = self.store.log_leaves()?;
        if (ours.len() as u64) > cp.size {
            return Err(Error::RelayLied(format!(
                "the relay's checkpoint covers {} entries; we cosigned {} before",
                cp.size,
                ours.len()
            )));
        }
        let mut all = ours.clone();
        all.extend(self.fetch_leaves(s, ours.len() as u64, cp.size).await?);
        let anchor = self.anchor()?;
        let p = Publisher::resume(&anchor.origin, anchor.key, all).map_err(|e| Error::RelayLied(e.to_string()))?;
        let hashes: Vec<_> = p.leaves().iter().map(|l| pocnet_crypto::tlog::leaf_hash(l)).collect();
        if pocnet_crypto::tlog::root(&hashes) != cp.root || hashes.len() as u64 != cp.size {
            if let Some(old) = self.store.log_checkpoint()? {
                return Err(self.fork("a witness was shown a log that rewrites what it cosigned", &old, &note));
            }
            return Err(Error::RelayLied(
                "the checkpoint is not the root of the entries it serves".into(),
            ));
        }
        pocnet_crypto::note::NoteVerifier {
            name: anchor.origin.clone(),
            key: *p.directory().secretariat(),
        }
        .verify(&n)
        .map_err(|_| Error::RelayLied("the checkpoint is not signed by the Secretariat".into()))?;
        let sig = pocnet_crypto::note::cosign(&n.body, name, &self.identity, now_ms() / 1000);
        match s
            .request(&Request::LogCosign {
                size: cp.size,
                cosignature: sig.line(),
            })
            .await?
        {
            Response::Done => {}
            other => return Err(Error::Protocol(format!("unexpected answer to LogCosign: {other:?}"))),
        }
        let mut kept = n.clone();
        kept.signatures.push(sig);
        self.store
            .log_save(ours.len() as u64, &p.leaves()[ours.len()..], &kept.to_text())?;
        Ok(cp.size)
    }
}
