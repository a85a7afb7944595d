//! End-to-end tests against real components; filled by the service, Redis and proxy issues.
pub mod github_standin;
