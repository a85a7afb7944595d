//! `bench-writes`: what the write path costs, and what the store does at scale, on the real service binary.
//!
//! ```text
//! cargo run -p bench --release --bin bench-writes -- [--scenario all|register|refresh|growth|mixed|start]...
//!     [--seconds 10] [--connections 32] [--threads 2] [--grants 100] [--refreshes 100000]
//!     [--mixed-seconds 60] [--warmup-seconds 10] [--access-ttl 60] [--clients 1000000] [--starts 3]
//!     [--idle-seconds 5]
//!     [--profile release|debug]
//! ```
//!
//! Every scenario prepares its own store in a fresh directory, starts the real `forwardauth-svc` binary (built
//! first, so it is never stale) on a free loopback port with its default log level, a local user, and the rate
//! limits and the client cap turned off (the load comes from one address, which the limits exist to stop), and
//! stops it afterwards. Grants are made in process through the engine's public API before the service starts
//! (see `flow`); everything measured goes through HTTP. Server CPU is the service's user and system time from
//! `/proc/PID/stat` around the load, per request.
//!
//! * `register`: `POST /register` under `wrk` for `--seconds`: requests/s, latency, CPU per registration.
//! * `refresh`: the refresh grant under `wrk` for `--seconds`, on `--grants` grants, each request carrying the
//!   latest token of its grant (rotation): requests/s, latency, CPU per refresh.
//! * `growth`: `--grants` grants refreshed in turn, `--refreshes` refreshes in all, over keep-alive connections:
//!   the store file's size after the first `--grants` refreshes (one per grant) and after all of them, per live
//!   grant and per refresh.
//! * `mixed`: register, authorize (to a code), code exchange, refresh and revoke at once under `wrk` for
//!   `--mixed-seconds`, the service's RSS sampled every second: peak, and the spread after `--warmup-seconds`.
//!   Access tokens live `--access-ttl` seconds: a revoked grant's tokens stay in the revocation set until they
//!   expire, so that set (and the RSS) only settles one access-token lifetime into the load; with the default
//!   hour, a ten-minute run would measure the set filling, not a steady state.
//! * `start`: `--clients` registered clients written straight into a store through `Store::insert_client`
//!   (many at once), then the service started `--starts` times on it: time to the first `/health` answer, and
//!   RSS and CPU `--idle-seconds` later.
//!
//! `--scenario` may be given several times; `all` (the default) runs every scenario in the order above.
//! Numbers are reported, not judged; the issue's targets are printed beside them. `.ci/run` runs every scenario
//! for a second or two on the debug build so that none can rot.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod flow;
mod growth;
mod load;
mod mixed;
mod start;

use std::path::PathBuf;

use bench::{Error, Load, Run, binary, free_port, ticks_per_second, write_config};

/// The registration body of every seeded client in `start`, the same as `register.lua`'s and `mixed.lua`'s.
const REGISTER_BODY: &str =
    r#"{"redirect_uris":["http://127.0.0.1:9999/callback"],"client_name":"wrk-bench"}"#;

/// Every scenario's service: a local user, and nothing that would refuse load from one address.
const OPEN: &str = "[users]\nfile = \"users.toml\"\n\
    [rate_limits]\nauthorize = 0\nlogin = 0\ncallback = 0\ntoken = 0\nregister = 0\n\
    [registration]\nmax_clients = 0\n";

const SCENARIOS: [&str; 5] = ["register", "refresh", "growth", "mixed", "start"];

struct Options {
    scenarios: Vec<&'static str>,
    seconds: u64,
    connections: u32,
    threads: u32,
    grants: usize,
    refreshes: u64,
    mixed_seconds: u64,
    warmup_seconds: u64,
    access_ttl: u64,
    clients: u64,
    starts: u32,
    idle_seconds: u64,
    profile: String,
}

