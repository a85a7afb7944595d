//! Where a value comes from, so that every error can say so: the TOML parse that names the key path of the first
//! mismatch, the [`Ctx`] every subsystem validates with (the file's name, the directory relative paths resolve
//! against, the environment lookup), and [`SecretString`] for values that must never reach a `Debug` output.
//!
//! This is the one place that knows how a file or a variable is read; the subsystem modules only say *which* key
//! or variable a value came from, so every message has the same `file: key: reason` or `VAR: reason` shape.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// A secret read from the file: `Debug` never shows it.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub(super) struct SecretString(pub(super) String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Deserializes TOML text into `T`, naming the key path of the first mismatch.
pub(super) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let key = match (key.as_str(), inner.span()) {
            (".", Some(span)) => line_column(text, span.start),
            (".", None) => "(top level)".to_owned(),
            _ => key,
        };
        let reason = inner.message().trim_end().replace('\n', "; ");
        ConfigError::Parse {
            file: file.display().to_string(),
            key,
            reason,
        }
    })
}

/// `line L, column C` (both from 1) of a byte offset.
fn line_column(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// Where a value came from, for error messages.
pub(super) enum Origin<'a> {
    /// A key of the configuration file.
    File(&'a str),
    /// An environment variable.
    Env(&'static str),
}

/// Why a count of zero is refused.
pub(super) const AT_LEAST_ONE: &str = "must be at least 1";
/// Why a duration or a size of zero is refused.
pub(super) const GREATER_THAN_ZERO: &str = "must be greater than zero";

/// What the second stage needs besides the raw values.
pub(super) struct Ctx<'a> {
    /// The file's name as given, for messages.
    pub(super) file: String,
    /// The directory relative paths in the file resolve against.
    pub(super) base: PathBuf,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    pub(super) fn invalid(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// `value`, refused with `reason` ([`AT_LEAST_ONE`] for a count, [`GREATER_THAN_ZERO`] for a duration or a
    /// size) when it is zero.
    pub(super) fn nonzero<T: PartialOrd + From<u8>>(
        &self,
        key: impl Into<String>,
        value: Option<T>,
        reason: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        match value {
            Some(v) if v < T::from(1) => Err(self.invalid(key, reason)),
            other => Ok(other),
        }
    }

    pub(super) fn at(&self, origin: &Origin<'_>, reason: String) -> ConfigError {
        match origin {
            Origin::File(key) => self.invalid(*key, reason),
            Origin::Env(var) => ConfigError::Env { var, reason },
        }
    }

    /// A variable's value; empty counts as unset.
    pub(super) fn var(&self, var: &str) -> Option<String> {
        (self.env)(var).filter(|v| !v.is_empty())
    }

    /// The environment value if set, else the file's value, each parsed with errors naming its origin.
    pub(super) fn setting<T>(
        &self,
        var: &'static str,
        key: &'static str,
        file_value: Option<&str>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        if let Some(v) = self.var(var) {
            return parse(&v)
                .map(Some)
                .map_err(|reason| ConfigError::Env { var, reason });
        }
        file_value
            .map(|v| parse(v).map_err(|reason| self.invalid(key, reason)))
            .transpose()
    }
}
