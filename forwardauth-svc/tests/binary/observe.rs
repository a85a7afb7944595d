//! Metrics and the audit trail of the real binary: one whole flow over HTTP (with failed logins and a ban, a
//! refresh, a revocation, a refresh-token reuse, a code replay, a policy refusal, a throttled registration, a
//! client updated and deleted), operators' commands through the running service's admin socket, then the metrics
//! listener scraped and the audit file read; then an operator's revocation from the command line on the stopped
//! service's store, audited too. Nothing secret may appear in either.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::metrics::{scrape, value};
use test_support::{authorize_url, field, free_port, verify};
use tokio::process::Command;

use super::{REDIRECT, VERIFIER, serve, write_config};

const UA: &str = "observe-test/1.0";
/// The client's address as the trusted proxy (loopback) forwards it.
const CLIENT: &str = "198.51.100.7";
/// Another client's address, that registers clients in a burst.
const REGISTRAR: &str = "203.0.113.9";

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

/// Who the audit trail says ran this test's admin commands: the user of this process, which the commands it
/// starts inherit (the admin socket reads it from their credentials; offline, the command line names itself).
#[cfg(unix)]
fn this_operator() -> Value {
    json!(format!("unix:uid={}", rustix::process::geteuid().as_raw()))
}

/// Off Unix no uid is named.
#[cfg(not(unix))]
fn this_operator() -> Value {
    Value::Null
}

/// The CLI on `config`, as an operator runs it: through the running service's admin socket when it serves one,
/// else on the store directly.
async fn admin_command(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_forwardauth-svc"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    out
}

