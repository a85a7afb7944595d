//! Examples of embedding `oauth-core`. The runnable ones live beside this crate as cargo examples:
//! `cargo run -p examples --example embed` (no web framework at all) and `cargo run -p examples --example axum`
//! (the whole authorization server and gate on axum, from [`axum_server`]).

pub mod axum_server;
