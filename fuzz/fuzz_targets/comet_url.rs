//! The comet connection URL (the part after `/ws/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|rest: &str| {
    let _ = huddle_gateway::comet::fuzzing::connect_url(rest);
});
