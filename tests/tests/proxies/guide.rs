//! The README's guide, "From zero to a protected MCP server", run as written.
//!
//! Each shell block of the guide is marked in the README by the HTML comment before it (invisible on the rendered
//! page): `<!-- guide:run -->` blocks run, in order, in one bash, as typed into one terminal (so `CLIENT_ID` and
//! the others carry over); `<!-- guide:serve PORT -->` blocks run in a terminal of their own, and the next step
//! waits until `PORT` accepts connections; the `<!-- guide:code -->` block is where a person pastes the code from
//! the browser's address bar.
//!
//! The commands are the guide's, with exactly these substitutions, all in [`substitute`]:
//!
//! - the fixed ports (8080 the service, 3001 the MCP server, 8000 Caddy) become free ports, wherever the guide
//!   writes `127.0.0.1:PORT`, `127.0.0.1%3APORT` or `PORT=PORT`;
//! - `npx -y @modelcontextprotocol/server-everything@VERSION` becomes the same package from `tests/js` (installed
//!   by `.ci/run` from the lockfile, whose version must be the guide's), run by `node` bound to 127.0.0.1
//!   (`tests/js/loopback.mjs`), so the test downloads nothing;
//! - the pasted code is the one the browser step got.
//!
//! The browser step, opening the printed `/authorize` address, signing in as alice and approving, is done by an
//! HTTP client with a cookie jar, as a browser would. The password typed at `hash-password` is the bash's stdin;
//! the commands come through a FIFO, so that stdin is the terminal's and not the script. `forwardauth-svc` is the
//! workspace's binary, built by `cargo build -p forwardauth-svc` and put first on the `PATH`; every process runs
//! in a temporary directory, which is also its `HOME`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::support::*;

/// How a block of the guide is run.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// In the guide's terminal, to completion.
    Run,
    /// In a terminal of its own; serves on the port.
    Serve(u16),
    /// The code pasted from the browser.
    Code,
}

#[derive(Clone, Debug)]
struct Block {
    /// The README line its fence opens on.
    line: usize,
    kind: Kind,
    code: String,
}

/// The marked shell blocks of `readme`, in order, fence indentation removed.
fn guide_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut marked: Option<Kind> = None;
    let mut open: Option<(usize, usize, Kind, Vec<&str>)> = None;
    for (n, line) in readme.lines().enumerate() {
        let trimmed = line.trim();
        if let Some((start, indent, kind, lines)) = &mut open {
            if trimmed == "```" {
                blocks.push(Block {
                    line: *start,
                    kind: kind.clone(),
                    code: lines.join("\n") + "\n",
                });
                open = None;
            } else {
                lines.push(line.get(*indent..).unwrap_or(""));
            }
            continue;
        }
        if let Some(mark) = trimmed
            .strip_prefix("<!-- guide:")
            .and_then(|m| m.strip_suffix(" -->"))
        {
            marked = Some(match mark.split_once(' ') {
                None if mark == "run" => Kind::Run,
                None if mark == "code" => Kind::Code,
                Some(("serve", port)) => Kind::Serve(port.parse().unwrap()),
                _ => panic!("README.md line {}: unknown guide mark {mark:?}", n + 1),
            });
        } else if trimmed == "```sh" {
            if let Some(kind) = marked.take() {
                let indent = line.len() - line.trim_start().len();
                open = Some((n + 1, indent, kind, Vec::new()));
            }
        } else if !trimmed.is_empty() && marked.is_some() {
            panic!(
                "README.md line {}: a guide mark must be followed by a ```sh block",
                n + 1
            );
        }
    }
    blocks
}

/// The free ports standing in for the guide's.
struct Ports {
    service: u16,
    mcp: u16,
    proxy: u16,
}

/// The guide's command with the substitutions listed in the module documentation.
fn substitute(code: &str, ports: &Ports, server_everything: &str) -> String {
    let mut code = code.to_owned();
    for (fixed, free) in [
        (8080, ports.service),
        (3001, ports.mcp),
        (8000, ports.proxy),
    ] {
        for (from, to) in [
            (format!("127.0.0.1:{fixed}"), format!("127.0.0.1:{free}")),
            (
                format!("127.0.0.1%3A{fixed}"),
                format!("127.0.0.1%3A{free}"),
            ),
            (format!("PORT={fixed}"), format!("PORT={free}")),
        ] {
            code = code.replace(&from, &to);
        }
    }
    code.replace(
        &format!(
            "npx -y @modelcontextprotocol/server-everything@{}",
            server_everything_version()
        ),
        server_everything,
    )
}

