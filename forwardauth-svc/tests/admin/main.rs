//! The administrative commands beside the real binary on the embedded store: while it runs they go over its admin
//! socket (a second process cannot open the locked store) and take effect in it; stopped, they open the store;
//! a killed service's stale socket neither breaks the next start nor the commands; a locked store without a
//! socket is reported as such. Every command here is the real binary run as a second process.

// Unix sockets and modes.
#![cfg(unix)]
// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use test_support::{REDIRECT, Running, VERIFIER, authorize_url, browser, field, free_port};
use tokio::process::Command;

/// Writes `dir/config.toml` (listening on `port`, embedded store in `data/`, resource `/mcp`, `extra` appended)
/// and `dir/users.toml` with alice (password `wonderland`, group `admins`) and bob.
fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let hash = oauth_core::LocalUsers::hash_password("wonderland").unwrap();
    std::fs::write(
        dir.join("users.toml"),
        format!(
            "[[users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\nemail = \"alice@example.com\"\ngroups = [\"admins\", \"dev\"]\n\n\
             [[users]]\nusername = \"bob\"\npassword_hash = \"{hash}\"\n"
        ),
    )
    .unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nissuer = \"http://127.0.0.1:{port}\"\n\n[store]\npath = \"data/oauth.redb\"\n\n\
             [users]\nfile = \"users.toml\"\n\n[[resources]]\nresource = \"http://127.0.0.1:{port}/mcp\"\nscopes = [\"mcp\"]\n\
             required_scopes = [\"mcp\"]\n{extra}"
        ),
    )
    .unwrap();
    config
}

/// The service on `config`, ready: `/health` answers (the admin socket is bound before the HTTP server runs).
async fn serve(config: &Path) -> Running {
    serve_as(config, None).await
}

/// [`serve`], run as `user` (uid, gid) when given (the test then runs as root).
async fn serve_as(config: &Path, user: Option<(u32, u32)>) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forwardauth-svc"));
    cmd.arg("--config")
        .arg(config)
        .arg("serve")
        .stderr(Stdio::null());
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    let running = Running::start(cmd, "forwardauth-svc listening on ").await;
    let health = format!("{}/health", running.announced);
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(&health).await
            && r.status() == 200
        {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{health} never answered 200");
}

/// Runs `forwardauth-svc --config <config> <args>` as a second process.
async fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forwardauth-svc"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("FORWARDAUTH_ADMIN_SOCKET")
        .env_remove("FORWARDAUTH_STORE_PATH")
        .env_remove("FORWARDAUTH_STORE_BACKEND")
        .env_remove("FORWARDAUTH_LISTEN")
        .output()
        .await
        .unwrap()
}

