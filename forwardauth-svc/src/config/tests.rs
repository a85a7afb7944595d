//! Tests of loading and validation: every error path asserts the message a person would read.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use oauth_core::{
    AccessPolicy, HostPattern, HostPolicy, LocalUsers, Secret, SigningAlg, ToolScope,
};
use tempfile::TempDir;

use super::*;

/// A valid argon2id hash (of `pw`), computed once.
fn hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| LocalUsers::hash_password("pw").unwrap())
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// A temporary directory holding `config.toml` with `text`.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(text: &str) -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        f.write("config.toml", text);
        f
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The file name as it appears in messages.
    fn file(&self) -> String {
        self.path().display().to_string()
    }

    fn load(&self) -> Result<Config, ConfigError> {
        load(Some(&self.path()), &no_env)
    }

    fn load_with(&self, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        load(Some(&self.path()), &move |k| vars.get(k).cloned())
    }

    /// The error message of loading, which must fail.
    fn error(&self) -> String {
        self.load().unwrap_err().to_string()
    }
}

const MINIMAL: &str = r#"
[[resources]]
resource = "http://127.0.0.1:8080/mcp"
scopes = ["mcp"]
"#;

#[test]
fn a_full_file_maps_every_key() {
    let f = Fixture::new(
        r#"
listen = "0.0.0.0:9000"
issuer = "https://auth.example.com"
log_format = "json"
scopes = ["mcp", "mcp:admin", "extra"]
default_scopes = ["mcp"]

[store]
backend = "embedded"
path = "/var/lib/forwardauth/oauth.redb"

[tokens]
access_token_ttl_secs = 600
refresh_token_ttl_secs = 86400
code_ttl_secs = 30
refresh_grace_secs = 0
session_ttl_secs = 3600
consent_ttl_secs = 7200
signing_alg = "EdDSA"

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
allowed_users = ["alice"]
allowed_emails = ["bob@example.com"]
allowed_email_domains = ["example.com"]
allowed_groups = ["admins"]

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
    assert_eq!(s.default_scopes, ["mcp"]);
    assert_eq!(s.access_token_ttl, Duration::from_secs(600));
    assert_eq!(s.refresh_token_ttl, Duration::from_secs(86400));
    assert_eq!(s.code_ttl, Duration::from_secs(30));
    assert_eq!(s.refresh_grace, Duration::ZERO);
    assert_eq!(s.session_ttl, Duration::from_secs(3600));
    assert_eq!(s.consent_ttl, Duration::from_secs(7200));
    assert_eq!(s.signing_alg, SigningAlg::EdDsa);
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
    .with_policy(AccessPolicy::new(
        vec!["alice".into()],
        vec!["bob@example.com".into()],
        vec!["example.com".into()],
        vec!["admins".into()],
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
    assert_eq!(c.server.default_scopes, ["mcp"]);
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
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\nbackend = \"memory\"\ncolour = \"blue\"\n"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: store.colour: unknown field `colour`, expected one of `backend`, `path`, `url`, `key_prefix`, `pool_size`, `timeout_ms`, `cache_mib`",
            f.file()
        )
    );

    let f = Fixture::new(&format!("lisen = \"127.0.0.1:1\"\n{MINIMAL}"));
    assert!(
        f.error().starts_with(&format!(
            "{}: lisen: unknown field `lisen`, expected one of `listen`, ",
            f.file()
        )),
        "{}",
        f.error()
    );

    let f = Fixture::new(&format!("{MINIMAL}allowed_user = [\"alice\"]\n"));
    assert!(
        f.error().starts_with(&format!(
            "{}: resources[0].allowed_user: unknown field `allowed_user`",
            f.file()
        )),
        "{}",
        f.error()
    );
}

#[test]
fn a_wrong_type_is_named_by_its_key_path() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[tokens]\naccess_token_ttl_secs = \"1h\"\n"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: tokens.access_token_ttl_secs: invalid type: string \"1h\", expected u64",
            f.file()
        )
    );

    let f =
        Fixture::new("[[resources]]\nresource = \"http://127.0.0.1:8080/mcp\"\nscopes = \"mcp\"\n");
    assert_eq!(
        f.error(),
        format!(
            "{}: resources[0].scopes: invalid type: string \"mcp\", expected a sequence",
            f.file()
        )
    );

    let f = Fixture::new("[[resources]]\nname = \"no resource key\"\n");
    assert_eq!(
        f.error(),
        format!("{}: resources[0]: missing field `resource`", f.file())
    );
}

