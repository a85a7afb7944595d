//! Every route the service serves, declared once.
//!
//! [`ENDPOINTS`] is the one list: [`crate::routes::configure`] registers each entry's handlers and nothing else,
//! the proxy snippets ([`crate::snippet`]) route to the service exactly the entries marked [`Endpoint::on_mcp_host`]
//! (everything else on an MCP host goes through the gate), and a test keeps the README's endpoint table equal to
//! it. A route added here is therefore served, routed by every proxy, and documented, or a test fails.
//!
//! An entry's path is exact, or, ending in `/`, a prefix (the proxies route everything below it; the service
//! matches the segments its pattern names).

use actix_web::http::Method;
use actix_web::{Route, web};
use oauth_core::Limited;

use crate::handlers::{authorize, metadata, ops, register, token, verify};

/// Builds the actix route of one handler (the method guard is added from the table).
pub type Handler = fn() -> Route;

/// Which methods an endpoint answers.
#[derive(Clone, Copy)]
pub enum Methods {
    /// Any method, one handler (`/verify`: the proxies call it with the guarded request's method, `GET`, or `HEAD`
    /// from nginx, whose snippet asks for no body).
    Any(Handler),
    /// These methods; any other gets 405.
    Only(&'static [(Method, Handler)]),
}

/// One route of the service.
#[derive(Clone, Copy)]
pub struct Endpoint {
    /// The path, or, ending in `/`, the prefix of the paths below it.
    pub path: &'static str,
    /// The actix pattern (with the segments the handler reads).
    pub pattern: &'static str,
    /// Methods and handlers.
    pub methods: Methods,
    /// Browser clients call it with `fetch`: CORS for any origin, exposing `WWW-Authenticate`.
    pub cors: bool,
    /// The proxies route it to the service on every MCP host (discovery, the OAuth endpoints and the login
    /// pages must be reachable where the issuer is); the others are for the proxy and the operator only.
    pub on_mcp_host: bool,
    /// The per-address rate limit it counts against (`[rate_limits]`), if any.
    pub limit: Option<Limited>,
    /// What it is, for the README's endpoint table.
    pub what: &'static str,
}

impl Endpoint {
    /// Whether the entry is a prefix (its path ends in `/`).
    pub fn is_prefix(&self) -> bool {
        self.path.ends_with('/')
    }

    /// The method names, as the README lists them (`*` for any).
    pub fn method_names(&self) -> Vec<&'static str> {
        match self.methods {
            Methods::Any(_) => vec!["*"],
            Methods::Only(list) => list.iter().map(|(m, _)| m.as_str()).collect(),
        }
    }
}

