//! The policy repository: national cyber policies, strategies, laws and regulations,
//! published by each state's national authority as signed, versioned documents.
//!
//! Publishing is two things: a `PolicyPublish` statement submitted to the Secretariat for
//! the directory log (who published which version when, for everyone to verify), and the
//! file itself sealed to every listed POC as a `Policy` envelope (content type 8) with the
//! file as an attachment envelope, so the relay never reads it. A document is *listed* only
//! from the verified log; the file we hold is returned only after its SHA-256 and size match
//! that log entry.

use std::io::Read;
use std::path::{Path, PathBuf};

use pocnet_core::directory::entry::Action;
use pocnet_core::directory::{Directory, PolicyKind, PolicyVersion, Statement};
use pocnet_crypto::envelope::MAX_RECIPIENTS;
use pocnet_crypto::{ContentType, HeaderFields, IdentityKey, PublicIdentity, Suite, Tlp};
use pocnet_wire::content::PolicyNotice;
use pocnet_wire::Request;
use sha2::{Digest, Sha256};

use crate::app::Client;
use crate::db::{AttachmentRecord, HeldPolicy, NewMessage, PolicyFileRecord, StoredMessage};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::create_new_private;
use crate::net::Session;
use crate::now_ms;
use crate::ops::messaging::Outgoing;
use crate::types::{Direction, EnvelopeHash, MessageId};

/// Fewest hex digits accepted for a document id prefix.
pub const MIN_DOCUMENT_PREFIX: usize = 4;

/// One version of a policy document, from the verified log.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyView {
    /// ISO 3166-1 alpha-2 code of the publishing state.
    pub state: String,
    /// The document id (hex).
    pub document: String,
    /// The version.
    pub version: u32,
    /// `strategy`, `white-paper`, `law`, `regulation` or `other`.
    pub kind: String,
    /// The document's own date, `YYYY-MM-DD`.
    pub date: String,
    /// Its language (ISO 639-1).
    pub language: String,
    /// (language, title) pairs, the first in `language` (other-party text).
    pub titles: Vec<(String, String)>,
    /// The file's name (other-party text).
    pub file_name: String,
    /// Its media type.
    pub media_type: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the file (hex).
    pub sha256: String,
    /// When the national authority signed the statement (Unix ms).
    pub published_ms: u64,
    /// The log entry that lists it (0 for a publication not yet on the log).
    pub log_index: u64,
    /// Whether a later version supersedes it.
    pub superseded: bool,
    /// Whether this profile holds the file.
    pub held: bool,
}

/// A document: its current version and its history.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyDocument {
    /// The latest version.
    pub current: PolicyView,
    /// Every version, newest first (the current one included).
    pub history: Vec<PolicyView>,
}

/// What the log says about a file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyCheck {
    /// The log entries whose file has this SHA-256.
    pub listed: Vec<PolicyView>,
    /// The file's SHA-256 (hex).
    pub sha256: String,
}

/// What a national authority publishes (the file is given beside it).
#[derive(Clone, Debug)]
pub struct PolicyDraft {
    /// A new version of this document (id or prefix); `None` for a new document.
    pub document: Option<String>,
    /// The kind of document.
    pub kind: PolicyKind,
    /// The document's own date, `YYYY-MM-DD`.
    pub date: String,
    /// Its language (ISO 639-1).
    pub language: String,
    /// (language, title) pairs; the first must be in `language`.
    pub titles: Vec<(String, String)>,
}

fn view(v: &PolicyVersion, superseded: bool, held: bool) -> PolicyView {
    PolicyView {
        state: v.state.clone(),
        document: pocnet_crypto::to_hex(&v.document),
        version: v.version,
        kind: v.kind.name().to_string(),
        date: v.date.clone(),
        language: v.language.clone(),
        titles: v.titles.clone(),
        file_name: v.file_name.clone(),
        media_type: v.media_type.clone(),
        size: v.size,
        sha256: pocnet_crypto::to_hex(&v.sha256),
        published_ms: v.time_ms,
        log_index: v.index,
        superseded,
        held,
    }
}

