//! Metrics and the audit trail of the real binary: one whole flow over HTTP (with a failed login, a refresh, a
//! revocation and a refresh-token reuse), then the metrics listener scraped and the audit file read; then an
//! operator's revocation from the command line, audited too. Nothing secret may appear in either.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::{authorize_url, field, free_port, verify};
use tokio::process::Command;

use super::{REDIRECT, VERIFIER, serve, write_config};

const UA: &str = "observe-test/1.0";
/// The client's address as the trusted proxy (loopback) forwards it.
const CLIENT: &str = "198.51.100.7";

/// The value of the sample `name{labels}` (labels as written, in the order the encoder writes them).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

fn audit_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn named<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_is_counted_on_the_metrics_listener_and_written_to_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_port = free_port();
    write_config(
        dir.path(),
        port,
        &format!(
            "[tokens]\nrefresh_grace_secs = 0\n\n[audit]\ntarget = \"file\"\nfile = \"logs/audit.jsonl\"\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        ),
    );
    let config = dir.path().join("config.toml");
    let mut svc = serve(&config, Stdio::inherit()).await;
    let base = svc.announced.clone();
    let mcp = format!("{base}/mcp");
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(UA)
        .build()
        .unwrap();

    // The gate refuses a request without a token.
    assert_eq!(verify(&http, &base, &mcp, None).await.status(), 401);

    let reg: Value = http
        .post(format!("{base}/register"))
        .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let authorize = authorize_url(
        &format!("{base}/authorize"),
        &client_id,
        REDIRECT,
        "s-1",
        Some("mcp"),
        &mcp,
    );
    let html = http
        .get(authorize.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let handle = field(&html, "handle");
    let login = |csrf: String, password: &'static str| {
        http.post(format!("{base}/login"))
            .header("X-Forwarded-For", CLIENT)
            .form(&[
                ("handle", handle.clone()),
                ("csrf", csrf),
                ("username", "alice".into()),
                ("password", password.into()),
            ])
            .send()
    };
    let failed = login(field(&html, "csrf"), "not-the-password")
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);
    let html = failed.text().await.unwrap();
    let consent = login(field(&html, "csrf"), "wonderland").await.unwrap();
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.unwrap();
    let approved = http
        .post(format!("{base}/consent"))
        .header("X-Forwarded-For", CLIENT)
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", field(&html, "csrf").as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302);
    let location = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    let code = q["code"].clone();

    let token = |form: Vec<(&'static str, String)>| {
        http.post(format!("{base}/token"))
            .header("X-Forwarded-For", CLIENT)
            .form(&form)
            .send()
    };
    let t0: Value = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("redirect_uri", REDIRECT.into()),
        ("code_verifier", VERIFIER.into()),
        ("client_id", client_id.clone()),
        ("resource", mcp.clone()),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let (a0, r0) = (
        t0["access_token"].as_str().unwrap().to_owned(),
        t0["refresh_token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(verify(&http, &base, &mcp, Some(&a0)).await.status(), 200);
    let refresh = || {
        token(vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", r0.clone()),
            ("client_id", client_id.clone()),
        ])
    };
    let t1: Value = refresh().await.unwrap().json().await.unwrap();
    let (a1, r1) = (
        t1["access_token"].as_str().unwrap().to_owned(),
        t1["refresh_token"].as_str().unwrap().to_owned(),
    );
    // The client revokes its new access token: the gate refuses it.
    let revoked = http
        .post(format!("{base}/revoke"))
        .form(&[("token", a1.as_str()), ("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(verify(&http, &base, &mcp, Some(&a1)).await.status(), 401);
    // The rotated refresh token comes back (no grace window): reuse, the grant is revoked.
    let reused = refresh().await.unwrap();
    assert_eq!(reused.status(), 400);

    // The metrics listener, and only it, serves the metrics.
    assert_eq!(
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let scraped = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    let m = scraped.text().await.unwrap();
    let at = |series: &str| sample(&m, series).unwrap_or_else(|| panic!("no {series} in\n{m}"));
    assert_eq!(at("forwardauth_codes_issued_total"), 1.0);
    assert_eq!(
        at(r#"forwardauth_tokens_issued_total{kind="authorization_code"}"#),
        1.0
    );
    assert_eq!(at("forwardauth_tokens_refreshed_total"), 1.0);
    assert_eq!(
        at(r#"forwardauth_tokens_revoked_total{kind="access_token"}"#),
        1.0
    );
    assert_eq!(
        at(r#"forwardauth_reuse_detections_total{kind="refresh_token"}"#),
        1.0
    );
    assert_eq!(
        at(r#"forwardauth_logins_total{outcome="failure",reason="wrong_credentials"}"#),
        1.0
    );
    assert_eq!(
        at(r#"forwardauth_logins_total{outcome="success",reason="ok"}"#),
        1.0
    );
    assert_eq!(at(r#"forwardauth_consents_total{kind="given"}"#), 1.0);
    assert_eq!(
        at(r#"forwardauth_client_registrations_total{kind="registered"}"#),
        1.0
    );
    let gate = |decision: &str, reason: &str| {
        at(&format!(
            r#"forwardauth_gate_decisions_total{{resource="{mcp}",decision="{decision}",reason="{reason}"}}"#
        ))
    };
    assert_eq!(gate("allow", "ok"), 1.0);
    assert_eq!(gate("deny", "missing_token"), 1.0);
    assert_eq!(gate("deny", "invalid_token"), 1.0);
    assert_eq!(
        at(r#"forwardauth_http_requests_total{route="/token",status="200"}"#),
        2.0
    );
    assert_eq!(
        at(r#"forwardauth_http_requests_total{route="/token",status="400"}"#),
        1.0
    );
    assert_eq!(
        at(r#"forwardauth_http_requests_total{route="/verify",status="401"}"#),
        2.0
    );
    assert_eq!(
        at(r#"forwardauth_store_operation_seconds_count{op="redeem_code"}"#),
        1.0
    );
    assert!(at(r#"forwardauth_store_operation_seconds_sum{op="redeem_code"}"#) > 0.0);
    // a0 was verified once (a miss, then cached); a1 was refused by revocation after its lookup.
    assert!(at("forwardauth_verify_cache_misses_total") >= 1.0);
    assert!(at("forwardauth_verify_cache_entries") >= 1.0);
    assert_eq!(
        at(&format!(
            r#"forwardauth_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(m.contains("# TYPE forwardauth_revocation_propagation_seconds histogram"));
    assert!(m.ends_with("# EOF\n"));

    // The audit trail of the flow.
    let audit = dir.path().join("logs/audit.jsonl");
    let first = std::fs::read_to_string(&audit).unwrap();
    assert!(
        first.starts_with("{\"time\":\"") && first.contains("\",\"event\":\"client_registered\",\"outcome\":\"success\",\"subject\":null,\"client_id\":\""),
        "a line starts with time, event, outcome, subject, client: {first}"
    );
    let lines = audit_lines(&audit);
    for l in &lines {
        let time = l["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        for key in [
            "outcome",
            "subject",
            "client_id",
            "client_addr",
            "user_agent",
        ] {
            assert!(l.get(key).is_some(), "no {key} in {l}");
        }
    }
    let failed = named(&lines, "login_failed");
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert_eq!(failed[0]["username"], "alice");
    assert_eq!(failed[0]["reason"], "wrong_credentials");
    assert_eq!(failed[0]["outcome"], "failure");
    assert_eq!(
        failed[0]["client_addr"], CLIENT,
        "the client behind the proxy"
    );
    assert_eq!(failed[0]["user_agent"], UA);
    let ok = named(&lines, "login_succeeded");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["subject"], "local:alice");
    assert_eq!(ok[0]["outcome"], "success");
    let consent = named(&lines, "consent_given");
    assert_eq!(consent.len(), 1);
    assert_eq!(consent[0]["client_id"], client_id.as_str());
    assert_eq!(consent[0]["scope"], "mcp");
    let code_issued = named(&lines, "code_issued");
    assert_eq!(code_issued.len(), 1);
    assert_eq!(code_issued[0]["subject"], "local:alice");
    assert_eq!(code_issued[0]["resource"], mcp.as_str());
    let issued = named(&lines, "token_issued");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["grant_type"], "authorization_code");
    assert_eq!(issued[0]["client_addr"], CLIENT);
    assert_eq!(named(&lines, "token_refreshed").len(), 1);
    let revoked = named(&lines, "token_revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["token_type"], "access_token");
    assert_eq!(revoked[0]["subject"], "local:alice");
    let reuse = named(&lines, "refresh_token_reused");
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0]["subject"], "local:alice");
    assert_eq!(reuse[0]["client_id"], client_id.as_str());
    assert_eq!(reuse[0]["outcome"], "failure");
    let registered = named(&lines, "client_registered");
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["client_id"], client_id.as_str());
    // Refusals at the gate are audited, with the resource; admitted requests are not.
    let gate: Vec<(&str, &str)> = named(&lines, "gate")
        .iter()
        .map(|l| {
            assert_eq!(l["resource"], mcp.as_str());
            (
                l["decision"].as_str().unwrap(),
                l["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(gate, [("deny", "missing_token"), ("deny", "invalid_token")]);

    // An operator revokes the user's grants from the command line once the service is stopped.
    let pid = svc.child.id().unwrap();
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), svc.child.wait())
        .await
        .expect("stops within 15 s")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forwardauth-svc"))
        .arg("--config")
        .arg(&config)
        .args(["revoke", "--user", "local:alice"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines = audit_lines(&audit);
    let admin = named(&lines, "admin");
    assert_eq!(admin.len(), 1, "{lines:?}");
    assert_eq!(admin[0]["action"], "revoke_user");
    assert_eq!(admin[0]["target"], "local:alice");
    assert_eq!(admin[0]["subject"], "local:alice");
    assert_eq!(admin[0]["result"], "ok");
    assert_eq!(admin[0]["outcome"], "success");
    assert_eq!(admin[0]["grants"], 0, "the reuse revoked the only grant");
    assert_eq!(admin[0]["client_addr"], Value::Null, "no request behind it");

    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in [
        code.as_str(),
        &a0,
        &r0,
        &a1,
        &r1,
        "wonderland",
        "not-the-password",
        reg["registration_access_token"].as_str().unwrap(),
    ] {
        assert!(
            !text.contains(secret),
            "a secret in the audit trail: {secret}"
        );
        assert!(!m.contains(secret), "a secret in the metrics: {secret}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&audit).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// Anyone can make the gate refuse, as fast as they can send: at most `[gate] refusals_logged_per_sec` refusals a
/// second reach the log and the audit trail, and the rest are counted, reported by the next line written in a
/// later second, so that written + reported = sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_writes_at_most_the_budget_a_second_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(
        dir.path(),
        port,
        "[gate]\nrefusals_logged_per_sec = 3\n\n[audit]\ntarget = \"file\"\nfile = \"audit.jsonl\"\n",
    );
    let log_path = dir.path().join("log.jsonl");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forwardauth-svc"));
    cmd.arg("--config")
        .arg(dir.path().join("config.toml"))
        .arg("--log-format")
        .arg("json")
        .arg("serve")
        .env_remove("RUST_LOG")
        .stderr(Stdio::from(log));
    let mut svc = test_support::Running::start(cmd, "forwardauth-svc listening on ").await;
    let base = svc.announced.clone();
    let mcp = format!("{base}/mcp");
    let http = reqwest::Client::new();
    const BURST: u64 = 40;
    for _ in 0..BURST {
        assert_eq!(verify(&http, &base, &mcp, None).await.status(), 401);
    }
    // A later second: this one is written, after the count of those left out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(verify(&http, &base, &mcp, None).await.status(), 401);
    tokio::time::sleep(Duration::from_millis(200)).await;
    svc.child.kill().await.unwrap();

    let audit = audit_lines(&dir.path().join("audit.jsonl"));
    let written = named(&audit, "gate").len() as u64;
    let reported: u64 = named(&audit, "refusals_left_out")
        .iter()
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(written + reported, BURST + 1, "{audit:#?}");
    // The burst spans at most a few seconds on a slow machine; every second writes at most 3.
    assert!(written < BURST / 2, "{written} refusals written of {BURST}");
    assert!(reported > 0);

    let log: Vec<Value> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let message = |l: &Value| {
        l["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let logged = log
        .iter()
        .filter(|l| message(l) == "gate refused the request")
        .count() as u64;
    let left_out: u64 = log
        .iter()
        .filter(|l| message(l).starts_with("gate refusals not logged"))
        .map(|l| l["fields"]["left_out"].as_u64().unwrap())
        .sum();
    assert_eq!(logged + left_out, BURST + 1);
    assert!(logged < BURST / 2, "{logged} refusals logged of {BURST}");
}
