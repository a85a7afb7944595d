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
