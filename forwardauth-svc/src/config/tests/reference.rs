//! `docs/configuration.md` lists every key, and no key that does not exist.
//!
//! The keys are not copied into the test by hand: they are read from the configuration types themselves. A
//! [`KeyWalk`] is a serde `Deserializer` that answers whatever a type asks for with a made-up value, and records
//! each struct field it is asked for at its key path. Deserializing [`RawConfig`] (and the users file's type) from
//! it visits every field serde knows of, renames and all: a struct yields all its `FIELDS`, an option is present, a
//! list has one element (`resources[]`), a map one entry (`<key>`), a string is empty, a number zero. A key added
//! to a `Raw…` struct and not to the reference fails the test, naming it.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::*;

/// Why the walk stopped: a type asked for something it cannot be given.
#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

/// A value at `path` of the type being walked; every struct field under it lands in `found`.
struct KeyWalk<'a> {
    path: String,
    found: &'a RefCell<BTreeSet<String>>,
}

impl<'a> KeyWalk<'a> {
    fn at(&self, suffix: &str) -> KeyWalk<'a> {
        let path = match (self.path.as_str(), suffix.strip_prefix('[')) {
            ("", _) => suffix.to_owned(),
            (p, Some(_)) => format!("{p}{suffix}"),
            (p, None) => format!("{p}.{suffix}"),
        };
        KeyWalk {
            path,
            found: self.found,
        }
    }
}

macro_rules! walk_with {
    ($($method:ident => |$v:ident| $answer:expr;)*) => {
        $(fn $method<V: Visitor<'de>>(self, $v: V) -> Result<V::Value, Stop> {
            $answer
        })*
    };
}

