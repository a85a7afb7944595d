//! The one gate call, [`AuthServer::gate`]: the forwarded request read strictly, the path rules, the discovery
//! pass, the resource index, `Origin` and CORS, then the token, the access policy and the per-tool scopes.

use oauth_core::testing::{self, OTHER_RESOURCE, RESOURCE};
use oauth_core::{
    AuthServer, ForwardedBody, ForwardedError, ForwardedHeaders, GateInput, GateOutcome,
    GateVerdict, HeaderField, RefusalReason, RejectionKind, ResourceConfig,
};

use crate::common::*;

const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// A forward-auth call as Traefik or Caddy make it.
struct Call<'a> {
    method: &'a str,
    proto: &'a str,
    host: &'a str,
    uri: &'a str,
    authorization: Option<&'a str>,
    origin: Option<&'a str>,
    mcp: [Option<&'a str>; 3],
    body: ForwardedBody<'a>,
    trusted: bool,
}

fn call<'a>(method: &'a str, url: &'a str) -> Call<'a> {
    let (proto, rest) = url.split_once("://").unwrap();
    let at = rest.find('/').unwrap_or(rest.len());
    let (host, uri) = rest.split_at(at);
    Call {
        method,
        proto,
        host,
        uri,
        authorization: None,
        origin: None,
        mcp: [None; 3],
        body: ForwardedBody::Absent,
        trusted: true,
    }
}

impl<'a> Call<'a> {
    fn token(mut self, header: &'a str) -> Self {
        self.authorization = Some(header);
        self
    }
    fn origin(mut self, origin: &'a str) -> Self {
        self.origin = Some(origin);
        self
    }
    fn mcp(mut self, version: &'a str, method: &'a str, name: Option<&'a str>) -> Self {
        self.mcp = [Some(version), Some(method), name];
        self
    }
    /// The body as a proxy that forwards it (Traefik's `forwardBody`) sends it.
    fn body(mut self, body: &'a str) -> Self {
        self.body = ForwardedBody::Present(body.as_bytes());
        self
    }
    fn input(&self) -> GateInput<'a> {
        let one = |v: &'a str| HeaderField::One(v.as_bytes());
        let opt = |v: Option<&'a str>| HeaderField::from_option(v.map(str::as_bytes));
        GateInput {
            forwarded: ForwardedHeaders {
                forwarded_method: one(self.method),
                forwarded_proto: one(self.proto),
                forwarded_host: one(self.host),
                forwarded_uri: one(self.uri),
                ..ForwardedHeaders::default()
            },
            from_trusted_proxy: self.trusted,
            listener_https: false,
            authorization: opt(self.authorization),
            origin: opt(self.origin),
            mcp_protocol_version: opt(self.mcp[0]),
            mcp_method: opt(self.mcp[1]),
            mcp_name: opt(self.mcp[2]),
            body: self.body,
        }
    }
}

async fn gate(h: &Harness, c: &Call<'_>) -> GateVerdict {
    h.server.gate(&c.input()).await
}

fn refusal(v: &GateVerdict) -> Option<RefusalReason> {
    match &v.outcome {
        GateOutcome::Refuse(r) => Some(r.reason),
        _ => None,
    }
}

fn rejection(v: &GateVerdict) -> Option<RejectionKind> {
    match &v.outcome {
        GateOutcome::Reject(r) => Some(r.kind),
        _ => None,
    }
}

async fn valid_token(h: &Harness) -> String {
    let c = public_client(h).await;
    tokens(h, &c.client_id, &for_resource()).await.access_token
}

#[tokio::test]
async fn a_valid_token_on_a_resource_path_is_admitted_cold_and_warm() {
    let h = harness().await;
    let header = bearer(&valid_token(&h).await);
    for round in 0..2 {
        for uri in ["/mcp", "/mcp/", "/mcp/sse?session=1"] {
            let url = format!("https://mcp.example.com{uri}");
            let v = gate(&h, &call("POST", &url).token(&header)).await;
            match v.outcome {
                GateOutcome::Admit(p) => {
                    assert_eq!((p.subject(), p.audience()), ("local:alice", RESOURCE));
                }
                other => panic!("{uri} (round {round}): {other:?}"),
            }
            assert_eq!(v.allow_origin, None);
        }
    }
    // Host case and the default port name the same origin.
    for host in [
        "https://MCP.Example.COM/mcp",
        "https://mcp.example.com:443/mcp",
    ] {
        let v = gate(&h, &call("POST", host).token(&header)).await;
        assert!(matches!(v.outcome, GateOutcome::Admit(_)), "{host}: {v:?}");
    }
}

