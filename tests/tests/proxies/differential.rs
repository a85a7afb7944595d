//! Proxy-differential: hostile requests, written byte by byte, through the real nginx, Caddy and Traefik, each
//! loaded with the unmodified `forwardauth-svc snippet` output, in front of a catch-all recorder instead of the
//! MCP server.
//!
//! ```text
//!   raw TCP probes ──► nginx | Caddy | Traefik ──► tap ──► recorder (answers 200 to anything, keeps the head)
//!                              │
//!                              └──► gate tap (keeps the service's answers) ──► forwardauth-svc
//! ```
//!
//! The point is what HTTP client libraries refuse to send: backslashes, spaces and CRLF in `Host`, absolute-form
//! targets, dot segments raw and encoded, duplicate forwarded headers, aliases of the identity headers. Each
//! probe carries a unique `X-Probe: <n>` so the recorder's side can be matched to it. A proxy may refuse a probe
//! itself (400, 431, …): that is fine. What must hold, through every proxy:
//!
//! 1. no alias of an identity header (`X_User_Id`, `X.User.Id`, …) and no client-chosen identity value reaches
//!    the upstream;
//! 2. nothing reaches the upstream without a token valid for exactly that request, except the discovery
//!    documents; and what does reach it with a token is exactly what the gate judged: a path in normal form
//!    under the resource, on the resource's host, with the gate's identity and without the token;
//! 3. the service never answers 5xx (seen on the gate tap: the service runs in process without a log
//!    subscriber, so its answers are read off the wire), and no proxy answers 500/502/503/504 (one exception,
//!    explained where it is allowed);
//! 4. the positive controls (a valid token, a plain request) do reach the upstream, so the test can fail.
//!
//! The same stack also checks `Origin` and CORS through each proxy. The counts are printed per proxy; with
//! `E2E_DIFFERENTIAL_DUMP=<dir>` every probe, its answer and whether it reached the upstream go to
//! `<dir>/differential-<proxy>.tsv`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use forwardauth_svc::snippet::{GATE_REQUEST_HEADERS, Proxy, alias_spellings};
use oauth_core::forwarded::check_path;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::stack::{EntryPointB, Stack, Upstream};
use crate::support::*;

/// The identity headers the gate sends, as the snippet names them.
const IDENTITY: [&str; 5] = [
    "X-User-Id",
    "X-User-Name",
    "X-User-Email",
    "X-Client-Id",
    "X-Scopes",
];

/// How long a probe waits for the proxy's answer (a proxy may wait for the rest of a request it cannot parse).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Probes in flight at once.
const CONCURRENCY: usize = 16;

// ---------------------------------------------------------------------------------------------------------------
// The recorder: the upstream of every proxy.

/// One request as the recorder received it.
#[derive(Clone, Debug)]
struct Received {
    request_line: String,
    target: String,
    /// Every header line: the name as sent, the value trimmed.
    headers: Vec<(String, String)>,
}

