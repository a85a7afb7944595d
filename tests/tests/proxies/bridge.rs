//! A stdio MCP server behind `mcp-bridge`, the gate and nginx, one process per user, used by the official SDK
//! clients as two users.
//!
//! ```text
//!   TypeScript / Python SDK clients ──► nginx ──/verify──► forwardauth-svc (in process; local users alice, bob)
//!   (each its own OAuth flow)             └──► tap ──► mcp-bridge (--process-per user)
//!                                                        ├──stdio──► server-memory (alice's)
//!                                                        └──stdio──► server-memory (bob's)
//! ```
//!
//! `@modelcontextprotocol/server-memory` keeps its knowledge graph in the file `MEMORY_FILE_PATH` names; the
//! bridge gives each user's process its own (`--env MEMORY_FILE_PATH=<dir>/{owner}.jsonl`). So what one user
//! stores lives in that user's process and file only, a user's second client (a new OAuth client, a new MCP
//! session) lands in the same process, and a killed process comes back on the next request with the user's file.
//!
//! The test looks at the bridge from outside as an operator would: `/health` on the bridge's own port (not
//! through nginx), its child processes in `/proc` (told apart by `MCP_BRIDGE_USER_ID` in their environment), and
//! the files in the directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use forwardauth_svc::snippet::Proxy;
use serde_json::{Value, json};

use crate::stack::{EntryPointB, Stack, Upstream, post_mcp};
use crate::support::*;

const ALICE: (&str, &str) = ("alice", "wonderland");
const BOB: (&str, &str) = ("bob", "builder-of-things");

/// In the bridge's environment only: a child must not see it (the child environment is an allow-list).
const NOT_FOR_CHILDREN: (&str, &str) = ("E2E_BRIDGE_PRIVATE", "not-for-children");

/// The gate's user ids, `local:{username}` for local users.
fn user_id(user: &str) -> String {
    format!("local:{user}")
}

