//! `/verify` and per-tool scopes: `MCP-Protocol-Version` read as a date, the JSON-RPC call read from a body the
//! proxy forwards (Traefik's `forwardBody`), MCP headers that disagree with it, and the body limit.
//!
//! The resource `https://mcp.example.com/mcp` has one rule, `tools/call:delete_all` needs `mcp:admin`, and every
//! token here carries `mcp` only.

use actix_web::test;
use serde_json::json;

use crate::common::*;

const DELETE_ALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_all","arguments":{}}}"#;
const ECHO: &str = r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"message":"delete_all"}}}"#;

/// The app with the resource's `mcp_server_validates_headers` as given, and `[gate] max_body_kib` = 1.
async fn app_where(
    validates: bool,
) -> impl actix_web::dev::Service<
    actix_http::Request,
    Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
    Error = actix_web::Error,
> {
    let mut c = config();
    c.server.resources[0] = c.server.resources[0]
        .clone()
        .mcp_server_validates_headers(validates);
    c.gate.max_body_bytes = 1024;
    app_with(state_with(c).await).await
}

/// A POST through Traefik with a bearer token and, as `forwardBody` sends it, `body`.
fn post(bearer: &str, body: Option<&'static str>) -> test::TestRequest {
    let req = traefik("POST", RESOURCE).insert_header(("Authorization", bearer.to_owned()));
    match body {
        Some(b) => req.set_payload(b),
        None => req,
    }
}

fn mcp(
    req: test::TestRequest,
    version: &str,
    method: &str,
    name: Option<&str>,
) -> test::TestRequest {
    let req = req
        .insert_header(("MCP-Protocol-Version", version.to_owned()))
        .insert_header(("Mcp-Method", method.to_owned()));
    match name {
        Some(n) => req.insert_header(("Mcp-Name", n.to_owned())),
        None => req,
    }
}

fn is_insufficient_scope(a: &Answer) -> bool {
    a.status == 403 && a.json()["error"] == "insufficient_scope"
}

/// `x`, `9` and `zzzz` were once "newer" than 2026-07-28 by string comparison, so a token without the tool's
/// scope passed where it got a 403 without the header. Now a version is a calendar date or refused.
#[actix_web::test]
async fn malformed_protocol_versions_fail_closed() {
    for validates in [true, false] {
        let app = app_where(validates).await;
        let (_, t) = tokens(&app, "alice").await;
        let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
        for version in ["x", "9", "zzzz", "2026-07-28-bogus", "2026-13-01"] {
            for (method, body) in [("tools/call", None), ("tools/call", Some(ECHO))] {
                let req = mcp(post(&bearer, body), version, method, Some("echo"));
                let a = call(&app, req).await;
                assert_eq!(
                    (a.status, a.json()),
                    (
                        403,
                        json!({"error": "access_denied", "error_description": "the MCP-Protocol-Version header is not a date (YYYY-MM-DD)"})
                    ),
                    "{version:?}, body {}",
                    body.is_some()
                );
            }
        }
        // A well-formed date that is no published revision promises no header validation: every tool scope.
        for version in ["2027-01-01", "2026-07-29"] {
            let a = call(
                &app,
                mcp(post(&bearer, None), version, "tools/call", Some("echo")),
            )
            .await;
            assert!(is_insufficient_scope(&a), "{version}: {}", a.text());
        }
    }
}

/// Without a body, 2026-07-28 headers name the call only where the resource says the MCP server validates them.
#[actix_web::test]
async fn without_a_body_the_headers_count_only_where_the_mcp_server_validates_them() {
    for (validates, echo_status) in [(true, 200), (false, 403)] {
        let app = app_where(validates).await;
        let (_, t) = tokens(&app, "alice").await;
        let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
        let a = call(
            &app,
            mcp(
                post(&bearer, None),
                "2026-07-28",
                "tools/call",
                Some("echo"),
            ),
        )
        .await;
        assert_eq!(a.status, echo_status, "validates {validates}: {}", a.text());
        let a = call(
            &app,
            mcp(
                post(&bearer, None),
                "2026-07-28",
                "tools/call",
                Some("delete_all"),
            ),
        )
        .await;
        assert!(is_insufficient_scope(&a), "validates {validates}");
        // Today's clients (older revisions): every tool scope, whatever the resource says.
        let a = call(
            &app,
            mcp(
                post(&bearer, None),
                "2025-11-25",
                "tools/call",
                Some("echo"),
            ),
        )
        .await;
        assert!(is_insufficient_scope(&a), "validates {validates}");
    }
}

