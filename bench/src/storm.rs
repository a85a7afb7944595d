//! `bench-storm`: what an anonymous login storm costs the service, and what it leaves `/verify`.
//!
//! ```text
//! cargo run -p bench --release --bin bench-storm -- [--storm-seconds 60] [--after-seconds 30] [--verify-seconds 10]
//!                                                   [--connections 64] [--mode both|default|open] [--profile release|debug]
//! ```
//!
//! For each mode it starts the real `forwardauth-svc` binary (built first) on a free loopback port with one local
//! user, registers a client and opens one authorization request over HTTP (a session cookie, the form's handle
//! and CSRF token: everything an anonymous visitor gets), then:
//!
//! 1. loads `/verify` with a valid token for `--verify-seconds` (the baseline);
//! 2. runs the storm: `--connections` parallel wrong-password posts to `/login` for `--storm-seconds`, each a
//!    real form post that reaches the password check unless a limit stops it first, while `/verify` is loaded as
//!    in step 1 by a second `wrk`;
//! 3. waits `--after-seconds` idle.
//!
//! It reports the peak RSS (`VmHWM`), the RSS after the wait, `/verify` throughput during the storm as a ratio of
//! the baseline, and the storm's answers by status. Mode `default` runs the shipped configuration (rate limits
//! and regulation on: most posts are refused before any password check); mode `open` turns both off, so every
//! post asks for an argon2 check and only the bound on password checks stands between the storm and the
//! machine. Numbers are reported, not judged; the targets of issue 13 are printed beside them.

#![allow(clippy::print_stdout)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::{Error, Load, Service, binary, enc, free_port, lua, prepare, rss_kib, wrk};

struct Options {
    storm_seconds: u64,
    after_seconds: u64,
    verify_seconds: u64,
    connections: u32,
    modes: Vec<&'static str>,
    profile: String,
}

fn options() -> Result<Options, Error> {
    let mut o = Options {
        storm_seconds: 60,
        after_seconds: 30,
        verify_seconds: 10,
        connections: 64,
        modes: vec!["default", "open"],
        profile: "release".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--storm-seconds" => o.storm_seconds = value.parse()?,
            "--after-seconds" => o.after_seconds = value.parse()?,
            "--verify-seconds" => o.verify_seconds = value.parse()?,
            "--connections" => o.connections = value.parse()?,
            "--mode" => {
                o.modes = match value.as_str() {
                    "both" => vec!["default", "open"],
                    "default" => vec!["default"],
                    "open" => vec!["open"],
                    other => return Err(format!("unknown mode {other}").into()),
                }
            }
            "--profile" if value == "release" || value == "debug" => o.profile = value,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(o)
}

/// One HTTP/1.1 exchange over a fresh connection: status, raw head, body.
fn http(port: u16, request: &str) -> Result<(u16, String, String), Error> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    Ok((status, head.to_owned(), body.to_owned()))
}

fn hidden(html: &str, name: &str) -> Result<String, Error> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .ok_or_else(|| format!("no {name} field"))?
        + marker.len();
    let len = html
        .get(start..)
        .and_then(|r| r.find('"'))
        .ok_or("unterminated field")?;
    Ok(html.get(start..start + len).ok_or("field")?.to_owned())
}

/// A registered client and an open authorization request: the cookie and the body of a wrong-password post.
fn anonymous_visitor(port: u16, base: &str) -> Result<(String, String), Error> {
    let redirect = "http://127.0.0.1:9/callback";
    let reg = format!(
        "{{\"redirect_uris\":[\"{redirect}\"],\"token_endpoint_auth_method\":\"none\",\"grant_types\":[\"authorization_code\"]}}"
    );
    let (status, _, body) = http(
        port,
        &format!(
            "POST /register HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reg}",
            reg.len()
        ),
    )?;
    if status != 201 {
        return Err(format!("registration answered {status}: {body}").into());
    }
    let client: serde_json::Value = serde_json::from_str(&body)?;
    let client_id = client
        .get("client_id")
        .and_then(serde_json::Value::as_str)
        .ok_or("no client_id")?;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let target = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&resource={}",
        enc(client_id),
        enc(redirect),
        enc(&format!("{base}/mcp"))
    );
    let (status, head, page) = http(
        port,
        &format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )?;
    if status != 200 {
        return Err(format!("/authorize answered {status}").into());
    }
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .ok_or("no session cookie")?
        .to_owned();
    let body = format!(
        "handle={}&csrf={}&username=storm&password=wrong-password",
        enc(&hidden(&page, "handle")?),
        enc(&hidden(&page, "csrf")?)
    );
    Ok((cookie, body))
}

/// The storm's script: the form post, and a histogram of the answers printed when wrk is done.
fn storm_script(path: &Path, cookie: &str, body: &str) -> Result<(), Error> {
    let script = format!(
        r#"wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "{cookie}"
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {{}} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do io.write(string.format("status %d %d\n", status, n)) end
  end
end
"#
    );
    std::fs::write(path, script)?;
    Ok(())
}

