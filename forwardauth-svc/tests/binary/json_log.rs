//! The JSON log of the real binary at the default level: the access line carries `micros` as a number, the
//! client's address (the one a trusted proxy names in `X-Forwarded-For`) and the user agent; every refusal at
//! `/verify` is logged with its reason, a forged `alg: none` token included, and never with the token; forwarded
//! headers from an address that is not a trusted proxy are a warning.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use super::{Running, free_port, write_config};

/// Reads JSON lines from the log until `want` has matched one line each (in any order), or 20 s have passed;
/// every line is checked by `never` first. Returns the matching lines, in the order of `want`.
async fn lines_matching(
    log: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    want: &[&dyn Fn(&Value) -> bool],
    never: &dyn Fn(&str),
) -> Vec<Option<Value>> {
    let mut found: Vec<Option<Value>> = vec![None; want.len()];
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = log.next_line().await.unwrap() {
            never(&line);
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            for (i, w) in want.iter().enumerate() {
                if found[i].is_none() && w(&v) {
                    found[i] = Some(v.clone());
                }
            }
            if found.iter().all(Option::is_some) {
                return;
            }
        }
    })
    .await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_and_gate_refusals_at_the_default_level() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // 127.0.0.1 is the proxy; 127.0.0.2 is someone else on the host.
    write_config(
        dir.path(),
        port,
        "[gate]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forwardauth-svc"));
    cmd.arg("--config")
        .arg(dir.path().join("config.toml"))
        .arg("--log-format")
        .arg("json")
        .arg("serve")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped());
    let mut svc = Running::start(cmd, "forwardauth-svc listening on ").await;
    let mut log = BufReader::new(svc.child.stderr.take().unwrap()).lines();
    let base = svc.announced.clone();
    let http = reqwest::Client::new();

    // From a client behind the proxy (the test's loopback address is a trusted proxy by default).
    let metadata = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .header("User-Agent", "json-log-test/1.0 (probe)")
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), 200);

    let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJsb2NhbDptYWxsb3J5In0.";
    let verify = |token: Option<&'static str>| {
        let mut req = http
            .get(format!("{base}/verify"))
            .header("X-Forwarded-Method", "POST")
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", format!("127.0.0.1:{port}"))
            .header("X-Forwarded-Uri", "/mcp")
            .header("X-Forwarded-For", "198.51.100.9");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(verify(Some(forged)).await.unwrap().status(), 401);
    assert_eq!(verify(None).await.unwrap().status(), 401);
    // A request for a URL no resource covers: refused with 403.
    let no_resource = http
        .get(format!("{base}/verify"))
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", "elsewhere.example")
        .header("X-Forwarded-Uri", "/other")
        .send()
        .await
        .unwrap();
    assert_eq!(no_resource.status(), 403);
    // Forwarded headers from an address that is not a trusted proxy.
    let stranger = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let untrusted = stranger
        .get(format!("{base}/verify"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", format!("127.0.0.1:{port}"))
        .header("X-Forwarded-Uri", "/mcp")
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(untrusted.status(), 403);

    let message = |v: &Value| v["fields"]["message"].as_str().unwrap_or("").to_owned();
    let access = |v: &Value| {
        message(v) == "request" && v["span"]["path"] == "/.well-known/oauth-authorization-server"
    };
    let forged_refusal = |v: &Value| {
        message(v) == "gate refused the request" && v["fields"]["error"] == "invalid_token"
    };
    let missing = |v: &Value| {
        message(v) == "gate refused the request" && v["fields"]["error"] == "unauthorized"
    };
    let refused =
        |v: &Value| message(v) == "gate refused the request" && v["fields"]["status"] == 403;
    let warned =
        |v: &Value| message(v) == "gate refused forwarded headers from an untrusted address";
    let found = lines_matching(
        &mut log,
        &[&access, &forged_refusal, &missing, &refused, &warned],
        &|line| assert!(!line.contains(forged), "the token reached the log: {line}"),
    )
    .await;
    let [access, forged_refusal, missing, refused, warned] =
        <[Option<Value>; 5]>::try_from(found).unwrap();

    let access = access.expect("an access line for the metadata request");
    assert_eq!(access["level"], "INFO");
    assert!(access["fields"]["micros"].is_u64(), "{access}");
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["fields"]["client"], "203.0.113.7");
    assert_eq!(access["fields"]["user_agent"], "json-log-test/1.0 (probe)");

    let forged_refusal = forged_refusal.expect("the forged token's refusal is logged");
    assert_eq!(forged_refusal["level"], "INFO");
    assert_eq!(forged_refusal["fields"]["status"], 401);
    assert_eq!(forged_refusal["fields"]["client"], "198.51.100.9");
    let reason = forged_refusal["fields"]["reason"].as_str().unwrap();
    assert!(!reason.is_empty(), "{forged_refusal}");

    let missing = missing.expect("a request without a token is logged");
    assert_eq!(missing["fields"]["reason"], "no bearer token");

    let refused = refused.expect("a 403 refusal is logged");
    assert_eq!(
        refused["fields"]["reason"],
        "no protected resource is configured for this URL"
    );

    let warned = warned.expect("forwarded headers from a stranger are a warning");
    assert_eq!(warned["level"], "WARN");
    assert_eq!(warned["fields"]["client"], "127.0.0.2");
    assert_eq!(warned["fields"]["status"], 403);
}
