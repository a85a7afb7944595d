//! One module per endpoint, each taking a wire request to a domain outcome (mini-redis's `cmd/` layout).
//! Each adds its `AuthServer` methods in an `impl` block of its own.

pub(crate) mod authorize;
pub(crate) mod browser;
pub(crate) mod client;
pub(crate) mod collect;
pub(crate) mod gate;
pub(crate) mod introspect;
pub(crate) mod login;
pub(crate) mod register;
pub(crate) mod revoke;
pub(crate) mod session;
pub(crate) mod token;
pub(crate) mod upstream;
pub(crate) mod verify;
