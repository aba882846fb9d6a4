//! Test helpers: a deterministic RNG, identities by label, and a small directory world.
#![allow(dead_code)]

use std::convert::Infallible;

use pocnet_core::directory::{Applied, Author, Category, Contact, Directory, DirectoryError, Rank, Statement};
use pocnet_crypto::rand_core::{TryCryptoRng, TryRng};
use pocnet_crypto::Identity;
use sha2::{Digest, Sha256};

/// NOT random: reproducible bytes from a label (SHA-256 in counter mode), for tests only.
pub struct SeededRng {
    seed: [u8; 32],
    counter: u64,
    buf: Vec<u8>,
}

impl SeededRng {
    pub fn new(label: &str) -> Self {
        SeededRng {
            seed: Sha256::digest(label.as_bytes()).into(),
            counter: 0,
            buf: Vec::new(),
        }
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for d in dst.iter_mut() {
            if self.buf.is_empty() {
                let mut h = Sha256::new();
                h.update(self.seed);
                h.update(self.counter.to_be_bytes());
                self.counter += 1;
                self.buf = h.finalize().to_vec();
                self.buf.reverse();
            }
            *d = self.buf.pop().expect("refilled above");
        }
        Ok(())
    }
}
impl TryCryptoRng for SeededRng {}

/// Unix seconds and milliseconds the tests start at (2026-09-21).
pub const NOW: u64 = 1_790_000_000;
pub const T0: u64 = NOW * 1000;
pub const YEAR: u64 = 365 * 24 * 3600;
pub const DAY_MS: u64 = 24 * 3600 * 1000;
pub const ORIGIN: &str = "oas.example/pocnet-directory";

/// A reproducible identity: the label fixes every key.
pub fn identity(label: &str) -> Identity {
    Identity::generate(&mut SeededRng::new(label), NOW, YEAR).expect("identity")
}

pub fn contact(name: &str) -> Contact {
    Contact {
        name: name.into(),
        position: "Head of cyber policy".into(),
        institution: "Ministry of Foreign Affairs".into(),
        email: format!("{}@example.org", name.to_lowercase().replace(' ', ".")),
        phones: vec!["+56 2 2827 4200".into()],
        languages: vec!["es".into(), "en".into()],
        time_zone: "America/Santiago".into(),
        working_hours: "Mon-Fri 09:00-18:00".into(),
    }
}

/// A log with Genesis (no witnesses) and the CL and MX national authorities enrolled.
pub struct World {
    pub sec: Identity,
    pub cl: Identity,
    pub mx: Identity,
    pub dir: Directory,
    pub leaves: Vec<Vec<u8>>,
    pub t: u64,
}

impl World {
    pub fn new() -> Self {
        Self::with_secretariat(identity("secretariat"))
    }

    pub fn with_secretariat(sec: Identity) -> Self {
        Self::build(sec, vec![], 0)
    }

    /// Genesis with this witness policy.
    pub fn with_witnesses(witnesses: Vec<pocnet_core::directory::WitnessKey>, quorum: u32) -> Self {
        Self::build(identity("secretariat"), witnesses, quorum)
    }

    fn build(sec: Identity, witnesses: Vec<pocnet_core::directory::WitnessKey>, quorum: u32) -> Self {
        let mut w = World {
            dir: Directory::new(ORIGIN, *sec.public_key()),
            sec,
            cl: identity("authority CL"),
            mx: identity("authority MX"),
            leaves: Vec::new(),
            t: T0,
        };
        let g = Author::new(&w.sec, ORIGIN).genesis(w.t, witnesses, quorum).unwrap();
        w.push(g).unwrap();
        let t = w.tick();
        let cl = Author::new(&w.sec, ORIGIN)
            .authority_enrol(t, "CL", w.cl.public_key(), "Dirección de Seguridad Digital", "MINREL")
            .unwrap();
        w.push(cl).unwrap();
        let t = w.tick();
        let mx = Author::new(&w.sec, ORIGIN)
            .authority_enrol(t, "MX", w.mx.public_key(), "Coordinación de Ciberseguridad", "SRE")
            .unwrap();
        w.push(mx).unwrap();
        w
    }