#[tokio::test]
async fn no_token_is_a_401_challenge_on_every_method() {
    let h = harness().await;
    for method in ["POST", "GET", "DELETE", "OPTIONS", "PUT", "options"] {
        let v = gate(&h, &call(method, "https://mcp.example.com/mcp")).await;
        let GateOutcome::Reject(r) = v.outcome else {
            panic!("{method}: {:?}", v.outcome);
        };
        assert_eq!(
            (r.kind, r.status()),
            (RejectionKind::MissingToken, 401),
            "{method}"
        );
        assert_eq!(
            r.www_authenticate(),
            format!("Bearer scope=\"mcp\", resource_metadata=\"{PRM}\"")
        );
    }
}

#[tokio::test]
async fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    let h = harness().await;
    let mut c = call(
        "GET",
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
    );
    c.trusted = false;
    assert_eq!(refusal(&gate(&h, &c).await), Some(RefusalReason::Untrusted));
    let none = GateInput::default();
    assert_eq!(
        refusal(&h.server.gate(&none).await),
        Some(RefusalReason::Forwarded(ForwardedError::Missing))
    );
}

#[tokio::test]
async fn the_host_header_bypass_is_refused_whatever_the_token() {
    let h = harness().await;
    let header = bearer(&valid_token(&h).await);
    for host in [
        "mcp.example.com\\.well-known\\x?",
        "mcp.example.com:443\\.well-known\\x?",
    ] {
        let c = Call {
            host,
            ..call("POST", "https://mcp.example.com/mcp")
        };
        assert_eq!(
            refusal(&gate(&h, &c).await),
            Some(RefusalReason::Forwarded(ForwardedError::BadHost)),
            "{host}"
        );
        assert_eq!(
            refusal(
                &gate(
                    &h,
                    &Call {
                        host,
                        ..call("POST", "https://mcp.example.com/mcp").token(&header)
                    }
                )
                .await
            ),
            Some(RefusalReason::Forwarded(ForwardedError::BadHost))
        );
    }
    // nginx's X-Original-URL built from the same Host.
    let input = GateInput {
        forwarded: ForwardedHeaders {
            original_url: HeaderField::One(b"https://mcp.example.com:443\\.well-known\\x?/mcp"),
            original_method: HeaderField::One(b"POST"),
            ..ForwardedHeaders::default()
        },
        from_trusted_proxy: true,
        ..GateInput::default()
    };
    assert_eq!(
        refusal(&h.server.gate(&input).await),
        Some(RefusalReason::Forwarded(ForwardedError::BadHost))
    );
}

#[tokio::test]
async fn paths_not_in_normal_form_are_refused_even_with_a_valid_token() {
    let h = harness().await;
    let header = bearer(&valid_token(&h).await);
    for uri in [
        "/mcp/../.well-known/x",
        "/mcp/%2e%2e/.well-known/x",
        "/mcp/%2E%2E/.well-known/oauth-protected-resource/mcp",
        "/.well-known/../mcp",
        "/mcp//x",
        "/mcp%2fx",
        "/mcp\\..\\x",
        "/%6dcp",
        "/mcp/..;/x",
    ] {
        for c in [
            Call {
                uri,
                ..call("POST", "https://mcp.example.com/")
            },
            Call {
                uri,
                ..call("GET", "https://mcp.example.com/").token(&header)
            },
        ] {
            assert!(
                matches!(refusal(&gate(&h, &c).await), Some(RefusalReason::Path(_))),
                "{uri}"
            );
        }
    }
}

