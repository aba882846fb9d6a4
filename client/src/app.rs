//! The facade: an unlocked profile with its store, and the operations the CLI (or a web
//! view) calls. The operations themselves live in [`crate::ops`], one module per
//! capability; this file only opens, connects and enrols.

use std::path::Path;

use pocnet_crypto::{Fingerprint, Identity};
use pocnet_wire::{Request, Response};

use crate::db::{Store, StoredMessage};
use crate::error::{Error, Result};
use crate::net::Session;
use crate::profile::Profile;
use crate::types::Direction;

pub use crate::ops::attachments::SavedAttachment;
pub use crate::ops::messaging::{Outgoing, Sent, SyncStats};
pub use crate::ops::status::{RecipientStatus, Status};

/// Where `enrol` left this key.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Enrolment {
    /// Listed in the verified directory under this handle.
    Listed {
        /// Our handle.
        handle: String,
    },
    /// Named as a witness by the directory: cosign checkpoints with `directory witness`.
    Witness {
        /// The witness name.
        name: String,
    },
    /// Offered to the Secretariat; not listed yet. Read the voice code to the Secretariat.
    Waiting {
        /// Our key's voice code.
        voice_code: String,
    },
}

/// An unlocked profile with its store.
pub struct Client {
    /// The profile directory and its settings.
    pub profile: Profile,
    /// The unlocked identity.
    pub identity: Identity,
    /// The local store (contents sealed under a key derived from `identity`).
    pub store: Store,
    /// The stored log as last verified, keyed by the checkpoint note it was verified
    /// against: re-verified from the first entry once per process, not once per call.
    pub(crate) verified_log: std::sync::Mutex<Option<(String, pocnet_core::directory::LogState)>>,
    /// One directory sync at a time: tasks sharing this client (the portal's pages and its
    /// watch, a drill's rounds beside its loop) would otherwise append the same new leaves
    /// twice.
    pub(crate) dir_sync: tokio::sync::Mutex<()>,
}

impl Client {
    /// Opens and unlocks the profile at `home`.
    pub fn open(home: &Path, passphrase: &[u8]) -> Result<Client> {
        let profile = Profile::open(home)?;
        let identity = profile.unlock(passphrase)?;
        let store = Store::open(&profile.db_path(), &identity)?;
        // The database, its WAL and shared-memory files were created with the umask's mode.
        crate::profile::tighten(&profile.dir)?;
        let c = Client {
            profile,
            identity,
            store,
            verified_log: std::sync::Mutex::new(None),
            dir_sync: tokio::sync::Mutex::new(()),
        };
        c.reseal_legacy_attachments()?;
        Ok(c)
    }

    /// Connects to the pinned relay.
    pub async fn connect(&self) -> Result<Session> {
        let relay = self.profile.relay()?;
        let s = Session::connect(&self.identity, &relay.address, self.profile.relay_fingerprint()?).await?;
        if s.member.as_ref().is_some_and(|m| m.revoked) {
            return Err(Error::Revoked);
        }
        Ok(s)
    }

    /// Enrols at a relay: pins its key and the directory's key, offers our public
    /// identity for the Secretariat if the directory does not list us yet, and once it
    /// does, verifies the whole log and finds our own entry. The Secretariat's first
    /// enrolment publishes the log's genesis (made by `secretariat genesis`).
    pub async fn enrol(&mut self, address: &str, fingerprint: &str, directory: Option<&str>) -> Result<Enrolment> {
        let pin = Fingerprint::parse(fingerprint)
            .map_err(|_| Error::Usage("--relay-key must be the relay's 64-hex-digit fingerprint".into()))?;
        if let Some(d) = directory {
            pocnet_crypto::note::NoteVerifier::parse_vkey(d.trim()).map_err(|e| {
                Error::Usage(format!(
                    "--directory must be the Secretariat's directory key (<origin>+<key id>+<key>): {e}"
                ))
            })?;
            if let Some(old) = &self.profile.config.directory {
                if old != d.trim() {
                    return Err(Error::Usage(
                        "this profile already trusts another directory key; use a new profile (--home) for another directory"
                            .into(),
                    ));
                }
            }
            self.profile.config.directory = Some(d.trim().to_string());
        }
        if self.profile.config.directory.is_none() {
            return Err(Error::Usage(
                "give --directory: the Secretariat's directory key, as the Secretariat gave it to you".into(),
            ));
        }
        let mut s = Session::connect(&self.identity, address, pin).await?;
        self.profile.config.relay = Some(crate::profile::RelayPin {
            address: address.to_string(),
            fingerprint: pin.to_hex(),
            key: Some(pocnet_crypto::to_hex(s.relay_key.as_bytes())),
        });
        self.profile.save()?;
        if s.member.is_none() && self.anchor()?.key == *self.identity.public_key() {
            // The Secretariat's genesis, made offline, goes to the relay first.
            self.publish_genesis(&s).await?;
            s.close().await;
            s = Session::connect(&self.identity, address, pin).await?;
        }
        if s.member.is_none() {
            match s
                .request(&Request::Register {
                    public_identity: self.identity.public().to_bytes(),
                })
                .await?
            {
                Response::Done => {}
                other => return Err(Error::Protocol(format!("unexpected answer to Register: {other:?}"))),
            }
            s.close().await;
            return Ok(Enrolment::Waiting {
                voice_code: self.identity.public_key().voice_code().to_string(),
            });
        }
        if s.member.as_ref().is_some_and(|m| m.revoked) {
            return Err(Error::Revoked);
        }
        if let Some(m) = s.member.as_ref().filter(|m| m.role == "witness") {
            // A witness checks checkpoints itself (`directory witness`); it is not a POC.
            let name = m.name.clone();
            s.close().await;
            return Ok(Enrolment::Witness { name });
        }
        self.sync_directory(&s).await?;
        let log = self.log()?;
        let handle = log
            .directory()
            .handle_of(self.identity.public_key())
            .map(|h| h.to_string())
            .ok_or_else(|| {
                Error::RelayLied("the relay admits this key but the verified directory does not list it".into())
            })?;
        self.profile.config.handle = Some(handle.clone());
        self.profile.save()?;
        s.close().await;
        Ok(Enrolment::Listed { handle })
    }

    /// Stored messages of one direction, newest first (no network).
    pub fn list(&self, direction: Direction) -> Result<Vec<StoredMessage>> {
        self.store.list(direction)
    }

    /// Our handle, once enrolled.
    pub fn handle(&self) -> Option<&str> {
        self.profile.config.handle.as_deref()
    }
}
