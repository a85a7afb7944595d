//! The axum example against the same walk as the real `forwardauth-svc` binary (`test_support::walk_the_flow`):
//! discovery from the gate's 401, registration, sign-in, consent, code, tokens, the gate's identity headers,
//! refresh, revocation. Served in process on a free loopback port, with the example's user and resource.

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use examples::axum_server::{DEMO_PASSWORD, DEMO_USER, Settings, demo_server, serve};
use serde_json::Value;
use test_support::walk_the_flow;

/// The example serving on a free port until the returned sender is dropped or fired.
async fn start(
    dir: &std::path::Path,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = demo_server(&base, dir).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve(listener, server, Settings::default(), async {
        let _ = stopped.await;
    }));
    (base, stop, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_against_the_axum_example() {
    let dir = tempfile::tempdir().unwrap();
    let (base, stop, served) = start(dir.path()).await;
    walk_the_flow(&base, &format!("{base}/mcp"), DEMO_USER, DEMO_PASSWORD).await;
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
}

/// The error exits go through the one mapping: an OAuth error is JSON with `no-store` (and a Basic challenge only
/// when Basic was tried), an authorization request
/// that cannot be trusted gets a page and no redirect, a forwarded request from an untrusted sender or for no
/// resource is refused, an unknown path is a JSON 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_mapped_once() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _stop, _served) = start(dir.path()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let r = http
        .post(format!("{base}/token"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "client authentication comes first");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers().get("www-authenticate").is_none(),
        "no Basic was tried"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");

    let r = http
        .post(format!("{base}/token"))
        .body("grant_type=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a body that does not say it is a form");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");

    let r = http
        .post(format!("{base}/token"))
        .header("authorization", "Basic bm8tc3VjaDpjbGllbnQ=")
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    let r = http
        .get(format!(
            "{base}/authorize?client_id=nobody&response_type=code"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Invalid authorization request")
    );

    let r = http
        .get(format!("{base}/verify"))
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", "elsewhere.example")
        .header("X-Forwarded-Uri", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "access_denied");

    let r = http
        .get(format!("{base}/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
}