#[tokio::test]
async fn only_the_exact_discovery_documents_pass_without_a_token() {
    let h = harness().await;
    for url in [
        PRM,
        "https://mcp.example.com/.well-known/oauth-authorization-server",
        "https://tools.example.com/.well-known/oauth-protected-resource",
    ] {
        for method in ["GET", "HEAD"] {
            assert_eq!(
                gate(&h, &call(method, url)).await.outcome,
                GateOutcome::Pass,
                "{method} {url}"
            );
        }
    }
    for (method, url) in [
        ("POST", PRM),
        ("OPTIONS", PRM),
        ("get", PRM),
        (
            "GET",
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp?x=1",
        ),
        (
            "GET",
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/x",
        ),
        (
            "GET",
            "https://mcp.example.com/.well-known/oauth-protected-resource/other",
        ),
        (
            "GET",
            "https://mcp.example.com/.WELL-KNOWN/oauth-protected-resource/mcp",
        ),
        (
            "GET",
            "https://mcp.example.com/.well-known/openid-configuration",
        ),
        ("GET", "https://mcp.example.com/.well-known/x"),
        // The PRM of a resource on another origin is not a document of this one.
        (
            "GET",
            "https://tools.example.com/.well-known/oauth-protected-resource/mcp",
        ),
    ] {
        let v = gate(&h, &call(method, url)).await;
        assert_ne!(v.outcome, GateOutcome::Pass, "{method} {url}");
    }
    // Under the origin-wide resource, a non-document well-known path needs a token like any other.
    let v = gate(&h, &call("GET", "https://tools.example.com/.well-known/x")).await;
    assert_eq!(rejection(&v), Some(RejectionKind::MissingToken));
    // Elsewhere it is under no resource at all.
    let v = gate(&h, &call("GET", "https://mcp.example.com/.well-known/x")).await;
    assert_eq!(refusal(&v), Some(RefusalReason::NoResource));
}

#[tokio::test]
async fn resources_are_located_on_origin_and_segment_boundaries_and_case_ambiguity_is_refused() {
    let mut config = testing::config();
    config.resources.push(ResourceConfig::new(
        "https://mcp.example.com/mcp/admin",
        vec!["mcp".into()],
    ));
    let h = harness_with(config).await;
    let header = bearer(&valid_token(&h).await);
    let at = |u: &str| h.server.resource_for_url(u).map(|r| r.resource.clone());
    assert_eq!(
        at("https://mcp.example.com/mcp/admin/x").as_deref(),
        Some("https://mcp.example.com/mcp/admin")
    );
    assert_eq!(
        at("https://mcp.example.com/mcp/adminx").as_deref(),
        Some(RESOURCE)
    );
    assert_eq!(at("https://mcp.example.com/mcpx"), None);
    assert_eq!(
        at("http://mcp.example.com/mcp"),
        None,
        "the scheme is part of the origin"
    );
    assert_eq!(at("https://mcp.example.com:8443/mcp"), None);
    assert_eq!(
        at("https://tools.example.com/x").as_deref(),
        Some(OTHER_RESOURCE)
    );
    assert_eq!(
        at("https://mcp.example.com/mcp/../mcp/admin"),
        None,
        "not in normal form"
    );
    assert_eq!(at("not a url"), None);
    // `/mcp/ADMIN` is under `/mcp` as sent, but a case-insensitive server would serve `/mcp/admin`.
    for uri in ["/mcp/ADMIN", "/MCP/admin", "/Mcp"] {
        let c = Call {
            uri,
            ..call("POST", "https://mcp.example.com/").token(&header)
        };
        assert_eq!(
            refusal(&gate(&h, &c).await),
            Some(RefusalReason::AmbiguousPath),
            "{uri}"
        );
    }
    assert_eq!(at("https://mcp.example.com/mcp/ADMIN"), None);
}

