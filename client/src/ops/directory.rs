//! The directory as this client knows it: the Secretariat's log, verified from the first
//! entry on first sync and extended only by consistency proofs afterwards. Contacts come
//! from it, never from the relay's word; the relay's lookup answers are checked against
//! it; every envelope's log head is compared with it; and two signed views that cannot
//! both be true are kept as evidence and raised as an alarm.

use pocnet_core::directory::log::{Anchor, HeadCheck, LogError, LogState};
use pocnet_core::directory::{Directory, Poc};
use pocnet_crypto::note::{NoteVerifier, SignedNote};
use pocnet_crypto::{IdentityKey, PublicIdentity};
use pocnet_wire::{ErrorCode, Request, Response};

use crate::app::Client;
use crate::error::{Error, Result};
use crate::net::Session;
use crate::now_ms;

/// Leaves asked for per request while syncing.
const PAGE: u32 = 512;

/// How far one sync got.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DirSync {
    /// Entries in the verified log now.
    pub size: u64,
    /// Entries this sync verified and added.
    pub added: u64,
    /// A newer checkpoint the relay holds that lacks the witness cosignatures this
    /// directory requires (kept out until witnessed).
    pub awaiting_witnesses: Option<u64>,
}

/// A contact as the verified directory lists it, with how far this user trusts it.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The directory record.
    pub poc: Poc,
    /// Where it stands on the trust ladder.
    pub trust: Trust,
}

/// The trust ladder, shown wherever a contact appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trust {
    /// In the Secretariat's verified log.
    Attested,
    /// In the log, and its safety number compared by voice by this user.
    VoiceVerified,
    /// The handle's key is not the one this user knew: sending is blocked until re-verified.
    Changed,
}

impl Trust {
    /// Plain words for the ladder.
    pub fn label(self) -> &'static str {
        match self {
            Trust::Attested => "attested",
            Trust::VoiceVerified => "voice-verified by me",
            Trust::Changed => "CHANGED: sending blocked until re-verified",
        }
    }
}

fn log_err(e: LogError) -> Error {
    Error::RelayLied(e.to_string())
}

/// One directory row, as the CLI lists it and the portal shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DirectoryRow {
    /// `STATE.category.rank`.
    pub handle: String,
    /// Contact details (the POC's own text).
    pub name: String,
    /// Position.
    pub position: String,
    /// Institution.
    pub institution: String,
    /// E-mail.
    pub email: String,
    /// Phones.
    pub phones: Vec<String>,
    /// Languages (BCP 47 tags).
    pub languages: Vec<String>,
    /// Time zone.
    pub time_zone: String,
    /// Working hours.
    pub working_hours: String,
    /// Identity key fingerprint (hex).
    pub fingerprint: String,
    /// Where the key stands for this user.
    pub trust: Trust,
    /// Not confirmed for over a year.
    pub stale: bool,
    /// When the details were last confirmed (`YYYY-MM-DD`).
    pub confirmed: String,
    /// The log entry that last changed the record.
    pub log_entry: u64,
}

impl DirectoryRow {
    /// The row of one POC, with `trust` as this user holds it.
    pub fn new(p: &Poc, trust: Trust, now: u64) -> DirectoryRow {
        DirectoryRow {
            handle: p.handle_text(),
            name: p.contact.name.clone(),
            position: p.contact.position.clone(),
            institution: p.contact.institution.clone(),
            email: p.contact.email.clone(),
            phones: p.contact.phones.clone(),
            languages: p.contact.languages.clone(),
            time_zone: p.contact.time_zone.clone(),
            working_hours: p.contact.working_hours.clone(),
            fingerprint: p.key.fingerprint().to_hex(),
            trust,
            stale: p.is_stale(now),
            confirmed: date(p.confirmed_ms),
            log_entry: p.updated_index,
        }
    }
}

impl Client {
    /// Rows for `pocs` of the verified directory `dir`, with this user's trust in each.
    pub fn directory_rows<'a>(
        &self,
        dir: &Directory,
        pocs: impl IntoIterator<Item = &'a Poc>,
        now: u64,
    ) -> Result<Vec<DirectoryRow>> {
        pocs.into_iter()
            .map(|p| Ok(DirectoryRow::new(p, self.trust(dir, p)?, now)))
            .collect()
    }
}

/// The local date of a Unix-ms time, `YYYY-MM-DD` (UTC).
pub fn date(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", if m <= 2 { y + 1 } else { y }, m, d)
}