/// The media type for a file name's extension (`application/octet-stream` if unknown).
pub fn media_type_for(name: &str) -> &'static str {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "odt" => "application/vnd.oasis.opendocument.text",
        "rtf" => "application/rtf",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "html" | "htm" => "text/html",
        "epub" => "application/epub+zip",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// SHA-256 and length of a file, streamed.
pub fn hash_file(path: &Path) -> Result<([u8; 32], u64)> {
    let mut f = std::fs::File::open(path).ctx(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).ctx(|| format!("cannot read {}", path.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finalize().into(), n))
}

/// The one document whose id starts with `prefix` (hex, at least 4 digits).
fn find_document<'a>(dir: &'a Directory, prefix: &str) -> Result<&'a [PolicyVersion]> {
    let p = prefix.trim().to_ascii_lowercase();
    if p.len() < MIN_DOCUMENT_PREFIX || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Usage(format!(
            "a document id is hexadecimal, at least {MIN_DOCUMENT_PREFIX} digits (as `pocnet policy list` shows it); got {:?}",
            crate::render::line(prefix)
        )));
    }
    let mut found = dir
        .policies()
        .filter(|vs| pocnet_crypto::to_hex(&vs[0].document).starts_with(&p));
    match (found.next(), found.count()) {
        (None, _) => Err(Error::UnknownMessage(format!(
            "policy document {p} (list them with `pocnet policy list`)"
        ))),
        (Some(vs), 0) => Ok(vs),
        (Some(_), more) => Err(Error::Usage(format!(
            "{} policy documents start with {p}; give more digits",
            more + 1
        ))),
    }
}

/// Whether this profile holds the file of `v`: a kept envelope whose statement is exactly
/// `v`'s log leaf.
fn is_held(v: &PolicyVersion, leaf_hashes: &[[u8; 32]], held: &[([u8; 32], HeldPolicy)]) -> bool {
    leaf_hashes
        .get(v.index as usize)
        .is_some_and(|l| held.iter().any(|(h, _)| h == l))
}

/// A hasher that is also a writer, for streaming decryption.
struct HashWriter<W> {
    hash: Sha256,
    len: u64,
    inner: W,
}

impl<W: std::io::Write> std::io::Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Client {
    /// Held policy documents, by the RFC 9162 leaf hash of their statement.
    fn held_policies(&self) -> Result<Vec<([u8; 32], HeldPolicy)>> {
        Ok(self
            .store
            .policy_files()?
            .into_iter()
            .filter_map(|h| {
                let st = pocnet_crypto::from_hex(&h.record.statement)?;
                Some((pocnet_crypto::tlog::leaf_hash(&st), h))
            })
            .collect())
    }

    fn document_views(
        &self,
        vs: &[PolicyVersion],
        leaf_hashes: &[[u8; 32]],
        held: &[([u8; 32], HeldPolicy)],
    ) -> PolicyDocument {
        let latest = vs.last().map(|v| v.version).unwrap_or(0);
        let history: Vec<PolicyView> = vs
            .iter()
            .rev()
            .map(|v| view(v, v.version < latest, is_held(v, leaf_hashes, held)))
            .collect();
        let current = history.first().cloned().expect("a listed document has a version");
        PolicyDocument { current, history }
    }

    /// Every listed policy document (of `state` only, if given), from the local verified
    /// log: no network, no message decrypted. Sorted by state, then the current version's
    /// date, newest first.
    pub fn policies(&self, state: Option<&str>) -> Result<Vec<PolicyDocument>> {
        let state = state.map(crate::ops::governance::parse_state).transpose()?;
        let log = self.log()?;
        let held = self.held_policies()?;
        let mut out: Vec<PolicyDocument> = log
            .directory()
            .policies()
            .filter(|vs| state.as_deref().is_none_or(|s| vs[0].state == s))
            .map(|vs| self.document_views(vs, log.leaf_hashes(), &held))
            .collect();
        out.sort_by(|a, b| {
            (
                a.current.state.as_str(),
                std::cmp::Reverse(a.current.date.as_str()),
                &a.current.document,
            )
                .cmp(&(
                    b.current.state.as_str(),
                    std::cmp::Reverse(b.current.date.as_str()),
                    &b.current.document,
                ))
        });
        Ok(out)
    }

