//! OpenTelemetry export: the real binary posts its spans to an OTLP/HTTP receiver running in the test, which
//! decodes them with the `opentelemetry-proto` types. The request span continues the caller's `traceparent`
//! (the proxy's, on `/verify`), carries the route, method and status; the store calls are `store` spans below
//! the request that made them, each naming its method (`op`); and no attribute anywhere holds a token, a code or
//! a state. The spans are posted when the service stops (SIGTERM): shutdown flushes the batch.

use std::process::Stdio;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use test_support::otlp::{Received, attr, hex, receiver, spans, text};
use tokio::process::Command;

use super::{VERIFIER, free_port, grants_in_process, serve, write_config};

/// Every attribute anywhere in the export, as `key=value`: resources, spans and their events.
fn every_attribute(batches: &[ExportTraceServiceRequest]) -> Vec<String> {
    let show = |kv: &KeyValue| format!("{}={}", kv.key, text(&kv.value));
    let mut all = Vec::new();
    for rs in batches.iter().flat_map(|b| &b.resource_spans) {
        if let Some(r) = &rs.resource {
            all.extend(r.attributes.iter().map(show));
        }
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            all.push(format!("name={}", span.name));
            all.extend(span.attributes.iter().map(show));
            for e in &span.events {
                all.push(format!("event={}", e.name));
                all.extend(e.attributes.iter().map(show));
            }
        }
    }
    all
}

