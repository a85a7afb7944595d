//! The forwarded-request parser (`oauth_core::forwarded`) against the invariants the gate relies on.
//!
//! The fuzz bytes become the eight headers the gate reads (each absent, sent once with arbitrary bytes, or
//! repeated), the listener's scheme, and one more raw string. `ForwardedRequest::parse` must never panic, and what
//! it accepts must be a request the gate can judge as sent: a path starting with `/` of visible ASCII without `?`
//! or `#`, a host that is a reg-name or a bracketed IP literal, a method that is a token, every component a slice
//! of the header it came from, and one request when both header families describe it. `check_path` must accept
//! only paths in normal form, and `SiteOrigin::parse` must never panic. A failed assertion is a crash.
//!
//! Run in `oauth-core/fuzz`: `cargo +nightly fuzz run forwarded corpus/forwarded seeds/forwarded --
//! -dict=forwarded.dict` (the seeds are written by `seeds.py`; new inputs go to the git-ignored `corpus/`).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oauth_core::forwarded::{
    ForwardedHeaders, ForwardedRequest, HeaderField, SiteOrigin, check_path,
};

/// One header: absent, sent once with these bytes, or sent more than once.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Field<'a> {
    Absent,
    One(&'a [u8]),
    Repeated,
}

impl<'a> Field<'a> {
    fn header(self) -> HeaderField<'a> {
        match self {
            Field::Absent => HeaderField::Absent,
            Field::One(v) => HeaderField::One(v),
            Field::Repeated => HeaderField::Repeated,
        }
    }

    fn value(self) -> Option<&'a [u8]> {
        match self {
            Field::One(v) => Some(v),
            Field::Absent | Field::Repeated => None,
        }
    }
}

/// The fields in this order are the layout `seeds.py` writes.
#[derive(Arbitrary, Debug)]
struct Input<'a> {
    forwarded_method: Field<'a>,
    forwarded_proto: Field<'a>,
    forwarded_host: Field<'a>,
    forwarded_uri: Field<'a>,
    original_url: Field<'a>,
    original_uri: Field<'a>,
    original_method: Field<'a>,
    host: Field<'a>,
    listener_https: bool,
    /// Fed to `check_path` and `SiteOrigin::parse` as is.
    raw: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let headers = ForwardedHeaders {
        forwarded_method: input.forwarded_method.header(),
        forwarded_proto: input.forwarded_proto.header(),
        forwarded_host: input.forwarded_host.header(),
        forwarded_uri: input.forwarded_uri.header(),
        original_url: input.original_url.header(),
        original_uri: input.original_uri.header(),
        original_method: input.original_method.header(),
        host: input.host.header(),
    };
    if let Ok(r) = ForwardedRequest::parse(&headers, input.listener_https) {
        check_request(&input, &r);
        check_path_oracle(r.path);
    }

    check_path_oracle(input.raw);
    check_origin(input.raw);
    for field in [
        input.forwarded_method,
        input.forwarded_proto,
        input.forwarded_host,
        input.forwarded_uri,
        input.original_url,
        input.original_uri,
        input.original_method,
        input.host,
    ] {
        if let Some(s) = field.value().and_then(|v| std::str::from_utf8(v).ok()) {
            check_path_oracle(s);
            check_origin(s);
        }
    }
});

