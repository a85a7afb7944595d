//! What an MCP request over Streamable HTTP asks the server to do, as far as the gate's per-tool rules
//! ([`crate::ToolScope`]) need to know: the protocol revision, and the JSON-RPC method and name of each call.
//!
//! # Where the call is read from, and why
//!
//! A per-tool rule is only as good as the gate's idea of which tool is called, and the MCP server acts on the
//! JSON-RPC **body**. Two sources are sound, and nothing else:
//!
//! * **The body itself**, when the proxy forwards it to the gate (Traefik's `forwardBody`; nginx's
//!   `auth_request` runs before nginx reads the body, and Caddy's `forward_auth` sends a `GET` without it).
//!   [`parse_body`] reads it strictly; whatever it cannot read as JSON-RPC is no known call, and the gate then
//!   fails closed. `Mcp-Method`/`Mcp-Name` headers sent beside it must agree with it ([`check_headers`]): the
//!   2026-07-28 transport (SEP-2243) requires every party that reads the body to reject a disagreement, since a
//!   component keying on the headers and another acting on the body would otherwise see two different calls.
//! * **The 2026-07-28 `Mcp-Method`/`Mcp-Name` headers without the body**, only where the MCP server itself
//!   rejects a request whose headers disagree with its body (the resource says so:
//!   [`crate::ResourceConfig::mcp_server_validates_headers`]) and only for a protocol revision whose servers must
//!   do that ([`ProtocolVersion::servers_validate_headers`]). A client is free to send any header it likes; what
//!   makes the headers worth believing is a server that refuses to act on a body they do not describe.
//!
//! # The protocol version
//!
//! `MCP-Protocol-Version` names a revision by its date, `YYYY-MM-DD`. It is read as a calendar date
//! ([`ProtocolVersion::parse`]): `x`, `9`, `2026-07-28-bogus` or `2026-13-01` are no version at all (comparing
//! the text, as an earlier gate did, made each of them "newer" than 2026-07-28). A well-formed date that is no
//! revision the specification published is unknown, and an unknown revision promises nothing.

use std::marker::PhantomData;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

/// An MCP protocol revision: a calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ProtocolVersion {
    year: u16,
    month: u8,
    day: u8,
}

/// The revisions the MCP specification has published, oldest first.
const PUBLISHED: [ProtocolVersion; 5] = [
    ProtocolVersion::new(2024, 11, 5),
    ProtocolVersion::new(2025, 3, 26),
    ProtocolVersion::new(2025, 6, 18),
    ProtocolVersion::new(2025, 11, 25),
    ProtocolVersion::new(2026, 7, 28),
];

/// The first revision whose servers must reject a request whose `Mcp-Method`/`Mcp-Name` headers disagree with
/// its body (streamable-http.mdx, "Server Validation").
const HEADERS_VALIDATED_FROM: ProtocolVersion = ProtocolVersion::new(2026, 7, 28);

impl ProtocolVersion {
    const fn new(year: u16, month: u8, day: u8) -> Self {
        ProtocolVersion { year, month, day }
    }

    /// Exactly `YYYY-MM-DD`, ASCII digits, a real calendar date (leap years counted); anything else is `None`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = b else {
            return None;
        };
        let digits = |ds: &[u8]| -> Option<u16> {
            ds.iter().try_fold(0u16, |n, d| {
                d.is_ascii_digit().then(|| n * 10 + u16::from(d - b'0'))
            })
        };
        let year = digits(&[y0, y1, y2, y3])?;
        let month = u8::try_from(digits(&[m0, m1])?).ok()?;
        let day = u8::try_from(digits(&[d0, d1])?).ok()?;
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=days)
            .contains(&day)
            .then_some(ProtocolVersion { year, month, day })
    }

    /// Whether the specification published this revision.
    pub(crate) fn is_published(self) -> bool {
        PUBLISHED.contains(&self)
    }

    /// Whether servers of this revision must reject a request whose `Mcp-Method`/`Mcp-Name` headers disagree
    /// with its body: a published revision from 2026-07-28 on. An unknown date promises nothing, whatever its
    /// order.
    pub(crate) fn servers_validate_headers(self) -> bool {
        self.is_published() && self >= HEADERS_VALIDATED_FROM
    }
}

/// The methods whose calls have a name, and the parameter that holds it (streamable-http.mdx, "Standard
/// Request Headers": `Mcp-Name` mirrors it).
const NAMED_METHODS: [(&str, NameParam); 3] = [
    ("tools/call", NameParam::Name),
    ("prompts/get", NameParam::Name),
    ("resources/read", NameParam::Uri),
];

