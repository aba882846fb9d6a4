//! Checkpoints and cosignatures from the relay: `SignedNote::parse`, `checkpoint()`,
//! verifier keys, note and cosignature verification.
//!
//! Input: the note text (any bytes; non-UTF-8 is refused before parsing). Invariants: a
//! parsed note re-serialises to exactly its input; no signature line verifies under a key
//! that did not make it (`me()` never signed these inputs, except a note it signs here).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocnet_crypto::note::{sign_note, NoteVerifier, SignedNote, Witness};
use pocnet_fuzz::me;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = NoteVerifier::parse_vkey(text);
    let _ = Witness::parse_vkey(text);
    let Ok(note) = SignedNote::parse(text) else {
        return;
    };
    assert_eq!(note.to_text(), text, "a parsed note is not in canonical form");
    let v = NoteVerifier {
        name: "fuzz".into(),
        key: *me().public_key(),
    };
    let w = Witness {
        name: "fuzz".into(),
        key: *me().public_key(),
    };
    if let Ok(cp) = note.checkpoint() {
        assert_eq!(cp.body(), note.body);
        // What we sign ourselves verifies, and only under our name.
        if !note.body.contains('\0') {
            let signed = SignedNote {
                body: note.body.clone(),
                signatures: vec![sign_note(&note.body, "fuzz", me())],
            };
            assert!(v.verify(&signed).is_ok());
            let reparsed = SignedNote::parse(&signed.to_text()).unwrap();
            assert!(v.verify(&reparsed).is_ok());
        }
    }
    assert!(v.verify(&note).is_err() || note.signatures.iter().any(|s| s.name == "fuzz"));
    let _ = w.verify_in(&note);
});
