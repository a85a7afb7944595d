//! Logging setup (filled in by the CLI work).
