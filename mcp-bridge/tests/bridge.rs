//! The bridge as users meet it: the real binary on a free loopback port, the real
//! `@modelcontextprotocol/server-memory` (node) behind it, raw JSON-RPC over HTTP (JSON and SSE answers).
//! Children are found through `/proc` and stopped by PID.

// Test code: a failed expectation is the test failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The SDK's "everything" server: a long-running tool with progress notifications.
const EVERYTHING_SERVER: &str =
    "tests/js/node_modules/@modelcontextprotocol/server-everything/dist/index.js";
const MEMORY_SERVER: &str =
    "tests/js/node_modules/@modelcontextprotocol/server-memory/dist/index.js";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A running bridge in front of server-memory; stopped (SIGTERM, then SIGKILL) on drop.
struct Bridge {
    #[allow(dead_code)]
    process: Child,
    pid: u32,
    base: String,
    log: PathBuf,
    memory_dir: tempfile::TempDir,
}

impl Bridge {
    async fn start(options: &[&str]) -> Bridge {
        Bridge::start_with(options, &[]).await
    }

    async fn start_with(options: &[&str], env: &[(&str, &str)]) -> Bridge {
        Bridge::start_command(options, env, &["node", MEMORY_SERVER]).await
    }

    async fn start_command(options: &[&str], env: &[(&str, &str)], server: &[&str]) -> Bridge {
        Bridge::start_logging(options, env, server, "info").await
    }

    async fn start_logging(
        options: &[&str],
        env: &[(&str, &str)],
        server: &[&str],
        log_level: &str,
    ) -> Bridge {
        let port = free_port();
        let memory_dir = tempfile::tempdir().expect("temp dir");
        let log = memory_dir.path().join("bridge.log");
        let listen = format!("127.0.0.1:{port}");
        let memory_env = format!(
            "MEMORY_FILE_PATH={}/{{owner}}.json",
            memory_dir.path().display()
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
        command
            .args(["--listen", &listen, "--env", &memory_env])
            .args(options)
            .arg("--")
            .args(server)
            .current_dir(repo_root())
            .envs(env.iter().copied())
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let process = command.spawn().expect("start mcp-bridge");
        let pid = process.id().expect("pid");
        let bridge = Bridge {
            process,
            pid,
            base: format!("http://{listen}"),
            log,
            memory_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/health", bridge.base))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "bridge did not listen: {}",
                bridge.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bridge
    }

    fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    fn client(&self, user: Option<&str>) -> McpClient {
        McpClient::new(&self.url(), user, reqwest::Client::new())
    }

    async fn health(&self) -> Value {
        reqwest::get(format!("{}/health", self.base))
            .await
            .expect("health")
            .json()
            .await
            .expect("health JSON")
    }

    async fn processes(&self) -> u64 {
        self.health().await["processes"]
            .as_u64()
            .expect("processes count")
    }

    /// Waits until `/health` reports `n` processes.
    async fn wait_processes(&self, n: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.processes().await;
            if now == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still {now} processes, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The bridge's child processes (from /proc).
    fn children(&self) -> Vec<u32> {
        children_of(self.pid)
    }

    /// Waits until the bridge has no child process left (by /proc, not by its own count).
    async fn wait_no_children(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.children().is_empty() {
            assert!(
                Instant::now() < deadline,
                "children still running: {:?}",
                self.children()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn memory_file(&self, owner: &str) -> PathBuf {
        self.memory_dir.path().join(format!("{owner}.json"))
    }

    async fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.pid, rustix::process::Signal::TERM);
        tokio::time::timeout(Duration::from_secs(20), self.process.wait())
            .await
            .expect("bridge exits after SIGTERM")
            .expect("wait")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let children = self.children();
        signal(self.pid, rustix::process::Signal::KILL);
        for child in children {
            signal(child, rustix::process::Signal::KILL);
        }
    }
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            children.extend(
                list.split_whitespace()
                    .filter_map(|pid| pid.parse::<u32>().ok()),
            );
        }
    }
    children
}

/// Whether `pid` runs (a zombie does not count).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    raw.split(|byte| *byte == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn initialize_message() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

/// server-everything's long-running tool: `duration` seconds in `steps` progress steps.
fn long_call(id: Value, duration: u64, steps: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": duration, "steps": steps}}})
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// The JSON-RPC messages of the body (one for JSON, each event for SSE).
    messages: Vec<Value>,
}

impl Answer {
    /// The last message: the response.
    fn last(&self) -> &Value {
        self.messages.last().expect("a message in the answer")
    }

    /// The response's error message ("" when it is not an error).
    fn error_message(&self) -> &str {
        self.last()["error"]["message"].as_str().unwrap_or("")
    }
}

/// Raw JSON-RPC over Streamable HTTP.
struct McpClient {
    http: reqwest::Client,
    url: String,
    user: Option<String>,
    session: Option<String>,
    next_id: u64,
}

impl McpClient {
    /// Another connection to the same session.
    fn twin(&self) -> McpClient {
        let mut twin = McpClient::new(&self.url, self.user.as_deref(), reqwest::Client::new());
        twin.session = self.session.clone();
        twin
    }

    fn new(url: &str, user: Option<&str>, http: reqwest::Client) -> McpClient {
        McpClient {
            http,
            url: url.to_owned(),
            user: user.map(str::to_owned),
            session: None,
            next_id: 0,
        }
    }

    /// A POST of `body` with the client's user and session headers.
    fn http_post(&self, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(user) = &self.user {
            request = request.header("X-User-Id", user);
        }
        if let Some(session) = &self.session {
            request = request.header("Mcp-Session-Id", session);
        }
        request
    }

    async fn post_raw(&self, body: Vec<u8>, extra: &[(&str, &str)]) -> Answer {
        let mut request = self.http_post(body);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("POST");
        let status = response.status();
        let headers = response.headers().clone();
        let sse = headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
        let text = response.text().await.expect("body");
        let messages = if sse {
            parse_sse(&text)
        } else if text.is_empty() {
            Vec::new()
        } else {
            vec![serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))]
        };
        Answer {
            status,
            headers,
            messages,
        }
    }