    pub fn tick(&mut self) -> u64 {
        self.t += 1000;
        self.t
    }

    pub fn sec(&self) -> Author<'_> {
        Author::new(&self.sec, ORIGIN)
    }

    pub fn authority(&self, state: &str) -> &Identity {
        match state {
            "CL" => &self.cl,
            "MX" => &self.mx,
            _ => panic!("no test authority for {state}"),
        }
    }

    /// Applies a statement; on success records its leaf.
    pub fn push(&mut self, st: Statement) -> Result<Applied, DirectoryError> {
        self.push_bytes(st.into_bytes())
    }

    pub fn push_bytes(&mut self, leaf: Vec<u8>) -> Result<Applied, DirectoryError> {
        let a = self.dir.apply(&leaf)?;
        self.leaves.push(leaf);
        Ok(a)
    }

    /// A nomination of `poc` signed by `by` at the next tick.
    pub fn nomination(
        &mut self,
        by: &Identity,
        state: &str,
        category: Category,
        rank: Rank,
        poc: &Identity,
    ) -> Statement {
        let t = self.tick();
        nominate_at(by, t, state, category, rank, poc)
    }

    pub fn approve(&mut self, nomination: &Statement, poc: &Identity) -> Result<Applied, DirectoryError> {
        let t = self.tick();
        let st = self.sec().approve(t, nomination, &poc.public(), t - 10).unwrap();
        self.push(st)
    }

    /// The state's authority nominates `poc` and the Secretariat approves.
    pub fn enrol(&mut self, poc: &Identity, state: &str, category: Category, rank: Rank) -> Applied {
        let t = self.tick();
        let n = nominate_at(self.authority(state), t, state, category, rank, poc);
        self.approve(&n, poc).expect("enrolment")
    }
}

pub fn nominate_at(by: &Identity, t: u64, state: &str, category: Category, rank: Rank, poc: &Identity) -> Statement {
    Author::new(by, ORIGIN)
        .nominate(t, state, category, rank, contact("Ana Pérez"), &poc.public())
        .unwrap()
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// The RFC 9162 root over these leaves.
pub fn root_of(leaves: &[Vec<u8>]) -> pocnet_crypto::tlog::Hash {
    let h: Vec<_> = leaves.iter().map(|l| pocnet_crypto::tlog::leaf_hash(l)).collect();
    pocnet_crypto::tlog::root(&h)
}

/// A checkpoint over `leaves` signed by `signer` as the log's key (name = origin).
pub fn checkpoint(signer: &Identity, origin: &str, leaves: &[Vec<u8>]) -> pocnet_crypto::note::SignedNote {
    let cp = pocnet_crypto::note::Checkpoint {
        origin: origin.into(),
        size: leaves.len() as u64,
        root: root_of(leaves),
    };
    let body = cp.body();
    let sig = pocnet_crypto::note::sign_note(&body, origin, signer);
    pocnet_crypto::note::SignedNote {
        body,
        signatures: vec![sig],
    }
}

/// Adds a witness cosignature to `note`.
pub fn cosigned(
    mut note: pocnet_crypto::note::SignedNote,
    name: &str,
    witness: &Identity,
) -> pocnet_crypto::note::SignedNote {
    let sig = pocnet_crypto::note::cosign(&note.body, name, witness, NOW);
    note.signatures.push(sig);
    note
}

/// The anchor for `World`'s log.
pub fn anchor(sec: &Identity) -> pocnet_core::directory::Anchor {
    pocnet_core::directory::Anchor {
        origin: ORIGIN.into(),
        key: *sec.public_key(),
    }
}

/// Consistency proof from `old` leaves to all of `leaves`.
pub fn proof(leaves: &[Vec<u8>], old: u64) -> Vec<pocnet_crypto::tlog::Hash> {
    let h: Vec<_> = leaves.iter().map(|l| pocnet_crypto::tlog::leaf_hash(l)).collect();
    pocnet_crypto::tlog::consistency_proof(&h, old).unwrap()
}