/// The service's routes.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "/verify",
        pattern: "/verify",
        methods: Methods::Any(|| web::route().to(verify::verify)),
        cors: false,
        on_mcp_host: false,
        limit: None,
        what: "the forward-auth gate (the proxy's subrequest; the guarded request's method is in its headers)",
    },
    Endpoint {
        path: "/.well-known/oauth-authorization-server",
        pattern: "/.well-known/oauth-authorization-server",
        methods: Methods::Only(&[(Method::GET, || {
            web::route().to(metadata::authorization_server)
        })]),
        cors: true,
        on_mcp_host: true,
        limit: None,
        what: "RFC 8414 authorization server metadata",
    },
    Endpoint {
        path: "/.well-known/openid-configuration",
        pattern: "/.well-known/openid-configuration",
        methods: Methods::Only(&[(Method::GET, || {
            web::route().to(metadata::openid_configuration)
        })]),
        cors: true,
        on_mcp_host: true,
        limit: None,
        what: "a JSON 404 naming the RFC 8414 document (this is no OpenID provider), so clients move on quickly",
    },
    Endpoint {
        path: "/.well-known/oauth-protected-resource",
        pattern: "/.well-known/oauth-protected-resource",
        methods: Methods::Only(&[(Method::GET, || {
            web::route().to(metadata::protected_resource)
        })]),
        cors: true,
        on_mcp_host: true,
        limit: None,
        what: "RFC 9728 metadata of a resource at the origin's root",
    },
    Endpoint {
        path: "/.well-known/oauth-protected-resource/",
        pattern: "/.well-known/oauth-protected-resource/{tail:.*}",
        methods: Methods::Only(&[(Method::GET, || {
            web::route().to(metadata::protected_resource)
        })]),
        cors: true,
        on_mcp_host: true,
        limit: None,
        what: "RFC 9728 metadata, found from the host and path asked for",
    },
    Endpoint {
        path: "/jwks.json",
        pattern: "/jwks.json",
        methods: Methods::Only(&[(Method::GET, || web::route().to(metadata::jwks))]),
        cors: true,
        on_mcp_host: true,
        limit: None,
        what: "the signing keys",
    },
    Endpoint {
        path: "/register",
        pattern: "/register",
        methods: Methods::Only(&[(Method::POST, || web::route().to(register::register))]),
        cors: true,
        on_mcp_host: true,
        limit: Some(Limited::Register),
        what: "RFC 7591 dynamic client registration",
    },
    Endpoint {
        path: "/register/",
        pattern: "/register/{client_id}",
        methods: Methods::Only(&[
            (Method::GET, || web::route().to(register::read)),
            (Method::PUT, || web::route().to(register::update)),
            (Method::DELETE, || web::route().to(register::delete)),
        ]),
        cors: true,
        on_mcp_host: true,
        limit: Some(Limited::Token),
        what: "RFC 7592 client configuration (`/register/{client_id}`)",
    },
    Endpoint {
        path: "/authorize",
        pattern: "/authorize",
        methods: Methods::Only(&[(Method::GET, || web::route().to(authorize::authorize))]),
        cors: false,
        on_mcp_host: true,
        limit: Some(Limited::Authorize),
        what: "authorization endpoint: the login page, provider choice or consent",
    },
    Endpoint {
        path: "/login",
        pattern: "/login",
        methods: Methods::Only(&[(Method::POST, || web::route().to(authorize::login))]),
        cors: false,
        on_mcp_host: true,
        limit: Some(Limited::Login),
        what: "password login form",
    },
    Endpoint {
        path: "/login/upstream",
        pattern: "/login/upstream",
        methods: Methods::Only(&[(Method::POST, || web::route().to(authorize::login_upstream))]),
        cors: false,
        on_mcp_host: true,
        limit: Some(Limited::Login),
        what: "starts a login at GitHub or an OpenID Connect provider",
    },
    Endpoint {
        path: "/callback",
        pattern: "/callback",
        methods: Methods::Only(&[(Method::GET, || web::route().to(authorize::callback))]),
        cors: false,
        on_mcp_host: true,
        limit: Some(Limited::Callback),
        what: "where GitHub or the OpenID Connect provider sends the user back",
    },
    Endpoint {
        path: "/consent",
        pattern: "/consent",
        methods: Methods::Only(&[(Method::POST, || web::route().to(authorize::consent))]),
        cors: false,
        on_mcp_host: true,
        limit: None,
        what: "consent form",
    },
    Endpoint {
        path: "/logout",
        pattern: "/logout",
        methods: Methods::Only(&[
            (Method::GET, || web::route().to(authorize::confirm_logout)),
            (Method::POST, || web::route().to(authorize::logout)),
        ]),
        cors: false,
        on_mcp_host: true,
        limit: Some(Limited::Login),
        what: "sign-out: GET asks, POST (with the CSRF token) ends the browser's session and, with a pending authorization's `handle`, shows its sign-in page again",
    },
    Endpoint {
        path: "/token",
        pattern: "/token",
        methods: Methods::Only(&[(Method::POST, || web::route().to(token::token))]),
        cors: true,
        on_mcp_host: true,
        limit: Some(Limited::Token),
        what: "RFC 6749 token endpoint (code and refresh grants); client auth by Basic or form",
    },
    Endpoint {
        path: "/revoke",
        pattern: "/revoke",
        methods: Methods::Only(&[(Method::POST, || web::route().to(token::revoke))]),
        cors: true,
        on_mcp_host: true,
        limit: Some(Limited::Token),
        what: "RFC 7009 revocation",
    },
    Endpoint {
        path: "/introspect",
        pattern: "/introspect",
        methods: Methods::Only(&[(Method::POST, || web::route().to(token::introspect))]),
        cors: true,
        on_mcp_host: true,
        limit: Some(Limited::Token),
        what: "RFC 7662 introspection",
    },
    Endpoint {
        path: "/health",
        pattern: "/health",
        methods: Methods::Only(&[(Method::GET, || web::route().to(ops::health))]),
        cors: false,
        on_mcp_host: false,
        limit: None,
        what: "alive",
    },
    Endpoint {
        path: "/ready",
        pattern: "/ready",
        methods: Methods::Only(&[(Method::GET, || web::route().to(ops::ready))]),
        cors: false,
        on_mcp_host: false,
        limit: None,
        what: "the store is reachable",
    },
];

