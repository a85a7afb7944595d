#!/usr/bin/env python3
"""Writes the seed corpus of the `forwarded` fuzz target (seeds/forwarded/): header sets as Traefik, Caddy and
nginx send them, and the bypasses the parser must refuse.

Each seed is encoded the way `arbitrary` 1.x decodes the target's `Input` (fields in declaration order):
a `Field` is a little-endian u32 choosing the variant ((v * 3) >> 32: Absent, One, Repeated), a `One`'s byte
string is its bytes in front and its length in one byte taken from the end of the data (seeds stay under 256
bytes), `listener_https` is one byte (low bit), and `raw` is whatever is left in the middle. Check a seed with
`cargo +nightly fuzz fmt forwarded seeds/forwarded/<name>`.

Usage: python3 seeds.py  (rewrites seeds/forwarded/)
"""

import os
import shutil
import struct

ABSENT, REPEATED = object(), object()
HEADERS = [
    "forwarded_method",
    "forwarded_proto",
    "forwarded_host",
    "forwarded_uri",
    "original_url",
    "original_uri",
    "original_method",
    "host",
]
VARIANT = {"absent": 0x00000000, "one": 0x60000000, "repeated": 0xFFFFFFFF}


def encode(headers, listener_https=False, raw=""):
    front, lengths = bytearray(), []
    for name in HEADERS:
        value = headers.get(name, ABSENT)
        if value is ABSENT:
            front += struct.pack("<I", VARIANT["absent"])
        elif value is REPEATED:
            front += struct.pack("<I", VARIANT["repeated"])
        else:
            value = value.encode("latin-1") if isinstance(value, str) else value
            front += struct.pack("<I", VARIANT["one"])
            lengths.append(len(value))
            front += value
    front.append(1 if listener_https else 0)
    data = bytes(front) + raw.encode() + bytes(reversed(lengths))
    if len(data) > 256:
        raise ValueError(f"seed too long ({len(data)} bytes): lengths would take two bytes")
    return data


def traefik(method="GET", proto="https", host="mcp.example.com", uri="/mcp", **more):
    return {
        "forwarded_method": method,
        "forwarded_proto": proto,
        "forwarded_host": host,
        "forwarded_uri": uri,
        **more,
    }


def nginx(url="https://mcp.example.com/mcp?x=1", method="POST", **more):
    return {"original_url": url, "original_method": method, **more}


def both(method="POST", scheme="https", host="mcp.example.com", uri="/mcp?x=1", **more):
    return {
        **traefik(method, scheme, host, uri),
        **nginx(f"{scheme}://{host}{uri}", method),
        **more,
    }


SEEDS = {
    # Accepted as the proxies send them.
    "traefik-get": (traefik(), False, "/mcp"),
    "traefik-post-port-query": (traefik("POST", "https", "MCP.example.com:8443", "/mcp/x?a=b&c"), False, "/mcp/x"),
    "traefik-discovery": (traefik(uri="/.well-known/oauth-protected-resource/mcp"), False, "https://app.example.com"),
    "traefik-ipv6": (traefik("OPTIONS", "http", "[::1]:8080", "/"), False, "http://[::1]:8080"),
    "caddy-no-proto": ({"forwarded_method": "GET", "forwarded_host": "127.0.0.1:8080", "forwarded_uri": "/mcp;v=1"}, True, "/mcp;v=1"),
    "nginx-url": (nginx(), False, "http://localhost:6274"),
    "nginx-url-origin-only": (nginx("https://x", "GET"), False, "null"),
    "nginx-url-and-uri": (nginx(original_uri="/mcp?x=1"), False, "/mcp?x=1"),
    "nginx-uri-host": ({"original_uri": "/mcp", "original_method": "GET", "host": "mcp.example.com"}, True, "/%20x"),
    "nginx-both-families": (both(), False, "/x%3Ay"),
    "nginx-both-families-default-port": (both(host="mcp.example.com:443"), False, "HTTPS://MCP.example.com:443"),
    # Refused: bypasses and ambiguity.
    "host-backslash": (traefik("POST", "http", "127.0.0.1:8080\\.well-known\\x?", "/mcp"), False, "/mcp\\x"),
    "host-userinfo": (traefik(host="evil@mcp.example.com"), False, "https://u@x"),
    "host-percent": (traefik(host="mcp.example.com%2f"), False, "/mcp%2fx"),
    "host-crlf": (traefik(host="mcp.example.com\r\nX-Evil: 1"), False, "/mcp%0a"),
    "host-bad-ports": (traefik(host="mcp.example.com:080"), False, "http://x:65536"),
    "host-zone-id": (traefik(host="[fe80::1%eth0]"), False, "http://[fe80::1%eth0]"),
    "url-backslash-host": (nginx("http://127.0.0.1:8080\\.well-known\\x?/mcp"), False, "/mcp/../.well-known/x"),
    "url-query-before-path": (nginx("https://x?y/z"), False, "/..;/admin"),
    "url-fragment": (nginx("https://x#/y"), False, "/mcp/%2e%2e/x"),
    "url-ftp": (nginx("ftp://x/y"), False, "file://x"),
    "uri-dot-segments": (traefik(uri="/mcp/../.well-known/x"), False, "/mcp/./x"),
    "uri-encoded-dots": (traefik(uri="/mcp/%2E%2E/.well-known/x"), False, "/mcp/.%2e/x"),
    "uri-double-slash": (traefik(uri="//mcp"), False, "//x/mcp"),
    "uri-fragment-space": (traefik(uri="/mcp x#frag"), False, "/mcp%c0%ae"),
    "uri-absolute": (traefik(uri="http://x/mcp"), False, ".."),
    "uri-non-ascii": (traefik(uri="/mcp/\xe9"), False, "/%6dcp"),
    "method-lowercase": (traefik(method="post"), False, "/mcp%"),
    "method-bad": (traefik(method="PO ST"), False, "/mcp%zz"),
    "scheme-bad": (traefik(proto="https,http"), False, "javascript:alert(1)"),
    "repeated-uri": (traefik(uri=REPEATED), False, "/"),
    "repeated-host": ({"forwarded_method": "GET", "forwarded_uri": "/", "host": REPEATED}, False, "/a/b.c/..d/d.."),
    "conflict-uri": (both(forwarded_uri="/.well-known/x"), False, "/mcp//x"),
    "conflict-host": (both(forwarded_host="other.example.com"), False, "https://a.example.com/"),
    "conflict-port": (both(forwarded_host="mcp.example.com:8443"), False, "http://x:1"),
    "conflict-method-case": (both(forwarded_method="post"), False, "/.x"),
    "conflict-original-uri": (both(original_uri="/x"), False, "/mcp%5cx"),
    "missing": ({"host": "x"}, False, ""),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "forwarded")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name, (headers, listener_https, raw) in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(encode(headers, listener_https, raw))
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