#[derive(Clone, Copy)]
enum NameParam {
    Name,
    Uri,
}

/// Whether `method` is one whose calls name a tool, prompt or resource (and so may have `method:name` rules).
pub(crate) fn has_name(method: &str) -> bool {
    NAMED_METHODS.iter().any(|(m, _)| *m == method)
}

/// One JSON-RPC message of a request body, as far as tool rules read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    /// `method`; `None` for a response (to a request the server sent), which calls nothing.
    pub(crate) method: Option<String>,
    /// `params.name` of `tools/call` and `prompts/get`, `params.uri` of `resources/read`; `None` otherwise.
    pub(crate) name: Option<String>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`, which the 2026-07-28 transport requires to
    /// equal the `MCP-Protocol-Version` header.
    pub(crate) protocol_version: Option<String>,
}

/// A request body: one message, or a JSON-RPC batch (protocol revision 2025-03-26 allowed them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// One message.
    Single(Message),
    /// A batch: the calls of all its messages.
    Batch(Vec<Message>),
}

impl Body {
    /// The messages, in order.
    pub(crate) fn messages(&self) -> &[Message] {
        match self {
            Body::Single(m) => std::slice::from_ref(m),
            Body::Batch(ms) => ms,
        }
    }
}

/// A body the gate does not read as JSON-RPC; the reason is for logs and tests, never sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NotJsonRpc(pub(crate) String);

/// A JSON object, and only an object: serde's derived structs also take a JSON array, by position, which would
/// read `"params": ["x"]` as a call of tool `x`.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

/// A message as sent. Derived structs refuse a repeated key among their fields (`"name"` twice is read one
/// way by one JSON parser and another way by the next); other keys (`arguments`, `id`, …) are skipped unread.
#[derive(Deserialize)]
struct RawMessage {
    jsonrpc: String,
    method: Option<String>,
    params: Option<Object<RawParams>>,
    result: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawParams {
    name: Option<String>,
    uri: Option<String>,
    #[serde(rename = "_meta")]
    meta: Option<Object<RawMeta>>,
}

#[derive(Deserialize)]
struct RawMeta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    protocol_version: Option<String>,
}

impl RawMessage {
    fn read(self) -> Result<Message, NotJsonRpc> {
        let fail = |why: &str| Err(NotJsonRpc(why.to_owned()));
        if self.jsonrpc != "2.0" {
            return fail("jsonrpc is not \"2.0\"");
        }
        let params = self.params.map(|Object(p)| p);
        let protocol_version = params
            .as_ref()
            .and_then(|p| p.meta.as_ref())
            .and_then(|Object(m)| m.protocol_version.clone());
        let Some(method) = self.method else {
            // A response: exactly one of result and error.
            return if self.result.is_some() != self.error.is_some() {
                Ok(Message {
                    method: None,
                    name: None,
                    protocol_version,
                })
            } else {
                fail("neither a request nor a response")
            };
        };
        if self.result.is_some() || self.error.is_some() {
            return fail("a request with a result or error");
        }
        let name = match NAMED_METHODS.iter().find(|(m, _)| *m == method) {
            None => None,
            Some((_, param)) => {
                let value = params.and_then(|p| match param {
                    NameParam::Name => p.name,
                    NameParam::Uri => p.uri,
                });
                if value.is_none() {
                    return fail("a named call without its name");
                }
                value
            }
        };
        Ok(Message {
            method: Some(method),
            name,
            protocol_version,
        })
    }
}

/// Reads a request body as one JSON-RPC message or a non-empty batch of them.
///
/// # Errors
/// [`NotJsonRpc`] for anything else: not UTF-8 JSON, trailing data, a key repeated among those read, a
/// `jsonrpc` other than `"2.0"`, `params` that are not an object, a `tools/call` or `prompts/get` without a
/// string `params.name`, a `resources/read` without a string `params.uri`, a message that is neither request,
/// notification nor response, an empty batch.
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Body, NotJsonRpc> {
    let invalid = |e: serde_json::Error| NotJsonRpc(e.to_string());
    let first = bytes.iter().find(|b| !b" \t\r\n".contains(b));
    if first == Some(&b'[') {
        let raw: Vec<Object<RawMessage>> = serde_json::from_slice(bytes).map_err(invalid)?;
        if raw.is_empty() {
            return Err(NotJsonRpc("an empty batch".to_owned()));
        }
        let messages = raw
            .into_iter()
            .map(|Object(m)| m.read())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Body::Batch(messages))
    } else {
        let Object(raw) = serde_json::from_slice::<Object<RawMessage>>(bytes).map_err(invalid)?;
        raw.read().map(Body::Single)
    }
}

/// The value an `Mcp-Name` header stands for: the text itself, or the UTF-8 text inside the Base64 sentinel
/// `=?base64?…?=` (streamable-http.mdx, "Value Encoding"; the markers are case-sensitive). `None` for a sentinel
/// that does not decode to UTF-8.
pub(crate) fn decode_name(header: &str) -> Option<String> {
    match header
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        None => Some(header.to_owned()),
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
    }
}

/// The MCP request headers the gate reads, as sent (after the single-value check).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct McpHeaders<'a> {
    /// `MCP-Protocol-Version`, as sent.
    pub(crate) protocol_version: Option<&'a str>,
    /// `Mcp-Method`.
    pub(crate) method: Option<&'a str>,
    /// `Mcp-Name`, still encoded.
    pub(crate) name: Option<&'a str>,
}

/// Whether the headers sent agree with the body: each one present must equal the body's value
/// (`MCP-Protocol-Version` the message's `_meta` protocol version when it has one, `Mcp-Method` its method,
/// `Mcp-Name` after decoding its name); a batch has no one method or name to mirror. A header left out is no
/// disagreement: the call is read from the body anyway.
///
/// # Errors
/// The name of the first header that disagrees.
pub(crate) fn check_headers(h: &McpHeaders<'_>, body: &Body) -> Result<(), &'static str> {
    let disagrees = |header: Option<&str>, value: Option<&str>| header.is_some() && header != value;
    for m in body.messages() {
        if m.protocol_version.is_some()
            && disagrees(h.protocol_version, m.protocol_version.as_deref())
        {
            return Err("MCP-Protocol-Version");
        }
    }
    let one = match body {
        Body::Single(m) => Some(m),
        Body::Batch(_) => None,
    };
    if disagrees(h.method, one.and_then(|m| m.method.as_deref())) {
        return Err("Mcp-Method");
    }
    if let Some(name) = h.name {
        let decoded = decode_name(name);
        if decoded.is_none() || one.and_then(|m| m.name.as_ref()) != decoded.as_ref() {
            return Err("Mcp-Name");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Option<ProtocolVersion> {
        ProtocolVersion::parse(s)
    }

    #[test]
    fn a_protocol_version_is_a_calendar_date_and_nothing_else() {
        for ok in [
            "2024-11-05",
            "2025-03-26",
            "2026-07-28",
            "2024-02-29",
            "2000-02-29",
            "9999-12-31",
        ] {
            assert!(v(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "x",
            "9",
            "zzzz",
            "2026-07-28-bogus",
            "2026-07-28 ",
            " 2026-07-28",
            "2026-13-01",
            "2026-00-10",
            "2026-07-00",
            "2026-07-32",
            "2026-04-31",
            "2025-02-29",
            "1900-02-29",
            "2026-7-28",
            "2026/07/28",
            "20260728",
            "2026-07-2８",
            "+026-07-28",
            "2026-07-2a",
        ] {
            assert_eq!(v(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_published_revisions_from_2026_07_28_promise_validated_headers() {
        let validates = |s: &str| v(s).unwrap().servers_validate_headers();
        assert!(validates("2026-07-28"));
        for older in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
            assert!(v(older).unwrap().is_published(), "{older}");
            assert!(!validates(older), "{older}");
        }
        for unknown in ["2026-07-29", "2027-01-01", "9999-12-31", "2026-01-01"] {
            assert!(!v(unknown).unwrap().is_published(), "{unknown}");
            assert!(!validates(unknown), "{unknown}: unknown promises nothing");
        }
    }

    fn single(json: &str) -> Message {
        match parse_body(json.as_bytes()) {
            Ok(Body::Single(m)) => m,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn the_call_is_the_method_and_the_name_or_uri_it_names() {
        let m = single(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{"name":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        assert_eq!(m.method.as_deref(), Some("tools/call"));
        assert_eq!(m.name.as_deref(), Some("delete_repo"));
        assert_eq!(m.protocol_version.as_deref(), Some("2026-07-28"));
        let m = single(
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///etc/passwd","name":"ignored"}}"#,
        );
        assert_eq!(m.name.as_deref(), Some("file:///etc/passwd"));
        let m = single(r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p"}}"#);
        assert_eq!(m.name.as_deref(), Some("p"));
        // Unnamed methods have no name, whatever their params say.
        let m = single(r#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"name":"x"}}"#);
        assert_eq!((m.method.as_deref(), m.name), (Some("tools/list"), None));
        let m = single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(m.method.as_deref(), Some("notifications/initialized"));
        // JSON escapes are read as every JSON parser reads them.
        let m = single(
            r#"{"jsonrpc":"2.0","id":1,"\u006dethod":"tools\/call","params":{"name":"delete\u005frepo"}}"#,
        );
        assert_eq!(
            (m.method.as_deref(), m.name.as_deref()),
            (Some("tools/call"), Some("delete_repo"))
        );
        // A response calls nothing.
        let m = single(r#"{"jsonrpc":"2.0","id":9,"result":{"action":"accept"}}"#);
        assert_eq!((m.method, m.name), (None, None));
        let m = single(r#"{"jsonrpc":"2.0","id":9,"error":{"code":-1,"message":"no"}}"#);
        assert_eq!(m.method, None);
    }

    #[test]
    fn a_batch_is_every_message_in_it() {
        let Ok(Body::Batch(ms)) = parse_body(
            br#" [{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}]"#,
        ) else {
            panic!()
        };
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[1].name.as_deref(), Some("b"));
    }

    #[test]
    fn anything_not_plainly_json_rpc_is_refused() {
        for bad in [
            "",
            "null",
            "\"tools/call\"",
            "[]",
            "[[]]",
            "[1]",
            "{}",
            "{\"jsonrpc\":\"2.0\"}",
            "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"tools/list\"}",
            "{\"id\":1,\"method\":\"tools/list\"}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":null}}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":5}}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":[\"delete_repo\"]}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":{\"name\":\"x\"}}",
            // The same key twice: parsers disagree on which one counts.
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"name\":\"delete_repo\"}}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"} {}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"result\":{}}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}",
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
        ] {
            assert!(parse_body(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse_body(b"{\"jsonrpc\":\"2.0\",\"method\":\"a\xff\"}").is_err());
    }

    #[test]
    fn mcp_name_may_carry_its_value_in_the_base64_sentinel() {
        assert_eq!(decode_name("get_weather").as_deref(), Some("get_weather"));
        // streamable-http.mdx's examples.
        assert_eq!(
            decode_name("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(
            decode_name("=?base64?IHBhZGRlZCA=?=").as_deref(),
            Some(" padded ")
        );
        assert_eq!(
            decode_name("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=").as_deref(),
            Some("=?base64?literal?=")
        );
        // Markers are case-sensitive: anything else is a plain value.
        assert_eq!(
            decode_name("=?BASE64?ZWNobw==?=").as_deref(),
            Some("=?BASE64?ZWNobw==?=")
        );
        for bad in ["=?base64?*?=", "=?base64?/w==?=", "=?base64?ZWNobw?="] {
            assert_eq!(decode_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers_sent_must_mirror_the_body() {
        let body = parse_body(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Hello, 世界","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#
                .as_bytes(),
        )
        .unwrap();
        let h = |version, method, name| McpHeaders {
            protocol_version: version,
            method,
            name,
        };
        let ok = [
            h(None, None, None),
            h(Some("2026-07-28"), Some("tools/call"), None),
            h(
                Some("2026-07-28"),
                Some("tools/call"),
                Some("=?base64?SGVsbG8sIOS4lueVjA==?="),
            ),
        ];
        for headers in ok {
            assert_eq!(check_headers(&headers, &body), Ok(()), "{headers:?}");
        }
        // (A header that is not visible ASCII never gets here: the gate refuses it as it reads it.)
        let bad = [
            (h(Some("2025-11-25"), None, None), "MCP-Protocol-Version"),
            (h(None, Some("tools/list"), None), "Mcp-Method"),
            (h(None, Some("Tools/Call"), None), "Mcp-Method"),
            (h(None, None, Some("echo")), "Mcp-Name"),
            (h(None, None, Some("=?base64?*?=")), "Mcp-Name"),
        ];
        for (headers, which) in bad {
            assert_eq!(check_headers(&headers, &body), Err(which), "{headers:?}");
        }
        let list = parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        assert_eq!(
            check_headers(&h(None, Some("tools/list"), Some("x")), &list),
            Err("Mcp-Name"),
            "tools/list has no name to mirror"
        );
        let response = parse_body(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap();
        assert_eq!(
            check_headers(&h(None, Some("tools/call"), None), &response),
            Err("Mcp-Method")
        );
        let batch = parse_body(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}]"#,
        )
        .unwrap();
        assert_eq!(
            check_headers(&h(None, Some("tools/call"), None), &batch),
            Err("Mcp-Method")
        );
        assert_eq!(
            check_headers(&h(Some("2025-03-26"), None, None), &batch),
            Ok(())
        );
    }
}
