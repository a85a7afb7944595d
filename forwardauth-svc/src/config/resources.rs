//! `[[resources]]` and `[policy]`: the protected MCP servers (RFC 8707 / RFC 9728), their scopes, who may hold
//! which scope, tool scopes, browser origins, and who may use them.
//!
//! A resource's access lists, each of its `scope_grants` and the top-level `[policy]` have the same keys and one
//! reader ([`access_policy`]). Every name in them carries the identity provider that vouches for it
//! (`github:acme/platform`, `keycloak:mcp-users`, `local:alice`), and that provider must be configured: a name
//! any provider could assert would let one provider's users pass as another's. The rules the engine states about the assembled configuration (a resource URL without
//! fragment or trailing slash, browser origins, every scope in `scopes_supported`) are left to
//! `ServerConfig::validate`, run once on the whole, whose paths are this file's keys; this module checks only
//! what the engine does not (scope syntax, URL scheme, duplicates, access-list syntax).

use std::collections::BTreeMap;

use oauth_core::{AccessPolicy, ResourceConfig, ScopeGrant, ToolScope};
use serde::Deserialize;

use super::ConfigError;
use super::source::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResource {
    resource: String,
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    required_scopes: Vec<String>,
    default_scopes: Option<Vec<String>>,
    #[serde(default)]
    scope_grants: BTreeMap<String, RawPolicy>,
    #[serde(default)]
    scope_descriptions: BTreeMap<String, String>,
    #[serde(default)]
    allowed_users: Vec<String>,
    #[serde(default)]
    allowed_emails: Vec<String>,
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    allowed_github_orgs: Vec<String>,
    #[serde(default)]
    allowed_github_teams: Vec<String>,
    #[serde(default)]
    tool_scopes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    mcp_server_validates_headers: bool,
    #[serde(default)]
    allowed_origins: Vec<String>,
}

/// Who may use anything at all (the same keys as on a resource).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    allowed_users: Vec<String>,
    #[serde(default)]
    allowed_emails: Vec<String>,
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    allowed_github_orgs: Vec<String>,
    #[serde(default)]
    allowed_github_teams: Vec<String>,
}

pub(super) fn check_scopes(ctx: &Ctx<'_>, key: &str, scopes: &[String]) -> Result<(), ConfigError> {
    for (i, s) in scopes.iter().enumerate() {
        if !oauth_core::ScopeSet::is_token(s) {
            return Err(ctx.invalid(
                format!("{key}[{i}]"),
                format!("{s:?} is not a scope token (RFC 6749 §3.3: printable ASCII, no spaces, `\"` or `\\`)"),
            ));
        }
    }
    Ok(())
}

fn check_nonempty(ctx: &Ctx<'_>, key: &str, values: &[String]) -> Result<(), ConfigError> {
    match values.iter().position(|v| v.trim().is_empty()) {
        Some(i) => Err(ctx.invalid(format!("{key}[{i}]"), "must not be empty")),
        None => Ok(()),
    }
}

/// The identity providers a policy may name: `local` and every `[[providers]]` id, and which of them is the
/// GitHub provider that `allowed_github_orgs`/`allowed_github_teams` mean.
pub(super) struct Providers {
    pub(super) ids: Vec<String>,
    pub(super) github: Vec<String>,
}

