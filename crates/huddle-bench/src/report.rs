//! The one-line machine-readable summary every scenario ends with:
//! `RESULT scenario=NAME key=value ...` (values never contain spaces).

use std::fmt::Display;

pub struct Summary {
    line: String,
}

impl Summary {
    pub fn new(scenario: &str) -> Summary {
        Summary {
            line: format!("RESULT scenario={scenario}"),
        }
    }

    /// Adds `key=value`; spaces in the value become `_`.
    pub fn add(&mut self, key: &str, value: impl Display) -> &mut Summary {
        let v = value.to_string().replace(char::is_whitespace, "_");
        self.line.push_str(&format!(" {key}={v}"));
        self
    }

    /// Adds `key=value` with a fixed number of decimals.
    pub fn num(&mut self, key: &str, value: f64, decimals: usize) -> &mut Summary {
        self.add(key, format!("{value:.decimals$}"))
    }

    /// Adds an optional figure; absent ones are written as `-`.
    pub fn opt(&mut self, key: &str, value: Option<f64>, decimals: usize) -> &mut Summary {
        match value {
            Some(v) => self.num(key, v, decimals),
            None => self.add(key, "-"),
        }
    }

    pub fn print(&self) {
        println!("{}", self.line);
    }
}

/// MiB from bytes.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}