impl Client {
    /// The directory this profile trusts: the Secretariat's verifier key it was given.
    pub fn anchor(&self) -> Result<Anchor> {
        let vkey = self.profile.config.directory.as_deref().ok_or(Error::NotEnrolledHere)?;
        let v = NoteVerifier::parse_vkey(vkey).map_err(|e| Error::DamagedProfile {
            path: self.profile.dir.join("profile.toml"),
            reason: format!("directory key: {e}"),
        })?;
        Ok(Anchor {
            origin: v.name,
            key: v.key,
        })
    }

    /// The verified log as stored locally (re-verified from the first entry once per
    /// process: the stored copy is never trusted more than the relay's), or `None` before
    /// the first sync.
    pub fn local_log(&self) -> Result<Option<LogState>> {
        let Some(text) = self.store.log_checkpoint()? else {
            return Ok(None);
        };
        if let Some((cached, st)) = &*self.verified_log.lock().expect("log cache") {
            if *cached == text {
                return Ok(Some(st.clone()));
            }
        }
        let note = SignedNote::parse(&text).map_err(|e| Error::DamagedStore(format!("stored checkpoint: {e}")))?;
        let leaves = self.store.log_leaves()?;
        let anchor = self.anchor()?;
        let vkey = self.profile.config.directory.clone().unwrap_or_default();
        // Many profiles in one process (a drill's fleet) hold the same log: it is verified
        // once per process, keyed by exactly what was verified (anchor, note, every leaf).
        let key = shared_key(&vkey, &text, &leaves);
        if let Some(st) = SHARED
            .lock()
            .expect("shared log cache")
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, st)| st.clone())
        {
            self.remember_log(&text, &st);
            return Ok(Some(st));
        }
        match LogState::verify_all(&anchor, &leaves, &note) {
            Ok(st) => {
                self.remember_log(&text, &st);
                let mut shared = SHARED.lock().expect("shared log cache");
                if shared.len() >= 4 {
                    shared.remove(0);
                }
                shared.push((key, st.clone()));
                Ok(Some(st))
            }
            // The Secretariat's own genesis before the witnesses cosigned it: not verified yet.
            Err(LogError::Quorum { .. }) => Ok(None),
            Err(e) => Err(Error::DamagedStore(format!(
                "the stored directory log no longer verifies: {e}"
            ))),
        }
    }

    /// Keeps `st`, verified against the checkpoint note `text` now stored, for this client.
    fn remember_log(&self, text: &str, st: &LogState) {
        *self.verified_log.lock().expect("log cache") = Some((text.to_string(), st.clone()));
    }

    /// The verified log, or an error telling the user to sync.
    pub fn log(&self) -> Result<LogState> {
        self.local_log()?.ok_or_else(|| {
            Error::Usage("no directory yet: run `pocnet directory sync` (or `pocnet enrol`) first".into())
        })
    }

    /// Keeps fork evidence and returns the alarm.
    pub(crate) fn fork(&self, how: &str, ours: &str, theirs: &str) -> Error {
        if let Err(e) = self.store.record_fork(how, ours, theirs, now_ms()) {
            tracing::error!("could not store fork evidence: {e}");
        }
        Error::DirectoryFork { how: how.to_string() }
    }

    /// Log leaves `from..to` from the relay, in pages; refuses a relay that serves fewer
    /// (or more) than its checkpoint covers.
    pub(crate) async fn fetch_leaves(&self, s: &Session, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        while from + (out.len() as u64) < to {
            let at = from + out.len() as u64;
            let want = (to - at).min(PAGE as u64) as u32;
            match s.request(&Request::LogLeaves { from: at, limit: want }).await? {
                Response::Leaves { from: f, leaves } if f == at && !leaves.is_empty() => {
                    if leaves.len() as u64 > (to - at) {
                        return Err(Error::RelayLied("more log entries than asked for".into()));
                    }
                    out.extend(leaves);
                }
                Response::Leaves { .. } => {
                    return Err(Error::RelayLied(format!(
                        "the relay's checkpoint covers {to} entries but it serves only {at}"
                    )))
                }
                other => return Err(Error::Protocol(format!("unexpected answer to LogLeaves: {other:?}"))),
            }
        }
        Ok(out)
    }

    /// Brings the verified log up to the relay's latest checkpoint: the whole log on
    /// first sync, then only new entries with a consistency proof. A checkpoint that
    /// cannot be consistent with ours is a fork: evidence kept, alarm raised.
    pub async fn sync_directory(&self, s: &Session) -> Result<DirSync> {
        let _one_at_a_time = self.dir_sync.lock().await;
        let anchor = self.anchor()?;
        let note_text = match s.request(&Request::LogCheckpoint).await {
            Ok(Response::Checkpoint { note }) => note,
            Err(Error::Relay {
                code: ErrorCode::NotFound,
                ..
            }) => {
                return match self.local_log()? {
                    None => Ok(DirSync::default()),
                    Some(st) => Err(Error::RelayLied(format!(
                        "the relay says the directory has not begun, but we verified {} entries",
                        st.size()
                    ))),
                };
            }
            Ok(other) => {
                return Err(Error::Protocol(format!(
                    "unexpected answer to LogCheckpoint: {other:?}"
                )))
            }
            Err(e) => return Err(e),
        };
        let theirs = SignedNote::parse(&note_text).map_err(|e| Error::RelayLied(format!("checkpoint: {e}")))?;
        let cp = theirs
            .checkpoint()
            .map_err(|e| Error::RelayLied(format!("checkpoint: {e}")))?;
        let Some(mut st) = self.local_log()? else {
            let leaves = self.fetch_leaves(s, 0, cp.size).await?;
            let st = match LogState::verify_all(&anchor, &leaves, &theirs) {
                Ok(st) => st,
                Err(LogError::Quorum { .. }) => {
                    return Err(Error::DirectoryRefused(format!(
                        "the directory's latest checkpoint ({} entries) lacks the witness cosignatures it requires; \
                         try again once the witnesses have cosigned",
                        cp.size
                    )))
                }
                Err(e) => return Err(log_err(e)),
            };
            self.store.log_save(0, &leaves, &note_text)?;
            self.remember_log(&note_text, &st);
            return Ok(DirSync {
                size: st.size(),
                added: st.size(),
                awaiting_witnesses: None,
            });
        };
        let ours = st.note().to_text();
        let have = st.size();
        if cp.size < have {
            // An older checkpoint: fine if it is a prefix of ours (a lagging relay), a fork if not.
            if st.root_at(cp.size) == Some(cp.root) {
                return Ok(DirSync {
                    size: have,
                    added: 0,
                    awaiting_witnesses: None,
                });
            }
            let signed = [anchor.key, *st.directory().secretariat()].iter().any(|k| {
                NoteVerifier {
                    name: anchor.origin.clone(),
                    key: *k,
                }
                .verify(&theirs)
                .is_ok()
            });
            return Err(if signed {
                self.fork(
                    "the relay served an older checkpoint that contradicts ours",
                    &ours,
                    &note_text,
                )
            } else {
                Error::RelayLied("an older checkpoint that nobody signed".into())
            });
        }
        let new_leaves = self.fetch_leaves(s, have, cp.size).await?;
        let proof = if cp.size > have && have > 0 {
            match s
                .request(&Request::LogProof {
                    old_size: have,
                    new_size: cp.size,
                })
                .await?
            {
                Response::Proof { hashes } => hashes,
                other => return Err(Error::Protocol(format!("unexpected answer to LogProof: {other:?}"))),
            }
        } else {
            Vec::new()
        };
        match st.extend(&new_leaves, &theirs, &proof) {
            Err(LogError::NotNewer { .. }) => {
                // Same checkpoint: keep the copy with more cosignatures.
                if theirs.signatures.len() > st.note().signatures.len() {
                    self.store.log_save(have, &[], &note_text)?;
                }
                Ok(DirSync {
                    size: have,
                    added: 0,
                    awaiting_witnesses: None,
                })
            }
            Ok(_) => {
                self.store.log_save(have, &new_leaves, &note_text)?;
                self.remember_log(&note_text, &st);
                Ok(DirSync {
                    size: st.size(),
                    added: st.size() - have,
                    awaiting_witnesses: None,
                })
            }
            Err(LogError::Quorum { .. }) => Ok(DirSync {
                size: have,
                added: 0,
                awaiting_witnesses: Some(cp.size),
            }),
            Err(LogError::Fork(ev)) => Err(self.fork(
                "the relay's checkpoint cannot be consistent with the one we verified",
                &ev.ours,
                &ev.theirs,
            )),
            Err(e) => Err(log_err(e)),
        }
    }

    /// Checks the sender's log head from a signed envelope header against our log. A head
    /// we cannot reach after one sync is reported; one our log contradicts is a fork.
    pub(crate) async fn check_head(&self, s: &Session, sender: &IdentityKey, head: Option<[u8; 32]>) -> Result<()> {
        let Some(head) = head else { return Ok(()) };
        let mut st = self.log()?;
        for attempt in 0..2 {
            match st.check_head(head) {
                HeadCheck::Same | HeadCheck::Older => return Ok(()),
                HeadCheck::Behind(size) if attempt == 0 => {
                    tracing::info!("a sender's directory is at {size} entries; syncing");
                    self.sync_directory(s).await?;
                    st = self.log()?;
                }
                HeadCheck::Behind(size) => {
                    tracing::warn!(
                        "the sender's directory has {size} entries; the relay gives us {}: it may be withholding entries",
                        st.size()
                    );
                    return Ok(());
                }
                HeadCheck::Fork => {
                    let theirs = format!(
                        "envelope header signed by {} naming log head {} (size {}), which our log contradicts",
                        sender.fingerprint().to_hex(),
                        pocnet_crypto::to_hex(&head),
                        u64::from_be_bytes(head[..8].try_into().expect("8 bytes"))
                    );
                    return Err(self.fork(
                        "a message's sender sees a directory that contradicts ours (split view)",
                        &st.note().to_text(),
                        &theirs,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Where a key stands for us, if the directory lists it.
    pub fn trust(&self, dir: &Directory, poc: &Poc) -> Result<Trust> {
        let handle = poc.handle_text();
        if let Some(known) = self.store.key_for_handle(&handle)? {
            if known != poc.key {
                return Ok(Trust::Changed);
            }
        }
        let _ = dir;
        Ok(if self.store.is_verified(&poc.key)? {
            Trust::VoiceVerified
        } else {
            Trust::Attested
        })
    }

    /// The POCs an address names, from the verified directory: a handle (exactly), a
    /// state code (all its POCs, by rank), or a fingerprint prefix (exactly one).
    pub fn directory_lookup(dir: &Directory, query: &str) -> Result<Vec<Poc>> {
        let q = query.trim();
        let found: Vec<Poc> = if q.contains('.') {
            dir.by_handle(q).cloned().into_iter().collect()
        } else if q.len() == 2 && q.bytes().all(|b| b.is_ascii_uppercase()) {
            dir.by_state(q).into_iter().cloned().collect()
        } else if q.len() == 2 && q.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Error::Usage(format!(
                "state codes are capitals (ISO 3166-1 alpha-2): did you mean {}?",
                q.to_ascii_uppercase()
            )));
        } else {
            match dir.by_fingerprint_prefix(q) {
                Ok(p) => vec![p.clone()],
                Err(pocnet_core::directory::LookupError::Ambiguous { count, .. }) => {
                    return Err(Error::AmbiguousContact {
                        query: q.to_string(),
                        count,
                    })
                }
                Err(_) => Vec::new(),
            }
        };
        if found.is_empty() {
            return Err(Error::UnknownContact { query: q.to_string() });
        }
        Ok(found)
    }

    /// The relay's answer to the same lookup must name exactly the same members with the
    /// same keys: a lookalike handle, an extra member or a substituted key is refused.
    /// Returns the keys the relay's operator has blocked (listed, but not served here).
    pub(crate) async fn cross_check(&self, s: &Session, query: &str, ours: &[Poc]) -> Result<Vec<IdentityKey>> {
        let members = match s
            .request(&Request::Lookup {
                query: query.to_string(),
            })
            .await?
        {
            Response::Directory { members } => members,
            other => return Err(Error::Protocol(format!("unexpected answer to Lookup: {other:?}"))),
        };
        let mut theirs = Vec::new();
        let mut blocked = Vec::new();
        for m in &members {
            let pi = PublicIdentity::from_bytes(&m.public_identity)
                .map_err(|e| Error::RelayLied(format!("its record for {:?} does not verify: {e}", m.handle)))?;
            theirs.push((m.handle.clone(), *pi.key().as_bytes()));
            if m.revoked {
                blocked.push(*pi.key());
            }
        }
        let mut want: Vec<(String, [u8; 32])> = ours.iter().map(|p| (p.handle_text(), *p.key.as_bytes())).collect();
        theirs.sort();
        want.sort();
        if theirs != want {
            let show = |v: &[(String, [u8; 32])]| {
                v.iter()
                    .map(|(h, k)| format!("{} {}", crate::render::line(h), pocnet_crypto::to_hex(&k[..8])))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::RelayLied(format!(
                "for {:?} the relay names [{}], the directory log [{}]",
                crate::render::line(query),
                show(&theirs),
                show(&want)
            )));
        }
        Ok(blocked)
    }
}

/// A POC's public identity as the directory lists it.
pub fn public_of(p: &Poc) -> PublicIdentity {
    p.public.clone()
}

/// Logs verified in this process, by [`shared_key`] (a few; the newest last).
static SHARED: std::sync::Mutex<Vec<([u8; 32], LogState)>> = std::sync::Mutex::new(Vec::new());

/// SHA-256 over the anchor's verifier key, the checkpoint note and every leaf (each with its
/// length): two stores share a verification only if they hold exactly the same log.
fn shared_key(anchor: &str, note: &str, leaves: &[Vec<u8>]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [anchor.as_bytes(), note.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    for l in leaves {
        h.update((l.len() as u64).to_be_bytes());
        h.update(l);
    }
    h.finalize().into()
}
