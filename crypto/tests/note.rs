//! Signed notes, checkpoints, cosignatures and voice codes, each attacked.

mod common;

use common::*;
use pocnet_crypto::note::{cosign, sign_note, Checkpoint, NoteSignature, NoteVerifier, SignedNote, Witness};
use pocnet_crypto::tlog::leaf_hash;
use pocnet_crypto::{Error, Identity};

const ORIGIN: &str = "directory.pocnet.example/log";

// golang.org/x/mod/sumdb/note, note.go package documentation ("# Example"): a published
// note and its verifier key (also in that package's note_test.go).
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n\
                       \n\
                       \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

fn checkpoint(size: u64) -> Checkpoint {
    Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: leaf_hash(&size.to_be_bytes()),
    }
}

fn log_key() -> (Identity, NoteVerifier) {
    let id = identity("note-log");
    let v = NoteVerifier {
        name: ORIGIN.into(),
        key: *id.public_key(),
    };
    (id, v)
}

fn signed(cp: &Checkpoint, id: &Identity) -> SignedNote {
    let body = cp.body();
    SignedNote {
        signatures: vec![sign_note(&body, ORIGIN, id)],
        body,
    }
}

#[test]
fn go_sumdb_example_note_verifies_byte_for_byte() {
    let v = NoteVerifier::parse_vkey(GO_VKEY).unwrap();
    assert_eq!(v.name, "PeterNeumann");
    assert_eq!(v.vkey(), GO_VKEY);
    let note = SignedNote::parse(GO_NOTE).unwrap();
    assert_eq!(note.to_text(), GO_NOTE);
    assert_eq!(note.signatures.len(), 1);
    assert_eq!(note.signatures[0].key_id, [0xc7, 0x4f, 0x20, 0xa3]);
    v.verify(&note).unwrap();
    let tampered = SignedNote::parse(&GO_NOTE.replace("cryptography", "cryptographY")).unwrap();
    assert!(matches!(v.verify(&tampered), Err(Error::BadSignature(_))));
    // Not a checkpoint.
    assert!(note.checkpoint().is_err());
}

#[test]
fn checkpoint_round_trips_and_is_strict() {
    let cp = checkpoint(1234);
    let body = cp.body();
    assert!(body.starts_with(&format!("{ORIGIN}\n1234\n")));
    assert_eq!(Checkpoint::parse_body(&body).unwrap(), cp);
    let zero = Checkpoint { size: 0, ..cp.clone() };
    assert_eq!(Checkpoint::parse_body(&zero.body()).unwrap(), zero);
    let max = Checkpoint {
        size: u64::MAX,
        ..cp.clone()
    };
    assert_eq!(Checkpoint::parse_body(&max.body()).unwrap(), max);

    let root = body.lines().nth(2).unwrap().to_string();
    let bad = [
        format!("{body}extension\n"),                             // extension line
        format!("{ORIGIN}\n01234\n{root}\n"),                     // leading zero
        format!("{ORIGIN}\n+1234\n{root}\n"),                     // sign
        format!("{ORIGIN}\n 1234\n{root}\n"),                     // space
        format!("{ORIGIN}\n\n{root}\n"),                          // empty size
        format!("{ORIGIN}\n18446744073709551616\n{root}\n"),      // 2^64
        format!("\n1234\n{root}\n"),                              // empty origin
        format!("{ORIGIN}\n1234\n{}\n", &root[..root.len() - 1]), // no padding
        format!("{ORIGIN}\n1234\n{}\n", root.replace('=', "A")),  // not canonical
        format!("{ORIGIN}\n1234\nAAAA\n"),                        // not 32 bytes
        format!("{ORIGIN}\n1234\n{root}"),                        // no final newline
        format!("{ORIGIN}\n1234\n{root}\r\n"),                    // CR
        format!("{ORIGIN}\n1234\n"),                              // too few lines
    ];
    for b in bad {
        assert!(
            matches!(Checkpoint::parse_body(&b), Err(Error::Note(_))),
            "accepted {b:?}"
        );
    }
    // A root whose last base64 character has non-zero unused bits.
    let mut r = root.clone().into_bytes();
    let last = r.len() - 2; // before the single '='
    r[last] = if r[last] == b'A' { b'B' } else { b'A' };
    let noncanon = format!("{ORIGIN}\n1234\n{}\n", String::from_utf8(r).unwrap());
    if let Ok(c) = Checkpoint::parse_body(&noncanon) {
        assert_eq!(c.body(), noncanon, "non-canonical base64 accepted");
    }
}

