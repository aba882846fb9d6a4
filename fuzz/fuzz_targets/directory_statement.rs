//! Directory statements from the log or a submission: `Statement::parse`, then
//! `Directory::apply` on a directory whose genesis `me()` signed.
//!
//! Input: one mode byte, then the statement; mode bit 0 re-signs it as `me()` (author key
//! written into the tail) so mutations reach the body decoder and the rules. Invariants: a
//! parsed statement keeps its exact bytes; an applied leaf grows the directory by one and a
//! refused one changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocnet_core::directory::{Author, Directory, Statement};
use pocnet_crypto::context;
use pocnet_fuzz::{me, resign_tail, NOW_MS};

const ORIGIN: &str = "fuzz.pocnet/directory";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 != 0 && bytes.len() >= 97 {
        let n = bytes.len();
        bytes[n - 96..n - 64].copy_from_slice(me().public_key().as_bytes());
        resign_tail(&mut bytes, 0, me(), context::DIRECTORY);
    }
    let Ok(st) = Statement::parse(&bytes) else {
        return;
    };
    assert_eq!(st.as_bytes(), &bytes[..]);
    let mut dir = Directory::new(ORIGIN, *me().public_key());
    let genesis = Author::new(me(), ORIGIN).genesis(NOW_MS, vec![], 0).unwrap();
    dir.apply(genesis.as_bytes()).unwrap();
    let before = dir.size();
    match dir.apply(&bytes) {
        Ok(a) => {
            assert_eq!(a.index, before);
            assert_eq!(dir.size(), before + 1);
        }
        Err(e) => {
            assert_eq!(e.index, before);
            assert_eq!(dir.size(), before);
        }
    }
});
