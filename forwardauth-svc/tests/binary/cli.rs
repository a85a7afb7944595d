//! The command line as an operator meets it: every configuration error at once, with exit status 2 and no
//! backtrace even when one is asked for; `hash-password` from a pipe.

use std::io::Write as _;
use std::process::Stdio;

fn binary() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_forwardauth-svc"));
    for var in [
        "FORWARDAUTH_ISSUER",
        "FORWARDAUTH_LISTEN",
        "FORWARDAUTH_STORE_BACKEND",
        "FORWARDAUTH_LOG_FORMAT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Mistakes in five tables (one a wrong type, which the parser stops at) are all reported by one
/// `check-config`, and by `serve`, each naming the file and the key, with exit status 2 and no backtrace.
#[test]
fn every_configuration_error_is_reported_at_once_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        r#"listen = "not-an-address"
log_format = "xml"

[store]
backend = "floppy"

[tokens]
access_token_ttl_secs = "an hour"

[tracing]
otlp_endpoint = "grpc://127.0.0.1:4317"

[[resources]]
resource = "https://mcp.example.com/mcp"
scopes = ["mcp"]
"#,
    )
    .unwrap();
    for command in ["check-config", "serve"] {
        let out = binary()
            .arg("--config")
            .arg(&config)
            .arg(command)
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LIB_BACKTRACE", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let file = config.display().to_string();
        for (key, says) in [
            ("tokens.access_token_ttl_secs", "invalid type"),
            ("listen", "not a socket address"),
            ("log_format", "expected \"human\" or \"json\""),
            ("tracing.otlp_endpoint", "must be an http or https URL"),
            ("store.backend", "floppy"),
        ] {
            let prefix = format!("Error: {file}: {key}: ");
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&prefix) && l.contains(says)),
                "{command}: no `{prefix}…{says}…` in:\n{stderr}"
            );
        }
        assert_eq!(lines.len(), 5, "{command}: one line per problem:\n{stderr}");
        assert!(!stderr.contains("backtrace"), "{stderr}");
        assert!(!stderr.contains("Stack"), "{stderr}");
    }
}

/// From a pipe (not a terminal) `hash-password` reads one line, prompts nothing and echoes nothing.
#[test]
fn hash_password_reads_one_line_from_a_pipe() {
    let mut child = binary()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\nsecond line ignored\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(hash.lines().count(), 1);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let user = oauth_core::LocalUser::new("u", hash.trim_end());
    assert!(oauth_core::LocalUsers::new(vec![user]).is_ok());
    // An empty pipe is refused, with status 1.
    let out = binary()
        .arg("hash-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: empty password: type the password on stdin, then Enter\n"
    );
}

/// At a terminal (a pseudo-terminal from util-linux `script`), `hash-password` asks twice and echoes nothing;
/// two different entries hash nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_password_at_a_terminal_asks_twice_without_echo() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let at_terminal = |first: &'static str, second: &'static str| async move {
        let mut child = tokio::process::Command::new("script")
            .arg("-qec")
            .arg(format!(
                "{} hash-password",
                env!("CARGO_BIN_EXE_forwardauth-svc")
            ))
            .arg("/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("util-linux `script`");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = String::new();
        // Answers each prompt once it is shown.
        for (prompt, answer) in [("Password (not shown): ", first), ("Again: ", second)] {
            let shown = tokio::time::timeout(std::time::Duration::from_secs(20), async {
                let mut buf = [0u8; 256];
                while !seen.contains(prompt) {
                    let n = stdout.read(&mut buf).await.unwrap();
                    assert!(n > 0, "ended before {prompt:?}: {seen:?}");
                    seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
            .await;
            assert!(shown.is_ok(), "no prompt {prompt:?}: {seen:?}");
            // rpassword turns echo off just after writing the prompt: give it that moment.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            stdin
                .write_all(format!("{answer}\n").as_bytes())
                .await
                .unwrap();
        }
        let mut rest = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            stdout.read_to_string(&mut rest),
        )
        .await
        .expect("hash-password ends")
        .unwrap();
        drop(stdin);
        let _ = child.wait().await;
        seen + &rest
    };
    let out = at_terminal("tty-secret-1", "tty-secret-1").await;
    assert!(!out.contains("tty-secret-1"), "echoed: {out:?}");
    let hash = out
        .lines()
        .find(|l| l.starts_with("$argon2id$"))
        .unwrap_or_else(|| panic!("no hash in {out:?}"));
    let user = oauth_core::LocalUser::new("u", hash.trim_end());
    assert!(oauth_core::LocalUsers::new(vec![user]).is_ok());

    let out = at_terminal("tty-secret-2", "tty-secret-3").await;
    assert!(!out.contains("tty-secret"), "echoed: {out:?}");
    assert!(!out.contains("$argon2id$"), "{out:?}");
    assert!(
        out.contains("Error: the two passwords differ; nothing was hashed"),
        "{out:?}"
    );
}
