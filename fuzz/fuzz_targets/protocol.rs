//! One request line from arbitrary bytes through the broker's decoder (what the agent socket
//! does with each line): it must never panic, a call it accepts must survive being written back
//! out and decoded again unchanged, and a refusal names the kind of fault, not the line.

#![no_main]

use frona_broker::protocol::{self, DecodeError, VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    match protocol::decode(line) {
        Ok(call) => {
            assert_eq!(call.version(), VERSION);
            let written = serde_json::to_vec(&call).unwrap_or_default();
            assert_eq!(protocol::decode(&written), Ok(call), "round trip");
        }
        Err(DecodeError::Version { version }) => assert_ne!(version, VERSION),
        // The answer names the kind of fault only, never what the line held.
        Err(DecodeError::Malformed { kind }) => assert!(matches!(
            kind,
            "not JSON" | "truncated" | "unexpected or missing fields" | "i/o error"
        )),
    }
});
