//! Server-rendered sign-in, consent, sign-out and error pages, under the operator's brand.
//!
//! Templates are minijinja, compiled in, and auto-escaped (their names end in `.html`): every value from a
//! request, a client registration or a client metadata document (client name, username, redirect host) is
//! escaped on output. A `[pages] templates_dir` may replace any of them by a file of the same name; the files
//! are read and test-rendered when the configuration is loaded ([`check_templates`]), so a broken template is a
//! configuration error at startup, not a 500 in front of a user.
//!
//! # What a page must tell the user
//! * **Whose sign-in this is.** Every page names the service (`[pages] service_name`, with `logo_url` and
//!   `accent_color`) and the issuer's host, the one thing a phishing copy cannot fake in the address bar.
//! * **Who is asking, and how sure that is.** Any client registering dynamically can call itself "Claude", so no
//!   heading shows the client's name; the pages say "an application calling itself …" (not verified). A client
//!   whose ID is its metadata document's URL is named by the host serving that document, which is verified by
//!   fetching it; the name in the document is still only a claim. The consent page always names the host the
//!   code goes to, and warns when that is the user's own machine, where any program could be waiting (MCP
//!   security best practices, "localhost redirect impersonation"); consent to such a client is never remembered.
//! * **What is granted.** The consent page names the resource by its configured name and lists exactly the
//!   scopes the token will carry, each with its configured description, and those left out. Approve and Deny
//!   look different (primary and secondary), so the one that spends the request is never a guess.
//! * **How to be someone else.** A signed-in user's pages (consent, an error such as the policy's 403) offer
//!   "Not you? Sign out" (`POST /logout` with the CSRF token; on the consent page with the authorization's
//!   handle, which comes back to its sign-in page).
//!
//! Every page goes out with `X-Frame-Options: DENY`, `frame-ancestors 'none'` and `no-store`, so it can neither
//! be framed (clickjacking the consent button) nor cached; the content security policy allows images only from
//! the logo's origin.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use minijinja::{Environment, Value, context};
use oauth_core::{AuthorizationPrompt, ConsentPage, ErrorPage, SignInPage, SignOutPage, SignedIn};

/// The built-in templates, by name; a `templates_dir` file of one of these names replaces it.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("error.html", include_str!("../templates/error.html")),
    (
        "signed_out.html",
        include_str!("../templates/signed_out.html"),
    ),
    ("sign_out.html", include_str!("../templates/sign_out.html")),
];

/// The names a `templates_dir` file may have.
pub fn template_names() -> impl Iterator<Item = &'static str> {
    TEMPLATES.iter().map(|(name, _)| *name)
}

/// The accent colour without `[pages] accent_color`.
pub const DEFAULT_ACCENT: &str = "#0969da";

const FALLBACK: &str = "<!doctype html><title>Error</title><p>This page could not be shown.</p>";

/// The brand and template overrides of `[pages]`, validated ([`crate::config`] reads them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PagesConfig {
    /// The service's name, on every page (`Sign in to Acme`).
    pub service_name: Option<String>,
    /// The logo: an https URL, or an absolute path on the issuer's origin.
    pub logo_url: Option<String>,
    /// The accent colour (`#rrggbb`) of the primary buttons and links.
    pub accent_color: Option<String>,
    /// Templates replacing the built-in ones of the same name.
    pub templates: Vec<TemplateOverride>,
}

/// A template read from `templates_dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateOverride {
    /// The built-in template it replaces (`consent.html`).
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
}

/// A template that does not compile or render: its name and the template engine's message.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct TemplateError {
    /// The template.
    pub name: String,
    /// What is wrong (with the line, where the engine knows it).
    pub reason: String,
}

/// The page renderer: the templates with the brand, built once at startup and shared by every request.
#[derive(Clone)]
pub struct Pages {
    inner: Arc<Inner>,
}

struct Inner {
    env: Environment<'static>,
    csp: HeaderValue,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").finish_non_exhaustive()
    }
}

impl Default for Pages {
    /// The built-in templates, no brand, no issuer host (for tests of single pages).
    fn default() -> Self {
        Pages::build(&PagesConfig::default(), "").unwrap_or_else(|_| Pages {
            inner: Arc::new(Inner {
                env: Environment::new(),
                csp: HeaderValue::from_static(CSP_BASE),
            }),
        })
    }
}

const CSP_BASE: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