fn options() -> Result<Options, Error> {
    let mut o = Options {
        scenarios: Vec::new(),
        seconds: 10,
        connections: 32,
        threads: 2,
        grants: 100,
        refreshes: 100_000,
        mixed_seconds: 60,
        warmup_seconds: 10,
        access_ttl: 60,
        clients: 1_000_000,
        starts: 3,
        idle_seconds: 5,
        profile: "release".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scenario" if value == "all" => o.scenarios.extend(SCENARIOS),
            "--scenario" => o.scenarios.push(
                SCENARIOS
                    .into_iter()
                    .find(|s| *s == value)
                    .ok_or_else(|| format!("unknown scenario {value}"))?,
            ),
            "--seconds" => o.seconds = value.parse()?,
            "--connections" => o.connections = value.parse()?,
            "--threads" => o.threads = value.parse()?,
            "--grants" => o.grants = value.parse()?,
            "--refreshes" => o.refreshes = value.parse()?,
            "--mixed-seconds" => o.mixed_seconds = value.parse()?,
            "--warmup-seconds" => o.warmup_seconds = value.parse()?,
            "--access-ttl" => o.access_ttl = value.parse()?,
            "--clients" => o.clients = value.parse()?,
            "--starts" => o.starts = value.parse()?,
            "--idle-seconds" => o.idle_seconds = value.parse()?,
            "--profile" if value == "release" || value == "debug" => o.profile = value,
            other => return Err(format!("unknown option {other} {value}").into()),
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios.extend(SCENARIOS);
    }
    o.threads = o.threads.clamp(1, o.connections.max(1));
    if o.grants < o.connections as usize {
        return Err(
            "--grants must be at least --connections (each connection refreshes its own grant)"
                .into(),
        );
    }
    Ok(o)
}

/// What every scenario shares: the options, the binary, a runtime for the engine, the users file.
struct Bench {
    o: Options,
    bin: PathBuf,
    runtime: tokio::runtime::Runtime,
    users: String,
    ticks: f64,
}

/// A fresh directory with the service's configuration, a free port, and the base URL; removed when dropped.
struct Workspace {
    dir: PathBuf,
    port: u16,
    base: String,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Workspace {
    fn store_bytes(&self) -> u64 {
        std::fs::metadata(self.dir.join("oauth.redb")).map_or(0, |m| m.len())
    }

    fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

impl Bench {
    fn workspace(&self, scenario: &str) -> Result<Workspace, Error> {
        let dir =
            std::env::temp_dir().join(format!("bench-writes-{}-{scenario}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let ws = Workspace {
            base: format!("http://127.0.0.1:{port}"),
            dir,
            port,
        };
        std::fs::write(ws.dir.join("users.toml"), &self.users)?;
        write_config(&ws.dir, &ws.base, OPEN)?;
        Ok(ws)
    }

    fn load(&self, seconds: u64) -> Load {
        Load {
            threads: self.o.threads,
            connections: self.o.connections,
            seconds,
        }
    }

    /// Milliseconds of CPU per request from two [`cpu_ticks`] readings.
    fn cpu_ms(&self, ticks: u64, requests: u64) -> f64 {
        ticks as f64 / self.ticks * 1000.0 / requests.max(1) as f64
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn latency(run: &Run) -> String {
    format!(
        "{:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} non-2xx of {}",
        run.rps,
        run.p50_ms,
        run.p99_ms,
        run.non_2xx,
        thousands(run.requests)
    )
}

fn main() -> Result<(), Error> {
    let o = options()?;
    let bin = binary(&o.profile)?;
    let users = format!(
        "[[users]]\nusername = \"{}\"\npassword_hash = \"{}\"\n",
        flow::USER,
        oauth_core::LocalUsers::hash_password("bench-password")?
    );
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "bench-writes: {cores} cores (wrk and the service share them), {} build, {} connections, {} wrk threads",
        o.profile, o.connections, o.threads
    );
    let b = Bench {
        o,
        bin,
        runtime: tokio::runtime::Runtime::new()?,
        users,
        ticks: ticks_per_second(),
    };
    for scenario in &b.o.scenarios {
        match *scenario {
            "register" => load::register(&b)?,
            "refresh" => load::refresh(&b)?,
            "growth" => growth::growth(&b)?,
            "mixed" => mixed::mixed(&b)?,
            _ => start::start(&b)?,
        }
    }
    Ok(())
}
