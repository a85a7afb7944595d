//! The proxies' connections to the gate across idle periods. Each proxy keeps its connections to `/verify` in a
//! pool; a check sent on a pooled connection at the moment the gate closes it is lost, and Traefik, whose
//! ForwardAuth client cannot resend a check that carries the forwarded body, answers such a request 500. So the
//! gate must keep an idle connection longer than any proxy does (`[http] keep_alive_secs`, 300 s by default):
//! here each real proxy, configured by the snippet, makes a check, stays idle longer than actix-web's own
//! default idle timeout (5 s, which the gate used to keep), and makes another over the connection it already
//! holds, which the gate's count of accepted connections shows.

use std::time::Duration;

use forwardauth_svc::snippet::Proxy;
use test_support::metrics::{scrape, value};

use crate::stack::{EntryPointB, Stack, Upstream, post_mcp};
use crate::support::*;

async fn connections(metrics_port: u16) -> f64 {
    value(
        &scrape(metrics_port).await,
        "forwardauth_http_connections_total",
    )
}

pub async fn the_proxy_reuses_its_connection_to_the_gate_after_an_idle_period(kind: Proxy) {
    let metrics_port = free_port();
    let stack = Stack::start_in_front_of(
        kind,
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
        &[],
        EntryPointB::Shipped,
        Upstream::McpServer,
        600,
    )
    .await;
    let token = oauth_flow(&stack.issuer, &stack.a, "mcp").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Two checks back to back fill the proxy's pool (Traefik's keeps two idle connections per host).
    for _ in 0..2 {
        let r = post_mcp(&stack.a, Some(&token), &[]).await;
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    let before = connections(metrics_port).await;
    // Longer than actix-web's default idle timeout, shorter than every proxy's own.
    tokio::time::sleep(Duration::from_secs(7)).await;
    for round in 0..3 {
        let r = post_mcp(&stack.a, Some(&token), &[]).await;
        assert_eq!(
            r.status(),
            200,
            "round {round} after the idle period: {:?}",
            r.text().await
        );
    }
    assert_eq!(
        connections(metrics_port).await,
        before,
        "the proxy opened a new connection to the gate after 7 s idle: the gate closed the old one"
    );
}