#[tokio::test]
async fn repeated_headers_are_refused() {
    let h = harness().await;
    let header = bearer(&valid_token(&h).await);
    let c = call("POST", "https://mcp.example.com/mcp").token(&header);
    let mut input = c.input();
    input.forwarded.forwarded_uri = HeaderField::Repeated;
    assert_eq!(
        refusal(&h.server.gate(&input).await),
        Some(RefusalReason::Forwarded(ForwardedError::Repeated(
            "X-Forwarded-Uri"
        )))
    );
    for (name, set) in [
        (
            "Authorization",
            (|i: &mut GateInput<'_>| i.authorization = HeaderField::Repeated)
                as fn(&mut GateInput<'_>),
        ),
        ("Origin", |i| i.origin = HeaderField::Repeated),
        ("Mcp-Method", |i| i.mcp_method = HeaderField::Repeated),
    ] {
        let mut input = c.input();
        set(&mut input);
        assert_eq!(
            refusal(&h.server.gate(&input).await),
            Some(RefusalReason::AmbiguousHeader(name))
        );
    }
}

#[tokio::test]
async fn a_non_ascii_or_control_character_in_a_read_header_is_refused() {
    let h = harness().await;
    let c = call("POST", "https://mcp.example.com/mcp");
    for (name, value, set) in [
        (
            "Origin",
            "https://\u{e9}.example".as_bytes(),
            (|i: &mut GateInput<'_>, v| i.origin = HeaderField::One(v))
                as fn(&mut GateInput<'_>, &'static [u8]),
        ),
        ("Authorization", b"Bearer x\r\n".as_slice(), |i, v| {
            i.authorization = HeaderField::One(v)
        }),
        ("Mcp-Name", b"\xff".as_slice(), |i, v| {
            i.mcp_name = HeaderField::One(v)
        }),
    ] {
        let mut input = c.input();
        set(&mut input, value);
        assert_eq!(
            refusal(&h.server.gate(&input).await),
            Some(RefusalReason::AmbiguousHeader(name)),
            "{value:?}"
        );
    }
}

#[tokio::test]
async fn origin_must_be_the_resources_own_or_allowed_and_allowed_ones_get_cors() {
    let mut config = testing::config();
    config.resources[0] = config.resources[0]
        .clone()
        .with_allowed_origins(vec!["http://localhost:6274".into()]);
    let h = harness_with(config).await;
    let header = bearer(&valid_token(&h).await);
    for origin in [
        "https://evil.example",
        "null",
        "https://mcp.example.com.evil.example",
        "http://mcp.example.com",
        "http://localhost:6275",
        "https://tools.example.com",
    ] {
        for c in [
            call("POST", "https://mcp.example.com/mcp").origin(origin),
            call("POST", "https://mcp.example.com/mcp")
                .token(&header)
                .origin(origin),
        ] {
            assert_eq!(
                refusal(&gate(&h, &c).await),
                Some(RefusalReason::OriginNotAllowed),
                "{origin}"
            );
        }
    }
    for origin in [
        "https://mcp.example.com",
        "https://MCP.example.com:443",
        "http://localhost:6274",
    ] {
        let v = gate(
            &h,
            &call("POST", "https://mcp.example.com/mcp")
                .token(&header)
                .origin(origin),
        )
        .await;
        assert!(matches!(v.outcome, GateOutcome::Admit(_)), "{origin}");
        assert_eq!(v.allow_origin.as_deref(), Some(origin));
        let v = gate(
            &h,
            &call("POST", "https://mcp.example.com/mcp").origin(origin),
        )
        .await;
        assert_eq!(rejection(&v), Some(RejectionKind::MissingToken));
        assert_eq!(
            v.allow_origin.as_deref(),
            Some(origin),
            "the 401 carries CORS for {origin}"
        );
    }
    // Another resource's allow-list does not apply.
    let v = gate(
        &h,
        &call("GET", "https://tools.example.com/x").origin("http://localhost:6274"),
    )
    .await;
    assert_eq!(refusal(&v), Some(RefusalReason::OriginNotAllowed));
}

#[tokio::test]
async fn preflights_are_answered_for_allowed_origins_only() {
    use oauth_core::ForwardedRequest;
    let mut config = testing::config();
    config.resources[0] = config.resources[0]
        .clone()
        .with_allowed_origins(vec!["http://localhost:6274".into()]);
    let h = harness_with(config).await;
    let headers = |uri: &'static str| ForwardedHeaders {
        forwarded_method: HeaderField::One(b"OPTIONS"),
        forwarded_proto: HeaderField::One(b"https"),
        forwarded_host: HeaderField::One(b"mcp.example.com"),
        forwarded_uri: HeaderField::One(uri.as_bytes()),
        ..ForwardedHeaders::default()
    };
    let post = HeaderField::One(b"POST");
    let mcp = headers("/mcp");
    let req = ForwardedRequest::parse(&mcp, false).unwrap();
    let ok = h
        .server
        .preflight(&req, HeaderField::One(b"http://localhost:6274"), post)
        .unwrap();
    assert_eq!(ok.allow_origin, "http://localhost:6274");
    let refused =
        |o: HeaderField<'_>, m: HeaderField<'_>| h.server.preflight(&req, o, m).unwrap_err().reason;
    assert_eq!(
        refused(HeaderField::One(b"https://evil.example"), post),
        RefusalReason::OriginNotAllowed
    );
    assert_eq!(
        refused(HeaderField::Absent, post),
        RefusalReason::NotAPreflight
    );
    assert_eq!(
        refused(
            HeaderField::One(b"http://localhost:6274"),
            HeaderField::Absent
        ),
        RefusalReason::NotAPreflight
    );
    assert_eq!(
        refused(HeaderField::Repeated, post),
        RefusalReason::AmbiguousHeader("Origin")
    );
    let nowhere = headers("/elsewhere");
    let req = ForwardedRequest::parse(&nowhere, false).unwrap();
    assert_eq!(
        h.server
            .preflight(&req, HeaderField::One(b"https://mcp.example.com"), post)
            .unwrap_err()
            .reason,
        RefusalReason::NoResource
    );
    let dots = headers("/mcp/../x");
    let req = ForwardedRequest::parse(&dots, false).unwrap();
    assert!(matches!(
        h.server
            .preflight(&req, HeaderField::One(b"https://mcp.example.com"), post)
            .unwrap_err()
            .reason,
        RefusalReason::Path(_)
    ));
}

fn gated(
    policy: oauth_core::AccessPolicy,
    tools: Vec<oauth_core::ToolScope>,
) -> oauth_core::ServerConfig {
    let mut config = testing::config();
    config.resources[0] = ResourceConfig::new(RESOURCE, vec!["mcp".into(), "mcp:admin".into()])
        .require(vec!["mcp".into()])
        .with_policy(policy)
        .with_tool_scopes(tools);
    config
}

#[tokio::test]
async fn access_policy_admits_by_user_email_domain_or_group() {
    use oauth_core::AccessPolicy;
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let cases = [
        (AccessPolicy::default(), true),
        (
            AccessPolicy::new(s(&["local:ALICE"]), vec![], vec![], vec![]),
            true,
        ),
        (
            AccessPolicy::new(s(&["local:alice"]), vec![], vec![], vec![]),
            true,
        ),
        (
            AccessPolicy::new(vec![], s(&["local:Alice@Example.com"]), vec![], vec![]),
            true,
        ),
        (
            AccessPolicy::new(vec![], vec![], s(&["local:example.com"]), vec![]),
            true,
        ),
        (
            AccessPolicy::new(vec![], vec![], vec![], s(&["local:staff"])),
            true,
        ),
        (
            AccessPolicy::new(
                s(&["local:bob"]),
                s(&["local:bob@example.com"]),
                s(&["local:example.org"]),
                s(&["local:admins"]),
            ),
            false,
        ),
        // The same names vouched for by another provider: nobody here.
        (
            AccessPolicy::new(
                s(&["github:alice"]),
                s(&["keycloak:alice@example.com"]),
                s(&["entra:example.com"]),
                s(&["github:staff"]),
            ),
            false,
        ),
    ];
    // Each as the resource's policy and as the server-wide one.
    let placed = cases.iter().flat_map(|(policy, admitted)| {
        let mut global = gated(AccessPolicy::default(), vec![]);
        global.policy = policy.clone();
        [
            (gated(policy.clone(), vec![]), policy.clone(), *admitted),
            (global, policy.clone(), *admitted),
        ]
    });
    for (config, policy, admitted) in placed {
        let h = harness_with(config).await;
        // Tokens come from an instance without the policy (approve would refuse the user), sharing the store.
        let issuer = Harness {
            server: AuthServer::new(
                gated(AccessPolicy::default(), vec![]),
                h.store.clone(),
                oauth_core::testing::sealer(),
                h.clock.clone(),
            )
            .await
            .unwrap(),
            clock: h.clock.clone(),
            store: h.store.clone(),
        };
        let header = bearer(&valid_token(&issuer).await);
        let v = gate(&h, &call("POST", RESOURCE).token(&header)).await;
        match (admitted, v.outcome) {
            (true, GateOutcome::Admit(p)) => assert_eq!(p.subject(), "local:alice"),
            (false, GateOutcome::Reject(r)) => {
                assert_eq!((r.kind, r.status()), (RejectionKind::AccessDenied, 403));
                assert_eq!(
                    r.www_authenticate(),
                    format!("Bearer resource_metadata=\"{PRM}\"")
                );
            }
            (want, got) => panic!("{policy:?}: wanted admitted={want}, got {got:?}"),
        }
    }
}

/// A harness whose resource has one tool rule (`delete_repo` needs `mcp:admin`), with the MCP server validating
/// the MCP headers itself or not; and a token with scope `mcp` only.
async fn tool_rules(validates: bool) -> (Harness, String) {
    let tools = vec![oauth_core::ToolScope::new(
        "tools/call:delete_repo",
        vec!["mcp:admin".into()],
    )];
    let mut config = gated(oauth_core::AccessPolicy::default(), tools);
    config.resources[0] = config.resources[0]
        .clone()
        .mcp_server_validates_headers(validates);
    let h = harness_with(config).await;
    let header = bearer(&valid_token(&h).await);
    (h, header)
}

fn admitted(v: &GateVerdict) -> bool {
    matches!(v.outcome, GateOutcome::Admit(_))
}

fn insufficient(v: &GateVerdict) -> bool {
    rejection(v) == Some(RejectionKind::InsufficientScope)
}

#[tokio::test]
async fn without_a_body_mcp_headers_count_only_where_the_mcp_server_validates_them_from_2026_07_28()
{
    let (h, header) = tool_rules(true).await;
    let post = || call("POST", RESOURCE).token(&header);
    assert!(
        admitted(&gate(&h, &post().mcp("2026-07-28", "tools/call", Some("echo"))).await),
        "other tools need nothing extra"
    );
    assert!(admitted(
        &gate(&h, &post().mcp("2026-07-28", "tools/list", None)).await
    ));
    // The Base64 sentinel is decoded before the rule is looked up.
    let encoded = gate(
        &h,
        &post().mcp(
            "2026-07-28",
            "tools/call",
            Some("=?base64?ZGVsZXRlX3JlcG8=?="),
        ),
    )
    .await;
    assert!(insufficient(&encoded), "{encoded:?}");
    let v = gate(
        &h,
        &post().mcp("2026-07-28", "tools/call", Some("delete_repo")),
    )
    .await;
    let GateOutcome::Reject(denied) = v.outcome else {
        panic!("{:?}", v.outcome)
    };
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.www_authenticate(),
        format!(
            "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks a scope this operation requires\", scope=\"mcp mcp:admin\", resource_metadata=\"{PRM}\""
        )
    );
    // Older and unknown revisions: their servers promise no validation, so the headers are not trusted.
    for version in ["2025-11-25", "2025-03-26", "2026-07-29", "2099-01-01"] {
        let v = gate(&h, &post().mcp(version, "tools/list", None)).await;
        assert!(insufficient(&v), "{version}: {v:?}");
    }
    // A sentinel that does not decode names no tool: unknown, so every tool scope.
    let v = gate(
        &h,
        &post().mcp("2026-07-28", "tools/call", Some("=?base64?*?=")),
    )
    .await;
    assert!(insufficient(&v), "{v:?}");
    assert!(
        insufficient(&gate(&h, &post()).await),
        "a POST without headers may be any call"
    );
    for method in ["PUT", "PATCH", "post"] {
        let v = gate(&h, &call(method, RESOURCE).token(&header)).await;
        assert!(insufficient(&v), "{method} may carry a call too");
    }
    for method in ["GET", "DELETE"] {
        assert!(
            admitted(&gate(&h, &call(method, RESOURCE).token(&header)).await),
            "{method} calls no tool"
        );
    }

    // The same headers at a resource that does not say its MCP server validates them: every tool scope.
    let (h, header) = tool_rules(false).await;
    let v = gate(
        &h,
        &call("POST", RESOURCE)
            .token(&header)
            .mcp("2026-07-28", "tools/call", Some("echo")),
    )
    .await;
    assert!(insufficient(&v), "{v:?}");
}

/// `MCP-Protocol-Version` is a calendar date or nothing: a malformed one is refused for every resource and
/// method, where comparing the text once made `x`, `9` or `zzzz` "newer" than 2026-07-28.
#[tokio::test]
async fn a_malformed_protocol_version_is_refused_outright() {
    let (h, header) = tool_rules(true).await;
    for version in [
        "x",
        "9",
        "zzzz",
        "2026-07-28-bogus",
        "2026-13-01",
        "2026-02-30",
        "",
    ] {
        for method in ["POST", "GET"] {
            let c = call(method, RESOURCE)
                .token(&header)
                .mcp(version, "tools/call", Some("echo"));
            let v = gate(&h, &c).await;
            let GateOutcome::Refuse(r) = &v.outcome else {
                panic!("{version:?} {method}: {v:?}")
            };
            assert_eq!(
                (r.reason, r.status(), r.error_code(), r.description.as_ref()),
                (
                    RefusalReason::ProtocolVersion,
                    403,
                    "access_denied",
                    "the MCP-Protocol-Version header is not a date (YYYY-MM-DD)"
                ),
                "{version:?} {method}"
            );
        }
    }
    // The other resource has no tool rules; the header means the same there.
    let other = format!("{OTHER_RESOURCE}/mcp");
    let other = call("POST", &other).mcp("zzzz", "tools/list", None);
    assert_eq!(
        refusal(&gate(&h, &other).await),
        Some(RefusalReason::ProtocolVersion)
    );
}

const DELETE_REPO: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{}}}"#;
const ECHO: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":"delete_repo"}}}"#;