#[test]
fn signed_checkpoint_round_trips() {
    let (id, v) = log_key();
    let cp = checkpoint(42);
    let note = signed(&cp, &id);
    let text = note.to_text();
    assert_eq!(text, format!("{}\n{}", cp.body(), note.signatures[0].line()));
    assert!(note.signatures[0]
        .line()
        .starts_with("\u{2014} directory.pocnet.example/log "));
    let back = SignedNote::parse(&text).unwrap();
    assert_eq!(back, note);
    assert_eq!(back.checkpoint().unwrap(), cp);
    v.verify(&back).unwrap();
    // vkey round trip.
    let vk = v.vkey();
    assert_eq!(NoteVerifier::parse_vkey(&vk).unwrap(), v);
}

#[test]
fn tampered_notes_are_refused() {
    let (id, v) = log_key();
    let cp = checkpoint(42);
    let note = signed(&cp, &id);
    for changed in [
        Checkpoint { size: 43, ..cp.clone() },
        Checkpoint {
            origin: format!("{ORIGIN}x"),
            ..cp.clone()
        },
        Checkpoint {
            root: leaf_hash(b"other"),
            ..cp.clone()
        },
    ] {
        let forged = SignedNote {
            body: changed.body(),
            signatures: note.signatures.clone(),
        };
        let forged = SignedNote::parse(&forged.to_text()).unwrap();
        assert!(matches!(v.verify(&forged), Err(Error::BadSignature(_))), "{changed:?}");
    }
    // Every bit of the signature.
    for bit in 0..512 {
        let mut bad = note.clone();
        bad.signatures[0].payload[bit / 8] ^= 1 << (bit % 8);
        assert!(v.verify(&bad).is_err(), "signature bit {bit}");
    }
    // Truncated or lengthened signature.
    let mut short = note.clone();
    short.signatures[0].payload.pop();
    assert!(matches!(v.verify(&short), Err(Error::Note(_))));
    let mut long = note.clone();
    long.signatures[0].payload.push(0);
    assert!(matches!(v.verify(&long), Err(Error::Note(_))));
}

#[test]
fn wrong_key_and_unknown_lines() {
    let (id, v) = log_key();
    let other = identity("note-other");
    let cp = checkpoint(7);
    let body = cp.body();

    // Signed under the log's name by another key: a different key id, so "not signed".
    let by_other = SignedNote {
        signatures: vec![sign_note(&body, ORIGIN, &other)],
        body: body.clone(),
    };
    assert!(matches!(v.verify(&by_other), Err(Error::NotSignedBy(_))));
    // Another key's line carrying our key id (a forged id): fails as a bad signature.
    let mut forged = by_other.clone();
    forged.signatures[0].key_id = v.key_id();
    assert!(matches!(v.verify(&forged), Err(Error::BadSignature(_))));

    // Unknown signers before and after ours are ignored, and never count for anyone.
    let note = SignedNote {
        signatures: vec![
            sign_note(&body, "stranger.example", &other),
            sign_note(&body, ORIGIN, &id),
            NoteSignature {
                name: "future-type".into(),
                key_id: [9, 9, 9, 9],
                payload: vec![0xff; 300],
            },
        ],
        body: body.clone(),
    };
    let parsed = SignedNote::parse(&note.to_text()).unwrap();
    v.verify(&parsed).unwrap();
    let stranger = NoteVerifier {
        name: "stranger.example".into(),
        key: *other.public_key(),
    };
    stranger.verify(&parsed).unwrap();
    let only_unknown = SignedNote {
        signatures: vec![parsed.signatures[0].clone(), parsed.signatures[2].clone()],
        body,
    };
    assert!(matches!(v.verify(&only_unknown), Err(Error::NotSignedBy(_))));
    // The log key's line does not make it a witness cosignature.
    let w = Witness {
        name: ORIGIN.into(),
        key: *id.public_key(),
    };
    assert!(w.verify_in(&parsed).is_err());
}

