//! End-to-end: real proxies (nginx, Caddy, Traefik) with the configuration `forwardauth-svc snippet` prints, in
//! front of an unmodified MCP server, used by the official MCP SDK clients; the Traefik ForwardAuth contract and
//! entry point options; upstream OpenID Connect login through each proxy; the `deploy/` files; the README's guide,
//! run as written; the diagnostic server (`mcp-bridge echo`) behind the gate, reporting what reaches it; a stdio
//! MCP server behind `mcp-bridge`, one process per user; a client's W3C trace context through each proxy to the
//! gate's exported span.
//!
//! Every process runs on a 127.0.0.1 free port and is stopped by PID when its guard drops. A missing tool fails
//! the test with a message naming `.ci/run`, which installs it.

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bridge;
mod deploy;
mod differential;
mod echo;
mod guide;
mod idle;
mod stack;
mod support;
mod tools;
mod trace;
mod traefik;
mod upstream;

use forwardauth_svc::snippet::Proxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_of_an_unmodified_mcp_server_with_the_official_sdk_clients() {
    stack::scenario(Proxy::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_in_front_of_an_unmodified_mcp_server_with_the_official_sdk_clients() {
    stack::scenario(Proxy::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_with_a_client_id_metadata_document_through_caddy() {
    stack::cimd_scenario(Proxy::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_in_front_of_an_unmodified_mcp_server_with_the_official_sdk_clients() {
    stack::scenario(Proxy::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_with_a_client_id_metadata_document_through_traefik() {
    stack::cimd_scenario(Proxy::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_entry_point_options_and_the_snippet_each_remove_identity_header_aliases() {
    stack::traefik_entry_point_options().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_forwards_the_body_and_the_gate_reads_tool_calls_from_it() {
    tools::traefik_reads_the_call_from_the_body().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_without_the_body_every_post_needs_every_tool_scope() {
    tools::without_the_body_every_post_needs_every_tool_scope(Proxy::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy_without_the_body_every_post_needs_every_tool_scope() {
    tools::without_the_body_every_post_needs_every_tool_scope(Proxy::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_reuses_its_connection_to_the_gate_after_an_idle_period() {
    idle::the_proxy_reuses_its_connection_to_the_gate_after_an_idle_period(Proxy::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_reuses_its_connection_to_the_gate_after_an_idle_period() {
    idle::the_proxy_reuses_its_connection_to_the_gate_after_an_idle_period(Proxy::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_with_the_body_forwarded_reuses_its_connection_to_the_gate_after_an_idle_period() {
    idle::the_proxy_reuses_its_connection_to_the_gate_after_an_idle_period(Proxy::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_hostile_requests_and_cors_through_nginx() {
    differential::run(Proxy::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_hostile_requests_and_cors_through_caddy() {
    differential::run(Proxy::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_hostile_requests_and_cors_through_traefik() {
    differential::run(Proxy::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_guide_runs_as_written_with_caddy_in_front_of_an_mcp_server() {
    guide::run_the_guide().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_oidc_login_through_nginx() {
    upstream::upstream_oidc_login(Proxy::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_oidc_login_through_caddy() {
    upstream::upstream_oidc_login(Proxy::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_oidc_login_through_traefik() {
    upstream::upstream_oidc_login(Proxy::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_behind_nginx_and_the_gate_sees_the_gates_identity_and_no_authorization() {
    echo::identity_behind_the_gate(Proxy::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_gate_and_mcp_bridge_keep_each_users_stdio_memory_server_apart_and_restart_it_when_killed()
 {
    bridge::memory_server_per_user_through_nginx().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_nginx_the_gates_verify_span_continues_the_clients_traceparent() {
    trace::the_gate_continues_the_clients_trace(Proxy::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_caddy_the_gates_verify_span_continues_the_clients_traceparent() {
    trace::the_gate_continues_the_clients_trace(Proxy::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_traefik_the_gates_verify_span_continues_the_clients_traceparent() {
    trace::the_gate_continues_the_clients_trace(Proxy::Traefik).await;
}
