//! Contacts: resolved from the verified directory log, cross-checked against the relay's
//! answer, and held to the trust ladder (attested, voice-verified by me, changed). A
//! handle whose key is not the one this user knew blocks sending until the user compares
//! safety numbers and accepts the number they compared.

use pocnet_core::directory::{Directory, Poc};
use pocnet_crypto::{safety_number, IdentityKey, PublicIdentity};

use crate::app::Client;
use crate::error::{Error, Result};
use crate::net::Session;
use crate::now_ms;
use crate::ops::directory::{date, Trust};
use crate::types::Peer;

/// When and where the log gave `p` its current key, for the "changed" message.
fn since(p: &Poc) -> String {
    format!("{} (log entry {})", date(p.enrolled_ms), p.enrolled_index)
}

impl Client {
    /// Resolves an address (`CL.primary`, `CL` for every POC of a state, or a fingerprint
    /// prefix) to POCs from the verified directory, after syncing it; the relay's own
    /// answer must agree, and a changed key blocks.
    pub async fn resolve(&self, s: &Session, to: &str) -> Result<Vec<Poc>> {
        self.sync_directory(s).await?;
        let log = self.log()?;
        let mut found = Self::directory_lookup(log.directory(), to)?;
        let blocked = self.cross_check(s, to.trim(), &found).await?;
        if !blocked.is_empty() {
            // Listed by the directory, but this relay's operator blocks them: they cannot be
            // reached through it. A state's other POCs still can.
            let (gone, kept): (Vec<Poc>, Vec<Poc>) = found.into_iter().partition(|p| blocked.contains(&p.key));
            if kept.is_empty() {
                return Err(Error::BlockedAtRelay {
                    handles: gone.iter().map(|p| p.handle_text()).collect::<Vec<_>>().join(", "),
                });
            }
            for p in &gone {
                tracing::warn!(
                    "{} is blocked at this relay by its operator and will not get this message; phone them",
                    p.handle_text()
                );
            }
            found = kept;
        }
        for p in &found {
            if self.trust(log.directory(), p)? == Trust::Changed {
                let was = self
                    .store
                    .key_for_handle(&p.handle_text())?
                    .map(|k| k.fingerprint())
                    .unwrap_or_else(|| p.key.fingerprint());
                return Err(Error::ContactChanged {
                    handle: p.handle_text(),
                    since: Some(since(p)),
                    was,
                    now: p.key.fingerprint(),
                });
            }
        }
        for p in &found {
            self.store.remember(
                &p.key,
                &p.handle_text(),
                &p.contact.name,
                &p.public.to_bytes(),
                now_ms(),
            )?;
        }
        Ok(found)
    }

    /// For `verify`: the POC, its safety number with us, and the key we knew before if it
    /// differs. With `accept`, the number the user compared must be this one; then the
    /// key is marked voice-verified (and replaces the one known before).
    pub async fn verify_contact(
        &self,
        s: &Session,
        handle: &str,
        accept: Option<&str>,
    ) -> Result<(Poc, Option<IdentityKey>, Trust)> {
        self.sync_directory(s).await?;
        let log = self.log()?;
        let found = Self::directory_lookup(log.directory(), handle)?;
        let [p] = found.as_slice() else {
            return Err(Error::AmbiguousContact {
                query: handle.to_string(),
                count: found.len(),
            });
        };
        self.cross_check(s, handle.trim(), &found).await?;
        let previous = self.store.key_for_handle(&p.handle_text())?.filter(|k| *k != p.key);
        if let Some(number) = accept {
            let expected = safety_number(self.identity.public_key(), &p.key);
            let heard: String = number.chars().filter(|c| c.is_ascii_digit()).collect();
            if heard != expected.digits() {
                return Err(Error::DirectoryRefused(format!(
                    "the number you gave is not the safety number for {} and you; nothing was pinned. \
                     Compare again by phone: `pocnet verify {}` shows it",
                    p.handle_text(),
                    p.handle_text()
                )));
            }
            self.store.repin(
                &p.key,
                &p.handle_text(),
                &p.contact.name,
                &p.public.to_bytes(),
                now_ms(),
            )?;
        }
        let trust = self.trust(log.directory(), p)?;
        Ok((p.clone(), previous, trust))
    }

    /// How to show a key: its directory handle (and whether the key is still listed),
    /// never a name only the relay vouches for.
    pub(crate) fn peer_in(&self, dir: &Directory, key: &IdentityKey) -> Peer {
        if let Some(p) = dir.by_key(key) {
            return match self.trust(dir, p) {
                Ok(Trust::Changed) | Err(_) => Peer::Unverified {
                    fingerprint: key.fingerprint().short(),
                    claims: p.handle_text(),
                },
                Ok(_) => Peer::Known {
                    handle: p.handle_text(),
                },
            };
        }
        if let Some(h) = dir.handle_of(key) {
            return Peer::Known { handle: h.to_string() };
        }
        Peer::Unknown {
            fingerprint: key.fingerprint().short(),
        }
    }

    /// The public identities of `pocs`, for sealing.
    pub fn publics(pocs: &[Poc]) -> Vec<PublicIdentity> {
        pocs.iter().map(|p| p.public.clone()).collect()
    }
}