#[test]
fn a_syntax_error_is_located_by_line_and_column() {
    let f = Fixture::new("listen = \"127.0.0.1:8080\"\nissuer = \n");
    assert!(
        f.error()
            .starts_with(&format!("{}: line 2, column 10: ", f.file())),
        "{}",
        f.error()
    );
}

#[test]
fn a_bad_resource_url_is_named() {
    let f = Fixture::new("[[resources]]\nresource = \"mcp.example.com/mcp\"\n");
    assert_eq!(
        f.error(),
        format!(
            "{}: resources[0].resource: not a URL: relative URL without a base",
            f.file()
        )
    );

    let f = Fixture::new(&format!(
        "{MINIMAL}\n[[resources]]\nresource = \"ftp://example.com/x\"\n"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: resources[1].resource: must be an http or https URL, not ftp:",
            f.file()
        )
    );

    let f = Fixture::new("[[resources]]\nresource = \"https://mcp.example.com/mcp/\"\n");
    assert_eq!(
        f.error(),
        format!("{}: resources[0].resource: must not end with `/`", f.file())
    );
}

#[test]
fn a_file_needs_a_resource() {
    let f = Fixture::new("listen = \"127.0.0.1:8080\"\n");
    assert_eq!(
        f.error(),
        format!(
            "{}: resources: at least one [[resources]] table is required",
            f.file()
        )
    );
}

#[test]
fn scopes_must_be_known_and_well_formed() {
    let f = Fixture::new(&format!("scopes = [\"other\"]\n{MINIMAL}"));
    assert_eq!(
        f.error(),
        format!(
            "{}: resources[0]: scope `mcp` is not in scopes_supported",
            f.file()
        )
    );

    let f = Fixture::new(
        "[[resources]]\nresource = \"http://127.0.0.1:8080/mcp\"\nscopes = [\"two words\"]\n",
    );
    assert!(
        f.error().starts_with(&format!(
            "{}: resources[0].scopes[0]: \"two words\" is not a scope token",
            f.file()
        )),
        "{}",
        f.error()
    );
}

#[test]
fn the_issuer_follows_the_rfc_8414_rules() {
    let f = Fixture::new(&format!("issuer = \"http://auth.example.com\"\n{MINIMAL}"));
    assert_eq!(
        f.error(),
        format!(
            "{}: issuer: must be https (http only on a loopback host)",
            f.file()
        )
    );

    let f = Fixture::new(&format!(
        "issuer = \"https://auth.example.com/\"\n{MINIMAL}"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: issuer: must not end with `/` nor carry a query or fragment",
            f.file()
        )
    );

    // Its RFC 8414 metadata would be at /.well-known/oauth-authorization-server/auth, its endpoints below /auth:
    // the service serves neither.
    let f = Fixture::new(&format!("issuer = \"https://example.com/auth\"\n{MINIMAL}"));
    assert_eq!(
        f.error(),
        format!(
            "{}: issuer: must be an origin without a path (https://auth.example.com): the service serves its metadata and endpoints at the root",
            f.file()
        )
    );

    let f = Fixture::new(&format!("issuer = \"http://127.0.0.1:8080\"\n{MINIMAL}"));
    assert_eq!(f.load().unwrap().server.issuer, "http://127.0.0.1:8080");
}

#[test]
fn a_bad_cidr_is_named() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[gate]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: gate.trusted_proxies[1]: not an IP address or CIDR range: \"10.0.0.0/33\" (invalid IP address syntax)",
            f.file()
        )
    );

    let f = Fixture::new(&format!(
        "{MINIMAL}\n[gate]\ntrusted_proxies = [\"proxy.local\"]\n"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: gate.trusted_proxies[0]: not an IP address or CIDR range: \"proxy.local\" (invalid IP address syntax)",
            f.file()
        )
    );
}

