//! `[[resources]]` and `[policy]`.

use super::*;

#[test]
fn a_bad_resource_url_is_named() {
    let f = Fixture::new("[[resources]]\nresource = \"mcp.example.com/mcp\"\n");
    f.assert_error("resources[0].resource: not a URL: relative URL without a base");

    let f = Fixture::new(&format!(
        "{MINIMAL}\n[[resources]]\nresource = \"ftp://example.com/x\"\n"
    ));
    f.assert_error("resources[1].resource: must be an http or https URL, not ftp:");

    let f = Fixture::new("[[resources]]\nresource = \"https://mcp.example.com/mcp/\"\n");
    f.assert_error("resources[0].resource: must not end with `/`");
}

#[test]
fn a_file_needs_a_resource() {
    let f = Fixture::new("listen = \"127.0.0.1:8080\"\n");
    f.assert_error("resources: at least one [[resources]] table is required");
}

#[test]
fn scopes_must_be_known_and_well_formed() {
    let f = Fixture::new(&format!("scopes = [\"other\"]\n{MINIMAL}"));
    f.assert_error("resources[0]: scope `mcp` is not in scopes_supported");

    let f = Fixture::new(
        "[[resources]]\nresource = \"http://127.0.0.1:8080/mcp\"\nscopes = [\"two words\"]\n",
    );
    f.assert_error_starts("resources[0].scopes[0]: \"two words\" is not a scope token");
}

#[test]
fn a_bad_allowed_origin_is_named_by_the_engine_rule() {
    let f = Fixture::new(&format!(
        "{MINIMAL}allowed_origins = [\"http://localhost:6274\", \"https://app.example.com/path\"]\n"
    ));
    f.assert_error("resources[0].allowed_origins[1]: \"https://app.example.com/path\" is not an origin like https://app.example.com (scheme, host and optional port, no path)");
}