/// The invariants of an accepted request.
fn check_request(input: &Input<'_>, r: &ForwardedRequest<'_>) {
    // The path: origin-form, visible ASCII, nothing after it.
    assert!(r.path.starts_with('/'), "path {:?}", r.path);
    assert!(
        r.path.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "path {:?} has whitespace, control or non-ASCII bytes",
        r.path
    );
    assert!(
        !r.path.contains(['?', '#']),
        "path {:?} has `?` or `#`",
        r.path
    );
    if let Some(q) = r.query {
        assert!(!q.contains('#'), "query {q:?} has `#`");
        assert!(
            q.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "query {q:?} has whitespace, control or non-ASCII bytes"
        );
    }

    check_host(r.host);
    assert_ne!(r.port, Some(0), "port 0 accepted");

    assert!(
        is_token(r.method) && r.method.len() <= 32,
        "method {:?} is not a token of at most 32 characters",
        r.method
    );

    // Every component is a slice of the header it came from (nothing rebuilt).
    let from = |s: &str, fields: &[Field<'_>]| {
        fields
            .iter()
            .filter_map(|f| f.value())
            .any(|v| is_within(s, v))
    };
    assert!(
        from(r.method, &[input.forwarded_method, input.original_method]),
        "method {:?} is not from a method header",
        r.method
    );
    assert!(
        from(
            r.host,
            &[input.forwarded_host, input.host, input.original_url]
        ),
        "host {:?} is not from a host header or X-Original-URL",
        r.host
    );
    let targets = [input.forwarded_uri, input.original_url, input.original_uri];
    assert!(
        r.path == "/" || from(r.path, &targets),
        "path {:?} is not from a target header",
        r.path
    );
    if let Some(q) = r.query {
        assert!(from(q, &targets), "query {q:?} is not from a target header");
    }

    // One request: every header that describes a component says what the result says.
    for m in [input.forwarded_method, input.original_method]
        .iter()
        .filter_map(|f| f.value())
    {
        assert_eq!(m, r.method.as_bytes(), "the method headers disagree");
    }
    let path_query = (r.path, r.query);
    for uri in [input.forwarded_uri, input.original_uri]
        .iter()
        .filter_map(|f| f.value())
    {
        assert_eq!(
            split_target(uri),
            path_query,
            "a request target header disagrees with the result"
        );
    }
    if let Some(url) = input.original_url.value() {
        let (https, host, port, target) = split_url(url);
        assert_eq!(https, r.https, "X-Original-URL's scheme disagrees");
        assert!(
            host.eq_ignore_ascii_case(r.host),
            "X-Original-URL's host {host:?} disagrees with {:?}",
            r.host
        );
        assert_eq!(
            effective_port(port, https),
            r.port_or_default(),
            "X-Original-URL's port disagrees"
        );
        assert_eq!(
            split_target(target.as_bytes()),
            path_query,
            "X-Original-URL's path or query disagrees"
        );
    }
    // X-Forwarded-Proto and the host headers are read with a relative target: X-Forwarded-Uri, or X-Original-URI
    // without X-Original-URL. With X-Original-URL and no X-Forwarded-Uri the parser does not read them at all, so
    // they are not checked against the result then.
    let relative = input.forwarded_uri.value().is_some()
        || (input.original_uri.value().is_some() && input.original_url.value().is_none());
    if relative {
        let https = match input.forwarded_proto.value() {
            Some(p) => p.eq_ignore_ascii_case(b"https"),
            None => input.listener_https,
        };
        assert_eq!(https, r.https, "X-Forwarded-Proto disagrees");
        let authority = input
            .forwarded_host
            .value()
            .or(input.host.value())
            .map(ascii);
        let Some(authority) = authority else {
            panic!("a relative target was accepted without a host");
        };
        let (host, port) = split_authority(authority);
        assert!(
            host.eq_ignore_ascii_case(r.host),
            "the host header {host:?} disagrees with {:?}",
            r.host
        );
        assert_eq!(
            effective_port(port, r.https),
            r.port_or_default(),
            "the host header's port disagrees"
        );
    }

    // Formatting never panics and never shows the query (no other component may hold a `?`).
    let shown = r.to_string();
    assert!(!shown.contains('?'), "Display shows the query: {shown:?}");
    let origin = r.origin();
    assert_eq!(origin.host, r.host);
    assert_eq!(origin.port, r.port_or_default());
}

/// A host the gate may compare: non-empty, a reg-name of unreserved characters or a bracketed IP literal.
fn check_host(host: &str) {
    assert!(!host.is_empty(), "empty host");
    assert!(
        !host.contains(['\\', '/', '?', '#', '@', '%'])
            && !host.bytes().any(|b| b.is_ascii_whitespace()),
        "host {host:?} has a delimiter or whitespace"
    );
    let reg_name = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        });
    assert!(
        reg_name || literal,
        "host {host:?} is neither a reg-name nor a bracketed literal"
    );
}

