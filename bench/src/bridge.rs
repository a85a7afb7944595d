//! `bench-bridge`: what `mcp-bridge` adds to a stdio MCP server's `tools/call`, and what it holds in memory.
//!
//! ```text
//! cargo run -p bench --release --bin bench-bridge -- [--calls 5000] [--warmup 200] [--users 50] [--entities 20]
//!                                                    [--rounds 5] [--tool read_graph|search_nodes] [--profile release|debug]
//! ```
//!
//! The stdio server is the end-to-end tests' `@modelcontextprotocol/server-memory` (`npm ci --prefix tests/js`),
//! run by `node`, its graph seeded with `--entities` entities. The same `--calls` calls (`tools/call` of `--tool`,
//! one at a time, after `--warmup` untimed ones) are made three ways, which take turns in `--rounds` blocks (so
//! that other work on the machine, and the server's JIT warming up, fall on all three alike):
//!
//! 1. **direct**: newline-delimited JSON-RPC to the server's stdin and from its stdout, over pipes, as the bridge
//!    itself talks to it: the floor;
//! 2. **bridge, JSON**: HTTP POSTs to `mcp-bridge -- node …server-memory…` (built first, `--profile`) on a free
//!    loopback port, the user in `X-User-Id` from 127.0.0.1 (a trusted proxy by default), kept-alive
//!    connection, `Accept: application/json` (answers with a `Content-Length`);
//! 3. **bridge, SSE**: the same with `Accept: application/json, text/event-stream`, as the official SDK clients
//!    send it (each answer a one-event SSE stream, chunked).
//!
//! Latency is each call's wall time at the client (p50, p99); the bridge's added latency is the difference to
//! direct. CPU per call is the process's `utime + stime` delta over the timed calls (`/proc/PID/stat`, clock
//! ticks: the totals are printed so their resolution shows), for the bridge and for the server process behind it.
//! Memory: the bridge's own `VmRSS` with no process, with one user's process, and after `--users` users each
//! opened a session (`initialize`, which starts their process) and made one call; the server processes' `VmRSS`
//! is summed apart (each counts the pages it shares with the others, so the sum overstates their total). Numbers
//! are reported, not judged.

#![allow(clippy::print_stdout)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bench::{
    Conn, Error, Service, cpu_ticks, free_port, rss_kib, ticks_per_second, workspace_binary,
};
use serde_json::{Value, json};

struct Options {
    calls: usize,
    warmup: usize,
    users: usize,
    entities: usize,
    rounds: usize,
    tool: String,
    profile: String,
}

fn options() -> Result<Options, Error> {
    let mut o = Options {
        calls: 5000,
        warmup: 200,
        users: 50,
        entities: 20,
        rounds: 5,
        tool: "read_graph".into(),
        profile: "release".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--calls" => o.calls = value.parse()?,
            "--warmup" => o.warmup = value.parse()?,
            "--users" => o.users = value.parse()?,
            "--entities" => o.entities = value.parse()?,
            "--rounds" => o.rounds = value.parse()?,
            "--tool" if value == "read_graph" || value == "search_nodes" => o.tool = value,
            "--profile" if value == "release" || value == "debug" => o.profile = value,
            other => return Err(format!("unknown option {other} {value}").into()),
        }
    }
    if o.calls == 0 || o.users == 0 || o.rounds == 0 {
        return Err("--calls, --users and --rounds must be at least 1".into());
    }
    Ok(o)
}

const PROTOCOL_VERSION: &str = "2025-06-18";

fn initialize_params() -> Value {
    json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "bench-bridge", "version": "1"},
    })
}

/// The timed call's parameters.
fn call_params(o: &Options) -> Value {
    match o.tool.as_str() {
        "search_nodes" => json!({"name": "search_nodes", "arguments": {"query": "entity-1"}}),
        _ => json!({"name": "read_graph", "arguments": {}}),
    }
}

/// `create_entities` with `n` entities of three observations each: the graph the calls read.
fn seed_params(n: usize) -> Value {
    let entities: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "name": format!("entity-{i}"),
                "entityType": "benchmark",
                "observations": [format!("observation {i}.a"), format!("observation {i}.b"), format!("observation {i}.c")],
            })
        })
        .collect();
    json!({"name": "create_entities", "arguments": {"entities": entities}})
}

/// A JSON-RPC answer's result, or its error as an error.
fn result_of(answer: Value) -> Result<Value, Error> {
    if let Some(error) = answer.get("error") {
        return Err(format!("JSON-RPC error: {error}").into());
    }
    match answer.get("result") {
        Some(result) if result.get("isError") == Some(&Value::Bool(true)) => {
            Err(format!("the tool failed: {result}").into())
        }
        Some(result) => Ok(result.clone()),
        None => Err(format!("no result in {answer}").into()),
    }
}

