//! `[[resources]]` and `[policy]`.

use super::*;

#[test]
fn a_bad_resource_url_is_named() {
    Fixture::new("[[resources]]\nresource = \"mcp.example.com/mcp\"\n")
        .assert_error("resources[0].resource: not a URL: relative URL without a base");

    Fixture::new(&format!(
        "{MINIMAL}\n[[resources]]\nresource = \"ftp://example.com/x\"\n"
    ))
    .assert_error("resources[1].resource: must be an http or https URL, not ftp:");

    Fixture::new("[[resources]]\nresource = \"https://mcp.example.com/mcp/\"\n")
        .assert_error("resources[0].resource: must not end with `/`");
}

#[test]
fn a_file_needs_a_resource() {
    Fixture::new("listen = \"127.0.0.1:8080\"\n")
        .assert_error("resources: at least one [[resources]] table is required");
}

#[test]
fn scopes_must_be_known_and_well_formed() {
    Fixture::new(&format!("scopes = [\"other\"]\n{MINIMAL}"))
        .assert_error("resources[0]: scope `mcp` is not in scopes_supported");

    Fixture::new(
        "[[resources]]\nresource = \"http://127.0.0.1:8080/mcp\"\nscopes = [\"two words\"]\n",
    )
    .assert_error_starts("resources[0].scopes[0]: \"two words\" is not a scope token");
}

#[test]
fn a_bad_allowed_origin_is_named_by_the_engine_rule() {
    Fixture::new(&format!(
        "{MINIMAL}allowed_origins = [\"http://localhost:6274\", \"https://app.example.com/path\"]\n"
    )).assert_error("resources[0].allowed_origins[1]: \"https://app.example.com/path\" is not an origin like https://app.example.com (scheme, host and optional port, no path)");
}

#[test]
fn every_policy_name_carries_a_configured_provider() {
    Fixture::new(&format!("{MINIMAL}allowed_groups = [\"local:staff\", \"staff\"]\n")).assert_error(
        "resources[0].allowed_groups[1]: \"staff\" must name the identity provider that vouches for it, as `provider:name` (`local:alice`, `github:acme/platform`; the providers are `local`)",
    );
    Fixture::new(&format!("{MINIMAL}[policy]\nallowed_users = [\"keycloak:alice\"]\n")).assert_error(
        "policy.allowed_users[0]: \"keycloak:alice\" names provider `keycloak`, which is not configured (the providers are `local`)",
    );
    Fixture::new(&format!("{MINIMAL}allowed_emails = [\"local:nobody\"]\n")).assert_error(
        "resources[0].allowed_emails[0]: not an e-mail address (`provider:alice@example.com`)",
    );
    Fixture::new(&format!("{MINIMAL}allowed_github_orgs = [\"acme\"]\n")).assert_error(
        "resources[0].allowed_github_orgs: needs exactly one `kind = \"github\"` provider, and there are 0; list the groups in allowed_groups as `<provider id>:org` or `<provider id>:org/team`",
    );
    let two = "[[providers]]\ntype = \"github\"\nid = \"gh\"\nclient_id = \"x\"\nclient_secret = \"y\"\n\
               [[providers]]\ntype = \"github\"\nid = \"ghe\"\nclient_id = \"x\"\nclient_secret = \"y\"\n";
    Fixture::new(&format!("{MINIMAL}allowed_github_teams = [\"acme/x\"]\n{two}"))
        .assert_error_starts("resources[0].allowed_github_teams: needs exactly one `kind = \"github\"` provider, and there are 2");
    let c = Fixture::new(&format!("{MINIMAL}allowed_groups = [\"ghe:acme\"]\n{two}"))
        .load()
        .unwrap();
    assert_eq!(c.server.resources[0].policy.groups, ["ghe:acme"]);
}

#[test]
fn scope_grants_defaults_and_descriptions_name_the_resources_own_scopes() {
    let base = "[[resources]]\nresource = \"http://127.0.0.1:8080/mcp\"\nscopes = [\"mcp\", \"mcp:admin\"]\n";
    Fixture::new(&format!("{base}default_scopes = [\"mcp\", \"nope\"]\n")).assert_error(
        "resources[0].default_scopes[1]: scope `nope` is not in this resource's `scopes`",
    );
    Fixture::new(&format!(
        "{base}[resources.scope_grants.nope]\nallowed_users = [\"local:a\"]\n"
    ))
    .assert_error(
        "resources[0].scope_grants.\"nope\": scope `nope` is not in this resource's `scopes`",
    );
    Fixture::new(&format!("{base}[resources.scope_grants.\"mcp:admin\"]\n")).assert_error(
        "resources[0].scope_grants.\"mcp:admin\": lists nobody; remove it to let everyone the resource admits hold the scope",
    );
    Fixture::new(&format!(
        "{base}[resources.scope_grants.\"mcp:admin\"]\nallowed_groups = [\"admins\"]\n"
    ))
    .assert_error_starts("resources[0].scope_grants.\"mcp:admin\".allowed_groups[0]: \"admins\" must name the identity provider");
    Fixture::new(&format!("{base}[resources.scope_descriptions]\nother = \"x\"\n")).assert_error(
        "resources[0].scope_descriptions.\"other\": scope `other` is not in this resource's `scopes`",
    );
    Fixture::new(&format!("{base}[resources.scope_grants.\"mcp:admin\"]\nallowed_groups = [\"local:admins\"]\nunknown_key = 1\n"))
        .assert_error_starts("resources[0].scope_grants.mcp:admin.unknown_key: unknown field `unknown_key`");
}

#[test]
fn tool_rules_name_only_calls_that_have_names_and_the_header_setting_needs_rules() {
    let resource = |extra: &str| {
        Fixture::new(&format!(
            "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\nscopes = [\"mcp\", \"mcp:admin\"]\n{extra}"
        ))
    };
    for key in [
        "tools/call:delete_repo",
        "prompts/get:p",
        "resources/read:file:///etc/passwd",
        "tools/call",
        "tools/list",
    ] {
        let f = resource(&format!(
            "[resources.tool_scopes]\n{key:?} = [\"mcp:admin\"]\n"
        ));
        assert_eq!(
            f.load().unwrap().server.resources[0].tool_scopes.len(),
            1,
            "{key}"
        );
    }
    for key in [
        "tools/list:x",
        "tools/call:",
        ":x",
        "notifications/cancelled:x",
    ] {
        resource(&format!("[resources.tool_scopes]\n{key:?} = [\"mcp:admin\"]\n")).assert_error(
            &format!("resources[0].tool_scopes.{key:?}: a rule with a name must be for tools/call or prompts/get (the name) or resources/read (the URI): no other call names one"),
        );
    }
    let with_rules = resource(
        "mcp_server_validates_headers = true\n[resources.tool_scopes]\n\"tools/call:x\" = [\"mcp:admin\"]\n",
    );
    assert!(with_rules.load().unwrap().server.resources[0].mcp_server_validates_headers);
    assert!(
        !resource("[resources.tool_scopes]\n\"tools/call:x\" = [\"mcp:admin\"]\n")
            .load()
            .unwrap()
            .server
            .resources[0]
            .mcp_server_validates_headers,
        "off unless said"
    );
    resource("mcp_server_validates_headers = true\n").assert_error(
        "resources[0].mcp_server_validates_headers: only matters with tool_scopes: it says whether the gate may read the call from the MCP headers",
    );
    resource("mcp_server_validates_headers = \"yes\"\n")
        .assert_error_starts("resources[0].mcp_server_validates_headers: invalid type: string \"yes\", expected a boolean");
}
