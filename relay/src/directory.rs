//! The relay's view of the directory log.
//!
//! The relay stores and serves the Secretariat's log; it cannot sign a checkpoint. It
//! checks everything it stores as a client would — every new leaf against the directory
//! rules, the new root against the checkpoint, the checkpoint against the Secretariat key
//! in force — and derives its admission list (who may connect) from the result. A leaf it
//! would refuse is never stored, so a client re-verifying the log never meets one here.
//!
//! Witness cosignatures arrive after a checkpoint is published, so the relay stores a
//! checkpoint without them; clients decide whether enough witnesses have cosigned.

// A refusal is the answer to send (see service.rs): returned by value on purpose.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use pocnet_core::directory::entry::Action;
use pocnet_core::directory::{Directory, Statement};
use pocnet_crypto::note::{NoteVerifier, SignedNote, Witness};
use pocnet_crypto::tlog::{self, Hash};
use pocnet_crypto::IdentityKey;
use pocnet_wire::{ErrorCode, Key, Member, Response};

use crate::service::err;
use crate::store::{Listed, LogAppend, Store, StoreError};

/// How far ahead of the relay's clock a new entry may be dated.
pub const MAX_CLOCK_AHEAD_MS: u64 = 10 * 60 * 1000;

/// Leaves read per store call while loading.
const LOAD_PAGE: u32 = 4096;

