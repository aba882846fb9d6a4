//! RFC 9162 / RFC 6962 Merkle tree: published vectors, then every proof of random trees,
//! each attacked.

use pocnet_crypto::tlog::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root, verify_consistency, verify_inclusion,
    Frontier, Hash,
};
use pocnet_crypto::Error;
use proptest::prelude::*;

// Published vectors for the 8-leaf reference tree of RFC 6962 implementations, from
// github.com/transparency-dev/merkle:
//   testonly/constants.go       LeafInputs(), NodeHashes(), RootHashes()
//   testonly/reference_test.go  TestRefInclusionProof, TestRefConsistencyProof
// (the same tree as google/certificate-transparency merkle_tree_test.cc).

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Root hashes for sizes 0..=8 (RootHashes()).
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Leaf hashes (NodeHashes()[0]).
const LEAF_HASHES: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];

/// (index, size, proof) from TestRefInclusionProof.
const INCLUSION: &[(u64, usize, &[&str])] = &[
    (0, 1, &[]),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// (old size, new size, proof) from TestRefConsistencyProof.
const CONSISTENCY: &[(u64, usize, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn hs(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

fn reference_leaves() -> Vec<Hash> {
    LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).unwrap())).collect()
}

#[test]
fn published_leaf_hashes_and_roots() {
    let leaves = reference_leaves();
    assert_eq!(leaves, hs(&LEAF_HASHES));
    assert_eq!(empty_root(), h(ROOTS[0]));
    let mut f = Frontier::new();
    assert_eq!(f.root(), h(ROOTS[0]));
    for size in 0..=8 {
        assert_eq!(root(&leaves[..size]), h(ROOTS[size]), "root of size {size}");
        if size > 0 {
            f.push(leaves[size - 1]);
            assert_eq!(f.size(), size as u64);
            assert_eq!(f.root(), h(ROOTS[size]), "frontier root of size {size}");
        }
    }
    // NodeHashes()[1][0]: the first interior node.
    assert_eq!(
        node_hash(&leaves[0], &leaves[1]),
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")
    );
}

#[test]
fn published_inclusion_proofs() {
    let leaves = reference_leaves();
    for &(index, size, want) in INCLUSION {
        let proof = inclusion_proof(&leaves[..size], index).unwrap();
        assert_eq!(proof, hs(want), "PATH({index}, D[{size}])");
        verify_inclusion(&leaves[index as usize], index, size as u64, &proof, &h(ROOTS[size])).unwrap();
        // The right proof for the wrong leaf, position or tree is refused.
        let other = leaves[(index as usize + 1) % 8];
        assert!(verify_inclusion(&other, index, size as u64, &proof, &h(ROOTS[size])).is_err());
        assert!(verify_inclusion(&leaves[index as usize], index, size as u64, &proof, &h(ROOTS[size - 1])).is_err());
    }
}

#[test]
fn published_consistency_proofs() {
    let leaves = reference_leaves();
    for &(old, new, want) in CONSISTENCY {
        let proof = consistency_proof(&leaves[..new], old).unwrap();
        assert_eq!(proof, hs(want), "PROOF({old}, D[{new}])");
        verify_consistency(old, new as u64, &h(ROOTS[old as usize]), &h(ROOTS[new]), &proof).unwrap();
        if old < new as u64 {
            assert!(verify_consistency(old, new as u64, &h(ROOTS[old as usize - 1]), &h(ROOTS[new]), &proof).is_err());
            assert!(verify_consistency(old, new as u64, &h(ROOTS[old as usize]), &h(ROOTS[new - 1]), &proof).is_err());
        }
    }
}

#[test]
fn edge_cases_follow_rfc_9162() {
    let leaves = reference_leaves();
    let r = |n: usize| h(ROOTS[n]);
    // Out of range requests.
    assert!(matches!(inclusion_proof(&leaves, 8), Err(Error::Proof(_))));
    assert!(matches!(inclusion_proof(&[], 0), Err(Error::Proof(_))));
    assert!(matches!(consistency_proof(&leaves[..3], 4), Err(Error::Proof(_))));
    assert!(verify_inclusion(&leaves[0], 0, 0, &[], &empty_root()).is_err());
    assert!(verify_inclusion(&leaves[3], 3, 3, &[], &r(3)).is_err());
    // Equal sizes: empty proof, equal roots.
    assert_eq!(consistency_proof(&leaves[..5], 5).unwrap(), Vec::<Hash>::new());
    verify_consistency(5, 5, &r(5), &r(5), &[]).unwrap();
    assert!(verify_consistency(5, 5, &r(5), &r(4), &[]).is_err());
    assert!(verify_consistency(5, 5, &r(5), &r(5), &[r(1)]).is_err());
    // From the empty tree: empty proof, and the old root must be the empty root.
    assert_eq!(consistency_proof(&leaves, 0).unwrap(), Vec::<Hash>::new());
    verify_consistency(0, 8, &empty_root(), &r(8), &[]).unwrap();
    verify_consistency(0, 0, &empty_root(), &empty_root(), &[]).unwrap();
    assert!(verify_consistency(0, 8, &r(1), &r(8), &[]).is_err());
    assert!(verify_consistency(0, 8, &empty_root(), &r(8), &[r(1)]).is_err());
    // Shrinking is never consistent; an empty proof between different sizes is refused.
    assert!(verify_consistency(8, 5, &r(8), &r(5), &[]).is_err());
    assert!(verify_consistency(4, 8, &r(4), &r(8), &[]).is_err());
}

fn random_leaves(n: usize, seed: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("leaf {seed} {i}").as_bytes()))
        .collect()
}