#[tokio::test]
async fn a_forwarded_body_decides_the_call_whatever_the_headers_would_say() {
    for validates in [false, true] {
        let (h, header) = tool_rules(validates).await;
        let post = |body| call("POST", RESOURCE).token(&header).body(body);
        // Any client, any protocol revision: the body is what the MCP server acts on.
        assert!(admitted(&gate(&h, &post(ECHO)).await), "{validates}");
        assert!(
            insufficient(&gate(&h, &post(DELETE_REPO)).await),
            "{validates}"
        );
        assert!(
            admitted(
                &gate(
                    &h,
                    &post(ECHO).mcp("2025-06-18", "tools/call", Some("echo"))
                )
                .await
            ),
            "{validates}: headers that agree"
        );
        // A batch (2025-03-26) needs what each of its calls needs.
        let batch = format!("[{ECHO},{DELETE_REPO}]");
        assert!(insufficient(&gate(&h, &post(&batch)).await), "{validates}");
        let responses = r#"[{"jsonrpc":"2.0","id":"s1","result":{}},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#;
        assert!(admitted(&gate(&h, &post(responses)).await), "{validates}");
        // What is not plainly JSON-RPC is no known call: every tool scope.
        for body in [
            "not json",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_repo"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["delete_repo"]}"#,
            r#"{"id":1,"method":"tools/call","params":{"name":"echo"}}"#,
            "[]",
        ] {
            let v = gate(&h, &post(body)).await;
            assert!(insufficient(&v), "{validates}: {body}: {v:?}");
            // Even with headers that would name a harmless call.
            let v = gate(
                &h,
                &post(body).mcp("2026-07-28", "tools/call", Some("echo")),
            )
            .await;
            assert!(insufficient(&v), "{validates}: {body}: {v:?}");
        }
    }
}