/// The verified log the relay serves.
pub struct RelayLog {
    anchor: Option<NoteVerifier>,
    view: Mutex<Option<View>>,
    /// One append at a time (a second relay on a shared store is stopped by the store's
    /// size check instead).
    append: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct View {
    dir: Directory,
    leaves: Vec<Hash>,
}

/// Appends a relay's cosignature lines to a checkpoint note.
pub fn with_cosignatures(note: &str, cosignatures: &[String]) -> String {
    let mut out = note.to_string();
    for line in cosignatures {
        out.push_str(line.trim_end_matches('\n'));
        out.push('\n');
    }
    out
}

/// Everyone the directory lists, as the relay admits them: POCs, national authorities,
/// witnesses, the Secretariat.
fn listed(dir: &Directory) -> BTreeMap<Key, Member> {
    let mut out = BTreeMap::new();
    for p in dir.members() {
        let (_, rank) = p.category_rank();
        out.insert(
            *p.key.as_bytes(),
            Member {
                handle: p.handle_text(),
                state: p.state().to_string(),
                role: p
                    .handle_text()
                    .split_once('.')
                    .map(|(_, r)| r.to_string())
                    .unwrap_or_else(|| rank.to_string()),
                name: p.contact.name.clone(),
                public_identity: p.public.to_bytes(),
                revoked: false,
            },
        );
    }
    for a in dir.authorities() {
        out.insert(
            *a.key.as_bytes(),
            Member {
                handle: format!("{}.authority", a.state),
                state: a.state.clone(),
                role: "authority".into(),
                name: a.name.clone(),
                public_identity: Vec::new(),
                revoked: false,
            },
        );
    }
    // Witnesses connect to fetch the log and cosign its checkpoints.
    for (name, key) in &dir.witness_policy().witnesses {
        out.entry(*key.as_bytes()).or_insert_with(|| Member {
            handle: format!("witness:{name}"),
            state: String::new(),
            role: "witness".into(),
            name: name.clone(),
            public_identity: Vec::new(),
            revoked: false,
        });
    }
    out.insert(
        *dir.secretariat().as_bytes(),
        Member {
            handle: "secretariat".into(),
            state: String::new(),
            role: "secretariat".into(),
            name: "Secretariat".into(),
            public_identity: Vec::new(),
            revoked: false,
        },
    );
    out
}

/// The admission changes from `before` to `after`.
fn changes(before: &BTreeMap<Key, Member>, after: &BTreeMap<Key, Member>) -> Vec<(Key, Option<Listed>)> {
    let mut out = Vec::new();
    for (k, m) in after {
        if before.get(k) != Some(m) {
            out.push((
                *k,
                Some(Listed {
                    key: *k,
                    member: m.clone(),
                }),
            ));
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            out.push((*k, None));
        }
    }
    out
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(b).into()
}

impl RelayLog {
    /// A log anchored at the Secretariat verifier key `vkey` (empty or invalid: no
    /// directory; nothing is stored or admitted).
    pub fn new(vkey: &str) -> Self {
        let anchor = if vkey.trim().is_empty() {
            None
        } else {
            match NoteVerifier::parse_vkey(vkey.trim()) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::error!("relay.toml `directory` is not a verifier key ({e}); serving no directory");
                    None
                }
            }
        };
        RelayLog {
            anchor,
            view: Mutex::new(None),
            append: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads every stored leaf and re-verifies the log, then makes the admission list
    /// match it.
    pub async fn load<S: Store>(&self, store: &S) -> anyhow::Result<()> {
        let Some(anchor) = &self.anchor else {
            tracing::warn!("no directory configured (relay.toml `directory`): no key will be admitted");
            return Ok(());
        };
        let Some(cp) = store.log_checkpoint().await? else {
            return Ok(());
        };
        let mut dir = Directory::new(anchor.name.clone(), anchor.key);
        let mut leaves = Vec::new();
        loop {
            let page = store.log_leaves(leaves.len() as u64, LOAD_PAGE, usize::MAX).await?;
            if page.is_empty() {
                break;
            }
            for leaf in &page {
                dir.apply(leaf)
                    .map_err(|e| anyhow::anyhow!("the stored directory log does not verify: {e}"))?;
                leaves.push(tlog::leaf_hash(leaf));
            }
        }
        let note = SignedNote::parse(&cp.note).map_err(|e| anyhow::anyhow!("the stored checkpoint: {e}"))?;
        check_checkpoint(&dir, &note, &leaves).map_err(|e| anyhow::anyhow!("the stored checkpoint: {e}"))?;
        let members = listed(&dir);
        // The admission list is written in the same commit as each append, so it matches
        // unless the database was changed by hand: bring it back in line with the log.
        let stored = store.members().await?;
        let mut fix: Vec<(Key, Option<Listed>)> = Vec::new();
        for r in &stored {
            if !r.member.revoked && !members.contains_key(&r.key) {
                fix.push((r.key, None));
            }
        }
        for (k, m) in &members {
            let same = stored.iter().any(|r| {
                r.key == *k
                    && Member {
                        revoked: false,
                        ..r.member.clone()
                    } == *m
            });
            if !same {
                fix.push((
                    *k,
                    Some(Listed {
                        key: *k,
                        member: m.clone(),
                    }),
                ));
            }
        }
        if !fix.is_empty() {
            tracing::warn!(
                "the admission list differed from the directory log in {} keys; it now follows the log",
                fix.len()
            );
            store
                .log_append(LogAppend {
                    first: leaves.len() as u64,
                    leaves: Vec::new(),
                    checkpoint: cp.note.clone(),
                    members: fix,
                    published: Vec::new(),
                    now_ms: dir.last_time_ms(),
                })
                .await?;
        }
        tracing::info!(
            "directory log verified: {} entries, {} members",
            leaves.len(),
            members.len()
        );
        *self.view.lock().expect("log view") = Some(View { dir, leaves });
        Ok(())
    }

    /// Whether `key` is the anchor (the Secretariat key the log must begin with).
    pub fn is_anchor(&self, key: &IdentityKey) -> bool {
        self.anchor.as_ref().is_some_and(|a| &a.key == key)
    }

    /// Whether `key` is the Secretariat key in force.
    pub fn is_secretariat(&self, key: &IdentityKey) -> bool {
        match &*self.view.lock().expect("log view") {
            Some(v) => v.dir.secretariat() == key,
            None => self.is_anchor(key),
        }
    }

    /// The state the verified log lists POC `key` for (`None`: no POC listed by that key —
    /// an authority, a witness, the Secretariat, or nobody). What the relay checks each key
    /// of an alert plan against.
    pub fn poc_state(&self, key: &Key) -> Option<String> {
        let key = IdentityKey::from_bytes(key).ok()?;
        let view = self.view.lock().expect("log view");
        view.as_ref()?.dir.by_key(&key).map(|p| p.state().to_string())
    }

    /// The RFC 9162 consistency proof from `old` to `new` leaves.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<[u8; 32]>, String> {
        let view = self.view.lock().expect("log view");
        let leaves = view.as_ref().map(|v| &v.leaves[..]).unwrap_or(&[]);
        if old > new || new > leaves.len() as u64 {
            return Err(format!(
                "no proof from {old} to {new} entries: the log holds {}",
                leaves.len()
            ));
        }
        tlog::consistency_proof(&leaves[..new as usize], old).map_err(|e| e.to_string())
    }

