//! Loading as a whole: the file and its syntax, the top-level keys, environment overrides, the examples.

use super::*;

#[test]
fn a_full_file_maps_every_key() {
    let f = Fixture::new(
        r#"
listen = "0.0.0.0:9000"
issuer = "https://auth.example.com"
log_format = "json"
scopes = ["mcp", "mcp:admin", "extra"]

[store]
backend = "embedded"
path = "/var/lib/forwardauth/oauth.redb"

[tokens]
access_token_ttl_secs = 600
refresh_token_ttl_secs = 86400
code_ttl_secs = 30
refresh_grace_secs = 0
session_ttl_secs = 3600
max_unverified_age_secs = 1800
consent_ttl_secs = 7200
signing_alg = "EdDSA"
signing_key_rotation_secs = 604800

[registration]
initial_access_tokens = ["tok-one", "tok-two"]
allowed_schemes = ["cursor"]
max_redirect_uris = 3
downgrade_secret_to_none = true

[[resources]]
resource = "https://mcp.example.com/mcp"
name = "Example"
scopes = ["mcp", "mcp:admin"]
required_scopes = ["mcp"]
default_scopes = ["mcp", "mcp:admin"]
allowed_users = ["local:alice"]
allowed_emails = ["local:bob@example.com"]
allowed_email_domains = ["local:example.com"]
allowed_groups = ["local:admins"]

[resources.scope_grants."mcp:admin"]
allowed_groups = ["local:admins"]
allowed_users = ["local:carol"]

[resources.scope_descriptions]
"mcp:admin" = "Delete repositories"

[resources.tool_scopes]
"tools/call" = ["mcp"]
"tools/call:delete_repo" = ["mcp:admin"]

[[resources]]
resource = "https://other.example.com"
scopes = ["mcp"]

[users]
file = "users.toml"

[gate]
trusted_proxies = ["10.0.0.0/8", "192.168.1.7", "::1", "fd00::/8"]
verify_cache_mib = 64

[gate.headers]
user_id = "X-Auth-Sub"
user_name = ""
user_email = "X-Auth-Email"
client_id = "X-Auth-Client"
scopes = "X-Auth-Scopes"
"#,
    );
    f.write(
        "users.toml",
        &format!(
            "[[users]]\nusername = \"alice\"\npassword_hash = \"{}\"\nemail = \"alice@example.com\"\nname = \"Alice\"\ngroups = [\"admins\"]\n\n[[users]]\nusername = \"bob\"\npassword_hash = \"{}\"\n",
            hash(),
            hash()
        ),
    );
    let c = f.load().unwrap();

    assert_eq!(c.source, Some(f.path()));
    assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: PathBuf::from("/var/lib/forwardauth/oauth.redb"),
            cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
        }
    );

    let s = &c.server;
    assert_eq!(s.issuer, "https://auth.example.com");
    assert_eq!(s.scopes_supported, ["mcp", "mcp:admin", "extra"]);
    assert_eq!(s.access_token_ttl, Duration::from_secs(600));
    assert_eq!(s.refresh_token_ttl, Duration::from_secs(86400));
    assert_eq!(s.code_ttl, Duration::from_secs(30));
    assert_eq!(s.refresh_grace, Duration::ZERO);
    assert_eq!(s.session_ttl, Duration::from_secs(3600));
    assert_eq!(s.max_unverified_age, Duration::from_secs(1800));
    assert_eq!(s.consent_ttl, Duration::from_secs(7200));
    assert_eq!(s.signing_alg, SigningAlg::EdDsa);
    assert_eq!(
        s.signing_key_rotation,
        Some(Duration::from_secs(7 * 24 * 3600))
    );
    assert_eq!(s.verify_cache_bytes, 64 * 1024 * 1024);

    let r = &s.registration;
    assert_eq!(r.initial_access_tokens.len(), 2);
    assert!(Secret::new("tok-one").matches(&r.initial_access_tokens[0]));
    assert!(Secret::new("tok-two").matches(&r.initial_access_tokens[1]));
    assert_eq!(r.allowed_schemes, ["cursor"]);
    assert_eq!(r.max_redirect_uris, 3);
    assert!(r.downgrade_secret_to_none);

    let expected = ResourceConfig::new(
        "https://mcp.example.com/mcp",
        vec!["mcp".into(), "mcp:admin".into()],
    )
    .require(vec!["mcp".into()])
    .named("Example")
    .with_default_scopes(vec!["mcp".into(), "mcp:admin".into()])
    .with_scope_grants(vec![oauth_core::ScopeGrant::new(
        "mcp:admin",
        AccessPolicy::new(
            vec!["local:carol".into()],
            vec![],
            vec![],
            vec!["local:admins".into()],
        ),
    )])
    .with_scope_descriptions(vec![("mcp:admin".into(), "Delete repositories".into())])
    .with_policy(AccessPolicy::new(
        vec!["local:alice".into()],
        vec!["local:bob@example.com".into()],
        vec!["local:example.com".into()],
        vec!["local:admins".into()],
    ))
    .with_tool_scopes(vec![
        ToolScope::new("tools/call", vec!["mcp".into()]),
        ToolScope::new("tools/call:delete_repo", vec!["mcp:admin".into()]),
    ]);
    assert_eq!(
        s.resources,
        [
            expected,
            ResourceConfig::new("https://other.example.com", vec!["mcp".into()])
        ]
    );

    let alice = LocalUser::new("alice", hash())
        .with_email("alice@example.com")
        .with_name("Alice")
        .with_groups(vec!["admins".into()]);
    assert_eq!(c.users, [alice, LocalUser::new("bob", hash())]);

    let nets: Vec<String> = c
        .gate
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        nets,
        ["10.0.0.0/8", "192.168.1.7/32", "::1/128", "fd00::/8"]
    );
    let h = &c.gate.headers;
    assert_eq!(
        [
            &h.user_id,
            &h.user_name,
            &h.user_email,
            &h.client_id,
            &h.scopes
        ],
        [
            "X-Auth-Sub",
            "",
            "X-Auth-Email",
            "X-Auth-Client",
            "X-Auth-Scopes"
        ]
    );
}

