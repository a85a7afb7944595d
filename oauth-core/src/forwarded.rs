//! The request a forward-auth call is about, read strictly from the proxy's headers, once.
//!
//! A proxy (Traefik ForwardAuth, nginx `auth_request`, Caddy `forward_auth`) asks the gate about a request it is
//! holding, describing it in headers: `X-Forwarded-Method`/`-Proto`/`-Host`/`-Uri` (Traefik, Caddy) or
//! `X-Original-URL`/`-URI`/`-Method` (nginx). The gate must judge *exactly* the request the proxy will forward, so:
//!
//! * **Nothing is rebuilt from strings and re-parsed.** Each component is taken from its header and validated on
//!   its own. Concatenating `proto://` + host + uri and handing that to a URL parser let a backslash in the host
//!   become a path separator (`Host: mcp.example.com\.well-known\x?` judged as a discovery request) while nginx
//!   forwarded the request to `/mcp` unchanged.
//! * **Nothing is normalised.** The path is kept raw, as the MCP server will receive it. A path the MCP server
//!   might read differently from the gate (dot segments raw or percent-encoded, encoded `/` or `\`, `//`,
//!   encoded unreserved characters, `..;` parameters) is refused by [`check_path`] rather than resolved: the
//!   gate cannot know which normalisation the server behind the proxy applies.
//! * **Ambiguity is refused.** A header the gate reads that is present twice, a host that is not an RFC 3986
//!   reg-name or IP literal with an optional port (no `\`, `/`, `?`, `#`, `@`, `%`, whitespace or control
//!   characters), a scheme other than `http`/`https`, and two header families that disagree are all refusals.
//!   The proxy turns a refusal into a 403 for the client.
//!
//! A proxy passes the client's own headers to the gate by default, so a client can add the header family the
//! proxy does not set (`X-Original-URL` behind Traefik, `X-Forwarded-Uri` behind nginx). When both families are
//! present they must describe the same request, component by component, as sent.

use std::fmt;

/// One request header as the gate received it: absent, present once, or present more than once (which the
/// gate refuses for every header it reads: a proxy and a server may each pick a different copy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeaderField<'a> {
    /// Not sent.
    #[default]
    Absent,
    /// Sent once, with this value (raw bytes).
    One(&'a [u8]),
    /// Sent more than once.
    Repeated,
}

impl<'a> HeaderField<'a> {
    /// The field from all the values a request carries under one name.
    pub fn from_values<I: IntoIterator<Item = &'a [u8]>>(values: I) -> Self {
        let mut it = values.into_iter();
        match (it.next(), it.next()) {
            (None, _) => HeaderField::Absent,
            (Some(v), None) => HeaderField::One(v),
            (Some(_), Some(_)) => HeaderField::Repeated,
        }
    }

    /// The field from one optional value (for callers that read a header once).
    pub fn from_option(value: Option<&'a [u8]>) -> Self {
        value.map_or(HeaderField::Absent, HeaderField::One)
    }

    fn is_present(self) -> bool {
        !matches!(self, HeaderField::Absent)
    }

    /// The value as visible ASCII (space and tab allowed inside); `Ok(None)` when absent.
    fn text(self, name: &'static str) -> Result<Option<&'a str>, ForwardedError> {
        match self {
            HeaderField::Absent => Ok(None),
            HeaderField::Repeated => Err(ForwardedError::Repeated(name)),
            HeaderField::One(v) => {
                if v.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t') {
                    // All bytes are ASCII, hence UTF-8.
                    std::str::from_utf8(v)
                        .map(Some)
                        .map_err(|_| ForwardedError::NotAscii(name))
                } else {
                    Err(ForwardedError::NotAscii(name))
                }
            }
        }
    }
}