    /// Checks and stores an append: the leaves follow the rules, the checkpoint covers
    /// exactly the new tree and is signed by the Secretariat key in force after them.
    pub async fn append<S: Store>(
        &self,
        store: &S,
        peer: &IdentityKey,
        new_leaves: Vec<Vec<u8>>,
        checkpoint: String,
        now_ms: u64,
    ) -> Response {
        let Some(anchor) = &self.anchor else {
            return err(ErrorCode::Forbidden, "this relay serves no directory");
        };
        if new_leaves.is_empty() {
            return err(ErrorCode::Malformed, "an append needs at least one entry");
        }
        let note = match SignedNote::parse(&checkpoint) {
            Ok(n) => n,
            Err(e) => return err(ErrorCode::BadDirectory, format!("checkpoint: {e}")),
        };
        let cp = match note.checkpoint() {
            Ok(cp) => cp,
            Err(e) => return err(ErrorCode::BadDirectory, format!("checkpoint: {e}")),
        };
        let _one = self.append.lock().await;
        let current = self.view.lock().expect("log view").clone();
        let first_ever = current.is_none();
        let mut view = current.unwrap_or_else(|| View {
            dir: Directory::new(anchor.name.clone(), anchor.key),
            leaves: Vec::new(),
        });
        if first_ever && !self.is_anchor(peer) {
            return err(ErrorCode::Forbidden, "only the Secretariat's key may begin the log");
        }
        let first = view.leaves.len() as u64;
        // The append names the size it extends only through its checkpoint: one prepared
        // against an older log is told so before its leaves are read as the next ones.
        match cp.size.checked_sub(new_leaves.len() as u64) {
            Some(base) if base == first => {}
            Some(base) if base < first => {
                return err(
                    ErrorCode::LogMoved,
                    format!(
                        "this append was prepared for a log of {base} entries; it holds {first} now: \
                         fetch them and prepare the append again"
                    ),
                )
            }
            _ => {
                return err(
                    ErrorCode::BadDirectory,
                    format!(
                        "the checkpoint covers {} entries, but the log holds {first} and the append adds {}",
                        cp.size,
                        new_leaves.len()
                    ),
                )
            }
        }
        let before = if first_ever { BTreeMap::new() } else { listed(&view.dir) };
        let mut published = Vec::new();
        for (i, leaf) in new_leaves.iter().enumerate() {
            if let Err(e) = view.dir.apply(leaf) {
                return err(ErrorCode::BadDirectory, e.to_string());
            }
            // A statement from the future would hold its signer's later ones back until then.
            if let Ok(st) = Statement::parse(leaf) {
                if st.time_ms() > now_ms.saturating_add(MAX_CLOCK_AHEAD_MS) {
                    return err(
                        ErrorCode::BadDirectory,
                        format!(
                            "new entry {i} is dated {} s ahead of the relay's clock; check the signer's clock",
                            (st.time_ms() - now_ms) / 1000
                        ),
                    );
                }
            }
            view.leaves.push(tlog::leaf_hash(leaf));
            published.push(sha256(leaf));
            if let Ok(st) = Statement::parse(leaf) {
                if let Action::Approve { nomination, .. } = st.action() {
                    published.push(sha256(nomination));
                }
            }
        }
        if let Err(e) = check_checkpoint(&view.dir, &note, &view.leaves) {
            return err(ErrorCode::BadDirectory, e);
        }
        let after = listed(&view.dir);
        let append = LogAppend {
            first,
            leaves: new_leaves,
            checkpoint: note.to_text(),
            members: changes(&before, &after),
            published,
            now_ms,
        };
        match store.log_append(append).await {
            Ok(()) => {
                *self.view.lock().expect("log view") = Some(view);
                Response::Done
            }
            Err(e @ StoreError::Conflict(_)) => err(ErrorCode::LogMoved, e.to_string()),
            Err(e) => crate::service::store_err(e),
        }
    }

