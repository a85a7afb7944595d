//! `[[providers]]`: the upstream identity providers (any OpenID Connect provider, GitHub), in the order the login
//! chooser shows them.
//!
//! Secrets come from the file or, better, from a named environment variable (`client_secret_env`). Keys that
//! belong to the other provider type are refused rather than ignored.

use serde::Deserialize;

use super::ConfigError;
use super::source::{Ctx, SecretString};

/// An upstream identity provider.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ProviderConfig {
    /// Any OpenID Connect provider.
    Oidc(oauth_core::upstream::OidcConfig),
    /// GitHub or GitHub Enterprise Server.
    Github(oauth_core::upstream::GithubConfig),
}

impl ProviderConfig {
    /// The provider's id.
    pub fn id(&self) -> &str {
        match self {
            ProviderConfig::Oidc(c) => &c.id,
            ProviderConfig::Github(c) => &c.id,
        }
    }
}

/// An upstream identity provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    display_name: Option<String>,
    client_id: String,
    client_secret: Option<SecretString>,
    client_secret_env: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    timeout_secs: Option<u64>,
    // OpenID Connect
    issuer: Option<String>,
    #[serde(default)]
    claims: RawClaims,
    require_verified_email: Option<bool>,
    request_refresh_token: Option<String>,
    // GitHub
    web_base_url: Option<String>,
    api_base_url: Option<String>,
    fetch_orgs: Option<bool>,
    fetch_teams: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaims {
    user_id: Option<String>,
    username: Option<String>,
    email: Option<String>,
    name: Option<String>,
    groups: Option<String>,
}

fn is_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The ids the file declares, and those of them that are GitHub providers, whether or not each provider is
/// valid: the policies that name a provider are checked against these when a provider is refused, so that its
/// names are not reported as unknown too.
pub(super) fn declared_ids(raw: &[RawProvider]) -> (Vec<String>, Vec<String>) {
    let id = |p: &RawProvider| p.id.clone().unwrap_or_else(|| p.kind.clone());
    (
        raw.iter().map(id).collect(),
        raw.iter().filter(|p| p.kind == "github").map(id).collect(),
    )
}

/// The upstream identity providers.
pub(super) fn providers(
    ctx: &Ctx<'_>,
    raw: Vec<RawProvider>,
) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut out: Vec<ProviderConfig> = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("providers[{i}].{k}");
        let id = p.id.clone().unwrap_or_else(|| p.kind.clone());
        if !is_provider_id(&id) || id == "local" {
            return Err(ctx.invalid(
                key("id"),
                format!("`{id}` must be 1-32 of a-z, 0-9, `-`, `_`, and not `local`"),
            ));
        }
        if out.iter().any(|o| o.id() == id) {
            return Err(ctx.invalid(key("id"), format!("`{id}` is used by another provider")));
        }
        let secret = match (&p.client_secret, &p.client_secret_env) {
            (Some(_), Some(_)) => {
                return Err(ctx.invalid(
                    key("client_secret"),
                    "give client_secret or client_secret_env, not both",
                ));
            }
            (Some(s), None) => Some(s.0.clone()),
            (None, Some(var)) => Some(ctx.var(var).ok_or_else(|| {
                ctx.invalid(
                    key("client_secret_env"),
                    format!("environment variable {var} is not set"),
                )
            })?),
            (None, None) => None,
        };
        let timeout = std::time::Duration::from_secs(p.timeout_secs.unwrap_or(10).clamp(1, 120));
        match p.kind.as_str() {
            "oidc" => {
                let issuer = p
                    .issuer
                    .clone()
                    .ok_or_else(|| ctx.invalid(key("issuer"), "required for an oidc provider"))?;
                // The engine's transport rule (`OidcProvider::new` applies it too), checked here so that the
                // message names the key.
                oauth_core::secure_url(&issuer)
                    .map_err(|problem| ctx.invalid(key("issuer"), problem.to_string()))?;
                for (field, set) in [
                    ("web_base_url", p.web_base_url.is_some()),
                    ("api_base_url", p.api_base_url.is_some()),
                    ("fetch_orgs", p.fetch_orgs.is_some()),
                    ("fetch_teams", p.fetch_teams.is_some()),
                ] {
                    if set {
                        return Err(ctx.invalid(key(field), "applies only to github providers"));
                    }
                }
                let mut c = oauth_core::upstream::OidcConfig::new(id, issuer, p.client_id, secret);
                if let Some(name) = p.display_name {
                    c.display_name = name;
                }
                if !p.scopes.is_empty() {
                    c.scopes = p.scopes;
                }
                let claims = p.claims;
                let names = &mut c.claims;
                for (slot, value) in [
                    (&mut names.user_id, claims.user_id),
                    (&mut names.username, claims.username),
                    (&mut names.email, claims.email),
                    (&mut names.name, claims.name),
                    (&mut names.groups, claims.groups),
                ] {
                    if let Some(v) = value {
                        *slot = v;
                    }
                }
                if let Some(v) = p.require_verified_email {
                    c.require_verified_email = v;
                }
                if let Some(v) = p.request_refresh_token {
                    use oauth_core::upstream::RefreshTokenRequest as R;
                    c.refresh_token_request = match v.as_str() {
                        "auto" => R::Auto,
                        "offline_access" => R::OfflineAccess,
                        "access_type_offline" => R::AccessTypeOffline,
                        "off" => R::Off,
                        other => {
                            return Err(ctx.invalid(
                                key("request_refresh_token"),
                                format!("`{other}` is not one of \"auto\", \"offline_access\", \"access_type_offline\", \"off\""),
                            ));
                        }
                    };
                }
                c.timeout = timeout;
                out.push(ProviderConfig::Oidc(c));
            }
            "github" => {
                for (field, set) in [
                    ("issuer", p.issuer.is_some()),
                    ("require_verified_email", p.require_verified_email.is_some()),
                    ("request_refresh_token", p.request_refresh_token.is_some()),
                ] {
                    if set {
                        return Err(ctx.invalid(key(field), "applies only to oidc providers"));
                    }
                }
                let secret = secret.ok_or_else(|| {
                    ctx.invalid(
                        key("client_secret"),
                        "required for a github provider (or client_secret_env)",
                    )
                })?;
                let display = p.display_name.unwrap_or_else(|| "GitHub".to_owned());
                let mut c = oauth_core::upstream::GithubConfig::new(p.client_id, secret)
                    .named(id, display)
                    .with_groups(
                        p.fetch_orgs.unwrap_or(false),
                        p.fetch_teams.unwrap_or(false),
                    )
                    .with_timeout(timeout);
                if p.web_base_url.is_some() || p.api_base_url.is_some() {
                    let web = p.web_base_url.ok_or_else(|| {
                        ctx.invalid(
                            key("web_base_url"),
                            "give web_base_url and api_base_url together",
                        )
                    })?;
                    let api = p.api_base_url.ok_or_else(|| {
                        ctx.invalid(
                            key("api_base_url"),
                            "give web_base_url and api_base_url together",
                        )
                    })?;
                    c = c.with_base_urls(web, api);
                }
                if !p.scopes.is_empty() {
                    c.scopes = p.scopes;
                }
                out.push(ProviderConfig::Github(c));
            }
            other => {
                return Err(ctx.invalid(
                    key("type"),
                    format!("`{other}` is not a provider type (oidc, github)"),
                ));
            }
        }
    }
    Ok(out)
}
