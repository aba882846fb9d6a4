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

#[test]
fn escalation_example_bytes_match_protocol_md() {
    let bytes = encode(&Request::Escalate {
        envelope: vec![0xaa, 0xbb],
        plan: vec![0xcc],
    });
    assert_eq!(bytes, [0, 0, 0, 6, 0x15, 2, 0xaa, 0xbb, 1, 0xcc]);
    let doc = include_str!("../../PROTOCOL.md");
    assert!(doc.contains("`00 00 00 06 15 02 aa bb 01 cc`"));
    assert!(doc.contains("`04 04 01 00 02 01 00 00 00 ac 02 b4 29 01 02`"));
    assert!(doc.contains("length ≤ 2 162 688 (2 MiB + 64 KiB)"));
    assert_eq!(pocnet_wire::MAX_FRAME, 2_162_688);
}
