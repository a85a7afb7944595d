//! Server-rendered login, consent and error pages.
//!
//! Templates are minijinja, compiled in, and auto-escaped (their names end in `.html`): every value from a
//! request, a client registration or a client metadata document (client name, username, redirect host) is
//! escaped on output. The consent page names the client's host for a metadata-document client (the name is
//! only what the document claims; the host is who published it), always the host the code goes to, and warns
//! when that is the user's own machine, where any program could be waiting (MCP security best practices,
//! "localhost redirect impersonation"). Every page goes
//! out with `X-Frame-Options: DENY`, `frame-ancestors 'none'` and `no-store`, so it can neither be framed
//! (clickjacking the consent button) nor cached.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use minijinja::{Environment, context};
use oauth_core::AuthorizationPrompt;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("error.html", include_str!("../templates/error.html")),
];

const FALLBACK: &str = "<!doctype html><title>Error</title><p>This page could not be shown.</p>";

/// The page templates.
pub struct Pages {
    env: Environment<'static>,
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

impl Pages {
    /// Loads the compiled-in templates.
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "template failed to load");
            }
        }
        Pages { env }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> String {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(template = name, error = %e, "template failed to render");
                FALLBACK.to_owned()
            }
        }
    }

    /// The login page for a pending authorization: a button per upstream provider (id, name) and, when local
    /// users exist, the password form.
    pub fn login(
        &self,
        prompt: &AuthorizationPrompt,
        login: &LoginChoices,
        csrf: &str,
        username: &str,
        error: Option<&str>,
    ) -> String {
        self.render(
            "login.html",
            context! {
                client_name => client_name(prompt),
                handle => prompt.handle,
                csrf => csrf,
                                username => username,
                error => error,
                providers => login.upstream.iter().map(|(id, name)| context! { id => id, name => name }).collect::<Vec<_>>(),
                password_login => login.password,
            },
        )
    }

    /// The consent page.
    pub fn consent(&self, prompt: &AuthorizationPrompt, csrf: &str, user: &str) -> String {
        self.render(
            "consent.html",
            context! {
                client_name => client_name(prompt),
                client_id => prompt.client_id,
                client_host => prompt.client_host,
                redirect_host => prompt.redirect_host,
                redirect_is_loopback => prompt.redirect_is_loopback,
                scopes => prompt.scope.iter().collect::<Vec<_>>(),
                resource => prompt.resource,
                handle => prompt.handle,
                csrf => csrf,
                user => user,
            },
        )
    }

    /// An error page.
    pub fn error(&self, title: &str, message: &str) -> String {
        self.render(
            "error.html",
            context! { title => title, message => message },
        )
    }
}

/// How users can sign in.
#[derive(Clone, Debug, Default)]
pub struct LoginChoices {
    /// Upstream providers as (id, display name).
    pub upstream: Vec<(String, String)>,
    /// Whether local users exist (show the password form).
    pub password: bool,
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