#[test]
fn parse_refuses_malformed_text() {
    let (id, _) = log_key();
    let note = signed(&checkpoint(3), &id);
    let text = note.to_text();
    let line = note.signatures[0].line();
    let sig_line = line.trim_end_matches('\n');
    let b64 = sig_line.rsplit(' ').next().unwrap();
    let cp_body = note.body.clone();
    let bad: Vec<(String, &str)> = vec![
        (text.replacen("\n\n", "\n", 1), "missing blank line"),
        (text.replace('\n', "\r\n"), "CRLF"),
        (text.replacen("\n3\n", "\n3\r\n", 1), "CR in body"),
        (text.replacen(ORIGIN, "dir\u{7}ectory", 1), "BEL"),
        (text.replacen(ORIGIN, "dir\tectory", 1), "tab"),
        (text.replacen(ORIGIN, "dir\u{0}ectory", 1), "NUL"),
        (text.replacen(ORIGIN, "dir\u{85}ectory", 1), "C1 control"),
        (text.trim_end_matches('\n').to_string(), "no final newline"),
        (format!("{cp_body}\n"), "no signature lines"),
        (format!("{text}\n"), "trailing blank line"),
        (text.replace('\u{2014}', "-"), "hyphen, not em dash"),
        (text.replace("\u{2014} ", "\u{2014}"), "no space after dash"),
        (text.replace("\u{2014} ", "\u{2014}  "), "two spaces after dash"),
        (
            text.replace(&format!("{ORIGIN} "), &format!("{ORIGIN}  ")),
            "two spaces before sig",
        ),
        (text.replace(&format!("{ORIGIN} "), "bad+name "), "plus in name"),
        (text.replace(b64, &b64[..b64.len() - 1]), "bad padding"),
        (text.replace(b64, &b64.replace('=', "")), "unpadded"),
        (
            text.replace(b64, &format!("{}!", &b64[..b64.len() - 1])),
            "bad base64 char",
        ),
        (text.replace(b64, "AAAA"), "signature shorter than 5 bytes"),
        (format!("{text}{line}"), "duplicate line"),
        (
            format!("{}\n{}", cp_body, String::from_utf8(vec![b'x'; 70_000]).unwrap()),
            "too long",
        ),
    ];
    for (t, why) in bad {
        assert!(SignedNote::parse(&t).is_err(), "accepted: {why}");
    }
    // Signature-line count bound.
    let many: String = (0..65)
        .map(|i| {
            NoteSignature {
                name: format!("w{i}"),
                key_id: [0; 4],
                payload: vec![1],
            }
            .line()
        })
        .collect();
    assert!(matches!(
        SignedNote::parse(&format!("{cp_body}\n{many}")),
        Err(Error::TooLarge { .. })
    ));
    let sixty_four: String = many.lines().take(64).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        SignedNote::parse(&format!("{cp_body}\n{sixty_four}"))
            .unwrap()
            .signatures
            .len(),
        64
    );
    // Bodies may hold blank lines (the last blank line separates), but not as a checkpoint.
    let odd = SignedNote::parse(&format!("a\n\nb\n\n{line}")).unwrap();
    assert_eq!(odd.body, "a\n\nb\n");
    assert!(odd.checkpoint().is_err());
}

#[test]
fn vkey_parse_is_strict() {
    let v = NoteVerifier::parse_vkey(GO_VKEY).unwrap();
    assert_eq!(NoteVerifier::parse_vkey(&v.vkey()).unwrap(), v);
    let bad = [
        GO_VKEY.replace("c74f20a3", "c74f20a4"), // wrong key id
        GO_VKEY.replace("c74f20a3", "C74F20A3"), // upper-case hex
        GO_VKEY.replace("c74f20a3", "c74f20a"),  // short id
        GO_VKEY.replace("PeterNeumann", "Peter Neumann"),
        GO_VKEY.replace("PeterNeumann", ""),
        GO_VKEY.replace("+ARpc", "+BRpc"), // other type
        GO_VKEY.replace("TW", "T"),        // bad base64
        "PeterNeumann+c74f20a3".to_string(),
        format!("{GO_VKEY}AA=="),
    ];
    for b in bad {
        assert!(NoteVerifier::parse_vkey(&b).is_err(), "accepted {b}");
    }
    // A type-0x01 key is not a witness key.
    assert!(Witness::parse_vkey(GO_VKEY).is_err());
}

