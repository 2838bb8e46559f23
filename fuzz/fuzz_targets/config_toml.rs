//! The configuration loader over a TOML file's text (defaults, the file,
//! validation), as `huddle serve --config` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = huddle::Config::from_toml_str(text) {
        // What the server derives from a loaded configuration must not panic either.
        let _ = config.masked();
        let _ = config.database_url();
        let _ = config.users_socket.address();
    }
});