#[test]
fn a_minimal_file_gets_the_defaults() {
    let f = Fixture::new(MINIMAL);
    let c = f.load().unwrap();
    assert_eq!(c.listen, DEFAULT_LISTEN);
    assert_eq!(c.server.issuer, "http://127.0.0.1:8080");
    assert_eq!(c.server.scopes_supported, ["mcp"]);
    assert!(
        c.server.resources[0].defaults().is_empty(),
        "no required scopes: a request without scope asks for none"
    );
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: f.dir.path().join("data/oauth.redb"),
            cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
        }
    );
    assert_eq!(c.gate, GateConfig::default());
    assert_eq!(c.server.verify_cache_bytes, 32 * 1024 * 1024);
    assert_eq!(c.log_format, LogFormat::Human);
    assert!(c.users.is_empty());
    assert!(c.server.registration.initial_access_tokens.is_empty());
}

#[test]
fn an_unknown_key_is_rejected_by_name() {
    Fixture::new(&format!(
        "{MINIMAL}\n[store]\nbackend = \"memory\"\ncolour = \"blue\"\n"
    )).assert_error("store.colour: unknown field `colour`, expected one of `backend`, `path`, `url`, `key_prefix`, `pool_size`, `timeout_ms`, `cache_mib`, `key_encryption_key_file`, `key_encryption_key_previous_files`");

    Fixture::new(&format!("lisen = \"127.0.0.1:1\"\n{MINIMAL}"))
        .assert_error_starts("lisen: unknown field `lisen`, expected one of `listen`, ");

    Fixture::new(&format!("{MINIMAL}allowed_user = [\"alice\"]\n"))
        .assert_error_starts("resources[0].allowed_user: unknown field `allowed_user`");
}

#[test]
fn a_wrong_type_is_named_by_its_key_path() {
    Fixture::new(&format!(
        "{MINIMAL}\n[tokens]\naccess_token_ttl_secs = \"1h\"\n"
    ))
    .assert_error("tokens.access_token_ttl_secs: invalid type: string \"1h\", expected u64");

    Fixture::new("[[resources]]\nresource = \"http://127.0.0.1:8080/mcp\"\nscopes = \"mcp\"\n")
        .assert_error("resources[0].scopes: invalid type: string \"mcp\", expected a sequence");

    Fixture::new("[[resources]]\nname = \"no resource key\"\n")
        .assert_error("resources[0]: missing field `resource`");
}

