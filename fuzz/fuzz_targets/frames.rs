//! Framing and protocol messages from the other end of a connection: `FrameDecoder` fed
//! in arbitrary chunk splits, then `decode::<Request>`, `decode::<Response>`,
//! `decode::<Delivery>` and `decode::<Member>` on every frame body.
//!
//! Input: `k` (low 3 bits: number of split points; bit 3: use a 64-byte frame limit),
//! then `k` big-endian u16 split offsets, then the byte stream.
//! Invariants: chunked and one-shot decoding yield the same frames and the same error;
//! every message that decodes re-encodes to a frame that decodes to an equal value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocnet_wire::{
    decode, encode, verify_acceptance, AcceptProof, Delivery, FrameDecoder, FrameError, Member, Request, Response,
    Tagged, MAX_FRAME,
};
use serde::{de::DeserializeOwned, Serialize};

/// Pops every complete frame; stops at the first error.
fn drain(dec: &mut FrameDecoder, frames: &mut Vec<Vec<u8>>) -> Option<FrameError> {
    loop {
        match dec.next_frame() {
            Ok(Some(f)) => frames.push(f.to_vec()),
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(v) = decode::<T>(body) {
        let frame = encode(&v);
        assert_eq!(
            u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        let mut dec = FrameDecoder::new(MAX_FRAME);
        dec.push(&frame);
        let again = dec.next_frame().expect("own frame").expect("complete").to_vec();
        assert!(dec.finish().is_ok());
        assert_eq!(decode::<T>(&again).expect("re-decode"), v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else { return };
    let n = (k & 7) as usize;
    let max = if k & 8 != 0 { 64 } else { MAX_FRAME };
    if rest.len() < 2 * n {
        return;
    }
    let (cuts, stream) = rest.split_at(2 * n);
    let mut cuts: Vec<usize> = cuts
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();

    // Chunked, as bytes arrive from the network.
    let mut chunked = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let mut err = None;
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&stream.len())) {
        chunked.push(&stream[from..to]);
        from = to;
        err = drain(&mut chunked, &mut frames);
        if err.is_some() {
            break;
        }
    }

    // One shot.
    let mut whole = FrameDecoder::new(max);
    whole.push(stream);
    let mut frames1 = Vec::new();
    let err1 = drain(&mut whole, &mut frames1);
    assert_eq!(frames, frames1, "chunked and one-shot decoding disagree");
    assert_eq!(err, err1, "chunked and one-shot decoding disagree on the error");
    if err.is_none() {
        assert_eq!(chunked.finish(), whole.finish());
        let consumed: usize = frames.iter().map(|f| 4 + f.len()).sum();
        assert_eq!(whole.finish().is_ok(), consumed == stream.len());
    }

    for f in &frames {
        assert!(f.len() <= max);
        round_trip::<Request>(f);
        round_trip::<Response>(f);
        round_trip::<Delivery>(f);
        round_trip::<Member>(f);
        // Session streams (protocol 2) carry tagged requests and answers.
        round_trip::<Tagged<Request>>(f);
        round_trip::<Tagged<Response>>(f);
        // A lying relay's acceptance proof: checking it never panics, whatever its shape.
        if let Ok(p) = decode::<AcceptProof>(f) {
            let key = pocnet_fuzz::me();
            assert!(verify_acceptance(key.public_key(), &[0; 32], 0, &p).is_err());
        }
    }
    // A frame body handed over directly (QUIC streams carry one request each).
    round_trip::<Request>(stream);
    round_trip::<Response>(stream);
});
