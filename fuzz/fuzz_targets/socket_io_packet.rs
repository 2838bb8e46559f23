//! The Socket.IO packet decoder (the text after Engine.IO's `4`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = huddle_sio::fuzzing::socket_io_packet(text);
});
