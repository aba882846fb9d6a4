//! Replays an envelope corpus the way the `envelope` target does and counts how far each
//! input gets in `open` (the error it stops at), to check that the target reaches the
//! stanza, HPKE and chunk code rather than stopping at the signature.
//!
//! `cargo run --release --example envelope_stats [CORPUS_DIR]` (default `corpus/envelope`).

use std::collections::BTreeMap;

use pocnet_crypto::{open, verify};
use pocnet_fuzz::{fix_stanza_hashes, me, resign_envelope, sender};

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus/envelope".into());
    let mut open_results: BTreeMap<String, usize> = BTreeMap::new();
    let mut verify_results: BTreeMap<String, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        let Some((&mode, rest)) = data.split_first() else {
            continue;
        };
        let mut env = rest.to_vec();
        if mode & 2 != 0 {
            fix_stanza_hashes(&mut env);
        }
        if mode & 3 != 0 {
            resign_envelope(&mut env);
        }
        let name = |e: pocnet_crypto::Error| format!("{e:?}").split(['(', ' ', '{']).next().unwrap().to_string();
        let o = match open(me(), &env, sender().public_key()) {
            Ok(_) => "Ok".to_string(),
            Err(e) => name(e),
        };
        *open_results.entry(o).or_default() += 1;
        let v = match verify(&env) {
            Ok(_) => "Ok".to_string(),
            Err(e) => name(e),
        };
        *verify_results.entry(v).or_default() += 1;
    }
    println!("open:   {open_results:?}");
    println!("verify: {verify_results:?}");
}
