//! `[pages]`: the brand on the sign-in, consent, sign-out and error pages, and templates that replace the
//! built-in ones.
//!
//! Everything here ends up inside a page, so each value is checked for what a page can hold safely: the name is
//! plain text (escaped anyway), the accent colour exactly `#rrggbb` (it goes into a style sheet), the logo an
//! https URL or an absolute path on the issuer's origin (the content security policy allows images from its
//! origin only). A `templates_dir` is read whole at startup; each file must be named like a built-in template
//! (`login.html`, `consent.html`, …), so that a misspelt name is an error rather than a template silently never
//! used, and every template is compiled and rendered with a sample page before the service starts.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use super::source::Ctx;
use crate::pages::{PagesConfig, TemplateOverride, check_templates, template_names};

/// The longest service name accepted (it is a heading, not a paragraph).
const MAX_NAME_CHARS: usize = 80;
/// The longest logo URL accepted.
const MAX_LOGO_CHARS: usize = 2048;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPages {
    service_name: Option<String>,
    logo_url: Option<String>,
    accent_color: Option<String>,
    templates_dir: Option<PathBuf>,
}

pub(super) fn pages(ctx: &Ctx<'_>, raw: RawPages) -> Result<PagesConfig, ConfigError> {
    let mut config = PagesConfig::default();
    if let Some(name) = raw.service_name {
        config.service_name =
            Some(service_name(&name).map_err(|r| ctx.invalid("pages.service_name", r))?);
    }
    if let Some(logo) = raw.logo_url {
        logo_url(&logo).map_err(|r| ctx.invalid("pages.logo_url", r))?;
        config.logo_url = Some(logo);
    }
    if let Some(color) = raw.accent_color {
        accent_color(&color).map_err(|r| ctx.invalid("pages.accent_color", r))?;
        config.accent_color = Some(color.to_ascii_lowercase());
    }
    if let Some(dir) = raw.templates_dir {
        config.templates = templates(ctx, &ctx.base.join(dir))?;
    }
    Ok(config)
}

fn service_name(v: &str) -> Result<String, String> {
    let name = v.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}

fn logo_url(v: &str) -> Result<(), String> {
    const EXPECTED: &str =
        "expected an https URL or an absolute path on this server (`/static/logo.svg`)";
    if v.len() > MAX_LOGO_CHARS {
        return Err(format!("longer than {MAX_LOGO_CHARS} characters"));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("contains whitespace; {EXPECTED}"));
    }
    if v.starts_with('/') && !v.starts_with("//") && !v.contains('\\') {
        return Ok(());
    }
    match url::Url::parse(v) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() => Ok(()),
        Ok(u) => Err(format!("a {} URL; {EXPECTED}", u.scheme())),
        Err(e) => Err(format!("not a URL ({e}); {EXPECTED}")),
    }
}

fn accent_color(v: &str) -> Result<(), String> {
    match v.strip_prefix('#') {
        Some(hex) if hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        _ => Err(format!(
            "expected a colour as #rrggbb (six hex digits, e.g. \"#0969da\"), not {v:?}"
        )),
    }
}

/// The templates in `dir`, each checked by name and rendered with a sample page. Files whose name starts with
/// a dot (`.gitkeep`) are skipped.
fn templates(ctx: &Ctx<'_>, dir: &std::path::Path) -> Result<Vec<TemplateOverride>, ConfigError> {
    const KEY: &str = "pages.templates_dir";
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ctx.invalid(KEY, format!("cannot read {}: {e}", dir.display())))?;
    let mut overrides = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| ctx.invalid(KEY, format!("cannot read {}: {e}", dir.display())))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(ctx.invalid(KEY, format!("{}: the name is not UTF-8", path.display())));
        };
        if name.starts_with('.') {
            continue;
        }
        if !template_names().any(|known| known == name) {
            return Err(ctx.invalid(
                KEY,
                format!(
                    "{}: not the name of a built-in template (one of {})",
                    path.display(),
                    template_names().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let source = std::fs::read_to_string(&path)
            .map_err(|e| ctx.invalid(KEY, format!("{}: cannot read: {e}", path.display())))?;
        overrides.push(TemplateOverride { name, path, source });
    }
    overrides.sort_by(|a, b| a.name.cmp(&b.name));
    check_templates(&overrides).map_err(|e| {
        let file = overrides.iter().find(|t| t.name == e.name).map_or_else(
            || format!("{} (built in)", e.name),
            |t| t.path.display().to_string(),
        );
        ctx.invalid(KEY, format!("{file}: {}", e.reason))
    })?;
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_a_page_can_hold() {
        assert_eq!(service_name("  Acme MCP  ").as_deref(), Ok("Acme MCP"));
        assert!(service_name(" ").is_err());
        assert!(service_name("a\u{7}b").is_err());
        assert!(service_name(&"x".repeat(81)).is_err());
        for ok in ["https://cdn.acme.test/logo.svg", "/static/logo.png"] {
            assert_eq!(logo_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://cdn.acme.test/logo.svg",
            "//cdn.acme.test/logo.svg",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "logo.png",
            "/a b.png",
        ] {
            assert!(logo_url(bad).is_err(), "{bad}");
        }
        assert_eq!(accent_color("#0A7cFF"), Ok(()));
        for bad in [
            "0a7cff",
            "#0a7cf",
            "#0a7cffff",
            "red",
            "#0a7cfg",
            "#0a7cff;}",
        ] {
            assert!(accent_color(bad).is_err(), "{bad}");
        }
    }
}
