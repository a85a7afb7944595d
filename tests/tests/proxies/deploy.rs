//! The files under `deploy/` cannot rot: the proxy configurations are exactly what `forwardauth-svc snippet`
//! prints for the command on their first line (the same generator the nginx and Caddy end-to-end tests run), and
//! the container, systemd and Kubernetes files keep the properties the README promises.

use clap::Parser as _;
use forwardauth_svc::cli::{self, Cli, Command};
use serde::Deserialize as _;
use serde_norway::Value as Yaml;

use crate::support::repo_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_proxy_configurations_are_what_the_snippet_command_prints() {
    for path in [
        "deploy/nginx/mcp.conf",
        "deploy/caddy/Caddyfile",
        "deploy/traefik/dynamic/mcp.yml",
    ] {
        let text = read(path);
        let command = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .unwrap_or_else(|| {
                panic!("{path}: the first line must be `# forwardauth-svc snippet …`")
            });
        let cli = Cli::try_parse_from(command.split_whitespace())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let Command::Snippet(args) = cli.command() else {
            panic!("{path}: not a snippet command: {command}");
        };
        let mut printed = Vec::new();
        cli::print_snippet(&args, &mut printed).unwrap();
        assert!(
            String::from_utf8(printed).unwrap() == text,
            "{path} differs from the output of `{command}`; regenerate it:\n  cargo run -p forwardauth-svc -- {} > {path}",
            command.trim_start_matches("forwardauth-svc ")
        );
    }
}

