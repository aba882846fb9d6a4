//! Encryption-key rotation with bounded forward secrecy: a new key is published through
//! the directory; once the directory lists it and the inbox is drained, the older private
//! keys are deleted, so a later compromise of the key file opens nothing sent before.

use pocnet_crypto::KdfParams;

use crate::app::Client;
use crate::error::{Error, Result};
use crate::net::Session;
use crate::now_ms;

/// What `rotate` did.
#[derive(Clone, Debug, serde::Serialize)]
pub enum Rotation {
    /// A new key was made and offered to the Secretariat.
    Published {
        /// Its serial.
        serial: u32,
    },
    /// The new key is offered but not yet in the directory.
    Waiting,
    /// The directory lists the newest key; older private keys were deleted.
    Retired {
        /// How many.
        removed: usize,
    },
}

impl Client {
    /// Days since our newest encryption key became valid, if a rotation is due.
    pub fn rotation_due(&self) -> Option<u64> {
        let (not_before, _) = self.identity.public().encryption_record().window();
        let age = (now_ms() / 1000).saturating_sub(not_before);
        (age >= crate::ROTATE_AFTER_SECS || self.identity.encryption_key_count() > 1).then_some(age / 86_400)
    }

    fn save_identity(&self, passphrase: &[u8]) -> Result<()> {
        let file = self
            .identity
            .to_key_file(&mut pocnet_crypto::os_rng(), passphrase, KdfParams::DEFAULT)?;
        crate::profile::write_private(&self.profile.key_file(), &file)
    }

    /// One step of a rotation (see [`Rotation`]); `passphrase` re-encrypts the key file.
    pub async fn rotate(&mut self, s: &Session, passphrase: &[u8]) -> Result<Rotation> {
        self.sync_directory(s).await?;
        let log = self.log()?;
        let listed = log
            .directory()
            .by_key(self.identity.public_key())
            .map(|p| p.public.encryption_record().serial())
            .ok_or(Error::NotEnrolled)?;
        let newest = self.identity.public().encryption_record().serial();
        if newest > listed {
            self.publish_rotation(s).await.or_else(|e| match e {
                Error::Relay {
                    code: pocnet_wire::ErrorCode::Forbidden,
                    ..
                } => Ok(()),
                e => Err(e),
            })?;
            return Ok(Rotation::Waiting);
        }
        if self.identity.encryption_key_count() > 1 {
            // Everything sealed to the older keys that reached the relay is fetched first.
            self.sync(s, false, None, |_, _| {}).await?;
            let removed = self.identity.retire_superseded();
            self.save_identity(passphrase)?;
            return Ok(Rotation::Retired { removed });
        }
        self.identity.rotate_encryption_key(
            &mut pocnet_crypto::os_rng(),
            now_ms() / 1000,
            crate::ENCRYPTION_KEY_VALIDITY_SECS,
        )?;
        self.save_identity(passphrase)?;
        self.publish_rotation(s).await?;
        Ok(Rotation::Published {
            serial: self.identity.public().encryption_record().serial(),
        })
    }

    /// Re-verifies the whole log from the first entry as the relay serves it now, and
    /// checks it agrees with what we verified before. Returns the size.
    pub async fn audit(&self, s: &Session) -> Result<u64> {
        let before = self.local_log()?;
        let note_text = match s.request(&pocnet_wire::Request::LogCheckpoint).await? {
            pocnet_wire::Response::Checkpoint { note } => note,
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected answer to LogCheckpoint: {other:?}"
                )))
            }
        };
        let note = pocnet_crypto::note::SignedNote::parse(&note_text).map_err(|e| Error::RelayLied(e.to_string()))?;
        let cp = note.checkpoint().map_err(|e| Error::RelayLied(e.to_string()))?;
        let leaves = self.fetch_leaves(s, 0, cp.size).await?;
        let fresh = pocnet_core::directory::LogState::verify_all(&self.anchor()?, &leaves, &note)
            .map_err(|e| Error::RelayLied(format!("the log does not verify from its first entry: {e}")))?;
        if let Some(old) = before {
            let at = old.size().min(fresh.size());
            if fresh.root_at(at) != old.root_at(at) {
                return Err(self.fork(
                    "audit: the relay's log from the first entry contradicts the one we verified (rewritten history)",
                    &old.note().to_text(),
                    &note_text,
                ));
            }
        }
        self.store.log_save(0, &leaves, &note_text)?;
        Ok(fresh.size())
    }
}