    /// One document by id prefix (at least 4 hex digits; an ambiguous prefix is an error).
    pub fn policy(&self, document_prefix: &str) -> Result<PolicyDocument> {
        let log = self.log()?;
        let held = self.held_policies()?;
        let vs = find_document(log.directory(), document_prefix)?;
        Ok(self.document_views(vs, log.leaf_hashes(), &held))
    }

    /// The file of a document's version (the latest if `None`), decrypted from the
    /// envelope kept in the profile, and returned only if its SHA-256 and size are the
    /// log entry's.
    pub fn policy_file(&self, document_prefix: &str, version: Option<u32>) -> Result<(PolicyView, Vec<u8>)> {
        let log = self.log()?;
        let vs = find_document(log.directory(), document_prefix)?;
        let latest = vs.last().map(|v| v.version).unwrap_or(0);
        let v = match version {
            None => vs.last(),
            Some(n) => vs.iter().find(|v| v.version == n),
        }
        .ok_or_else(|| {
            Error::UnknownMessage(format!(
                "version {} of policy document {} (it has versions 1 to {latest})",
                version.unwrap_or(0),
                pocnet_crypto::to_hex(&vs[0].document)
            ))
        })?;
        let leaf = log.leaf_hashes().get(v.index as usize).copied();
        let held = self.held_policies()?;
        let Some((_, h)) = held.iter().find(|(l, _)| Some(*l) == leaf) else {
            return Err(Error::Usage(format!(
                "this profile does not hold the file of {} version {}: it is sealed to the POCs listed when it was \
                 published; ask a POC of {} or its national authority for it, then check it with `pocnet policy verify`",
                pocnet_crypto::to_hex(&v.document),
                v.version,
                v.state
            )));
        };
        let path = self.profile.attachments().join(format!("{}.env", h.record.envelope));
        let mut input = std::io::BufReader::new(
            std::fs::File::open(&path)
                .ctx(|| "the policy document's envelope is no longer in the profile".to_string())?,
        );
        let mut out = HashWriter {
            hash: Sha256::new(),
            len: 0,
            inner: Vec::new(),
        };
        pocnet_crypto::open_stream(&self.identity, &mut input, &h.sender, &mut out)
            .map_err(|e| Error::BadEnvelope(format!("the kept policy document does not open: {e}")))?;
        let digest: [u8; 32] = out.hash.finalize().into();
        if digest != v.sha256 || out.len != v.size {
            return Err(Error::BadEnvelope(format!(
                "the file held for {} version {} does NOT match the log (SHA-256 {}, {} bytes; the log lists {}, {} \
                 bytes): not returned",
                pocnet_crypto::to_hex(&v.document),
                v.version,
                pocnet_crypto::to_hex(&digest),
                out.len,
                pocnet_crypto::to_hex(&v.sha256),
                v.size
            )));
        }
        Ok((view(v, v.version < latest, true), out.inner))
    }

    /// Writes a document's file into `dir` (created if needed) under a safe name, never
    /// overwriting: an existing name gets the document id and version in front.
    pub fn policy_save(&self, document_prefix: &str, version: Option<u32>, dir: &Path) -> Result<PathBuf> {
        let (v, bytes) = self.policy_file(document_prefix, version)?;
        std::fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
        let safe = crate::ops::attachments::safe_name(&v.file_name);
        let mut target = dir.join(&safe);
        if target.exists() {
            target = dir.join(format!("{}-v{}-{safe}", &v.document[..8], v.version));
        }
        let mut f = create_new_private(&target)?;
        use std::io::Write;
        f.write_all(&bytes)
            .and_then(|_| f.flush())
            .ctx(|| format!("cannot write {}", target.display()))?;
        Ok(target)
    }

