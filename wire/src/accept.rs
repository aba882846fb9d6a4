//! The relay's proof that it stored an envelope: one signature per commit group.
//!
//! Every envelope the relay commits becomes a leaf `SHA-256(0x00 || envelope_hash ||
//! u64 stored_at_ms)`. The acceptances answered together form a Merkle tree shaped as in
//! RFC 9162 §2.1 (interior node `SHA-256(0x01 || left || right)`); the relay signs
//! `root || u64 tree_size` once under [`RELAY_ACCEPT_ROOT`], and each acceptance carries
//! its leaf index, the tree size, the audit path and that signature. A client recomputes
//! the root from its own leaf and the path (RFC 9162 §2.1.3.2) and checks the signature
//! with `verify_strict`: it holds a relay-signed statement about exactly its envelope.
//! Integers are big-endian. See PROTOCOL.md §"Acceptance proofs".

use pocnet_crypto::context::SigningContext;
use pocnet_crypto::tlog;
use pocnet_crypto::{Identity, IdentityKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Context of the relay's signature over a commit group's Merkle root:
/// the relay signs `root (32) || tree_size (u64 BE)`.
pub const RELAY_ACCEPT_ROOT: SigningContext = SigningContext::new(b"pocnet/v2/relay-accept-root\0");

/// Most leaves one signed group may hold (a group is at most one store commit).
pub const MAX_GROUP: u64 = 1 << 16;

/// A 32-byte SHA-256 value in the tree.
pub type Hash = [u8; 32];

/// What the relay hands back with each acceptance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AcceptProof {
    /// Leaves in the signed tree.
    pub tree_size: u64,
    /// This envelope's leaf index, `0 ≤ index < tree_size`.
    pub index: u64,
    /// Audit path, leaf level first (RFC 9162 `PATH`).
    pub path: Vec<Hash>,
    /// Ed25519 signature over `RELAY_ACCEPT_ROOT || root || u64 tree_size`.
    pub signature: Vec<u8>,
}

/// Why an acceptance proof does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// Index, size or path length are inconsistent.
    #[error("acceptance proof is malformed (index {index} of {size}, {path} path hashes)")]
    Malformed { index: u64, size: u64, path: usize },
    /// The signature does not verify under the pinned relay key.
    #[error("acceptance is not signed by the pinned relay key")]
    BadSignature,
}

/// The leaf for one stored envelope.
pub fn leaf_hash(envelope_hash: &[u8; 32], stored_at_ms: u64) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(envelope_hash);
    h.update(stored_at_ms.to_be_bytes());
    h.finalize().into()
}

/// RFC 9162 `MTH` over leaf hashes (the empty tree's root for none).
pub fn root(leaves: &[Hash]) -> Hash {
    tlog::root(leaves)
}

/// RFC 9162 `PATH(m, D[n])`: the audit path of leaf `m`, leaf level first (empty if `m`
/// is not a leaf).
pub fn audit_path(leaves: &[Hash], m: usize) -> Vec<Hash> {
    tlog::inclusion_proof(leaves, m as u64).unwrap_or_default()
}

/// All audit paths of a tree at once, in O(n log n) hashes: what the relay computes per group.
pub fn all_paths(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    let mut paths = vec![Vec::new(); leaves.len()];
    let r = fill(leaves, &mut paths);
    (r, paths)
}

fn fill(leaves: &[Hash], paths: &mut [Vec<Hash>]) -> Hash {
    match leaves.len() {
        0 => tlog::empty_root(),
        1 => leaves[0],
        n => {
            // RFC 9162's split: the largest power of two strictly below n.
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            let (pl, pr) = paths.split_at_mut(k);
            let l = fill(&leaves[..k], pl);
            let r = fill(&leaves[k..], pr);
            for p in pl.iter_mut() {
                p.push(r);
            }
            for p in pr.iter_mut() {
                p.push(l);
            }
            tlog::node_hash(&l, &r)
        }
    }
}

/// RFC 9162 §2.1.3.2: the root implied by `leaf` at `index` of `size` with `path`,
/// or `None` if the path's length does not fit the position.
pub fn root_from_path(leaf: &Hash, index: u64, size: u64, path: &[Hash]) -> Option<Hash> {
    tlog::root_from_inclusion(leaf, index, size, path).ok()
}

/// The bytes signed (after the context) for a group: `root || u64 tree_size`.
pub fn root_statement(root: &Hash, tree_size: u64) -> [u8; 40] {
    let mut s = [0u8; 40];
    s[..32].copy_from_slice(root);
    s[32..].copy_from_slice(&tree_size.to_be_bytes());
    s
}