/// RFC 9110 token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `s` lies inside `v` (same memory, not merely equal text).
fn is_within(s: &str, v: &[u8]) -> bool {
    let (start, end) = (v.as_ptr() as usize, v.as_ptr() as usize + v.len());
    let p = s.as_ptr() as usize;
    start <= p && p + s.len() <= end
}

/// A header value the parser accepted is ASCII.
fn ascii(v: &[u8]) -> &str {
    match std::str::from_utf8(v) {
        Ok(s) => s,
        Err(_) => panic!("an accepted header is not ASCII: {v:?}"),
    }
}

/// `/path?query` → (path, query), at the first `?`.
fn split_target(t: &[u8]) -> (&str, Option<&str>) {
    let t = ascii(t);
    match t.find('?') {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    }
}

/// `host[:port]` or `[literal][:port]` → (host, port).
fn split_authority(a: &str) -> (&str, Option<u16>) {
    let colon = if a.starts_with('[') {
        a.find(']').and_then(|i| a[i..].find(':').map(|j| i + j))
    } else {
        a.find(':')
    };
    match colon {
        Some(i) => {
            let port = a[i + 1..].parse().ok();
            assert!(port.is_some(), "an accepted port is not a number: {a:?}");
            (&a[..i], port)
        }
        None => (a, None),
    }
}

/// `http(s)://authority[/target]` → (https, host, port, target).
fn split_url(url: &[u8]) -> (bool, &str, Option<u16>, &str) {
    let url = ascii(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        panic!("an accepted X-Original-URL has no `://`: {url:?}");
    };
    let https = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        panic!("an accepted X-Original-URL has scheme {scheme:?}");
    };
    let (authority, target) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = split_authority(authority);
    (https, host, port, target)
}

fn effective_port(port: Option<u16>, https: bool) -> u16 {
    port.unwrap_or(if https { 443 } else { 80 })
}

/// If `check_path` accepts `p`, `p` is in the normal form the gate relies on.
fn check_path_oracle(p: &str) {
    if check_path(p).is_err() {
        return;
    }
    assert!(!p.contains("//"), "check_path accepted `//` in {p:?}");
    assert!(!p.contains('\\'), "check_path accepted `\\` in {p:?}");
    for segment in p.split('/') {
        let name = segment.split(';').next().unwrap_or(segment);
        assert!(
            name != "." && name != "..",
            "check_path accepted a dot segment in {p:?}"
        );
    }
    let bytes = p.as_bytes();
    for (i, _) in p.match_indices('%') {
        let hex = |j: usize| {
            bytes
                .get(j)
                .and_then(|c| char::from(*c).to_digit(16))
                .map(|d| d as u8)
        };
        let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
            panic!("check_path accepted a malformed percent-encoding in {p:?}");
        };
        let c = hi << 4 | lo;
        assert!(
            !(c == b'/' || c == b'\\'),
            "check_path accepted an encoded `/` or `\\` in {p:?}"
        );
        assert!(
            !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')),
            "check_path accepted an encoded unreserved character in {p:?}"
        );
        assert!(
            !(c < 0x20 || c == 0x7f || c == 0xc0 || c == 0xc1),
            "check_path accepted an encoded control character in {p:?}"
        );
    }
}

/// `SiteOrigin::parse` never panics, and what it accepts is `http(s)://host[:port]` with a valid host.
fn check_origin(s: &str) {
    let Some(o) = SiteOrigin::parse(s) else {
        return;
    };
    check_host(o.host);
    assert_ne!(o.port, 0, "origin {s:?} with port 0");
    assert!(
        is_within(o.host, s.as_bytes()),
        "origin host not from {s:?}"
    );
    let (scheme, authority) = s.split_once("://").unwrap_or_default();
    assert_eq!(
        o.https,
        scheme.eq_ignore_ascii_case("https"),
        "origin {s:?}: scheme"
    );
    assert!(
        scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http"),
        "origin {s:?}: scheme"
    );
    let (host, port) = split_authority(authority);
    assert_eq!(host, o.host, "origin {s:?}: host");
    assert_eq!(effective_port(port, o.https), o.port, "origin {s:?}: port");
}
