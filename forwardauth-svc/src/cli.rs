//! Command-line interface (filled in by the CLI work).