/// The headers that describe the guarded request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardedHeaders<'a> {
    /// `X-Forwarded-Method`.
    pub forwarded_method: HeaderField<'a>,
    /// `X-Forwarded-Proto`.
    pub forwarded_proto: HeaderField<'a>,
    /// `X-Forwarded-Host`.
    pub forwarded_host: HeaderField<'a>,
    /// `X-Forwarded-Uri`.
    pub forwarded_uri: HeaderField<'a>,
    /// `X-Original-URL`.
    pub original_url: HeaderField<'a>,
    /// `X-Original-URI`.
    pub original_uri: HeaderField<'a>,
    /// `X-Original-Method`.
    pub original_method: HeaderField<'a>,
    /// `Host` of the forward-auth call itself (nginx's `X-Original-URI` comes with the client's `Host`).
    pub host: HeaderField<'a>,
}

impl ForwardedHeaders<'_> {
    /// Whether any header that describes a guarded request is present (`Host` does not count).
    pub fn any(&self) -> bool {
        [
            self.forwarded_method,
            self.forwarded_proto,
            self.forwarded_host,
            self.forwarded_uri,
            self.original_url,
            self.original_uri,
            self.original_method,
        ]
        .iter()
        .any(|h| h.is_present())
    }
}

/// Why the guarded request could not be established. Every variant is a refusal (403).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedError {
    /// No header describes a request.
    #[error("the proxy sent no X-Forwarded-* or X-Original-* headers")]
    Missing,
    /// A header the gate reads was sent twice.
    #[error("the {0} header was sent more than once")]
    Repeated(&'static str),
    /// A header holds bytes other than visible ASCII.
    #[error("the {0} header is not visible ASCII")]
    NotAscii(&'static str),
    /// No method header.
    #[error("the proxy sent no X-Forwarded-Method or X-Original-Method header")]
    NoMethod,
    /// The method is not an HTTP token.
    #[error("the forwarded method is not an HTTP method")]
    BadMethod,
    /// The scheme is neither `http` nor `https`.
    #[error("the forwarded scheme is not http or https")]
    BadScheme,
    /// No host.
    #[error("the forwarded request has no host")]
    NoHost,
    /// The host is not a reg-name or IP literal with an optional port.
    #[error("the forwarded host is not a valid host name with an optional port")]
    BadHost,
    /// No path.
    #[error("the proxy sent no X-Forwarded-Uri, X-Original-URL or X-Original-URI header")]
    NoUri,
    /// The request target is not origin-form (`/path?query`), or the URL is not absolute http(s).
    #[error("the forwarded request target is not a path starting with `/`")]
    BadTarget,
    /// The two header families describe different requests.
    #[error("the X-Forwarded-* and X-Original-* headers describe different requests")]
    Conflicting,
}

/// The guarded request: each component as the proxy sent it, validated, nothing normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardedRequest<'a> {
    /// The method, exactly as sent (methods are case-sensitive: `options` is not `OPTIONS`).
    pub method: &'a str,
    /// Whether the scheme is `https`.
    pub https: bool,
    /// The host as sent: a reg-name (any case) or a bracketed IP literal, without the port.
    pub host: &'a str,
    /// The port, if the authority names one.
    pub port: Option<u16>,
    /// The raw path, starting with `/`.
    pub path: &'a str,
    /// The raw query, without the `?`.
    pub query: Option<&'a str>,
}