#[test]
fn the_verify_cache_size_is_in_mib_and_refuses_zero_and_absurd_values() {
    let cache =
        |value: &str| Fixture::new(&format!("{MINIMAL}\n[gate]\nverify_cache_mib = {value}\n"));
    for (mib, bytes) in [(1, 1 << 20), (4096, 4 << 30)] {
        let c = cache(&mib.to_string()).load().unwrap();
        assert_eq!(c.server.verify_cache_bytes, bytes, "{mib} MiB");
    }
    // 0, one past the bound, and bytes written where MiB are expected.
    for value in [0, 4097, 33_554_432] {
        let f = cache(&value.to_string());
        assert_eq!(
            f.error(),
            format!(
                "{}: gate.verify_cache_mib: must be between 1 and 4096 (MiB; the default, 32, holds about 208,000 tokens), not {value}",
                f.file()
            )
        );
    }
    let f = cache("\"32MiB\"");
    assert_eq!(
        f.error(),
        format!(
            "{}: gate.verify_cache_mib: invalid type: string \"32MiB\", expected u64",
            f.file()
        )
    );
    let f = cache("-1");
    assert!(
        f.error()
            .starts_with(&format!("{}: gate.verify_cache_mib: ", f.file())),
        "{}",
        f.error()
    );
}

#[test]
fn a_bad_header_name_is_named() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[gate.headers]\nuser_email = \"X User Email\"\n"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: gate.headers.user_email: not a header name: \"X User Email\" (invalid HTTP header name)",
            f.file()
        )
    );

    let f = Fixture::new(&format!(
        "{MINIMAL}\n[gate.headers]\nscopes = \"x-user-id\"\n"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: gate.headers.scopes: \"x-user-id\" is also gate.headers.user_id",
            f.file()
        )
    );
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
    assert_eq!(
        err(&[("FORWARDAUTH_LISTEN", "localhost")]),
        "FORWARDAUTH_LISTEN: not a socket address: invalid socket address syntax (expected IP:port, e.g. 127.0.0.1:8080)"
    );
    assert_eq!(
        err(&[("FORWARDAUTH_ISSUER", "http://auth.example.com")]),
        "FORWARDAUTH_ISSUER: must be https (http only on a loopback host)"
    );
    assert_eq!(
        err(&[("FORWARDAUTH_ISSUER", "https://example.com/auth")]),
        "FORWARDAUTH_ISSUER: must be an origin without a path (https://auth.example.com): the service serves its metadata and endpoints at the root"
    );
    assert_eq!(
        err(&[("FORWARDAUTH_STORE_BACKEND", "sqlite")]),
        "FORWARDAUTH_STORE_BACKEND: expected \"embedded\", \"memory\" or \"redis\", not \"sqlite\""
    );
    assert_eq!(
        err(&[("FORWARDAUTH_LOG_FORMAT", "xml")]),
        "FORWARDAUTH_LOG_FORMAT: expected \"human\" or \"json\", not \"xml\""
    );
    assert!(
        err(&[("FORWARDAUTH_USERS_FILE", "/nonexistent/users.toml")])
            .starts_with("FORWARDAUTH_USERS_FILE: cannot read /nonexistent/users.toml: "),
    );
    assert_eq!(
        err(&[("FORWARDAUTH_INITIAL_ACCESS_TOKEN", "two words")]),
        "FORWARDAUTH_INITIAL_ACCESS_TOKEN: must not contain whitespace"
    );
    // The same bad value in the file names the key instead.
    let f = Fixture::new(&format!("listen = \"localhost\"\n{MINIMAL}"));
    assert!(
        f.error()
            .starts_with(&format!("{}: listen: not a socket address: ", f.file())),
        "{}",
        f.error()
    );
}

