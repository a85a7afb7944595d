//! The real Traefik binary runs the snippet's configuration in `stack.rs` (the SDK clients' scenario, the CIMD
//! flow, the entry point options); this file tests the Traefik variants that binary does not run, by two halves:
//!
//! * **The ForwardAuth contract.** The real forwardauth-svc gets exactly the request Traefik's ForwardAuth
//!   middleware documents: `GET <address>` with the client's headers (filtered by `authRequestHeaders`) and
//!   `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`, `-For` set by Traefik (and, with `forwardBody`, the request
//!   body, which the real Traefik sends in `tools.rs`); a 2xx lets the request through with
//!   the `authResponseHeaders` replacing the client's and the headers middleware's empty `customRequestHeaders`
//!   removed, anything else is returned to the client as is. The middleware settings are read from
//!   `deploy/traefik/dynamic/mcp.yml`, the shipped file.
//! * **The configuration files.** `deploy/traefik/dynamic/mcp.yml` with `traefik.yml`, the labels of
//!   `docker-compose.yml`, and the Kubernetes `IngressRoute` are parsed; every router's service, middlewares,
//!   entry points and certificate resolver must exist, and a small evaluator of the rules and priorities must
//!   send the OAuth paths to forwardauth-svc and everything else through the gate to the MCP server; the file
//!   provider variant sets the gate's and the entry points' security options.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize as _;
use serde_norway::Value as Yaml;

use crate::support::*;

const IDENTITY: [&str; 5] = [
    "X-User-Id",
    "X-User-Name",
    "X-User-Email",
    "X-Client-Id",
    "X-Scopes",
];

