//! A comet command frame (`{command}\n{arguments}`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = huddle_gateway::comet::fuzzing::command(text);
});
