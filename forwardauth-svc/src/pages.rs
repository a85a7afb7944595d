//! Server-rendered login, consent and error pages.
//!
//! Templates are minijinja, compiled in, and auto-escaped (their names end in `.html`): every value from a
//! request, a client registration or a client metadata document (client name, username, redirect host) is
//! escaped on output. The consent page names the client's host for a metadata-document client (the name is
//! only what the document claims; the host is who published it), always the host the code goes to, and warns
//! when that is the user's own machine, where any program could be waiting (MCP security best practices,
//! "localhost redirect impersonation"); consent to such a client is never remembered. It lists exactly the scopes
//! the token will carry, with the descriptions from the configuration, and those left out. Every page goes
//! out with `X-Frame-Options: DENY`, `frame-ancestors 'none'` and `no-store`, so it can neither be framed
//! (clickjacking the consent button) nor cached.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use minijinja::{Environment, context};
use oauth_core::{AuthorizationPrompt, ConsentPage, ErrorPage, SignInPage};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("error.html", include_str!("../templates/error.html")),
    (
        "signed_out.html",
        include_str!("../templates/signed_out.html"),
    ),
];

const FALLBACK: &str = "<!doctype html><title>Error</title><p>This page could not be shown.</p>";

/// The compiled-in templates, loaded once per process (they are constants; a test renders every page).
static TEMPLATES_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "template failed to load");
        }
    }
    env
});

fn render(name: &str, ctx: minijinja::Value) -> String {
    match TEMPLATES_ENV.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed to render");
            FALLBACK.to_owned()
        }
    }
}

/// The sign-in page: a button per identity provider and, when local users exist, the password form.
pub fn sign_in(page: &SignInPage) -> String {
    render(
        "login.html",
        context! {
            client_name => client_name(&page.prompt),
            handle => page.prompt.handle,
            csrf => page.csrf,
            username => page.username,
            error => page.error,
            providers => page.providers.iter().map(|p| context! { id => p.id, name => p.name }).collect::<Vec<_>>(),
            password_login => page.password,
        },
    )
}

/// The consent page.
pub fn consent(page: &ConsentPage) -> String {
    let prompt = &page.prompt;
    render(
        "consent.html",
        context! {
            client_name => client_name(prompt),
            client_id => prompt.client_id,
            client_host => prompt.client_host,
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
        },
    )
}

/// An error page.
pub fn error(page: &ErrorPage) -> String {
    render(
        "error.html",
        context! { title => page.title, message => page.message },
    )
}

/// The page after signing out.
pub fn signed_out() -> String {
    render("signed_out.html", context! {})
}

fn client_name(prompt: &AuthorizationPrompt) -> &str {
    prompt.client_name.as_deref().unwrap_or(&prompt.client_id)
}

/// An HTML response with the anti-framing and no-cache headers.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}