    async fn post(&self, message: Value) -> Answer {
        self.post_raw(message.to_string().into_bytes(), &[]).await
    }

    async fn initialize(&mut self) -> Answer {
        self.initialize_with(json!({})).await
    }

    async fn initialize_with(&mut self, capabilities: Value) -> Answer {
        let answer = self
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": capabilities,
                "clientInfo": {"name": "bridge-test", "version": "1"}}}),
            )
            .await;
        if answer.status == StatusCode::OK {
            let session = answer
                .headers
                .get("mcp-session-id")
                .expect("Mcp-Session-Id on initialize");
            self.session = Some(session.to_str().expect("ASCII session id").to_owned());
            let initialized = self
                .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .await;
            assert_eq!(initialized.status, StatusCode::ACCEPTED);
        }
        answer
    }

    async fn request(&mut self, method: &str, params: Value) -> Answer {
        self.next_id += 1;
        self.post(json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}))
            .await
    }

    async fn call(&mut self, tool: &str, arguments: Value) -> Answer {
        self.request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await
    }

    async fn create_entity(&mut self, name: &str) -> Answer {
        self.call(
            "create_entities",
            json!({"entities": [{"name": name, "entityType": "note", "observations": ["o"]}]}),
        )
        .await
    }

    /// The graph as text (the tool's text content).
    async fn read_graph(&mut self) -> String {
        let answer = self.call("read_graph", json!({})).await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.last()["result"]["content"][0]["text"]
            .as_str()
            .expect("graph text")
            .to_owned()
    }

    async fn delete(&self) -> StatusCode {
        let mut request = self.http.delete(&self.url);
        if let Some(user) = &self.user {
            request = request.header("X-User-Id", user);
        }
        if let Some(session) = &self.session {
            request = request.header("Mcp-Session-Id", session);
        }
        request.send().await.expect("DELETE").status()
    }
}

/// A call whose SSE answer is being read: started by [`McpClient::in_flight`], which returns once the server's
/// first progress notification came back through the bridge — proof that the request reached the child, with no
/// guess of how long that takes on a loaded machine.
struct InFlight {
    response: reqwest::Response,
    text: String,
}

impl InFlight {
    /// The rest of the answer.
    async fn finish(mut self) -> Answer {
        while let Some(chunk) = self.response.chunk().await.expect("SSE chunk") {
            self.text.push_str(&String::from_utf8_lossy(&chunk));
        }
        Answer {
            status: self.response.status(),
            headers: self.response.headers().clone(),
            messages: parse_sse(&self.text),
        }
    }
}

impl McpClient {
    /// Sends `message` (a long call with a progress token) and reads its SSE answer until the first
    /// `notifications/progress` event.
    async fn in_flight(&self, message: Value) -> InFlight {
        let mut response = self
            .http_post(message.to_string())
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::OK);
        let mut text = String::new();
        while !text.contains("notifications/progress") {
            let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
                .await
                .expect("a progress notification within 30 s")
                .expect("SSE chunk")
                .unwrap_or_else(|| panic!("the answer ended before any progress: {text}"));
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        InFlight { response, text }
    }
}

/// server-everything's long-running tool with a progress token: `duration` seconds, a progress notification each
/// second.
fn long_call_with_progress(id: Value, duration: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": duration, "steps": duration},
        "_meta": {"progressToken": "in-flight"}}})
}

fn parse_sse(text: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    for event in text.split("\n\n") {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        if !data.is_empty() {
            messages.push(
                serde_json::from_str(&data.join("\n"))
                    .unwrap_or_else(|_| panic!("SSE data: {event}")),
            );
        }
    }
    messages
}

