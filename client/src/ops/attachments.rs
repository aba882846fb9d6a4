//! Attachments: each is its own streamed envelope at the relay. Sent ones are sealed to a
//! scratch file and uploaded (resuming after a drop); received ones are downloaded,
//! verified in full, and kept in the profile *as their envelope* — ciphertext only the
//! identity opens. Plaintext is written only where the user asks (`read --save DIR`).

use std::path::{Path, PathBuf};

use pocnet_crypto::envelope::{MAX_BODY_LEN, MAX_HEADER_LEN, MAX_RECIPIENTS};
use pocnet_crypto::{ContentType, HeaderFields, Identity, IdentityKey, PublicIdentity, Suite};
use pocnet_wire::content::{AttachmentRef, MessageBody};
use serde::Serialize;

use crate::app::Client;
use crate::db::{AttachmentState, StoredMessage};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{create_new_private, create_private};
use crate::net::Session;
use crate::now_ms;
use crate::ops::messaging::Outgoing;
use crate::types::Direction;

/// Most attachments one message may name.
pub const MAX_ATTACHMENTS: usize = 64;
/// Longest attachment file name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Largest attachment size a message may declare (the protocol's body limit).
pub const MAX_ATTACHMENT_SIZE: u64 = MAX_BODY_LEN;

/// An attachment written out by [`Client::save_attachments`].
#[derive(Clone, Debug, Serialize)]
pub struct SavedAttachment {
    /// The name the sender gave (other-party text).
    pub name: String,
    /// Where it was written, or `None` if it is not available.
    pub path: Option<PathBuf>,
    /// Why not, if not.
    pub missing: Option<String>,
}

/// Checks the counts and sizes a sender chose before any of them is used.
pub fn check_body_limits(body: &MessageBody) -> Result<()> {
    if body.attachments.len() > MAX_ATTACHMENTS {
        return Err(Error::TooLarge {
            what: "the number of attachments",
            got: body.attachments.len() as u64,
            max: MAX_ATTACHMENTS as u64,
        });
    }
    for a in &body.attachments {
        if a.name.len() > MAX_NAME_BYTES {
            return Err(Error::TooLarge {
                what: "an attachment's name (bytes)",
                got: a.name.len() as u64,
                max: MAX_NAME_BYTES as u64,
            });
        }
        max_envelope_len(a.size)?;
    }
    Ok(())
}

/// The largest envelope an attachment of `size` plaintext bytes can be: the body the
/// message names plus the largest header, stanza block and signature. Checked arithmetic:
/// a declared size near `u64::MAX` is refused, not wrapped.
pub fn max_envelope_len(size: u64) -> Result<u64> {
    let too_large = || Error::TooLarge {
        what: "an attachment's declared size (bytes)",
        got: size,
        max: MAX_ATTACHMENT_SIZE,
    };
    if size > MAX_ATTACHMENT_SIZE {
        return Err(too_large());
    }
    let stanzas = (MAX_RECIPIENTS as u64).checked_mul(2 + Suite::XWing.stanza_len() as u64);
    [Some(9), Some(MAX_HEADER_LEN as u64), Some(2), stanzas, Some(64)]
        .into_iter()
        .try_fold(pocnet_crypto::stream::ciphertext_len(size), |acc, part| {
            acc.checked_add(part?)
        })
        .ok_or_else(too_large)
}

/// A file name another party chose, made safe to use inside a directory.
pub(crate) fn safe_name(name: &str) -> String {
    let base = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("attachment");
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_control() || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect();
    if cleaned.is_empty() || cleaned.starts_with('.') {
        format!("attachment{cleaned}")
    } else {
        cleaned
    }
}

fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    pocnet_crypto::rand_core::Rng::fill_bytes(&mut pocnet_crypto::os_rng(), &mut b);
    b
}

impl Client {
    fn kept_envelope(&self, envelope_hex: &str) -> PathBuf {
        self.profile.attachments().join(format!("{envelope_hex}.env"))
    }