impl<'a> ForwardedRequest<'a> {
    /// Reads the guarded request from the proxy's headers. `listener_https` is the scheme of the connection the
    /// forward-auth call came on, used when the proxy sends no `X-Forwarded-Proto` with an `X-Original-URI`.
    ///
    /// # Errors
    /// [`ForwardedError`] for anything missing, repeated, malformed or contradictory.
    pub fn parse(h: &ForwardedHeaders<'a>, listener_https: bool) -> Result<Self, ForwardedError> {
        if !h.any() {
            return Err(ForwardedError::Missing);
        }
        let fwd_method = h.forwarded_method.text("X-Forwarded-Method")?;
        let orig_method = h.original_method.text("X-Original-Method")?;
        let method = match (fwd_method, orig_method) {
            (Some(a), Some(b)) if a != b => return Err(ForwardedError::Conflicting),
            (Some(m), _) | (None, Some(m)) => m,
            (None, None) => return Err(ForwardedError::NoMethod),
        };
        if !is_method(method) {
            return Err(ForwardedError::BadMethod);
        }
        let proto = h.forwarded_proto.text("X-Forwarded-Proto")?;
        let fwd_host = h.forwarded_host.text("X-Forwarded-Host")?;
        let host_header = h.host.text("Host")?;
        let uri = h.forwarded_uri.text("X-Forwarded-Uri")?;
        let original_url = h.original_url.text("X-Original-URL")?;
        let original_uri = h.original_uri.text("X-Original-URI")?;

        let https = || -> Result<bool, ForwardedError> {
            match proto {
                Some(p) => scheme_is_https(p).ok_or(ForwardedError::BadScheme),
                None => Ok(listener_https),
            }
        };
        let authority = || fwd_host.or(host_header).ok_or(ForwardedError::NoHost);
        let relative = |target: &'a str| -> Result<ForwardedRequest<'a>, ForwardedError> {
            let (host, port) = parse_authority(authority()?)?;
            let (path, query) = parse_target(target)?;
            Ok(ForwardedRequest {
                method,
                https: https()?,
                host,
                port,
                path,
                query,
            })
        };
        // Traefik and Caddy: X-Forwarded-Uri. nginx: X-Original-URL, or X-Original-URI with the host.
        let forwarded = uri.map(relative).transpose()?;
        let original = match (original_url, original_uri) {
            (Some(url), uri) => {
                let from_url = parse_absolute(url, method)?;
                if let Some(uri) = uri {
                    let (path, query) = parse_target(uri)?;
                    if (path, query) != (from_url.path, from_url.query) {
                        return Err(ForwardedError::Conflicting);
                    }
                }
                Some(from_url)
            }
            (None, Some(uri)) => Some(relative(uri)?),
            (None, None) => None,
        };
        match (forwarded, original) {
            (Some(f), Some(o)) if !f.same_as(&o) => Err(ForwardedError::Conflicting),
            (Some(r), _) | (None, Some(r)) => Ok(r),
            (None, None) => Err(ForwardedError::NoUri),
        }
    }

    /// The port, or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }

    /// Same scheme, host (ASCII case-insensitive), effective port, path and query, as sent.
    fn same_as(&self, other: &ForwardedRequest<'_>) -> bool {
        self.method == other.method
            && self.https == other.https
            && self.host.eq_ignore_ascii_case(other.host)
            && self.port_or_default() == other.port_or_default()
            && self.path == other.path
            && self.query == other.query
    }

    /// The origin (`scheme://host[:port]`) the request was made to.
    pub fn origin(&self) -> SiteOrigin<'a> {
        SiteOrigin {
            https: self.https,
            host: self.host,
            port: self.port_or_default(),
        }
    }
}

impl fmt::Display for ForwardedRequest<'_> {
    /// `METHOD scheme://host[:port]path` (never the query, which may carry a code).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}://{}",
            self.method,
            if self.https { "https" } else { "http" },
            self.host
        )?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        f.write_str(self.path)
    }
}

/// A scheme, host and effective port: what the gate compares a request, a resource and an `Origin` by.
#[derive(Clone, Copy, Debug)]
pub struct SiteOrigin<'a> {
    /// `https`, else `http`.
    pub https: bool,
    /// The host as written (compared ASCII case-insensitively).
    pub host: &'a str,
    /// The effective port.
    pub port: u16,
}

impl PartialEq for SiteOrigin<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.https == other.https
            && self.port == other.port
            && self.host.eq_ignore_ascii_case(other.host)
    }
}

impl Eq for SiteOrigin<'_> {}

impl<'a> SiteOrigin<'a> {
    /// Parses an `Origin` header value (RFC 6454: `scheme://host[:port]`, nothing after); `None` for anything
    /// else, `null` included.
    pub fn parse(value: &'a str) -> Option<Self> {
        let (https, rest) = split_scheme(value)?;
        let (host, port) = parse_authority(rest).ok()?;
        Some(SiteOrigin {
            https,
            host,
            port: port.unwrap_or(if https { 443 } else { 80 }),
        })
    }
}