#[test]
fn a_missing_users_file_is_named() {
    let f = Fixture::new(&format!("{MINIMAL}\n[users]\nfile = \"users.toml\"\n"));
    let users = f.dir.path().join("users.toml");
    assert!(
        f.error().starts_with(&format!(
            "{}: users.file: cannot read {}: ",
            f.file(),
            users.display()
        )),
        "{}",
        f.error()
    );
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
fn users_file_errors_name_the_file_and_the_user() {
    let f = Fixture::new(&format!("{MINIMAL}\n[users]\nfile = \"users.toml\"\n"));
    let users = f.dir.path().join("users.toml").display().to_string();

    f.write(
        "users.toml",
        "[[users]]\nusername = \"bob\"\npassword_hash = \"hunter2\"\n",
    );
    assert!(
        f.error().starts_with(&format!(
            "{users}: user `bob`: password_hash is not a valid PHC hash: "
        )),
        "{}",
        f.error()
    );

    f.write("users.toml", "[[users]]\nusername = \"bob\"\npassword_hash = \"$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g\"\n");
    assert_eq!(
        f.error(),
        format!(
            "{users}: users[0].password_hash (user `bob`): not an argon2id hash; make one with `forwardauth-svc hash-password`"
        )
    );

    f.write(
        "users.toml",
        &format!("[[users]]\nusername = \"bob\"\npassword_hash = \"{h}\"\n[[users]]\nusername = \"bob\"\npassword_hash = \"{h}\"\n", h = hash()),
    );
    assert_eq!(f.error(), format!("{users}: user `bob` is listed twice"));

    f.write(
        "users.toml",
        "[[users]]\nusername = \"bob\"\npasword_hash = \"x\"\n",
    );
    assert!(
        f.error().starts_with(&format!(
            "{users}: users[0].pasword_hash: unknown field `pasword_hash`"
        )),
        "{}",
        f.error()
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
fn initial_access_tokens_never_appear_in_debug_output() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[registration]\ninitial_access_tokens = [\"very-secret-token\"]\n"
    ));
    let text = std::fs::read_to_string(f.path()).unwrap();
    let raw = RawConfig::from_toml(&text, &f.path()).unwrap();
    assert!(!format!("{raw:?}").contains("very-secret-token"));
    let c = f.load().unwrap();
    assert!(!format!("{c:?}").contains("very-secret-token"));
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
    assert_eq!(c.users.len(), 1);
    assert_eq!(c.users[0].username, "demo");
}

#[test]
fn the_example_in_the_module_documentation_loads() {
    // The first ```toml block of the module docs is a complete file; the second is a users file.
    let doc: Vec<&str> = include_str!("mod.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap()
        })
        .collect();
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in doc {
        match (&mut current, line) {
            (None, "```toml") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap().join("\n")),
            (Some(b), l) => b.push(l),
            (None, _) => {}
        }
    }
    assert_eq!(blocks.len(), 2);
    let f = Fixture::new(&blocks[0]);
    f.write(
        "users.toml",
        &blocks[1].replace("$argon2id$v=19$m=19456,t=2,p=1$…", hash()),
    );
    let c = f.load().unwrap();
    assert_eq!(c.server.issuer, "https://auth.example.com");
    assert_eq!(c.users.len(), 1);
    assert_eq!(
        c.server.resources[0].tool_scopes,
        [ToolScope::new(
            "tools/call:delete_repo",
            vec!["mcp:admin".into()]
        )]
    );
}

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
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\nallowed_github_orgs = [\"Acme\"]\nallowed_github_teams = [\"Acme/Platform\"]\n",
    )
    .unwrap();
    let config = load(Some(&file), &no_env).unwrap();
    assert_eq!(
        config.server.resources[0].policy.groups,
        vec!["acme", "acme/platform"]
    );
}

#[test]
fn the_redis_backend_takes_url_prefix_pool_and_timeout_and_tightens_the_engine() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\nbackend = \"redis\"\nurl = \"rediss://:hunter2@redis.internal:6380/3\"\nkey_prefix = \"fa-prod\"\npool_size = 4\ntimeout_ms = 750\n"
    ));
    let c = f.load().unwrap();
    assert_eq!(
        c.store,
        StoreConfig::Redis(RedisStoreConfig {
            url: RedisUrl("rediss://:hunter2@redis.internal:6380/3".into()),
            key_prefix: "fa-prod".into(),
            pool_size: 4,
            timeout: Duration::from_millis(750),
        })
    );
    assert_eq!(
        c.server.revocation_max_staleness,
        Some(REDIS_REVOCATION_MAX_STALENESS)
    );
    assert_eq!(c.server.key_activation_delay, REDIS_KEY_ACTIVATION_DELAY);
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains("rediss://:redacted@redis.internal:6380/3"),
        "{debug}"
    );

    // The environment's URL wins, and the defaults fill the rest.
    let f = Fixture::new(&format!("{MINIMAL}\n[store]\nbackend = \"redis\"\n"));
    let c = f
        .load_with(&[("FORWARDAUTH_REDIS_URL", "redis://127.0.0.1:6379")])
        .unwrap();
    assert_eq!(
        c.store,
        StoreConfig::Redis(RedisStoreConfig {
            url: RedisUrl("redis://127.0.0.1:6379".into()),
            key_prefix: "forwardauth".into(),
            pool_size: 16,
            timeout: Duration::from_secs(2),
        })
    );
    // The embedded store keeps the single-instance engine settings.
    let c = Fixture::new(MINIMAL).load().unwrap();
    assert_eq!(c.server.revocation_max_staleness, None);
}

