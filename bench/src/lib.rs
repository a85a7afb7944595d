//! What the load benchmarks share: preparing a store with valid tokens, building and starting the real service
//! binary, reading its memory from `/proc`, and driving `wrk`.

#![allow(clippy::print_stdout, missing_docs)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use oauth_core::{
    AuthServer, Clock, EmbeddedStore, JosekitKeyManager, ResourceConfig, ServerConfig, Store,
    SystemClock,
};

pub type Error = Box<dyn std::error::Error>;

/// How hard and how long `wrk` loads.
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    pub seconds: u64,
}

/// Kills the service when dropped.
pub struct Service(pub Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Writes the store, config and token list; returns the valid tokens.
pub async fn prepare(dir: &Path, base: &str, n: usize) -> Result<Vec<String>, Error> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(
        dir.join("oauth.redb"),
        Arc::clone(&clock),
    )?);
    let resource = format!("{base}/mcp");
    let config = ServerConfig::new(
        base.to_owned(),
        vec![ResourceConfig::new(resource.clone(), vec!["mcp".into()])],
    );
    AuthServer::new(config, Arc::clone(&store), Arc::clone(&clock)).await?;
    let keys = JosekitKeyManager::load_or_generate(
        store.as_ref(),
        oauth_core::SigningAlg::Es256,
        clock.as_ref(),
    )
    .await?;
    let now = clock.unix();
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let claims = serde_json::json!({
            "iss": base, "sub": format!("local:user{i}"), "aud": resource, "client_id": "bench", "scope": "mcp",
            "exp": now + 3600, "iat": now, "jti": format!("bench-{i}"), "sid": "bench-grant", "preferred_username": format!("user{i}"),
        });
        let map = claims.as_object().ok_or("claims")?.clone();
        tokens.push(keys.sign(&map, now)?);
    }
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "listen = \"{}\"\nissuer = \"{base}\"\n[store]\npath = \"oauth.redb\"\n[[resources]]\nresource = \"{resource}\"\nscopes = [\"mcp\"]\n",
            base.trim_start_matches("http://")
        ),
    )?;
    Ok(tokens)
}

/// The service binary of `profile` (`release` for measurements; `debug` for the CI smoke, which reuses the test
/// build), built (or brought up to date: a stale binary would measure old code) first.
pub fn binary(profile: &str) -> Result<PathBuf, Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.args(["build", "--quiet", "-p", "forwardauth-svc"]);
    if profile == "release" {
        cargo.arg("--release");
    }
    if !cargo.current_dir(&root).status()?.success() {
        return Err("building forwardauth-svc failed".into());
    }
    Ok(target.join(profile).join("forwardauth-svc"))
}

pub fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub struct Run {
    /// What was loaded.
    pub name: String,
    /// Requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Answers that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// wrk's whole output (scripts may print more, e.g. a status histogram).
    pub output: String,
}

pub fn millis(text: &str) -> Option<f64> {
    let (num, unit) = text
        .trim()
        .split_at(text.trim().find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => return None,
    })
}

pub fn wrk(o: &Load, name: &str, url: &str, script: &Path) -> Result<Run, Error> {
    let out = Command::new("wrk")
        .args([
            "--latency",
            "-t",
            &o.threads.to_string(),
            "-c",
            &o.connections.to_string(),
            "-d",
            &format!("{}s", o.seconds),
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| format!("wrk (Debian package `wrk`) could not run: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
    };
    let rps = find("Requests/sec:")
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| format!("no throughput in wrk output:\n{text}"))?;
    let pct = |p: &str| {
        find(p)
            .and_then(|l| millis(l.split_whitespace().nth(1)?))
            .unwrap_or(f64::NAN)
    };
    let non_2xx = find("Non-2xx or 3xx responses:")
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0);
    Ok(Run {
        name: name.to_owned(),
        rps,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
        non_2xx,
        output: text.into_owned(),
    })
}

/// The median run of `runs` by throughput, with the median p50 and p99 (each taken on its own) and the
/// non-2xx answers summed.
pub fn median(mut runs: Vec<Run>) -> Option<Run> {
    let mid = runs.len() / 2;
    let non_2xx = runs.iter().map(|r| r.non_2xx).sum();
    let pick = |runs: &mut Vec<Run>, key: fn(&Run) -> f64| {
        runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
        runs.get(mid).map(key)
    };
    let p50_ms = pick(&mut runs, |r| r.p50_ms)?;
    let p99_ms = pick(&mut runs, |r| r.p99_ms)?;
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mut run = runs.into_iter().nth(mid)?;
    run.p50_ms = p50_ms;
    run.p99_ms = p99_ms;
    run.non_2xx = non_2xx;
    Some(run)
}

pub fn lua(
    path: &Path,
    method: &str,
    headers: &[(&str, String)],
    tokens: Option<&Path>,
) -> Result<(), Error> {
    let mut s = String::new();
    writeln!(s, "wrk.method = \"{method}\"")?;
    for (k, v) in headers {
        writeln!(s, "wrk.headers[\"{k}\"] = \"{v}\"")?;
    }
    if let Some(t) = tokens {
        writeln!(
            s,
            "local tokens = {{}}\nfor line in io.lines(\"{}\") do tokens[#tokens + 1] = line end",
            t.display()
        )?;
        writeln!(
            s,
            "request = function()\n  wrk.headers[\"Authorization\"] = \"Bearer \" .. tokens[math.random(#tokens)]\n  return wrk.format()\nend"
        )?;
    }
    std::fs::write(path, s)?;
    Ok(())
}