#[test]
fn a_syntax_error_is_located_by_line_and_column() {
    Fixture::new("listen = \"127.0.0.1:8080\"\nissuer = \n")
        .assert_error_starts("line 2, column 10: ");
}

#[test]
fn the_issuer_follows_the_rfc_8414_rules() {
    Fixture::new(&format!("issuer = \"http://auth.example.com\"\n{MINIMAL}"))
        .assert_error("issuer: must be https (http only on a loopback host)");

    Fixture::new(&format!(
        "issuer = \"https://auth.example.com/\"\n{MINIMAL}"
    ))
    .assert_error("issuer: must not end with `/` nor carry a query or fragment");

    // Its RFC 8414 metadata would be at /.well-known/oauth-authorization-server/auth, its endpoints below /auth:
    // the service serves neither.
    Fixture::new(&format!("issuer = \"https://example.com/auth\"\n{MINIMAL}")).assert_error("issuer: must be an origin without a path (https://auth.example.com): the service serves its metadata and endpoints at the root");

    let f = Fixture::new(&format!("issuer = \"http://127.0.0.1:8080\"\n{MINIMAL}"));
    assert_eq!(f.load().unwrap().server.issuer, "http://127.0.0.1:8080");
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\npath = \"state/oauth.redb\"\n[users]\nfile = \"conf/users.toml\"\n"
    ));
    f.write(
        "conf/users.toml",
        &format!(
            "[[users]]\nusername = \"alice\"\npassword_hash = \"{}\"\n",
            hash()
        ),
    );
    let c = f.load().unwrap();
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: f.dir.path().join("state/oauth.redb"),
            cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
        }
    );
    assert_eq!(c.users, [LocalUser::new("alice", hash())]);
}

#[test]
fn environment_overrides_win_over_the_file() {
    let f = Fixture::new(&format!(
        "listen = \"127.0.0.1:1111\"\nlog_format = \"human\"\n{MINIMAL}\n[store]\npath = \"file.redb\"\n[registration]\ninitial_access_tokens = [\"from-file\"]\n"
    ));
    f.write(
        "other-users.toml",
        &format!(
            "[[users]]\nusername = \"carol\"\npassword_hash = \"{}\"\n",
            hash()
        ),
    );
    let users_file = f.dir.path().join("other-users.toml").display().to_string();
    let c = f
        .load_with(&[
            ("FORWARDAUTH_LISTEN", "127.0.0.1:2222"),
            ("FORWARDAUTH_ISSUER", "https://auth.example.com"),
            ("FORWARDAUTH_STORE_PATH", "env.redb"),
            ("FORWARDAUTH_LOG_FORMAT", "json"),
            ("FORWARDAUTH_USERS_FILE", &users_file),
            ("FORWARDAUTH_INITIAL_ACCESS_TOKEN", "from-env"),
        ])
        .unwrap();
    assert_eq!(c.listen, "127.0.0.1:2222".parse().unwrap());
    assert_eq!(c.server.issuer, "https://auth.example.com");
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: PathBuf::from("env.redb"),
            cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
        }
    );
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.users, [LocalUser::new("carol", hash())]);
    let tokens = &c.server.registration.initial_access_tokens;
    assert_eq!(tokens.len(), 1);
    assert!(Secret::new("from-env").matches(&tokens[0]));

    let c = f
        .load_with(&[("FORWARDAUTH_STORE_BACKEND", "memory")])
        .unwrap();
    assert_eq!(c.store, StoreConfig::Memory);

    // An empty variable counts as unset.
    let c = f.load_with(&[("FORWARDAUTH_LISTEN", "")]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:1111".parse().unwrap());
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let f = Fixture::new(MINIMAL);
    let err = |vars: &[(&str, &str)]| f.load_with(vars).unwrap_err().to_string();
    for (var, value, expected) in [
        (
            "FORWARDAUTH_LISTEN",
            "localhost",
            "FORWARDAUTH_LISTEN: not a socket address: invalid socket address syntax (expected IP:port, e.g. 127.0.0.1:8080)",
        ),
        (
            "FORWARDAUTH_ISSUER",
            "http://auth.example.com",
            "FORWARDAUTH_ISSUER: must be https (http only on a loopback host)",
        ),
        (
            "FORWARDAUTH_ISSUER",
            "https://example.com/auth",
            "FORWARDAUTH_ISSUER: must be an origin without a path (https://auth.example.com): the service serves its metadata and endpoints at the root",
        ),
        (
            "FORWARDAUTH_STORE_BACKEND",
            "sqlite",
            "FORWARDAUTH_STORE_BACKEND: expected \"embedded\", \"memory\" or \"redis\", not \"sqlite\"",
        ),
        (
            "FORWARDAUTH_LOG_FORMAT",
            "xml",
            "FORWARDAUTH_LOG_FORMAT: expected \"human\" or \"json\", not \"xml\"",
        ),
        (
            "FORWARDAUTH_INITIAL_ACCESS_TOKEN",
            "two words",
            "FORWARDAUTH_INITIAL_ACCESS_TOKEN: must not contain whitespace",
        ),
    ] {
        assert_eq!(err(&[(var, value)]), expected);
    }
    assert!(
        err(&[("FORWARDAUTH_USERS_FILE", "/nonexistent/users.toml")])
            .starts_with("FORWARDAUTH_USERS_FILE: cannot read /nonexistent/users.toml: "),
    );
    // The same bad value in the file names the key instead.
    Fixture::new(&format!("listen = \"localhost\"\n{MINIMAL}"))
        .assert_error_starts("listen: not a socket address: ");
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let err = load(Some(&path), &no_env).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read: ", path.display())),
        "{err}"
    );
}