#[test]
fn the_image_is_multi_stage_and_runs_as_a_non_root_user() {
    let dockerfile = read("deploy/Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    assert!(stages[0].contains(" AS build"), "{stages:?}");
    // One build makes both binaries; every runtime stage gets what it runs from it, and runs as a non-root user
    // set before its entry point.
    assert!(dockerfile.contains("cargo build --release --locked -p forwardauth-svc -p mcp-bridge"));
    let runtime = runtime_stages(&dockerfile);
    assert_eq!(runtime.len(), stages.len() - 1);
    for stage in &runtime {
        let user = stage
            .lines()
            .find_map(|l| l.strip_prefix("USER "))
            .unwrap_or_else(|| panic!("no USER in {stage}"));
        let uid = user.split(':').next().unwrap();
        assert!(uid != "root" && uid != "0", "runs as {user}");
        assert!(
            stage.find("USER ") < stage.find("ENTRYPOINT"),
            "USER before ENTRYPOINT in {stage}"
        );
    }
    // The default target (the last stage) is the service, with the bridge beside it; the `mcp-bridge` target is
    // the bridge on Node.js (for `npx` servers).
    let last = runtime.last().unwrap();
    assert!(
        last.contains(r#"ENTRYPOINT ["/usr/local/bin/forwardauth-svc"]"#),
        "{last}"
    );
    for bin in ["forwardauth-svc", "mcp-bridge"] {
        assert!(
            last.contains(&format!(
                "COPY --from=build /src/target/release/{bin} /usr/local/bin/{bin}"
            )),
            "the default image lacks {bin}"
        );
    }
    let bridge = runtime
        .iter()
        .find(|s| {
            s.starts_with("FROM node:") && s.lines().next().unwrap().ends_with(" AS mcp-bridge")
        })
        .expect("a stage `FROM node:… AS mcp-bridge`");
    assert!(
        bridge
            .contains("COPY --from=build /src/target/release/mcp-bridge /usr/local/bin/mcp-bridge")
    );
    assert!(
        bridge.contains(r#"ENTRYPOINT ["/usr/local/bin/mcp-bridge"]"#),
        "{bridge}"
    );
    // The image checks its own health with the binary (it has no curl), and `health` is a command.
    let healthcheck = last
        .split("\nHEALTHCHECK ")
        .nth(1)
        .expect("a HEALTHCHECK")
        .split("\n\n")
        .next()
        .unwrap();
    assert!(
        healthcheck.contains(r#"CMD ["/usr/local/bin/forwardauth-svc", "health"]"#),
        "{healthcheck}"
    );
    assert_eq!(
        Cli::try_parse_from(["forwardauth-svc", "health"])
            .unwrap()
            .command(),
        Command::Health
    );
    // The dependencies are built in a layer of their own, before the sources are copied: every member's
    // manifest, and a stub for every target cargo must find to load the workspace.
    let (deps, _) = dockerfile
        .split_once("\nCOPY . .")
        .expect("the sources are copied with `COPY . .`");
    assert!(
        deps.contains("cargo build --release --locked -p forwardauth-svc -p mcp-bridge"),
        "no dependency build of both binaries before `COPY . .`"
    );
    assert!(deps.contains("COPY Cargo.toml Cargo.lock ./"));
    for (member, stubs) in workspace_targets() {
        assert!(
            deps.contains(&format!("COPY {member}/Cargo.toml {member}/")),
            "the dependency layer lacks {member}/Cargo.toml"
        );
        assert!(
            stubs
                .iter()
                .any(|f| deps.contains(&format!(" {member}/{f}"))),
            "no stub target for {member}"
        );
        for f in stubs.iter().filter(|f| !f.starts_with("src/lib.rs")) {
            assert!(
                deps.contains(&format!(" {member}/{f}")),
                "the dependency layer lacks a stub for {member}/{f}"
            );
        }
    }
    // The compose file builds this image.
    let compose: Yaml = serde_norway::from_str(&read("deploy/traefik/docker-compose.yml")).unwrap();
    assert_eq!(
        compose["services"]["forwardauth"]["build"]["dockerfile"],
        Yaml::from("deploy/Dockerfile")
    );
}

/// The Dockerfile's stages after the first (the build), each from its `FROM` line to the next.
fn runtime_stages(dockerfile: &str) -> Vec<&str> {
    let starts: Vec<usize> = dockerfile
        .match_indices("\nFROM ")
        .map(|(i, _)| i + 1)
        .collect();
    starts
        .iter()
        .enumerate()
        .skip(1)
        .map(|(n, &start)| &dockerfile[start..starts.get(n + 1).map_or(dockerfile.len(), |e| *e)])
        .collect()
}

/// Per workspace member: `src/lib.rs` and every target its manifest names by path (or, for a bench without a
/// path, `benches/<name>.rs`), which a stub must stand for in the dependency layer.
fn workspace_targets() -> Vec<(String, Vec<String>)> {
    let root: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let members = root["workspace"]["members"].as_array().unwrap();
    members
        .iter()
        .map(|m| {
            let member = m.as_str().unwrap().to_owned();
            let manifest: toml::Value =
                toml::from_str(&read(&format!("{member}/Cargo.toml"))).unwrap();
            let mut files = vec!["src/lib.rs".to_owned()];
            for kind in ["bin", "example", "bench", "test"] {
                for t in manifest
                    .get(kind)
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                {
                    let dir = match kind {
                        "bin" => "src/bin",
                        "example" => "examples",
                        "bench" => "benches",
                        _ => "tests",
                    };
                    let path = t.get("path").and_then(|p| p.as_str()).map_or_else(
                        || format!("{dir}/{}.rs", t["name"].as_str().unwrap()),
                        str::to_owned,
                    );
                    files.push(path);
                }
            }
            (member, files)
        })
        .collect()
}

/// The systemd unit runs the service hardened: its own (dynamic) user, a state directory as the only place it
/// writes, no capabilities, the usual system calls only, a memory bound.
#[test]
fn the_systemd_unit_is_hardened() {
    let unit = read("deploy/systemd/forwardauth-svc.service");
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    let values = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "forwardauth"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("UMask", "0077"),
    ] {
        assert!(
            values(key).contains(&value),
            "{key}={value} missing: {:?}",
            values(key)
        );
    }
    assert!(values("MemoryMax").iter().any(|v| v.ends_with('M')));
    let exec = values("ExecStart");
    assert_eq!(exec.len(), 1);
    let args: Vec<&str> = exec[0].split_whitespace().collect();
    let cli = Cli::try_parse_from(args.iter().copied()).unwrap();
    assert!(matches!(cli.command(), Command::Serve(_)), "{exec:?}");
    // The store lives in the state directory, where the unit's comment tells the configuration to put it.
    assert!(unit.contains("path = \"/var/lib/forwardauth/oauth.redb\""));
}

#[test]
fn the_kubernetes_manifests_fit_together() {
    let docs: Vec<Yaml> =
        serde_norway::Deserializer::from_str(&read("deploy/kubernetes/forwardauth.yaml"))
            .map(|d| Yaml::deserialize(d).unwrap())
            .collect();
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    // The ConfigMap's configuration is valid for the service.
    let config = find("ConfigMap")["data"]["config.toml"].as_str().unwrap();
    forwardauth_svc::config::RawConfig::from_toml(config, std::path::Path::new("config.toml"))
        .unwrap();
    let checks: usize = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("password_checks = "))
        .expect("the manifest sets [login] password_checks, so the memory limit holds on any node")
        .parse()
        .unwrap();
    let deployment = find("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    // A memory limit, and room under it for the password checks at their peak (19 MiB each) beside the verified
    // token cache (32 MiB), the rate-limit tables (13 MiB) and the idle service (about 20 MiB).
    let limit = pod["containers"][0]["resources"]["limits"]["memory"]
        .as_str()
        .unwrap();
    let mib: usize = limit.strip_suffix("Mi").unwrap().parse().unwrap();
    assert!(
        mib >= 20 + 32 + 13 + checks * 19,
        "{limit} for {checks} checks"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Yaml::from(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        Yaml::from("RuntimeDefault")
    );
    let container = &pod["containers"][0];
    assert!(
        container["resources"]["requests"]["memory"]
            .as_str()
            .is_some(),
        "a memory request"
    );
    let sc = &container["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], Yaml::from(false));
    assert_eq!(sc["readOnlyRootFilesystem"], Yaml::from(true));
    assert_eq!(sc["runAsNonRoot"], Yaml::from(true));
    assert_eq!(
        sc["capabilities"]["drop"],
        serde_norway::from_str::<Yaml>("[ALL]").unwrap()
    );
    assert_eq!(sc["seccompProfile"]["type"], Yaml::from("RuntimeDefault"));
    // The probes ask endpoints the service serves, on the container's port.
    let port = container["ports"][0]["name"].clone();
    for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], Yaml::from(path), "{probe}");
        assert_eq!(get["port"], port, "{probe}");
        assert!(
            forwardauth_svc::endpoints::ENDPOINTS
                .iter()
                .any(|e| e.path == path),
            "{probe}: the service serves no {path}"
        );
    }
    let mounts: Vec<&str> = pod["containers"][0]["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    let volumes: Vec<&str> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, volumes);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&find("Service")["spec"]["selector"], labels);
    assert_eq!(
        find("Service")["metadata"]["name"],
        Yaml::from("forwardauth")
    );

    // ingress-nginx: the protected Ingress asks the forwardauth Service and copies the identity headers; the
    // OAuth paths are a separate Ingress without auth.
    let ingresses: Vec<Yaml> =
        serde_norway::Deserializer::from_str(&read("deploy/kubernetes/ingress-nginx.yaml"))
            .map(|d| Yaml::deserialize(d).unwrap())
            .collect();
    let protected = ingresses
        .iter()
        .find(|i| i["metadata"]["name"] == "mcp")
        .unwrap();
    let a = &protected["metadata"]["annotations"];
    assert_eq!(
        a["nginx.ingress.kubernetes.io/auth-url"],
        Yaml::from("http://forwardauth.mcp.svc.cluster.local:8080/verify")
    );
    assert_eq!(
        a["nginx.ingress.kubernetes.io/auth-response-headers"],
        Yaml::from("X-User-Id,X-User-Name,X-User-Email,X-Client-Id,X-Scopes")
    );
    assert!(
        a["nginx.ingress.kubernetes.io/configuration-snippet"]
            .as_str()
            .unwrap()
            .contains("proxy_set_header Authorization \"\";")
    );
    let open = ingresses
        .iter()
        .find(|i| i["metadata"]["name"] == "mcp-oauth")
        .unwrap();
    assert!(
        open["metadata"]["annotations"]
            .get("nginx.ingress.kubernetes.io/auth-url")
            .is_none()
    );
    let paths: Vec<&str> = open["spec"]["rules"][0]["http"]["paths"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["backend"]["service"]["name"], Yaml::from("forwardauth"));
            p["path"].as_str().unwrap()
        })
        .collect();
    for p in forwardauth_svc::endpoints::mcp_host_exact()
        .chain(forwardauth_svc::endpoints::mcp_host_prefixes())
    {
        assert!(
            paths.contains(&p.trim_end_matches('/')),
            "ingress-nginx: {p} is not routed to forwardauth-svc"
        );
    }
}

/// The README's copyable Traefik labels and Caddy block are the shipped ones.
#[test]
fn the_readme_shows_the_shipped_configuration() {
    let readme = read("README.md");
    let compose = read("deploy/traefik/docker-compose.yml");
    let labels: Vec<&str> = readme
        .lines()
        .filter(|l| l.trim_start().starts_with("- \"traefik."))
        .collect();
    assert!(labels.len() >= 10, "{labels:?}");
    for l in labels {
        assert!(
            compose.contains(l.trim()),
            "README label not in docker-compose.yml: {l}"
        );
    }
    let caddyfile = read("deploy/caddy/Caddyfile");
    let block = readme
        .split("```caddyfile\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a caddyfile block in the README");
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            caddyfile.lines().any(|c| c == line),
            "README Caddy line not in deploy/caddy/Caddyfile: {line:?}"
        );
    }
}