#[test]
fn a_bad_redis_setting_names_the_key_and_never_quotes_the_url() {
    let cases = [
        (
            "backend = \"redis\"",
            "store.url: backend = \"redis\" needs a URL (or FORWARDAUTH_REDIS_URL)",
        ),
        (
            "backend = \"redis\"\nurl = \"http://:hunter2@h\"",
            "store.url: expected redis://[user:password@]host[:port][/db] or rediss://… (TLS)",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\nkey_prefix = \"a{b}\"",
            "store.key_prefix: must be non-empty, without braces, whitespace or control characters",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\npool_size = 0",
            "store.pool_size: must be at least 1",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\ntimeout_ms = 0",
            "store.timeout_ms: must be greater than zero",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\npath = \"x.redb\"",
            "store.path: applies to the embedded backend only",
        ),
        (
            "url = \"redis://h\"",
            "store.url: applies to backend = \"redis\" only",
        ),
    ];
    for (store, expected) in cases {
        let f = Fixture::new(&format!("{MINIMAL}\n[store]\n{store}\n"));
        let err = f.error();
        assert_eq!(err, format!("{}: {expected}", f.file()));
        assert!(!err.contains("hunter2"));
    }
    let f = Fixture::new(&format!("{MINIMAL}\n[store]\nbackend = \"redis\"\n"));
    assert_eq!(
        f.load_with(&[("FORWARDAUTH_REDIS_URL", "redis:/nohost")])
            .unwrap_err()
            .to_string(),
        "FORWARDAUTH_REDIS_URL: expected redis://[user:password@]host[:port][/db] or rediss://… (TLS)"
    );
}

#[test]
fn the_embedded_store_cache_is_configurable_within_bounds() {
    let f = Fixture::new(&format!("{MINIMAL}\n[store]\ncache_mib = 8\n"));
    let StoreConfig::Embedded { cache_bytes, .. } = f.load().unwrap().store else {
        panic!("embedded store expected")
    };
    assert_eq!(cache_bytes, 8 * 1024 * 1024);
    for (store, expected) in [
        (
            "cache_mib = 0",
            "store.cache_mib: must be between 1 and 65536 (MiB)",
        ),
        (
            "cache_mib = 65537",
            "store.cache_mib: must be between 1 and 65536 (MiB)",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\ncache_mib = 8",
            "store.cache_mib: applies to the embedded backend only",
        ),
    ] {
        let f = Fixture::new(&format!("{MINIMAL}\n[store]\n{store}\n"));
        assert_eq!(f.error(), format!("{}: {expected}", f.file()));
    }
}

#[test]
fn client_metadata_documents_are_enabled_by_default_for_any_public_host() {
    let c = Fixture::new(MINIMAL).load().unwrap().server.client_metadata;
    assert!(c.enabled);
    assert_eq!(c.hosts, HostPolicy::Any);
    assert!(!c.allow_private_addresses && !c.allow_http_loopback);
    assert!(c.allowed_networks.is_empty());
    assert_eq!(
        (c.timeout, c.max_document_bytes),
        (Duration::from_secs(3), 5120)
    );
    assert_eq!(
        (c.cache_min, c.cache_max),
        (Duration::from_secs(300), Duration::from_secs(86400))
    );
    assert!(c.builtin_roots && c.extra_root_certificates.is_empty());
    assert!(load(None, &no_env).unwrap().server.client_metadata.enabled);
}

