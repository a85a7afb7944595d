//! What the load benchmarks share: preparing a store with the real engine, building and starting the real
//! service binary, reading its memory and CPU time from `/proc`, a small keep-alive HTTP/1.1 client, and driving
//! `wrk`.

#![allow(clippy::print_stdout, missing_docs)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

impl Service {
    /// Stops the service as a supervisor would (SIGTERM, via `kill`), so that it shuts down cleanly; kills it if
    /// it is still running after 30 s.
    pub fn stop(mut self) -> Result<(), Error> {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(30) {
            if self.0.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("the service did not stop within 30 s of SIGTERM".into())
    }
}

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

/// The engine on the store file `dir/oauth.redb`, configured as [`write_config`] configures the service: issuer
/// `base`, one resource `{base}/mcp` with the scope `mcp`. Creates the store and its signing key on first use.
/// The store is locked while the returned values live: drop them before starting the service on it.
pub async fn engine(dir: &Path, base: &str) -> Result<(AuthServer, Arc<dyn Store>), Error> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(
        dir.join("oauth.redb"),
        Arc::clone(&clock),
    )?);
    let config = ServerConfig::new(
        base.to_owned(),
        vec![ResourceConfig::new(
            format!("{base}/mcp"),
            vec!["mcp".into()],
        )],
    );
    let auth = AuthServer::new(config, Arc::clone(&store), sealer(dir)?, clock).await?;
    Ok((auth, store))
}

/// The key-encryption key file [`write_config`] names, in `dir`.
const KEY_FILE: &str = "key-encryption.key";

/// The key sealing the store's secrets, from `dir/key-encryption.key` (created on first use): the same key the
/// service reads through [`write_config`]'s configuration.
fn sealer(dir: &Path) -> Result<oauth_core::Sealer, Error> {
    let path = dir.join(KEY_FILE);
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => oauth_core::KeyEncryptionKey::from_base64(&text)?,
        Err(_) => {
            let key = oauth_core::KeyEncryptionKey::generate();
            std::fs::write(&path, key.expose_base64())?;
            key
        }
    };
    Ok(oauth_core::Sealer::new(key))
}

/// Writes `dir/config.toml` for the service: listen on `base`'s port, the store `oauth.redb` with the
/// key-encryption key [`engine`] uses (created if missing), the resource of [`engine`], then `extra` (more TOML
/// tables) verbatim.
pub fn write_config(dir: &Path, base: &str, extra: &str) -> Result<(), Error> {
    sealer(dir)?;
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "listen = \"{}\"\nissuer = \"{base}\"\n[store]\npath = \"oauth.redb\"\nkey_encryption_key_file = \"{KEY_FILE}\"\n[[resources]]\nresource = \"{base}/mcp\"\nscopes = [\"mcp\"]\n{extra}",
            base.trim_start_matches("http://")
        ),
    )?;
    Ok(())
}

/// Writes the store, config and token list; returns the valid tokens.
pub async fn prepare(dir: &Path, base: &str, n: usize) -> Result<Vec<String>, Error> {
    let (auth, store) = engine(dir, base).await?;
    drop(auth);
    let clock = SystemClock;
    let resource = format!("{base}/mcp");
    let keys = JosekitKeyManager::load_or_generate(
        store.as_ref(),
        oauth_core::SigningAlg::Es256,
        &sealer(dir)?,
        &clock,
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
    write_config(dir, base, "")?;
    Ok(tokens)
}

/// The service binary of `profile` (`release` for measurements; `debug` for the CI smoke, which reuses the test
/// build), built (or brought up to date: a stale binary would measure old code) first. `BENCH_SERVICE_BINARY`
/// names another binary to measure instead, as it is (to compare two builds in one run, e.g. a copy of the last
/// commit's).
pub fn binary(profile: &str) -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os("BENCH_SERVICE_BINARY") {
        return Ok(PathBuf::from(bin));
    }
    workspace_binary("forwardauth-svc", profile)
}

/// The binary of the workspace package `package` (named as the package) of `profile`, built (or brought up to
/// date) first.
pub fn workspace_binary(package: &str, profile: &str) -> Result<PathBuf, Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.args(["build", "--quiet", "-p", package]);
    if profile == "release" {
        cargo.arg("--release");
    }
    if !cargo.current_dir(&root).status()?.success() {
        return Err(format!("building {package} failed").into());
    }
    Ok(target.join(profile).join(package))
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
    /// Requests completed.
    pub requests: u64,
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
    wrk_with(o, name, url, script, &[])
}

