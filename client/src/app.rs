//! The facade: an unlocked profile with its store, and the operations the CLI (or a web
//! view) calls. The operations themselves live in [`crate::ops`], one module per
//! capability; this file only opens, connects and enrols.

use std::path::Path;

use pocnet_crypto::{Fingerprint, Identity};
use pocnet_wire::{Member, Request, Response};

use crate::db::{Store, StoredMessage};
use crate::error::{Error, Result};
use crate::net::Session;
use crate::profile::Profile;
use crate::types::Direction;

pub use crate::ops::attachments::SavedAttachment;
pub use crate::ops::messaging::{Outgoing, Sent, SyncStats};
pub use crate::ops::status::{RecipientStatus, Status};

/// An unlocked profile with its store.
pub struct Client {
    /// The profile directory and its settings.
    pub profile: Profile,
    /// The unlocked identity.
    pub identity: Identity,
    /// The local store (contents sealed under a key derived from `identity`).
    pub store: Store,
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

    /// Enrols at a relay with an invite; pins the relay's key.
    pub async fn enrol(&mut self, address: &str, fingerprint: &str, invite: &str) -> Result<Member> {
        let pin = Fingerprint::parse(fingerprint)
            .map_err(|_| Error::Usage("--relay-key must be the relay's 64-hex-digit fingerprint".into()))?;
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
                other => return Err(Error::Protocol(format!("unexpected answer to Enrol: {other:?}"))),
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

    /// Stored messages of one direction, newest first (no network).
    pub fn list(&self, direction: Direction) -> Result<Vec<StoredMessage>> {
        self.store.list(direction)
    }

    /// Our handle, once enrolled.
    pub fn handle(&self) -> Option<&str> {
        self.profile.config.handle.as_deref()
    }
}
