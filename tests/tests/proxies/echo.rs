//! The diagnostic server behind the gate: what an MCP server behind the proxy and the gate actually receives,
//! reported by the server itself (`mcp-bridge echo`'s `authContext` and `printHeader`) rather than read off the
//! wire.
//!
//! ```text
//!   HTTP client (token for alice, forged identity headers) ──► proxy (snippet config) ──/verify──► gate
//!                                                               └──► tap ──► mcp-bridge echo (Streamable HTTP)
//! ```

use std::process::Command;

use forwardauth_svc::snippet::Proxy;
use serde_json::{Value, json};

use crate::stack::{EntryPointB, Stack, Upstream};
use crate::support::*;

/// `mcp-bridge echo` over Streamable HTTP on a free 127.0.0.1 port, logging to `<dir>/mcp-bridge-echo.log`.
pub async fn start_echo(dir: &std::path::Path) -> (Process, u16) {
    let bin = workspace_binary("mcp-bridge", "mcp-bridge");
    let port = free_port();
    let mut p = Process::spawn(
        "mcp-bridge-echo",
        Command::new(bin)
            .args(["echo", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "debug"),
        dir,
    );
    p.wait_for_port(port).await;
    (p, port)
}

/// The JSON-RPC message with `id` in an MCP answer: a JSON body, or the `data:` lines of an SSE stream.
fn message_with_id(r_content_type: &str, body: &str, id: u64) -> Value {
    if r_content_type.starts_with("application/json") {
        return serde_json::from_str(body).unwrap();
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no message with id {id} in:\n{body}"))
}

/// An MCP session through the proxy: every request with the bearer token and the `extra` headers.
struct Session<'a> {
    url: &'a str,
    token: &'a str,
    extra: &'a [(&'a str, &'a str)],
    id: Option<String>,
    next: u64,
}

impl Session<'_> {
    async fn post(&self, body: &Value) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(self.url)
            .bearer_auth(self.token)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if let Some(id) = &self.id {
            req = req
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", "2025-06-18");
        }
        for (k, v) in self.extra {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn request(&mut self, body: Value) -> Value {
        let id = body["id"].as_u64().unwrap();
        let r = self.post(&body).await;
        assert_eq!(r.status(), 200, "{body}");
        if let Some(session) = r.headers().get("mcp-session-id") {
            self.id = Some(session.to_str().unwrap().to_owned());
        }
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        message_with_id(&ct, &r.text().await.unwrap(), id)
    }

    async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.next += 1;
        let answer = self
            .request(
                json!({"jsonrpc": "2.0", "id": self.next, "method": "tools/call",
                            "params": {"name": tool, "arguments": arguments}}),
            )
            .await;
        assert!(answer["error"].is_null(), "{tool}: {answer}");
        answer["result"].clone()
    }
}

/// Behind `kind` (its snippet's configuration) and the gate, the diagnostic server sees the gate's identity
/// headers, none of a client's forged ones, and no `Authorization` header.
pub async fn identity_behind_the_gate(kind: Proxy) {
    let dir = tempfile::tempdir().unwrap();
    let (mut echo, port) = start_echo(dir.path()).await;
    let stack = Stack::start_in_front_of(
        kind,
        "",
        &[],
        EntryPointB::Shipped,
        Upstream::Port(port),
        600,
    )
    .await;
    let tokens = oauth_flow(&stack.issuer, &stack.a, "mcp").await;
    let token = tokens["access_token"].as_str().unwrap();
    let forged = [
        ("X-User-Id", "forged-admin"),
        ("X-User-Name", "forged-admin"),
        ("X-User-Email", "forged@evil.example"),
        ("X-Client-Id", "forged-client"),
        ("X-Scopes", "mcp:admin forged"),
    ];

    // Without a token the gate refuses before the server is reached.
    let refused = reqwest::Client::new()
        .post(&stack.a)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let mut s = Session {
        url: &stack.a,
        token,
        extra: &forged,
        id: None,
        next: 1,
    };
    let init = s.request(initialize_body()).await;
    assert_eq!(
        init["result"]["serverInfo"]["name"], "mcp-bridge-echo",
        "{init}"
    );
    assert!(s.id.is_some(), "a session id through the proxy");
    let initialized = s
        .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    assert_eq!(initialized.status(), 202);

    let echoed = s.call("echo", json!({"message": "through the gate"})).await;
    assert_eq!(echoed["content"][0]["text"], "through the gate");

    let context = s.call("authContext", json!({})).await;
    let context = &context["structuredContent"];
    assert_eq!(context["transport"], "http", "{context}");
    // The gate's values, each once (a list would mean the forged header came through beside the gate's).
    assert_eq!(context["X-User-Id"], "local:alice", "{context}");
    assert_eq!(context["X-User-Name"], "alice", "{context}");
    let client_id = context["X-Client-Id"].as_str().unwrap_or_default();
    assert!(
        !client_id.is_empty() && client_id != "forged-client",
        "{context}"
    );
    let scopes = context["X-Scopes"].as_str().unwrap_or_default();
    assert_eq!(scopes, "mcp", "{context}");
    // alice has no e-mail address: the gate sends none, and the client's forged one is removed.
    assert!(
        context["X-User-Email"].is_null() || context["X-User-Email"].as_str() == Some(""),
        "{context}"
    );
    assert_eq!(context["authorization_header_present"], false, "{context}");
    assert!(!context.to_string().contains("forged"), "{context}");

    for (name, expected) in [
        (
            "authorization",
            "header authorization not present".to_owned(),
        ),
        ("X-User-Id", "local:alice".to_owned()),
    ] {
        let printed = s.call("printHeader", json!({"name": name})).await;
        assert_eq!(printed["content"][0]["text"], expected.as_str(), "{name}");
    }

    // The server's own log (at debug) holds neither the token nor any identity value.
    let log = echo.log();
    assert!(log.contains("authContext"), "the calls are logged:\n{log}");
    assert!(!log.contains(token), "the token reached the echo log");
    // Still serving: the proxy's requests did not crash it.
    echo.wait_for_port(port).await;
}