pub(super) fn resources(
    ctx: &Ctx<'_>,
    raw: Vec<RawResource>,
    providers: &Providers,
) -> Result<Vec<ResourceConfig>, ConfigError> {
    let mut out: Vec<ResourceConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("resources[{i}].{k}");
        let u = url::Url::parse(&r.resource)
            .map_err(|e| ctx.invalid(key("resource"), format!("not a URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(ctx.invalid(
                key("resource"),
                format!("must be an http or https URL, not {}:", u.scheme()),
            ));
        }
        if let Some(j) = out.iter().position(|o| o.resource == r.resource) {
            return Err(ctx.invalid(
                key("resource"),
                format!("{} is already resources[{j}]", r.resource),
            ));
        }
        check_scopes(ctx, &key("scopes"), &r.scopes)?;
        check_scopes(ctx, &key("required_scopes"), &r.required_scopes)?;
        let mut tool_scopes = Vec::with_capacity(r.tool_scopes.len());
        for (k, scopes) in r.tool_scopes {
            let tkey = format!("{}.{k:?}", key("tool_scopes"));
            if k.is_empty() || k.contains(char::is_whitespace) {
                return Err(ctx.invalid(tkey, "must be an MCP method (`tools/call`) or method and name (`tools/call:delete_repo`)"));
            }
            if let Some((method, name)) = k.split_once(':')
                && (name.is_empty() || !ToolScope::method_has_name(method))
            {
                return Err(ctx.invalid(tkey, "a rule with a name must be for tools/call or prompts/get (the name) or resources/read (the URI): no other call names one"));
            }
            check_scopes(ctx, &tkey, &scopes)?;
            tool_scopes.push(ToolScope::new(k, scopes));
        }
        let policy = access_policy(
            ctx,
            &format!("resources[{i}]."),
            RawPolicy {
                allowed_users: r.allowed_users,
                allowed_emails: r.allowed_emails,
                allowed_email_domains: r.allowed_email_domains,
                allowed_groups: r.allowed_groups,
                allowed_github_orgs: r.allowed_github_orgs,
                allowed_github_teams: r.allowed_github_teams,
            },
            providers,
        )?;
        let own_scope = |k: &str, scope: &str| {
            if r.scopes.iter().any(|s| s == scope) {
                Ok(())
            } else {
                Err(ctx.invalid(
                    key(k),
                    format!("scope `{scope}` is not in this resource's `scopes`"),
                ))
            }
        };
        let default_scopes = r.default_scopes.unwrap_or_default();
        for (j, s) in default_scopes.iter().enumerate() {
            own_scope(&format!("default_scopes[{j}]"), s)?;
        }
        let mut grants = Vec::with_capacity(r.scope_grants.len());
        for (scope, holders) in r.scope_grants {
            let gkey = format!("scope_grants.{scope:?}");
            own_scope(&gkey, &scope)?;
            let holders = access_policy(ctx, &key(&format!("{gkey}.")), holders, providers)?;
            if holders.is_open() {
                return Err(ctx.invalid(
                    key(&gkey),
                    "lists nobody; remove it to let everyone the resource admits hold the scope",
                ));
            }
            grants.push(ScopeGrant::new(scope, holders));
        }
        let mut descriptions = Vec::with_capacity(r.scope_descriptions.len());
        for (scope, text) in r.scope_descriptions {
            own_scope(&format!("scope_descriptions.{scope:?}"), &scope)?;
            descriptions.push((scope, text));
        }
        if r.mcp_server_validates_headers && tool_scopes.is_empty() {
            return Err(ctx.invalid(
                key("mcp_server_validates_headers"),
                "only matters with tool_scopes: it says whether the gate may read the call from the MCP headers",
            ));
        }
        let mut resource = ResourceConfig::new(r.resource, r.scopes)
            .require(r.required_scopes)
            .with_default_scopes(default_scopes)
            .with_scope_grants(grants)
            .with_scope_descriptions(descriptions)
            .with_policy(policy)
            .with_tool_scopes(tool_scopes)
            .with_allowed_origins(r.allowed_origins);
        resource = resource.mcp_server_validates_headers(r.mcp_server_validates_headers);
        if let Some(name) = r.name {
            resource = resource.named(name);
        }
        out.push(resource);
    }
    Ok(out)
}