#[test]
fn client_metadata_maps_every_key() {
    let f = Fixture::new(&format!(
        r#"{MINIMAL}
[client_metadata]
allowed_hosts = ["claude.ai", "*.Example.com"]
allow_private_addresses = true
allowed_networks = ["127.0.0.1", "10.20.0.0/16"]
allow_http_loopback = true
timeout_ms = 1500
max_document_bytes = 4096
cache_min_secs = 60
cache_max_secs = 3600
cache_capacity = 50
ca_certificates = ["certs/ca.pem"]
builtin_roots = false
"#
    ));
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    f.write("certs/ca.pem", pem);
    let c = f.load().unwrap().server.client_metadata;
    assert_eq!(
        c.hosts,
        HostPolicy::Allow(vec![
            HostPattern::parse("claude.ai").unwrap(),
            HostPattern::parse("*.example.com").unwrap()
        ])
    );
    assert!(c.allow_private_addresses && c.allow_http_loopback);
    assert_eq!(
        c.allowed_networks,
        [
            "127.0.0.1/32".parse::<ipnet::IpNet>().unwrap(),
            "10.20.0.0/16".parse().unwrap()
        ]
    );
    assert_eq!(c.timeout, Duration::from_millis(1500));
    assert_eq!((c.max_document_bytes, c.cache_capacity), (4096, 50));
    assert_eq!(
        (c.cache_min, c.cache_max),
        (Duration::from_secs(60), Duration::from_secs(3600))
    );
    assert_eq!(c.extra_root_certificates, [pem.as_bytes().to_vec()]);
    assert!(!c.builtin_roots);

    let f = Fixture::new(&format!(
        "{MINIMAL}\n[client_metadata]\nenabled = false\ndenied_hosts = [\"evil.example\"]\n"
    ));
    let c = f.load().unwrap().server.client_metadata;
    assert!(!c.enabled);
    assert_eq!(
        c.hosts,
        HostPolicy::Deny(vec![HostPattern::parse("evil.example").unwrap()])
    );
}

#[test]
fn client_metadata_errors_name_the_key() {
    let cases = [
        (
            "allowed_hosts = [\"a.example\"]\ndenied_hosts = [\"b.example\"]",
            "client_metadata.denied_hosts: set allowed_hosts or denied_hosts, not both".to_owned(),
        ),
        (
            "allowed_hosts = [\"ok.example\", \"a*.example\"]",
            "client_metadata.allowed_hosts[1]: `a*.example` is not a host name or `*.domain` pattern"
                .to_owned(),
        ),
        (
            "allowed_hosts = []",
            "client_metadata.allowed_hosts: an empty list would refuse every client; set enabled = false instead"
                .to_owned(),
        ),
        (
            "allowed_networks = [\"10.0.0.0/40\"]",
            "client_metadata.allowed_networks[0]: not an IP address or CIDR range: \"10.0.0.0/40\" (invalid IP address syntax)"
                .to_owned(),
        ),
        (
            "timeout_ms = 0",
            "client_metadata.timeout_ms: must be greater than zero".to_owned(),
        ),
        (
            "max_document_bytes = 0",
            "client_metadata.max_document_bytes: must be greater than zero".to_owned(),
        ),
        (
            "cache_min_secs = 7200\ncache_max_secs = 3600",
            "client_metadata.cache_min_secs: 7200 s is more than cache_max_secs (3600 s)".to_owned(),
        ),
        (
            "builtin_roots = false",
            "client_metadata.builtin_roots: false needs at least one ca_certificates entry (nothing would be trusted)"
                .to_owned(),
        ),
        (
            "colour = \"blue\"",
            "client_metadata.colour: unknown field `colour`, expected one of `enabled`, `allowed_hosts`, `denied_hosts`, `allow_private_addresses`, `allowed_networks`, `allow_http_loopback`, `timeout_ms`, `max_document_bytes`, `cache_min_secs`, `cache_max_secs`, `cache_capacity`, `ca_certificates`, `builtin_roots`"
                .to_owned(),
        ),
    ];
    for (table, message) in cases {
        let f = Fixture::new(&format!("{MINIMAL}\n[client_metadata]\n{table}\n"));
        assert_eq!(f.error(), format!("{}: {message}", f.file()), "{table}");
    }
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[client_metadata]\nca_certificates = [\"missing.pem\", \"not-pem.txt\"]\n"
    ));
    let missing = f.dir.path().join("missing.pem");
    assert!(
        f.error().starts_with(&format!(
            "{}: client_metadata.ca_certificates[0]: cannot read {}: ",
            f.file(),
            missing.display()
        )),
        "{}",
        f.error()
    );
    f.write("missing.pem", "-----BEGIN CERTIFICATE-----\n");
    f.write("not-pem.txt", "hello");
    assert_eq!(
        f.error(),
        format!(
            "{}: client_metadata.ca_certificates[1]: {} holds no PEM certificate",
            f.file(),
            f.dir.path().join("not-pem.txt").display()
        )
    );
}

