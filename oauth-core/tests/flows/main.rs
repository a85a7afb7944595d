//! Flow tests: the engine driven directly (no HTTP), with the real embedded store, real keys, and a fixed clock.
//! One binary, one module per area (STYLE.md §2.9).

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

mod events;
mod gate;

mod admin;
mod authorize;
mod browser;
#[cfg(feature = "cimd")]
mod cimd;
mod code_pkce;
mod login;
mod maintain;
mod metadata;
mod recheck;
mod refresh;
mod register;
mod revoke_introspect;
mod sealed;
mod session;
mod store_embedded;
#[cfg(feature = "redis")]
mod store_redis;
mod upstream_local;
mod verify;
