//! A users-socket client frame (JSON with a numeric `eventType`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = huddle_gateway::users_ws::fuzzing::request(text);
});