/// The compose file's labels of `service`, as name → value.
fn labels(compose: &Yaml, service: &str) -> std::collections::BTreeMap<String, String> {
    compose["services"][service]["labels"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{service} has no labels"))
        .iter()
        .map(|l| {
            let (k, v) = l.as_str().unwrap().split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The compose file's stdio server behind mcp-bridge: the bridge image's target, a command the bridge parses
/// (server-memory at the tests' version, a file per user in the volume), identity headers believed only from
/// Traefik's fixed address, no published port, and a router with the MCP server's middlewares in the same order
/// (the gate, then the removal of `Authorization`) on a path the gate knows as a resource.
#[test]
fn the_compose_stdio_server_is_behind_the_gate_and_the_bridge_trusts_only_traefik() {
    use mcp_bridge::cli::{Cli as Bridge, ProcessPer};
    let compose: Yaml = serde_norway::from_str(&read("deploy/traefik/docker-compose.yml")).unwrap();
    let memory = &compose["services"]["memory"];
    assert_eq!(
        memory["build"]["dockerfile"],
        Yaml::from("deploy/Dockerfile")
    );
    assert_eq!(memory["build"]["target"], Yaml::from("mcp-bridge"));
    assert!(
        read("deploy/Dockerfile").contains(" AS mcp-bridge\n"),
        "the Dockerfile has no mcp-bridge stage"
    );
    assert!(memory.get("ports").is_none(), "the bridge publishes a port");

    let args: Vec<&str> = std::iter::once("mcp-bridge")
        .chain(
            memory["command"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap()),
        )
        .collect();
    let cli = Bridge::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(cli.command.is_none(), "the bridge, not a subcommand");
    let bridge = cli.bridge;
    assert_eq!(bridge.process_per, ProcessPer::User);
    // The stdio server: server-memory at the version the end-to-end tests run, a memory file per user in the
    // service's volume.
    let package: serde_json::Value = serde_json::from_str(&read("tests/js/package.json")).unwrap();
    let version = package["dependencies"]["@modelcontextprotocol/server-memory"]
        .as_str()
        .unwrap();
    assert_eq!(
        bridge.command,
        [
            "npx".to_owned(),
            "-y".to_owned(),
            format!("@modelcontextprotocol/server-memory@{version}")
        ]
    );
    assert_eq!(bridge.env, ["MEMORY_FILE_PATH=/data/{owner}.json"]);
    assert!(
        memory["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v.as_str().unwrap().ends_with(":/data")),
        "no volume at /data"
    );
    // Identity headers only from Traefik, whose address on the project's network is fixed.
    let traefik_ip: std::net::IpAddr =
        compose["services"]["traefik"]["networks"]["default"]["ipv4_address"]
            .as_str()
            .expect("Traefik has a fixed address")
            .parse()
            .unwrap();
    let subnet: ipnet::IpNet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        subnet.contains(&traefik_ip),
        "{traefik_ip} is outside {subnet}"
    );
    // Other containers get their addresses from ip_range only: none can start first and take Traefik's.
    let ip_range: ipnet::IpNet = compose["networks"]["default"]["ipam"]["config"][0]["ip_range"]
        .as_str()
        .expect("an ip_range for the other containers")
        .parse()
        .unwrap();
    assert!(
        subnet.contains(&ip_range.network()) && !ip_range.contains(&traefik_ip),
        "Traefik's {traefik_ip} must be in {subnet} and outside the dynamic {ip_range}"
    );
    assert_eq!(
        bridge.trusted_proxies,
        [ipnet::IpNet::from(traefik_ip)],
        "the bridge must trust Traefik's address alone"
    );
    // The bridge image's health check asks the bridge's default port, the one it listens on here.
    let default_port = Bridge::try_parse_from(["mcp-bridge"])
        .unwrap()
        .bridge
        .listen
        .port();
    assert_eq!(bridge.listen.port(), default_port);
    assert!(
        read("deploy/Dockerfile").contains(&format!("'http://127.0.0.1:{default_port}/health'")),
        "the mcp-bridge stage's HEALTHCHECK asks another port"
    );

    // Routed behind the gate, the client's token removed, like the MCP server.
    let gate = labels(&compose, "forwardauth");
    let mine = labels(&compose, "memory");
    let server = labels(&compose, "mcp-server");
    let router = mine
        .keys()
        .find_map(|k| {
            k.strip_prefix("traefik.http.routers.")?
                .strip_suffix(".rule")
        })
        .expect("a router for the bridge");
    let label = |key: &str| {
        mine.get(&format!("traefik.http.routers.{router}.{key}"))
            .cloned()
    };
    assert_eq!(
        label("middlewares").as_deref(),
        Some("forwardauth@docker,forwardauth-strip-authorization@docker"),
        "the gate first (it reads the token), then the token removed"
    );
    assert_eq!(
        label("middlewares"),
        server.get("traefik.http.routers.mcp.middlewares").cloned()
    );
    assert_eq!(
        gate.get("traefik.http.middlewares.forwardauth-strip-authorization.headers.customrequestheaders.Authorization")
            .map(String::as_str),
        Some(""),
        "the strip middleware removes Authorization"
    );
    let copied = &gate["traefik.http.middlewares.forwardauth.forwardauth.authResponseHeaders"];
    for header in [
        &bridge.user_id_header,
        &bridge.user_name_header,
        &bridge.user_email_header,
    ] {
        assert!(
            copied.split(',').any(|h| h == header),
            "the gate's {header} does not reach the bridge"
        );
    }
    let service = label("service").unwrap();
    assert_eq!(
        mine.get(&format!(
            "traefik.http.services.{service}.loadbalancer.server.port"
        )),
        Some(&bridge.listen.port().to_string())
    );
    // Its path, under the MCP server's host, above the MCP server's catch-all and below the OAuth routes.
    let rule = label("rule").unwrap();
    let prefix = rule
        .split("PathPrefix(`")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .expect("a PathPrefix");
    assert!(
        bridge.path.starts_with(prefix),
        "{} is not under {prefix}",
        bridge.path
    );
    let host = rule
        .split("Host(`")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .unwrap();
    assert!(server["traefik.http.routers.mcp.rule"].contains(&format!("Host(`{host}`)")));
    let priority = |labels: &std::collections::BTreeMap<String, String>, router: &str| -> u32 {
        labels[&format!("traefik.http.routers.{router}.priority")]
            .parse()
            .unwrap()
    };
    assert!(priority(&mine, router) > priority(&server, "mcp"));
    assert!(priority(&mine, router) < priority(&gate, "forwardauth-mcp"));
    for key in ["entrypoints", "tls.certresolver"] {
        assert_eq!(
            label(key),
            server
                .get(&format!("traefik.http.routers.mcp.{key}"))
                .cloned(),
            "{key}"
        );
    }
    // The gate knows the bridge's URL as a resource.
    let config: toml::Value = toml::from_str(&read("deploy/traefik/forwardauth.toml")).unwrap();
    let url = format!("https://{host}{}", bridge.path);
    assert!(
        config["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resource"].as_str() == Some(url.as_str())),
        "{url} is no [[resources]] resource in deploy/traefik/forwardauth.toml"
    );
}

/// The words of one shell command line as bash splits them (single and double quotes; no expansions), up to a
/// comment or an output redirection.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => word
                .get_or_insert_with(String::new)
                .extend(chars.by_ref().take_while(|&c| c != '\'')),
            '"' => word
                .get_or_insert_with(String::new)
                .extend(chars.by_ref().take_while(|&c| c != '"')),
            '#' | '>' if word.is_none() => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The value after `flag` among `words`.
fn flag_value<'a>(words: &'a [String], flag: &str) -> &'a str {
    words
        .iter()
        .position(|w| w == flag)
        .and_then(|i| words.get(i + 1))
        .unwrap_or_else(|| panic!("no {flag} in {words:?}"))
}

/// Parses an `mcp-bridge` command line with the bridge's own parser, and the child command too when it is the
/// bridge's diagnostic server; returns how many it parsed.
fn parse_bridge_command(words: &[String]) -> usize {
    use mcp_bridge::cli::Cli as Bridge;
    let cli = Bridge::try_parse_from(words).unwrap_or_else(|e| panic!("{words:?}: {e}"));
    if cli.command.is_none() {
        assert!(!cli.bridge.command.is_empty(), "no stdio server: {words:?}");
        if cli.bridge.command[0] == "mcp-bridge" {
            return 1 + parse_bridge_command(&cli.bridge.command);
        }
    }
    1
}

/// The README's "A stdio MCP server behind the gate" shows what the commands it gives make: every line of its
/// nginx and Caddy blocks is a line of what the `forwardauth-svc snippet` command before it prints, every
/// `mcp-bridge` command parses (the diagnostic server's among them), its `[[resources]]` are the snippets' MCP
/// URLs, and its compose fragment is lines of `deploy/traefik/docker-compose.yml`.
#[test]
fn the_readme_stdio_server_section_shows_what_its_commands_make() {
    let readme = read("README.md");
    let start = readme
        .find("\n## A stdio MCP server behind the gate\n")
        .expect("the README's section \"A stdio MCP server behind the gate\"")
        + 1;
    let section = &readme[start..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
    let compose = read("deploy/traefik/docker-compose.yml");
    let (mut printed, mut mcp_urls) = (
        std::collections::HashMap::new(),
        std::collections::BTreeSet::new(),
    );
    let (mut bridges, mut quoted, mut resources, mut compose_lines) = (0, 0, 0, 0);
    let mut blocks = section.split("\n```");
    blocks.next();
    while let (Some(block), Some(_prose)) = (blocks.next(), blocks.next()) {
        let (lang, code) = block.split_once('\n').unwrap();
        match lang {
            "sh" => {
                for line in code.replace("\\\n", " ").lines() {
                    let words = shell_words(line);
                    match words.first().map(String::as_str) {
                        Some("forwardauth-svc") => {
                            let cli = Cli::try_parse_from(&words)
                                .unwrap_or_else(|e| panic!("{line}: {e}"));
                            let Command::Snippet(args) = cli.command() else {
                                panic!("not a snippet command: {line}");
                            };
                            let mut out = Vec::new();
                            cli::print_snippet(&args, &mut out).unwrap();
                            printed.insert(
                                flag_value(&words, "--proxy").to_owned(),
                                String::from_utf8(out).unwrap(),
                            );
                            mcp_urls.insert(flag_value(&words, "--mcp-url").to_owned());
                        }
                        Some("mcp-bridge") => bridges += parse_bridge_command(&words),
                        None => {}
                        Some(other) => panic!("README: an unexpected command {other}: {line}"),
                    }
                }
            }
            "nginx" | "caddyfile" => {
                let proxy = if lang == "nginx" { "nginx" } else { "caddy" };
                let out = printed.get(proxy).unwrap_or_else(|| {
                    panic!("a {lang} block before any `snippet --proxy {proxy}`")
                });
                for line in code.lines().filter(|l| !l.trim().is_empty()) {
                    assert!(
                        out.lines().any(|o| o.trim() == line.trim()),
                        "README {lang} line not printed by its snippet command: {line:?}"
                    );
                }
                quoted += 1;
            }
            "toml" => {
                for url in code
                    .lines()
                    .filter_map(|l| l.strip_prefix("resource = \"")?.strip_suffix('"'))
                {
                    assert!(mcp_urls.contains(url), "{url} is no snippet's --mcp-url");
                    resources += 1;
                }
            }
            "yaml" => {
                for line in code.lines().filter(|l| !l.trim().is_empty()) {
                    assert!(
                        compose.lines().any(|c| c.trim() == line.trim()),
                        "README compose line not in docker-compose.yml: {line:?}"
                    );
                    compose_lines += 1;
                }
            }
            other => panic!("README: a ```{other} block in the stdio server section"),
        }
    }
    assert_eq!(quoted, 2, "the nginx and Caddy blocks");
    assert!(
        bridges >= 3,
        "the bridge, the echo server, the echo server as a child: {bridges}"
    );
    assert!(resources >= 1);
    assert!(compose_lines >= 10);
}

/// The README's table of the bridge's options names every option of its parser (and the diagnostic server's
/// `--stdio` and `--allow-host` are described), so a new option cannot go undocumented.
#[test]
fn the_readme_lists_every_option_of_the_bridge() {
    use clap::CommandFactory as _;
    let readme = read("README.md");
    let section = readme
        .split("\n### The bridge's options\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a section \"The bridge's options\"");
    let command = mcp_bridge::cli::Cli::command();
    let echo = command
        .find_subcommand("echo")
        .expect("the echo subcommand")
        .clone();
    let mut missing = Vec::new();
    for arg in command.get_arguments().chain(echo.get_arguments()) {
        let Some(long) = arg.get_long() else { continue };
        if ["help", "version"].contains(&long) {
            continue;
        }
        if !readme.contains(&format!("`--{long}")) {
            missing.push(long.to_owned());
        }
    }
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long().filter(|l| !["help", "version"].contains(l)) {
            assert!(
                section.contains(&format!("| `--{long}"))
                    || section.contains(&format!(", `--{long}")),
                "--{long} has no row in the options table"
            );
        }
    }
    assert!(
        missing.is_empty(),
        "options missing from the README: {missing:?}"
    );
}

/// `${NAME:-default}` and `${NAME}` in a Compose value, against the variables of `.env` (Compose's interpolation,
/// for the forms the file uses).
fn interpolate(value: &str, dotenv: &std::collections::HashMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closing brace") + start;
        let inner = &rest[start + 2..end];
        let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
        match dotenv.get(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(v),
            None => out.push_str(default),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The compose file's service runs on the embedded store, and on Redis (the `redis` profile's service, by its
/// name) once `.env` holds what the file's header writes into it; its configuration loads both ways.
#[test]
fn the_compose_redis_profile_switches_the_service_to_redis() {
    use forwardauth_svc::config::StoreConfig;
    let compose_text = read("deploy/traefik/docker-compose.yml");
    let compose: Yaml = serde_norway::from_str(&compose_text).unwrap();
    assert_eq!(
        compose["services"]["redis"]["profiles"],
        serde_norway::from_str::<Yaml>("[redis]").unwrap()
    );
    // The header's command: a .env with the backend and a fresh key.
    let header = compose_text
        .lines()
        .find(|l| l.contains("> .env"))
        .expect("the header writes .env");
    assert!(
        header.contains("FORWARDAUTH_STORE_BACKEND=redis")
            && header.contains("FORWARDAUTH_KEY_ENCRYPTION_KEY=%s")
            && header.contains("openssl rand -base64 32"),
        "{header}"
    );
    let redis_env = std::collections::HashMap::from([
        ("FORWARDAUTH_STORE_BACKEND", "redis".to_owned()),
        (
            "FORWARDAUTH_KEY_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned(),
        ),
    ]);
    // The image's own environment (deploy/Dockerfile), under the service's.
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        dockerfile.contains("FORWARDAUTH_STORE_PATH=/data/oauth.redb"),
        "the image keeps the embedded store in the /data volume"
    );
    let dir = tempfile::tempdir().unwrap();
    for name in ["forwardauth.toml", "users.toml"] {
        std::fs::write(
            dir.path().join(name),
            read(&format!("deploy/traefik/{name}")),
        )
        .unwrap();
    }
    for dotenv in [std::collections::HashMap::new(), redis_env] {
        let mut env = std::collections::HashMap::from([(
            "FORWARDAUTH_STORE_PATH".to_owned(),
            "/data/oauth.redb".to_owned(),
        )]);
        for (k, v) in compose["services"]["forwardauth"]["environment"]
            .as_mapping()
            .unwrap()
        {
            env.insert(
                k.as_str().unwrap().to_owned(),
                interpolate(v.as_str().unwrap(), &dotenv),
            );
        }
        let config =
            forwardauth_svc::config::load(Some(&dir.path().join("forwardauth.toml")), &|k| {
                env.get(k).filter(|v| !v.is_empty()).cloned()
            })
            .unwrap_or_else(|e| panic!("with .env {dotenv:?}: {e}"));
        match (&config.store, dotenv.is_empty()) {
            (StoreConfig::Embedded { path, .. }, true) => {
                assert_eq!(path, std::path::Path::new("/data/oauth.redb"));
            }
            (StoreConfig::Redis(redis), false) => {
                let url = url::Url::parse(&redis.url.0).unwrap();
                assert!(
                    compose["services"][url.host_str().unwrap()].is_mapping(),
                    "FORWARDAUTH_REDIS_URL names the compose service: {}",
                    url.host_str().unwrap()
                );
                assert!(config.key_encryption.current.is_some());
            }
            (other, _) => panic!("with .env {dotenv:?}: {other:?}"),
        }
    }
}

/// The Kubernetes manifest's configuration (its ConfigMap), with the users file of its Secret, passes
/// `check-config`. The one change: the users file's mount path becomes the temporary directory's.
#[test]
fn the_kubernetes_configuration_passes_check_config() {
    let docs: Vec<Yaml> =
        serde_norway::Deserializer::from_str(&read("deploy/kubernetes/forwardauth.yaml"))
            .map(|d| Yaml::deserialize(d).unwrap())
            .collect();
    let data = |kind: &str, field: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d[field][name].is_string())
            .unwrap_or_else(|| panic!("no {kind} with {field}.{name}"))[field][name]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let config = data("ConfigMap", "data", "config.toml");
    let users = data("Secret", "stringData", "users.toml");
    let mounted = "/etc/forwardauth/users/users.toml";
    assert!(config.contains(mounted), "{config}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.toml"), users).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        config.replace(
            mounted,
            &dir.path().join("users.toml").display().to_string(),
        ),
    )
    .unwrap();
    let config = forwardauth_svc::config::load(Some(&path), &|_| None)
        .unwrap_or_else(|e| panic!("deploy/kubernetes/forwardauth.yaml: {e}"));
    let mut out = Vec::new();
    cli::check_config(&config, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("configuration OK"), "{out}");
    assert_eq!(config.users.len(), 1, "the Secret's users file");
}