#[test]
fn no_file_means_the_defaults() {
    let c = load(None, &no_env).unwrap();
    let d = Config::defaults(DEFAULT_LISTEN);
    assert_eq!(c.source, None);
    assert_eq!(c.listen, d.listen);
    assert_eq!(c.server.issuer, "http://127.0.0.1:8080");
    assert_eq!(c.server.resources, d.server.resources);
    assert_eq!(c.server.resources[0].resource, "http://127.0.0.1:8080/mcp");
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: PathBuf::from("data/oauth.redb"),
            cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
        }
    );
    assert_eq!(c.gate, d.gate);
    assert_eq!(c.log_format, LogFormat::Human);
    assert!(c.users.is_empty());

    // Overrides apply without a file too; the default issuer and resource follow the listen port.
    let env = |k: &str| (k == "FORWARDAUTH_LISTEN").then(|| "127.0.0.1:9090".to_owned());
    let c = load(None, &env).unwrap();
    assert_eq!(c.server.issuer, "http://127.0.0.1:9090");
    assert_eq!(c.server.resources[0].resource, "http://127.0.0.1:9090/mcp");
}

#[test]
fn the_quickstart_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.toml");
    let c = load(Some(&path), &no_env).unwrap();
    assert_eq!(c.listen, DEFAULT_LISTEN);
    assert_eq!(c.server.issuer, "http://127.0.0.1:8080");
    let examples = path.parent().unwrap();
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: examples.join("../data/oauth.redb"),
            cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
        }
    );
    assert_eq!(c.server.resources.len(), 1);
    assert_eq!(
        c.server.resources[0].name.as_deref(),
        Some("Demo MCP server")
    );
    // The resource is the proxy's URL (the README guide's Caddy on port 8000), never the service's own origin,
    // where no MCP server is served and no proxy can listen.
    assert_eq!(c.server.resources[0].resource, "http://127.0.0.1:8000/mcp");
    assert!(!c.server.resources[0].resource.starts_with(&c.server.issuer));
    assert_eq!(c.users.len(), 1);
    assert_eq!(c.users[0].username, "demo");
}

#[test]
fn the_example_in_the_module_documentation_loads() {
    // The first ```toml block of the module docs is a complete file; the second is a users file.
    let blocks = toml_blocks(&module_doc(include_str!("../mod.rs")));
    assert_eq!(blocks.len(), 2);
    let f = Fixture::new(&blocks[0]);
    f.write(
        "users.toml",
        &blocks[1].replace("$argon2id$v=19$m=19456,t=2,p=1$…", hash()),
    );
    let c = f.load().unwrap();
    assert_eq!(c.server.issuer, "https://auth.example.com");
    assert_eq!(c.users.len(), 1);
    assert_eq!(c.providers.len(), 2);
    assert_eq!(
        c.server.max_unverified_age,
        Duration::from_secs(86400),
        "the documented default"
    );
    assert_eq!(
        c.server.resources[0].tool_scopes,
        [ToolScope::new(
            "tools/call:delete_repo",
            vec!["mcp:admin".into()]
        )]
    );
}