/// The version of server-everything `tests/js/package.json` pins, which the guide must name.
fn server_everything_version() -> String {
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(e2e_dir().join("js/package.json")).unwrap())
            .unwrap();
    package["dependencies"]["@modelcontextprotocol/server-everything"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The workspace's `forwardauth-svc` binary, built (or brought up to date) first; its directory goes on the PATH.
fn forwardauth_svc_dir() -> PathBuf {
    workspace_binary("forwardauth-svc", "forwardauth-svc")
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The guide's terminal: one bash reading the commands from a FIFO, with the typed password on its stdin.
struct Terminal {
    bash: tokio::process::Child,
    script: std::fs::File,
    out: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: PathBuf,
}

const DONE: &str = "__guide_block_done__";

impl Terminal {
    async fn open(dir: &Path, path_var: &str, typed: &str) -> Terminal {
        let fifo = dir.join("guide.fifo");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // Read and write: opening does not wait for bash, and bash sees no end of the script while it is open.
        let mut script = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let stderr = dir.join("guide-terminal.stderr");
        let mut bash = tokio::process::Command::from(terminal_command(dir, path_var, "bash"))
            .args(["--noprofile", "--norc"])
            .arg(&fifo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = bash.stdin.take().unwrap();
        stdin.write_all(typed.as_bytes()).await.unwrap();
        drop(stdin);
        // A failing command ends the terminal, as `set -e` does; the test then shows what it printed.
        writeln!(script, "set -e -o pipefail").unwrap();
        let out = BufReader::new(bash.stdout.take().unwrap()).lines();
        Terminal {
            bash,
            script,
            out,
            stderr,
        }
    }

    /// Runs `code` and returns what it printed; fails the test if a command fails or 60 s pass.
    async fn run(&mut self, block: &Block, code: &str) -> String {
        write!(self.script, "{code}\nprintf '\\n%s\\n' {DONE}\n").unwrap();
        let mut printed = String::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.out.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "README.md line {}: no end within 60 s:\n{code}\nprinted:\n{printed}\nstderr:\n{}",
                        block.line,
                        std::fs::read_to_string(&self.stderr).unwrap_or_default()
                    )
                })
                .unwrap();
            match line {
                Some(l) if l == DONE => break,
                Some(l) => {
                    printed.push_str(&l);
                    printed.push('\n');
                }
                None => panic!(
                    "README.md line {}: a command failed ({:?}):\n{code}\nprinted:\n{printed}\nstderr:\n{}",
                    block.line,
                    self.bash.try_wait(),
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
        // The blank line printed before the marker.
        printed.pop();
        printed
    }
}

/// `program` in `dir`, as the guide's reader has it: the built binary first on the PATH, `dir` as HOME.
fn terminal_command(dir: &Path, path_var: &str, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("PATH", path_var)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join(".config"))
        .env("XDG_DATA_HOME", dir.join(".local/share"));
    cmd
}

/// What a person does in the browser with the printed address: sign in as alice, approve; the code from the
/// address the browser is sent to.
async fn sign_in_and_approve(authorize: &str, issuer: &str) -> String {
    let browser = test_support::browser();
    let page = browser.get(authorize).send().await.unwrap();
    assert_eq!(page.status(), 200, "{authorize}");
    let html = page.text().await.unwrap();
    let handle = field(&html, "handle");
    let consent = browser
        .post(format!("{issuer}/login"))
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", field(&html, "csrf").as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.unwrap();
    assert!(
        html.contains("my test client"),
        "not the consent page: {html}"
    );
    let approved = browser
        .post(format!("{issuer}/consent"))
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", field(&html, "csrf").as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302);
    let location = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        location.as_str().split('?').next(),
        Some("http://127.0.0.1:33418/callback"),
        "the redirect URI the guide registered"
    );
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

/// Alice's password, typed at `hash-password`.
const PASSWORD: &str = "correct horse battery staple";

pub async fn run_the_guide() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = guide_blocks(&readme);
    let kinds: Vec<&Kind> = blocks.iter().map(|b| &b.kind).collect();
    assert!(
        kinds.contains(&&Kind::Serve(8080))
            && kinds.contains(&&Kind::Serve(3001))
            && kinds.contains(&&Kind::Serve(8000))
            && kinds.contains(&&Kind::Code),
        "the guide's marked blocks: {kinds:?}"
    );

    // Fail with an installer hint before starting anything.
    for (what, program) in [
        ("curl", "curl"),
        ("jq", "jq"),
        ("openssl", "openssl"),
        ("Caddy (Debian caddy)", "caddy"),
        ("Node.js", "node"),
    ] {
        tool(what, &[program]);
    }
    let server_everything = format!(
        "node --import {} {}",
        e2e_dir().join("js/loopback.mjs").display(),
        node_modules()
            .join("@modelcontextprotocol/server-everything/dist/index.js")
            .display()
    );
    assert!(
        readme.contains(&format!(
            "npx -y @modelcontextprotocol/server-everything@{}",
            server_everything_version()
        )),
        "the guide runs the server-everything version tests/js pins"
    );
    let path_var = format!(
        "{}:{}",
        forwardauth_svc_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ports = Ports {
        service: free_port(),
        mcp: free_port(),
        proxy: free_port(),
    };
    let issuer = format!("http://127.0.0.1:{}", ports.service);
    let mcp_url = format!("http://127.0.0.1:{}/mcp", ports.proxy);

    let dir = tempfile::tempdir().unwrap();
    let mut terminal = Terminal::open(dir.path(), &path_var, &format!("{PASSWORD}\n")).await;
    let mut servers: Vec<Process> = Vec::new();
    let mut outputs: Vec<(usize, String)> = Vec::new();
    let mut code = None;
    for block in &blocks {
        let command = substitute(&block.code, &ports, &server_everything);
        match block.kind {
            Kind::Run => {
                let printed = terminal.run(block, &command).await;
                outputs.push((block.line, printed));
            }
            Kind::Serve(port) => {
                let free = match port {
                    8080 => ports.service,
                    3001 => ports.mcp,
                    8000 => ports.proxy,
                    other => panic!(
                        "README.md line {}: port {other} is not the guide's",
                        block.line
                    ),
                };
                let mut cmd = terminal_command(dir.path(), &path_var, "bash");
                cmd.arg("-c").arg(command.trim());
                let mut p = Process::spawn(&format!("line-{}", block.line), &mut cmd, dir.path());
                p.wait_for_port(free).await;
                servers.push(p);
            }
            Kind::Code => {
                // The browser step: the address the previous block printed.
                let (line, printed) = outputs.last().unwrap();
                let authorize = printed
                    .lines()
                    .rev()
                    .find(|l| l.starts_with(&format!("{issuer}/authorize?")))
                    .unwrap_or_else(|| {
                        panic!("README.md line {line}: no /authorize address printed:\n{printed}")
                    });
                let got = sign_in_and_approve(authorize, &issuer).await;
                let placeholder = command
                    .split('\'')
                    .nth(1)
                    .expect("CODE='…' in the code block");
                terminal
                    .run(block, &command.replace(placeholder, &got))
                    .await;
                code = Some(got);
            }
        }
    }
    assert!(code.is_some());
    let printed = |needle: &str| {
        outputs
            .iter()
            .find(|(_, out)| out.contains(needle))
            .map(|(_, out)| out.clone())
            .unwrap_or_else(|| {
                let logs: Vec<String> = servers
                    .iter()
                    .map(|s| format!("--- {}\n{}", s.name, s.log()))
                    .collect();
                panic!(
                    "no step printed {needle:?}; outputs: {outputs:#?}\n{}",
                    logs.join("\n")
                )
            })
    };

    // Step 2: the configuration passes its own check.
    printed("configuration OK (config.toml)");
    // Step 6: without a token, the gate's 401 through Caddy, and the discovery document it names; the answer the
    // guide shows after it is what came.
    let refused = printed("HTTP/1.1 401");
    let challenge = "Bearer scope=\"mcp\", resource_metadata=\"http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp\"";
    assert!(
        readme.contains(&format!("→ `401`, `WWW-Authenticate: {challenge}`")),
        "the guide shows the challenge"
    );
    assert!(
        refused.contains(&substitute(challenge, &ports, &server_everything)),
        "{refused}"
    );
    printed(&format!("\"authorization_servers\":[\"{issuer}\"]"));
    // Step 10: the MCP server answered through the proxy, as the guide shows.
    let answer = "\"serverInfo\":{\"name\":\"mcp-servers/everything\",\"title\":\"Everything Reference Server\",";
    assert!(
        readme.contains(&format!("→ `{answer}…}}`")),
        "the guide shows the answer"
    );
    printed(answer);

    // And the same MCP request without the token is refused at the proxy.
    let without = reqwest::Client::new()
        .post(&mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 401);
}

#[test]
fn the_guide_marks_parse_and_the_substitutions_are_the_listed_ones() {
    let blocks = guide_blocks(&std::fs::read_to_string(repo_root().join("README.md")).unwrap());
    assert!(blocks.len() >= 10, "{blocks:#?}");
    let ports = Ports {
        service: 1,
        mcp: 2,
        proxy: 3,
    };
    let before = "curl http://127.0.0.1:8080/x?r=http%3A%2F%2F127.0.0.1%3A8000%2Fmcp; PORT=3001 npx -y @modelcontextprotocol/server-everything@V x";
    let before = before.replace("@V", &format!("@{}", server_everything_version()));
    assert_eq!(
        substitute(&before, &ports, "SERVER"),
        "curl http://127.0.0.1:1/x?r=http%3A%2F%2F127.0.0.1%3A3%2Fmcp; PORT=2 SERVER x"
    );
}