impl<'de> de::Deserializer<'de> for KeyWalk<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop(format!(
            "{}: a self-describing value (deserialize_any: untagged, flatten, or a custom Deserialize) cannot be walked; give KeyWalk a case for it",
            self.path
        )))
    }

    walk_with! {
        deserialize_bool => |v| v.visit_bool(false);
        deserialize_i8 => |v| v.visit_i64(0);
        deserialize_i16 => |v| v.visit_i64(0);
        deserialize_i32 => |v| v.visit_i64(0);
        deserialize_i64 => |v| v.visit_i64(0);
        deserialize_u8 => |v| v.visit_u64(0);
        deserialize_u16 => |v| v.visit_u64(0);
        deserialize_u32 => |v| v.visit_u64(0);
        deserialize_u64 => |v| v.visit_u64(0);
        deserialize_f32 => |v| v.visit_f64(0.0);
        deserialize_f64 => |v| v.visit_f64(0.0);
        deserialize_char => |v| v.visit_char('x');
        deserialize_str => |v| v.visit_str("");
        deserialize_string => |v| v.visit_str("");
        deserialize_bytes => |v| v.visit_bytes(b"");
        deserialize_byte_buf => |v| v.visit_bytes(b"");
        deserialize_unit => |v| v.visit_unit();
        deserialize_identifier => |v| v.visit_str("");
        deserialize_ignored_any => |v| v.visit_unit();
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Stop> {
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Stop> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_seq(Elements {
            walk: Some(self.at("[]")),
            left: 1,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Stop> {
        v.visit_seq(Elements {
            walk: Some(self.at("[]")),
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, Stop> {
        self.deserialize_tuple(len, v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_map(Fields {
            walk: self,
            names: &["<key>"],
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Stop> {
        v.visit_map(Fields {
            walk: self,
            names: fields,
            next: 0,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Stop> {
        // The first variant, as a unit variant: enough for the string enums a configuration has.
        let first = variants
            .first()
            .ok_or_else(|| Stop(format!("{}: an enum without variants", self.path)))?;
        v.visit_enum((*first).into_deserializer())
    }
}

/// A list of `left` elements, each walked at `<path>[]`.
struct Elements<'a> {
    walk: Option<KeyWalk<'a>>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let Some(walk) = &self.walk else {
            return Ok(None);
        };
        seed.deserialize(walk.here()).map(Some)
    }
}

/// A struct's fields (or a map's one entry, `<key>`), each recorded at its path and walked.
struct Fields<'a> {
    walk: KeyWalk<'a>,
    names: &'static [&'static str],
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.names.get(self.next) {
            Some(name) => seed.deserialize((*name).into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let name = self.names.get(self.next).copied().unwrap_or("?");
        self.next += 1;
        let walk = self.walk.at(name);
        self.walk.found.borrow_mut().insert(walk.path.clone());
        seed.deserialize(walk)
    }
}

/// Every key path of the type `T` (`store.backend`, `resources[].scope_grants.<key>.allowed_groups`).
fn key_paths<T: serde::de::DeserializeOwned>() -> BTreeSet<String> {
    let found = RefCell::new(BTreeSet::new());
    let walked = T::deserialize(KeyWalk {
        path: String::new(),
        found: &found,
    });
    if let Err(e) = walked {
        panic!("the key walk stopped: {e}");
    }
    found.into_inner()
}

impl<'a> KeyWalk<'a> {
    /// A walk at `path` itself (an element of a list shares its list's `[]` path).
    fn here(&self) -> KeyWalk<'a> {
        KeyWalk {
            path: self.path.clone(),
            found: self.found,
        }
    }
}

/// `<scope>`, `<method[:name]>`: any placeholder the reference writes is the walk's `<key>`.
fn normalized(key: &str) -> String {
    let mut out = String::new();
    let mut rest = key;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => {
                out.push_str("<key>");
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The reference's key tables: (configuration keys, users-file keys, environment variables), each from the first
/// column of a table row, in backticks.
fn documented() -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let doc = include_str!("../../../../docs/configuration.md");
    let (mut config, mut users, mut vars) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut in_users_file = false;
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            // A section documents its table: "## `[store]`: …", "## `[[resources]]`: …"; the users file's
            // section its `[[users]]`.
            in_users_file = heading.starts_with("The users file");
            if in_users_file {
                users.insert("users".to_owned());
            } else if let Some(table) = heading
                .strip_prefix("`[")
                .and_then(|rest| rest.split_once(']'))
                .map(|(table, _)| table.trim_start_matches('['))
            {
                config.insert(table.to_owned());
            }
            continue;
        }
        let Some(cell) = line
            .strip_prefix("| `")
            .and_then(|rest| rest.split_once("` |"))
            .map(|(cell, _)| cell)
        else {
            continue;
        };
        if cell.starts_with("FORWARDAUTH_") || cell.starts_with("OTEL_") {
            vars.insert(cell.to_owned());
        } else if in_users_file {
            users.insert(normalized(cell));
        } else {
            config.insert(normalized(cell));
        }
    }
    (config, users, vars)
}

/// Every `"FORWARDAUTH_…"` string literal in the service's source: the variables it reads.
fn variables_in_source() -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let quoted = text
                    .match_indices("\"FORWARDAUTH_")
                    .chain(text.match_indices("\"OTEL_"));
                for (i, _) in quoted {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    // The bare prefixes (this very search, for one) are no variables.
                    if name != "FORWARDAUTH_" && name != "OTEL_" {
                        vars.insert(name);
                    }
                }
            }
        }
    }
    vars
}

/// What `expected` has and `listed` lacks, and the other way round, as a message; empty when they agree.
fn differences(what: &str, expected: &BTreeSet<String>, listed: &BTreeSet<String>) -> String {
    let missing: Vec<&String> = expected.difference(listed).collect();
    let unknown: Vec<&String> = listed.difference(expected).collect();
    let mut message = String::new();
    if !missing.is_empty() {
        message.push_str(&format!(
            "\n{what} missing from docs/configuration.md (add a row for each):\n"
        ));
        for k in missing {
            message.push_str(&format!("  {k}\n"));
        }
    }
    if !unknown.is_empty() {
        message.push_str(&format!(
            "\n{what} in docs/configuration.md that do not exist (remove or rename):\n"
        ));
        for k in unknown {
            message.push_str(&format!("  {k}\n"));
        }
    }
    message
}

#[test]
fn the_configuration_reference_lists_every_key_and_variable() {
    let (config, users, vars) = documented();
    let mut problems = differences("configuration keys", &key_paths::<RawConfig>(), &config);
    problems.push_str(&differences(
        "users file keys",
        &key_paths::<crate::config::users::RawUsersFile>(),
        &users,
    ));
    problems.push_str(&differences(
        "environment variables",
        &variables_in_source(),
        &vars,
    ));
    assert!(problems.is_empty(), "{problems}");
}

#[test]
fn the_key_walk_finds_nested_keys_renames_and_map_entries() {
    // The walk itself, on keys whose shapes differ: a renamed field in a list of tables, a table in a map in a
    // list, a nested table, a top-level option.
    let keys = key_paths::<RawConfig>();
    for key in [
        "listen",
        "store.backend",
        "providers[].type",
        "providers[].claims.groups",
        "resources[].scope_grants.<key>",
        "resources[].scope_grants.<key>.allowed_groups",
        "resources[].tool_scopes.<key>",
        "gate.headers.user_id",
    ] {
        assert!(keys.contains(key), "{key} not found: {keys:?}");
    }
    assert!(
        !keys.contains("providers[].kind"),
        "the Rust name of a renamed field"
    );
    assert_eq!(
        key_paths::<crate::config::users::RawUsersFile>(),
        [
            "users",
            "users[].email",
            "users[].groups",
            "users[].name",
            "users[].password_hash",
            "users[].username"
        ]
        .map(String::from)
        .into()
    );
    // A missing row is reported by name.
    let mut documented = documented().0;
    documented.remove("store.backend");
    let message = differences("configuration keys", &keys, &documented);
    assert!(
        message.contains("missing from docs/configuration.md"),
        "{message}"
    );
    assert!(message.contains("\n  store.backend\n"), "{message}");
}