impl Pages {
    /// The pages of `config` for the service at `issuer` (whose host every page shows).
    ///
    /// # Errors
    /// [`TemplateError`] for an override that does not compile or render with a sample of every page.
    pub fn build(config: &PagesConfig, issuer: &str) -> Result<Pages, TemplateError> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            let replaced = config.templates.iter().find(|t| t.name == *name);
            let source = replaced.map_or((*source).to_owned(), |t| t.source.clone());
            env.add_template_owned(*name, source)
                .map_err(|e| TemplateError {
                    name: (*name).to_owned(),
                    reason: e.to_string(),
                })?;
        }
        let host = url::Url::parse(issuer)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                })
            })
            .unwrap_or_default();
        env.add_global("issuer_host", host);
        env.add_global("service_name", config.service_name.clone());
        env.add_global("logo_url", config.logo_url.clone());
        env.add_global(
            "accent_color",
            config.accent_color.as_deref().unwrap_or(DEFAULT_ACCENT),
        );
        let csp = match config.logo_url.as_deref().map(logo_source) {
            Some(src) => format!("{CSP_BASE}; img-src {src}"),
            None => CSP_BASE.to_owned(),
        };
        let pages = Pages {
            inner: Arc::new(Inner {
                env,
                csp: HeaderValue::from_str(&csp)
                    .unwrap_or_else(|_| HeaderValue::from_static(CSP_BASE)),
            }),
        };
        pages.check()?;
        Ok(pages)
    }

    /// Renders every page from a sample, so that an override that fails at render time (an unknown parent
    /// template, a filter that does not exist, an error in a branch) fails here.
    fn check(&self) -> Result<(), TemplateError> {
        for (name, ctx) in samples() {
            self.inner
                .env
                .get_template(name)
                .and_then(|t| t.render(ctx))
                .map_err(|e| TemplateError {
                    name: name.to_owned(),
                    reason: detailed(&e),
                })?;
        }
        Ok(())
    }

    fn render(&self, name: &str, ctx: Value) -> String {
        match self
            .inner
            .env
            .get_template(name)
            .and_then(|t| t.render(ctx))
        {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(template = name, error = %detailed(&e), "template failed to render");
                FALLBACK.to_owned()
            }
        }
    }

    /// The sign-in page: a button per identity provider and, when local users exist, the password form.
    pub fn sign_in(&self, page: &SignInPage) -> String {
        self.render("login.html", sign_in_context(page))
    }

    /// The consent page.
    pub fn consent(&self, page: &ConsentPage) -> String {
        self.render("consent.html", consent_context(page))
    }

    /// An error page.
    pub fn error(&self, page: &ErrorPage) -> String {
        self.render("error.html", error_context(page))
    }

    /// The page after signing out.
    pub fn signed_out(&self) -> String {
        self.render("signed_out.html", context! {})
    }

    /// The page `GET /logout` shows: the sign-out form, or that nobody is signed in.
    pub fn sign_out(&self, page: &SignOutPage) -> String {
        self.render("sign_out.html", sign_out_context(page))
    }

    /// An HTML response with the anti-framing, no-cache and content security headers.
    pub fn html(&self, status: StatusCode, body: String) -> HttpResponse {
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::CONTENT_SECURITY_POLICY, self.inner.csp.clone()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(body)
    }

    /// An error page as a response: its status, and `Retry-After` when it says when to try again.
    pub fn error_response(&self, page: &ErrorPage) -> HttpResponse {
        let mut res = self.html(crate::error::status(page.status), self.error(page));
        if let Some(wait) = page.retry_after {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(oauth_core::throttle::whole_seconds(wait)),
            );
        }
        res
    }
}

/// The message of a template error with its cause chain (minijinja puts the line in the display, and the
/// cause of an error inside an included template in `source`).
fn detailed(e: &minijinja::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The CSP source of a validated logo URL: its origin, or `'self'` for a path.
fn logo_source(logo: &str) -> String {
    match url::Url::parse(logo) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "'self'".to_owned(),
    }
}

/// Checks the templates `overrides` would make, with a sample of every page.
///
/// # Errors
/// [`TemplateError`] naming the template.
pub fn check_templates(overrides: &[TemplateOverride]) -> Result<(), TemplateError> {
    let config = PagesConfig {
        templates: overrides.to_vec(),
        ..PagesConfig::default()
    };
    Pages::build(&config, "https://auth.example.com").map(|_| ())
}

/// How the pages name a client: by the verified host of its metadata document when it has one, and otherwise
/// by what it calls itself, marked as unverified.
fn client_context(prompt: &AuthorizationPrompt) -> Value {
    context! {
        client_name => prompt.client_name,
        client_id => prompt.client_id,
        client_host => prompt.client_host,
    }
}

fn signed_in_context(who: Option<&SignedIn>) -> Value {
    match who {
        Some(w) => context! { user => w.user, csrf => w.csrf },
        None => Value::from(()),
    }
}

fn sign_in_context(page: &SignInPage) -> Value {
    context! {
        client => client_context(&page.prompt),
        handle => page.prompt.handle,
        csrf => page.csrf,
        username => page.username,
        error => page.error,
        providers => page.providers.iter().map(|p| context! { id => p.id, name => p.name }).collect::<Vec<_>>(),
        password_login => page.password,
    }
}

