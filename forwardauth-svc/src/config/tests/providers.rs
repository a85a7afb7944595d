//! `[[providers]]`.

use super::*;

/// Each provider example in `examples/providers/` loads when appended to a minimal configuration.
#[test]
fn the_provider_examples_load() {
    let dir = TempDir::new().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/providers");
    let env = |k: &str| k.ends_with("_CLIENT_SECRET").then(|| "s3cret".to_owned());
    let base = "issuer = \"https://auth.example.com\"\n[[resources]]\nresource = \"https://mcp.example.com/mcp\"\nscopes = [\"mcp\"]\n";
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();

        let file = dir.path().join(&name);
        std::fs::write(
            &file,
            format!("{base}{}", std::fs::read_to_string(&path).unwrap()),
        )
        .unwrap();
        let config = load(Some(&file), &env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.providers.len(), 1, "{name}");
        loaded.push(config.providers[0].id().to_owned());
    }
    loaded.sort();
    assert_eq!(loaded, vec!["entra", "github", "google", "keycloak", "sso"]);
}

#[test]
fn provider_errors_name_the_key() {
    let dir = TempDir::new().unwrap();
    let base = "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n";
    let cases = [
        (
            "[[providers]]\ntype = \"saml\"\nclient_id = \"x\"\n",
            "providers[0].type: `saml` is not a provider type (oidc, github)",
        ),
        (
            "[[providers]]\ntype = \"oidc\"\nclient_id = \"x\"\n",
            "providers[0].issuer: required for an oidc provider",
        ),
        (
            "[[providers]]\ntype = \"oidc\"\nid = \"local\"\nissuer = \"https://idp.example.com\"\nclient_id = \"x\"\n",
            "providers[0].id: `local` must be 1-32 of a-z, 0-9, `-`, `_`, and not `local`",
        ),
        (
            "[[providers]]\ntype = \"oidc\"\nissuer = \"http://idp.example.com\"\nclient_id = \"x\"\n",
            "providers[0].issuer: must be https (http only on a loopback host)",
        ),
        (
            "[[providers]]\ntype = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"x\"\nclient_secret_env = \"NOPE\"\n",
            "providers[0].client_secret_env: environment variable NOPE is not set",
        ),
        (
            "[[providers]]\ntype = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"x\"\nrequest_refresh_token = \"yes\"\n",
            "providers[0].request_refresh_token: `yes` is not one of \"auto\", \"offline_access\", \"access_type_offline\", \"off\"",
        ),
        (
            "[[providers]]\ntype = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"\nrequest_refresh_token = \"off\"\n",
            "providers[0].request_refresh_token: applies only to oidc providers",
        ),
        (
            "[policy]\nallowed_github_teams = [\"acme\"]\n",
            "policy.allowed_github_teams[0]: must be `org/team-slug`",
        ),
    ];
    for (i, (snippet, message)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&file, format!("{base}{snippet}")).unwrap();
        let err = load(Some(&file), &no_env).unwrap_err().to_string();
        assert!(err.ends_with(message), "{err}\n  wanted: …{message}");
        assert!(err.contains(&format!("c{i}.toml")), "names the file: {err}");
    }
}

#[test]
fn github_orgs_and_teams_become_lower_case_groups() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\nallowed_github_orgs = [\"Acme\"]\nallowed_github_teams = [\"Acme/Platform\"]\n\
         [[providers]]\ntype = \"github\"\nid = \"gh\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
    )
    .unwrap();
    let config = load(Some(&file), &no_env).unwrap();
    assert_eq!(
        config.server.resources[0].policy.groups,
        vec!["gh:acme", "gh:acme/platform"],
        "groups of the one GitHub provider, by its id"
    );
}

#[test]
fn the_oidc_issuer_follows_the_engine_transport_rule() {
    let f = Fixture::new(&format!(
        "{MINIMAL}[[providers]]\ntype = \"oidc\"\nissuer = \"http://127.0.0.2:9000\"\nclient_id = \"x\"\n"
    ));
    f.load().unwrap();
    Fixture::new(&format!(
        "{MINIMAL}[[providers]]\ntype = \"oidc\"\nissuer = \"http://localhost.example.com\"\nclient_id = \"x\"\n"
    )).assert_error("providers[0].issuer: must be https (http only on a loopback host)");
}

#[test]
fn how_an_oidc_provider_asks_for_a_refresh_token_is_read_from_request_refresh_token() {
    use oauth_core::upstream::RefreshTokenRequest as R;
    let mode = |line: &str| {
        let config = Fixture::new(&format!(
            "{MINIMAL}[[providers]]\ntype = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"x\"\n{line}"
        ))
        .load()
        .unwrap();
        match &config.providers[0] {
            ProviderConfig::Oidc(c) => c.refresh_token_request,
            other => panic!("an oidc provider, not {other:?}"),
        }
    };
    assert_eq!(mode(""), R::Auto, "the default");
    assert_eq!(mode("request_refresh_token = \"auto\"\n"), R::Auto);
    assert_eq!(
        mode("request_refresh_token = \"offline_access\"\n"),
        R::OfflineAccess
    );
    assert_eq!(
        mode("request_refresh_token = \"access_type_offline\"\n"),
        R::AccessTypeOffline
    );
    assert_eq!(mode("request_refresh_token = \"off\"\n"), R::Off);
}