#[test]
fn cosignature_round_trip_binds_time_and_type() {
    let (log, v) = log_key();
    let wid = identity("note-witness");
    let w = Witness {
        name: "witness.example/w1".into(),
        key: *wid.public_key(),
    };
    assert_eq!(Witness::parse_vkey(&w.vkey()).unwrap(), w);
    assert_ne!(
        w.key_id(),
        NoteVerifier {
            name: w.name.clone(),
            key: w.key
        }
        .key_id(),
        "type byte is in the key id"
    );
    let cp = checkpoint(99);
    let body = cp.body();
    let t = 1_790_000_123u64;
    let cosig = cosign(&body, &w.name, &wid, t);
    assert_eq!(cosig.payload.len(), 72);
    assert_eq!(cosig.payload[..8], t.to_be_bytes());
    assert_eq!(w.verify_cosignature(&body, &cosig).unwrap(), t);

    // In a note, beside the log's signature; text round trip.
    let note = SignedNote {
        signatures: vec![sign_note(&body, ORIGIN, &log), cosig.clone()],
        body: body.clone(),
    };
    let parsed = SignedNote::parse(&note.to_text()).unwrap();
    v.verify(&parsed).unwrap();
    assert_eq!(w.verify_in(&parsed).unwrap(), t);

    // The time is signed.
    let mut later = cosig.clone();
    later.payload[7] ^= 1;
    assert!(matches!(
        w.verify_cosignature(&body, &later),
        Err(Error::BadSignature(_))
    ));
    // The body is signed.
    assert!(w.verify_cosignature(&checkpoint(100).body(), &cosig).is_err());
    // Every signature bit.
    for bit in 0..512 {
        let mut bad = cosig.clone();
        bad.payload[8 + bit / 8] ^= 1 << (bit % 8);
        assert!(w.verify_cosignature(&body, &bad).is_err());
    }
    // Wrong length.
    let mut short = cosig.clone();
    short.payload.pop();
    assert!(matches!(w.verify_cosignature(&body, &short), Err(Error::Note(_))));
    // Wrong type: the witness's plain note signature (type 0x01) is not a cosignature,
    // neither under its own key id nor relabelled with the cosignature key id.
    let plain = sign_note(&body, &w.name, &wid);
    assert!(matches!(
        w.verify_cosignature(&body, &plain),
        Err(Error::NotSignedBy(_))
    ));
    let mut relabelled = plain.clone();
    relabelled.key_id = w.key_id();
    assert!(w.verify_cosignature(&body, &relabelled).is_err());
    // And a cosignature is not a note signature by the same key.
    let as_log = NoteVerifier {
        name: w.name.clone(),
        key: w.key,
    };
    let cosigned_only = SignedNote {
        signatures: vec![cosig.clone()],
        body: body.clone(),
    };
    assert!(as_log.verify(&cosigned_only).is_err());
    // Wrong witness key.
    let other = identity("note-witness-2");
    let w2 = Witness {
        name: w.name.clone(),
        key: *other.public_key(),
    };
    assert!(matches!(
        w2.verify_cosignature(&body, &cosig),
        Err(Error::NotSignedBy(_))
    ));
    let mut forged = cosign(&body, &w.name, &other, t);
    forged.key_id = w.key_id();
    assert!(matches!(
        w.verify_cosignature(&body, &forged),
        Err(Error::BadSignature(_))
    ));
}

#[test]
#[should_panic(expected = "NUL")]
fn raw_note_signing_refuses_nul() {
    let id = identity("note-nul");
    let _ = id.sign_note(b"pocnet/v1/envelope\0anything");
}

#[test]
fn raw_note_verify_refuses_nul() {
    let id = identity("note-nul-verify");
    let msg = b"text\n";
    let sig = id.sign_note(msg);
    id.public_key().verify_note(msg, &sig, "note").unwrap();
    assert!(id.public_key().verify_note(b"text\n\0", &sig, "note").is_err());
}

#[test]
fn voice_code_is_30_digits_and_tolerant_only_of_separators() {
    let a = identity("voice-a");
    let b = identity("voice-b");
    let code = a.public_key().voice_code();
    assert_eq!(code, a.public_key().voice_code(), "deterministic");
    assert_ne!(code, b.public_key().voice_code());
    let digits = code.digits().to_string();
    assert_eq!(digits.len(), 30);
    assert!(digits.bytes().all(|c| c.is_ascii_digit()));
    let shown = code.to_string();
    assert_eq!(shown.len(), 35);
    assert_eq!(shown.split(' ').count(), 6);
    assert!(shown.split(' ').all(|g| g.len() == 5));
    assert_eq!(shown.replace(' ', ""), digits);

    assert!(code.matches(&digits));
    assert!(code.matches(&shown));
    assert!(code.matches(&shown.replace(' ', "-")));
    assert!(code.matches(&shown.replace(' ', ".")));
    assert!(code.matches(&format!("  {}\t", shown.replace(' ', " - "))));
    assert!(!code.matches(&digits[..29]), "29 digits");
    assert!(!code.matches(&format!("{digits}0")), "31 digits");
    assert!(!code.matches(""));
    assert!(!code.matches(&format!("{shown}x")));
    for i in 0..30 {
        let mut changed = digits.clone().into_bytes();
        changed[i] = if changed[i] == b'9' { b'0' } else { changed[i] + 1 };
        assert!(
            !code.matches(std::str::from_utf8(&changed).unwrap()),
            "digit {i} changed"
        );
    }
    let mut swapped = digits.clone().into_bytes();
    if swapped[0] != swapped[1] {
        swapped.swap(0, 1);
        assert!(!code.matches(std::str::from_utf8(&swapped).unwrap()));
    }
}
