//! Flow tests: the engine driven directly (no HTTP), with the real embedded store, real keys, and a fixed clock.
//! One binary, one module per area (STYLE.md §2.9).

mod common;

mod authorize;
mod code_pkce;
mod metadata;
mod refresh;
mod register;
mod revoke_introspect;
mod store_embedded;
mod upstream_local;
mod verify;