/// [`wrk`] with arguments for the script (its `init(args)`).
pub fn wrk_with(
    o: &Load,
    name: &str,
    url: &str,
    script: &Path,
    args: &[&str],
) -> Result<Run, Error> {
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
        .args(if args.is_empty() {
            &[][..]
        } else {
            &["--"][..]
        })
        .args(args)
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
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok(Run {
        name: name.to_owned(),
        rps,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
        non_2xx,
        requests,
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
        // Every request is formatted once, up front (per wrk thread): formatting per request, with a new
        // string for each token, would cost the client (on the same cores) more with many tokens than with one.
        writeln!(
            s,
            "local requests = {{}}\ninit = function(args)\n  for i, t in ipairs(tokens) do\n    wrk.headers[\"Authorization\"] = \"Bearer \" .. t\n    requests[i] = wrk.format()\n  end\nend\nrequest = function()\n  return requests[math.random(#requests)]\nend"
        )?;
    }
    std::fs::write(path, s)?;
    Ok(())
}

/// CPU time the process has used so far, user and system, all its threads (living and exited) together, in clock
/// ticks (`/proc/PID/stat` fields 14 and 15; see [`ticks_per_second`]).
pub fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The command name (field 2) may hold spaces; what follows its closing parenthesis is field 3 on.
            let mut rest = s.get(s.rfind(')')? + 1..)?.split_whitespace().skip(11);
            let utime: u64 = rest.next()?.parse().ok()?;
            let stime: u64 = rest.next()?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0)
}

/// The kernel's clock ticks per second for [`cpu_ticks`] (`getconf CLK_TCK`; 100 on every Linux we run on).
pub fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for forms and query strings).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One HTTP/1.1 answer.
pub struct Reply {
    pub status: u16,
    /// The status line and the headers, as sent.
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A keep-alive HTTP/1.1 connection to the service on loopback, reopened when the server closes it. Enough for
/// the service's and the bridge's answers (a `Content-Length`, or a chunked body read to its end); not a general
/// client.
pub struct Conn {
    port: u16,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn new(port: u16) -> Self {
        Conn { port, stream: None }
    }

    /// Sends one request and reads its answer.
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Reply, Error> {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            write!(request, "{k}: {v}\r\n")?;
        }
        request.push_str("\r\n");
        request.push_str(body);
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(("127.0.0.1", self.port))?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(60)))?;
                self.stream.insert(BufReader::new(s))
            }
        };
        stream.get_mut().write_all(request.as_bytes())?;
        let mut head = String::new();
        loop {
            let before = head.len();
            if stream.read_line(&mut head)? == 0 {
                self.stream = None;
                return Err("the connection closed before an answer".into());
            }
            if head.get(before..) == Some("\r\n") {
                break;
            }
        }
        let mut reply = Reply {
            status: head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or("no status line")?,
            head,
            body: String::new(),
        };
        let body = if reply
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            read_chunked(stream)?
        } else {
            let length: usize = reply
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            stream.read_exact(&mut body)?;
            body
        };
        reply.body = String::from_utf8_lossy(&body).into_owned();
        if reply
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.stream = None;
        }
        Ok(reply)
    }
}

/// A chunked body (RFC 9112 §7.1), to its last chunk; trailers are skipped.
fn read_chunked(stream: &mut BufReader<TcpStream>) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        stream.read_line(&mut size)?;
        let size = size.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            // Trailers, if any, then the empty line.
            loop {
                let mut line = String::new();
                if stream.read_line(&mut line)? == 0 || line == "\r\n" {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size + 2, 0);
        stream.read_exact(body.get_mut(start..).ok_or("chunk")?)?;
        body.truncate(start + size);
    }
}

/// Starts the service on `dir/config.toml` (output discarded, default log level) and waits for the first `200`
/// from `GET /health`; returns it with the time from spawning the process to that answer.
pub fn start_service(bin: &Path, dir: &Path, port: u16) -> Result<(Service, Duration), Error> {
    let started = Instant::now();
    let child = Command::new(bin)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("serve")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut svc = Service(child);
    loop {
        let mut conn = Conn::new(port);
        if conn
            .send("GET", "/health", &[("Connection", "close")], "")
            .is_ok_and(|r| r.status == 200)
        {
            return Ok((svc, started.elapsed()));
        }
        if let Some(status) = svc.0.try_wait()? {
            return Err(format!("the service exited at start ({status})").into());
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the service did not answer /health within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