impl Received {
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `X-Probe` value, if the request carries exactly one.
    fn probe(&self) -> Option<&str> {
        match self.values("x-probe").as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// A catch-all HTTP/1.1 server on a 127.0.0.1 free port: answers `200 recorded` to any request, closes the
/// connection, and keeps the request line and headers.
struct Recorder {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(record(conn, log.clone()));
            }
        });
        Recorder {
            port,
            received,
            task,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn record(mut conn: TcpStream, log: Arc<Mutex<Vec<Received>>>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 4 << 20 {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let target = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let headers: Vec<(String, String)> = lines
        .map(|l| match l.split_once(':') {
            Some((n, v)) => (n.to_owned(), v.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect();
    let received = Received {
        request_line,
        target,
        headers,
    };
    // Drain the body before answering, so closing does not reset the connection under the proxy.
    let mut body = buf.split_off(head_end + 4);
    let length = received
        .values("content-length")
        .first()
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = received
        .values("transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"));
    let head_request = received.request_line.starts_with("HEAD ");
    log.lock().unwrap().push(received);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let done = match (chunked, length) {
            (true, _) => body.ends_with(b"0\r\n\r\n"),
            (false, Some(n)) => body.len() >= n,
            (false, None) => true,
        };
        if done || Instant::now() > deadline {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(1), conn.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let answer: &[u8] = if head_request {
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nrecorded\n"
    };
    let _ = conn.write_all(answer).await;
    let _ = conn.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Probes: raw requests, one connection each.

/// What a probe is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// No token valid for exactly this request: it must not reach the upstream unless it is a discovery
    /// document.
    Hostile,
    /// A token valid for the resource of the port it is sent to: what reaches the upstream must be exactly what
    /// the gate judged (normal path under the resource, the resource's host).
    WithToken,
    /// A plain request with a valid token: it must reach the upstream (200).
    Control,
}

struct Probe {
    id: usize,
    what: String,
    port: u16,
    bytes: Vec<u8>,
    kind: Kind,
    /// Read to EOF rather than stop after the first answer (pipelined requests).
    read_all: bool,
}

/// A request, byte for byte.
#[derive(Clone)]
struct Req {
    method: Vec<u8>,
    target: Vec<u8>,
    version: &'static str,
    /// `None`: no Host header.
    host: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    close: bool,
}

impl Req {
    fn new(method: &str, target: &str, host: &str) -> Req {
        Req {
            method: method.as_bytes().to_vec(),
            target: target.as_bytes().to_vec(),
            version: "HTTP/1.1",
            host: Some(host.as_bytes().to_vec()),
            headers: Vec::new(),
            body: Vec::new(),
            close: true,
        }
    }

    fn raw_target(mut self, target: &[u8]) -> Req {
        self.target = target.to_vec();
        self
    }

    fn raw_host(mut self, host: Option<&[u8]>) -> Req {
        self.host = host.map(<[u8]>::to_vec);
        self
    }

    fn header(mut self, name: &str, value: &str) -> Req {
        self.headers
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    fn raw_header(mut self, name: &[u8], value: &[u8]) -> Req {
        self.headers.push((name.to_vec(), value.to_vec()));
        self
    }

    fn bearer(self, token: &str) -> Req {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    fn json(mut self) -> Req {
        self.body = initialize_body().to_string().into_bytes();
        self.header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
    }

    fn version(mut self, v: &'static str) -> Req {
        self.version = v;
        self
    }

    fn keep_alive(mut self) -> Req {
        self.close = false;
        self
    }

    /// The bytes, with `X-Probe: <probe>` first.
    fn bytes(&self, probe: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.target);
        if !self.version.is_empty() {
            out.push(b' ');
            out.extend_from_slice(self.version.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(format!("X-Probe: {probe}\r\n").as_bytes());
        if let Some(h) = &self.host {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(h);
            out.extend_from_slice(b"\r\n");
        }
        for (n, v) in &self.headers {
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty() {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The proxy's answer to a probe.
#[derive(Clone, Debug, Default)]
struct Answer {
    /// `None`: the connection closed or timed out without a status line.
    status: Option<u16>,
    /// Every status line read (pipelined requests get one each).
    all: Vec<u16>,
    /// The head, lower-cased names.
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn status_label(&self) -> String {
        self.status
            .map_or_else(|| "no answer".to_owned(), |s| s.to_string())
    }
}

fn parse_answer(bytes: &[u8]) -> Answer {
    let end = find(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        all: statuses(&String::from_utf8_lossy(bytes)),
        headers,
    }
}

/// Whether `bytes` holds a whole answer: a head and, by `Content-Length`, its body (none for `HEAD`).
fn complete(bytes: &[u8], head_request: bool) -> bool {
    let Some(end) = find(bytes, b"\r\n\r\n") else {
        return false;
    };
    let answer = parse_answer(bytes);
    if head_request || matches!(answer.status, Some(204 | 304)) {
        return true;
    }
    if let Some(n) = answer
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        return bytes.len() >= end + 4 + n;
    }
    answer
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
        && bytes.ends_with(b"0\r\n\r\n")
}

/// Sends `bytes` on a new connection to the proxy and reads its answer.
async fn send(port: u16, bytes: &[u8], read_all: bool) -> Answer {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)).await else {
        return Answer::default();
    };
    // A proxy may refuse early and close while a large request is still being written: read what it said.
    let _ = conn.write_all(bytes).await;
    let head_request = bytes.starts_with(b"HEAD ");
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, conn.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
        if !read_all && complete(&got, head_request) {
            break;
        }
    }
    parse_answer(&got)
}

// ---------------------------------------------------------------------------------------------------------------
// The catalogue.

/// Valid access tokens: for resource A (`127.0.0.1:<a>/mcp`) and resource B (`127.0.0.1:<b>/mcp`).
struct Tokens {
    a: String,
    b: String,
}

struct Catalogue {
    probes: Vec<Probe>,
}

impl Catalogue {
    fn push(&mut self, what: impl Into<String>, port: u16, kind: Kind, req: &Req) {
        let id = self.probes.len();
        self.probes.push(Probe {
            id,
            what: what.into(),
            port,
            bytes: req.bytes(&id.to_string()),
            kind,
            read_all: false,
        });
    }

    /// Two requests on one connection: `first` (kept alive) and `second` without a token, which carries
    /// `X-Probe: <n>-pipelined`.
    fn push_pipelined(&mut self, what: impl Into<String>, port: u16, first: &Req, second: &Req) {
        let id = self.probes.len();
        let mut bytes = first.bytes(&id.to_string());
        bytes.extend_from_slice(&second.bytes(&format!("{id}-pipelined")));
        self.probes.push(Probe {
            id,
            what: what.into(),
            port,
            bytes,
            kind: Kind::WithToken,
            read_all: true,
        });
    }
}

/// Printable bytes for failure messages.
fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// The discovery documents of the stack's resources: the only targets that may reach the upstream without a
/// token.
fn discovery_paths() -> [&'static str; 3] {
    [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource/admin/mcp",
        "/.well-known/oauth-authorization-server",
    ]
}

fn catalogue(pa: u16, pb: u16, other: u16, tokens: &Tokens) -> Catalogue {
    let a = format!("127.0.0.1:{pa}");
    let b = format!("127.0.0.1:{pb}");
    let prm = "/.well-known/oauth-protected-resource/mcp";
    let asm = "/.well-known/oauth-authorization-server";
    let mut c = Catalogue { probes: Vec::new() };
    // The request shapes the header and host tricks are tried on.
    let shapes: [(&str, &str); 4] = [
        ("POST", "/mcp"),
        ("GET", "/mcp"),
        ("GET", prm),
        ("GET", "/.well-known/x"),
    ];

    // --- Host tricks, on A's port.
    let mut hosts: Vec<(String, Option<Vec<u8>>)> = [
        format!("{a}\\.well-known\\x?"),
        format!("{a}\\.well-known\\oauth-protected-resource\\mcp?"),
        format!("{a}?/.well-known/x"),
        format!("{a}?"),
        format!("{a}#/.well-known/x"),
        format!("{a}/.well-known/oauth-protected-resource/mcp"),
        format!("{a}/.well-known/oauth-authorization-server?"),
        format!("evil@{a}"),
        format!("{a}@evil.example"),
        format!("127.0.0.1 :{pa}"),
        format!("{a} x"),
        format!("{a} /.well-known/x"),
        format!("127.0.0.1\t:{pa}"),
        format!("{a}\t/.well-known/x"),
        format!("{a}\r\nX-Forwarded-Uri: {prm}"),
        format!("{a}\r\nX-Original-URL: http://{a}{prm}"),
        format!("{a}\r\nX-Forwarded-Method: GET"),
        format!("{a}\rX-Forwarded-Uri: /.well-known/x"),
        format!("{a}\nX-Forwarded-Uri: /.well-known/x"),
        format!("{a}\r\n /.well-known/x"),
        format!("{a}\r\n\t/.well-known/x"),
        format!("127.0.0.1\0:{pa}"),
        "127.0.0.1:0".to_owned(),
        format!("127.0.0.1:0{pa}"),
        "127.0.0.1:080".to_owned(),
        "127.0.0.1:65536".to_owned(),
        format!("127.0.0.1:{}", u32::from(pa) + 65536),
        b.clone(),
        format!("127.0.0.1:{other}"),
        "127.0.0.1".to_owned(),
        "127.0.0.1:".to_owned(),
        format!("127.0.0.1:+{pa}"),
        format!("127.0.0.1:{pa}:{pa}"),
        format!("127.0.0.1.:{pa}"),
        format!("127.0.0.1..:{pa}"),
        format!("LOCALHOST:{pa}"),
        format!("localhost:{pa}"),
        format!("[::1]:{pa}"),
        format!("[::ffff:127.0.0.1]:{pa}"),
        format!("127.1:{pa}"),
        format!("2130706433:{pa}"),
        format!("0x7f.0.0.1:{pa}"),
        String::new(),
        format!("{a}, {b}"),
        "mcp.example.com".to_owned(),
        format!("%31%32%37.0.0.1:{pa}"),
        format!("{a}%2f.well-known"),
        format!("{a}%5c.well-known"),
    ]
    .into_iter()
    .map(|h| (h.clone(), Some(h.into_bytes())))
    .collect();
    let mut non_ascii = a.clone().into_bytes();
    non_ascii.push(0xff);
    hosts.push(("<A>\\xff".into(), Some(non_ascii)));
    hosts.push((
        "127.0.0.1\\xc0\\xae:<pa>".into(),
        Some([b"127.0.0.1\xc0\xae:".as_slice(), pa.to_string().as_bytes()].concat()),
    ));
    hosts.push((
        "ex\\u{e4}mple".into(),
        Some(format!("ex\u{e4}mple:{pa}").into_bytes()),
    ));
    hosts.push(("(no Host)".into(), None));
    for (label, host) in &hosts {
        for (method, target) in shapes {
            let req = Req::new(method, target, "").raw_host(host.as_deref());
            c.push(
                format!("host {label:?}: {method} {target}"),
                pa,
                Kind::Hostile,
                &req,
            );
        }
    }
    // Two Host headers.
    for second in [
        a.clone(),
        b.clone(),
        format!("{a}\\.well-known\\x?"),
        "other.example".to_owned(),
    ] {
        for (method, target) in shapes {
            let req = Req::new(method, target, &a).header("Host", &second);
            c.push(
                format!("Host twice ({a}, {second}): {method} {target}"),
                pa,
                Kind::Hostile,
                &req,
            );
        }
    }
    // HTTP/1.0 without Host, HTTP/0.9, odd versions.
    for (method, target) in shapes {
        for (version, host) in [
            ("HTTP/1.0", None),
            ("HTTP/1.0", Some(a.as_str())),
            ("", None),
            ("HTTP/2.0", Some(a.as_str())),
            ("HTTP/1.1 x", Some(a.as_str())),
            ("http/1.1", Some(a.as_str())),
        ] {
            let req = Req::new(method, target, "")
                .raw_host(host.map(str::as_bytes))
                .version(version);
            c.push(
                format!("version {version:?}, Host {host:?}: {method} {target}"),
                pa,
                Kind::Hostile,
                &req,
            );
        }
    }

    // --- Absolute-form targets, on A's port.
    let authorities = [
        a.clone(),
        b.clone(),
        "other.example".to_owned(),
        "127.0.0.1".to_owned(),
        format!("{a}\\.well-known\\x?"),
    ];
    for authority in &authorities {
        for path in ["/.well-known/x", prm, "/mcp"] {
            for host in [
                Some(a.as_str()),
                Some(b.as_str()),
                Some("other.example"),
                None,
            ] {
                for method in ["GET", "POST"] {
                    let target = format!("http://{authority}{path}");
                    let req = Req::new(method, &target, "").raw_host(host.map(str::as_bytes));
                    c.push(
                        format!("absolute {method} {target}, Host {host:?}"),
                        pa,
                        Kind::Hostile,
                        &req,
                    );
                }
            }
        }
    }
    for target in [
        format!("https://{a}/mcp"),
        format!("HTTP://{a}/mcp"),
        format!("http://evil@{a}/mcp"),
        format!("http://{a}"),
        format!("http://{a}?x"),
        format!("//{a}/mcp"),
        format!("//{a}{prm}"),
        format!("{a}/mcp"),
        format!("ftp://{a}/mcp"),
        format!("http://{a}\\.well-known\\x?/mcp"),
        format!("http://{a}/mcp#{prm}"),
        "*".to_owned(),
        "mcp".to_owned(),
        ".well-known/x".to_owned(),
    ] {
        for method in ["GET", "POST", "OPTIONS"] {
            let req = Req::new(method, &target, &a);
            c.push(format!("target {method} {target}"), pa, Kind::Hostile, &req);
        }
    }
    // With A's token: what the gate admits must reach the MCP server on A's host.
    for (authority, host) in [
        (a.as_str(), Some(b.as_str())),
        (a.as_str(), Some("other.example")),
        (a.as_str(), None),
        (b.as_str(), Some(a.as_str())),
        ("other.example", Some(a.as_str())),
    ] {
        let target = format!("http://{authority}/mcp");
        let req = Req::new("POST", &target, "")
            .raw_host(host.map(str::as_bytes))
            .json()
            .bearer(&tokens.a);
        c.push(
            format!("absolute POST {target}, Host {host:?}, with A's token"),
            pa,
            Kind::WithToken,
            &req,
        );
    }
    c.push(
        "CONNECT authority-form",
        pa,
        Kind::Hostile,
        &Req::new("CONNECT", &a, &a),
    );

    // --- Paths, on both ports (Traefik: host A's entry point has the shipped options, host B's none).
    let mut paths: Vec<Vec<u8>> = [
        "/mcp/../.well-known/oauth-protected-resource/mcp",
        "/mcp/../.well-known/x",
        "/.well-known/oauth-protected-resource/mcp/../../../mcp",
        "/.well-known/oauth-protected-resource/../../mcp",
        "/.well-known/oauth-authorization-server/../../mcp",
        "/.well-known/x/../../mcp",
        "/mcp/%2e%2e/.well-known/x",
        "/.well-known/oauth-protected-resource/%2e%2e/%2e%2e/mcp",
        "/.well-known/%2E%2E/mcp",
        "/.well-known/.%2e/mcp",
        "/.well-known/%2e./mcp",
        "/.well-known/%2E%2e/mcp",
        "/%2e/mcp",
        "/./mcp",
        "/mcp/.",
        "/mcp/..",
        "//mcp",
        "/mcp//x",
        "//.well-known/oauth-protected-resource/mcp",
        "/.well-known//oauth-protected-resource/mcp",
        "/mcp/..;/x",
        "/.well-known/oauth-protected-resource/..;/..;/mcp",
        "/.well-known/x/..;/..;/mcp",
        "/mcp;/x",
        "/mcp;jsessionid=1",
        "/.well-known;/oauth-protected-resource/mcp",
        "/mcp%2f..%2f.well-known%2fx",
        "/.well-known%2foauth-protected-resource%2fmcp",
        "/.well-known/oauth-protected-resource%2F..%2F..%2Fmcp",
        "/mcp%2Fx",
        "/mcp%5c..%5c.well-known%5cx",
        "/mcp%5Cx",
        "/mcp\\..\\.well-known\\x",
        "/.well-known\\oauth-protected-resource\\mcp",
        "/.well-known/oauth-protected-resource/mcp\\..\\..\\..\\mcp",
        "/.WELL-KNOWN/oauth-protected-resource/mcp",
        "/.well-known/OAUTH-PROTECTED-RESOURCE/mcp",
        "/.Well-Known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/MCP",
        "/MCP",
        "/Mcp",
        "/ADMIN/mcp",
        "/admin/MCP",
        "/.well-known/oauth-protected-resource/mcp/x",
        "/.well-known/oauth-protected-resource/mcpx",
        "/.well-known/oauth-protected-resource/mcp?x=1",
        "/.well-known/oauth-protected-resource/mcp/",
        "/.well-known/oauth-protected-resource/mcp;x",
        "/.well-known/oauth-authorization-server/x",
        "/.well-known/oauth-authorization-server?x",
        "/.well-known/oauth-authorization-serverx",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/",
        "/.well-known/openid-configuration",
        "/.well-known/",
        "/.well-known/x",
        "/.well-known",
        "/mcp%00",
        "/mcp%00/../.well-known/x",
        "/mcp%c0%ae%c0%ae/.well-known/x",
        "/%c0%ae%c0%ae/mcp",
        "/mcp/%c0%af..%c0%af.well-known",
        "/mcp%25%32%65",
        "/mcp%252e%252e/x",
        "/mcp%",
        "/mcp%zz",
        "/mcp#/.well-known/x",
        "/mcp?/../.well-known/x",
        "/mcp/x",
        "/",
        "/admin/mcp",
        "/mcp/.well-known/x",
        "/%6dcp",
        "/mcp%7e",
        "/mcp%20",
        "/mcp x",
        "/mcp\t/x",
        "/verify",
        "/_forwardauth/verify",
        "/health",
    ]
    .iter()
    .map(|p| p.as_bytes().to_vec())
    .collect();
    paths.push(b"/mcp\x00".to_vec());
    paths.push(b"/mcp\x7f".to_vec());
    paths.push("/mcp/\u{e9}".as_bytes().to_vec());
    paths.push(b"/mcp\xc0\xae\xc0\xae/.well-known/x".to_vec());
    for port in [pa, pb] {
        let host = format!("127.0.0.1:{port}");
        for path in &paths {
            for method in ["GET", "POST"] {
                let req = Req::new(method, "", &host).raw_target(path);
                c.push(
                    format!("path {method} {} on {host}", show(path)),
                    port,
                    Kind::Hostile,
                    &req,
                );
            }
        }
    }
    // With A's token: whatever gets through must be exactly resource A, in normal form.
    for path in &paths {
        let req = Req::new("POST", "", &a).raw_target(path).bearer(&tokens.a);
        c.push(
            format!("path POST {} on {a} with A's token", show(path)),
            pa,
            Kind::WithToken,
            &req,
        );
    }
    for path in [
        "/mcp/../admin/mcp",
        "/mcp/%2e%2e/admin/mcp",
        "/mcp/..%2fadmin/mcp",
        "/mcp%2f..%2fadmin%2fmcp",
        "/mcp\\..\\admin\\mcp",
        "//admin/mcp",
        "/ADMIN/mcp",
        "/Admin/Mcp",
        "/admin%2fmcp",
        "/admin/mcp;/../../mcp",
        "/mcp/..;/admin/mcp",
    ] {
        let req = Req::new("POST", path, &a).json().bearer(&tokens.a);
        c.push(
            format!("A's token towards the admin resource: {path}"),
            pa,
            Kind::WithToken,
            &req,
        );
    }

    // --- Forwarded headers sent by the client, once or twice, pointing at discovery.
    let spoofs: Vec<(&str, String)> = vec![
        ("X-Forwarded-Uri", prm.to_owned()),
        ("X-Forwarded-Uri", asm.to_owned()),
        ("X-Forwarded-Uri", "/.well-known/x".to_owned()),
        ("X-Forwarded-Host", format!("{a}\\.well-known\\x?")),
        ("X-Forwarded-Host", a.clone()),
        ("X-Forwarded-Host", b.clone()),
        ("X-Forwarded-Host", "other.example".to_owned()),
        ("X-Forwarded-Method", "GET".to_owned()),
        ("X-Forwarded-Method", "OPTIONS".to_owned()),
        ("X-Forwarded-Method", "HEAD".to_owned()),
        ("X-Forwarded-Proto", "https".to_owned()),
        ("X-Forwarded-Proto", "ftp".to_owned()),
        ("X-Forwarded-Prefix", "/.well-known".to_owned()),
        ("X-Original-URL", format!("http://{a}{prm}")),
        ("X-Original-URL", format!("http://{a}{asm}")),
        ("X-Original-URL", "/.well-known/x".to_owned()),
        ("X-Original-URI", prm.to_owned()),
        ("X-Original-URI", "/.well-known/x".to_owned()),
        ("X-Original-Method", "GET".to_owned()),
        ("X-Original-Method", "OPTIONS".to_owned()),
        ("X-Rewrite-URL", "/.well-known/x".to_owned()),
        (
            "Forwarded",
            format!("host=\"{a}\\.well-known\";proto=https"),
        ),
        ("X-HTTP-Method-Override", "GET".to_owned()),
        ("X-Method-Override", "OPTIONS".to_owned()),
    ];
    for (name, value) in &spoofs {
        for (port, method, target) in [
            (pa, "POST", "/mcp"),
            (pa, "GET", "/mcp"),
            (pb, "POST", "/mcp"),
        ] {
            let host = format!("127.0.0.1:{port}");
            let once = Req::new(method, target, &host).header(name, value);
            c.push(
                format!("{name}: {value} on {method} {host}{target}"),
                port,
                Kind::Hostile,
                &once,
            );
            let twice = once.clone().header(name, value);
            c.push(
                format!("{name}: {value} twice on {method} {host}{target}"),
                port,
                Kind::Hostile,
                &twice,
            );
            let conflicting = Req::new(method, target, &host)
                .header(name, target)
                .header(name, value);
            c.push(
                format!("{name}: {target} then {value} on {method} {host}{target}"),
                port,
                Kind::Hostile,
                &conflicting,
            );
        }
    }
    // Every family at once, as one coherent discovery request.
    for port in [pa, pb] {
        let host = format!("127.0.0.1:{port}");
        let all = Req::new("POST", "/mcp", &host)
            .header("X-Forwarded-Method", "GET")
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", &host)
            .header("X-Forwarded-Uri", prm)
            .header("X-Original-URL", &format!("http://{host}{prm}"))
            .header("X-Original-URI", prm)
            .header("X-Original-Method", "GET");
        c.push(
            format!("every forwarded header describing discovery on POST {host}/mcp"),
            port,
            Kind::Hostile,
            &all,
        );
    }
    // A's token, with forwarded headers that describe resource A, on requests that are not for A.
    for (port, target, name, value) in [
        (pa, "/admin/mcp", "X-Forwarded-Uri", "/mcp".to_owned()),
        (pa, "/admin/mcp", "X-Original-URI", "/mcp".to_owned()),
        (
            pa,
            "/admin/mcp",
            "X-Original-URL",
            format!("http://{a}/mcp"),
        ),
        (pb, "/mcp", "X-Forwarded-Host", a.clone()),
        (pb, "/mcp", "X-Original-URL", format!("http://{a}/mcp")),
        (pb, "/mcp", "X-Forwarded-Port", pa.to_string()),
        (pb, "/mcp", "Forwarded", format!("host=\"{a}\"")),
    ] {
        let host = format!("127.0.0.1:{port}");
        let req = Req::new("POST", target, &host)
            .json()
            .bearer(&tokens.a)
            .header(name, &value);
        c.push(
            format!("A's token on {host}{target} with {name}: {value}"),
            port,
            Kind::Hostile,
            &req,
        );
        let twice = req.clone().header(name, &value);
        c.push(
            format!("A's token on {host}{target} with {name}: {value} twice"),
            port,
            Kind::Hostile,
            &twice,
        );
    }
    // A's token on host B, and B's on host A.
    for (port, token) in [(pb, &tokens.a), (pa, &tokens.b)] {
        let host = format!("127.0.0.1:{port}");
        let req = Req::new("POST", "/mcp", &host).json().bearer(token);
        c.push(
            format!("the other resource's token on {host}"),
            port,
            Kind::Hostile,
            &req,
        );
    }

    // --- Authorization: duplicated, or not a bearer token of this resource.
    for (label, values) in [
        ("valid twice", vec![tokens.a.clone(), tokens.a.clone()]),
        ("valid then garbage", vec![tokens.a.clone(), "x".to_owned()]),
        ("garbage then valid", vec!["x".to_owned(), tokens.a.clone()]),
        ("B's then A's", vec![tokens.b.clone(), tokens.a.clone()]),
    ] {
        let mut req = Req::new("POST", "/mcp", &a).json();
        for v in &values {
            req = req.bearer(v);
        }
        c.push(format!("Authorization {label}"), pa, Kind::Hostile, &req);
    }
    for value in [
        format!("Bearer {}, Bearer x", tokens.a),
        format!("Bearer x, Bearer {}", tokens.a),
        format!("Basic {}", tokens.a),
        format!("Bearer {}x", tokens.a),
        "Bearer".to_owned(),
        String::new(),
    ] {
        let req = Req::new("POST", "/mcp", &a)
            .json()
            .header("Authorization", &value);
        c.push(
            format!("Authorization: {}", value.replace(&tokens.a, "<A's token>")),
            pa,
            Kind::Hostile,
            &req,
        );
    }

    // --- Oversized heads.
    for (label, size) in [("16 KiB", 16 << 10), ("64 KiB", 64 << 10)] {
        let pad = "a".repeat(size);
        c.push(
            format!("a {label} header line"),
            pa,
            Kind::Hostile,
            &Req::new("POST", "/mcp", &a).header("X-Pad", &pad),
        );
        c.push(
            format!("a {label} header line, discovery"),
            pa,
            Kind::Hostile,
            &Req::new("GET", prm, &a).header("X-Pad", &pad),
        );
        c.push(
            format!("a {label} header line with A's token"),
            pa,
            Kind::WithToken,
            &Req::new("POST", "/mcp", &a)
                .json()
                .bearer(&tokens.a)
                .header("X-Pad", &pad),
        );
        c.push(
            format!("a {label} X-Forwarded-Uri"),
            pa,
            Kind::Hostile,
            &Req::new("POST", "/mcp", &a).header("X-Forwarded-Uri", &format!("{prm}?{pad}")),
        );
        c.push(
            format!("a {label} path"),
            pa,
            Kind::Hostile,
            &Req::new("GET", &format!("/mcp/{pad}"), &a),
        );
        c.push(
            format!("a {label} Host"),
            pa,
            Kind::Hostile,
            &Req::new("GET", "/mcp", &format!("{pad}.example:{pa}")),
        );
    }
    let pad = "a".repeat(200 << 10);
    for name in ["X-Pad", "Authorization", "Origin", "Mcp-Method"] {
        c.push(
            format!("a 200 KiB {name} header"),
            pa,
            Kind::Hostile,
            &Req::new("POST", "/mcp", &a).header(name, &pad),
        );
    }
    // Large and many header lines, each without and with A's token.
    let line = "a".repeat(8000);
    let padded: Vec<(String, usize, &str, &str)> = [4, 20]
        .into_iter()
        .map(|n| {
            (
                format!("{n} header lines of 8000 bytes"),
                n,
                "X-Pad",
                line.as_str(),
            )
        })
        .chain(
            [80, 90, 100, 200, 1000]
                .into_iter()
                .map(|n| (format!("{n} more header lines"), n, "X-Many", "x")),
        )
        .collect();
    for (what, count, name, value) in padded {
        for token in [false, true] {
            let mut req = Req::new("POST", "/mcp", &a).json();
            for i in 0..count {
                req = req.header(&format!("{name}-{i}"), value);
            }
            let kind = if token {
                req = req.bearer(&tokens.a);
                Kind::WithToken
            } else {
                Kind::Hostile
            };
            let label = if token {
                format!("{what} with A's token")
            } else {
                what.clone()
            };
            c.push(label, pa, kind, &req);
        }
    }

    // --- Methods.
    let methods = [
        "OPTIONS", "options", "Options", "get", "post", "Get", "head", "FOO", "PROPFIND", "TRACE",
        "DELETE", "PATCH", "PUT", "HEAD", "PRI", "M-SEARCH", "GET\tX",
    ];
    for method in methods {
        for target in ["/mcp", prm, "/.well-known/x", "/admin/mcp", asm] {
            c.push(
                format!("method {method:?} {target}"),
                pa,
                Kind::Hostile,
                &Req::new(method, target, &a),
            );
        }
    }
    for (label, origin, acrm) in [
        ("no Origin, no Access-Control-Request-Method", None, None),
        ("Origin only", Some(format!("http://{a}")), None),
        ("Access-Control-Request-Method only", None, Some("POST")),
        ("allowed Origin", Some(format!("http://{a}")), Some("POST")),
        (
            "evil Origin",
            Some("https://evil.example".to_owned()),
            Some("POST"),
        ),
        ("null Origin", Some("null".to_owned()), Some("POST")),
    ] {
        for target in [
            "/mcp",
            "/admin/mcp",
            "/.well-known/x",
            "/mcp/../x",
            "/nothing",
        ] {
            let mut req = Req::new("OPTIONS", target, &a);
            if let Some(o) = &origin {
                req = req.header("Origin", o);
            }
            if let Some(m) = acrm {
                req = req.header("Access-Control-Request-Method", m);
            }
            c.push(
                format!("preflight, {label}: OPTIONS {target}"),
                pa,
                Kind::Hostile,
                &req,
            );
        }
    }

    // --- Smuggling shapes, without a token.
    let smuggled = format!("0\r\n\r\nPOST /mcp HTTP/1.1\r\nHost: {a}\r\nX-Probe: smuggled\r\n\r\n");
    for (label, te, cl) in [
        ("CL.TE", Some("chunked"), Some(smuggled.len().to_string())),
        ("TE.CL", Some("chunked"), Some("4".to_owned())),
        (
            "TE obfuscated",
            Some(" chunked"),
            Some(smuggled.len().to_string()),
        ),
        (
            "two CL",
            None,
            Some(format!("0\r\nContent-Length: {}", smuggled.len())),
        ),
    ] {
        let mut req = Req::new("POST", asm, &a);
        if let Some(te) = te {
            req = req.header("Transfer-Encoding", te);
        }
        if let Some(cl) = cl {
            req = req.header("Content-Length", &cl);
        }
        let id = c.probes.len();
        let mut bytes = req.bytes(&id.to_string());
        bytes.extend_from_slice(smuggled.as_bytes());
        c.probes.push(Probe {
            id,
            what: format!("smuggling {label}"),
            port: pa,
            bytes,
            kind: Kind::Hostile,
            read_all: true,
        });
    }

    // --- With a valid token: aliases of every identity header, and forged values of the headers themselves.
    for (port, token) in [(pa, &tokens.a), (pb, &tokens.b)] {
        let host = format!("127.0.0.1:{port}");
        let mut all_aliases = Req::new("POST", "/mcp", &host).json().bearer(token);
        for h in IDENTITY {
            let value = if h == "X-Scopes" {
                "mcp mcp:admin"
            } else {
                "mallory"
            };
            let mut names = alias_spellings(h);
            names.push(h.to_owned());
            names.push(h.to_ascii_lowercase());
            names.push(h.to_ascii_uppercase().replace('-', "_"));
            names.push(h.to_ascii_lowercase().replace('-', "_"));
            for name in names {
                let req = Req::new("POST", "/mcp", &host)
                    .json()
                    .bearer(token)
                    .header(&name, value);
                c.push(
                    format!("{name}: {value} with a valid token on {host}"),
                    port,
                    Kind::WithToken,
                    &req,
                );
                all_aliases = all_aliases.header(&name, value);
            }
            for raw in [
                format!("{h} "),
                format!("{h}\t"),
                format!(" {h}"),
                format!("{h}\0"),
            ] {
                let req = Req::new("POST", "/mcp", &host)
                    .json()
                    .bearer(token)
                    .raw_header(raw.as_bytes(), value.as_bytes());
                c.push(
                    format!("{raw:?}: {value} with a valid token on {host}"),
                    port,
                    Kind::WithToken,
                    &req,
                );
            }
        }
        // The headers the gate reads besides the token, twice: the gate must see both (and refuse) or the MCP
        // server must get the one value the gate judged.
        let own = format!("http://{host}");
        for (name, first, second) in [
            ("Origin", own.as_str(), "https://evil.example"),
            ("Origin", "https://evil.example", own.as_str()),
            ("Origin", own.as_str(), own.as_str()),
            ("MCP-Protocol-Version", "2026-07-28", "2025-06-18"),
            ("Mcp-Method", "tools/list", "tools/call"),
            ("Mcp-Name", "echo", "admin-tool"),
        ] {
            let req = Req::new("POST", "/mcp", &host)
                .json()
                .bearer(token)
                .header(name, first)
                .header(name, second);
            c.push(
                format!("{name}: {first} and {name}: {second} with a valid token on {host}"),
                port,
                Kind::WithToken,
                &req,
            );
        }
        c.push(
            format!("every alias at once with a valid token on {host}"),
            port,
            Kind::WithToken,
            &all_aliases,
        );

        // Positive controls: these must reach the upstream.
        for (method, target) in [
            ("POST", "/mcp"),
            ("GET", "/mcp"),
            ("DELETE", "/mcp"),
            ("POST", "/mcp?x=1"),
            ("POST", "/mcp/"),
        ] {
            let req = Req::new(method, target, &host).json().bearer(token);
            c.push(
                format!("control: {method} {host}{target} with a valid token"),
                port,
                Kind::Control,
                &req,
            );
        }

        // A valid request, then one without a token on the same connection.
        for second in ["/mcp", "/admin/mcp", "/.well-known/x"] {
            let first = Req::new("POST", "/mcp", &host)
                .json()
                .bearer(token)
                .keep_alive();
            c.push_pipelined(
                format!("pipelined after a valid request: POST {second} without a token on {host}"),
                port,
                &first,
                &Req::new("POST", second, &host).json(),
            );
        }
    }
    c
}

// ---------------------------------------------------------------------------------------------------------------
// The run.

/// Normalises a header name as a CGI-style backend reads it: lower case, `_` and `.` for `-`.
fn normalised(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace(['_', '.'], "-")
}

/// Every HTTP status line in a stream of answers.
fn statuses(stream: &str) -> Vec<u16> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(i) = rest.find("HTTP/1.") {
        let line = &rest[i..];
        if let Some(code) = line
            .get(9..12)
            .filter(|_| line.get(8..9) == Some(" "))
            .and_then(|c| c.parse().ok())
        {
            out.push(code);
        }
        rest = &rest[i + 7..];
    }
    out
}

/// Sends every probe (at most [`CONCURRENCY`] at once) and returns the answers by probe id.
async fn run_all(probes: Arc<Vec<Probe>>) -> Vec<Answer> {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..probes.len() {
        let probes = probes.clone();
        let permit = permits.clone().acquire_owned().await.unwrap();
        set.spawn(async move {
            let p = &probes[i];
            let answer = send(p.port, &p.bytes, p.read_all).await;
            drop(permit);
            (p.id, answer)
        });
    }
    let mut answers = vec![Answer::default(); probes.len()];
    while let Some(done) = set.join_next().await {
        let (id, answer) = done.unwrap();
        answers[id] = answer;
    }
    answers
}

/// The catalogue and the CORS checks through one real proxy.
pub async fn run(kind: Proxy) {
    let started = Instant::now();
    let recorder = Recorder::start().await;
    // Traefik: host A's entry point has the options of the shipped traefik.yml, host B's none, so the snippet's
    // own rules are tried too. nginx and Caddy serve both hosts alike.
    let stack = Stack::start_in_front_of(
        kind,
        "",
        &[],
        EntryPointB::Bare,
        Upstream::Port(recorder.port),
        600,
    )
    .await;
    let port = |u: &str| url::Url::parse(u).unwrap().port().unwrap();
    let (pa, pb) = (port(&stack.a), port(&stack.b));
    let tokens = Tokens {
        a: oauth_flow(&stack.issuer, &stack.a, "mcp").await["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
        b: oauth_flow(&stack.issuer, &stack.b, "mcp").await["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let name = stack.proxy.name.clone();
    let ready = started.elapsed();

    let probes = Arc::new(catalogue(pa, pb, free_port(), &tokens).probes);
    let sent = Instant::now();
    let answers = run_all(probes.clone()).await;
    let send_time = sent.elapsed();
    // The recorder keeps a request before it answers; let the last closes settle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = recorder.received();

    let mut failures: Vec<String> = Vec::new();
    let mut reached: BTreeSet<usize> = BTreeSet::new();
    let mut reached_with_token = 0usize;
    for r in &received {
        // 1. No alias of an identity header, no client-chosen identity.
        for (n, v) in &r.headers {
            let norm = normalised(n);
            let exact = IDENTITY.iter().any(|h| h.eq_ignore_ascii_case(n));
            if IDENTITY.iter().any(|h| h.eq_ignore_ascii_case(&norm)) && !exact {
                failures.push(format!(
                    "alias {n:?}: {v:?} reached the upstream ({})",
                    r.request_line
                ));
            }
            if exact && (v.contains("mallory") || v.contains("mcp:admin")) {
                failures.push(format!(
                    "a client's {n}: {v} reached the upstream ({})",
                    r.request_line
                ));
            }
        }
        if !r.values("authorization").is_empty() {
            failures.push(format!("a token reached the upstream ({})", r.request_line));
        }
        // 2. Which probe, and may it be here?
        let probe_ref = r.probe();
        let pipelined = probe_ref.is_some_and(|p| p.ends_with("-pipelined"));
        let probe = probe_ref
            .and_then(|p| p.trim_end_matches("-pipelined").parse::<usize>().ok())
            .and_then(|id| probes.get(id));
        let with_token = probe.is_some_and(|p| p.kind != Kind::Hostile) && !pipelined;
        let what = probe.map_or_else(
            || format!("an unknown request (X-Probe {probe_ref:?})"),
            |p| {
                format!(
                    "probe {}{} ({})",
                    p.id,
                    if pipelined { " pipelined" } else { "" },
                    p.what
                )
            },
        );
        if let Some(p) = probe
            && !pipelined
        {
            reached.insert(p.id);
        }
        if with_token {
            reached_with_token += 1;
            let p = probe.unwrap();
            let path = r.target.split('?').next().unwrap_or_default();
            if check_path(path).is_err() || !(path == "/mcp" || path.starts_with("/mcp/")) {
                failures.push(format!(
                    "{what}: the gate admitted it, the upstream got {:?}, not a normal path under /mcp",
                    r.request_line
                ));
            }
            let host = format!("127.0.0.1:{}", p.port);
            if r.values("host") != [host.as_str()] {
                failures.push(format!(
                    "{what}: admitted for {host}, the upstream got Host {:?}",
                    r.values("host")
                ));
            }
            // The gate admitted it, so any Origin the MCP server sees is the resource's own (the only allowed one).
            if r.values("origin")
                .iter()
                .any(|o| *o != format!("http://{host}"))
            {
                failures.push(format!(
                    "{what}: admitted, the upstream got Origin {:?}",
                    r.values("origin")
                ));
            }
            for name in GATE_REQUEST_HEADERS {
                if r.values(name).len() > 1 {
                    failures.push(format!(
                        "{what}: the gate reads one {name}, the upstream got {:?}",
                        r.values(name)
                    ));
                }
            }
            if r.values("x-user-id") != ["local:alice"] {
                failures.push(format!(
                    "{what}: X-User-Id at the upstream is {:?}, not the gate's",
                    r.values("x-user-id")
                ));
            }
        } else if !discovery_paths().contains(&r.target.as_str()) {
            failures.push(format!(
                "{what} reached the upstream without a valid token: {:?}, headers {:?}",
                r.request_line, r.headers
            ));
        }
    }

    // 3. The service never answers 5xx; no proxy answers 500/502/503/504.
    let gate_tap = stack.gate_tap.as_ref().unwrap();
    let mut gate_statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for reply in gate_tap.replies() {
        for s in statuses(&reply) {
            *gate_statuses.entry(s).or_default() += 1;
        }
    }
    if let Some((s, n)) = gate_statuses.iter().find(|(s, _)| **s >= 500) {
        failures.push(format!("the service answered {s} ({n} times)"));
    }
    // Connections to the gate are reused: each guarded request costs a `/verify` call, and a TCP connection for
    // each would cost more than the check. nginx: the snippet's `upstream` with `keepalive`, and `HEAD` so that
    // the 401s and 403s (most of these calls) keep their connection too; Caddy's and Traefik's clients keep
    // connections alive by default (Traefik's only two idle ones per host, so under this concurrency it
    // reconnects often). With these hostile probes nginx still closes some connections: about 5 calls a
    // connection, against 1 without the keep-alive.
    let calls_per_connection: Vec<usize> = gate_tap
        .connections()
        .iter()
        .map(|c| c.matches(" /verify HTTP/1.").count())
        .filter(|n| *n > 0)
        .collect();
    let calls: usize = calls_per_connection.iter().sum();
    let reused = match kind {
        Proxy::Nginx => calls_per_connection.len() * 2 <= calls,
        Proxy::Caddy | Proxy::Traefik => calls_per_connection.iter().any(|n| *n > 1),
    };
    if !reused {
        failures.push(format!(
            "{name} reused too few connections to the gate: {calls} /verify calls over {} connections",
            calls_per_connection.len()
        ));
    }
    let mut proxy_statuses: BTreeMap<String, usize> = BTreeMap::new();
    for (p, answer) in probes.iter().zip(&answers) {
        *proxy_statuses.entry(answer.status_label()).or_default() += 1;
        let Some(s @ (500 | 502 | 503 | 504)) = answer.status else {
            continue;
        };
        // The one 5xx a proxy may give: a request head over 128 KiB (actix-http's limit, not configurable)
        // that the proxy copies to the service. Caddy's forward_auth copies every client header, Traefik its
        // authRequestHeaders (Authorization, Origin, MCP-*); the service's HTTP layer stops reading at 128 KiB
        // and closes the connection, so the proxy may have no answer to read: Caddy says 502, Traefik 500. The
        // request is refused all the same (nothing reaches the MCP server). nginx never sends such a head: it
        // refuses a header line over 8 KiB itself (400) and passes the gate only the headers it reads.
        let oversized = p.bytes.len() > 128 << 10;
        let cannot_forward =
            oversized && matches!((kind, s), (Proxy::Caddy, 502) | (Proxy::Traefik, 500));
        if !cannot_forward {
            failures.push(format!("probe {} ({}): {name} answered {s}", p.id, p.what));
        }
    }

    // A request sent after a valid one on the same connection was judged on its own (not just left unread).
    for (p, answer) in probes.iter().zip(&answers) {
        if p.read_all
            && p.kind == Kind::WithToken
            && !matches!(answer.all.as_slice(), [200, 401 | 403])
        {
            failures.push(format!(
                "probe {} ({}): answers {:?}, not 200 then 401 or 403",
                p.id, p.what, answer.all
            ));
        }
    }

    // 4. The controls reached the upstream; discovery is answered.
    for (p, answer) in probes.iter().zip(&answers) {
        if p.kind == Kind::Control && (!reached.contains(&p.id) || answer.status != Some(200)) {
            failures.push(format!(
                "control probe {} ({}) did not reach the upstream: {}",
                p.id,
                p.what,
                answer.status_label()
            ));
        }
    }
    let discovery = send(
        pa,
        &Req::new(
            "GET",
            "/.well-known/oauth-protected-resource/mcp",
            &format!("127.0.0.1:{pa}"),
        )
        .bytes("discovery"),
        false,
    )
    .await;
    let discovery_at_service = gate_tap
        .connections()
        .iter()
        .any(|c| c.contains("GET /.well-known/oauth-protected-resource/mcp HTTP/1."));
    if discovery.status != Some(200) || !discovery_at_service {
        failures.push(format!(
            "discovery through {name}: {} (at the service: {discovery_at_service})",
            discovery.status_label()
        ));
    }

    let cors = cors_checks(pa, &tokens.a, &recorder).await;
    failures.extend(cors);

    if let Some(dir) = std::env::var_os("E2E_DIFFERENTIAL_DUMP") {
        // Every probe, its answer and whether it reached the upstream, for reading by hand.
        let mut dump = String::new();
        for (p, answer) in probes.iter().zip(&answers) {
            dump.push_str(&format!(
                "{}\t{}\t{}\t{}\n",
                p.id,
                answer.status_label(),
                if reached.contains(&p.id) {
                    "upstream"
                } else {
                    "-"
                },
                p.what
            ));
        }
        std::fs::write(
            std::path::Path::new(&dir).join(format!("differential-{}.tsv", kind.name())),
            dump,
        )
        .unwrap();
    }
    let with_token_sent = probes.iter().filter(|p| p.kind != Kind::Hostile).count();
    eprintln!(
        "differential through {name}: {} requests sent ({} with a valid token, {} without), {} reached the upstream, {} of them with a valid token; {name} answered {proxy_statuses:?}; the service answered {gate_statuses:?}, {calls} /verify calls over {} connections; stack {:.1} s, probes {:.1} s, total {:.1} s",
        probes.len(),
        with_token_sent,
        probes.len() - with_token_sent,
        reached.len(),
        reached_with_token,
        calls_per_connection.len(),
        ready.as_secs_f64(),
        send_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(probes.len() >= 300, "{} probes", probes.len());
    assert!(
        failures.is_empty(),
        "{} failures through {name}:\n{}\n--- {name} log (tail)\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&stack.proxy.log(), 40)
    );
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `Origin` and CORS through the proxy; returns what went wrong.
async fn cors_checks(pa: u16, token_a: &str, recorder: &Recorder) -> Vec<String> {
    let a = format!("127.0.0.1:{pa}");
    let own = format!("http://{a}");
    let mut failures = Vec::new();
    let before = recorder.received().len();
    let check = |failures: &mut Vec<String>, ok: bool, what: &str, answer: &Answer| {
        if !ok {
            failures.push(format!(
                "CORS: {what}: {} {:?}",
                answer.status_label(),
                answer.headers
            ));
        }
    };

    // A valid token from a page on another origin: 403, and the MCP server never sees it.
    let evil = send(
        pa,
        &Req::new("POST", "/mcp", &a)
            .json()
            .bearer(token_a)
            .header("Origin", "https://evil.example")
            .bytes("cors-evil"),
        false,
    )
    .await;
    check(
        &mut failures,
        evil.status == Some(403),
        "a valid token with Origin https://evil.example is refused (403)",
        &evil,
    );

    // No token from the resource's own origin: 401 that the page can read.
    let challenge = send(
        pa,
        &Req::new("POST", "/mcp", &a)
            .json()
            .header("Origin", &own)
            .bytes("cors-401"),
        false,
    )
    .await;
    check(
        &mut failures,
        challenge.status == Some(401)
            && challenge.header("access-control-allow-origin") == Some(own.as_str())
            && challenge
                .header("access-control-expose-headers")
                .is_some_and(|v| v.to_ascii_lowercase().contains("www-authenticate"))
            && challenge.header("www-authenticate").is_some(),
        "no token from the own origin: 401 with Access-Control-Allow-Origin and Expose-Headers WWW-Authenticate",
        &challenge,
    );

    // The preflight from the own origin: answered by the service.
    let preflight = send(
        pa,
        &Req::new("OPTIONS", "/mcp", &a)
            .header("Origin", &own)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .bytes("cors-preflight"),
        false,
    )
    .await;
    check(
        &mut failures,
        preflight.status.is_some_and(|s| (200..300).contains(&s))
            && preflight.header("access-control-allow-origin") == Some(own.as_str())
            && preflight.header("access-control-allow-methods")
                == Some(oauth_core::Preflight::ALLOW_METHODS),
        "a preflight from the own origin: 2xx with the service's CORS headers",
        &preflight,
    );

    // A preflight from another origin: 403.
    let refused = send(
        pa,
        &Req::new("OPTIONS", "/mcp", &a)
            .header("Origin", "https://evil.example")
            .header("Access-Control-Request-Method", "POST")
            .bytes("cors-preflight-evil"),
        false,
    )
    .await;
    check(
        &mut failures,
        refused.status == Some(403) && refused.header("access-control-allow-origin").is_none(),
        "a preflight from https://evil.example: 403 without CORS headers",
        &refused,
    );

    tokio::time::sleep(Duration::from_millis(100)).await;
    for r in recorder.received().iter().skip(before) {
        if r.probe().is_some_and(|p| p.starts_with("cors-")) {
            failures.push(format!(
                "CORS: {:?} reached the upstream ({:?})",
                r.probe(),
                r.request_line
            ));
        }
    }
    failures
}