#[test]
fn the_limits_example_loads_with_the_values_it_shows() {
    let doc: Vec<&str> = include_str!("limits.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap()
        })
        .collect();
    let start = doc.iter().position(|l| *l == "```toml").unwrap();
    let end = doc[start + 1..].iter().position(|l| *l == "```").unwrap();
    let block = doc[start + 1..start + 1 + end].join("\n");
    let f = Fixture::new(&format!(
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n{block}"
    ));
    let c = f.load().unwrap();
    assert_eq!(c.password_checks.concurrent, 2);
    assert_eq!(c.password_checks.queued, 16);
    let r = &c.server.regulation;
    assert!(r.enabled);
    assert_eq!(
        (r.max_failures_per_account, r.max_failures_per_address),
        (5, 20)
    );
    assert_eq!((r.window.as_secs(), r.ban.as_secs()), (600, 900));
    // Every rate shown is the default.
    assert_eq!(c.server.rate_limits, oauth_core::RateLimits::default());
    // And the regulation shown is the default.
    assert_eq!(*r, oauth_core::Regulation::default());
}

#[test]
fn limits_can_be_turned_off_and_zero_bounds_are_refused_by_key() {
    let f = Fixture::new(
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n[login]\nregulation = false\n[rate_limits]\nregister = 0\nlogin = 0\n",
    );
    let c = f.load().unwrap();
    assert!(!c.server.regulation.enabled);
    assert_eq!(c.server.rate_limits.register_per_minute, 0);
    assert_eq!(c.server.rate_limits.login_per_minute, 0);
    assert_eq!(c.server.rate_limits.token_per_minute, 300);
    for (section, key) in [
        ("login", "password_checks"),
        ("login", "max_failures_per_account"),
        ("login", "max_failures_per_address"),
        ("login", "failure_window_secs"),
        ("login", "ban_secs"),
        ("rate_limits", "max_addresses"),
    ] {
        let f = Fixture::new(&format!(
            "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n[{section}]\n{key} = 0\n"
        ));
        let e = f.load().unwrap_err().to_string();
        assert!(
            e.contains(&format!("{section}.{key}")) && e.contains("at least 1"),
            "{e}"
        );
    }
    let f = Fixture::new(
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n[login]\nbans = 3\n",
    );
    let e = f.load().unwrap_err().to_string();
    assert!(e.contains("login") && e.contains("bans"), "{e}");
}

#[test]
fn the_readme_limits_block_is_the_module_example_and_loads() {
    let readme = include_str!("../../../README.md");
    let block = readme
        .split("<!-- limits:begin -->\n```toml\n")
        .nth(1)
        .and_then(|r| r.split("```\n<!-- limits:end -->").next())
        .unwrap();
    let module: String = include_str!("limits.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap()
        })
        .skip_while(|l| *l != "```toml")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    let same = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split('#').next().unwrap().trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(
        same(block),
        same(&module),
        "README and config::limits show the same settings"
    );
    let f = Fixture::new(&format!(
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n{block}"
    ));
    let c = f.load().unwrap();
    assert_eq!(c.server.rate_limits, oauth_core::RateLimits::default());
}

#[test]
fn the_readme_verify_cache_example_loads() {
    let readme = include_str!("../../../README.md");
    let line = readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("verify_cache_mib ="))
        .unwrap();
    let f = Fixture::new(&format!("{MINIMAL}\n[gate]\n{line}\n"));
    assert_eq!(
        f.load().unwrap().server.verify_cache_bytes,
        64 * 1024 * 1024
    );
}

#[test]
fn a_bad_allowed_origin_is_named_by_the_engine_rule() {
    let f = Fixture::new(&format!(
        "{MINIMAL}allowed_origins = [\"http://localhost:6274\", \"https://app.example.com/path\"]\n"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: resources[0].allowed_origins[1]: \"https://app.example.com/path\" is not an origin like https://app.example.com (scheme, host and optional port, no path)",
            f.file()
        )
    );
}

#[test]
fn the_oidc_issuer_follows_the_engine_transport_rule() {
    let f = Fixture::new(&format!(
        "{MINIMAL}[[providers]]\ntype = \"oidc\"\nissuer = \"http://127.0.0.2:9000\"\nclient_id = \"x\"\n"
    ));
    f.load().unwrap();
    let f = Fixture::new(&format!(
        "{MINIMAL}[[providers]]\ntype = \"oidc\"\nissuer = \"http://localhost.example.com\"\nclient_id = \"x\"\n"
    ));
    assert_eq!(
        f.error(),
        format!(
            "{}: providers[0].issuer: must be https (http only on a loopback host)",
            f.file()
        )
    );
}