/// `http://…` or `https://…` (scheme case-insensitive) → (https, the rest).
fn split_scheme(s: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    Some((scheme_is_https(scheme)?, rest))
}

fn scheme_is_https(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("https") {
        Some(true)
    } else if s.eq_ignore_ascii_case("http") {
        Some(false)
    } else {
        None
    }
}

/// An absolute `http(s)://authority/path?query` URL, split as sent (no fragment, no userinfo).
fn parse_absolute<'a>(
    url: &'a str,
    method: &'a str,
) -> Result<ForwardedRequest<'a>, ForwardedError> {
    let (https, rest) = split_scheme(url).ok_or(ForwardedError::BadTarget)?;
    // The authority ends at the first `/`; a `?`, `#`, `\` or `@` before it is refused by the host rules. An
    // origin without a path (`https://tools.example.com`) means `/`, as a client would request it.
    let at = rest.find('/').unwrap_or(rest.len());
    let (authority, target) = rest.split_at(at);
    let target = if target.is_empty() { "/" } else { target };
    let (host, port) = parse_authority(authority)?;
    let (path, query) = parse_target(target)?;
    Ok(ForwardedRequest {
        method,
        https,
        host,
        port,
        path,
        query,
    })
}

/// `host[:port]`: a reg-name of letters, digits, `-`, `.`, `_`, `~`, or an IP literal in brackets; a port of
/// one to five digits without a leading zero, 1–65535.
pub(crate) fn parse_authority(a: &str) -> Result<(&str, Option<u16>), ForwardedError> {
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let end = rest.find(']').ok_or(ForwardedError::BadHost)?;
        let (inner, after) = rest.split_at(end);
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(ForwardedError::BadHost);
        }
        // `after` starts with `]`.
        let host_len = end + 2;
        let port = match after.get(1..) {
            Some("") | None => None,
            Some(p) => Some(p.strip_prefix(':').ok_or(ForwardedError::BadHost)?),
        };
        (a.get(..host_len).ok_or(ForwardedError::BadHost)?, port)
    } else {
        let (host, port) = match a.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        };
        if host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(ForwardedError::BadHost);
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or(ForwardedError::BadHost)?),
    };
    Ok((host, port))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || p.starts_with('0') || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok()
}

/// An origin-form request target: `/path[?query]`, visible ASCII, no fragment.
fn parse_target(t: &str) -> Result<(&str, Option<&str>), ForwardedError> {
    if !t.starts_with('/') || t.bytes().any(|b| !(0x21..0x7f).contains(&b) || b == b'#') {
        return Err(ForwardedError::BadTarget);
    }
    Ok(match t.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (t, None),
    })
}

/// An HTTP method: an RFC 9110 token of at most 32 characters.
fn is_method(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 32
        && m.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Why a raw path is not in normal form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    /// A `.` or `..` segment (also before a `;` parameter, as servlet containers read `..;`).
    #[error("the path has a dot segment")]
    DotSegment,
    /// `//`: an empty segment, which some servers collapse.
    #[error("the path has an empty segment (`//`)")]
    EmptySegment,
    /// A `\`, raw or encoded, which some servers read as `/`.
    #[error("the path has a backslash")]
    Backslash,
    /// `%2F`: an encoded `/`.
    #[error("the path has an encoded slash")]
    EncodedSlash,
    /// An encoded unreserved character (`%2e`, `%6d`, …), which a server decodes to a different path.
    #[error("the path percent-encodes a character that needs no encoding")]
    EncodedUnreserved,
    /// An encoded control character, or a byte that never starts UTF-8 (`%C0`, `%C1`: overlong encodings).
    #[error("the path encodes a control character or an invalid byte")]
    EncodedControl,
    /// A `%` not followed by two hex digits.
    #[error("the path has a malformed percent-encoding")]
    BadPercent,
}

