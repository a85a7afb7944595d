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
//! token, and with a working set of N distinct valid tokens (each verified once before the rounds, so that
//! what is measured is the cache; and its first token alone through the same script). The endpoints take
//! turns for `--rounds` rounds and
//! each figure is the median, so that a burst of other work skews one sample of each, not all of one. It reports
//! requests/s, p50/p99 latency, and the service's idle and peak RSS and time to first answer, and prints
//! `/verify` throughput as a ratio of the no-op's. Numbers are reported, not judged: this is a measurement, not a
//! test (`.ci/run` runs it for a few seconds as a smoke check so it cannot rot).
//!
//! `--prepare DIR` only writes the store, configuration, tokens and wrk scripts into DIR and prints how to start
//! the service on them: for profiling by hand (`valgrind --tool=callgrind`, `perf record`).

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::{Error, Load, Run, Service, binary, free_port, lua, median, prepare, rss_kib, wrk};

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
    // The first token alone, drawn by the same per-request Lua as the set: what the working set costs the gate,
    // without the difference between wrk's static request and its scripted one (which runs on the same cores).
    let one_file = dir.join("one-token.txt");
    std::fs::write(&one_file, tokens.first().ok_or("no token")?)?;

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
    lua(&dir.join("set1.lua"), "GET", &h_set, Some(&one_file))?;
    // The set's script, but going through the tokens in turn: one pass fills the cache before the rounds.
    let set_script = std::fs::read_to_string(dir.join("set.lua"))?;
    std::fs::write(
        dir.join("warm.lua"),
        set_script.replace(
            "return requests[math.random(#requests)]",
            "n = (n or 0) + 1\n  return requests[(n - 1) % #requests + 1]",
        ),
    )?;
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
        ("/verify 1 token, the set's script", "/verify", "set1.lua"),
    ];
    // Every token of the set verified once before anything is measured (a first verification checks the signature,
    // 81 µs; what is measured is the cache): each wrk thread goes through them in turn, about 20,000 a second.
    let warm = Load {
        threads: o.threads,
        connections: o.connections,
        seconds: (tokens.len() as u64 / 20_000).max(1) + 1,
    };
    wrk(
        &warm,
        "warm-up",
        &format!("{base}/verify"),
        &dir.join("warm.lua"),
    )?;
    // Rounds interleave the endpoints, and each figure is the median over the rounds: a burst of other work on
    // the machine then skews one sample of every endpoint, not every sample of one.
    let mut samples: Vec<Vec<Run>> = plan.iter().map(|_| Vec::new()).collect();
    for _ in 0..o.rounds.max(1) {
        for ((name, path, script), got) in plan.iter().zip(samples.iter_mut()) {
            let load = Load {
                threads: o.threads,
                connections: o.connections,
                seconds: o.seconds,
            };
            got.push(wrk(
                &load,
                name,
                &format!("{base}{path}"),
                &dir.join(script),
            )?);
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
    let [noop, noop_headers, valid, invalid, set, set1] = runs.as_slice() else {
        return Err("expected six runs".into());
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
        "/verify ({} tokens) throughput = {:.1}% of the no-op's, {:.1}% of one token's through the same script",
        tokens.len(),
        100.0 * set.rps / noop.rps,
        100.0 * set.rps / set1.rps
    );
    println!(
        "service RSS: idle {:.1} MiB, peak {:.1} MiB; first answer after {:.0} ms",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        ready.as_secs_f64() * 1000.0
    );
    if valid.non_2xx > 0
        || set.non_2xx > 0
        || set1.non_2xx > 0
        || invalid.rps > 0.0 && invalid.non_2xx == 0
    {
        return Err("unexpected answers: valid tokens must get 200 and the invalid one 401".into());
    }
    Ok(())
}