/// [`cli`], which must succeed; its stdout.
async fn ok(config: &Path, args: &[&str]) -> String {
    let out = cli(config, args).await;
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Alice's way through registration, sign-in and consent to an access token: `(client_id, access token)`.
async fn alice_token(base: &str) -> (String, String) {
    let http = browser();
    let mcp = format!("{base}/mcp");
    let reg: Value = http
        .post(format!("{base}/register"))
        .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "admin test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let authorize = authorize_url(
        &format!("{base}/authorize"),
        &client_id,
        REDIRECT,
        "s",
        Some("mcp"),
        &mcp,
    );
    let html = http
        .get(authorize.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let handle = field(&html, "handle");
    let html = http
        .post(format!("{base}/login"))
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", field(&html, "csrf").as_str()),
            ("username", "alice"),
            ("password", "wonderland"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let approved = http
        .post(format!("{base}/consent"))
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", field(&html, "csrf").as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302);
    let location = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    let tokens: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id.as_str()),
            ("resource", mcp.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        client_id,
        tokens["access_token"].as_str().unwrap().to_owned(),
    )
}

/// The `kid`s `/jwks.json` publishes.
async fn published_kids(base: &str) -> Vec<String> {
    let jwks: Value = reqwest::get(format!("{base}/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The lines of a table, each split into its columns (cells without spaces).
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// Stops the service with SIGTERM and waits for it.
async fn stop(mut svc: Running) {
    let pid = svc.child.id().unwrap();
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(15), svc.child.wait())
        .await
        .expect("stops within 15 s")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_service_runs_the_admin_commands_go_over_its_socket_and_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let svc = serve(&config).await;
    let base = svc.announced.clone();

    // The socket beside the store, its owner's only.
    let socket = dir.path().join("data/oauth.redb.admin.sock");
    {
        use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
        let meta = std::fs::metadata(&socket).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    let (client_id, access) = alice_token(&base).await;
    let http = reqwest::Client::new();
    let mcp = format!("{base}/mcp");
    assert_eq!(
        test_support::verify(&http, &base, &mcp, Some(&access))
            .await
            .status(),
        200
    );

    // `users`: the users file's users, with their live grants.
    let users = ok(&config, &["users"]).await;
    assert_eq!(
        rows(&users),
        [
            vec!["USERNAME", "EMAIL", "GROUPS", "GRANTS"],
            vec!["alice", "alice@example.com", "admins,dev", "1"],
            vec!["bob", "-", "-", "0"],
        ],
        "{users}"
    );

    // `clients list` sees the client registered over HTTP a moment ago.
    let clients = ok(&config, &["clients", "list"]).await;
    assert_eq!(
        rows(&clients)[1][..2],
        [client_id.as_str(), "admin"],
        "{clients}"
    );

    // `keys list`: the one key, signing.
    let keys = ok(&config, &["keys", "list"]).await;
    let first = rows(&keys)[1][0].to_owned();
    assert_eq!(rows(&keys).len(), 2, "{keys}");
    assert_eq!(*rows(&keys)[1].last().unwrap(), "signs", "{keys}");
    assert_eq!(rows(&keys)[1][1], "ES256");
    assert!(!keys.contains("\"d\""), "no private material: {keys}");

    // `revoke --user`: the running gate refuses the token at once.
    assert_eq!(
        ok(&config, &["revoke", "--user", "local:alice"]).await,
        "revoked 1 grant(s) of user local:alice\n"
    );
    let denied = test_support::verify(&http, &base, &mcp, Some(&access)).await;
    assert_eq!(denied.status(), 401);
    assert!(rows(&ok(&config, &["users"]).await)[1].ends_with(&["0"]));

    // `keys rotate`: the new key is published by the running service and signs; the old one only verifies.
    let rotated = ok(&config, &["keys", "rotate"]).await;
    let kid = rotated
        .strip_prefix("new signing key: ")
        .unwrap()
        .trim()
        .to_owned();
    let published = published_kids(&base).await;
    assert!(
        published.contains(&kid) && published.contains(&first),
        "{published:?}"
    );
    let keys = ok(&config, &["keys", "list"]).await;
    let status: HashMap<&str, String> = keys
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0], cols[5..].join(" "))
        })
        .collect();
    assert_eq!(status[kid.as_str()], "signs", "{keys}");
    assert!(
        status[first.as_str()].starts_with("verifies only (published until "),
        "{keys}"
    );

    // `store export` through the socket: the file is written here, mode 0600, and holds the client.
    let export = dir.path().join("export.json");
    let said = ok(&config, &["store", "export", export.to_str().unwrap()]).await;
    assert!(
        said.starts_with("exported 1 client(s), 2 signing key(s) and "),
        "{said}"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&export).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let exported: Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    assert_eq!(exported["clients"][0]["client_id"], client_id.as_str());

    // An error the service reports comes back as the command's error.
    let out = cli(&config, &["clients", "show", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: no client `nope`\n"
    );

    // `clients delete`, seen by the running service: its registration is gone.
    assert_eq!(
        ok(&config, &["clients", "delete", &client_id]).await,
        format!("deleted client {client_id}; revoked 0 grant(s)\n")
    );
    let read = http
        .get(format!("{base}/authorize"))
        .query(&[("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 400);

    // `store import` through the socket: the file is read here and its client is back in the running service.
    let said = ok(&config, &["store", "import", export.to_str().unwrap()]).await;
    assert!(
        said.starts_with(
            "imported 1 client(s) (0 already present), 0 signing key(s) (2 already present) and "
        ),
        "{said}"
    );
    let clients = ok(&config, &["clients", "list"]).await;
    assert_eq!(rows(&clients)[1][0], client_id, "{clients}");
    ok(&config, &["clients", "delete", &client_id]).await;

    stop(svc).await;
    assert!(!socket.exists(), "the socket goes away with the service");

    // Stopped: the same commands open the store themselves.
    assert_eq!(
        ok(&config, &["clients", "list"]).await,
        "no clients registered\n"
    );
    let keys = ok(&config, &["keys", "list"]).await;
    assert_eq!(rows(&keys).len(), 3, "{keys}");
    assert!(keys.contains(&kid));
    let users = ok(&config, &["users"]).await;
    assert_eq!(
        rows(&users)[1],
        ["alice", "alice@example.com", "admins,dev", "0"]
    );
    assert_eq!(
        ok(&config, &["revoke", "--client", "gone"]).await,
        "revoked 0 grant(s) of client gone\n"
    );
}

/// A service killed with SIGKILL leaves its socket behind: the commands still work (on the store), and the next
/// start replaces the stale socket and serves them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_breaks_neither_the_commands_nor_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port(), "");
    let socket = dir.path().join("data/oauth.redb.admin.sock");
    let mut svc = serve(&config).await;
    svc.child.start_kill().unwrap();
    svc.child.wait().await.unwrap();
    assert!(socket.exists(), "SIGKILL leaves the socket file");

    let keys = ok(&config, &["keys", "list"]).await;
    assert_eq!(
        rows(&keys).len(),
        2,
        "offline, past the stale socket: {keys}"
    );

    let svc = serve(&config).await;
    // Over the new socket: the store is locked, so only the service can have answered.
    let rotated = ok(&config, &["keys", "rotate"]).await;
    let kid = rotated.strip_prefix("new signing key: ").unwrap().trim();
    assert!(
        published_kids(&svc.announced)
            .await
            .iter()
            .any(|k| k == kid)
    );
    stop(svc).await;
}

/// With the admin socket turned off, a command on the running service's store says what is going on and how
/// to reach it, instead of the store's lock error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_without_a_socket_is_reported_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port(), "\n[admin]\nsocket = \"off\"\n");
    let svc = serve(&config).await;
    assert!(!dir.path().join("data/oauth.redb.admin.sock").exists());
    for args in [&["clients", "list"][..], &["store", "export", "x.json"][..]] {
        let out = cli(&config, args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr,
            format!(
                "Error: the store {} is in use by another process (a running forwardauth-svc?); the admin socket is off \
                 (`[admin] socket`): enable it in the service's configuration and restart the service, or stop the \
                 service to run this command on the store directly\n",
                dir.path().join("data/oauth.redb").display()
            ),
            "{args:?}"
        );
        assert!(!stderr.contains("Database already open"));
    }
    stop(svc).await;
}

/// The uid and gid of `nobody`, when the test runs as root (it can then start the service as another user);
/// `None`, with the reason printed, otherwise.
fn another_user(test: &str) -> Option<(u32, u32)> {
    if rustix::process::geteuid().as_raw() != 0 {
        println!(
            "{test}: skipped, not root: only root can start the service as another user (nobody)"
        );
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .args([flag, "nobody"])
            .output()
            .unwrap();
        assert!(out.status.success(), "no user `nobody`: {out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    Some((id("-u"), id("-g")))
}

/// A configuration in a fresh directory that `user` may read, its store directory `data/` (mode 0700) owned by
/// `user`, `extra` appended: `(directory, config)`.
fn config_for(user: (u32, u32), extra: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write_config(dir.path(), free_port(), extra);
    for file in [&config, &dir.path().join("users.toml")] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&data, Some(user.0), Some(user.1)).unwrap();
    (dir, config)
}

/// Root administers a service running as another user (a systemd `DynamicUser`) over its socket, when the socket
/// and its directory are that user's alone: the store is locked by the service, so only it can have answered. The
/// service's audit trail names root, the socket's peer, as the actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_administers_a_service_of_another_user_over_the_socket_in_that_users_directory() {
    use std::os::unix::fs::MetadataExt as _;
    let Some(nobody) = another_user("root_administers_a_service_of_another_user") else {
        return;
    };
    let (dir, config) = config_for(
        nobody,
        "\n[audit]\ntarget = \"file\"\nfile = \"data/audit.jsonl\"\n",
    );
    let svc = serve_as(&config, Some(nobody)).await;
    let socket = dir.path().join("data/oauth.redb.admin.sock");
    assert_eq!(std::fs::metadata(&socket).unwrap().uid(), nobody.0);

    // A client registered over HTTP a moment ago, listed by root through the service.
    let reg: Value = reqwest::Client::new()
        .post(format!("{}/register", svc.announced))
        .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "root test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap();
    let clients = ok(&config, &["clients", "list"]).await;
    assert_eq!(rows(&clients)[1][..2], [client_id, "root"], "{clients}");
    let users = ok(&config, &["users"]).await;
    assert_eq!(
        rows(&users)[1],
        ["alice", "alice@example.com", "admins,dev", "0"]
    );
    // `store export`: the private keys travel to root, and root writes the file.
    let export = dir.path().join("export.json");
    let said = ok(&config, &["store", "export", export.to_str().unwrap()]).await;
    assert!(
        said.starts_with("exported 1 client(s), 1 signing key(s) and "),
        "{said}"
    );
    assert_eq!(std::fs::metadata(&export).unwrap().uid(), 0);
    // The service (another user) audits the export as root's: the actor is the socket's peer, not the service.
    let audit = std::fs::read_to_string(dir.path().join("data/audit.jsonl")).unwrap();
    let exports: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "admin" && l["action"] == "export")
        .collect();
    assert_eq!(exports.len(), 1, "{audit}");
    assert_eq!(exports[0]["actor"], "unix:uid=0", "{audit}");
    assert_ne!(nobody.0, 0);
    stop(svc).await;
}

/// Root refuses to talk to a service of another user whose socket is in a directory others may write (a
/// `/tmp`-like one, root's, mode 1777): anyone could have bound that path. Nothing is sent, and the error says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_refuses_a_service_of_another_user_whose_socket_directory_others_may_write() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(nobody) = another_user("root_refuses_a_service_of_another_user") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let socket = shared.join("admin.sock");
    let (store_dir, config) = config_for(
        nobody,
        &format!("\n[admin]\nsocket = \"{}\"\n", socket.display()),
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let svc = serve_as(&config, Some(nobody)).await;
    {
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(std::fs::metadata(&socket).unwrap().uid(), nobody.0);
    }

    for args in [&["clients", "list"][..], &["keys", "rotate"][..]] {
        let out = cli(&config, args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "Error: admin socket {}: answered by uid {}, but {} is writable by its group or others (mode 1777), \
                 so anyone could have put the socket there; nothing was sent (someone else may hold the socket's \
                 path: keep it in a directory only the service's user may write)\n",
                socket.display(),
                nobody.0,
                shared.display()
            ),
            "{args:?}"
        );
        assert!(out.stdout.is_empty());
    }
    // Nothing reached the service: still its one signing key.
    let jwks: Value = reqwest::get(format!("{}/jwks.json", svc.announced))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    stop(svc).await;
    drop(store_dir);
}

/// `health` asks the configured listen address: 0 while the service answers, 1 with the reason once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_0_while_the_service_answers_and_1_when_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let svc = serve(&config).await;
    assert_eq!(
        ok(&config, &["health"]).await,
        format!("healthy: http://127.0.0.1:{port}/health answered 200\n")
    );
    stop(svc).await;
    let out = cli(&config, &["health"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "Error: unhealthy: http://127.0.0.1:{port}/health: "
        )),
        "{stderr}"
    );
}
