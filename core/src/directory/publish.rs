//! The Secretariat's side of the log: apply new statements to the verified directory and
//! sign the checkpoint over the new tree. The same code serves the CLI, the tests and
//! the benchmarks, so what they publish is what a real Secretariat publishes.

use pocnet_crypto::note::{sign_note, Checkpoint, NoteVerifier, SignedNote};
use pocnet_crypto::tlog::{self, Hash};
use pocnet_crypto::{Identity, IdentityKey};

use super::entry::{Author, Statement, WitnessKey};
use super::state::{Directory, DirectoryError};

/// A log being written by the Secretariat: every leaf so far, the directory they build,
/// and the leaves not yet published.
#[derive(Clone)]
pub struct Publisher {
    origin: String,
    dir: Directory,
    leaves: Vec<Vec<u8>>,
    hashes: Vec<Hash>,
    published: usize,
}

/// The C2SP verifier key clients and relays are given: `<origin>+<key id>+<key>`.
pub fn vkey(origin: &str, key: &IdentityKey) -> String {
    NoteVerifier {
        name: origin.to_string(),
        key: *key,
    }
    .vkey()
}

impl Publisher {
    /// A new log `origin` whose Genesis is signed by `secretariat` (not yet published).
    pub fn genesis(
        secretariat: &Identity,
        origin: &str,
        time_ms: u64,
        witnesses: Vec<WitnessKey>,
        quorum: u32,
    ) -> Result<Self, DirectoryError> {
        let mut p = Publisher {
            origin: origin.to_string(),
            dir: Directory::new(origin, *secretariat.public_key()),
            leaves: Vec::new(),
            hashes: Vec::new(),
            published: 0,
        };
        let g = Author::new(secretariat, origin)
            .genesis(time_ms, witnesses, quorum)
            .map_err(|e| DirectoryError {
                index: 0,
                refusal: e.into(),
            })?;
        p.push(&g)?;
        Ok(p)
    }

    /// Resumes from an existing log's leaves (all of them, already published), re-applying
    /// each one.
    pub fn resume(origin: &str, anchor: IdentityKey, leaves: Vec<Vec<u8>>) -> Result<Self, DirectoryError> {
        let mut dir = Directory::new(origin, anchor);
        let mut hashes = Vec::with_capacity(leaves.len());
        for leaf in &leaves {
            dir.apply(leaf)?;
            hashes.push(tlog::leaf_hash(leaf));
        }
        Ok(Publisher {
            origin: origin.to_string(),
            dir,
            published: leaves.len(),
            leaves,
            hashes,
        })
    }

    /// Appends a statement if the directory rules accept it; nothing changes otherwise.
    pub fn push(&mut self, st: &Statement) -> Result<(), DirectoryError> {
        self.dir.apply(st.as_bytes())?;
        self.leaves.push(st.as_bytes().to_vec());
        self.hashes.push(tlog::leaf_hash(st.as_bytes()));
        Ok(())
    }

    /// The directory with every pushed statement applied.
    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    /// The log origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every leaf.
    pub fn leaves(&self) -> &[Vec<u8>] {
        &self.leaves
    }

    /// Leaves pushed since the last [`Publisher::mark_published`], and the index of the first.
    pub fn unpublished(&self) -> (u64, &[Vec<u8>]) {
        (self.published as u64, &self.leaves[self.published..])
    }

    /// Records that everything pushed so far is in the relay's log.
    pub fn mark_published(&mut self) {
        self.published = self.leaves.len();
    }

    /// The checkpoint over every pushed leaf, signed by `secretariat` (which must be the
    /// Secretariat key in force after them).
    pub fn checkpoint(&self, secretariat: &Identity) -> SignedNote {
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size: self.hashes.len() as u64,
            root: tlog::root(&self.hashes),
        };
        let body = cp.body();
        let sig = sign_note(&body, &self.origin, secretariat);
        SignedNote {
            body,
            signatures: vec![sig],
        }
    }
}