struct Outcome {
    mode: &'static str,
    idle_kib: u64,
    peak_kib: u64,
    after_kib: u64,
    baseline_rps: f64,
    storm_verify_rps: f64,
    statuses: Vec<(u16, u64)>,
    storm_rps: f64,
}

fn run_mode(o: &Options, bin: &Path, mode: &'static str) -> Result<Outcome, Error> {
    let dir = std::env::temp_dir().join(format!("bench-storm-{}-{mode}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Runtime::new()?;
    let tokens = runtime.block_on(prepare(&dir, &base, 1))?;
    let hash = oauth_core::LocalUsers::hash_password("right").map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("users.toml"),
        format!("[[users]]\nusername = \"storm\"\npassword_hash = \"{hash}\"\n"),
    )?;
    let mut config = std::fs::read_to_string(dir.join("config.toml"))?;
    config.push_str("[users]\nfile = \"users.toml\"\n");
    if mode == "open" {
        config.push_str("[login]\nregulation = false\n[rate_limits]\nauthorize = 0\nlogin = 0\ncallback = 0\ntoken = 0\nregister = 0\n");
    }
    std::fs::write(dir.join("config.toml"), config)?;

    let started = Instant::now();
    let child = Command::new(bin)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("serve")
        .env_remove("RUST_LOG")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let svc = Service(child);
    let pid = svc.0.id();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the service did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let idle_kib = rss_kib(pid, "VmRSS:");

    let (cookie, body) = anonymous_visitor(port, &base)?;
    let token = tokens.first().ok_or("no token")?;
    let verify_headers = [
        ("X-Forwarded-Method", "POST".to_owned()),
        ("X-Forwarded-Proto", "http".to_owned()),
        ("X-Forwarded-Host", format!("127.0.0.1:{port}")),
        ("X-Forwarded-Uri", "/mcp".to_owned()),
        ("Authorization", format!("Bearer {token}")),
    ];
    lua(&dir.join("verify.lua"), "GET", &verify_headers, None)?;
    storm_script(&dir.join("storm.lua"), &cookie, &body)?;

    let verify_load = |seconds| Load {
        threads: 1,
        connections: 32,
        seconds,
    };
    let verify_url = format!("{base}/verify");
    let baseline = wrk(
        &verify_load(o.verify_seconds),
        "baseline",
        &verify_url,
        &dir.join("verify.lua"),
    )?;

    let storm_load = Load {
        threads: 1,
        connections: o.connections,
        seconds: o.storm_seconds,
    };
    let storm = std::thread::scope(|scope| {
        let storm = scope.spawn(|| {
            wrk(
                &storm_load,
                "storm",
                &format!("{base}/login"),
                &dir.join("storm.lua"),
            )
            .map_err(|e| e.to_string())
        });
        let during = wrk(
            &verify_load(o.storm_seconds),
            "during",
            &verify_url,
            &dir.join("verify.lua"),
        );
        (storm.join(), during)
    });
    let (storm, during) = storm;
    let storm = storm.map_err(|_| "the storm thread panicked")??;

    let during = during?;
    let peak_kib = rss_kib(pid, "VmHWM:");
    std::thread::sleep(Duration::from_secs(o.after_seconds));
    let after_kib = rss_kib(pid, "VmRSS:");
    drop(svc);
    let _ = std::fs::remove_dir_all(&dir);

    let mut statuses: Vec<(u16, u64)> = storm
        .output
        .lines()
        .filter_map(|l| {
            let mut parts = l.strip_prefix("status ")?.split_whitespace();
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect();
    statuses.sort_unstable();
    if during.non_2xx > 0 || baseline.non_2xx > 0 {
        return Err(format!(
            "{mode}: /verify answered non-2xx ({} before, {} during the storm)",
            baseline.non_2xx, during.non_2xx
        )
        .into());
    }
    Ok(Outcome {
        mode,
        idle_kib,
        peak_kib,
        after_kib,
        baseline_rps: baseline.rps,
        storm_verify_rps: during.rps,
        statuses,
        storm_rps: storm.rps,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> Result<(), Error> {
    let o = options()?;
    let bin = binary(&o.profile)?;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "bench-storm: {cores} cores, {} parallel wrong-password posts for {} s beside /verify (32 connections); RSS {} s after",
        o.connections, o.storm_seconds, o.after_seconds
    );
    for mode in &o.modes {
        let r = run_mode(&o, &bin, mode)?;
        println!("mode {}:", r.mode);
        println!(
            "  storm answers ({:.0}/s): {}",
            r.storm_rps,
            r.statuses
                .iter()
                .map(|(s, n)| format!("{s}×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  RSS: idle {:.1} MiB, peak {:.1} MiB (target ≤ 128), {} s after the storm {:.1} MiB (target ≤ 48)",
            mib(r.idle_kib),
            mib(r.peak_kib),
            o.after_seconds,
            mib(r.after_kib)
        );
        println!(
            "  /verify: {:.0} requests/s alone, {:.0} during the storm = {:.1}% (target ≥ 50%)",
            r.baseline_rps,
            r.storm_verify_rps,
            100.0 * r.storm_verify_rps / r.baseline_rps
        );
    }
    Ok(())
}