fn consent_context(page: &ConsentPage) -> Value {
    let prompt = &page.prompt;
    context! {
        client => client_context(prompt),
        redirect_host => prompt.redirect_host,
        redirect_is_loopback => prompt.redirect_is_loopback,
        scopes => page.scopes.iter().map(|s| context! { scope => s.scope, description => s.description }).collect::<Vec<_>>(),
        withheld => page.withheld,
        resource => prompt.resource,
        resource_name => page.resource_name,
        handle => prompt.handle,
        csrf => page.csrf,
        user => page.user,
        provider_id => page.provider.as_ref().map(|p| p.id.as_str()),
        provider_name => page.provider.as_ref().map(|p| p.name.as_str()),
        rememberable => page.rememberable,
    }
}

fn error_context(page: &ErrorPage) -> Value {
    context! {
        title => page.title,
        message => page.message,
        signed_in => signed_in_context(page.signed_in.as_ref()),
    }
}

fn sign_out_context(page: &SignOutPage) -> Value {
    context! {
        signed_in => signed_in_context(page.signed_in.as_ref()),
        handle => page.handle,
    }
}

/// A context of every page, with every optional part present (so that a branch an override breaks is taken).
fn samples() -> Vec<(&'static str, Value)> {
    let client = context! {
        client_name => "Sample client",
        client_id => "https://client.example/meta.json",
        client_host => "client.example",
    };
    let who = context! { user => "alice", csrf => "csrf" };
    vec![
        (
            "login.html",
            context! {
                client => client,
                handle => "handle",
                csrf => "csrf",
                username => "alice",
                error => "Invalid username or password.",
                providers => vec![context! { id => "github", name => "GitHub" }],
                password_login => true,
            },
        ),
        (
            "consent.html",
            context! {
                client => client,
                redirect_host => "127.0.0.1",
                redirect_is_loopback => true,
                scopes => vec![context! { scope => "mcp", description => "Use the tools" }],
                withheld => vec!["mcp:admin"],
                resource => "https://mcp.example.com/mcp",
                resource_name => "Example",
                handle => "handle",
                csrf => "csrf",
                user => "alice",
                provider_id => Value::from(()),
                provider_name => Value::from(()),
                rememberable => true,
            },
        ),
        (
            "error.html",
            context! { title => "Access denied", message => "alice may not use it", signed_in => who },
        ),
        ("signed_out.html", context! {}),
        (
            "sign_out.html",
            context! { signed_in => who, handle => "handle" },
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn override_of(name: &str, source: &str) -> TemplateOverride {
        TemplateOverride {
            name: name.into(),
            path: PathBuf::from(format!("templates/{name}")),
            source: source.into(),
        }
    }

    #[test]
    fn every_built_in_template_renders_its_sample() {
        check_templates(&[]).unwrap();
    }

    #[test]
    fn a_broken_override_is_refused_with_its_name() {
        let syntax = check_templates(&[override_of("consent.html", "{% if %}")]).unwrap_err();
        assert_eq!(syntax.name, "consent.html");
        assert!(syntax.reason.contains("syntax error"), "{syntax}");
        let parent = check_templates(&[override_of("error.html", "{% extends \"nope.html\" %}")])
            .unwrap_err();
        assert_eq!(parent.name, "error.html");
        assert!(parent.reason.contains("nope.html"), "{parent}");
        let filter = check_templates(&[override_of("signed_out.html", "{{ 1 | no_such_filter }}")])
            .unwrap_err();
        assert!(filter.reason.contains("no_such_filter"), "{filter}");
    }

    #[test]
    fn an_override_replaces_the_built_in_template_and_keeps_the_brand() {
        let config = PagesConfig {
            service_name: Some("Acme".into()),
            templates: vec![override_of(
                "signed_out.html",
                "<p>Bye from {{ service_name }} at {{ issuer_host }}</p>",
            )],
            ..PagesConfig::default()
        };
        let pages = Pages::build(&config, "https://auth.acme.test:8443").unwrap();
        assert_eq!(
            pages.signed_out(),
            "<p>Bye from Acme at auth.acme.test:8443</p>"
        );
    }

    #[test]
    fn images_are_allowed_only_from_the_logos_origin() {
        let csp = |logo: Option<&str>| {
            let config = PagesConfig {
                logo_url: logo.map(str::to_owned),
                ..PagesConfig::default()
            };
            let res = Pages::build(&config, "https://auth.example.com")
                .unwrap()
                .html(StatusCode::OK, String::new());
            res.headers()
                .get(header::CONTENT_SECURITY_POLICY)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert!(!csp(None).contains("img-src"));
        assert!(
            csp(Some("https://cdn.acme.test/logo.svg"))
                .ends_with("; img-src https://cdn.acme.test")
        );
        assert!(csp(Some("/static/logo.png")).ends_with("; img-src 'self'"));
    }
}