/// Whether a raw path is in the normal form every server reads the same way (RFC 3986 §6.2.2: no dot
/// segments, no encoding of unreserved characters), with none of the characters servers disagree about.
///
/// # Errors
/// The first [`PathProblem`] found.
pub fn check_path(path: &str) -> Result<(), PathProblem> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => return Err(PathProblem::Backslash),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|c| hex(*c));
                let lo = bytes.get(i + 2).and_then(|c| hex(*c));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathProblem::BadPercent);
                };
                let byte = hi << 4 | lo;
                match byte {
                    b'/' => return Err(PathProblem::EncodedSlash),
                    b'\\' => return Err(PathProblem::Backslash),
                    c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => {
                        return Err(PathProblem::EncodedUnreserved);
                    }
                    c if c < 0x20 || c == 0x7f || c == 0xc0 || c == 0xc1 => {
                        return Err(PathProblem::EncodedControl);
                    }
                    _ => {}
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    // Every segment, the first one too: it is empty before a leading `/`, and a dot segment in a path that does
    // not start with `/` (`..`, `../x`) is refused like any other.
    for segment in path.split('/') {
        let name = segment.split(';').next().unwrap_or(segment);
        if name == "." || name == ".." {
            return Err(PathProblem::DotSegment);
        }
    }
    if path.contains("//") {
        return Err(PathProblem::EmptySegment);
    }
    Ok(())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn one(v: &str) -> HeaderField<'_> {
        HeaderField::One(v.as_bytes())
    }

    /// Traefik/Caddy style.
    fn fwd<'a>(
        method: &'a str,
        proto: &'a str,
        host: &'a str,
        uri: &'a str,
    ) -> ForwardedHeaders<'a> {
        ForwardedHeaders {
            forwarded_method: one(method),
            forwarded_proto: one(proto),
            forwarded_host: one(host),
            forwarded_uri: one(uri),
            ..ForwardedHeaders::default()
        }
    }

    fn parse<'a>(h: &ForwardedHeaders<'a>) -> Result<ForwardedRequest<'a>, ForwardedError> {
        ForwardedRequest::parse(h, false)
    }

    #[test]
    fn traefik_headers_give_each_component_as_sent() {
        let h = fwd("POST", "https", "MCP.example.com:8443", "/mcp/x?a=b&c");
        let r = parse(&h).unwrap();
        assert_eq!(r.method, "POST");
        assert!(r.https);
        assert_eq!(r.host, "MCP.example.com");
        assert_eq!(r.port, Some(8443));
        assert_eq!(r.path, "/mcp/x");
        assert_eq!(r.query, Some("a=b&c"));
        assert_eq!(r.to_string(), "POST https://MCP.example.com:8443/mcp/x");
        let plain = parse(&fwd("GET", "http", "127.0.0.1", "/")).unwrap();
        assert_eq!(
            (plain.https, plain.port, plain.port_or_default()),
            (false, None, 80)
        );
        assert_eq!(plain.query, None);
    }

    #[test]
    fn the_host_bypass_of_issue_12_is_refused() {
        // `\` in the host used to become a path separator when the URL was rebuilt and re-parsed.
        for host in [
            "127.0.0.1:8080\\.well-known\\x?",
            "mcp.example.com\\.well-known",
            "mcp.example.com/.well-known/x",
            "mcp.example.com?x",
            "mcp.example.com#x",
            "evil@mcp.example.com",
            "mcp.example.com x",
            "mcp.example.com\t",
            "mcp.example.com%2f",
            "mcp.example.com:",
            "mcp.example.com:0",
            "mcp.example.com:080",
            "mcp.example.com:65536",
            "mcp.example.com:8080:1",
            "mcp.example.com:+80",
            "[::1",
            "[]:80",
            "[::1]x",
            "[::1]:",
            "[fe80::1%eth0]",
            "",
            "mcp.exa,mple.com",
        ] {
            let h = fwd("POST", "http", host, "/mcp");
            assert!(
                matches!(
                    parse(&h),
                    Err(ForwardedError::BadHost | ForwardedError::NotAscii(_))
                ),
                "{host:?}: {:?}",
                parse(&h)
            );
        }
        for good in ["[::1]", "[::1]:8080", "a-b.c_d~e", "127.0.0.1:65535", "x:1"] {
            assert!(parse(&fwd("GET", "http", good, "/")).is_ok(), "{good}");
        }
        let url = ForwardedHeaders {
            original_url: one("http://127.0.0.1:8080\\.well-known\\x?/mcp"),
            original_method: one("POST"),
            ..ForwardedHeaders::default()
        };
        assert_eq!(parse(&url), Err(ForwardedError::BadHost));
    }

    #[test]
    fn control_and_non_ascii_bytes_are_refused() {
        let h = ForwardedHeaders {
            forwarded_host: HeaderField::One(b"mcp.example.com\r\nX-Evil: 1"),
            ..fwd("GET", "http", "x", "/")
        };
        assert_eq!(parse(&h), Err(ForwardedError::NotAscii("X-Forwarded-Host")));
        let h = ForwardedHeaders {
            forwarded_uri: HeaderField::One("/mcp/é".as_bytes()),
            ..fwd("GET", "http", "x", "/")
        };
        assert_eq!(parse(&h), Err(ForwardedError::NotAscii("X-Forwarded-Uri")));
        for uri in [
            "/mcp x",
            "/mcp\t",
            "/mcp#frag",
            "mcp",
            "*",
            "http://x/mcp",
            "",
        ] {
            let r = parse(&fwd("GET", "http", "x", uri));
            assert!(
                matches!(
                    r,
                    Err(ForwardedError::BadTarget | ForwardedError::NotAscii(_))
                ),
                "{uri:?}: {r:?}"
            );
        }
        // `//x/mcp` is a path (with an empty first segment), which check_path refuses.
        assert_eq!(
            parse(&fwd("GET", "http", "x", "//x/mcp")).unwrap().path,
            "//x/mcp"
        );
        assert_eq!(check_path("//x/mcp"), Err(PathProblem::EmptySegment));
    }

    #[test]
    fn repeated_headers_are_refused() {
        let h = ForwardedHeaders {
            forwarded_uri: HeaderField::Repeated,
            ..fwd("GET", "http", "x", "/")
        };
        assert_eq!(parse(&h), Err(ForwardedError::Repeated("X-Forwarded-Uri")));
        let h = ForwardedHeaders {
            original_method: HeaderField::Repeated,
            ..fwd("GET", "http", "x", "/")
        };
        assert_eq!(
            parse(&h),
            Err(ForwardedError::Repeated("X-Original-Method"))
        );
        let h = ForwardedHeaders {
            forwarded_host: HeaderField::Absent,
            host: HeaderField::Repeated,
            ..fwd("GET", "http", "x", "/")
        };
        assert_eq!(parse(&h), Err(ForwardedError::Repeated("Host")));
        assert_eq!(
            HeaderField::from_values([b"a".as_slice(), b"b".as_slice()]),
            HeaderField::Repeated
        );
        assert_eq!(
            HeaderField::from_values([b"a".as_slice()]),
            HeaderField::One(b"a")
        );
        assert_eq!(
            HeaderField::from_values(std::iter::empty()),
            HeaderField::Absent
        );
    }

    #[test]
    fn methods_and_schemes_are_checked_not_rewritten() {
        assert_eq!(
            parse(&fwd("post", "http", "x", "/")).unwrap().method,
            "post"
        );
        for m in ["", "PO ST", "GET\t", "POST,GET", "(GET)", &"A".repeat(33)] {
            assert!(parse(&fwd(m, "http", "x", "/")).is_err(), "{m:?}");
        }
        for p in ["ftp", "https,http", "", "javascript"] {
            assert_eq!(
                parse(&fwd("GET", p, "x", "/")),
                Err(ForwardedError::BadScheme),
                "{p:?}"
            );
        }
        assert!(parse(&fwd("GET", "HTTPS", "x", "/")).unwrap().https);
        let no_method = ForwardedHeaders {
            forwarded_method: HeaderField::Absent,
            ..fwd("GET", "http", "x", "/")
        };
        assert_eq!(parse(&no_method), Err(ForwardedError::NoMethod));
        let no_uri = ForwardedHeaders {
            forwarded_uri: HeaderField::Absent,
            ..fwd("GET", "http", "x", "/")
        };
        assert_eq!(parse(&no_uri), Err(ForwardedError::NoUri));
        assert_eq!(
            parse(&ForwardedHeaders::default()),
            Err(ForwardedError::Missing)
        );
        // Host alone describes no request.
        let host_only = ForwardedHeaders {
            host: one("x"),
            ..ForwardedHeaders::default()
        };
        assert_eq!(parse(&host_only), Err(ForwardedError::Missing));
    }

    #[test]
    fn nginx_headers_and_both_families_must_agree() {
        let nginx = ForwardedHeaders {
            original_url: one("https://mcp.example.com/mcp?x=1"),
            original_method: one("POST"),
            ..ForwardedHeaders::default()
        };
        let r = parse(&nginx).unwrap();
        assert_eq!(
            (r.host, r.port, r.path, r.query),
            ("mcp.example.com", None, "/mcp", Some("x=1"))
        );
        // The snippet's nginx sends both families with the same values.
        let both = ForwardedHeaders {
            forwarded_method: one("POST"),
            forwarded_proto: one("https"),
            forwarded_host: one("mcp.example.com:443"),
            forwarded_uri: one("/mcp?x=1"),
            ..nginx
        };
        assert_eq!(parse(&both).unwrap().path, "/mcp");
        for (what, h) in [
            (
                "uri",
                ForwardedHeaders {
                    forwarded_uri: one("/.well-known/x"),
                    ..both
                },
            ),
            (
                "query",
                ForwardedHeaders {
                    forwarded_uri: one("/mcp"),
                    ..both
                },
            ),
            (
                "host",
                ForwardedHeaders {
                    forwarded_host: one("other.example.com"),
                    ..both
                },
            ),
            (
                "port",
                ForwardedHeaders {
                    forwarded_host: one("mcp.example.com:8443"),
                    ..both
                },
            ),
            (
                "scheme",
                ForwardedHeaders {
                    forwarded_proto: one("http"),
                    ..both
                },
            ),
            (
                "method",
                ForwardedHeaders {
                    forwarded_method: one("OPTIONS"),
                    ..both
                },
            ),
            (
                "method case",
                ForwardedHeaders {
                    forwarded_method: one("post"),
                    ..both
                },
            ),
            (
                "original uri",
                ForwardedHeaders {
                    original_uri: one("/x"),
                    ..both
                },
            ),
        ] {
            assert_eq!(parse(&h), Err(ForwardedError::Conflicting), "{what}");
        }
        // X-Original-URI takes the host from Host and the scheme from X-Forwarded-Proto or the listener.
        let uri = ForwardedHeaders {
            original_uri: one("/mcp"),
            original_method: one("GET"),
            host: one("mcp.example.com"),
            ..ForwardedHeaders::default()
        };
        let r = ForwardedRequest::parse(&uri, true).unwrap();
        assert!(r.https);
        assert_eq!((r.host, r.path), ("mcp.example.com", "/mcp"));
        for bad in [
            "javascript:alert(1)",
            "https://",
            "https://x?y/z",
            "ftp://x/y",
            "https://u@x/y",
            "https://x#/y",
        ] {
            let h = ForwardedHeaders {
                original_url: one(bad),
                ..nginx
            };
            assert!(parse(&h).is_err(), "{bad}");
        }
        let origin_only = ForwardedHeaders {
            original_url: one("https://x"),
            ..nginx
        };
        assert_eq!(parse(&origin_only).unwrap().path, "/");
    }

    #[test]
    fn paths_not_in_normal_form_are_named() {
        use PathProblem::*;
        for (path, problem) in [
            ("/mcp/../.well-known/x", DotSegment),
            ("/mcp/./x", DotSegment),
            ("/mcp/..", DotSegment),
            ("/..;/admin", DotSegment),
            ("/mcp/.;x/y", DotSegment),
            // Found by the `forwarded` fuzz target: the first segment was never checked.
            ("..", DotSegment),
            ("../.well-known/x", DotSegment),
            (".", DotSegment),
            ("..;/admin", DotSegment),
            ("/mcp/%2e%2e/.well-known/x", EncodedUnreserved),
            ("/mcp/%2E%2E/x", EncodedUnreserved),
            ("/mcp/.%2e/x", EncodedUnreserved),
            ("/%6dcp", EncodedUnreserved),
            ("/mcp%7e", EncodedUnreserved),
            ("/mcp%2fx", EncodedSlash),
            ("/mcp%2Fx", EncodedSlash),
            ("/mcp%5cx", Backslash),
            ("/mcp\\x", Backslash),
            ("/mcp//x", EmptySegment),
            ("//mcp", EmptySegment),
            ("/mcp%00", EncodedControl),
            ("/mcp%0a", EncodedControl),
            ("/mcp%c0%ae", EncodedControl),
            ("/mcp%C1%BF", EncodedControl),
            ("/mcp%1F", EncodedControl),
            ("/mcp%7f", EncodedControl),
            ("/mcp%20%2f", EncodedSlash),
            ("/mcp%", BadPercent),
            ("/mcp%2", BadPercent),
            ("/mcp%zz", BadPercent),
        ] {
            assert_eq!(check_path(path), Err(problem), "{path}");
        }
        for ok in [
            "/",
            "/mcp",
            "/mcp/",
            "/a/b.c/..d/d..",
            "/mcp;v=1",
            "/%20x",
            "/x%3Ay",
            "/%e2%82%AC",
            "/%21%7B%7d%80",
            "/.well-known/oauth-protected-resource/mcp",
            "/.x",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn origins_parse_strictly() {
        let o = SiteOrigin::parse("https://App.example.com").unwrap();
        assert_eq!(
            o,
            SiteOrigin {
                https: true,
                host: "app.example.com",
                port: 443
            }
        );
        assert_eq!(
            SiteOrigin::parse("http://localhost:6274").unwrap().port,
            6274
        );
        for bad in [
            "null",
            "https://a.example.com/",
            "https://a.example.com/x",
            "file://x",
            "https://",
            "https://a b",
            "https://u@x",
        ] {
            assert!(SiteOrigin::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_header_read_once_is_absent_or_one() {
        assert_eq!(HeaderField::from_option(None), HeaderField::Absent);
        assert_eq!(
            HeaderField::from_option(Some(b"a".as_slice())),
            HeaderField::One(b"a")
        );
    }

    #[test]
    fn authorities_split_into_host_and_port_as_sent() {
        assert_eq!(parse_authority("[::1]"), Ok(("[::1]", None)));
        assert_eq!(
            parse_authority("[fe80::1]:8080"),
            Ok(("[fe80::1]", Some(8080)))
        );
        assert_eq!(
            parse_authority("Mcp.example.com:1"),
            Ok(("Mcp.example.com", Some(1)))
        );
        // A DNS name is at most 253 characters.
        let longest = "a".repeat(253);
        assert_eq!(parse_authority(&longest), Ok((longest.as_str(), None)));
        assert_eq!(
            parse_authority(&"a".repeat(254)),
            Err(ForwardedError::BadHost)
        );
    }

    #[test]
    fn origins_differ_by_scheme_host_or_port() {
        let o = |https, host, port| SiteOrigin { https, host, port };
        let base = o(true, "a.example.com", 443);
        assert_eq!(base, o(true, "A.EXAMPLE.com", 443));
        for other in [
            o(false, "a.example.com", 443),
            o(true, "b.example.com", 443),
            o(true, "a.example.com", 8443),
        ] {
            assert_ne!(base, other, "{other:?}");
        }
    }
}