#[tokio::test]
async fn mcp_headers_that_disagree_with_the_forwarded_body_are_a_400() {
    let (h, header) = tool_rules(true).await;
    let post = |body| call("POST", RESOURCE).token(&header).body(body);
    let cases = [
        (
            post(DELETE_REPO).mcp("2026-07-28", "tools/call", Some("echo")),
            "Mcp-Name",
        ),
        (
            post(ECHO).mcp("2026-07-28", "tools/list", None),
            "Mcp-Method",
        ),
        (
            post(ECHO).mcp("2026-07-28", "tools/call", Some("=?base64?ZGVsZXRlX3JlcG8=?=")),
            "Mcp-Name",
        ),
        (
            post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#)
                .mcp("2025-11-25", "tools/list", None),
            "MCP-Protocol-Version",
        ),
    ];
    for (c, header_name) in cases {
        let v = gate(&h, &c).await;
        let GateOutcome::Refuse(r) = &v.outcome else {
            panic!("{header_name}: {v:?}")
        };
        assert_eq!(r.reason, RefusalReason::HeaderMismatch(header_name));
        assert_eq!((r.status(), r.error_code()), (400, "invalid_request"));
        assert_eq!(
            r.description,
            format!("the {header_name} header does not match the JSON-RPC request body")
        );
    }
    // Without a token too: the request is malformed before it is unauthorised.
    let v = gate(
        &h,
        &call("POST", RESOURCE)
            .body(ECHO)
            .mcp("2026-07-28", "tools/list", None),
    )
    .await;
    assert_eq!(
        refusal(&v),
        Some(RefusalReason::HeaderMismatch("Mcp-Method"))
    );
    // A resource without tool rules does not read the body at all.
    let other = format!("{OTHER_RESOURCE}/mcp");
    let v = gate(
        &h,
        &call("POST", &other)
            .body(ECHO)
            .mcp("2026-07-28", "tools/list", None),
    )
    .await;
    assert_eq!(rejection(&v), Some(RejectionKind::MissingToken), "{v:?}");
}

