//! Helpers shared by the unit tests of several modules.

#![allow(clippy::unwrap_used)]

/// The part of `text` after the first `begin`, up to the next `end` (or `begin`); there must be one.
pub fn between<'a>(text: &'a str, begin: &str, end: &str) -> &'a str {
    text.split(begin)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap()
}

/// The part of the workspace README between `<!-- {name}:begin -->` (and its line end) and `<!-- {name}:end -->`.
pub fn readme_section(name: &str) -> &'static str {
    between(
        include_str!("../../README.md"),
        &format!("<!-- {name}:begin -->\n"),
        &format!("<!-- {name}:end -->"),
    )
}

/// Every one of `lines` is a whole line of `text`.
#[track_caller]
pub fn assert_has_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing {line:?} in\n{text}"
        );
    }
}