fn yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_docs(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Yaml::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn strings(v: &Yaml) -> Vec<String> {
    match v {
        Yaml::Sequence(s) => s.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
        Yaml::String(s) => s.split(',').map(|x| x.trim().to_owned()).collect(),
        other => panic!("not a list: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A Traefik rule evaluator for the matchers the deploy files use: Host, Path, PathPrefix, with &&, || and ().

#[derive(Debug)]
enum Rule {
    Host(String),
    Path(String),
    PathPrefix(String),
    /// `Method(`OPTIONS`)`: the requests the checks route are all `GET`s.
    Method(String),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
}

impl Rule {
    fn parse(text: &str) -> Rule {
        let tokens = tokenize(text);
        let mut pos = 0;
        let rule = parse_or(&tokens, &mut pos);
        assert_eq!(pos, tokens.len(), "trailing tokens in rule {text}");
        rule
    }

    fn matches(&self, host: &str, path: &str) -> bool {
        match self {
            Rule::Host(h) => h.eq_ignore_ascii_case(host),
            Rule::Path(p) => p == path,
            Rule::PathPrefix(p) => path.starts_with(p.as_str()),
            Rule::Method(m) => m == "GET",
            Rule::And(a, b) => a.matches(host, path) && b.matches(host, path),
            Rule::Or(a, b) => a.matches(host, path) || b.matches(host, path),
        }
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("&&").or_else(|| rest.strip_prefix("||")) {
            out.push(rest[..2].to_owned());
            rest = r;
        } else if rest.starts_with(['(', ')']) {
            out.push(rest[..1].to_owned());
            rest = &rest[1..];
        } else if let Some(r) = rest.strip_prefix('`') {
            let end = r.find('`').expect("unterminated `");
            out.push(format!("`{}", &r[..end]));
            rest = &r[end + 1..];
        } else {
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            assert!(end > 0, "unexpected {rest:?}");
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    out
}

fn parse_or(t: &[String], pos: &mut usize) -> Rule {
    let mut left = parse_and(t, pos);
    while t.get(*pos).map(String::as_str) == Some("||") {
        *pos += 1;
        left = Rule::Or(Box::new(left), Box::new(parse_and(t, pos)));
    }
    left
}

fn parse_and(t: &[String], pos: &mut usize) -> Rule {
    let mut left = parse_atom(t, pos);
    while t.get(*pos).map(String::as_str) == Some("&&") {
        *pos += 1;
        left = Rule::And(Box::new(left), Box::new(parse_atom(t, pos)));
    }
    left
}

fn parse_atom(t: &[String], pos: &mut usize) -> Rule {
    let tok = t[*pos].clone();
    *pos += 1;
    if tok == "(" {
        let inner = parse_or(t, pos);
        assert_eq!(t[*pos], ")");
        *pos += 1;
        return inner;
    }
    assert_eq!(t[*pos], "(", "matcher {tok} needs an argument");
    let arg = t[*pos + 1]
        .strip_prefix('`')
        .expect("a `quoted` argument")
        .to_owned();
    assert_eq!(t[*pos + 2], ")", "one argument per matcher");
    *pos += 3;
    match tok.as_str() {
        "Host" => Rule::Host(arg),
        "Path" => Rule::Path(arg),
        "PathPrefix" => Rule::PathPrefix(arg),
        "Method" => Rule::Method(arg),
        other => panic!("matcher {other} is not used by the deploy files"),
    }
}

/// A router, whichever way it was declared (file provider, Docker labels, IngressRoute).
#[derive(Debug)]
struct Router {
    name: String,
    rule: Rule,
    priority: i64,
    entry_points: Vec<String>,
    middlewares: Vec<String>,
    service: String,
    cert_resolver: Option<String>,
}

/// Traefik's choice: among routers whose rule matches, the highest priority.
fn route<'a>(routers: &'a [Router], host: &str, path: &str) -> &'a Router {
    let mut matching: Vec<&Router> = routers
        .iter()
        .filter(|r| r.rule.matches(host, path))
        .collect();
    matching.sort_by_key(|r| -r.priority);
    assert!(!matching.is_empty(), "no router for {host}{path}");
    if matching.len() > 1 {
        assert_ne!(
            matching[0].priority, matching[1].priority,
            "ambiguous routers for {host}{path}"
        );
    }
    matching[0]
}

/// The checks every Traefik variant must pass.
struct Declared<'a> {
    what: &'a str,
    routers: Vec<Router>,
    middlewares: Vec<String>,
    services: Vec<String>,
    entry_points: Vec<String>,
    resolvers: Vec<String>,
    /// The middleware names of the gate and of the Authorization strip.
    gate: &'a str,
    strip: &'a str,
    /// The service of forwardauth-svc.
    auth_service: &'a str,
}

fn check_routing(d: &Declared<'_>) {
    let what = d.what;
    for r in &d.routers {
        assert!(
            d.services.contains(&r.service),
            "{what}: router {} uses an undefined service {}",
            r.name,
            r.service
        );
        for m in &r.middlewares {
            let m = m.split('@').next().unwrap();
            assert!(
                d.middlewares.iter().any(|x| x == m),
                "{what}: router {} uses an undefined middleware {m}",
                r.name
            );
        }
        for e in &r.entry_points {
            assert!(
                d.entry_points.contains(e),
                "{what}: router {} uses an undefined entry point {e}",
                r.name
            );
        }
        if let Some(c) = &r.cert_resolver {
            assert!(
                d.resolvers.contains(c),
                "{what}: router {} uses an undefined certificate resolver {c}",
                r.name
            );
        }
    }
    let host = "mcp.example.com";
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/authorize",
        "/login",
        "/consent",
        "/token",
        "/revoke",
        "/introspect",
        "/register",
        "/register/some-client-id",
        "/jwks.json",
    ] {
        let r = route(&d.routers, host, path);
        assert_eq!(
            (r.service.as_str(), r.middlewares.len()),
            (d.auth_service, 0),
            "{what}: {path} must reach forwardauth-svc unauthenticated (router {})",
            r.name
        );
    }
    for path in [
        "/mcp",
        "/",
        "/sse",
        "/.well-known/other",
        "/tokens",
        "/authorized",
    ] {
        let r = route(&d.routers, host, path);
        let names: Vec<&str> = r
            .middlewares
            .iter()
            .map(|m| m.split('@').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [d.gate, d.strip],
            "{what}: {path} must pass the gate, then lose Authorization (router {})",
            r.name
        );
        assert_ne!(r.service, d.auth_service, "{what}: {path}");
    }
}

fn check_gate_middleware(what: &str, fwd: &Yaml) {
    let address = fwd["address"].as_str().unwrap();
    assert!(address.ends_with("/verify"), "{what}: {address}");
    assert_eq!(
        strings(&fwd["authResponseHeaders"]),
        IDENTITY,
        "{what}: authResponseHeaders"
    );
    let request = strings(&fwd["authRequestHeaders"]);
    // The headers the gate reads, and the W3C trace context its span continues.
    for h in [
        "Authorization",
        "MCP-Protocol-Version",
        "Mcp-Method",
        "Mcp-Name",
        "traceparent",
        "tracestate",
    ] {
        assert!(
            request.iter().any(|x| x.eq_ignore_ascii_case(h)),
            "{what}: {h}"
        );
    }
    for h in ["X-Original-URL", "X-Original-URI", "X-Original-Method"] {
        assert!(
            !request.iter().any(|x| x.eq_ignore_ascii_case(h)),
            "{what}: {h}"
        );
    }
    // The body goes to the gate (per-tool scopes read the call from it), bounded by the gate's own limit.
    let scalar = |v: &Yaml| match v {
        Yaml::String(s) => s.clone(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        other => panic!("{what}: not a scalar: {other:?}"),
    };
    assert_eq!(scalar(&fwd["forwardBody"]), "true", "{what}: forwardBody");
    assert_eq!(
        scalar(&fwd["maxBodySize"]),
        (forwardauth_svc::config::GateConfig::DEFAULT_MAX_BODY_KIB * 1024).to_string(),
        "{what}: maxBodySize is [gate] max_body_kib's default"
    );
}

#[test]
fn the_file_provider_configuration_routes_and_resolves() {
    let stat = yaml("deploy/traefik/traefik.yml");
    let dynamic = yaml("deploy/traefik/dynamic/mcp.yml");
    let keys = |v: &Yaml| -> Vec<String> {
        v.as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    let http = &dynamic["http"];
    let routers = http["routers"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, r)| Router {
            name: name.as_str().unwrap().to_owned(),
            rule: Rule::parse(r["rule"].as_str().unwrap()),
            priority: r["priority"].as_i64().unwrap(),
            entry_points: strings(&r["entryPoints"]),
            middlewares: r.get("middlewares").map(strings).unwrap_or_default(),
            service: r["service"].as_str().unwrap().to_owned(),
            cert_resolver: r
                .get("tls")
                .map(|t| t["certResolver"].as_str().unwrap().to_owned()),
        })
        .collect();
    check_routing(&Declared {
        what: "deploy/traefik/dynamic/mcp.yml",
        routers,
        middlewares: keys(&http["middlewares"]),
        services: keys(&http["services"]),
        entry_points: keys(&stat["entryPoints"]),
        resolvers: keys(&stat["certificatesResolvers"]),
        gate: "forwardauth",
        strip: "forwardauth-strip-authorization",
        auth_service: "forwardauth",
    });
    let mw = &http["middlewares"];
    let gate = &mw["forwardauth"]["forwardAuth"];
    check_gate_middleware("dynamic/mcp.yml", gate);
    // Both set, so Traefik 3.7 does not warn: no client X-Forwarded-* trusted, the gate's answer bounded.
    assert_eq!(gate["trustForwardHeader"], Yaml::from(false));
    let max = gate["maxResponseBodySize"].as_u64().unwrap();
    assert!((4096..=1 << 20).contains(&max), "maxResponseBodySize {max}");
    let strip = &mw["forwardauth-strip-authorization"]["headers"]["customRequestHeaders"];
    assert_eq!(strip["Authorization"], Yaml::from(""));
    for alias in [
        "X_User_Id",
        "X.User.Id",
        "X-User_Id",
        "X_User-Id",
        "X_Scopes",
        "X.Client.Id",
    ] {
        assert_eq!(strip[alias], Yaml::from(""), "{alias} is removed");
    }
    // Every entry point drops the headers whose names alias others and refuses %2F and %5C in paths.
    for (name, entry_point) in stat["entryPoints"].as_mapping().unwrap() {
        let http = &entry_point["http"];
        assert_eq!(
            http["aliasHeadersStrategy"],
            Yaml::from("delete"),
            "{name:?}"
        );
        for option in ["allowEncodedSlash", "allowEncodedBackSlash"] {
            assert_eq!(
                http["encodedCharacters"][option],
                Yaml::from(false),
                "{name:?}: {option}"
            );
        }
    }
    assert_eq!(
        stat["providers"]["file"]["directory"].as_str(),
        Some("/etc/traefik/dynamic")
    );
}

#[test]
fn the_docker_compose_labels_route_and_resolve() {
    let compose = yaml("deploy/traefik/docker-compose.yml");
    let services = compose["services"].as_mapping().unwrap();
    let traefik = &compose["services"]["traefik"];
    assert!(traefik["image"].as_str().unwrap().starts_with("traefik:v3"));
    let flags = strings(&traefik["command"]);
    let declared = |prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = flags
            .iter()
            .filter_map(|f| f.strip_prefix(prefix))
            .map(|rest| rest.split('.').next().unwrap().to_owned())
            .collect();
        v.dedup();
        v
    };
    // Labels of every container, key (lower case) → value.
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for (_, svc) in services {
        if let Some(ls) = svc.get("labels") {
            for l in strings(ls) {
                let (k, v) = l.split_once('=').unwrap();
                labels.insert(k.to_ascii_lowercase(), v.to_owned());
            }
        }
    }
    let names = |kind: &str| -> Vec<String> {
        let prefix = format!("traefik.http.{kind}.");
        let mut v: Vec<String> = labels
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('.').next().unwrap().to_owned())
            .collect();
        v.dedup();
        v
    };
    let get = |router: &str, key: &str| labels.get(&format!("traefik.http.routers.{router}.{key}"));
    let routers = names("routers")
        .into_iter()
        .map(|name| Router {
            rule: Rule::parse(get(&name, "rule").unwrap()),
            priority: get(&name, "priority").unwrap().parse().unwrap(),
            entry_points: strings(&Yaml::from(get(&name, "entrypoints").unwrap().as_str())),
            middlewares: get(&name, "middlewares")
                .map(|m| strings(&Yaml::from(m.as_str())))
                .unwrap_or_default(),
            service: get(&name, "service").unwrap().clone(),
            cert_resolver: get(&name, "tls.certresolver").cloned(),
            name,
        })
        .collect();
    let declared = Declared {
        what: "deploy/traefik/docker-compose.yml",
        routers,
        middlewares: names("middlewares"),
        services: names("services"),
        entry_points: declared("--entrypoints."),
        resolvers: declared("--certificatesresolvers."),
        gate: "forwardauth",
        strip: "forwardauth-strip-authorization",
        auth_service: "forwardauth",
    };
    check_routing(&declared);
    // The stdio server behind mcp-bridge: its path through the gate to the bridge, without Authorization; its
    // protected-resource metadata from forwardauth-svc.
    for path in ["/memory/mcp", "/memory/"] {
        let r = route(&declared.routers, "mcp.example.com", path);
        assert_eq!(r.service, "memory", "{path}: router {}", r.name);
        assert_eq!(
            r.middlewares,
            [
                "forwardauth@docker",
                "forwardauth-strip-authorization@docker"
            ],
            "{path}"
        );
    }
    let r = route(
        &declared.routers,
        "mcp.example.com",
        "/.well-known/oauth-protected-resource/memory/mcp",
    );
    assert_eq!(
        (r.service.as_str(), r.middlewares.len()),
        ("forwardauth", 0)
    );
    let fwd = |k: &str| {
        Yaml::from(
            labels[&format!("traefik.http.middlewares.forwardauth.forwardauth.{k}")].as_str(),
        )
    };
    let mut gate = serde_norway::Mapping::new();
    for k in [
        "address",
        "authRequestHeaders",
        "authResponseHeaders",
        "forwardBody",
        "maxBodySize",
    ] {
        gate.insert(Yaml::from(k), fwd(&k.to_ascii_lowercase()));
    }
    check_gate_middleware("docker-compose.yml", &Yaml::Mapping(gate));
    assert_eq!(
        labels["traefik.http.middlewares.forwardauth-strip-authorization.headers.customrequestheaders.authorization"],
        ""
    );
    // The forwardauth container's configuration file is the one shipped beside it, and it loads.
    let config = forwardauth_svc::config::load(
        Some(&repo_root().join("deploy/traefik/forwardauth.toml")),
        &|_| None,
    )
    .unwrap();
    assert_eq!(
        config.server.resources[0].resource,
        "https://mcp.example.com/mcp"
    );
    assert!(
        compose["services"]["redis"]["profiles"]
            .as_sequence()
            .unwrap()
            .contains(&Yaml::from("redis"))
    );
}

#[test]
fn the_kubernetes_ingressroute_routes_and_resolves() {
    let docs = yaml_docs("deploy/kubernetes/traefik.yaml");
    let base = yaml_docs("deploy/kubernetes/forwardauth.yaml");
    let of_kind = |docs: &[Yaml], kind: &str| -> Vec<Yaml> {
        docs.iter().filter(|d| d["kind"] == kind).cloned().collect()
    };
    let middlewares: Vec<String> = of_kind(&docs, "Middleware")
        .iter()
        .map(|m| m["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    let mut services: Vec<String> = of_kind(&base, "Service")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    // The MCP server's own Service is the user's; the manifests name it mcp-server.
    services.push("mcp-server".into());
    let ingress = &of_kind(&docs, "IngressRoute")[0];
    let entry_points = strings(&ingress["spec"]["entryPoints"]);
    let resolver = ingress["spec"]["tls"]["certResolver"]
        .as_str()
        .map(str::to_owned);
    let routers = ingress["spec"]["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| Router {
            name: format!("route {i}"),
            rule: Rule::parse(r["match"].as_str().unwrap()),
            priority: r["priority"].as_i64().unwrap(),
            entry_points: entry_points.clone(),
            middlewares: r
                .get("middlewares")
                .map(|ms| {
                    ms.as_sequence()
                        .unwrap()
                        .iter()
                        .map(|m| m["name"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            service: r["services"][0]["name"].as_str().unwrap().to_owned(),
            cert_resolver: resolver.clone(),
        })
        .collect();
    check_routing(&Declared {
        what: "deploy/kubernetes/traefik.yaml",
        routers,
        middlewares: middlewares.clone(),
        services,
        entry_points: vec!["websecure".into()],
        resolvers: vec!["letsencrypt".into()],
        gate: "forwardauth",
        strip: "forwardauth-strip-authorization",
        auth_service: "forwardauth",
    });
    let gate = of_kind(&docs, "Middleware")
        .into_iter()
        .find(|m| m["metadata"]["name"] == "forwardauth")
        .unwrap();
    check_gate_middleware("kubernetes/traefik.yaml", &gate["spec"]["forwardAuth"]);
    assert!(
        gate["spec"]["forwardAuth"]["address"]
            .as_str()
            .unwrap()
            .starts_with("http://forwardauth.mcp.svc.cluster.local:8080/"),
        "the address names the forwardauth Service"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The ForwardAuth contract against the real service.

/// A client request as Traefik receives it on the `websecure` entry point.
struct ClientRequest {
    method: &'static str,
    host: String,
    uri: String,
    headers: Vec<(&'static str, String)>,
}

/// What Traefik's ForwardAuth does with a client request, as documented: the forward request, then either the
/// headers the MCP server gets (2xx) or the response the client gets.
enum Outcome {
    Upstream(HeaderMap),
    Client(reqwest::Response),
}

struct ForwardAuth {
    address: String,
    request_headers: Option<Vec<String>>,
    response_headers: Vec<String>,
    /// The headers middleware after the gate: the `customRequestHeaders` with an empty value, which it removes.
    removed: Vec<String>,
}

impl ForwardAuth {
    fn from_deploy_file(svc_port: u16) -> ForwardAuth {
        let dynamic = yaml("deploy/traefik/dynamic/mcp.yml");
        let fwd = &dynamic["http"]["middlewares"]["forwardauth"]["forwardAuth"];
        // The shipped address names the service's Docker host; here it runs on loopback.
        let address = fwd["address"].as_str().unwrap().replace(
            "http://forwardauth:8080",
            &format!("http://127.0.0.1:{svc_port}"),
        );
        let removed = dynamic["http"]["middlewares"]["forwardauth-strip-authorization"]["headers"]
            ["customRequestHeaders"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.as_str() == Some(""))
            .map(|(k, _)| k.as_str().unwrap().to_owned())
            .collect();
        ForwardAuth {
            address,
            request_headers: Some(strings(&fwd["authRequestHeaders"])),
            response_headers: strings(&fwd["authResponseHeaders"]),
            removed,
        }
    }

    async fn call(&self, req: &ClientRequest) -> Outcome {
        let mut forward = HeaderMap::new();
        for (name, value) in &req.headers {
            let allowed = self
                .request_headers
                .as_ref()
                .is_none_or(|list| list.iter().any(|h| h.eq_ignore_ascii_case(name)));
            if allowed {
                forward.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
        }
        for (name, value) in [
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-method", req.method),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", &req.host),
            ("x-forwarded-uri", &req.uri),
        ] {
            forward.insert(name, HeaderValue::from_str(value).unwrap());
        }
        let response = reqwest::Client::new()
            .get(&self.address)
            .headers(forward)
            .send()
            .await
            .unwrap();
        if !response.status().is_success() {
            return Outcome::Client(response);
        }
        // authResponseHeaders replace the client's; then the headers middleware removes Authorization and the
        // aliases of the identity headers.
        let mut upstream = HeaderMap::new();
        for (name, value) in &req.headers {
            upstream.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        for h in &self.response_headers {
            let name = HeaderName::from_bytes(h.as_bytes()).unwrap();
            upstream.remove(&name);
            for v in response.headers().get_all(&name) {
                upstream.append(name.clone(), v.clone());
            }
        }
        for h in &self.removed {
            upstream.remove(HeaderName::from_bytes(h.as_bytes()).unwrap());
        }
        Outcome::Upstream(upstream)
    }
}

fn mcp_post(uri: &str, token: Option<&str>) -> ClientRequest {
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("Accept", "application/json, text/event-stream".to_owned()),
        ("MCP-Protocol-Version", "2025-06-18".to_owned()),
        ("X-User-Id", "forged-admin".to_owned()),
        ("X-User-Email", "forged@evil.example".to_owned()),
        ("X-Scopes", "mcp:admin".to_owned()),
        ("X_User_Id", "forged-admin".to_owned()),
        ("X.Scopes", "mcp:admin".to_owned()),
    ];
    if let Some(t) = token {
        headers.push(("Authorization", format!("Bearer {t}")));
    }
    ClientRequest {
        method: "POST",
        host: "mcp.example.com".into(),
        uri: uri.into(),
        headers,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwardauth_svc_honours_the_traefik_forwardauth_contract() {
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path());
    std::fs::write(
        dir.path().join("config.toml"),
        r#"issuer = "https://mcp.example.com"

[store]
backend = "memory"

[users]
file = "users.toml"

[[resources]]
resource = "https://mcp.example.com/mcp"
scopes = ["mcp"]
required_scopes = ["mcp"]

[[resources]]
resource = "https://other.example.com/mcp"
scopes = ["mcp"]
required_scopes = ["mcp"]
"#,
    )
    .unwrap();
    let svc = Svc::start(dir.path(), false);
    let base = format!("http://127.0.0.1:{}", svc.port);
    let traefik = ForwardAuth::from_deploy_file(svc.port);

    // No token: the gate's 401 is what the client gets, with the discovery URL on the client's host.
    let Outcome::Client(r) = traefik.call(&mcp_post("/mcp", None)).await else {
        panic!("a request without a token passed the gate");
    };
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer scope=\"mcp\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
    );
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "unauthorized"
    );

    // The well-known router sends discovery to the service with the client's Host and Traefik's
    // X-Forwarded-Proto/-Host: the metadata names the https resource.
    let prm: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .header("Host", "mcp.example.com")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "mcp.example.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], "https://mcp.example.com/mcp");
    assert_eq!(prm["authorization_servers"][0], "https://mcp.example.com");

    // A token for the resource: 200, and the MCP server gets the gate's identity, not the client's, and no
    // token.
    let tokens = oauth_flow(&base, "https://mcp.example.com/mcp", "mcp").await;
    let token = tokens["access_token"].as_str().unwrap();
    let Outcome::Upstream(h) = traefik.call(&mcp_post("/mcp", Some(token))).await else {
        panic!("a valid token was refused");
    };
    assert_eq!(h["x-user-id"], "local:alice");
    assert_eq!(h["x-user-name"], "alice");
    assert_eq!(
        h["x-user-email"], "",
        "alice has no e-mail; the forged one is gone"
    );
    assert_eq!(h["x-scopes"], "mcp");
    assert!(h.get("authorization").is_none());
    assert!(h.get("x_user_id").is_none() && h.get("x.scopes").is_none());
    for (name, v) in &h {
        assert!(!v.to_str().unwrap().contains("forged"), "{name}");
    }

    // The same token at another resource's host: 401 invalid_token with that host's discovery URL.
    let mut other = mcp_post("/mcp", Some(token));
    other.host = "other.example.com".into();
    let Outcome::Client(r) = traefik.call(&other).await else {
        panic!("a token for another resource passed");
    };
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains("resource_metadata=\"https://other.example.com/.well-known/oauth-protected-resource/mcp\""),
        "{challenge}"
    );

    // Headers a client adds to describe another request: filtered by authRequestHeaders, and refused by the
    // gate even where a Traefik without that filter passes them.
    let unfiltered = ForwardAuth {
        request_headers: None,
        ..ForwardAuth::from_deploy_file(svc.port)
    };
    for (name, value) in [
        ("X-Original-URL", "https://mcp.example.com/.well-known/x"),
        ("X-Original-Method", "OPTIONS"),
    ] {
        let mut req = mcp_post("/mcp", None);
        req.headers.push((name, value.to_owned()));
        for (gate, expected) in [(&traefik, 401), (&unfiltered, 403)] {
            let Outcome::Client(r) = gate.call(&req).await else {
                panic!("{name} got a request without a token through");
            };
            assert_eq!(r.status(), expected, "{name}");
        }
    }

    // A preflight that reaches the gate (the snippet routes preflights to the service instead) is challenged
    // like any request without a token: it never reaches the MCP server unauthenticated.
    let preflight = ClientRequest {
        method: "OPTIONS",
        host: "mcp.example.com".into(),
        uri: "/mcp".into(),
        headers: vec![("X-User-Id", "forged-admin".into())],
    };
    let Outcome::Client(r) = traefik.call(&preflight).await else {
        panic!("the preflight reached the MCP server without a token");
    };
    assert_eq!(r.status(), 401);
}