#[test]
fn every_table_is_checked_and_every_problem_reported_at_once() {
    let f = Fixture::new(&format!(
        "listen = \"nope\"\nnot_a_key = 1\n\n[store]\nbackend = \"floppy\"\n\n[tokens]\naccess_token_ttl_secs = \"1h\"\n\n[gate]\ntrusted_proxies = [\"not-a-network\"]\n\n{MINIMAL}"
    ));
    let err = f.load().unwrap_err();
    let file = f.file();
    let lines: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    let expect = [
        format!("{file}: not_a_key: unknown field `not_a_key`"),
        format!("{file}: tokens.access_token_ttl_secs: invalid type: string \"1h\", expected u64"),
        format!("{file}: listen: not a socket address"),
        format!("{file}: store.backend: "),
        format!("{file}: gate.trusted_proxies"),
    ];
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    for (line, start) in lines.iter().zip(&expect) {
        assert_starts_with(line, start);
    }
    // The whole message has one line per problem.
    assert_eq!(err.to_string(), lines.join("\n"));
    // One problem alone is not wrapped.
    let one = Fixture::new(&format!("listen = \"nope\"\n{MINIMAL}"));
    assert!(matches!(
        one.load().unwrap_err(),
        ConfigError::Invalid { .. }
    ));
}

#[test]
fn tracing_exports_to_the_configured_collector() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\n"
    ));
    let t = f.load().unwrap().tracing.unwrap();
    assert_eq!(t.traces_url.as_str(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(t.service_name, DEFAULT_SERVICE_NAME);
    // The standard OpenTelemetry variables win.
    let t = f
        .load_with(&[
            (ENV_OTLP_ENDPOINT, "https://otel.example.com/otlp"),
            (ENV_SERVICE_NAME, "gate-eu"),
        ])
        .unwrap()
        .tracing
        .unwrap();
    assert_eq!(
        t.traces_url.as_str(),
        "https://otel.example.com/otlp/v1/traces"
    );
    assert_eq!(t.service_name, "gate-eu");
    assert_eq!(
        f.load_with(&[(ENV_OTLP_ENDPOINT, "localhost:4318")])
            .unwrap_err()
            .to_string(),
        "OTEL_EXPORTER_OTLP_ENDPOINT: must be an http or https URL (OTLP/HTTP), not localhost"
    );
    // No endpoint, nothing exported.
    assert!(Fixture::new(MINIMAL).load().unwrap().tracing.is_none());
    Fixture::new(&format!(
        "{MINIMAL}\n[tracing]\nservice_name = \"\"\notlp_endpoint = \"http://127.0.0.1:4318\"\n"
    ))
    .assert_error("tracing.service_name: must be a non-empty name without control characters");
}

#[test]
fn the_engines_checks_run_beside_problems_it_does_not_depend_on() {
    let f = Fixture::new(
        "listen = \"nope\"\nscopes = [\"mcp\"]\n\n[[resources]]\nresource = \"http://127.0.0.1:8080/mcp\"\nscopes = [\"mcp\", \"mcp:admin\"]\n",
    );
    let err = f.load().unwrap_err();
    let lines: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_starts_with(&lines[0], &format!("{}: listen: ", f.file()));
    assert!(lines[1].contains("mcp:admin"), "{lines:#?}");
}

#[test]
fn a_refused_provider_is_reported_once_and_the_policies_naming_it_are_still_checked() {
    let f = Fixture::new(
        "[[providers]]\ntype = \"oidc\"\nid = \"keycloak\"\nclient_id = \"x\"\n\n[[resources]]\nresource = \"http://127.0.0.1:8080/mcp\"\nscopes = [\"mcp\"]\nallowed_groups = [\"keycloak:staff\", \"nowhere:staff\"]\n",
    );
    let err = f.load().unwrap_err();
    let lines: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        lines[0],
        format!(
            "{}: providers[0].issuer: required for an oidc provider",
            f.file()
        )
    );
    assert!(lines[1].contains("nowhere"), "{lines:#?}");
    assert!(!lines[1].contains("keycloak:staff"), "{lines:#?}");
}