/// The stdio server over pipes, spoken to as the bridge speaks to it: one JSON-RPC message a line.
struct Direct {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Direct {
    fn start(node: &Path, server: &Path, memory_file: &Path) -> Result<Self, Error> {
        let mut child = Command::new(node)
            .arg(server)
            .env("MEMORY_FILE_PATH", memory_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Direct {
            child,
            stdin: Some(stdin),
            stdout,
            next_id: 1,
        })
    }

    fn send(&mut self, message: &Value) -> Result<(), Error> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        stdin.write_all(&line)?;
        stdin.flush()?;
        Ok(())
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line)? == 0 {
                return Err("the server closed its stdout".into());
            }
            let message: Value = serde_json::from_str(&line)?;
            // Notifications (and anything else) in between are skipped.
            if message.get("id") == Some(&json!(id)) {
                return result_of(message);
            }
        }
    }

    fn notify(&mut self, method: &str) -> Result<(), Error> {
        self.send(&json!({"jsonrpc": "2.0", "method": method}))
    }

    /// Closes stdin (the server exits) and waits.
    fn stop(mut self) -> Result<(), Error> {
        drop(self.stdin.take());
        self.child.wait()?;
        Ok(())
    }
}

/// One MCP session through the bridge, on a kept-alive connection.
struct Session {
    conn: Conn,
    user: String,
    accept: &'static str,
    id: String,
    next_id: u64,
}

const ACCEPT_JSON: &str = "application/json";
const ACCEPT_SSE: &str = "application/json, text/event-stream";

impl Session {
    /// `initialize` (which starts the user's process if none runs) and `notifications/initialized`.
    fn open(port: u16, user: &str, accept: &'static str) -> Result<Self, Error> {
        let mut session = Session {
            conn: Conn::new(port),
            user: user.to_owned(),
            accept,
            id: String::new(),
            next_id: 1,
        };
        let reply = session.post(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params()}),
        )?;
        if reply.status != 200 {
            return Err(format!("initialize answered {}: {}", reply.status, reply.body).into());
        }
        session.id = reply
            .header("mcp-session-id")
            .ok_or("initialize answered no Mcp-Session-Id")?
            .to_owned();
        answer(&reply, &json!(0)).and_then(result_of)?;
        let reply =
            session.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        if reply.status != 202 {
            return Err(format!("notifications/initialized answered {}", reply.status).into());
        }
        Ok(session)
    }

    fn post(&mut self, message: &Value) -> Result<bench::Reply, Error> {
        let body = serde_json::to_string(message)?;
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", self.accept),
            ("X-User-Id", self.user.as_str()),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
        ];
        if !self.id.is_empty() {
            headers.push(("Mcp-Session-Id", self.id.as_str()));
        }
        self.conn.send("POST", "/mcp", &headers, &body)
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let id = json!(self.next_id);
        self.next_id += 1;
        let reply =
            self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        if reply.status != 200 {
            return Err(format!("{method} answered {}: {}", reply.status, reply.body).into());
        }
        answer(&reply, &id).and_then(result_of)
    }
}

/// The answer with `id` in a reply: its JSON body, or one of the `data:` events of its SSE stream.
fn answer(reply: &bench::Reply, id: &Value) -> Result<Value, Error> {
    let sse = reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if !sse {
        return Ok(serde_json::from_str(&reply.body)?);
    }
    for data in reply.body.lines().filter_map(|l| l.strip_prefix("data:")) {
        let Ok(message) = serde_json::from_str::<Value>(data.trim()) else {
            continue;
        };
        if message.get("id") == Some(id) {
            return Ok(message);
        }
    }
    Err(format!("no answer with id {id} in the stream: {}", reply.body).into())
}

/// The values at the 50th and 99th percentiles (nearest rank) and the mean.
fn summary(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((ms.len() as f64 * p).ceil() as usize).max(1) - 1;
        ms.get(rank).copied().unwrap_or(f64::NAN)
    };
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    (at(0.50), at(0.99), mean)
}

/// One way of calling: each timed call's latency, and the CPU ticks of the processes involved over them.
struct Measured {
    name: &'static str,
    ms: Vec<f64>,
    /// The server process's CPU ticks over the timed calls.
    server_ticks: u64,
    /// The bridge's, when there is one.
    bridge_ticks: Option<u64>,
}

impl Measured {
    fn new(name: &'static str, bridge: bool) -> Self {
        Measured {
            name,
            ms: Vec::new(),
            server_ticks: 0,
            bridge_ticks: bridge.then_some(0),
        }
    }

