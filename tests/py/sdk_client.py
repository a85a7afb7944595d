"""The official MCP Python SDK client, run headlessly against an MCP server behind a proxy and forwardauth-svc.

    .venv/bin/python sdk_client.py '{"mcpUrl": "...", "issuer": "...", "username": "...", "password": "...",
                                     "accessTokenTtlSecs": 3, "forgedHeaders": {"X-User-Id": "..."}}'

The SDK's OAuthClientProvider does its own flow: 401 -> protected-resource metadata -> authorization-server
metadata -> dynamic registration -> authorization (the redirect handler does the browser part with an HTTP client
and a cookie jar) -> token -> initialize, tools/list, tools/call. Then the access token expires and the SDK
refreshes it; then the refresh token is revoked, the next call is refused with a 401, and the SDK sends the user
back to authorization. Every HTTP exchange is recorded. A failed check raises (exit status 1); on success the last
stdout line is a JSON report that the Rust test checks again.
"""

import json
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from headless import REDIRECT_URI, Browser, MemoryStorage, log

OPTS = json.loads(sys.argv[1])
MCP_URL = OPTS["mcpUrl"]


EXCHANGES: list[str] = []


async def record(response: httpx2.Response) -> None:
    request = response.request
    grant = ""
    if request.url.path == "/token":
        grant = " " + parse_qs(request.content.decode())["grant_type"][0]
    EXCHANGES.append(f"{request.method} {request.url.path}{grant} {response.status_code}")


async def echo(client: Client, message: str) -> None:
    result = await client.call_tool("echo", {"message": message})
    texts = [c.text for c in result.content]
    assert texts == [f"Echo: {message}"], result


async def main() -> None:
    storage = MemoryStorage()
    browser = Browser(MCP_URL, OPTS["username"], OPTS["password"])
    provider = OAuthClientProvider(
        server_url=MCP_URL,
        client_metadata=OAuthClientMetadata(
            client_name="e2e Python SDK client",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )
    http = httpx2.AsyncClient(
        auth=provider,
        # Sent on every request: identity headers a client must not be able to forge.
        headers=OPTS.get("forgedHeaders", {}),
        timeout=httpx2.Timeout(30, read=300),
        event_hooks={"response": [record]},
    )
    async with http, Client(streamable_http_client(MCP_URL, http_client=http)) as client:
        # 1. The OAuth flow happened on the first request; then initialize, tools/list, tools/call.
        tools = await client.list_tools()
        assert any(t.name == "echo" for t in tools.tools), tools
        await echo(client, "hello through the gate")
        assert browser.redirects == 1
        assert browser.result.get("iss") == OPTS["issuer"], browser.result
        first = storage.tokens
        assert first is not None and first.refresh_token, "a refresh token was issued"
        for step in [
            "POST /mcp 401",
            f"GET /.well-known/oauth-protected-resource{urlparse(MCP_URL).path} 200",
            "GET /.well-known/oauth-authorization-server 200",
            "POST /register 201",
            "POST /token authorization_code 200",
        ]:
            assert step in EXCHANGES, (step, EXCHANGES)
        log({"step": "connected"})

        # 2. The access token expires; the SDK refreshes it before the next call.
        before = len(EXCHANGES)
        await anyio.sleep(OPTS["accessTokenTtlSecs"] + 1)
        await echo(client, "after expiry")
        assert "POST /token refresh_token 200" in EXCHANGES[before:], EXCHANGES[before:]
        assert browser.redirects == 1, "a refresh needs no new authorization"
        refreshed = storage.tokens
        assert refreshed is not None and refreshed.access_token != first.access_token
        assert refreshed.refresh_token != first.refresh_token, "refresh tokens rotate"

        # 3. Revocation (RFC 7009) of the refresh token: its whole grant dies at the gate.
        async with httpx2.AsyncClient() as plain:
            metadata = (await plain.get(urljoin(OPTS["issuer"], "/.well-known/oauth-authorization-server"))).json()
            client_id = storage.client.client_id if storage.client else None
            revoked = await plain.post(
                metadata["revocation_endpoint"],
                data={"token": refreshed.refresh_token, "client_id": client_id},
            )
            assert revoked.status_code == 200, revoked.text
            raw = await plain.post(
                MCP_URL,
                headers={
                    "authorization": f"Bearer {refreshed.access_token}",
                    "accept": "application/json, text/event-stream",
                },
                json={"jsonrpc": "2.0", "id": 99, "method": "tools/list"},
            )
            assert raw.status_code == 401, raw.status_code
            challenge = raw.headers["www-authenticate"]
            assert challenge.startswith("Bearer "), challenge
            assert 'error="invalid_token"' in challenge and "resource_metadata=" in challenge, challenge

        # The next call is refused; the SDK sends the user back to authorization, then carries on.
        before = len(EXCHANGES)
        await echo(client, "after revocation")
        after = EXCHANGES[before:]
        # (If the access token has expired meanwhile, the SDK first tries the revoked refresh token: a 400.)
        assert "POST /mcp 401" in after, after
        assert browser.redirects == 2, "the SDK sent the user back to authorization"
        assert "POST /token authorization_code 200" in after, after

    print(json.dumps({"ok": True, "redirects": browser.redirects, "tokens_saved": len(storage.saved), "exchanges": EXCHANGES}))


anyio.run(main)