/// The `op` of every `store` span in `root`'s trace whose chain of parents reaches `root`, in export order.
fn store_ops_under<'a>(spans: &'a [Span], root: &Span) -> Vec<String> {
    let by_id: std::collections::HashMap<&'a [u8], &'a Span> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .map(|s| (s.span_id.as_slice(), s))
        .collect();
    let below_root = |span: &'a Span| {
        let mut span = span;
        loop {
            if span.parent_span_id == root.span_id {
                return true;
            }
            match by_id.get(span.parent_span_id.as_slice()) {
                Some(parent) => span = parent,
                None => return false,
            }
        }
    };
    spans
        .iter()
        .filter(|s| s.name == "store" && s.trace_id == root.trace_id && below_root(s))
        .map(|s| attr(s, "op").unwrap_or_else(|| panic!("a store span without its op: {s:#?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_continue_the_proxys_traceparent_and_carry_no_secret() {
    let received = Received::default();
    let collector = receiver(received.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(
        dir.path(),
        port,
        &format!(
            "[tracing]\notlp_endpoint = \"{collector}\"\nservice_name = \"gate-under-test\"\n\n[gate]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
        ),
    );
    let path = dir.path().join("config.toml");
    let config = forwardauth_svc::config::load(Some(&path), &|_| None).unwrap();
    let (client_id, refresh) = grants_in_process(&config, 1).await.pop().unwrap();
    let mut svc = serve(&path, Stdio::inherit()).await;
    let base = svc.announced.clone();
    let http = reqwest::Client::new();

    // A refresh: the client's new tokens go through the token endpoint and the store.
    let tokens: serde_json::Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client_id.as_str()),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let new_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The proxy's /verify for an MCP request, in the proxy's trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let proxy_span = "00f067aa0ba902b7";
    let verify = |token: String, parent: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.get(format!("{base}/verify"))
                .header("traceparent", format!("00-{trace_id}-{parent}-01"))
                .header("X-Forwarded-Method", "POST")
                .header("X-Forwarded-Proto", "http")
                .header("X-Forwarded-Host", format!("127.0.0.1:{port}"))
                .header("X-Forwarded-Uri", "/mcp")
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(verify(access.clone(), proxy_span).await, 200);
    // A forged token (`alg: none`) is refused; its text must not be exported either.
    let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJsb2NhbDptYWxsb3J5In0.";
    assert_eq!(verify(forged.to_owned(), "00f067aa0ba902b8").await, 401);
    // A `traceparent` marked not sampled (flags `00`: behind a proxy that does not trace, a client's choice): the
    // refusal is exported all the same, in that trace.
    let unsampled = "5bf92f3577b34da6a3ce929d0e0e4737";
    let refused = http
        .get(format!("{base}/verify"))
        .header("traceparent", format!("00-{unsampled}-00f067aa0ba902b9-00"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", format!("127.0.0.1:{port}"))
        .header("X-Forwarded-Uri", "/mcp")
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // A callback whose query holds a code and a state.
    let callback = http
        .get(format!(
            "{base}/callback?code=CODE-NEVER-EXPORTED&state=STATE-NEVER-EXPORTED"
        ))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    assert!(callback.status().is_client_error(), "{}", callback.status());

    // Someone who is not a trusted proxy (127.0.0.2) cannot pick the trace: their request starts a trace of its
    // own, whatever `traceparent` they send.
    let stranger = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let strangers_trace = "11111111111111111111111111111111";
    let health = stranger
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .header(
            "traceparent",
            format!("00-{strangers_trace}-2222222222222222-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Stop: the spans still queued are posted on the way out.
    let pid = svc.child.id().unwrap();
    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(Duration::from_secs(20), svc.child.wait())
        .await
        .expect("stops within 20 s")
        .unwrap();
    assert!(exit.success(), "{exit:?}");

    let batches = received.lock().unwrap().clone();
    let spans = spans(&batches);
    let resource = batches[0].resource_spans[0].resource.as_ref().unwrap();
    assert!(
        resource
            .attributes
            .iter()
            .any(|kv| kv.key == "service.name" && text(&kv.value) == "gate-under-test"),
        "{:?}",
        resource.attributes
    );

    let metadata = spans
        .iter()
        .find(|s| s.name == "GET /.well-known/oauth-authorization-server")
        .unwrap_or_else(|| panic!("no metadata span: {spans:#?}"));
    assert_ne!(hex(&metadata.trace_id), strangers_trace);
    assert!(metadata.parent_span_id.is_empty(), "{metadata:#?}");
    assert!(spans.iter().all(|s| hex(&s.trace_id) != strangers_trace));

    assert!(
        spans
            .iter()
            .any(|s| hex(&s.trace_id) == unsampled && s.name == "GET /verify"),
        "the /verify under a not-sampled traceparent was not exported"
    );

    // The request span of the admitted /verify: in the proxy's trace, a child of the proxy's span.
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let request = in_trace
        .iter()
        .find(|s| hex(&s.parent_span_id) == proxy_span)
        .unwrap_or_else(|| panic!("no span with the proxy's parent: {in_trace:#?}"));
    assert_eq!(request.name, "GET /verify");
    assert_eq!(request.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(attr(request, "http.route").as_deref(), Some("/verify"));
    assert_eq!(attr(request, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    // The refused one too, with its status.
    let refused = in_trace
        .iter()
        .find(|s| hex(&s.parent_span_id) == "00f067aa0ba902b8")
        .unwrap();
    assert_eq!(
        attr(refused, "http.response.status_code").as_deref(),
        Some("401")
    );
    // The callback's span has the route and the path, not the query.
    let cb = spans
        .iter()
        .find(|s| hex(&s.parent_span_id) == "b7ad6b7169203331")
        .unwrap();
    assert_eq!(hex(&cb.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(cb.name, "GET /callback");
    assert_eq!(attr(cb, "url.path").as_deref(), Some("/callback"));
    // The token request's store calls: `store` spans (oauth-core's `Instrumented`, debug level, exported) in its
    // trace, below it, each naming the store method in `op` and nothing else of the call.
    let token_span = spans.iter().find(|s| s.name == "POST /token").unwrap();
    let token_ops = store_ops_under(&spans, token_span);
    for op in ["client", "grant", "rotate_grant"] {
        assert!(
            token_ops.iter().any(|o| o == op),
            "no store span with op={op} under POST /token (found {token_ops:?}): {spans:#?}"
        );
    }
    // Beside what tracing-opentelemetry adds to every span (source location, thread, target, timings), a store
    // span's only attribute is its op.
    for store in spans.iter().filter(|s| s.name == "store") {
        let own: Vec<&str> = store
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .filter(|k| {
                !k.starts_with("code.")
                    && !k.starts_with("thread.")
                    && !["target", "busy_ns", "idle_ns"].contains(k)
            })
            .collect();
        assert_eq!(own, ["op"], "{store:#?}");
    }
    // The gate decides from the token and the keys in memory: an admitted /verify reads nothing from the store.
    let verify_ops = store_ops_under(&spans, request);
    assert!(
        verify_ops.is_empty(),
        "store calls under GET /verify: {verify_ops:?}"
    );

    let all = every_attribute(&batches);
    for secret in [
        access.as_str(),
        new_refresh.as_str(),
        refresh.as_str(),
        forged,
        "CODE-NEVER-EXPORTED",
        "STATE-NEVER-EXPORTED",
        VERIFIER,
    ] {
        assert!(
            !all.iter().any(|a| a.contains(secret)),
            "{secret} was exported: {all:#?}"
        );
    }
}