/// `{owner}` as the bridge writes it into a file name: `[A-Za-z0-9_-]` kept, every other byte `%XX`.
fn owner_file_name(owner: &str) -> String {
    owner
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `users.toml` with alice (no e-mail) and bob (with one).
fn users_file() -> String {
    let hash = |p: &str| oauth_core::LocalUsers::hash_password(p).unwrap();
    format!(
        "[[users]]\nusername = \"{}\"\npassword_hash = \"{}\"\n\n[[users]]\nusername = \"{}\"\npassword_hash = \"{}\"\nemail = \"bob@example.org\"\n",
        ALICE.0,
        hash(ALICE.1),
        BOB.0,
        hash(BOB.1)
    )
}

/// A child process of the bridge, as `/proc` shows it.
#[derive(Debug)]
struct Child {
    pid: u32,
    env: BTreeMap<String, String>,
}

impl Child {
    fn user(&self) -> &str {
        self.env
            .get("MCP_BRIDGE_USER_ID")
            .map_or("", String::as_str)
    }
}

/// `mcp-bridge`, built from the workspace, one process per user, in front of server-memory.
struct Bridge {
    process: Process,
    port: u16,
    /// Where the memory files (and the bridge's log) are.
    dir: tempfile::TempDir,
}

impl Bridge {
    async fn start() -> Bridge {
        let bin = workspace_binary("mcp-bridge", "mcp-bridge");
        let node = tool("Node.js", &["node"]);
        let server = node_modules().join("@modelcontextprotocol/server-memory/dist/index.js");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut process = Process::spawn(
            "mcp-bridge",
            Command::new(bin)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--process-per")
                .arg("user")
                .arg("--env")
                .arg(format!(
                    "MEMORY_FILE_PATH={}/{{owner}}.jsonl",
                    dir.path().display()
                ))
                .arg("--")
                .arg(node)
                .arg(server)
                .env(NOT_FOR_CHILDREN.0, NOT_FOR_CHILDREN.1)
                .env("RUST_LOG", "mcp_bridge=debug,info")
                .current_dir(dir.path()),
            dir.path(),
        );
        process.wait_for_port(port).await;
        Bridge { process, port, dir }
    }

    /// `GET /health` on the bridge's own port.
    async fn health(&self) -> Value {
        let r = reqwest::get(format!("http://127.0.0.1:{}/health", self.port))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", self.process.log());
        let text = r.text().await.unwrap();
        for user in [ALICE.0, BOB.0] {
            assert!(!text.contains(user), "/health names a user: {text}");
        }
        serde_json::from_str(&text).unwrap()
    }

    /// Waits until `/health` counts `n` processes (the bridge notices a child's exit on its own).
    async fn wait_for_processes(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let health = self.health().await;
            if health["processes"] == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/health still says {health} after 10 s, not {n} processes:\n{}",
                self.process.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The bridge's live child processes (zombies left out), from `/proc/<pid>/task/*/children`.
    fn children(&self) -> Vec<Child> {
        let mut pids = Vec::new();
        let tasks = format!("/proc/{}/task", self.process.id());
        for task in std::fs::read_dir(&tasks).unwrap() {
            let list =
                std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
            pids.extend(list.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
        }
        pids.sort_unstable();
        pids.dedup();
        pids.into_iter()
            .filter(|pid| {
                // The state is the field after the parenthesized command name.
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            })
            .map(|pid| {
                let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let env = raw
                    .split(|b| *b == 0)
                    .filter_map(|kv| {
                        let kv = String::from_utf8_lossy(kv);
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    })
                    .collect();
                Child { pid, env }
            })
            .collect()
    }

    /// The one live child of `user` (by `MCP_BRIDGE_USER_ID`).
    fn child_of(&self, user: &str) -> Child {
        let mut mine: Vec<Child> = self
            .children()
            .into_iter()
            .filter(|c| c.user() == user_id(user))
            .collect();
        assert_eq!(mine.len(), 1, "{user}'s processes: {mine:?}");
        mine.remove(0)
    }

    /// The memory file of `user`.
    fn memory_file(&self, user: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.jsonl", owner_file_name(&user_id(user))))
    }
}

/// The options of `memory-client.mjs` and `memory_client.py`.
fn options(stack: &Stack, (username, password): (&str, &str), actions: Value) -> String {
    json!({
        "mcpUrl": stack.a, "issuer": stack.issuer, "username": username, "password": password,
        "actions": actions,
    })
    .to_string()
}

/// The TypeScript SDK client (`tests/js/memory-client.mjs`) as `user`, doing `actions`.
async fn typescript(stack: &Stack, user: (&str, &str), actions: Value) -> Value {
    let node = tool("Node.js", &["node"]);
    let script = e2e_dir().join("js/memory-client.mjs");
    let report = stack
        .run_script(
            &format!("TypeScript memory client ({})", user.0),
            node,
            script.to_str().unwrap(),
            &options(stack, user, actions),
        )
        .await;
    check_report(&report, user.0);
    report
}

/// The Python SDK client (`tests/py/memory_client.py`) as `user`, doing `actions`.
async fn python(stack: &Stack, user: (&str, &str), actions: Value) -> Value {
    let script = e2e_dir().join("py/memory_client.py");
    let report = stack
        .run_script(
            &format!("Python memory client ({})", user.0),
            venv_python(),
            script.to_str().unwrap(),
            &options(stack, user, actions),
        )
        .await;
    check_report(&report, user.0);
    report
}

/// What every client run must show: its own OAuth flow through nginx, then server-memory's tools.
fn check_report(report: &Value, user: &str) {
    assert_eq!(report["ok"], true, "{user}: {report}");
    let exchanges: Vec<&str> = report["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for step in [
        "POST /mcp 401",
        "POST /register 201",
        "POST /token authorization_code 200",
    ] {
        assert!(
            exchanges.contains(&step),
            "{user}: no {step:?} in {exchanges:?}"
        );
    }
    let tools = report["tools"].as_array().unwrap();
    for tool in ["create_entities", "read_graph"] {
        assert!(tools.contains(&json!(tool)), "{user}: {tools:?}");
    }
}

/// The entity names of the report's `read` action number `i` (in the order of the results).
fn read(report: &Value, i: usize) -> Vec<String> {
    let result = &report["results"][i];
    serde_json::from_value(result["entities"].clone())
        .unwrap_or_else(|_| panic!("result {i} is no read: {report}"))
}

/// An MCP session opened by hand (reqwest, alice's token from [`oauth_flow`]) through nginx, to show that a
/// session outlives its user's process.
struct RawSession {
    url: String,
    token: String,
    id: String,
    protocol_version: String,
}

impl RawSession {
    async fn open(stack: &Stack) -> RawSession {
        let tokens = oauth_flow(&stack.issuer, &stack.a, "mcp").await;
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let r = post_mcp(&stack.a, Some(&token), &[]).await;
        assert_eq!(r.status(), 200);
        let id = r
            .headers()
            .get("mcp-session-id")
            .expect("the bridge names the session")
            .to_str()
            .unwrap()
            .to_owned();
        let init = jsonrpc_answer(r, 1).await;
        let protocol_version = init["result"]["protocolVersion"]
            .as_str()
            .unwrap_or_else(|| panic!("{init}"))
            .to_owned();
        let session = RawSession {
            url: stack.a.clone(),
            token,
            id,
            protocol_version,
        };
        let initialized = session
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(initialized.status(), 202);
        session
    }

    async fn post(&self, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", &self.protocol_version)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `tools/call read_graph`: the entity names.
    async fn read_graph(&self, id: u64) -> Result<Vec<String>, Value> {
        let r = self
            .post(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "read_graph", "arguments": {}}}))
            .await;
        assert_eq!(r.status(), 200);
        let answer = jsonrpc_answer(r, id).await;
        let Some(text) = answer["result"]["content"][0]["text"].as_str() else {
            return Err(answer);
        };
        let graph: Value = serde_json::from_str(text).unwrap();
        Ok(graph["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect())
    }
}

/// The JSON-RPC answer with `id` in a response, whether a JSON body or a server-sent event stream.
async fn jsonrpc_answer(r: reqwest::Response, id: u64) -> Value {
    let sse = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    if !sse {
        return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no answer to {id} in the stream:\n{text}"))
}

/// The lines of a memory file (JSON Lines).
fn memory_names(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let item: Value = serde_json::from_str(l).unwrap();
            item["name"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// The scenario of issue 18's "Done when", through nginx.
pub async fn memory_server_per_user_through_nginx() {
    let started = Instant::now();
    let bridge = Bridge::start().await;
    let stack = Stack::start_in_front_of(
        Proxy::Nginx,
        "",
        &[("users.toml", users_file())],
        EntryPointB::Shipped,
        Upstream::Port(bridge.port),
        600,
    )
    .await;
    assert_eq!(
        bridge.health().await["processes"],
        0,
        "no process before a request"
    );

    // alice (TypeScript SDK) stores a secret.
    let alice = typescript(
        &stack,
        ALICE,
        json!([{"create": "alice-secret"}, {"read": true}]),
    )
    .await;
    assert_eq!(
        alice["results"][0],
        json!({"created": "alice-secret"}),
        "{alice}"
    );
    assert_eq!(read(&alice, 1), ["alice-secret"]);

    // bob (Python SDK) does not see it, and stores his own; meanwhile alice opens a session by hand.
    let (bob, raw) = tokio::join!(
        python(
            &stack,
            BOB,
            json!([{"read": true}, {"create": "bob-note"}, {"read": true}]),
        ),
        RawSession::open(&stack),
    );
    assert_eq!(
        read(&bob, 0),
        Vec::<String>::new(),
        "bob sees nothing of alice's"
    );
    assert_eq!(bob["results"][1], json!({"created": "bob-note"}), "{bob}");
    assert_eq!(read(&bob, 2), ["bob-note"]);

    // alice's second client (a new OAuth client, a new session) is in alice's process: her secret, not bob's note.
    let alice_again = typescript(&stack, ALICE, json!([{"read": true}])).await;
    assert_eq!(read(&alice_again, 0), ["alice-secret"]);
    assert_ne!(alice_again["client_id"], alice["client_id"]);
    assert_ne!(alice_again["session_id"], alice["session_id"]);
    assert_eq!(raw.read_graph(10).await.unwrap(), ["alice-secret"]);

    // One process per user: alice's three sessions share one.
    let health = bridge.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["processes"], 2, "{health}");
    assert!(health["sessions"].is_u64(), "{health}");
    let children = bridge.children();
    let mut users: Vec<&str> = children.iter().map(Child::user).collect();
    users.sort_unstable();
    assert_eq!(users, [user_id(ALICE.0), user_id(BOB.0)], "{children:#?}");
    // Each child's environment: the allow-list, the --env value for its owner, its identity; nothing else.
    for child in &children {
        let user = child.user().strip_prefix("local:").unwrap();
        assert_eq!(
            child.env.get("MEMORY_FILE_PATH").map(PathBuf::from),
            Some(bridge.memory_file(user)),
            "{child:?}"
        );
        assert_eq!(
            child.env.get("MCP_BRIDGE_USER_NAME").map(String::as_str),
            Some(user)
        );
        for name in child.env.keys() {
            assert!(
                [
                    "PATH",
                    "HOME",
                    "LANG",
                    "LC_ALL",
                    "TZ",
                    "TMPDIR",
                    "MEMORY_FILE_PATH",
                    "MCP_BRIDGE_USER_ID",
                    "MCP_BRIDGE_USER_NAME",
                    "MCP_BRIDGE_USER_EMAIL",
                ]
                .contains(&name.as_str()),
                "{name} in {user}'s child environment: {child:?}"
            );
        }
    }
    assert_eq!(
        bridge
            .child_of(BOB.0)
            .env
            .get("MCP_BRIDGE_USER_EMAIL")
            .map(String::as_str),
        Some("bob@example.org")
    );
    assert!(
        !bridge
            .child_of(ALICE.0)
            .env
            .contains_key(NOT_FOR_CHILDREN.0)
    );
    // Each user's graph is in that user's file only.
    assert_eq!(memory_names(&bridge.memory_file(ALICE.0)), ["alice-secret"]);
    assert_eq!(memory_names(&bridge.memory_file(BOB.0)), ["bob-note"]);

    // alice's process is killed. The bridge notices; alice's open session carries on in a new process, which
    // reads her file; bob's process is untouched.
    let (killed, bobs) = (bridge.child_of(ALICE.0), bridge.child_of(BOB.0));
    assert!(
        Command::new("kill")
            .args(["-KILL", &killed.pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    bridge.wait_for_processes(1).await;
    assert_eq!(
        raw.read_graph(11).await,
        Ok(vec!["alice-secret".to_owned()]),
        "alice's session after her process was killed:\n{}",
        bridge.process.log()
    );
    let restarted = bridge.child_of(ALICE.0);
    assert_ne!(restarted.pid, killed.pid);
    // Fresh clients of both users, at once.
    let (alice_after, bob_after) = tokio::join!(
        typescript(&stack, ALICE, json!([{"read": true}])),
        python(&stack, BOB, json!([{"read": true}])),
    );
    assert_eq!(read(&alice_after, 0), ["alice-secret"]);
    assert_eq!(read(&bob_after, 0), ["bob-note"]);
    assert_eq!(bridge.child_of(ALICE.0).pid, restarted.pid);
    assert_eq!(
        bridge.child_of(BOB.0).pid,
        bobs.pid,
        "bob's process lived on"
    );
    assert_eq!(bridge.health().await["processes"], 2);

    // What reached the bridge: the gate's identities, never a token.
    let lines = stack.tap.header_lines();
    assert!(
        !lines.iter().any(|(n, _)| n == "authorization"),
        "the bridge received an Authorization header"
    );
    let mut ids: Vec<&str> = lines
        .iter()
        .filter(|(n, _)| n == "x-user-id")
        .map(|(_, v)| v.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, [user_id(ALICE.0), user_id(BOB.0)]);
    eprintln!(
        "the bridge scenario took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