/// The exact paths the proxies route to the service on an MCP host.
pub fn mcp_host_exact() -> impl Iterator<Item = &'static str> {
    ENDPOINTS
        .iter()
        .filter(|e| e.on_mcp_host && !e.is_prefix())
        .map(|e| e.path)
}

/// The path prefixes (ending in `/`) the proxies route to the service on an MCP host.
pub fn mcp_host_prefixes() -> impl Iterator<Item = &'static str> {
    ENDPOINTS
        .iter()
        .filter(|e| e.on_mcp_host && e.is_prefix())
        .map(|e| e.path)
}

/// The `[rate_limits]` key of a limit.
pub fn limit_key(limit: Limited) -> &'static str {
    match limit {
        Limited::Authorize => "`authorize`",
        Limited::Login => "`login`",
        Limited::Callback => "`callback`",
        Limited::Token => "`token`",
        Limited::Register => "`register`",
    }
}

/// The README's endpoint table, one row per entry.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Path | Methods | Routed on MCP hosts | Rate limit | What |\n| --- | --- | --- | --- | --- |\n",
    );
    for e in ENDPOINTS {
        let path = if e.is_prefix() {
            format!("`{}…`", e.path)
        } else {
            format!("`{}`", e.path)
        };
        out.push_str(&format!(
            "| {path} | {} | {} | {} | {} |\n",
            e.method_names().join(", "),
            if e.on_mcp_host { "yes" } else { "no" },
            e.limit.map_or("", limit_key),
            e.what
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn the_readme_lists_every_route() {
        let table = crate::testing::readme_section("endpoints");
        assert!(
            table == markdown_table(),
            "README.md's endpoint table differs from ENDPOINTS; put this between the endpoints markers:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn paths_are_declared_once_and_prefixes_match_their_patterns() {
        for (i, e) in ENDPOINTS.iter().enumerate() {
            assert!(
                ENDPOINTS[..i].iter().all(|o| o.path != e.path),
                "{} twice",
                e.path
            );
            if e.is_prefix() {
                assert!(
                    e.pattern.starts_with(e.path) && e.pattern.contains('{'),
                    "{}",
                    e.path
                );
            } else {
                assert_eq!(e.pattern, e.path);
            }
        }
    }

    /// The engine's metadata names endpoint URLs; each must be a route of the table, routed on MCP hosts.
    #[test]
    fn the_engines_endpoint_paths_are_routes() {
        let p = oauth_core::EndpointPaths::default();
        for path in [
            &p.authorize,
            &p.token,
            &p.register,
            &p.revoke,
            &p.introspect,
            &p.jwks,
        ] {
            assert!(
                ENDPOINTS
                    .iter()
                    .any(|e| e.path == path.as_str() && e.on_mcp_host),
                "{path}"
            );
        }
    }
}