    /// Which log entries list a file with this file's SHA-256 (streamed; local only).
    pub fn policy_verify(&self, file: &Path) -> Result<PolicyCheck> {
        let (sha, _) = hash_file(file)?;
        let log = self.log()?;
        let dir = log.directory();
        let held = self.held_policies()?;
        let listed = dir
            .policy_by_hash(&sha)
            .into_iter()
            .map(|v| {
                let latest = dir
                    .policy(&v.document)
                    .and_then(|vs| vs.last())
                    .map_or(0, |l| l.version);
                view(v, v.version < latest, is_held(v, log.leaf_hashes(), &held))
            })
            .collect();
        Ok(PolicyCheck {
            listed,
            sha256: pocnet_crypto::to_hex(&sha),
        })
    }

    /// States due under the annual-update rule at `now_ms`: (state, last publication or
    /// enrolment, Unix ms).
    pub fn policy_reminders(&self, now_ms: u64) -> Result<Vec<(String, u64)>> {
        Ok(self.log()?.directory().policy_stale_states(now_ms))
    }

    /// National authority: publishes `file` as a new document or a new version of one.
    /// Submits the signed statement to the Secretariat and sends the file sealed to every
    /// listed POC. The view's `log_index` is 0 until the Secretariat lists it.
    pub async fn policy_publish(&self, s: &Session, draft: &PolicyDraft, file: &Path) -> Result<PolicyView> {
        self.sync_directory(s).await?;
        let log = self.log()?;
        let dir = log.directory();
        let state = dir
            .authorities()
            .find(|a| &a.key == self.identity.public_key())
            .map(|a| a.state.clone())
            .ok_or_else(|| {
                Error::Usage(
                    "only a national authority publishes policy documents (your key is not one): ask your state's \
                     national authority"
                        .into(),
                )
            })?;
        let (document, version) = match &draft.document {
            None => {
                let mut d = [0u8; 16];
                pocnet_crypto::rand_core::Rng::fill_bytes(&mut pocnet_crypto::os_rng(), &mut d);
                (d, 1)
            }
            Some(prefix) => {
                let vs = find_document(dir, prefix)?;
                let last = vs.last().expect("a listed document has a version");
                if last.state != state {
                    return Err(Error::DirectoryRefused(format!(
                        "policy document {} is {}'s; you are {state}'s national authority",
                        pocnet_crypto::to_hex(&last.document),
                        last.state
                    )));
                }
                (last.document, last.version + 1)
            }
        };
        let file_name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Usage(format!("{} needs a file name in UTF-8", file.display())))?
            .to_string();
        let (sha256, size) = hash_file(file)?;
        let st = pocnet_core::directory::Author::new(&self.identity, log.anchor().origin.clone())
            .policy_publish(
                now_ms(),
                &state,
                document,
                version,
                draft.kind,
                &draft.date,
                &draft.language,
                draft.titles.clone(),
                &file_name,
                media_type_for(&file_name),
                size,
                sha256,
            )
            .map_err(|e| Error::DirectoryRefused(e.to_string()))?;
        // The rules the Secretariat and every client will apply, checked before anything leaves.
        let mut check = dir.clone();
        check
            .apply_statement(&st)
            .map_err(|e| Error::DirectoryRefused(e.refusal.to_string()))?;
        self.submit(s, &st).await?;
        let members: Vec<PublicIdentity> = dir.members().iter().map(|p| p.public.clone()).collect();
        for group in members.chunks(MAX_RECIPIENTS) {
            self.send_policy(s, group, &st, file, sha256, size).await?;
        }
        let v = check.policy(&document).and_then(|vs| vs.last()).expect("applied above");
        let mut out = view(v, false, false);
        out.log_index = 0;
        Ok(out)
    }

    /// One `Policy` envelope (and its attachment envelope) to `pubs`.
    async fn send_policy(
        &self,
        s: &Session,
        pubs: &[PublicIdentity],
        st: &Statement,
        file: &Path,
        sha256: [u8; 32],
        size: u64,
    ) -> Result<()> {
        let outgoing = Outgoing {
            subject: String::new(),
            text: String::new(),
            tlp: Tlp::Green,
            attachments: Vec::new(),
            incident_id: None,
        };
        let attachment = self.send_attachment(s, pubs, file, &outgoing).await?;
        // The file changed under us: recipients would refuse it.
        let (again, again_size) = hash_file(file)?;
        if again != sha256 || again_size != size || attachment.size != size {
            return Err(Error::Usage(format!(
                "{} changed while it was being sent: publish again once it is final",
                file.display()
            )));
        }
        let notice = PolicyNotice {
            statement: st.as_bytes().to_vec(),
            attachment,
        };
        let fields = HeaderFields {
            suite: Suite::XWing,
            content_type: ContentType::Policy,
            tlp: Tlp::Green,
            log_head: Some(self.log()?.head()),
            ..HeaderFields::message(now_ms())
        };
        let sealed = pocnet_crypto::seal(
            &mut pocnet_crypto::os_rng(),
            &self.identity,
            pubs,
            &fields,
            &notice.encode(),
        )?;
        self.accepted(s, &Request::Send { envelope: sealed.bytes }, &sealed.envelope_hash)
            .await
            .map(|_| ())
    }

    /// A `Policy` envelope, opened: accepted only from a national authority of the verified
    /// directory, with a statement it signed whose size and SHA-256 are the file's. The file
    /// is kept (as its envelope) even before the Secretariat lists the statement; it is
    /// listed once the verified log holds exactly that statement. No receipt is sent.
    pub(crate) async fn receive_policy(
        &self,
        s: &Session,
        sender: &IdentityKey,
        opened: &pocnet_crypto::Opened,
    ) -> Result<Option<StoredMessage>> {
        let reject = |e: &dyn std::fmt::Display| Error::BadEnvelope(format!("policy document: {e}"));
        let h = &opened.header;
        let id = MessageId(h.message_id);
        let is_authority = |d: &Directory| d.authorities().any(|a| &a.key == sender);
        let mut log = self.log()?;
        if !is_authority(log.directory()) {
            self.sync_directory(s).await?;
            log = self.log()?;
        }
        let dir = log.directory();
        let Some(authority) = dir.authorities().find(|a| &a.key == sender).cloned() else {
            return Err(reject(&format!(
                "the sender {} is not a national authority in the directory; only national authorities publish \
                 policy documents",
                sender.fingerprint().short()
            )));
        };
        let notice = PolicyNotice::decode(&opened.plaintext).map_err(|e| reject(&e))?;
        let st = Statement::parse(&notice.statement).map_err(|e| reject(&format!("the statement: {e}")))?;
        if st.author() != sender {
            return Err(reject(
                &"the statement is signed by another key than the envelope's sender",
            ));
        }
        if st.origin() != dir.origin() {
            return Err(reject(&"the statement is for another directory log"));
        }
        let Action::PolicyPublish {
            state,
            version,
            titles,
            size,
            sha256,
            ..
        } = st.action()
        else {
            return Err(reject(&format!(
                "the statement is a {}, not a PolicyPublish",
                st.action().kind()
            )));
        };
        if state != &authority.state {
            return Err(reject(&format!(
                "{}'s national authority sent a document of {state}",
                authority.state
            )));
        }
        if notice.attachment.size != *size {
            return Err(reject(&format!(
                "the file is {} bytes but the statement says {size}",
                notice.attachment.size
            )));
        }
        crate::ops::attachments::check_body_limits(&pocnet_wire::content::MessageBody {
            subject: String::new(),
            text: String::new(),
            attachments: vec![notice.attachment.clone()],
        })?;
        self.check_head(s, sender, h.log_head).await?;
        let envelope = match self.fetch_attachment(s, sender, &notice.attachment).await {
            Ok(e) => e,
            Err(Error::Relay { message, .. }) => {
                return Err(reject(&format!("the relay does not have the file: {message}")))
            }
            Err(e) => return Err(e),
        };
        let (digest, len) = self.kept_plaintext_hash(&envelope, sender).await?;
        if digest != *sha256 || len != *size {
            return Err(reject(
                &"the file's SHA-256 or size is not the one the signed statement names",
            ));
        }
        let record = PolicyFileRecord {
            statement: pocnet_crypto::to_hex(st.as_bytes()),
            envelope: envelope.clone(),
        };
        let now = now_ms();
        self.store.policy_file_save(sender, id, &record, now)?;
        let title = titles.first().map(|(_, t)| t.as_str()).unwrap_or_default();
        let listed = dir
            .policy_by_hash(sha256)
            .iter()
            .any(|v| log.leaf_hashes().get(v.index as usize) == Some(&pocnet_crypto::tlog::leaf_hash(st.as_bytes())));
        let subject = format!("Policy document from {state}: {title} (version {version})");
        let body = format!(
            "{state}'s national authority published version {version} of policy document {}.\n{}\nSee it with `pocnet policy show {}`.",
            match &st.action() {
                Action::PolicyPublish { document, .. } => pocnet_crypto::to_hex(document),
                _ => String::new(),
            },
            if listed {
                "The directory log lists it."
            } else {
                "The Secretariat has not listed it on the directory log yet: it is shown once listed."
            },
            match &st.action() {
                Action::PolicyPublish { document, .. } => pocnet_crypto::to_hex(&document[..4]),
                _ => String::new(),
            },
        );
        let peer = self.peer_in(dir, sender);
        let me = self.handle().unwrap_or("me").to_string();
        let new = self.store.insert_message(&NewMessage {
            id,
            direction: Direction::In,
            peer_key: sender,
            peer: &peer,
            recipients: std::slice::from_ref(&me),
            recipient_keys: &[*self.identity.public_key().as_bytes()],
            subject: &subject,
            body: &body,
            tlp: h.tlp,
            exercise: h.exercise,
            content_type: ContentType::Policy,
            created_at: h.created_at_ms,
            received_at: now,
            envelope_hash: EnvelopeHash(opened.envelope_hash),
            relay_stored_at: None,
            attachments: &[] as &[AttachmentRecord],
            incident: None,
        })?;
        if !new {
            return Ok(None);
        }
        // No receipt: the sender, a national authority, has no encryption key to be told with.
        self.store.find(&id.to_hex()).map(Some)
    }

    /// SHA-256 and length of the plaintext of a kept attachment envelope.
    async fn kept_plaintext_hash(&self, envelope: &str, sender: &IdentityKey) -> Result<([u8; 32], u64)> {
        let path = self.profile.attachments().join(format!("{envelope}.env"));
        let (secret, sender) = (self.identity.to_secret_bytes(), *sender);
        tokio::task::spawn_blocking(move || -> Result<([u8; 32], u64)> {
            let me = pocnet_crypto::Identity::from_secret_bytes(&secret)?;
            let mut input =
                std::io::BufReader::new(std::fs::File::open(&path).ctx(|| format!("cannot read {}", path.display()))?);
            let mut out = HashWriter {
                hash: Sha256::new(),
                len: 0,
                inner: std::io::sink(),
            };
            pocnet_crypto::open_stream(&me, &mut input, &sender, &mut out)
                .map_err(|e| Error::BadEnvelope(format!("policy document: {e}")))?;
            Ok((out.hash.finalize().into(), out.len))
        })
        .await
        .map_err(|e| Error::Protocol(format!("hashing task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_by_extension() {
        assert_eq!(media_type_for("a.PDF"), "application/pdf");
        assert!(media_type_for("ley.docx").contains("wordprocessingml"));
        assert_eq!(media_type_for("noext"), "application/octet-stream");
    }
}
