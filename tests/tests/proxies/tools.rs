//! Per-tool scopes through the real proxies, in front of the unmodified MCP server (`server-everything`):
//! resource A has the rule `tools/call:get-env` needs `mcp:admin`, and the client's token carries `mcp` only.
//!
//! * **Traefik** forwards the request body to the gate (`forwardBody` in the snippet), so the call is read from
//!   it: `get-env` is refused with 403 `insufficient_scope`, `echo` reaches the MCP server and answers, and
//!   `Mcp-Method`/`Mcp-Name` headers that disagree with the body get the gate's 400 through Traefik. The gate
//!   reads a chunked body as Traefik passes it on, and answers 413 beyond its `[gate] max_body_kib` (1 here); a
//!   body over Traefik's `maxBodySize` gets Traefik's own empty 401, without the gate being asked.
//! * **nginx** and **Caddy** cannot forward the body, so without `mcp_server_validates_headers` every `POST`
//!   needs every tool scope: even `echo` is refused.

use forwardauth_svc::snippet::Proxy;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::stack::Stack;
use crate::support::*;

const RULES: &str = "[resources.tool_scopes]\n\"tools/call:get-env\" = [\"mcp:admin\"]";

/// One MCP POST to `url` with the token, the 2025-06-18 protocol version, a session if any, `extra` headers.
async fn post(
    url: &str,
    token: &str,
    session: Option<&str>,
    body: &Value,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn call_tool(id: u64, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": {"message": "hello through the gate"}}})
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// `initialize` and `notifications/initialized` (no rule applies to either): the session id.
async fn session(stack: &Stack, token: &str) -> String {
    let init = post(&stack.a, token, None, &initialize_body(), &[]).await;
    assert_eq!(init.status(), 200, "initialize: {}", stack.proxy.log());
    let session = header(&init, "mcp-session-id");
    assert!(!session.is_empty(), "server-everything names a session");
    drop(init.text().await.unwrap());
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = post(&stack.a, token, Some(&session), &note, &[]).await;
    assert_eq!(r.status(), 202);
    session
}

/// A POST of `body` to `url` in one chunk of `Transfer-Encoding: chunked` (reqwest sends `Content-Length`): the
/// status and the whole answer.
async fn chunked_post(url: &str, token: &str, session: &str, body: &str) -> (u16, String) {
    let u = url::Url::parse(url).unwrap();
    let authority = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap());
    let mut tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: {session}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        u.path(),
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tcp.read_to_end(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

async fn token_without_the_tool_scope(stack: &Stack) -> String {
    let t = oauth_flow(&stack.issuer, &stack.a, "mcp").await;
    assert_eq!(t["scope"], "mcp");
    t["access_token"].as_str().unwrap().to_owned()
}

pub async fn traefik_reads_the_call_from_the_body() {
    let stack =
        Stack::start_with_tool_rules(Proxy::Traefik, RULES, "\n[gate]\nmax_body_kib = 1\n").await;
    let token = token_without_the_tool_scope(&stack).await;
    let session = session(&stack, &token).await;
    let prm = format!("{}/.well-known/oauth-protected-resource/mcp", stack.issuer);

    // Another tool: through the gate, answered by the MCP server.
    let echo = post(&stack.a, &token, Some(&session), &call_tool(2, "echo"), &[]).await;
    assert_eq!(echo.status(), 200);
    let text = echo.text().await.unwrap();
    assert!(text.contains("Echo: hello through the gate"), "{text}");

    // The protected tool: the gate read it from the body and asks for the scope.
    let env = post(
        &stack.a,
        &token,
        Some(&session),
        &call_tool(3, "get-env"),
        &[],
    )
    .await;
    assert_eq!(env.status(), 403);
    assert_eq!(
        header(&env, "www-authenticate"),
        format!(
            "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks a scope this operation requires\", scope=\"mcp mcp:admin\", resource_metadata=\"{prm}\""
        )
    );
    assert_eq!(
        env.json::<Value>().await.unwrap()["error"],
        "insufficient_scope"
    );

    // Headers that disagree with the body: the gate's 400, passed on by Traefik, whichever way round.
    for (body, name) in [
        (call_tool(4, "echo"), "get-env"),
        (call_tool(5, "get-env"), "echo"),
    ] {
        let r = post(
            &stack.a,
            &token,
            Some(&session),
            &body,
            &[("mcp-method", "tools/call"), ("mcp-name", name)],
        )
        .await;
        assert_eq!(r.status(), 400, "Mcp-Name {name}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"error": "invalid_request", "error_description": "the Mcp-Name header does not match the JSON-RPC request body"})
        );
    }
    // A malformed protocol version is refused, whatever the body.
    let r = reqwest::Client::new()
        .post(&stack.a)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "zzzz")
        .json(&call_tool(6, "echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "the MCP-Protocol-Version header is not a date (YYYY-MM-DD)"
    );
    // A chunked body is read as Traefik passes it on, up to the gate's limit (1 KiB here), and refused beyond.
    let (status, answer) = chunked_post(
        &stack.a,
        &token,
        &session,
        &call_tool(7, "echo").to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("Echo: hello through the gate"), "{answer}");
    let (status, answer) = chunked_post(
        &stack.a,
        &token,
        &session,
        &call_tool(8, "get-env").to_string(),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let long = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "x".repeat(1100)}}});
    let (status, answer) = chunked_post(&stack.a, &token, &session, &long.to_string()).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer.contains("larger than the 1024 bytes the gate reads"),
        "{answer}"
    );
    let r = post(&stack.a, &token, Some(&session), &long, &[]).await;
    assert_eq!(r.status(), 413, "with Content-Length");
    // Beyond maxBodySize Traefik answers by itself: an empty 401, no challenge, the gate not asked.
    let huge = "x".repeat(forwardauth_svc::config::GateConfig::DEFAULT_MAX_BODY_KIB * 1024 + 1);
    let r = reqwest::Client::new()
        .post(&stack.a)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), header(&r, "www-authenticate")),
        (401, String::new())
    );
    assert_eq!(r.text().await.unwrap(), "");

    // The MCP server never saw a get-env call.
    let sent = stack.tap.connections().join("\n");
    assert!(sent.contains("\"name\":\"echo\""), "{sent}");
    assert!(!sent.contains("get-env"), "{sent}");
}

/// nginx and Caddy: no body reaches the gate, so without `mcp_server_validates_headers` every POST needs every
/// tool scope (the gate fails closed), while requests that carry no call pass.
pub async fn without_the_body_every_post_needs_every_tool_scope(kind: Proxy) {
    let stack = Stack::start_with_tool_rules(kind, RULES, "").await;
    let token = token_without_the_tool_scope(&stack).await;
    let echo = post(&stack.a, &token, None, &call_tool(2, "echo"), &[]).await;
    assert_eq!(echo.status(), 403, "{}", stack.proxy.log());
    assert!(header(&echo, "www-authenticate").contains("scope=\"mcp mcp:admin\""));
    // The 2026-07-28 headers are not believed: this resource does not say its MCP server validates them.
    let named = post(
        &stack.a,
        &token,
        None,
        &call_tool(3, "echo"),
        &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
    )
    .await;
    assert_eq!(named.status(), 403);
    // A GET carries no call: it reaches the MCP server (which answers without a session as it will).
    let get = reqwest::Client::new()
        .get(&stack.a)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert!(
        !header(&get, "www-authenticate").contains("insufficient_scope"),
        "{}",
        get.status()
    );
    assert!(!stack.tap.connections().join("\n").contains("tools/call"));
}