fn flip(proof: &[Hash], bit: usize) -> Vec<Hash> {
    let mut p = proof.to_vec();
    let i = bit / 256 % p.len();
    p[i][bit / 8 % 32] ^= 1 << (bit % 8);
    p
}

fn flip_hash(x: &Hash, bit: usize) -> Hash {
    let mut y = *x;
    y[bit / 8 % 32] ^= 1 << (bit % 8);
    y
}

fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

// An RFC 9162 root does not commit to the tree size, so a proof may verify under other
// parameters that give the verifier the very same computation (e.g. leaf 0 of 6 and of 7
// leaves). The "shape" below is that computation, written from the recursive definitions
// PATH and SUBPROOF (not from the verifier's bit arithmetic): changed parameters must be
// refused exactly when their shape differs. The signed checkpoint binds the size.

/// PATH(m, D[n]): for each proof element, whether it is the right sibling.
fn inclusion_shape(m: u64, n: u64) -> Option<Vec<bool>> {
    if m >= n {
        return None;
    }
    fn go(m: u64, n: u64, out: &mut Vec<bool>) {
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            go(m, k, out);
            out.push(true);
        } else {
            go(m - k, n - k, out);
            out.push(false);
        }
    }
    let mut v = Vec::new();
    go(m, n, &mut v);
    Some(v)
}

#[derive(PartialEq, Debug)]
enum Step {
    /// The old root itself starts the computation (not in the proof).
    OldRootIsStart,
    /// A proof element is the root of a complete old subtree: start of both computations.
    Start,
    /// The element is a subtree only in the new tree, on the right.
    NewRight,
    /// The element is a subtree of both trees, on the left.
    BothLeft,
}