/// Signs one group of acceptances `(envelope_hash, stored_at_ms)`: one signature, one
/// proof per item, in the same order.
pub fn sign_group(relay: &Identity, items: &[([u8; 32], u64)]) -> Vec<AcceptProof> {
    if items.is_empty() {
        return Vec::new();
    }
    let leaves: Vec<Hash> = items.iter().map(|(h, t)| leaf_hash(h, *t)).collect();
    let (r, paths) = all_paths(&leaves);
    let size = leaves.len() as u64;
    let signature = relay.sign(RELAY_ACCEPT_ROOT, &root_statement(&r, size)).to_vec();
    paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| AcceptProof {
            tree_size: size,
            index: i as u64,
            path,
            signature: signature.clone(),
        })
        .collect()
}

/// Checks that `relay` signed a group containing `(envelope_hash, stored_at_ms)`.
pub fn verify_acceptance(
    relay: &IdentityKey,
    envelope_hash: &[u8; 32],
    stored_at_ms: u64,
    proof: &AcceptProof,
) -> Result<(), ProofError> {
    let malformed = || ProofError::Malformed {
        index: proof.index,
        size: proof.tree_size,
        path: proof.path.len(),
    };
    if proof.tree_size == 0 || proof.tree_size > MAX_GROUP || proof.path.len() > 64 {
        return Err(malformed());
    }
    let r = root_from_path(
        &leaf_hash(envelope_hash, stored_at_ms),
        proof.index,
        proof.tree_size,
        &proof.path,
    )
    .ok_or_else(malformed)?;
    let sig: [u8; 64] = proof
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| ProofError::BadSignature)?;
    relay
        .verify(
            RELAY_ACCEPT_ROOT,
            &root_statement(&r, proof.tree_size),
            &sig,
            "relay acceptance",
        )
        .map_err(|_| ProofError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[i as u8; 32], i as u64)).collect()
    }

    #[test]
    fn every_path_of_every_small_tree_verifies_and_matches_rfc_path() {
        for n in 1..=33 {
            let l = leaves(n);
            let (r, paths) = all_paths(&l);
            assert_eq!(r, root(&l));
            for (m, p) in paths.iter().enumerate() {
                assert_eq!(p, &audit_path(&l, m), "n={n} m={m}");
                assert_eq!(root_from_path(&l[m], m as u64, n as u64, p), Some(r), "n={n} m={m}");
            }
        }
    }

    #[test]
    fn a_path_proves_only_its_own_leaf_position_and_size() {
        let l = leaves(11);
        let (r, paths) = all_paths(&l);
        for m in 0..11 {
            for other in 0..11u64 {
                if other != m as u64 {
                    assert_ne!(root_from_path(&l[m], other, 11, &paths[m]), Some(r));
                }
            }
            assert_ne!(root_from_path(&l[(m + 1) % 11], m as u64, 11, &paths[m]), Some(r));
            if !paths[m].is_empty() {
                let mut bad = paths[m].clone();
                bad[0][0] ^= 1;
                assert_ne!(root_from_path(&l[m], m as u64, 11, &bad), Some(r));
                let short = &paths[m][..paths[m].len() - 1];
                assert_eq!(root_from_path(&l[m], m as u64, 11, short), None);
            }
        }
        assert_eq!(root_from_path(&l[0], 11, 11, &paths[0]), None, "index past the end");
    }

    #[test]
    fn signed_group_verifies_per_item_and_refuses_other_keys_and_statements() {
        let relay = Identity::generate(&mut pocnet_crypto::os_rng(), 0, 1000).unwrap();
        let other = Identity::generate(&mut pocnet_crypto::os_rng(), 0, 1000).unwrap();
        let items: Vec<([u8; 32], u64)> = (0..7u8).map(|i| ([i; 32], 1000 + i as u64)).collect();
        let proofs = sign_group(&relay, &items);
        for ((h, t), p) in items.iter().zip(&proofs) {
            verify_acceptance(relay.public_key(), h, *t, p).unwrap();
            assert_eq!(
                verify_acceptance(other.public_key(), h, *t, p),
                Err(ProofError::BadSignature)
            );
            assert!(
                verify_acceptance(relay.public_key(), h, t + 1, p).is_err(),
                "other time"
            );
            let mut h2 = *h;
            h2[31] ^= 0x80;
            assert!(
                verify_acceptance(relay.public_key(), &h2, *t, p).is_err(),
                "other envelope"
            );
        }
        // The size is bound by the signature (a path alone may fit several sizes).
        let mut resized = proofs[0].clone();
        resized.tree_size = 8;
        assert!(verify_acceptance(relay.public_key(), &items[0].0, items[0].1, &resized).is_err());
        let mut forged = proofs[0].clone();
        forged.tree_size = 0;
        assert!(matches!(
            verify_acceptance(relay.public_key(), &items[0].0, items[0].1, &forged),
            Err(ProofError::Malformed { .. })
        ));
    }
}
