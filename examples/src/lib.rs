//! Examples live beside this crate as cargo examples: `cargo run -p examples --example embed`.