/// SUBPROOF(m, D[n], true) as a list of steps; `None` where no proof exists.
fn consistency_shape(m: u64, n: u64) -> Option<Vec<Step>> {
    if m > n {
        return None;
    }
    if m == 0 || m == n {
        return Some(vec![]); // only the empty proof, checked against the roots directly
    }
    fn go(m: u64, n: u64, b: bool, out: &mut Vec<Step>) {
        if m == n {
            out.push(if b { Step::OldRootIsStart } else { Step::Start });
            return;
        }
        let k = split(n);
        if m <= k {
            go(m, k, b, out);
            out.push(Step::NewRight);
        } else {
            go(m - k, n - k, false, out);
            out.push(Step::BothLeft);
        }
    }
    let mut v = Vec::new();
    go(m, n, true, &mut v);
    Some(v)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_inclusion_proof_verifies_and_no_change_does(n in 1usize..200, seed: u64, bit: usize, d in 1u64..70) {
        let leaves = random_leaves(n, seed);
        let size = n as u64;
        let rt = root(&leaves);
        for (i, leaf) in leaves.iter().enumerate() {
            let i = i as u64;
            let proof = inclusion_proof(&leaves, i).unwrap();
            prop_assert!(verify_inclusion(leaf, i, size, &proof, &rt).is_ok());
            prop_assert!(verify_inclusion(&flip_hash(leaf, bit), i, size, &proof, &rt).is_err());
            prop_assert!(verify_inclusion(leaf, i, size, &proof, &flip_hash(&rt, bit)).is_err());
            if !proof.is_empty() {
                prop_assert!(verify_inclusion(leaf, i, size, &flip(&proof, bit), &rt).is_err());
                prop_assert!(verify_inclusion(leaf, i, size, &proof[..proof.len() - 1], &rt).is_err());
            }
            let mut longer = proof.clone();
            longer.push(rt);
            prop_assert!(verify_inclusion(leaf, i, size, &longer, &rt).is_err());
            // Changed index or size (including single-bit flips): refused unless the
            // verifier would do the very same computation.
            let shape = inclusion_shape(i, size);
            let mut changes = vec![(i ^ (1 << (bit % 64)), size), (i, size ^ (1 << (bit % 64))), (i, size + d), (i + d, size)];
            if size > d { changes.push((i, size - d)); }
            if i >= d { changes.push((i - d, size)); }
            for (j, s) in changes {
                let same = inclusion_shape(j, s) == shape;
                prop_assert_eq!(verify_inclusion(leaf, j, s, &proof, &rt).is_ok(), same, "index {} size {} as {} {}", i, size, j, s);
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_no_change_does(n in 1usize..200, seed: u64, bit: usize, d in 1u64..70) {
        let leaves = random_leaves(n, seed);
        let new = n as u64;
        let new_root = root(&leaves);
        for old in 0..=new {
            let old_root = root(&leaves[..old as usize]);
            let proof = consistency_proof(&leaves, old).unwrap();
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof).is_ok());
            prop_assert!(verify_consistency(old, new, &flip_hash(&old_root, bit), &new_root, &proof).is_err());
            // Every tree extends the empty one, whatever its root.
            prop_assert_eq!(verify_consistency(old, new, &old_root, &flip_hash(&new_root, bit), &proof).is_ok(), old == 0);
            if !proof.is_empty() {
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &flip(&proof, bit)).is_err());
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof[1..]).is_err());
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof[..proof.len() - 1]).is_err());
            }
            let mut longer = proof.clone();
            longer.push(new_root);
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &longer).is_err());
            // Changed sizes (including single-bit flips): refused unless the verifier would
            // do the very same computation. Sizes 0 and equal sizes compare roots directly.
            let shape = consistency_shape(old, new);
            let mut changes = vec![(old ^ (1 << (bit % 64)), new), (old, new ^ (1 << (bit % 64))), (old + d, new), (old, new + d)];
            if old >= d { changes.push((old - d, new)); }
            if new >= d { changes.push((old, new - d)); }
            for (o, s) in changes {
                let same = match (o, s) {
                    _ if o > s => false,
                    _ if o == s => proof.is_empty() && old_root == new_root,
                    (0, _) => proof.is_empty() && old_root == empty_root(),
                    _ => old != 0 && old != new && consistency_shape(o, s) == shape,
                };
                prop_assert_eq!(verify_consistency(o, s, &old_root, &new_root, &proof).is_ok(), same, "{}->{} as {}->{}", old, new, o, s);
            }
        }
    }

    #[test]
    fn frontier_root_equals_root_at_every_size(n in 0usize..200, seed: u64) {
        let leaves = random_leaves(n, seed);
        let mut f = Frontier::new();
        prop_assert_eq!(f.root(), empty_root());
        for (i, l) in leaves.iter().enumerate() {
            f.push(*l);
            prop_assert_eq!(f.size(), i as u64 + 1);
            prop_assert_eq!(f.root(), root(&leaves[..=i]));
        }
    }
}
