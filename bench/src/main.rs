//! `bench-verify`: how much `/verify` costs next to the HTTP stack's own ceiling, on this machine, in one run.
//!
//! ```text
//! cargo run -p bench --release --bin bench-verify -- [--seconds 10] [--connections 64] [--threads 2] [--tokens 10000]
//!                                                    [--rounds 3] [--profile release|debug] [--prepare DIR]
//! ```
//!
//! It prepares a store with the real engine (a client, a grant, and N distinct access tokens signed with the
//! store's own key), starts the real `forwardauth-svc` binary (built first, so it is never stale) on a free
//! loopback port with its default log level, and loads it with `wrk` (Debian package) from a second process:
//! `/health` (a no-op endpoint of the same server: the ceiling), `/health` again with the very request headers of
//! the `/verify` run (the ceiling for a request of that size), `/verify` with one valid token, with an invalid
//! token, and with a working set of N distinct valid tokens. The endpoints take turns for `--rounds` rounds and
//! each figure is the median, so that a burst of other work skews one sample of each, not all of one. It reports
//! requests/s, p50/p99 latency, and the service's idle and peak RSS and time to first answer, and prints
//! `/verify` throughput as a ratio of the no-op's. Numbers are reported, not judged: this is a measurement, not a
//! test (`.ci/run` runs it for a few seconds as a smoke check so it cannot rot).
//!
//! `--prepare DIR` only writes the store, configuration, tokens and wrk scripts into DIR and prints how to start
//! the service on them: for profiling by hand (`valgrind --tool=callgrind`, `perf record`).

#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::{
    AuthServer, Clock, EmbeddedStore, JosekitKeyManager, ResourceConfig, ServerConfig, Store,
    SystemClock,
};

type Error = Box<dyn std::error::Error>;

struct Options {
    seconds: u64,
    connections: u32,
    threads: u32,
    tokens: usize,
    profile: String,
    /// Only write the store, config, tokens and wrk scripts into this directory (for profiling by hand).
    prepare: Option<PathBuf>,
    /// Rounds over all endpoints; each figure is the median.
    rounds: u32,
}