#[tokio::test]
async fn a_forwarded_body_too_long_to_read_is_a_413() {
    let (h, header) = tool_rules(true).await;
    let mut c = call("POST", RESOURCE)
        .token(&header)
        .mcp("2026-07-28", "tools/call", Some("echo"));
    c.body = ForwardedBody::TooLarge { limit: 4096 };
    let v = gate(&h, &c).await;
    let GateOutcome::Refuse(r) = &v.outcome else {
        panic!("{v:?}")
    };
    assert_eq!(
        (r.reason, r.status(), r.error_code(), r.description.as_ref()),
        (
            RefusalReason::BodyTooLarge { limit: 4096 },
            413,
            "invalid_request",
            "the request body is larger than the 4096 bytes the gate reads to apply per-tool scopes"
        )
    );
    // A GET carries no call, and neither does a request to a resource without tool rules.
    c.method = "GET";
    assert!(admitted(&gate(&h, &c).await));
}

/// Each decision is an event with its resource, decision, reason and the tool that decided (of a batch, the
/// call a rule applies to); a request refused before any resource is located names none.
#[tokio::test]
async fn each_decision_is_an_event_naming_the_resource_and_the_tool() {
    let (h, header) = tool_rules(false).await;
    let (h, rec) = crate::events::listening(h);
    let post = |body| call("POST", RESOURCE).token(&header).body(body);
    assert!(admitted(&gate(&h, &post(ECHO)).await));
    let batch = format!("[{ECHO},{DELETE_REPO}]");
    assert!(insufficient(&gate(&h, &post(&batch)).await));
    gate(&h, &call("POST", "https://elsewhere.example/mcp")).await;
    let gate = rec.named("gate");
    let seen: Vec<(&str, &str, &str, &str, u64)> = gate
        .iter()
        .map(|e| {
            (
                e["resource"].as_str().unwrap_or("-"),
                e["decision"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
                e["tool"].as_str().unwrap_or("-"),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (RESOURCE, "allow", "ok", "echo", 200),
            (RESOURCE, "deny", "insufficient_scope", "delete_repo", 403),
            ("-", "deny", "no_resource", "-", 403),
        ]
    );
    assert_eq!(gate[0]["subject"], "local:alice");
    assert_eq!(
        gate[1]["subject"], "local:alice",
        "whose token lacked the scope"
    );
    assert_eq!(gate[2]["subject"], serde_json::Value::Null);
}