/// With the body forwarded, the body's tool decides the scope, for every client and on every resource.
#[actix_web::test]
async fn the_bodys_tool_decides_the_scope() {
    for validates in [true, false] {
        let app = app_where(validates).await;
        let (_, t) = tokens(&app, "alice").await;
        let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
        // A 2025 client sends no Mcp-Method/Mcp-Name at all.
        let a = call(&app, post(&bearer, Some(ECHO))).await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.header("x-user-id"), Some("local:alice"));
        let a = call(&app, post(&bearer, Some(DELETE_ALL))).await;
        assert!(is_insufficient_scope(&a), "{}", a.text());
        assert_eq!(
            a.header("www-authenticate").unwrap(),
            format!(
                "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks a scope this operation requires\", scope=\"mcp mcp:admin\", resource_metadata=\"{PRM}\""
            )
        );
        // Headers that agree change nothing; a body that is not JSON-RPC is no known call.
        let a = call(
            &app,
            mcp(
                post(&bearer, Some(ECHO)),
                "2026-07-28",
                "tools/call",
                Some("echo"),
            ),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text());
        let a = call(&app, post(&bearer, Some("{\"method\":\"tools/call\"}"))).await;
        assert!(is_insufficient_scope(&a), "{}", a.text());
        // A GET carries no call.
        let sse = traefik("GET", RESOURCE).insert_header(("Authorization", bearer.clone()));
        assert_eq!(call(&app, sse).await.status, 200);
    }
}

/// Headers that disagree with the body are a 400 (SEP-2243: whoever reads the body must refuse a mismatch), and
/// a body longer than `[gate] max_body_kib` a 413. Only a proxy that forwards the body can cause either, and
/// Traefik returns them to the client as they are.
#[actix_web::test]
async fn header_body_mismatch_is_400_and_an_oversize_body_413() {
    let app = app_where(true).await;
    let (_, t) = tokens(&app, "alice").await;
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let mismatches = [
        (Some("echo"), "tools/call", DELETE_ALL, "Mcp-Name"),
        (None, "tools/list", DELETE_ALL, "Mcp-Method"),
        (
            Some("=?base64?ZWNobw==?="),
            "tools/call",
            DELETE_ALL,
            "Mcp-Name",
        ),
        (Some("delete_all"), "tools/call", ECHO, "Mcp-Name"),
    ];
    for (name, method, body, header) in mismatches {
        let a = call(
            &app,
            mcp(post(&bearer, Some(body)), "2026-07-28", method, name),
        )
        .await;
        assert_eq!(
            (a.status, a.json()),
            (
                400,
                json!({"error": "invalid_request", "error_description": format!("the {header} header does not match the JSON-RPC request body")})
            ),
            "{name:?} {method}"
        );
        assert_eq!(a.header("www-authenticate"), None);
    }
    let long = "x".repeat(1025);
    let a = call(
        &app,
        traefik("POST", RESOURCE)
            .insert_header(("Authorization", bearer.clone()))
            .set_payload(long.clone()),
    )
    .await;
    assert_eq!(
        (a.status, a.json()),
        (
            413,
            json!({"error": "invalid_request", "error_description": "the request body is larger than the 1024 bytes the gate reads to apply per-tool scopes"})
        )
    );
    // Up to the limit it is read.
    let padded = format!("{ECHO:<1024}");
    let a = call(
        &app,
        traefik("POST", RESOURCE)
            .insert_header(("Authorization", bearer.clone()))
            .set_payload(padded),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    // A resource without tool rules reads no body: a long one is no concern of the gate's there.
    let a = call(&app, traefik("POST", ADMIN_RESOURCE).set_payload(long)).await;
    assert_eq!(a.status, 401, "{}", a.text());
}

/// The 400 and 413 as Traefik passes them to the client: status, headers and body, pinned.
#[actix_web::test]
async fn body_refusals_are_pinned() {
    let app = app_where(true).await;
    let shown = |a: Answer| {
        let mut lines: Vec<String> = a
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        lines.sort();
        format!("{}\n{}\n\n{}", a.status, lines.join("\n"), a.text())
    };
    let cases = [
        (
            "gate_header_body_mismatch",
            mcp(
                traefik("POST", RESOURCE).set_payload(DELETE_ALL),
                "2026-07-28",
                "tools/call",
                Some("echo"),
            )
            .insert_header(("Origin", "https://mcp.example.com")),
        ),
        (
            "gate_body_too_large",
            traefik("POST", RESOURCE).set_payload("x".repeat(2048)),
        ),
    ];
    for (name, req) in cases {
        insta::assert_snapshot!(name, shown(call(&app, req).await));
    }
}
