//! `mcp-bridge echo`, the real binary: over Streamable HTTP on a free loopback port, driven with raw JSON-RPC
//! (answers as JSON or as SSE), and with `--stdio` over pipes, as the bridge runs a child.

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-bridge");
const PROTOCOL: &str = "2025-06-18";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The echo server over HTTP, killed on drop; its stderr (the log) goes to a file.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("echo.log");
        let port = free_port();
        let child = Command::new(BIN)
            .args(["echo", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("mcp-bridge echo exited ({status}):\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "not listening:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn log(&self) -> String {
        read(&self.log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The JSON-RPC message with `id` in a response body: a JSON body, or the `data:` lines of an SSE stream.
fn message_with_id(content_type: &str, body: &str, id: u64) -> Value {
    if content_type.starts_with("application/json") {
        return serde_json::from_str(body).unwrap();
    }
    assert!(
        content_type.starts_with("text/event-stream"),
        "content type {content_type:?}: {body}"
    );
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no message with id {id} in the stream:\n{body}"))
}

/// One MCP session over raw HTTP, with extra headers on every request.
struct Session {
    http: reqwest::Client,
    url: String,
    id: String,
    headers: Vec<(&'static str, &'static str)>,
    next: u64,
}

impl Session {
    async fn open(url: &str, headers: &[(&'static str, &'static str)]) -> Session {
        let http = reqwest::Client::new();
        let mut request = http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL, "capabilities": {},
                "clientInfo": {"name": "echo test", "version": "1"}}}),
            );
        for (n, v) in headers {
            request = request.header(*n, *v);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let id = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        let init = message_with_id(&ct, &r.text().await.unwrap(), 0);
        assert_eq!(
            init["result"]["serverInfo"]["name"], "mcp-bridge-echo",
            "{init}"
        );
        let session = Session {
            http,
            url: url.to_owned(),
            id,
            headers: headers.to_vec(),
            next: 1,
        };
        let r = session
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(r.status(), 202);
        session
    }

    async fn post(&self, body: &Value) -> reqwest::Response {
        let mut request = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", PROTOCOL)
            .json(body);
        for (n, v) in &self.headers {
            request = request.header(*n, *v);
        }
        request.send().await.unwrap()
    }

    /// A request; its JSON-RPC answer (result or error).
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let r = self
            .post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        assert_eq!(r.status(), 200, "{method}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        message_with_id(&ct, &r.text().await.unwrap(), id)
    }

    /// `tools/call`; its result (failing on a JSON-RPC error).
    async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let answer = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await;
        assert!(answer["error"].is_null(), "{tool}: {answer}");
        answer["result"].clone()
    }
}

/// The text of a tool result's first content block.
fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap()
}

#[tokio::test]
async fn over_http_the_five_tools_answer() {
    let server = Server::start().await;
    let mut s = Session::open(
        &server.url,
        &[
            ("X-User-Id", "local:alice"),
            ("X-User-Name", "Alice"),
            ("X-Scopes", "mcp"),
            ("X-Custom", "one"),
        ],
    )
    .await;

    let list = s.request("tools/list", json!({})).await;
    let mut names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "authContext",
            "echo",
            "healthProbe",
            "printHeader",
            "requestTiming"
        ]
    );

    let echoed = s.call("echo", json!({"message": "hello, bridge"})).await;
    assert_eq!(text(&echoed), "hello, bridge");

    // Any case of the name; a header that is absent says so.
    let custom = s.call("printHeader", json!({"name": "x-CUSTOM"})).await;
    assert_eq!(text(&custom), "one");
    let absent = s.call("printHeader", json!({"name": "X-Absent"})).await;
    assert_eq!(text(&absent), "header x-absent not present");
    let bad = s
        .request(
            "tools/call",
            json!({"name": "printHeader", "arguments": {"name": "not a name"}}),
        )
        .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    let context = s.call("authContext", json!({})).await;
    let context = &context["structuredContent"];
    assert_eq!(context["transport"], "http");
    assert_eq!(context["X-User-Id"], "local:alice");
    assert_eq!(context["X-User-Name"], "Alice");
    assert_eq!(context["X-Scopes"], "mcp");
    assert_eq!(context["X-User-Email"], Value::Null);
    assert_eq!(context["X-Client-Id"], Value::Null);
    assert_eq!(context["authorization_header_present"], false);

    // A slow request: the delay is waited, and reported.
    let started = Instant::now();
    let timing = s.call("requestTiming", json!({"delay_ms": 300})).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let timing = &timing["structuredContent"];
    assert_eq!(timing["delay_ms"], 300);
    assert!(timing["handled_ms"].as_u64().unwrap() >= 300, "{timing}");
    assert!(
        timing["received_at"].as_str().unwrap().ends_with('Z'),
        "{timing}"
    );
    let quick = s.call("requestTiming", json!({})).await;
    assert_eq!(quick["structuredContent"]["delay_ms"], 0);
    let too_long = s
        .request(
            "tools/call",
            json!({"name": "requestTiming", "arguments": {"delay_ms": 60_001}}),
        )
        .await;
    assert_eq!(too_long["error"]["code"], -32602, "{too_long}");
    assert!(
        too_long["error"]["message"]
            .as_str()
            .unwrap()
            .contains("60000"),
        "{too_long}"
    );

    let health = s.call("healthProbe", json!({})).await;
    let health = &health["structuredContent"];
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["pid"], server.child.id());
    assert!(health["uptime_secs"].is_u64());

    // A second session is served by the same process.
    let mut other = Session::open(&server.url, &[]).await;
    let health = other.call("healthProbe", json!({})).await;
    assert_eq!(health["structuredContent"]["pid"], server.child.id());
    let context = other.call("authContext", json!({})).await;
    assert_eq!(context["structuredContent"]["X-User-Id"], Value::Null);
}

