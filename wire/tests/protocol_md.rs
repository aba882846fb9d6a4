//! PROTOCOL.md §8's worked example, byte for byte.

use pocnet_wire::{encode, Request, Tagged};

#[test]
fn session_stream_example_bytes_match_protocol_md() {
    let mut bytes = encode(&Request::Pipeline);
    bytes.extend(encode(&Tagged {
        id: 7,
        body: Request::Lookup { query: "*".into() },
    }));
    assert_eq!(bytes, [0, 0, 0, 1, 9, 0, 0, 0, 4, 7, 2, 1, 0x2a]);
    let doc = include_str!("../../PROTOCOL.md");
    assert!(doc.contains("`00 00 00 01 09` (`Pipeline`) then `00 00 00 04 07 02 01 2a`"));
}
