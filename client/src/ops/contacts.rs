//! Contacts: look POCs up at the relay, pin the first key seen per handle (trust on first
//! use), refuse a changed key until a person accepts it, and show senders by pinned handle.

use pocnet_crypto::{IdentityKey, PublicIdentity};
use pocnet_wire::{Member, Request, Response};

use crate::app::Client;
use crate::error::{Error, Result};
use crate::net::Session;
use crate::now_ms;
use crate::types::Peer;

impl Client {
    /// Looks members up at the relay, without the pin check (for `verify`).
    pub async fn lookup(&self, s: &Session, query: &str) -> Result<Vec<(Member, PublicIdentity)>> {
        let members = match s
            .request(&Request::Lookup {
                query: query.to_string(),
            })
            .await?
        {
            Response::Directory { members } => members,
            other => return Err(Error::Protocol(format!("unexpected answer to Lookup: {other:?}"))),
        };
        if members.is_empty() {
            return Err(Error::UnknownContact {
                query: query.to_string(),
            });
        }
        members
            .into_iter()
            .map(|m| {
                let pi = PublicIdentity::from_bytes(&m.public_identity).map_err(|e| {
                    Error::BadEnvelope(format!("the relay's record for {} does not verify: {e}", m.handle))
                })?;
                Ok((m, pi))
            })
            .collect()
    }

    /// The key pinned for `handle`, if it is not `key`.
    pub(crate) fn pinned_other(&self, handle: &str, key: &IdentityKey) -> Result<Option<IdentityKey>> {
        Ok(self.store.key_for_handle(handle)?.filter(|k| k != key))
    }

    /// Resolves an address (`CL.primary`, `CL` for every POC of a state, or a fingerprint
    /// prefix) to members, checking each key against the one pinned for that handle.
    pub async fn resolve(&self, s: &Session, to: &str) -> Result<Vec<(Member, PublicIdentity)>> {
        let found = self.lookup(s, to).await?;
        for (m, pi) in &found {
            if let Some(old) = self.pinned_other(&m.handle, pi.key())? {
                return Err(Error::ContactChanged {
                    handle: m.handle.clone(),
                    was: old.fingerprint(),
                    now: pi.fingerprint(),
                });
            }
        }
        for (m, pi) in &found {
            self.store
                .remember(pi.key(), &m.handle, &m.name, &m.public_identity, now_ms())?;
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
    ) -> Result<(Member, PublicIdentity, Option<IdentityKey>)> {
        let found = self.lookup(s, handle).await?;
        let [(m, pi)] = found.as_slice() else {
            return Err(Error::AmbiguousContact {
                query: handle.to_string(),
                count: found.len(),
            });
        };
        let previous = self.pinned_other(&m.handle, pi.key())?;
        if accept {
            self.store
                .repin(pi.key(), &m.handle, &m.name, &m.public_identity, now_ms())?;
        }
        Ok((m.clone(), pi.clone(), previous))
    }

    /// How to show a key: its pinned handle, or a warning when the directory's handle for
    /// it is pinned to another key (never silently re-pinned).
    pub(crate) async fn peer_of(&self, s: &Session, key: &IdentityKey) -> Peer {
        let unverified = |claims: String| Peer::Unverified {
            fingerprint: key.fingerprint().short(),
            claims,
        };
        if let Ok(Some(c)) = self.store.contact(key) {
            return match self.pinned_other(&c.handle, key) {
                Ok(None) => Peer::Known { handle: c.handle },
                _ => unverified(c.handle),
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
                        return unverified(m.handle);
                    }
                    if let Err(e) = self
                        .store
                        .remember(key, &m.handle, &m.name, &m.public_identity, now_ms())
                    {
                        tracing::warn!(
                            "contact {} not remembered: {}",
                            crate::render::line(&m.handle),
                            crate::render::line(&e.to_string())
                        );
                    }
                    return Peer::Known { handle: m.handle };
                }
            }
        }
        Peer::Unknown {
            fingerprint: key.fingerprint().short(),
        }
    }
}