#[tokio::test]
async fn an_authorization_header_is_reported_but_its_value_never_shown_or_logged() {
    const TOKEN: &str = "Bearer eyJ.secret-token-value.sig";
    const COOKIE: &str = "session=secret-cookie-value";
    let server = Server::start().await;
    let mut s = Session::open(&server.url, &[("Authorization", TOKEN), ("Cookie", COOKIE)]).await;

    let context = s.call("authContext", json!({})).await;
    assert_eq!(
        context["structuredContent"]["authorization_header_present"],
        true
    );
    for name in ["authorization", "Authorization", "cookie"] {
        let printed = s.call("printHeader", json!({"name": name})).await;
        assert_eq!(text(&printed), "<present, redacted>", "{name}");
    }
    let everything = context.to_string();
    assert!(!everything.contains("secret"), "{everything}");

    // Even at the most verbose level, the log names the tool and the header, never the values.
    let log = server.log();
    assert!(log.contains("printHeader"), "the calls are logged:\n{log}");
    assert!(!log.contains("secret-token-value"), "{log}");
    assert!(!log.contains("secret-cookie-value"), "{log}");
}

#[tokio::test]
async fn a_host_header_not_allowed_is_refused() {
    let server = Server::start().await;
    let r = reqwest::Client::new()
        .post(&server.url)
        .header("host", "evil.example")
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "echo test", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// One JSON-RPC line to the child, and (for a request) its answer line.
fn exchange(
    stdin: &mut std::process::ChildStdin,
    stdout: &mut impl Iterator<Item = std::io::Result<String>>,
    message: Value,
) -> Option<Value> {
    writeln!(stdin, "{message}").unwrap();
    stdin.flush().unwrap();
    let id = message.get("id")?.clone();
    for line in stdout.by_ref() {
        let answer: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if answer["id"] == id {
            return Some(answer);
        }
    }
    panic!("stdout ended before the answer to {message}");
}

#[test]
fn over_stdio_the_identity_comes_from_the_bridge_variables() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("echo.log");
    let mut child = Command::new(BIN)
        .args(["echo", "--stdio"])
        .env_clear()
        .env("MCP_BRIDGE_USER_ID", "local:alice")
        .env("MCP_BRIDGE_USER_EMAIL", "alice@example.com")
        .env("SECRET_API_KEY", "do-not-show")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();

    let init = exchange(
        &mut stdin,
        &mut stdout,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "echo test", "version": "1"}}}),
    )
    .unwrap();
    assert_eq!(
        init["result"]["serverInfo"]["name"], "mcp-bridge-echo",
        "{init}"
    );
    exchange(
        &mut stdin,
        &mut stdout,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );

    let call = |id: u64, name: &str, arguments: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": name, "arguments": arguments}})
    };
    let context = exchange(&mut stdin, &mut stdout, call(2, "authContext", json!({}))).unwrap();
    let context = &context["result"]["structuredContent"];
    assert_eq!(context["transport"], "stdio", "{context}");
    assert_eq!(context["MCP_BRIDGE_USER_ID"], "local:alice");
    assert_eq!(context["MCP_BRIDGE_USER_EMAIL"], "alice@example.com");
    assert_eq!(context["MCP_BRIDGE_USER_NAME"], Value::Null);
    assert_eq!(context["MCP_BRIDGE_SESSION_ID"], Value::Null);
    assert_eq!(context["authorization_header_present"], false);
    assert!(!context.to_string().contains("do-not-show"));

    let printed = exchange(
        &mut stdin,
        &mut stdout,
        call(3, "printHeader", json!({"name": "X-User-Id"})),
    )
    .unwrap();
    assert_eq!(
        printed["result"]["content"][0]["text"],
        "no HTTP request over stdio"
    );
    let timing = exchange(
        &mut stdin,
        &mut stdout,
        call(4, "requestTiming", json!({"delay_ms": 50})),
    )
    .unwrap();
    assert!(
        timing["result"]["structuredContent"]["handled_ms"]
            .as_u64()
            .unwrap()
            >= 50,
        "{timing}"
    );
    let health = exchange(&mut stdin, &mut stdout, call(5, "healthProbe", json!({}))).unwrap();
    assert_eq!(health["result"]["structuredContent"]["pid"], child.id());
    assert_eq!(health["result"]["structuredContent"]["transport"], "stdio");

    // Closing stdin stops it, cleanly (as the bridge stops a child); nothing but JSON-RPC went to stdout.
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 10 s after stdin closed:\n{}", read(&log));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}:\n{}", read(&log));
    assert_eq!(stdout.count(), 0, "stdout after the last answer");
}

/// A route pattern as `--path` would make axum's router panic: it is refused at startup, naming the option.
#[test]
fn a_path_that_is_a_route_pattern_is_refused_at_startup() {
    for bad in ["/mcp/:id", "/mcp/*rest", "/mcp/{id}", "mcp"] {
        let out = std::process::Command::new(BIN)
            .args(["echo", "--listen", "127.0.0.1:0", "--path", bad])
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run mcp-bridge echo");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} accepted");
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert!(stderr.contains("--path"), "{bad}: {stderr}");
        assert!(!stderr.contains("panicked"), "{bad}: {stderr}");
    }
}
