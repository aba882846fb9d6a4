//! The plaintext of a message envelope: `MessageBody` (and a policy envelope's
//! `PolicyNotice`), postcard-decoded by the client after `open`. Invariant: whatever decodes re-encodes to a value that decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocnet_wire::content::{AttachmentRef, MessageBody, PolicyNotice};
use pocnet_wire::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = decode::<MessageBody>(data) {
        let enc = encode(&body);
        assert_eq!(decode::<MessageBody>(&enc[4..]).expect("re-decode"), body);
    }
    if let Ok(a) = decode::<AttachmentRef>(data) {
        let enc = encode(&a);
        assert_eq!(decode::<AttachmentRef>(&enc[4..]).expect("re-decode"), a);
    }
    // Strict: whatever decodes is exactly its own encoding.
    if let Ok(n) = PolicyNotice::decode(data) {
        assert_eq!(n.encode(), data);
    }
});
