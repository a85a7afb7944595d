//! `[[resources]]` and `[policy]`: the protected MCP servers (RFC 8707 / RFC 9728), their scopes, tool scopes,
//! browser origins, and who may use them.
//!
//! A resource's access lists and the top-level `[policy]` have the same keys and one reader
//! ([`access_policy`]). The rules the engine states about the assembled configuration (a resource URL without
//! fragment or trailing slash, browser origins, every scope in `scopes_supported`) are left to
//! `ServerConfig::validate`, run once on the whole, whose paths are this file's keys; this module checks only
//! what the engine does not (scope syntax, URL scheme, duplicates, access-list syntax).

use std::collections::BTreeMap;

use oauth_core::{AccessPolicy, ResourceConfig, ToolScope};
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

pub(super) fn resources(
    ctx: &Ctx<'_>,
    raw: Vec<RawResource>,
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
        )?;
        if r.mcp_server_validates_headers && tool_scopes.is_empty() {
            return Err(ctx.invalid(
                key("mcp_server_validates_headers"),
                "only matters with tool_scopes: it says whether the gate may read the call from the MCP headers",
            ));
        }
        let mut resource = ResourceConfig::new(r.resource, r.scopes)
            .require(r.required_scopes)
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

/// An access policy from its raw lists (`prefix` is the key path of the table, e.g. `resources[0].`). GitHub
/// organisations and teams are groups of GitHub users: `acme` and `acme/devs`, lower-case.
pub(super) fn access_policy(
    ctx: &Ctx<'_>,
    prefix: &str,
    r: RawPolicy,
) -> Result<AccessPolicy, ConfigError> {
    let key = |k: &str| format!("{prefix}{k}");
    check_nonempty(ctx, &key("allowed_users"), &r.allowed_users)?;
    check_nonempty(ctx, &key("allowed_groups"), &r.allowed_groups)?;
    check_nonempty(ctx, &key("allowed_github_orgs"), &r.allowed_github_orgs)?;
    if let Some(j) = r.allowed_emails.iter().position(|e| !e.contains('@')) {
        return Err(ctx.invalid(
            key(&format!("allowed_emails[{j}]")),
            "not an e-mail address",
        ));
    }
    if let Some(j) = r
        .allowed_email_domains
        .iter()
        .position(|d| d.is_empty() || d.contains('@'))
    {
        return Err(ctx.invalid(
            key(&format!("allowed_email_domains[{j}]")),
            "must be a bare domain (example.com)",
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
    groups.extend(
        r.allowed_github_orgs
            .iter()
            .chain(&r.allowed_github_teams)
            .map(|g| g.to_ascii_lowercase()),
    );
    Ok(AccessPolicy::new(
        r.allowed_users,
        r.allowed_emails,
        r.allowed_email_domains,
        groups,
    ))
}
