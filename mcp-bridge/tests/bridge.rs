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
            .env("RUST_LOG", "info")
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
    fn new(url: &str, user: Option<&str>, http: reqwest::Client) -> McpClient {
        McpClient {
            http,
            url: url.to_owned(),
            user: user.map(str::to_owned),
            session: None,
            next_id: 0,
        }
    }

    async fn post_raw(&self, body: Vec<u8>, extra: &[(&str, &str)]) -> Answer {
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
    assert!(
        evil.last()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("origin not allowed")
    );
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
    assert!(
        refused.last()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("--max-message-bytes")
    );

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
    let mut bridge = Bridge::start(&[]).await;
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
        !log.contains("alice_note"),
        "request bodies stay out of the log"
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
    assert!(
        slow.last()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("--request-timeout (3s)")
    );

    let pid = bridge.children()[0];
    let in_flight = tokio::spawn({
        let http = reqwest::Client::new();
        let mut client = McpClient::new(&bridge.url(), Some("alice"), http);
        client.session = alice.session.clone();
        async move { client.post(long(json!(3), 20, 1)).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    signal(pid, rustix::process::Signal::KILL);
    let died = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("answered")
        .expect("task");
    assert_eq!(died.last()["id"], 3);
    assert_eq!(died.last()["error"]["code"], -32000, "{}", died.last());
    let message = died.last()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
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
    let message = refused.last()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
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
    let message = refused.last()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        message.contains("could not start /nonexistent/mcp-server"),
        "{message}"
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