fn options() -> Result<Options, Error> {
    let mut o = Options {
        seconds: 10,
        connections: 64,
        threads: 2,
        tokens: 10_000,
        profile: "release".into(),
        prepare: None,
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => o.seconds = value.parse()?,
            "--connections" => o.connections = value.parse()?,
            "--threads" => o.threads = value.parse()?,
            "--tokens" => o.tokens = value.parse()?,
            "--profile" if value == "release" || value == "debug" => o.profile = value,
            "--prepare" => o.prepare = Some(PathBuf::from(value)),
            "--rounds" => o.rounds = value.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(o)
}

/// Kills the service when dropped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Writes the store, config and token list; returns the valid tokens.
async fn prepare(dir: &Path, base: &str, n: usize) -> Result<Vec<String>, Error> {
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
fn binary(profile: &str) -> Result<PathBuf, Error> {
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

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Run {
    name: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn millis(text: &str) -> Option<f64> {
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

fn wrk(o: &Options, name: &str, url: &str, script: &Path) -> Result<Run, Error> {
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
    })
}

/// The median run of `runs` by throughput, with the median p50 and p99 (each taken on its own) and the
/// non-2xx answers summed.
fn median(mut runs: Vec<Run>) -> Option<Run> {
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

fn lua(
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

#[tokio::main]
async fn main() -> Result<(), Error> {
    let o = options()?;
    let dir = o.prepare.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("bench-verify-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let tokens = prepare(&dir, &base, o.tokens.max(1)).await?;
    let token_file = dir.join("tokens.txt");
    std::fs::write(&token_file, tokens.join("\n"))?;

    let forwarded = [
        ("X-Forwarded-Method", "POST"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", &format!("127.0.0.1:{port}")),
        ("X-Forwarded-Uri", "/mcp"),
    ];
    let valid = format!("Bearer {}", tokens.first().ok_or("no token")?);
    let with = |extra: (&'static str, String)| {
        let mut h: Vec<(&str, String)> = forwarded
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        h.push(extra);
        h
    };
    let h_valid = with(("Authorization", valid));
    let h_invalid = with(("Authorization", "Bearer not-a-valid-token".to_owned()));
    let h_set: Vec<(&str, String)> = forwarded
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    lua(&dir.join("noop.lua"), "GET", &[], None)?;
    lua(&dir.join("noop_headers.lua"), "GET", &h_valid, None)?;
    lua(&dir.join("valid.lua"), "GET", &h_valid, None)?;
    lua(&dir.join("invalid.lua"), "GET", &h_invalid, None)?;
    lua(&dir.join("set.lua"), "GET", &h_set, Some(&token_file))?;
    if o.prepare.is_some() {
        println!(
            "prepared {}: run `forwardauth-svc --config {}/config.toml serve`, then e.g. \
             `wrk -s {}/valid.lua {base}/verify` (noop.lua: {base}/health)",
            dir.display(),
            dir.display(),
            dir.display()
        );
        return Ok(());
    }

    let bin = binary(&o.profile)?;
    let started = Instant::now();
    let child = Command::new(&bin)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("serve")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let svc = Service(child);
    let pid = svc.0.id();
    let ready = loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the service did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kib(pid, "VmRSS:");

    let set_name = format!("/verify {} distinct tokens", tokens.len());
    let plan = [
        ("no-op (/health)", "/health", "noop.lua"),
        (
            "no-op, /verify's request headers",
            "/health",
            "noop_headers.lua",
        ),
        ("/verify valid token", "/verify", "valid.lua"),
        ("/verify invalid token", "/verify", "invalid.lua"),
        (set_name.as_str(), "/verify", "set.lua"),
    ];
    // Rounds interleave the endpoints, and each figure is the median over the rounds: a burst of other work on
    // the machine then skews one sample of every endpoint, not every sample of one.
    let mut samples: Vec<Vec<Run>> = plan.iter().map(|_| Vec::new()).collect();
    for _ in 0..o.rounds.max(1) {
        for ((name, path, script), got) in plan.iter().zip(samples.iter_mut()) {
            got.push(wrk(&o, name, &format!("{base}{path}"), &dir.join(script))?);
        }
    }
    let runs: Vec<Run> = samples
        .into_iter()
        .map(median)
        .collect::<Option<_>>()
        .ok_or("no runs")?;
    let peak = rss_kib(pid, "VmHWM:");
    drop(svc);
    let _ = std::fs::remove_dir_all(&dir);

    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "bench-verify: {cores} cores, {} connections, {} wrk threads, {} s per run, median of {} rounds",
        o.connections,
        o.threads,
        o.seconds,
        o.rounds.max(1)
    );
    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>10}",
        "endpoint", "requests/s", "p50 ms", "p99 ms", "non-2xx"
    );
    for r in &runs {
        println!(
            "{:<34} {:>12.0} {:>10.3} {:>10.3} {:>10}",
            r.name, r.rps, r.p50_ms, r.p99_ms, r.non_2xx
        );
    }
    let [noop, noop_headers, valid, invalid, set] = runs.as_slice() else {
        return Err("expected five runs".into());
    };
    println!(
        "/verify (valid) throughput = {:.1}% of the no-op's; p99 = {:.2}x the no-op's",
        100.0 * valid.rps / noop.rps,
        valid.p99_ms / noop.p99_ms
    );
    println!(
        "/verify (valid) throughput = {:.1}% of the no-op's with the same request headers; p99 = {:.2}x",
        100.0 * valid.rps / noop_headers.rps,
        valid.p99_ms / noop_headers.p99_ms
    );
    println!(
        "/verify ({} tokens) throughput = {:.1}% of the no-op's",
        tokens.len(),
        100.0 * set.rps / noop.rps
    );
    println!(
        "service RSS: idle {:.1} MiB, peak {:.1} MiB; first answer after {:.0} ms",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        ready.as_secs_f64() * 1000.0
    );
    if valid.non_2xx > 0 || set.non_2xx > 0 || invalid.rps > 0.0 && invalid.non_2xx == 0 {
        return Err("unexpected answers: valid tokens must get 200 and the invalid one 401".into());
    }
    Ok(())
}
