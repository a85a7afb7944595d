//! Tests of loading and validation: every error path asserts the message a person would read. One module per
//! subsystem, as in `config/`; the fixture and helpers are here.

mod admin;
mod client_metadata;
mod gate;
mod http;
mod limits;
mod load;
mod observe;
mod pages;
mod providers;
mod readme;
mod reference;
mod registration;
mod resources;
mod store;
mod users;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use oauth_core::{
    AccessPolicy, HostPattern, HostPolicy, LocalUsers, Secret, SigningAlg, ToolScope,
};
use tempfile::TempDir;

use super::*;

/// A valid argon2id hash (of `pw`), computed once.
fn hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| LocalUsers::hash_password("pw").unwrap())
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// A temporary directory holding `config.toml` with `text`.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(text: &str) -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        f.write("config.toml", text);
        f
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The file name as it appears in messages.
    fn file(&self) -> String {
        self.path().display().to_string()
    }

    fn load(&self) -> Result<Config, ConfigError> {
        load(Some(&self.path()), &no_env)
    }

    fn load_with(&self, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        load(Some(&self.path()), &move |k| vars.get(k).cloned())
    }

    /// The error message of loading, which must fail.
    fn error(&self) -> String {
        self.load().unwrap_err().to_string()
    }

    /// Loading fails with `message`, after this file's name.
    #[track_caller]
    fn assert_error(&self, message: &str) {
        assert_eq!(self.error(), format!("{}: {message}", self.file()));
    }

    /// As [`Fixture::assert_error`], naming `case` when it fails.
    #[track_caller]
    fn assert_error_because(&self, message: &str, case: &str) {
        assert_eq!(
            self.error(),
            format!("{}: {message}", self.file()),
            "{case}"
        );
    }

    /// Loading fails with a message that starts with `prefix`, after this file's name.
    #[track_caller]
    fn assert_error_starts(&self, prefix: &str) {
        assert_starts_with(&self.error(), &format!("{}: {prefix}", self.file()));
    }
}

/// `message` starts with `prefix`; a failure shows the whole message.
#[track_caller]
fn assert_starts_with(message: &str, prefix: &str) {
    assert!(message.starts_with(prefix), "{message}");
}

/// The lines of a module's `//!` documentation, without the `//! ` markers.
fn module_doc(source: &str) -> Vec<&str> {
    source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap()
        })
        .collect()
}

/// The ```` ```toml ```` blocks of `lines`, in order.
fn toml_blocks(lines: &[&str]) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for &line in lines {
        match (&mut current, line) {
            (None, "```toml") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap().join("\n")),
            (Some(b), l) => b.push(l),
            (None, _) => {}
        }
    }
    blocks
}

/// One https resource: the least a file needs besides what a test adds.
const HTTPS_RESOURCE: &str = "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n";

const MINIMAL: &str = r#"
[[resources]]
resource = "http://127.0.0.1:8080/mcp"
scopes = ["mcp"]
"#;
