//! The article's three roles, taken from the examples themselves so the tests check the
//! very policies users run.

#![allow(dead_code)]

#[path = "../../examples/web_server.rs"]
pub mod web_server;

#[path = "../../examples/internal_server.rs"]
pub mod internal_server;

#[path = "../../examples/file_server.rs"]
pub mod file_server;

use vpsfw::Policy;

/// `(name, policy)` for each role.
pub fn all() -> Vec<(&'static str, Policy)> {
    vec![
        ("web_server", web_server::policy()),
        ("internal_server", internal_server::policy()),
        ("file_server", file_server::policy()),
    ]
}
