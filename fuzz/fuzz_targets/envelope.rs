//! Envelopes from another party: header parsing, `verify` / `verify_from` /
//! `verify_stream`, stanza blocks, `trim_for_recipient`, `open` / `open_stream`.
//!
//! Input: one mode byte, then the envelope. Mode bit 0: re-sign header and body as the
//! expected sender (so mutated headers get past the signature); bit 1: also rewrite the
//! signed stanza hashes to match the stanzas (so mutated stanzas reach HPKE).
//! Invariants: the in-memory and streaming readers agree; `verify_from` agrees with
//! `verify`; a trimmed envelope still verifies with the same hash and opens the same.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use pocnet_crypto::{
    claimed_sender, open, open_stream, trim_for_recipient, verify, verify_from, verify_stream, Header,
};
use pocnet_fuzz::{fix_stanza_hashes, me, resign_envelope, sender};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut env = rest.to_vec();
    if mode & 2 != 0 {
        fix_stanza_hashes(&mut env);
    }
    if mode & 3 != 0 {
        resign_envelope(&mut env);
    }
    check(&env);
});

fn check(env: &[u8]) {
    let me = me();
    let sender_key = sender().public_key();
    let _ = claimed_sender(env);
    let _ = Header::parse(env);
    if env.len() > 5 {
        let _ = Header::parse(&env[5..]);
    }

    let v = verify(env);
    let vf = verify_from(env, sender_key);
    match (&v, &vf) {
        (Ok((h, hash)), Ok((hf, hashf))) => {
            assert_eq!(hash, hashf, "verify and verify_from disagree on the hash");
            assert_eq!(h.sender, hf.sender);
            assert_eq!(&h.sender, sender_key);
        }
        (Ok((h, _)), Err(_)) => assert_ne!(&h.sender, sender_key, "verify_from refused what verify accepted"),
        (Err(e), Ok(_)) => panic!("verify_from accepted what verify refused: {e}"),
        (Err(_), Err(_)) => {}
    }
    if let Ok((h, _)) = &v {
        assert!(!h.recipients.is_empty() && h.recipients.len() <= 1024);
    }

    let vs = verify_stream(&mut Cursor::new(env));
    match (&v, &vs) {
        (Ok((_, a)), Ok((_, b))) => assert_eq!(a, b, "verify and verify_stream disagree on the hash"),
        (Ok(_), Err(e)) => panic!("verify_stream refused what verify accepted: {e}"),
        (Err(e), Ok(_)) => panic!("verify accepted what verify_stream refused: {e}"),
        (Err(_), Err(_)) => {}
    }

    let opened = open(me, env, sender_key);
    if let Ok(o) = &opened {
        // A recipient opens its trimmed copy, or a copy whose other stanzas were altered,
        // which a relay refuses (another recipient could not open it); anything else that
        // opens, a relay accepts with the same hash.
        match &vf {
            Ok((_, hash)) => assert_eq!(&o.envelope_hash, hash),
            Err(pocnet_crypto::Error::StanzaMissing | pocnet_crypto::Error::StanzaMismatch) => {
                assert!(o.header.recipients.len() > 1)
            }
            Err(e) => panic!("open succeeded but verify_from failed: {e}"),
        }
        assert_eq!(o.plaintext.len() as u64, o.header.body_len);
    }
    let mut out = Vec::new();
    let streamed = open_stream(me, &mut Cursor::new(env), sender_key, &mut out);
    match (&opened, &streamed) {
        (Ok(o), Ok(s)) => {
            assert_eq!(o.envelope_hash, s.envelope_hash);
            assert_eq!(o.plaintext, out, "open and open_stream disagree on the plaintext");
        }
        (Ok(_), Err(e)) => panic!("open_stream refused what open accepted: {e}"),
        (Err(e), Ok(_)) => panic!("open accepted what open_stream refused: {e}"),
        (Err(_), Err(_)) => {}
    }

    match trim_for_recipient(env, me.public_key().as_bytes()) {
        Ok(t) => {
            if let Ok((h, hash)) = &v {
                // The signature still holds over the trimmed copy; a relay's completeness
                // check refuses it unless this recipient is the only one.
                match verify(&t) {
                    Ok((_, th)) => {
                        assert_eq!(h.recipients.len(), 1, "a trimmed copy of a multi-recipient envelope passed verify");
                        assert_eq!(&th, hash, "trimming changed the envelope hash");
                    }
                    Err(pocnet_crypto::Error::StanzaMissing) => assert!(h.recipients.len() > 1),
                    Err(e) => panic!("a trimmed valid envelope must still verify: {e}"),
                }
            }
            let again = trim_for_recipient(&t, me.public_key().as_bytes()).expect("trimming twice");
            assert_eq!(again, t, "trimming is not idempotent");
            let topened = open(me, &t, sender_key);
            match (&opened, &topened) {
                (Ok(o), Ok(to)) => {
                    assert_eq!(o.plaintext, to.plaintext);
                    assert_eq!(o.envelope_hash, to.envelope_hash, "trimming changed the envelope hash");
                }
                (Ok(_), Err(e)) => panic!("the trimmed envelope does not open: {e}"),
                (Err(_), _) => {}
            }
        }
        Err(e) => assert!(opened.is_err(), "trim refused an envelope this recipient opens: {e}"),
    }
}