/// An access policy from its raw lists (`prefix` is the key path of the table, e.g. `resources[0].`). Each name
/// is `provider:name` with a configured provider. GitHub organisations and teams are groups of the GitHub
/// provider: `acme` and `acme/devs`, lower-case, as `github:acme` (there must be exactly one GitHub provider).
pub(super) fn access_policy(
    ctx: &Ctx<'_>,
    prefix: &str,
    r: RawPolicy,
    providers: &Providers,
) -> Result<AccessPolicy, ConfigError> {
    let key = |k: &str| format!("{prefix}{k}");
    check_nonempty(ctx, &key("allowed_users"), &r.allowed_users)?;
    check_nonempty(ctx, &key("allowed_groups"), &r.allowed_groups)?;
    check_nonempty(ctx, &key("allowed_github_orgs"), &r.allowed_github_orgs)?;
    for (list, entries) in [
        ("allowed_users", &r.allowed_users),
        ("allowed_emails", &r.allowed_emails),
        ("allowed_email_domains", &r.allowed_email_domains),
        ("allowed_groups", &r.allowed_groups),
    ] {
        for (j, entry) in entries.iter().enumerate() {
            check_provider(ctx, &key(&format!("{list}[{j}]")), entry, providers)?;
        }
    }
    let local = |e: &String| {
        e.split_once(':')
            .map_or(String::new(), |(_, n)| n.to_owned())
    };
    if let Some(j) = r
        .allowed_emails
        .iter()
        .position(|e| !local(e).contains('@'))
    {
        return Err(ctx.invalid(
            key(&format!("allowed_emails[{j}]")),
            "not an e-mail address (`provider:alice@example.com`)",
        ));
    }
    if let Some(j) = r
        .allowed_email_domains
        .iter()
        .position(|d| local(d).contains('@'))
    {
        return Err(ctx.invalid(
            key(&format!("allowed_email_domains[{j}]")),
            "must be a bare domain (`provider:example.com`)",
        ));
    }
    if let Some(j) = r
        .allowed_github_teams
        .iter()
        .position(|t| t.split('/').filter(|p| !p.is_empty()).count() != 2)
    {
        return Err(ctx.invalid(
            key(&format!("allowed_github_teams[{j}]")),
            "must be `org/team-slug`",
        ));
    }
    let mut groups = r.allowed_groups;
    let github_groups: Vec<&String> = r
        .allowed_github_orgs
        .iter()
        .chain(&r.allowed_github_teams)
        .collect();
    if !github_groups.is_empty() {
        let github = match providers.github.as_slice() {
            [only] => only,
            _ => {
                let k = if r.allowed_github_orgs.is_empty() {
                    "allowed_github_teams"
                } else {
                    "allowed_github_orgs"
                };
                return Err(ctx.invalid(
                    key(k),
                    format!(
                        "needs exactly one `kind = \"github\"` provider, and there are {}; list the groups in \
                         allowed_groups as `<provider id>:org` or `<provider id>:org/team`",
                        providers.github.len()
                    ),
                ));
            }
        };
        groups.extend(
            github_groups
                .into_iter()
                .map(|g| format!("{github}:{}", g.to_ascii_lowercase())),
        );
    }
    Ok(AccessPolicy::new(
        r.allowed_users,
        r.allowed_emails,
        r.allowed_email_domains,
        groups,
    ))
}

/// `entry` is `provider:name` with a configured provider.
fn check_provider(
    ctx: &Ctx<'_>,
    key: &str,
    entry: &str,
    providers: &Providers,
) -> Result<(), ConfigError> {
    let known = providers.ids.join("`, `");
    match entry.split_once(':') {
        Some((p, name)) if !p.is_empty() && !name.is_empty() => {
            if providers.ids.iter().any(|id| id == p) {
                Ok(())
            } else {
                Err(ctx.invalid(
                    key,
                    format!("{entry:?} names provider `{p}`, which is not configured (the providers are `{known}`)"),
                ))
            }
        }
        _ => Err(ctx.invalid(
            key,
            format!(
                "{entry:?} must name the identity provider that vouches for it, as `provider:name` \
                 (`local:alice`, `github:acme/platform`; the providers are `{known}`)"
            ),
        )),
    }
}
