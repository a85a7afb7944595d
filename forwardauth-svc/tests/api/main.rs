//! API tests: the actix app in process (`routes::configure`, the same table `main` uses), pinning status,
//! headers and body of every endpoint's success and error paths.

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

mod authorize;
mod cimd;
mod limits;
mod metadata;
mod pages;
mod register;
mod scopes;
mod token;
mod tools;
mod verify;
