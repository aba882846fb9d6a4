//! Drills from other parties: a drill record anyone may be handed (`verify_drill`, which
//! decodes, checks every signature and recomputes the report) and a scenario file
//! (`Scenario::parse`).
//!
//! Input: the first byte picks the decoder, the rest is its input. Invariant: no panic, and
//! nothing verifies (no input here is signed by a real controller).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocnet_core::drill::{verify_drill, DrillBundle, Scenario};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let _ = DrillBundle::decode_unverified(rest);
        assert!(verify_drill(rest, None).is_err());
    } else if let Ok(text) = std::str::from_utf8(rest) {
        let _ = Scenario::parse(text);
    }
});
