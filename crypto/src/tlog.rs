//! Merkle tree hashing, inclusion and consistency proofs for an append-only log
//! (RFC 9162 §2.1, identical to RFC 6962 §2.1), with SHA-256.
//!
//! Leaves are given as their leaf hashes ([`leaf_hash`]); a tree of `n` leaves has one
//! root ([`root`]). Proof generation takes every leaf hash (the log holds them all);
//! verification takes only the proof and the roots.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 output: leaf hash, interior node hash or tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of one leaf: SHA-256(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly smaller than `n` (`n >= 2`): RFC 9162's `k`.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The Merkle Tree Hash of a list of leaf hashes; the empty list gives [`empty_root`].
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        _ => subtree_root(leaves),
    }
}

fn subtree_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&subtree_root(&leaves[..k]), &subtree_root(&leaves[k..]))
        }
    }
}

fn index_in(index: u64, len: usize) -> Option<usize> {
    usize::try_from(index).ok().filter(|&i| i < len)
}

/// The inclusion proof (audit path, RFC 9162 `PATH(m, D[n])`) for leaf `index` in the
/// tree of all `leaves`, leaf-side first.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>> {
    let m = index_in(index, leaves.len()).ok_or(Error::Proof("leaf index is not in the tree"))?;
    let mut proof = Vec::new();
    path(m, leaves, &mut proof);
    Ok(proof)
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(subtree_root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(subtree_root(&leaves[..k]));
    }
}

/// The root that `proof` leads to from `leaf` at `index` in a tree of `size` leaves
/// (RFC 9162 §2.1.3.2), or an error if the proof's length does not fit the position.
pub fn root_from_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Result<Hash> {
    if index >= size {
        return Err(Error::Proof("leaf index is not below the tree size"));
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(Error::Proof("inclusion proof is too long"));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(Error::Proof("inclusion proof is too short"));
    }
    Ok(r)
}

/// Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size` leaves whose
/// root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<()> {
    if &root_from_inclusion(leaf, index, size, proof)? != root {
        return Err(Error::Proof("inclusion proof does not lead to the root"));
    }
    Ok(())
}

/// The consistency proof (RFC 9162 `PROOF(m, D[n])`) from the tree of the first
/// `old_size` leaves to the tree of all `leaves`. Empty when `old_size` is 0 or equal to
/// the number of leaves; an error when it is larger.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>> {
    let m = usize::try_from(old_size)
        .ok()
        .filter(|&m| m <= leaves.len())
        .ok_or(Error::Proof("old tree size is larger than the tree"))?;
    let mut proof = Vec::new();
    if m > 0 && m < leaves.len() {
        subproof(m, leaves, true, &mut proof);
    }
    Ok(proof)
}

fn subproof(m: usize, leaves: &[Hash], whole_old_tree: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole_old_tree {
            out.push(subtree_root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], whole_old_tree, out);
        out.push(subtree_root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(subtree_root(&leaves[..k]));
    }
}

/// Verifies that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root` (RFC 9162 §2.1.4.2).
///
/// Edge cases: `old_size == new_size` needs an empty proof and equal roots; `old_size == 0`
/// needs an empty proof and `old_root` equal to [`empty_root`] (every tree extends the
/// empty one); `old_size > new_size` is refused.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<()> {
    if old_size > new_size {
        return Err(Error::Proof("old tree size is larger than the new one"));
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(Error::Proof("consistency proof between equal sizes must be empty"));
        }
        if old_root != new_root {
            return Err(Error::Proof("two trees of the same size have different roots"));
        }
        return Ok(());
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(Error::Proof("consistency proof from the empty tree must be empty"));
        }
        if old_root != &empty_root() {
            return Err(Error::Proof(
                "root of the empty tree is not SHA-256 of the empty string",
            ));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(Error::Proof("consistency proof is empty"));
    }
    // Step 1: when the old tree is a complete subtree its root starts the path.
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(Error::Proof("consistency proof is too long"));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(Error::Proof("consistency proof is too short"));
    }
    if &fr != old_root {
        return Err(Error::Proof("consistency proof does not lead to the old root"));
    }
    if &sr != new_root {
        return Err(Error::Proof("consistency proof does not lead to the new root"));
    }
    Ok(())
}

/// The right edge of an append-only tree: the roots of its maximal complete subtrees
/// ("peaks"), largest first. O(log n) memory; [`Frontier::root`] equals [`root`] over
/// every leaf pushed so far.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// One peak per set bit of `size`, from the most significant bit down.
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        // Each trailing one bit of the old size is a peak of equal height: merge it.
        let mut s = self.size;
        while s & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit of the size");
            h = node_hash(&left, &h);
            s >>= 1;
        }
        self.peaks.push(h);
        self.size += 1;
    }
    /// Number of leaves pushed.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The root of the tree of every leaf pushed so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |acc, p| node_hash(p, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_largest_power_of_two_below() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (7, 4),
            (8, 4),
            (9, 8),
            (63, 32),
            (28937, 16384),
        ] {
            assert_eq!(split(n), k, "n = {n}");
        }
    }
}