    pub(crate) async fn send_attachment(
        &self,
        s: &Session,
        pubs: &[PublicIdentity],
        path: &Path,
        msg: &Outgoing,
    ) -> Result<AttachmentRef> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Usage(format!("attachment {} needs a file name", path.display())))?
            .to_string();
        let size = std::fs::metadata(path)
            .ctx(|| format!("cannot read attachment {}", path.display()))?
            .len();
        crate::profile::private_dir(&self.profile.tmp())?;
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
        let info = tokio::task::spawn_blocking(move || -> Result<pocnet_crypto::envelope::SealedInfo> {
            let me = Identity::from_secret_bytes(&secret)?;
            let mut input = std::io::BufReader::new(
                std::fs::File::open(&path2).ctx(|| format!("cannot read {}", path2.display()))?,
            );
            let mut out = std::io::BufWriter::new(create_private(&tmp2)?);
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
            out.flush().ctx(|| format!("cannot write {}", tmp2.display()))?;
            Ok(info)
        })
        .await
        .map_err(|e| Error::Protocol(format!("sealing task failed: {e}")))??;
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
    async fn upload(&self, s: &Session, message_id: [u8; 16], path: &Path) -> Result<()> {
        let mut last = match s.put_blob(message_id, path).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        for _ in 0..3 {
            tracing::warn!(
                "attachment upload interrupted ({}); reconnecting to resume",
                crate::render::line(&last.to_string())
            );
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
        Err(last)
    }

    /// Downloads one attachment envelope, verifies it in full and keeps it (still
    /// encrypted) in the profile. Failures of the attachment itself (altered, wrong size,
    /// withheld by the relay) are [`Error::BadEnvelope`] / [`Error::TooLarge`]; I/O errors
    /// are not.
    ///
    /// Kept envelopes are named by their envelope hash: a file of that name was verified
    /// to be exactly that envelope, so a message naming it again needs no second download.
    /// Returns the name to record ([`AttachmentState::Kept`]).
    pub(crate) async fn fetch_attachment(
        &self,
        s: &Session,
        sender: &IdentityKey,
        a: &AttachmentRef,
    ) -> Result<String> {
        let att = pocnet_crypto::to_hex(&a.message_id);
        let name = pocnet_crypto::to_hex(&a.envelope_hash);
        let reject = |e: &dyn std::fmt::Display| Error::BadEnvelope(format!("attachment {att}: {e}"));
        crate::profile::private_dir(&self.profile.tmp())?;
        crate::profile::private_dir(&self.profile.attachments())?;
        let kept = self.kept_envelope(&name);
        if kept.exists() {
            return Ok(name);
        }
        let env_path = self
            .profile
            .tmp()
            .join(format!("in-{att}-{}.env", pocnet_crypto::to_hex(&rand16()[..4])));
        // The envelope can be no larger than the body the message names plus the largest
        // header, stanza block and signature: a relay cannot fill the disk.
        let max = max_envelope_len(a.size)?;
        if let Err(e) = s.get_blob(a.message_id, &env_path, max).await {
            let _ = std::fs::remove_file(&env_path);
            return Err(e);
        }
        let (secret, sender2, env2) = (self.identity.to_secret_bytes(), *sender, env_path.clone());
        let opened = tokio::task::spawn_blocking(
            move || -> Result<std::result::Result<pocnet_crypto::Opened, pocnet_crypto::Error>> {
                let me = Identity::from_secret_bytes(&secret)?;
                let mut input = std::io::BufReader::new(
                    std::fs::File::open(&env2).ctx(|| format!("cannot read {}", env2.display()))?,
                );
                // Verify every chunk; the plaintext goes nowhere.
                Ok(pocnet_crypto::open_stream(
                    &me,
                    &mut input,
                    &sender2,
                    &mut std::io::sink(),
                ))
            },
        )
        .await
        .map_err(|e| Error::Protocol(format!("verification task failed: {e}")))??;
        let discard = || {
            let _ = std::fs::remove_file(&env_path);
        };
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                discard();
                return Err(reject(&format!("failed verification and was discarded: {e}")));
            }
        };
        if opened.envelope_hash != a.envelope_hash
            || opened.header.message_id != a.message_id
            || opened.header.body_len != a.size
            || opened.header.content_type != ContentType::Attachment
        {
            discard();
            return Err(reject(&"is not the one the message names; discarded"));
        }
        std::fs::rename(&env_path, &kept).ctx(|| format!("cannot keep {}", kept.display()))?;
        Ok(name)
    }

    /// Earlier releases saved received attachments decrypted under `attachments/<id>/`.
    /// Seals each such file to our own key (kept like a received envelope), records it,
    /// and deletes the plaintext. Runs only while that layout's directories remain.
    pub(crate) fn reseal_legacy_attachments(&self) -> Result<()> {
        let root = self.profile.attachments();
        let legacy_dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
                .collect(),
            Err(_) => return Ok(()),
        };
        if legacy_dirs.is_empty() {
            return Ok(());
        }
        crate::profile::private_dir(&self.profile.tmp())?;
        let mut resealed = Vec::new();
        for m in self.store.list(Direction::In)? {
            let mut atts = m.attachments.clone();
            let mut changed = false;
            for a in &mut atts {
                let AttachmentState::Legacy { text } = &a.state else {
                    continue;
                };
                // `<home>/attachments/<id>/<name>`, whatever spelling of <home> was used then.
                let text_path = Path::new(text);
                let (Some(name), Some(dir)) = (text_path.file_name(), text_path.parent().and_then(|p| p.file_name()))
                else {
                    continue;
                };
                let plain = root.join(dir).join(name);
                if !std::fs::symlink_metadata(&plain).is_ok_and(|m| m.is_file()) {
                    continue;
                }
                let size = std::fs::metadata(&plain)
                    .ctx(|| format!("cannot read {}", plain.display()))?
                    .len();
                let tmp = self
                    .profile
                    .tmp()
                    .join(format!("reseal-{}.env", pocnet_crypto::to_hex(&rand16())));
                let fields = HeaderFields {
                    content_type: ContentType::Attachment,
                    tlp: m.tlp,
                    ..HeaderFields::message(now_ms())
                };
                let mut input = std::io::BufReader::new(
                    std::fs::File::open(&plain).ctx(|| format!("cannot read {}", plain.display()))?,
                );
                let mut out = std::io::BufWriter::new(create_private(&tmp)?);
                let info = pocnet_crypto::seal_stream(
                    &mut pocnet_crypto::os_rng(),
                    &self.identity,
                    &[self.identity.public()],
                    &fields,
                    size,
                    &mut input,
                    &mut out,
                )?;
                use std::io::Write;
                out.flush().ctx(|| format!("cannot write {}", tmp.display()))?;
                out.get_ref()
                    .sync_all()
                    .ctx(|| format!("cannot write {}", tmp.display()))?;
                let envelope = pocnet_crypto::to_hex(&info.envelope_hash);
                let kept = self.kept_envelope(&envelope);
                std::fs::rename(&tmp, &kept).ctx(|| format!("cannot keep {}", kept.display()))?;
                a.size = size;
                a.state = AttachmentState::Resealed { envelope };
                resealed.push(plain);
                changed = true;
            }
            if changed {
                // Record first: a crash here leaves a plaintext file still named by the
                // record, to be resealed on the next open, never a record without its file.
                self.store.set_attachments(&m, &atts)?;
            }
        }
        for p in resealed {
            std::fs::remove_file(&p).ctx(|| format!("cannot remove {}", p.display()))?;
        }
        for d in legacy_dirs {
            // Partial downloads an interrupted earlier release left behind hold nothing
            // a record names.
            if let Ok(entries) = std::fs::read_dir(&d) {
                for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if name.starts_with('.') && name.ends_with(".part") {
                        let _ = std::fs::remove_file(&p);
                    }
                }
            }
            // Only once empty: a file no record names is the user's to remove.
            if std::fs::remove_dir(&d).is_err() {
                tracing::warn!(
                    "{} still holds files no message names; they were left in place",
                    d.display()
                );
            }
        }
        Ok(())
    }

    /// Writes the attachments of a received message, decrypted, into `dir` (created if
    /// needed). Never overwrites: an existing name gets the attachment id in front.
    pub fn save_attachments(&self, m: &StoredMessage, dir: &Path) -> Result<Vec<SavedAttachment>> {
        if m.direction != Direction::In {
            return Err(Error::Usage("only received messages have attachments to save".into()));
        }
        std::fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
        let sender = m.peer_key;
        let mut out = Vec::new();
        for a in &m.attachments {
            let (envelope, signer) = match &a.state {
                AttachmentState::Kept { envelope } => (envelope, sender),
                AttachmentState::Resealed { envelope } => (envelope, *self.identity.public_key()),
                AttachmentState::Missing { reason } => {
                    out.push(SavedAttachment {
                        name: a.name.clone(),
                        path: None,
                        missing: Some(reason.clone()),
                    });
                    continue;
                }
                AttachmentState::Legacy { text } => {
                    out.push(SavedAttachment {
                        name: a.name.clone(),
                        path: None,
                        missing: Some(format!("noted by an earlier version as {text}")),
                    });
                    continue;
                }
                AttachmentState::Sent { .. } => continue,
            };
            let safe = safe_name(&a.name);
            let mut target = dir.join(&safe);
            if target.exists() {
                target = dir.join(format!("{}-{safe}", envelope.get(..8).unwrap_or("x")));
            }
            let src = self.kept_envelope(envelope);
            let mut input = std::io::BufReader::new(
                std::fs::File::open(&src).ctx(|| format!("attachment {} is no longer in the profile", a.name))?,
            );
            let mut file = std::io::BufWriter::new(create_new_private(&target)?);
            let r = pocnet_crypto::open_stream(&self.identity, &mut input, &signer, &mut file);
            use std::io::Write;
            let flushed = file.flush();
            if let Err(e) = r {
                let _ = std::fs::remove_file(&target);
                return Err(Error::BadEnvelope(format!("attachment {}: {e}", a.name)));
            }
            flushed.ctx(|| format!("cannot write {}", target.display()))?;
            out.push(SavedAttachment {
                name: a.name.clone(),
                path: Some(target),
                missing: None,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(attachments: Vec<AttachmentRef>) -> MessageBody {
        MessageBody {
            subject: String::new(),
            text: String::new(),
            attachments,
        }
    }

    fn att(name: &str, size: u64) -> AttachmentRef {
        AttachmentRef {
            message_id: [1; 16],
            envelope_hash: [2; 32],
            name: name.into(),
            size,
        }
    }

    #[test]
    fn declared_sizes_that_would_overflow_are_refused_not_wrapped() {
        for size in [u64::MAX, u64::MAX - 100, MAX_ATTACHMENT_SIZE + 1] {
            assert!(
                matches!(max_envelope_len(size), Err(Error::TooLarge { got, .. }) if got == size),
                "{size}"
            );
            assert!(check_body_limits(&body(vec![att("a", size)])).is_err());
        }
        let ok = max_envelope_len(MAX_ATTACHMENT_SIZE).unwrap();
        assert!(ok > MAX_ATTACHMENT_SIZE);
        assert!(max_envelope_len(0).unwrap() > 0);
        assert!(check_body_limits(&body(vec![att("report.pdf", 100 << 20)])).is_ok());
    }

    #[test]
    fn too_many_attachments_or_too_long_names_are_refused() {
        let many = (0..=MAX_ATTACHMENTS).map(|_| att("a", 1)).collect();
        assert!(matches!(
            check_body_limits(&body(many)),
            Err(Error::TooLarge {
                what: "the number of attachments",
                ..
            })
        ));
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(matches!(
            check_body_limits(&body(vec![att(&long, 1)])),
            Err(Error::TooLarge { .. })
        ));
        assert!(check_body_limits(&body(vec![att(&"n".repeat(MAX_NAME_BYTES), 1)])).is_ok());
    }

    #[test]
    fn attachments_an_earlier_release_saved_in_plaintext_are_sealed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let pass = b"a passphrase for the test";
        let (profile, _) = crate::profile::Profile::create(&home, pass, pocnet_crypto::KdfParams::DEFAULT).unwrap();
        let sender = Identity::generate(&mut pocnet_crypto::os_rng(), 1_700_000_000, 86400).unwrap();
        let legacy = profile.attachments().join("0505050505050505");
        std::fs::create_dir_all(&legacy).unwrap();
        let marker = b"PLAINTEXT-MARKER-31337 ".repeat(5000);
        std::fs::write(legacy.join("report.pdf"), &marker).unwrap();
        std::fs::write(legacy.join(".abc.part"), b"PLAINTEXT-MARKER-31337").unwrap();
        // Recorded under another spelling of the same home, as a relative --home would.
        let recorded = Path::new("elsewhere/attachments/0505050505050505/report.pdf");
        crate::db::write_v0_for_test(
            &profile.db_path(),
            [5; 16],
            sender.public_key(),
            &[recorded.display().to_string(), "MISSING other.txt (withheld)".into()],
        );
        let c = Client::open(&home, pass).unwrap();
        assert!(!legacy.exists(), "the plaintext directory is gone");
        for f in walk(&home) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(22).any(|w| w == b"PLAINTEXT-MARKER-31337"),
                "{} holds plaintext",
                f.display()
            );
        }
        let m = c.store.find("05").unwrap();
        assert!(matches!(m.attachments[0].state, AttachmentState::Resealed { .. }));
        assert_eq!(m.attachments[0].size, marker.len() as u64);
        assert!(matches!(m.attachments[1].state, AttachmentState::Legacy { .. }));
        let out = dir.path().join("out");
        let saved = c.save_attachments(&m, &out).unwrap();
        assert_eq!(saved[0].path.as_deref(), Some(out.join("report.pdf").as_path()));
        assert_eq!(std::fs::read(out.join("report.pdf")).unwrap(), marker);
        assert!(saved[1].path.is_none());
        // A second open finds nothing left to do and changes nothing.
        drop(c);
        let c = Client::open(&home, pass).unwrap();
        assert_eq!(c.store.find("05").unwrap().attachments, m.attachments);
    }

    fn walk(d: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn names_from_a_sender_cannot_leave_the_directory_or_hide() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("a\u{1b}[2Jb"), "a_[2Jb");
        assert_eq!(safe_name(".bashrc"), "attachment.bashrc");
        assert_eq!(safe_name(".."), "attachment");
        assert_eq!(safe_name("report.pdf"), "report.pdf");
    }
}