    /// Checks a cosignature line for the checkpoint of `size`: it must be the latest, and
    /// the line one valid cosignature by a witness of the policy in force. Returns the
    /// witness key and the line as stored (canonical, without its newline), or the refusal.
    pub fn check_cosignature(&self, size: u64, line: &str) -> Result<(Key, String), Response> {
        let view = self.view.lock().expect("log view");
        let Some(v) = view.as_ref() else {
            return Err(err(ErrorCode::NotFound, "the log has not begun"));
        };
        let have = v.leaves.len() as u64;
        if size < have {
            return Err(err(
                ErrorCode::LogMoved,
                format!("the latest checkpoint covers {have} entries, not {size}: verify and cosign that one"),
            ));
        }
        if size != have {
            return Err(err(
                ErrorCode::BadDirectory,
                format!("the latest checkpoint covers {have} entries, not {size}"),
            ));
        }
        let line = line.strip_suffix('\n').unwrap_or(line);
        if line.contains('\n') {
            return Err(err(ErrorCode::BadDirectory, "send one cosignature line"));
        }
        let cp = pocnet_crypto::note::Checkpoint {
            origin: v.dir.origin().to_string(),
            size,
            root: tlog::root(&v.leaves),
        };
        let text = format!("{}\n{line}\n", cp.body());
        let note =
            SignedNote::parse(&text).map_err(|e| err(ErrorCode::BadDirectory, format!("cosignature line: {e}")))?;
        let policy = v.dir.witness_policy();
        for (name, key) in &policy.witnesses {
            let w = Witness {
                name: name.clone(),
                key: *key,
            };
            if w.verify_in(&note).is_ok() {
                let canonical = note.signatures[0].line();
                return Ok((*key.as_bytes(), canonical.trim_end_matches('\n').to_string()));
            }
        }
        Err(err(
            ErrorCode::BadDirectory,
            "not a valid cosignature of the latest checkpoint by a witness the directory names",
        ))
    }

    /// A statement offered for the Secretariat: it must verify, be signed by the
    /// connection's own key, name this log, and be a kind a member may submit.
    pub fn check_submission(&self, peer: &IdentityKey, bytes: &[u8]) -> Result<(), String> {
        let st = Statement::parse(bytes).map_err(|e| format!("statement refused: {e}"))?;
        if st.author() != peer {
            return Err("submit statements signed by your own key only".into());
        }
        let view = self.view.lock().expect("log view");
        let Some(v) = view.as_ref() else {
            return Err("the log has not begun".into());
        };
        if st.origin() != v.dir.origin() {
            return Err(format!("the statement names the log {:?}, not this one", st.origin()));
        }
        match st.action() {
            Action::Nominate { state, .. } => match v.dir.authority(state) {
                Some(a) if &a.key == peer => Ok(()),
                _ => Err(format!("only {state}'s national authority nominates {state}'s POCs")),
            },
            Action::PolicyPublish { state, .. } => match v.dir.authority(state) {
                Some(a) if &a.key == peer => Ok(()),
                _ => Err(format!(
                    "only {state}'s national authority publishes {state}'s policy documents"
                )),
            },
            Action::Remove { .. }
            | Action::RankChange { .. }
            | Action::Revoke { .. }
            | Action::KeyRotation { .. }
            | Action::ContactUpdate { .. }
            | Action::Confirm => Ok(()),
            other => Err(format!("{} statements are the Secretariat's own", other.kind())),
        }
    }
}

/// The checkpoint names this log, covers exactly `leaves`, and carries a valid signature
/// by the Secretariat key in force.
fn check_checkpoint(dir: &Directory, note: &SignedNote, leaves: &[Hash]) -> Result<(), String> {
    let cp = note.checkpoint().map_err(|e| format!("checkpoint: {e}"))?;
    if cp.origin != dir.origin() {
        return Err(format!(
            "the checkpoint names the log {:?}, not {:?}",
            cp.origin,
            dir.origin()
        ));
    }
    if cp.size != leaves.len() as u64 {
        return Err(format!(
            "the checkpoint covers {} entries but the log would hold {}",
            cp.size,
            leaves.len()
        ));
    }
    if cp.root != tlog::root(leaves) {
        return Err("the checkpoint's root hash is not the root of these entries".into());
    }
    NoteVerifier {
        name: dir.origin().to_string(),
        key: *dir.secretariat(),
    }
    .verify(note)
    .map_err(|_| "the checkpoint is not signed by the Secretariat key in force".to_string())
}