#[tokio::test(flavor = "multi_thread")]
async fn initialize_list_and_call_through_the_bridge() {
    let bridge = Bridge::start(&[]).await;
    let mut alice = bridge.client(Some("alice"));
    let init = alice.initialize().await;
    assert_eq!(init.status, StatusCode::OK);
    let result = &init.last()["result"];
    assert_eq!(
        result["serverInfo"]["name"], "memory-server",
        "the child's own InitializeResult: {result}"
    );
    assert_eq!(init.last()["id"], 0);
    assert_eq!(
        alice.session.as_ref().map(String::len),
        Some(32),
        "128-bit hex session id"
    );

    let tools = alice.request("tools/list", json!({})).await;
    assert_eq!(tools.status, StatusCode::OK);
    assert_eq!(tools.headers["content-type"], "text/event-stream");
    assert_eq!(tools.last()["id"], 1, "the client's own id comes back");
    let names: Vec<&str> = tools.last()["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"create_entities") && names.contains(&"read_graph"),
        "{names:?}"
    );

    let created = alice.create_entity("alice_note").await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(created.last()["id"], 2);
    assert!(
        created.last()["result"]["isError"].as_bool() != Some(true),
        "{}",
        created.last()
    );
    assert!(alice.read_graph().await.contains("alice_note"));
    assert!(
        bridge.memory_file("alice").exists(),
        "{{owner}} in --env became the user id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_user_has_a_process_of_their_own() {
    let bridge = Bridge::start(&[]).await;
    assert_eq!(bridge.processes().await, 0);
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(alice.initialize().await.status, StatusCode::OK);
    assert_eq!(
        alice.create_entity("alice_secret").await.status,
        StatusCode::OK
    );
    assert_eq!(bridge.processes().await, 1);

    let mut bob = bridge.client(Some("bob"));
    assert_eq!(bob.initialize().await.status, StatusCode::OK);
    assert_eq!(bridge.processes().await, 2);
    assert!(
        !bob.read_graph().await.contains("alice_secret"),
        "bob sees alice's entity"
    );

    let mut alice_again = bridge.client(Some("alice"));
    assert_eq!(alice_again.initialize().await.status, StatusCode::OK);
    assert!(
        alice_again.read_graph().await.contains("alice_secret"),
        "alice's second session shares her process"
    );
    let health = bridge.health().await;
    assert_eq!(
        health,
        json!({"status": "ok", "processes": 2, "sessions": 3})
    );
    assert_eq!(bridge.children().len(), 2);

    assert_eq!(alice_again.delete().await, StatusCode::OK);
    assert_eq!(bridge.health().await["sessions"], 2);
    let gone = alice_again.request("tools/list", json!({})).await;
    assert_eq!(
        gone.status,
        StatusCode::NOT_FOUND,
        "a deleted session is unknown"
    );
    assert_eq!(
        bridge.processes().await,
        2,
        "per user, deleting a session keeps the user's process"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_session_mode_gives_each_session_a_process() {
    let bridge = Bridge::start(&["--process-per", "session"]).await;
    let mut first = bridge.client(Some("alice"));
    let mut second = bridge.client(Some("alice"));
    assert_eq!(first.initialize().await.status, StatusCode::OK);
    assert_eq!(second.initialize().await.status, StatusCode::OK);
    assert_eq!(bridge.processes().await, 2);
    assert_eq!(
        first.create_entity("first_only").await.status,
        StatusCode::OK
    );
    assert!(
        !second.read_graph().await.contains("first_only"),
        "sessions do not share a process"
    );
    let session = first.session.clone().expect("session");
    assert!(
        bridge.memory_file(&session).exists(),
        "{{owner}} is the session id per session"
    );
    let pid = *bridge
        .children()
        .iter()
        .find(|pid| environ(**pid).contains(&format!("MCP_BRIDGE_SESSION_ID={session}")))
        .expect("the first session's child");

    assert_eq!(first.delete().await, StatusCode::OK);
    bridge.wait_processes(1, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        assert!(
            Instant::now() < deadline,
            "the deleted session's process still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        second.request("tools/list", json!({})).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_comes_only_from_trusted_proxies_and_only_it_reaches_the_child() {
    let bridge = Bridge::start_with(
        &[
            "--trusted-proxy",
            "127.0.0.1/32",
            "--pass-env",
            "PASSED_ON",
            "--allow-origin",
            "https://app.example",
        ],
        &[("BRIDGE_ONLY_SECRET", "s3cret"), ("PASSED_ON", "yes")],
    )
    .await;
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client bound to 127.0.0.2");

    let mut mallory = McpClient::new(&bridge.url(), Some("alice"), elsewhere.clone());
    let refused = mallory.initialize().await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let message = refused.last()["error"]["message"]
        .as_str()
        .expect("JSON-RPC error message")
        .to_owned();
    assert!(message.contains("untrusted address"), "{message}");

    let mut anonymous = McpClient::new(&bridge.url(), None, elsewhere);
    let refused = anonymous.initialize().await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.last()["error"]["message"],
        "no user identity: put mcp-bridge behind the gate"
    );
    let refused = bridge.client(None).initialize().await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bridge.health().await["sessions"], 0);

    let mut alice = bridge.client(Some("alice"));
    assert_eq!(alice.initialize().await.status, StatusCode::OK);
    let mut bob = bridge.client(Some("bob"));
    bob.session = alice.session.clone();
    let stolen = bob.request("tools/list", json!({})).await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    bob.session = Some("0".repeat(32));
    let unknown = bob.request("tools/list", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        stolen.messages, unknown.messages,
        "another user's session looks exactly like an unknown one"
    );

    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
        .to_string()
        .into_bytes();
    let evil = alice
        .post_raw(list.clone(), &[("Origin", "https://evil.example")])
        .await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    assert!(evil.error_message().contains("origin not allowed"));
    let allowed = alice
        .post_raw(list, &[("Origin", "https://app.example")])
        .await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(allowed.last()["id"], 7);

    let children = bridge.children();
    assert_eq!(children.len(), 1);
    let env = environ(children[0]);
    assert!(
        env.contains(&"MCP_BRIDGE_USER_ID=alice".to_owned()),
        "{env:?}"
    );
    assert!(env.contains(&"PASSED_ON=yes".to_owned()), "{env:?}");
    assert!(env.iter().any(|v| v.starts_with("PATH=")), "{env:?}");
    let memory = format!("MEMORY_FILE_PATH={}", bridge.memory_file("alice").display());
    assert!(env.contains(&memory), "{env:?}");
    assert!(
        !env.iter()
            .any(|v| v.starts_with("BRIDGE_ONLY_SECRET=") || v.starts_with("RUST_LOG=")),
        "{env:?}"
    );
    let allowed_names = [
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TZ",
        "TMPDIR",
        "PASSED_ON",
        "MEMORY_FILE_PATH",
        "MCP_BRIDGE_USER_ID",
    ];
    for variable in &env {
        let name = variable.split('=').next().unwrap_or("");
        assert!(allowed_names.contains(&name), "{name} reached the child");
    }

    let carol = bridge.client(Some("carol"));
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = carol
        .post_raw(
            init.to_string().into_bytes(),
            &[
                ("X-User-Name", "Carol Example"),
                ("X-User-Email", "carol@example.com"),
                ("X-Client-Id", "c1"),
            ],
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK);
    let carol_env = bridge
        .children()
        .into_iter()
        .map(environ)
        .find(|env| env.contains(&"MCP_BRIDGE_USER_ID=carol".to_owned()))
        .expect("carol's process");
    assert!(
        carol_env.contains(&"MCP_BRIDGE_USER_NAME=Carol Example".to_owned()),
        "{carol_env:?}"
    );
    assert!(
        carol_env.contains(&"MCP_BRIDGE_USER_EMAIL=carol@example.com".to_owned()),
        "{carol_env:?}"
    );
    assert!(
        !carol_env.iter().any(|v| v.ends_with("=c1")),
        "other request headers stay out: {carol_env:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn process_limit_and_idle_timeout() {
    let bridge = Bridge::start(&["--max-processes", "1", "--idle-timeout", "1s"]).await;
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(alice.initialize().await.status, StatusCode::OK);
    assert_eq!(
        alice.create_entity("alice_note").await.status,
        StatusCode::OK
    );
    let first_pid = bridge.children()[0];

    let mut bob = bridge.client(Some("bob"));
    let refused = bob.initialize().await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.last()["error"]["code"], -32002);
    let message = refused.last()["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(message.contains("--max-processes"), "{message}");

    bridge.wait_processes(0, Duration::from_secs(15)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(first_pid) {
        assert!(Instant::now() < deadline, "the idle process still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        bob.initialize().await.status,
        StatusCode::OK,
        "a slot is free once alice's process idled out"
    );
    assert!(!bob.read_graph().await.contains("alice_note"));

    bridge.wait_processes(0, Duration::from_secs(15)).await;
    assert!(
        alice.read_graph().await.contains("alice_note"),
        "the session survives its process: restarted"
    );
    assert_eq!(bridge.processes().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn message_size_limits() {
    let bridge = Bridge::start(&["--max-message-bytes", "4096"]).await;
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(alice.initialize().await.status, StatusCode::OK);

    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "search_nodes", "arguments": {"query": "x".repeat(5000)}}});
    let refused = alice.post_raw(big.to_string().into_bytes(), &[]).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(refused.error_message().contains("--max-message-bytes"));

    for n in 0..5 {
        let entity = json!({"entities": [{"name": format!("e{n}"), "entityType": "t", "observations": ["y".repeat(1000)]}]});
        assert_eq!(
            alice.call("create_entities", entity).await.last()["result"]["isError"],
            Value::Null
        );
    }
    let pid = bridge.children()[0];
    let too_long = alice.call("read_graph", json!({})).await;
    assert_eq!(too_long.status, StatusCode::OK);
    assert_eq!(
        too_long.last()["error"]["code"],
        -32000,
        "{}",
        too_long.last()
    );
    let message = too_long.last()["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(
        message.contains("--max-message-bytes") && message.contains("restarted"),
        "{message}"
    );
    bridge.wait_processes(0, Duration::from_secs(15)).await;
    assert!(!running(pid));

    let small = alice.call("search_nodes", json!({"query": "e1"})).await;
    assert_eq!(small.status, StatusCode::OK);
    assert!(
        small.last()["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("e1"),
        "{}",
        small.last()
    );
    assert_ne!(bridge.children(), vec![pid], "a new process answered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_child_is_restarted_and_sigterm_stops_every_child() {
    // At debug, so that the check that request bodies stay out of the log has debug lines to fail on.
    let mut bridge =
        Bridge::start_logging(&[], &[], &["node", MEMORY_SERVER], "mcp_bridge=debug").await;
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(alice.initialize().await.status, StatusCode::OK);
    assert_eq!(
        alice.create_entity("alice_note").await.status,
        StatusCode::OK
    );
    let killed = bridge.children();
    assert_eq!(killed.len(), 1);
    signal(killed[0], rustix::process::Signal::KILL);
    bridge.wait_processes(0, Duration::from_secs(10)).await;

    assert!(
        alice.read_graph().await.contains("alice_note"),
        "the same session works with a new process"
    );
    let restarted = bridge.children();
    assert_eq!(restarted.len(), 1);
    assert_ne!(restarted, killed);

    let log = bridge.log_text();
    let stderr_line = log
        .lines()
        .find(|line| line.contains("Knowledge Graph MCP Server running on stdio"))
        .expect("child stderr in the log");
    assert!(
        stderr_line.contains("mcp_bridge::child")
            && stderr_line.contains("user=alice")
            && stderr_line.contains("pid="),
        "{stderr_line}"
    );
    assert!(
        log.contains("was killed by signal 9; it will be restarted on the next request"),
        "{log}"
    );
    assert!(
        log.contains("request forwarded"),
        "the debug lines about requests are in the log"
    );
    assert!(
        !log.contains("alice_note"),
        "request bodies stay out of the log, at debug too"
    );

    let status = bridge.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(!running(restarted[0]), "the child outlived the bridge");
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_request_timeout_and_a_death_in_flight() {
    let bridge = Bridge::start_command(
        &["--request-timeout", "3s"],
        &[],
        &["node", EVERYTHING_SERVER, "stdio"],
    )
    .await;
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(alice.initialize().await.status, StatusCode::OK);
    let long = |id: Value, duration: u64, steps: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "trigger-long-running-operation", "arguments": {"duration": duration, "steps": steps},
            "_meta": {"progressToken": "my-token"}}})
    };

    let answer = alice.post(long(json!("op-1"), 1, 2)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let progress: Vec<&Value> = answer
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 2, "{:?}", answer.messages);
    assert!(
        progress
            .iter()
            .all(|m| m["params"]["progressToken"] == "my-token"),
        "the client's own token: {progress:?}"
    );
    assert_eq!(answer.last()["id"], "op-1");
    assert!(
        answer.last()["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("completed")
    );

    let slow = alice.post(long(json!(2), 20, 1)).await;
    assert_eq!(slow.last()["id"], 2);
    assert_eq!(slow.last()["error"]["code"], -32003, "{}", slow.last());
    assert!(slow.error_message().contains("--request-timeout (3s)"));

    let pid = bridge.children()[0];
    let in_flight = alice
        .twin()
        .in_flight(long_call_with_progress(json!(3), 20))
        .await;
    signal(pid, rustix::process::Signal::KILL);
    let died = tokio::time::timeout(Duration::from_secs(10), in_flight.finish())
        .await
        .expect("answered");
    assert_eq!(died.last()["id"], 3);
    assert_eq!(died.last()["error"]["code"], -32000, "{}", died.last());
    let message = died.error_message().to_owned();
    assert!(
        message.contains("killed by signal 9") && message.contains("restarted on the next request"),
        "{message}"
    );

    let tools = alice.request("tools/list", json!({})).await;
    assert_eq!(tools.status, StatusCode::OK);
    assert!(
        tools.last()["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{}",
        tools.last()
    );
    assert_ne!(bridge.children(), vec![pid]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_does_not_start_is_reported_and_stopped() {
    let silent = Bridge::start_command(
        &["--start-timeout", "1s", "--shutdown-grace", "300ms"],
        &[],
        &["sleep", "60"],
    )
    .await;
    let mut alice = silent.client(Some("alice"));
    let refused = alice.initialize().await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    let message = refused.error_message().to_owned();
    assert!(
        message.contains("did not answer initialize within --start-timeout (1s)"),
        "{message}"
    );
    assert_eq!(
        silent.health().await["sessions"],
        0,
        "no session for a failed start"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !silent.children().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the silent server was not stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let missing = Bridge::start_command(&[], &[], &["/nonexistent/mcp-server"]).await;
    let refused = missing.client(Some("alice")).initialize().await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    let message = refused.error_message().to_owned();
    assert!(
        message.contains("could not start the MCP server"),
        "{message}"
    );
    assert!(
        !message.contains("nonexistent") && !message.contains("No such file"),
        "the program and the OS error stay with the operator: {message}"
    );
    let log = missing.log_text();
    assert!(
        log.contains("/nonexistent/mcp-server") && log.contains("could not start"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_servers_request_reaches_the_client_and_its_answer_returns() {
    let bridge = Bridge::start_command(&[], &[], &["node", EVERYTHING_SERVER, "stdio"]).await;
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(
        alice.initialize_with(json!({"sampling": {}})).await.status,
        StatusCode::OK
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tools = alice.request("tools/list", json!({})).await;
        if tools
            .last()
            .to_string()
            .contains("trigger-sampling-request")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no sampling tool: {}",
            tools.last()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let call = json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {"name": "trigger-sampling-request", "arguments": {"prompt": "hi"}}});
    let mut response = alice
        .http
        .post(alice.url.clone())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("X-User-Id", "alice")
        .header("Mcp-Session-Id", alice.session.clone().expect("session"))
        .body(call.to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
    let mut text = String::new();
    let request = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("the server's request in time")
            .expect("chunk")
            .expect("stream still open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        // Only whole events: a chunk may end inside one.
        let complete = &text[..text.rfind("\n\n").map_or(0, |end| end + 2)];
        if let Some(request) = parse_sse(complete)
            .into_iter()
            .find(|m| m["method"] == "sampling/createMessage")
        {
            break request;
        }
    };
    let ours = request["id"]
        .as_str()
        .expect("the bridge's string id")
        .to_owned();
    assert!(ours.starts_with("bridge-"), "{request}");
    let sampled = json!({"jsonrpc": "2.0", "id": ours, "result": {"role": "assistant",
        "content": {"type": "text", "text": "sampled by the client"}, "model": "test", "stopReason": "endTurn"}});
    assert_eq!(alice.post(sampled).await.status, StatusCode::ACCEPTED);
    let rest = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("answer")
        .expect("body");
    text.push_str(&rest);
    let messages = parse_sse(&text);
    let last = messages.last().expect("final answer");
    assert_eq!(last["id"], "call-1");
    assert!(last.to_string().contains("sampled by the client"), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_gives_up_during_a_start_leaks_no_slot_and_no_process() {
    // A real server that takes 2 s to start (the shell execs it after a pause).
    let slow = format!("sleep 2; exec node {MEMORY_SERVER}");
    let bridge = Bridge::start_command(
        &[
            "--max-processes",
            "1",
            "--idle-timeout",
            "3s",
            "--start-timeout",
            "20s",
        ],
        &[],
        &["sh", "-c", &slow],
    )
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let gave_up = impatient
        .post(bridge.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("X-User-Id", "alice")
        .body(initialize_message().to_string())
        .send()
        .await;
    assert!(
        gave_up.is_err(),
        "the client gives up before the start ends"
    );

    // The start goes on without the client: its child is counted, the tentative session is closed.
    bridge.wait_processes(1, Duration::from_secs(10)).await;
    assert_eq!(
        bridge.children().len(),
        1,
        "one child, and the pool knows it"
    );
    assert_eq!(bridge.health().await["sessions"], 0);

    // Unused, it idles out, and the only process slot is free again.
    bridge.wait_processes(0, Duration::from_secs(15)).await;
    bridge.wait_no_children(Duration::from_secs(10)).await;
    let mut bob = bridge.client(Some("bob"));
    let opened = bob.initialize().await;
    assert_eq!(opened.status, StatusCode::OK, "{:?}", opened.messages);
    assert_eq!(bridge.children().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_in_flight_are_bounded_per_owner_and_in_all() {
    let bridge = Bridge::start_command(
        &[
            "--max-requests-in-flight",
            "2",
            "--max-requests-per-owner",
            "1",
        ],
        &[],
        &["node", EVERYTHING_SERVER, "stdio"],
    )
    .await;
    let mut alice = bridge.client(Some("alice"));
    let mut bob = bridge.client(Some("bob"));
    let mut carol = bridge.client(Some("carol"));
    for client in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(client.initialize().await.status, StatusCode::OK);
    }
    let (alice_twin, bob_twin) = (alice.twin(), bob.twin());
    let (alice_long, bob_long) = tokio::join!(
        alice_twin.in_flight(long_call_with_progress(json!(1), 5)),
        bob_twin.in_flight(long_call_with_progress(json!(1), 5)),
    );
    let alice_long = tokio::spawn(alice_long.finish());
    let bob_long = tokio::spawn(bob_long.finish());

    let refused = alice.post(long_call(json!(2), 1, 1)).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.last()["error"]["code"], -32002);
    assert_eq!(refused.last()["id"], 2);
    let message = refused.error_message();
    assert!(message.contains("--max-requests-per-owner"), "{message}");

    let refused = carol.request("tools/list", json!({})).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    let message = refused.error_message();
    assert!(message.contains("--max-requests-in-flight"), "{message}");

    for long in [alice_long, bob_long] {
        let done = long.await.expect("task");
        assert!(
            done.last()["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains("completed"),
            "{}",
            done.last()
        );
    }
    assert_eq!(
        alice.request("tools/list", json!({})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        carol.request("tools/list", json!({})).await.status,
        StatusCode::OK
    );
}

/// Stand-in for a hung server (no real server stops reading on purpose): answers `initialize`, then never reads
/// its stdin again and never exits.
const DEAF_SERVER: &str = r#"
const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.method !== 'initialize') return;
  process.stdout.write(JSON.stringify({jsonrpc: '2.0', id: m.id, result: {protocolVersion: '2025-06-18',
    capabilities: {tools: {}}, serverInfo: {name: 'deaf', version: '1'}}}) + '\n');
  rl.close();
  process.stdin.pause();
});
setInterval(() => {}, 1000);
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_stops_reading_its_stdin_holds_nobody() {
    let bridge = Bridge::start_command(
        &["--request-timeout", "2s", "--shutdown-grace", "300ms"],
        &[],
        &["node", "-e", DEAF_SERVER],
    )
    .await;
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(alice.initialize().await.status, StatusCode::OK);
    let pid = bridge.children()[0];
    // 20 messages of 200 kB: far more than the pipe and the bridge's queue hold.
    let padding = "x".repeat(200_000);
    let calls: Vec<_> = (1..=20)
        .map(|n| {
            let twin = alice.twin();
            let message = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                "params": {"name": "anything", "arguments": {"padding": padding}}});
            tokio::spawn(async move { twin.post(message).await })
        })
        .collect();
    let mut stopped = 0;
    for call in calls {
        let answer = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("every request is answered although the server reads nothing")
            .expect("task");
        let error = &answer.last()["error"];
        assert!(error.is_object(), "{}", answer.last());
        if error["message"]
            .as_str()
            .unwrap_or("")
            .contains("did not read its input within --request-timeout")
        {
            stopped += 1;
        }
    }
    assert!(stopped >= 1, "at least one request found the queue full");
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        assert!(Instant::now() < deadline, "the hung server still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Requests that came after the stop started a new (equally deaf) process; never more than one.
    assert!(bridge.processes().await <= 1);
    assert!(bridge.children().len() <= 1, "{:?}", bridge.children());
}

/// Runs the bridge with a command line it must refuse; returns its stderr.
fn refused_command_line(options: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-bridge"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(options)
        .args(["--", "true"])
        .output()
        .expect("run mcp-bridge");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn per_session_mode_needs_a_user_unless_allow_anonymous() {
    let strict = Bridge::start(&["--process-per", "session"]).await;
    let refused = strict.client(None).initialize().await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.last()["error"]["message"],
        "no user identity: put mcp-bridge behind the gate"
    );
    assert!(strict.children().is_empty());

    let open = Bridge::start(&["--process-per", "session", "--allow-anonymous"]).await;
    let mut anonymous = open.client(None);
    assert_eq!(anonymous.initialize().await.status, StatusCode::OK);
    assert_eq!(
        anonymous.request("tools/list", json!({})).await.status,
        StatusCode::OK
    );

    let error = refused_command_line(&["--allow-anonymous"]);
    assert!(
        error.contains("--allow-anonymous needs --process-per session"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_per_user_are_bounded_and_a_malformed_initialize_starts_nothing() {
    let bridge = Bridge::start(&["--max-sessions-per-user", "2"]).await;
    for _ in 0..2 {
        assert_eq!(
            bridge.client(Some("alice")).initialize().await.status,
            StatusCode::OK
        );
    }
    let refused = bridge.client(Some("alice")).initialize().await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.last()["error"]["code"], -32002);
    let message = refused.error_message();
    assert!(message.contains("--max-sessions-per-user"), "{message}");
    assert_eq!(
        bridge.client(Some("bob")).initialize().await.status,
        StatusCode::OK,
        "other users are not affected"
    );
    assert_eq!(bridge.health().await["sessions"], 3);

    let carol = bridge.client(Some("carol"));
    for params in [
        json!(null),
        json!({"protocolVersion": 5, "capabilities": {}}),
        json!({"protocolVersion": "2025-06-18", "capabilities": []}),
        json!({"protocolVersion": "2025-06-18", "clientInfo": "me"}),
    ] {
        let message = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params});
        let refused = carol.post(message).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{params}");
        assert_eq!(refused.last()["error"]["code"], -32602, "{params}");
    }
    assert_eq!(bridge.children().len(), 2, "no process for carol");
    assert_eq!(bridge.health().await["sessions"], 3);
}

/// Stand-in for a server slow to exit (real servers exit when stdin closes): answers `initialize`, then ignores
/// the end of its stdin and SIGTERM; only SIGKILL ends it.
const STUBBORN_SERVER: &str = r#"
process.on('SIGTERM', () => {});
const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.method === 'initialize') process.stdout.write(JSON.stringify({jsonrpc: '2.0', id: m.id,
    result: {protocolVersion: '2025-06-18', capabilities: {}, serverInfo: {name: 'stubborn', version: '1'}}}) + '\n');
});
setInterval(() => {}, 1000);
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_child_counts_until_it_has_exited() {
    let bridge = Bridge::start_command(
        &[
            "--process-per",
            "session",
            "--max-processes",
            "1",
            "--shutdown-grace",
            "1500ms",
        ],
        &[],
        &["node", "-e", STUBBORN_SERVER],
    )
    .await;
    let mut first = bridge.client(Some("alice"));
    assert_eq!(first.initialize().await.status, StatusCode::OK);
    let pid = bridge.children()[0];
    assert_eq!(first.delete().await, StatusCode::OK);
    // Still running (stdin closed, SIGTERM ignored): its slot is not free yet.
    assert!(running(pid));
    assert_eq!(bridge.processes().await, 1);
    let refused = bridge.client(Some("alice")).initialize().await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(running(pid), "the refusal came while the old child ran");

    let deadline = Instant::now() + Duration::from_secs(15);
    while running(pid) {
        assert!(Instant::now() < deadline, "SIGKILL did not come");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bridge.wait_processes(0, Duration::from_secs(5)).await;
    assert_eq!(
        bridge.client(Some("alice")).initialize().await.status,
        StatusCode::OK
    );
    assert_eq!(bridge.children().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_waits_for_stops_already_under_way() {
    let mut bridge = Bridge::start_command(
        &["--process-per", "session", "--shutdown-grace", "1s"],
        &[],
        &["node", "-e", STUBBORN_SERVER],
    )
    .await;
    let mut first = bridge.client(Some("alice"));
    assert_eq!(first.initialize().await.status, StatusCode::OK);
    let deleted = bridge.children()[0];
    let mut second = bridge.client(Some("alice"));
    assert_eq!(second.initialize().await.status, StatusCode::OK);
    let kept = *bridge
        .children()
        .iter()
        .find(|pid| **pid != deleted)
        .expect("the second session's child");
    // The first child's stop is under way (it ignores stdin's end and SIGTERM) when the bridge is told to go.
    assert_eq!(first.delete().await, StatusCode::OK);
    let status = bridge.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(
        !running(deleted),
        "the child being stopped outlived the bridge"
    );
    assert!(!running(kept), "the running child outlived the bridge");
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_or_untrusted_gate_headers_are_refused() {
    let bridge = Bridge::start(&[]).await;
    let init = initialize_message().to_string().into_bytes();
    let alice = bridge.client(Some("alice"));
    let twice = alice.post_raw(init.clone(), &[("X-User-Id", "bob")]).await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    let message = twice.error_message();
    assert!(
        message.contains("x-user-id sent more than once"),
        "{message}"
    );
    let twice = alice
        .post_raw(init.clone(), &[("X-Scopes", "a"), ("X-Scopes", "b")])
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    assert!(
        twice.error_message().contains("x-scopes"),
        "{}",
        twice.last()
    );
    assert_eq!(bridge.health().await["sessions"], 0);
    assert!(bridge.children().is_empty());

    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client bound to 127.0.0.2");
    let stranger = McpClient::new(&bridge.url(), None, elsewhere);
    for header in ["X-Client-Id", "X-Scopes"] {
        let refused = stranger.post_raw(init.clone(), &[(header, "x")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{header}");
        assert!(
            refused.error_message().contains("untrusted address"),
            "{header}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_call_outlives_the_idle_timeout_and_request_ids_in_flight_are_unique() {
    let bridge = Bridge::start_command(
        &["--idle-timeout", "3s"],
        &[],
        &["node", EVERYTHING_SERVER, "stdio"],
    )
    .await;
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(alice.initialize().await.status, StatusCode::OK);
    let pid = bridge.children()[0];
    let long = alice
        .twin()
        .in_flight(long_call_with_progress(json!("same"), 7))
        .await;
    let long = tokio::spawn(long.finish());
    let duplicate = alice.post(long_call(json!("same"), 1, 1)).await;
    assert_eq!(duplicate.status, StatusCode::BAD_REQUEST);
    assert!(
        duplicate.error_message().contains("already in flight"),
        "{}",
        duplicate.last()
    );

    // 7 s of work with --idle-timeout 3s: the reaper leaves a process with a request in flight alone.
    let done = long.await.expect("task");
    assert_eq!(done.last()["id"], "same");
    assert!(
        done.last()["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("completed"),
        "{}",
        done.last()
    );
    assert!(running(pid), "the busy process was stopped");
    assert!(
        !bridge
            .log_text()
            .lines()
            .any(|line| line.contains("idle for --idle-timeout")
                && line.contains(&format!("pid={pid}"))),
        "stopped as idle while busy"
    );
    let again = alice.post(long_call(json!("same"), 1, 1)).await;
    assert!(
        again.last()["result"].is_object(),
        "the id is free once answered: {}",
        again.last()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_simultaneous_initializes_of_one_user_start_one_process() {
    let bridge = Bridge::start(&[]).await;
    let opening: Vec<_> = (0..2)
        .map(|_| {
            let mut client = bridge.client(Some("alice"));
            tokio::spawn(async move { client.initialize().await.status })
        })
        .collect();
    for open in opening {
        assert_eq!(open.await.expect("task"), StatusCode::OK);
    }
    assert_eq!(bridge.children().len(), 1);
    assert_eq!(
        bridge.health().await,
        json!({"status": "ok", "processes": 1, "sessions": 2})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_body_is_a_bad_request_not_too_large() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bridge = Bridge::start(&[]).await;
    let address = bridge.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    // A chunked body whose chunk size is not hex.
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {address}\r\nX-User-Id: alice\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("could not be read"), "{answer}");
    assert!(bridge.children().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn not_json_rpc_2_or_an_unknown_protocol_version_is_refused() {
    let bridge = Bridge::start(&[]).await;
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(alice.initialize().await.status, StatusCode::OK);
    for message in [
        json!({"id": 1, "method": "tools/list"}),
        json!({"jsonrpc": "1.0", "id": 1, "method": "tools/list"}),
    ] {
        let refused = alice.post(message.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{message}");
        assert!(
            refused.error_message().contains("JSON-RPC 2.0"),
            "{}",
            refused.last()
        );
    }
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        .to_string()
        .into_bytes();
    let refused = alice
        .post_raw(list.clone(), &[("MCP-Protocol-Version", "1999-01-01")])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused
            .error_message()
            .contains("unsupported MCP-Protocol-Version"),
        "{}",
        refused.last()
    );
    let known = alice
        .post_raw(list, &[("MCP-Protocol-Version", "2025-06-18")])
        .await;
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!(known.last()["id"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_servers_request_with_no_stream_to_reach_is_refused_to_the_server_at_once() {
    let bridge = Bridge::start_command(
        &["--request-timeout", "30s"],
        &[],
        &["node", EVERYTHING_SERVER, "stdio"],
    )
    .await;
    let mut alice = bridge.client(Some("alice"));
    assert_eq!(
        alice.initialize_with(json!({"sampling": {}})).await.status,
        StatusCode::OK
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !alice
        .request("tools/list", json!({}))
        .await
        .last()
        .to_string()
        .contains("trigger-sampling-request")
    {
        assert!(Instant::now() < deadline, "no sampling tool");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A JSON-only call: the server's sampling request has no stream to go to (no SSE answer, no GET stream).
    let call = json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {"name": "trigger-sampling-request", "arguments": {"prompt": "hi"}}});
    let started = Instant::now();
    let answer: Value = alice
        .http
        .post(alice.url.clone())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("X-User-Id", "alice")
        .header("Mcp-Session-Id", alice.session.clone().expect("session"))
        .body(call.to_string())
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON answer");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the server was left waiting for an answer that could not come"
    );
    assert_eq!(answer["id"], "call-1");
    assert_ne!(answer["error"]["code"], -32003, "{answer}");
    assert!(
        answer.to_string().contains("no open stream"),
        "the server got the bridge's refusal: {answer}"
    );
}
