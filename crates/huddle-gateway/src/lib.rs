//! huddle's front doors. Each module parses its wire, authorizes through the
//! domain, calls one domain method and maps the error — no business rules here.

pub mod comet;
pub mod http;
pub mod socketio;
pub mod users_ws;
mod wsconn;
