//! Test utilities (feature `test-util`): a clock that only moves when told, fixtures, a `redis-server`
//! launcher, and an https server with a test CA for client metadata documents ([`documents`]).
//!
//! Expiry tests advance a [`FixedClock`]; nothing sleeps.

pub mod documents;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::Clock;
use crate::config::{ResourceConfig, ServerConfig};

/// A clock standing still at a given time until advanced.
#[derive(Debug)]
pub struct FixedClock {
    secs: AtomicU64,
}

impl FixedClock {
    /// A clock at `secs` seconds since the epoch.
    pub fn at(secs: u64) -> Arc<Self> {
        Arc::new(FixedClock {
            secs: AtomicU64::new(secs),
        })
    }

    /// A clock at a fixed, realistic time (2026-01-01T00:00:00Z).
    pub fn new() -> Arc<Self> {
        Self::at(1_767_225_600)
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.secs.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.secs.load(Ordering::SeqCst))
    }
}

/// Issuer used by the fixtures.
pub const ISSUER: &str = "https://auth.example.com";
/// First protected resource of the fixtures (requires scope `mcp`).
pub const RESOURCE: &str = "https://mcp.example.com/mcp";
/// Second protected resource of the fixtures (origin-only, requires nothing).
pub const OTHER_RESOURCE: &str = "https://tools.example.com";

/// A configuration with two resources and scopes `mcp`, `mcp:admin`; a request without `scope` asks for `mcp`.
pub fn config() -> ServerConfig {
    ServerConfig::new(
        ISSUER,
        vec![
            ResourceConfig::new(RESOURCE, vec!["mcp".into(), "mcp:admin".into()])
                .require(vec!["mcp".into()])
                .named("Example MCP"),
            ResourceConfig::new(OTHER_RESOURCE, vec!["mcp".into()])
                .with_default_scopes(vec!["mcp".into()]),
        ],
    )
}

/// The key-encryption key of the fixtures: the same in every test and process, so that a store one test server
/// wrote opens in another.
pub fn sealer() -> crate::Sealer {
    crate::Sealer::new(crate::KeyEncryptionKey::from_bytes([0x5e; 32]))
}

/// A real `redis-server` (the Debian package) on a free loopback port, without persistence unless asked, stopped
/// by PID when dropped. Tests isolate themselves with [`unique_prefix`].
///
/// # Panics
/// If `redis-server` is not installed or does not answer within 10 s: the tests that need it must fail, not skip.
#[derive(Debug)]
#[allow(clippy::expect_used, clippy::panic)]
pub struct RedisServer {
    child: Option<std::process::Child>,
    port: u16,
    args: Vec<String>,
}

#[allow(clippy::expect_used, clippy::panic)]
impl RedisServer {
    /// Starts one with `--save '' --appendonly no`.
    pub fn start() -> Self {
        Self::with_args(vec![
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ])
    }

    /// Starts one that writes every command to an append-only file in `dir` before answering
    /// (`--appendfsync always`), so that a kill and restart loses nothing acknowledged.
    pub fn start_persistent(dir: &std::path::Path) -> Self {
        Self::with_args(vec![
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
            "--dir".into(),
            dir.display().to_string(),
        ])
    }

    /// Starts one that keeps nothing on disk until [`RedisServer::save`] asks, then writes its whole dataset
    /// to `dir/dump.rdb` uncompressed (`--rdbcompression no`): what Redis holds, byte for byte, for tests that
    /// look for what must not be there.
    pub fn start_snapshotting(dir: &std::path::Path) -> Self {
        Self::with_args(vec![
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--rdbcompression".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--dbfilename".into(),
            "dump.rdb".into(),
        ])
    }

    /// Has the server write its dataset (`SAVE`, synchronous) and returns the dump's path, for a server started
    /// with [`RedisServer::start_snapshotting`].
    pub fn save(&self, dir: &std::path::Path) -> std::path::PathBuf {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("redis answers");
        s.write_all(b"*1\r\n$4\r\nSAVE\r\n").expect("SAVE sent");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("SAVE answered");
        assert_eq!(&buf, b"+OK\r\n", "SAVE failed");
        dir.join("dump.rdb")
    }

    fn with_args(args: Vec<String>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = RedisServer {
            child: None,
            port,
            args,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install the Debian package redis-server \
                     (`apt-get install -y --no-install-recommends redis-server`; .ci/run does)"
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        use std::io::{Read as _, Write as _};
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let mut buf = [0u8; 5];
                let ok = s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok();
                if ok && &buf == b"+PONG" {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("redis-server exited at start: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Kills the server (SIGKILL, by PID) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same options.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A key prefix no other test in this process uses: `t<pid>-<n>-<name>`.
pub fn unique_prefix(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}
