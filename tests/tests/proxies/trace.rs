//! W3C trace context through each real proxy: a client's `traceparent` reaches the gate by way of the snippet's
//! configuration, and the gate's `/verify` span, exported over OTLP/HTTP, continues it.
//!
//! ```text
//!   HTTP client (traceparent) ──► nginx | Caddy | Traefik ──/verify──► forwardauth-svc (the binary, [tracing])
//!                                   └──► upstream (in test)                  └── OTLP/HTTP ──► receiver (in test)
//! ```
//!
//! The service runs as its binary, not in process: the exporter is installed by `main` and is process-wide.
//! Its spans are posted when it stops (SIGTERM): shutdown flushes the batch. The proxies' own tracing is off, so
//! each passes on what the client sent (README, "Logs and tracing", says what each needs for its own spans).

use std::process::Command;

use forwardauth_svc::snippet::{self, Proxy, Snippet};
use test_support::otlp::{Received, attr, hex, receiver, spans};

use crate::stack::{proxy_binary, spawn_proxy};
use crate::support::*;

/// The collector (an OTLP/HTTP receiver, `test_support::otlp`) and beside it on another port the upstream the
/// proxy forwards admitted requests to (200 `upstream`). Returns both base URLs.
async fn receiver_and_upstream(received: Received) -> (String, String) {
    let collector = receiver(received).await;
    let upstream = axum::Router::new().fallback(|| async { "upstream" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, upstream).await.unwrap() });
    (collector, url)
}

/// Through `kind`, with the configuration `forwardauth-svc snippet` prints, a request's `traceparent` becomes
/// the parent of the gate's `/verify` span, admitted or refused.
pub async fn the_gate_continues_the_clients_trace(kind: Proxy) {
    let proxy_bin = proxy_binary(kind);
    let gate_bin = workspace_binary("forwardauth-svc", "forwardauth-svc");
    let received = Received::default();
    let (collector, upstream) = receiver_and_upstream(received.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (port, gate_port) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{port}");
    let resource = format!("{issuer}/mcp");
    write_users(dir.path());
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            r#"listen = "127.0.0.1:{gate_port}"
issuer = "{issuer}"

[store]
backend = "memory"

[users]
file = "users.toml"

[tracing]
otlp_endpoint = "{collector}"
service_name = "gate-behind-{proxy}"

[[resources]]
resource = "{resource}"
scopes = ["mcp"]
required_scopes = ["mcp"]
"#,
            proxy = kind.name(),
        ),
    )
    .unwrap();
    let mut gate = Process::spawn(
        "forwardauth-svc",
        Command::new(gate_bin)
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .arg("serve")
            // The proxy's address (loopback) is trusted by default; nothing from the environment.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_SERVICE_NAME"),
        dir.path(),
    );
    gate.wait_for_port(gate_port).await;

    let site = snippet::render(&Snippet {
        proxy: kind,
        mcp_urls: vec![resource.clone()],
        auth_url: format!("http://127.0.0.1:{gate_port}"),
        upstream: upstream.clone(),
        bind: Some("127.0.0.1".parse().unwrap()),
    })
    .unwrap();
    let mut proxy = spawn_proxy(kind, &proxy_bin, dir.path(), &site, &[(port, true)]);
    proxy.wait_for_port(port).await;
    // Traefik's file provider loads the routers after the entry point listens; until then it answers 404.
    let prm = format!("{issuer}/.well-known/oauth-protected-resource/mcp");
    proxy
        .wait_until(&format!("{prm} answers 200"), || async {
            reqwest::get(&prm)
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
        })
        .await;

    let tokens = oauth_flow(&issuer, &resource, "mcp").await;
    let token = tokens["access_token"].as_str().unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (admitted_parent, refused_parent) = ("00f067aa0ba902b7", "00f067aa0ba902b8");
    let http = reqwest::Client::new();
    let admitted = http
        .post(&resource)
        .bearer_auth(token)
        .header("traceparent", format!("00-{trace_id}-{admitted_parent}-01"))
        .header("tracestate", "client=e2e")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(admitted.status(), 200);
    assert_eq!(admitted.text().await.unwrap(), "upstream");
    let refused = http
        .post(&resource)
        .header("traceparent", format!("00-{trace_id}-{refused_parent}-01"))
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // Stop the gate (SIGTERM, then a wait for its exit): the spans still queued are posted on the way out.
    let gate_log = gate.log();
    drop(proxy);
    drop(gate);
    let batches = received.lock().unwrap().clone();
    let spans = spans(&batches);
    assert!(
        !spans.is_empty(),
        "no spans exported; the gate's log:\n{gate_log}"
    );

    // nginx asks with HEAD (its auth subrequest keeps the connection only for an answer without a body);
    // Caddy and Traefik with GET.
    let name = match kind {
        Proxy::Nginx => "HEAD /verify",
        Proxy::Caddy | Proxy::Traefik => "GET /verify",
    };
    for (parent, status) in [(admitted_parent, "200"), (refused_parent, "401")] {
        let verify = spans
            .iter()
            .find(|s| hex(&s.parent_span_id) == parent)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no span is a child of the client's span {parent}: {spans:#?}",
                    kind.name()
                )
            });
        assert_eq!(hex(&verify.trace_id), trace_id, "{verify:#?}");
        assert_eq!(verify.name, name, "{verify:#?}");
        assert_eq!(attr(verify, "http.route").as_deref(), Some("/verify"));
        assert_eq!(
            attr(verify, "http.response.status_code").as_deref(),
            Some(status),
            "{verify:#?}"
        );
    }
    // The admitted one carries the client's tracestate too.
    let admitted_span = spans
        .iter()
        .find(|s| hex(&s.parent_span_id) == admitted_parent)
        .unwrap();
    assert_eq!(
        admitted_span.trace_state, "client=e2e",
        "{admitted_span:#?}"
    );
}