    /// `calls` timed calls, one at a time; adds the CPU ticks of `server` and `bridge` over them.
    fn block(
        &mut self,
        calls: usize,
        server: u32,
        bridge: Option<u32>,
        mut call: impl FnMut() -> Result<Value, Error>,
    ) -> Result<(), Error> {
        let (server0, bridge0) = (cpu_ticks(server), bridge.map(cpu_ticks));
        for _ in 0..calls {
            let started = Instant::now();
            call()?;
            self.ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        self.server_ticks += cpu_ticks(server).saturating_sub(server0);
        if let (Some(total), Some(pid), Some(before)) =
            (self.bridge_ticks.as_mut(), bridge, bridge0)
        {
            *total += cpu_ticks(pid).saturating_sub(before);
        }
        Ok(())
    }
}

/// The bridge's child processes (the stdio servers), from every thread's `children` list: a child is listed
/// under the thread that spawned it.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The bridge's `VmRSS`, its children's summed `VmRSS` and their number, in KiB.
fn memory(bridge: u32) -> (u64, u64, usize) {
    let kids = children(bridge);
    let total = kids.iter().map(|&pid| rss_kib(pid, "VmRSS:")).sum();
    (rss_kib(bridge, "VmRSS:"), total, kids.len())
}

/// The `processes` count of the bridge's `/health`.
fn health_processes(port: u16) -> Result<u64, Error> {
    let reply = Conn::new(port).send("GET", "/health", &[("Connection", "close")], "")?;
    if reply.status != 200 {
        return Err(format!("/health answered {}", reply.status).into());
    }
    let health: Value = serde_json::from_str(&reply.body)?;
    health
        .get("processes")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("no processes in /health: {}", reply.body).into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Starts the bridge in front of the server and waits for its `/health`; its log goes to `log`.
fn start_bridge(
    bin: &Path,
    port: u16,
    o: &Options,
    node: &Path,
    server: &Path,
    dir: &Path,
    log: &Path,
) -> Result<Service, Error> {
    let child = Command::new(bin)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--max-processes", &(o.users + 8).to_string()])
        .args(["--max-sessions", &(2 * o.users + 16).to_string()])
        .arg("--env")
        .arg(format!("MEMORY_FILE_PATH={}/{{owner}}.json", dir.display()))
        .arg("--")
        .arg(node)
        .arg(server)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    let mut bridge = Service(child);
    let started = Instant::now();
    loop {
        if health_processes(port).is_ok() {
            return Ok(bridge);
        }
        if let Some(status) = bridge.0.try_wait()? {
            return Err(format!(
                "mcp-bridge exited at start ({status}); see {}",
                log.display()
            )
            .into());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err("mcp-bridge did not answer /health within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run(o: &Options, dir: &Path) -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let server =
        root.join("tests/js/node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    if !server.exists() {
        return Err(format!(
            "{} is missing: run `npm ci --prefix tests/js` (as .ci/run does)",
            server.display()
        )
        .into());
    }
    let node = PathBuf::from("node");
    let node_version = Command::new(&node)
        .arg("--version")
        .output()
        .map_err(|e| format!("node (Debian package `nodejs`) could not run: {e}"))?;
    let bin = workspace_binary("mcp-bridge", &o.profile)?;
    let tps = ticks_per_second();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench-bridge: {} calls of {} (after {} untimed), {} entities, {} users; mcp-bridge {} build, node {}, {cores} cores (shared by the client, the bridge and node)\n",
        o.calls,
        o.tool,
        o.warmup,
        o.entities,
        o.users,
        o.profile,
        String::from_utf8_lossy(&node_version.stdout).trim()
    );
    let call = call_params(o);

    // The direct server, and the bridge with one user's process behind it: both seeded, both warmed up.
    let mut direct = Direct::start(&node, &server, &dir.join("direct.json"))?;
    direct.request("initialize", initialize_params())?;
    direct.notify("notifications/initialized")?;
    direct.request("tools/call", seed_params(o.entities))?;
    let direct_pid = direct.child.id();
    let port = free_port()?;
    let log = dir.join("mcp-bridge.log");
    let bridge = start_bridge(&bin, port, o, &node, &server, dir, &log)?;
    let bridge_pid = bridge.0.id();
    let idle = memory(bridge_pid);
    let mut json_session = Session::open(port, "bench-user-0", ACCEPT_JSON)?;
    json_session.request("tools/call", seed_params(o.entities))?;
    let mut sse_session = Session::open(port, "bench-user-0", ACCEPT_SSE)?;
    let server_pid = match children(bridge_pid).as_slice() {
        [pid] => *pid,
        other => return Err(format!("expected one server process, found {other:?}").into()),
    };
    for _ in 0..o.warmup {
        direct.request("tools/call", call.clone())?;
        json_session.request("tools/call", call.clone())?;
        sse_session.request("tools/call", call.clone())?;
    }
    // The three ways take turns for `--rounds` rounds, so that the machine's other work and the servers'
    // warming up (V8 compiles hot code late) fall on all of them alike.
    let mut floor = Measured::new("direct (stdio pipes)", false);
    let mut json_run = Measured::new("mcp-bridge, JSON answers", true);
    let mut sse_run = Measured::new("mcp-bridge, SSE answers", true);
    for round in 0..o.rounds {
        let calls = o.calls / o.rounds + usize::from(round < o.calls % o.rounds);
        floor.block(calls, direct_pid, None, || {
            direct.request("tools/call", call.clone())
        })?;
        json_run.block(calls, server_pid, Some(bridge_pid), || {
            json_session.request("tools/call", call.clone())
        })?;
        sse_run.block(calls, server_pid, Some(bridge_pid), || {
            sse_session.request("tools/call", call.clone())
        })?;
    }
    direct.stop()?;
    let one = memory(bridge_pid);

    // Memory with `--users` users, each with a session (its process started by `initialize`) and one call.
    let mut starts = Vec::with_capacity(o.users);
    for user in 1..o.users {
        let started = Instant::now();
        let mut session = Session::open(port, &format!("bench-user-{user}"), ACCEPT_JSON)?;
        starts.push(started.elapsed().as_secs_f64() * 1000.0);
        session.request("tools/call", call.clone())?;
    }
    let many = memory(bridge_pid);
    let processes = health_processes(port)?;
    if processes != o.users as u64 || many.2 != o.users {
        return Err(format!(
            "{} users, but /health counts {processes} processes and /proc {} children",
            o.users, many.2
        )
        .into());
    }
    drop((json_session, sse_session));
    bridge.stop()?;

    // The report.
    let ms_per_call = |ticks: u64| ticks as f64 / tps * 1000.0 / o.calls as f64;
    println!(
        "| {} calls, one at a time | p50 | p99 | mean | added p50 | added p99 | bridge CPU per call | server CPU per call |",
        o.calls
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let (f50, f99, _) = summary(floor.ms.clone());
    let mut p = Vec::new();
    for m in [&floor, &json_run, &sse_run] {
        let (p50, p99, mean) = summary(m.ms.clone());
        p.push((p50, p99));
        let (added50, added99, bridge_cpu) = match m.bridge_ticks {
            Some(ticks) => (
                format!("{:+.3} ms", p50 - f50),
                format!("{:+.3} ms", p99 - f99),
                format!("{:.3} ms ({ticks} ticks)", ms_per_call(ticks)),
            ),
            None => ("".into(), "".into(), "".into()),
        };
        println!(
            "| {} | {p50:.3} ms | {p99:.3} ms | {mean:.3} ms | {added50} | {added99} | {bridge_cpu} | {:.3} ms ({} ticks) |",
            m.name,
            ms_per_call(m.server_ticks),
            m.server_ticks
        );
    }
    if let [_, (j50, j99), (s50, s99)] = p.as_slice() {
        println!(
            "\nRatios: p50 through the bridge / direct: JSON {:.2}×, SSE {:.2}×; p99: JSON {:.2}×, SSE {:.2}×.",
            j50 / f50,
            s50 / f50,
            j99 / f99,
            s99 / f99
        );
    }
    let (start50, start99, _) = summary(starts);
    if o.users > 1 {
        println!(
            "A new user's first initialize (starts their process): p50 {start50:.1} ms, p99 {start99:.1} ms ({} users).",
            o.users - 1
        );
    }
    println!(
        "\n| memory (VmRSS) | mcp-bridge | server processes, summed | processes |\n|---|---:|---:|---:|"
    );
    for (name, (bridge_kib, children_kib, count)) in [
        ("no process", idle),
        ("1 user process", one),
        (&*format!("{} user processes", o.users), many),
    ] {
        println!(
            "| {name} | {:.1} MiB | {:.1} MiB | {count} |",
            mib(bridge_kib),
            mib(children_kib)
        );
    }
    println!(
        "\nThe bridge's own memory per user process: {:.0} KiB ((RSS with {} - RSS with 1) / {}); a server process: {:.1} MiB on average.",
        (many.0 as f64 - one.0 as f64) / (o.users.saturating_sub(1).max(1)) as f64,
        o.users,
        o.users.saturating_sub(1).max(1),
        mib(many.1) / o.users as f64
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    let o = options()?;
    let dir = std::env::temp_dir().join(format!("bench-bridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&o, &dir);
    if result.is_err()
        && let Ok(log) = std::fs::read_to_string(dir.join("mcp-bridge.log"))
    {
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("mcp-bridge's last log lines:");
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}