/// One run of the real binary with metrics and the audit trail on, and everything counted or audited happening at
/// least once: a ban, a throttled request, a policy refusal, a code replay, a refresh-token reuse, a client
/// updated and deleted by itself (RFC 7592) and by an operator, and an operator's revocation over the running
/// service's admin socket; then the metrics scraped and the trail read, and, once the service stopped, a
/// revocation run on the store directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_is_counted_on_the_metrics_listener_and_written_to_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_port = free_port();
    // Two failures ban an account; two registrations a minute per address; only alice passes the policy.
    write_config(
        dir.path(),
        port,
        &format!(
            "[tokens]\nrefresh_grace_secs = 0\n\n[login]\nmax_failures_per_account = 2\n\n\
             [rate_limits]\nregister = 2\n\n[policy]\nallowed_users = [\"local:alice\"]\n\n\
             [audit]\ntarget = \"file\"\nfile = \"logs/audit.jsonl\"\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        ),
    );
    let users = dir.path().join("users.toml");
    let mut text = std::fs::read_to_string(&users).unwrap();
    let bob = oauth_core::LocalUsers::hash_password("builder").unwrap();
    text.push_str(&format!(
        "\n[[users]]\nusername = \"bob\"\npassword_hash = \"{bob}\"\n"
    ));
    std::fs::write(&users, text).unwrap();
    let config = dir.path().join("config.toml");
    let mut svc = serve(&config, Stdio::inherit()).await;
    let base = svc.announced.clone();
    let mcp = format!("{base}/mcp");
    let browser = || {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(UA)
            .build()
            .unwrap()
    };
    let http = browser();

    // The gate refuses a request without a token.
    assert_eq!(verify(&http, &base, &mcp, None).await.status(), 401);

    // From the proxy's own (loopback) address, or from the client `from` behind it.
    let register = |from: Option<&str>| {
        let mut req = http.post(format!("{base}/register"));
        if let Some(from) = from {
            req = req.header("X-Forwarded-For", from);
        }
        req
            .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}))
            .send()
    };
    let reg: Value = register(None).await.unwrap().json().await.unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let authorize = |state: &str| {
        authorize_url(
            &format!("{base}/authorize"),
            &client_id,
            REDIRECT,
            state,
            Some("mcp"),
            &mcp,
        )
    };
    let html = http
        .get(authorize("s-1").as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let handle = field(&html, "handle");
    let login =
        |http: &reqwest::Client, csrf: String, username: &'static str, password: &'static str| {
            http.post(format!("{base}/login"))
                .header("X-Forwarded-For", CLIENT)
                .form(&[
                    ("handle", handle.clone()),
                    ("csrf", csrf),
                    ("username", username.into()),
                    ("password", password.into()),
                ])
                .send()
        };
    // Someone guesses at mallory's account: the second failure bans it.
    let mut html = html;
    for _ in 0..2 {
        let failed = login(&http, field(&html, "csrf"), "mallory", "guess")
            .await
            .unwrap();
        assert_eq!(failed.status(), 401);
        html = failed.text().await.unwrap();
    }
    let failed = login(&http, field(&html, "csrf"), "alice", "not-the-password")
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);
    let html = failed.text().await.unwrap();
    let consent = login(&http, field(&html, "csrf"), "alice", "wonderland")
        .await
        .unwrap();
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.unwrap();
    let approve = |handle: String, csrf: String| {
        http.post(format!("{base}/consent"))
            .header("X-Forwarded-For", CLIENT)
            .form(&[
                ("handle", handle),
                ("csrf", csrf),
                ("decision", "approve".into()),
            ])
            .send()
    };
    let code_of = |approved: reqwest::Response| {
        assert_eq!(approved.status(), 302);
        let location = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
        let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
        q["code"].clone()
    };
    let code = code_of(approve(handle.clone(), field(&html, "csrf")).await.unwrap());

    let token = |form: Vec<(&'static str, String)>| {
        http.post(format!("{base}/token"))
            .header("X-Forwarded-For", CLIENT)
            .form(&form)
            .send()
    };
    let redeem = |code: &str| {
        token(vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.into()),
            ("code_verifier", VERIFIER.into()),
            ("client_id", client_id.clone()),
            ("resource", mcp.clone()),
        ])
    };
    let t0: Value = redeem(&code).await.unwrap().json().await.unwrap();
    let (a0, r0) = (
        t0["access_token"].as_str().unwrap().to_owned(),
        t0["refresh_token"].as_str().unwrap().to_owned(),
    );
    // Verified, then found in the verified-token cache.
    assert_eq!(verify(&http, &base, &mcp, Some(&a0)).await.status(), 200);
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
    // The code comes back too.
    let replayed = redeem(&code).await.unwrap();
    assert_eq!(replayed.status(), 400);
    assert_eq!(
        replayed.json::<Value>().await.unwrap()["error_description"],
        "the authorization code was already used; tokens issued from it are revoked"
    );

    // Alice, still signed in, authorizes the client again: a live grant for the operator to revoke.
    let page = http.get(authorize("s-2").as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let code2 = code_of(
        approve(field(&html, "handle"), field(&html, "csrf"))
            .await
            .unwrap(),
    );
    let t2: Value = redeem(&code2).await.unwrap().json().await.unwrap();
    let (a2, r2) = (
        t2["access_token"].as_str().unwrap().to_owned(),
        t2["refresh_token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(verify(&http, &base, &mcp, Some(&a2)).await.status(), 200);

    // Bob signs in, but the policy admits only alice: no code.
    let bob_http = browser();
    let html = bob_http
        .get(authorize("s-3").as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = bob_http
        .post(format!("{base}/login"))
        .header("X-Forwarded-For", CLIENT)
        .form(&[
            ("handle", field(&html, "handle")),
            ("csrf", field(&html, "csrf")),
            ("username", "bob".into()),
            ("password", "builder".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // Another address registers two clients, then a third within the minute: throttled.
    let managed: Value = register(Some(REGISTRAR))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let doomed: Value = register(Some(REGISTRAR))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let doomed_id = doomed["client_id"].as_str().unwrap().to_owned();
    let throttled = register(Some(REGISTRAR)).await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));

    // A client updates its registration, then deletes it (RFC 7592).
    let managed_id = managed["client_id"].as_str().unwrap().to_owned();
    let managed_uri = managed["registration_client_uri"].as_str().unwrap();
    let managed_token = managed["registration_access_token"].as_str().unwrap();
    let updated = http
        .put(managed_uri)
        .header("X-Forwarded-For", CLIENT)
        .bearer_auth(managed_token)
        .json(&json!({"client_id": managed_id, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    let managed_token2 = updated["registration_access_token"].as_str().unwrap();
    assert_ne!(managed_token, managed_token2);
    let deleted = http
        .delete(managed_uri)
        .header("X-Forwarded-For", CLIENT)
        .bearer_auth(managed_token2)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    // An operator deletes a client and revokes alice's grants through the running service's admin socket (the
    // store is the service's, locked: only the socket can do it); the gate refuses her token at once.
    admin_command(&config, &["clients", "delete", &doomed_id]).await;
    admin_command(&config, &["revoke", "--user", "local:alice"]).await;
    assert_eq!(verify(&http, &base, &mcp, Some(&a2)).await.status(), 401);

    // The metrics listener, and only it, serves the metrics.
    assert_eq!(
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let m = scrape(metrics_port).await;
    let at = |series: &str| value(&m, series);
    assert_eq!(at("forwardauth_codes_issued_total"), 2.0);
    assert_eq!(
        at(r#"forwardauth_tokens_issued_total{kind="authorization_code"}"#),
        2.0
    );
    assert_eq!(at("forwardauth_tokens_refreshed_total"), 1.0);
    assert_eq!(
        at(r#"forwardauth_tokens_revoked_total{kind="access_token"}"#),
        1.0
    );
    assert_eq!(
        at(r#"forwardauth_tokens_revoked_total{kind="grant"}"#),
        1.0,
        "the operator revoked alice's one live grant"
    );
    assert_eq!(
        at(r#"forwardauth_reuse_detections_total{kind="refresh_token"}"#),
        1.0
    );
    assert_eq!(
        at(r#"forwardauth_reuse_detections_total{kind="code"}"#),
        1.0
    );
    assert_eq!(
        at(r#"forwardauth_logins_total{outcome="failure",reason="wrong_credentials"}"#),
        3.0
    );
    assert_eq!(
        at(r#"forwardauth_logins_total{outcome="success",reason="ok"}"#),
        2.0,
        "alice, and bob (whom the policy then refused)"
    );
    assert_eq!(at(r#"forwardauth_login_bans_total{kind="account"}"#), 1.0);
    assert_eq!(
        at(r#"forwardauth_throttled_requests_total{endpoint="register"}"#),
        1.0
    );
    assert_eq!(at(r#"forwardauth_consents_total{kind="given"}"#), 2.0);
    let clients = |kind: &str| {
        at(&format!(
            r#"forwardauth_client_registrations_total{{kind="{kind}"}}"#
        ))
    };
    assert_eq!(clients("registered"), 3.0);
    assert_eq!(clients("updated"), 1.0);
    assert_eq!(clients("deleted"), 2.0);
    assert_eq!(
        at(r#"forwardauth_admin_actions_total{action="delete_client",result="ok"}"#),
        1.0
    );
    assert_eq!(
        at(r#"forwardauth_admin_actions_total{action="revoke_user",result="ok"}"#),
        1.0
    );
    assert!(
        !m.contains("unix:uid=") && !m.contains("actor="),
        "who acted is the audit trail's, never a label"
    );
    let gate = |decision: &str, reason: &str| {
        at(&format!(
            r#"forwardauth_gate_decisions_total{{resource="{mcp}",decision="{decision}",reason="{reason}"}}"#
        ))
    };
    assert_eq!(gate("allow", "ok"), 3.0);
    assert_eq!(gate("deny", "missing_token"), 1.0);
    assert_eq!(gate("deny", "invalid_token"), 2.0);
    let requests = |route: &str, status: u16| {
        at(&format!(
            r#"forwardauth_http_requests_total{{route="{route}",status="{status}"}}"#
        ))
    };
    assert_eq!(requests("/token", 200), 3.0);
    assert_eq!(requests("/token", 400), 2.0);
    assert_eq!(requests("/verify", 200), 3.0);
    assert_eq!(requests("/verify", 401), 3.0);
    assert_eq!(requests("/login", 401), 3.0);
    assert_eq!(requests("/login", 403), 1.0);
    assert_eq!(requests("/register", 201), 3.0);
    assert_eq!(requests("/register", 429), 1.0);
    assert_eq!(requests("/register/{client_id}", 200), 1.0);
    assert_eq!(requests("/register/{client_id}", 204), 1.0);
    assert_eq!(
        at(r#"forwardauth_store_operation_seconds_count{op="redeem_code"}"#),
        3.0
    );
    assert!(at(r#"forwardauth_store_operation_seconds_sum{op="redeem_code"}"#) > 0.0);
    // a0 was verified twice (a miss, then a hit), a2 once before its revocation and once after (a hit, refused).
    assert!(at("forwardauth_verify_cache_misses_total") >= 2.0);
    assert!(at("forwardauth_verify_cache_hits_total") >= 1.0);
    assert!(at("forwardauth_verify_cache_entries") >= 1.0);
    assert!(at("forwardauth_verify_cache_bytes") > 0.0);
    assert_eq!(
        at(&format!(
            r#"forwardauth_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    // One instance applies its own revocations as it makes them: no propagation to measure (see the instances
    // tests for two).
    assert!(m.contains("# TYPE forwardauth_revocation_propagation_seconds histogram"));
    assert_eq!(at("forwardauth_revocation_propagation_seconds_count"), 0.0);
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
    // `event` once, from the client behind the proxy with the test's user agent.
    let one = |event: &str| {
        let found = named(&lines, event);
        assert_eq!(found.len(), 1, "one {event} in {lines:#?}");
        let l = found[0].clone();
        assert_eq!(l["client_addr"], CLIENT, "{l}");
        assert_eq!(l["user_agent"], UA, "{l}");
        l
    };
    let failed: Vec<&Value> = named(&lines, "login_failed");
    let failed_by = |user: &str| {
        failed
            .iter()
            .filter(|l| l["username"] == user)
            .collect::<Vec<_>>()
    };
    assert_eq!(failed.len(), 3, "{lines:?}");
    assert_eq!(failed_by("mallory").len(), 2);
    let alice_failed = failed_by("alice");
    assert_eq!(alice_failed.len(), 1);
    for l in &failed {
        assert_eq!(l["reason"], "wrong_credentials");
        assert_eq!(l["outcome"], "failure");
        assert_eq!(l["client_addr"], CLIENT, "the client behind the proxy");
        assert_eq!(l["user_agent"], UA);
    }
    let ban = one("login_banned");
    assert_eq!(ban["username"], "mallory");
    assert_eq!(ban["banned"], "account");
    assert_eq!(ban["failures"], 2);
    assert_eq!(ban["outcome"], "failure");
    let ok = named(&lines, "login_succeeded");
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0]["subject"], "local:alice");
    assert_eq!(ok[0]["outcome"], "success");
    assert_eq!(ok[1]["subject"], "local:bob");
    let refusal = one("authorization_refused");
    assert_eq!(refusal["subject"], "local:bob");
    assert_eq!(refusal["client_id"], client_id.as_str());
    assert_eq!(refusal["reason"], "access_policy");
    assert_eq!(refusal["outcome"], "failure");
    let consent = named(&lines, "consent_given");
    assert_eq!(consent.len(), 2);
    assert_eq!(consent[0]["client_id"], client_id.as_str());
    assert_eq!(consent[0]["scope"], "mcp");
    let code_issued = named(&lines, "code_issued");
    assert_eq!(code_issued.len(), 2);
    assert_eq!(code_issued[0]["subject"], "local:alice");
    assert_eq!(code_issued[0]["resource"], mcp.as_str());
    let issued = named(&lines, "token_issued");
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[0]["grant_type"], "authorization_code");
    assert_eq!(issued[0]["client_addr"], CLIENT);
    assert_eq!(one("token_refreshed")["subject"], "local:alice");
    let revoked = named(&lines, "token_revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["token_type"], "access_token");
    assert_eq!(revoked[0]["subject"], "local:alice");
    let reuse = one("refresh_token_reused");
    assert_eq!(reuse["subject"], "local:alice");
    assert_eq!(reuse["client_id"], client_id.as_str());
    assert_eq!(reuse["outcome"], "failure");
    let replay = one("code_replayed");
    assert_eq!(replay["client_id"], client_id.as_str());
    assert_eq!(replay["subject"], Value::Null, "a code names no user");
    assert_eq!(replay["outcome"], "failure");
    let registered = named(&lines, "client_registered");
    let registered: Vec<(&str, &str)> = registered
        .iter()
        .map(|l| {
            (
                l["client_id"].as_str().unwrap(),
                l["client_addr"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        registered,
        [
            (client_id.as_str(), "127.0.0.1"),
            (managed_id.as_str(), REGISTRAR),
            (doomed_id.as_str(), REGISTRAR)
        ]
    );
    let update = one("client_updated");
    assert_eq!(update["client_id"], managed_id.as_str());
    assert_eq!(update["outcome"], "success");
    let deletions = named(&lines, "client_deleted");
    assert_eq!(deletions.len(), 2, "{lines:#?}");
    assert_eq!(deletions[0]["client_id"], managed_id.as_str());
    assert_eq!(deletions[0]["by"], "client");
    assert_eq!(deletions[0]["outcome"], "success");
    assert_eq!(deletions[0]["client_addr"], CLIENT);
    assert_eq!(deletions[0]["user_agent"], UA);
    assert_eq!(deletions[1]["client_id"], doomed_id.as_str());
    assert_eq!(deletions[1]["by"], "operator");
    assert_eq!(
        deletions[1]["client_addr"],
        Value::Null,
        "no request behind it"
    );
    assert_eq!(deletions[1]["user_agent"], Value::Null);
    let throttled = named(&lines, "throttled");
    assert_eq!(throttled.len(), 1, "{lines:#?}");
    assert_eq!(throttled[0]["endpoint"], "register");
    assert_eq!(throttled[0]["outcome"], "failure");
    assert_eq!(throttled[0]["client_addr"], REGISTRAR);
    assert_eq!(throttled[0]["user_agent"], UA);
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
    assert_eq!(
        gate,
        [
            ("deny", "missing_token"),
            ("deny", "invalid_token"),
            ("deny", "invalid_token")
        ]
    );
    // The operator's actions, written by the running service.
    let admin = named(&lines, "admin");
    let admin: Vec<(&str, &str, &str, u64)> = admin
        .iter()
        .map(|l| {
            assert_eq!(l["client_addr"], Value::Null, "no request behind it: {l}");
            assert_eq!(l["user_agent"], Value::Null, "{l}");
            assert_eq!(l["outcome"], "success", "{l}");
            assert_eq!(l["actor"], this_operator(), "the socket's peer ran it: {l}");
            (
                l["action"].as_str().unwrap(),
                l["target"].as_str().unwrap(),
                l["result"].as_str().unwrap(),
                l["grants"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        admin,
        [
            ("delete_client", doomed_id.as_str(), "ok", 0),
            ("revoke_user", "local:alice", "ok", 1)
        ]
    );
    let revoke_user = named(&lines, "admin")[1].clone();
    assert_eq!(revoke_user["subject"], "local:alice");
    assert_eq!(named(&lines, "admin")[0]["client_id"], doomed_id.as_str());

    // An operator revokes the user's grants from the command line once the service is stopped: on the store.
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
    admin_command(&config, &["revoke", "--user", "local:alice"]).await;
    let lines = audit_lines(&audit);
    let admin = named(&lines, "admin");
    assert_eq!(admin.len(), 3, "{lines:?}");
    assert_eq!(admin[2]["action"], "revoke_user");
    assert_eq!(admin[2]["target"], "local:alice");
    assert_eq!(admin[2]["subject"], "local:alice");
    assert_eq!(admin[2]["result"], "ok");
    assert_eq!(admin[2]["outcome"], "success");
    assert_eq!(admin[2]["grants"], 0, "the running service revoked them");
    assert_eq!(admin[2]["client_addr"], Value::Null, "no request behind it");
    assert_eq!(
        admin[2]["actor"],
        this_operator(),
        "the command line names its own user on the store it opened"
    );

    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in [
        code.as_str(),
        &code2,
        &a0,
        &r0,
        &a1,
        &r1,
        &a2,
        &r2,
        "wonderland",
        "not-the-password",
        "builder",
        "guess",
        reg["registration_access_token"].as_str().unwrap(),
        managed_token,
        managed_token2,
        doomed["registration_access_token"].as_str().unwrap(),
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
