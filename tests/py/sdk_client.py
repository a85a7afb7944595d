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
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

OPTS = json.loads(sys.argv[1])
MCP_URL = OPTS["mcpUrl"]
# Never listened on: the headless browser reads the code from the redirect's Location header.
REDIRECT_URI = "http://127.0.0.1:53682/callback"


def log(event: dict) -> None:
    print(json.dumps(event), file=sys.stderr, flush=True)


def hidden(html: str, name: str) -> str:
    m = re.search(f'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden input {name} in page:\n{html}"
    return m.group(1)


async def authorize_headlessly(authorization_url: str) -> dict[str, str]:
    """authorize -> login form -> consent form -> the redirect's query parameters (code, state, iss)."""
    async with httpx2.AsyncClient(follow_redirects=False) as browser:
        page = await browser.get(authorization_url)
        assert page.status_code == 200, f"authorize answered {page.status_code}: {page.text}"
        consent = await browser.post(
            urljoin(authorization_url, "/login"),
            data={
                "handle": hidden(page.text, "handle"),
                "csrf": hidden(page.text, "csrf"),
                "username": OPTS["username"],
                "password": OPTS["password"],
            },
        )
        assert consent.status_code == 200, f"login answered {consent.status_code}: {consent.text}"
        approved = await browser.post(
            urljoin(authorization_url, "/consent"),
            data={
                "handle": hidden(consent.text, "handle"),
                "csrf": hidden(consent.text, "csrf"),
                "decision": "approve",
            },
        )
        assert approved.status_code == 302, f"consent answered {approved.status_code}: {approved.text}"
        query = parse_qs(urlparse(approved.headers["location"]).query)
        return {k: v[0] for k, v in query.items()}


class MemoryStorage:
    """TokenStorage kept in memory, remembering every token set it was given."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.saved: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.saved.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """The redirect and callback handlers: the SDK hands over the authorization URL and waits for the code."""

    def __init__(self) -> None:
        self.redirects = 0
        self.result: dict[str, str] = {}

    async def redirect(self, authorization_url: str) -> None:
        self.redirects += 1
        params = parse_qs(urlparse(authorization_url).query)
        log({"redirect": authorization_url.split("?")[0]})
        assert params["resource"] == [MCP_URL], params
        assert params["code_challenge_method"] == ["S256"], params
        self.result = await authorize_headlessly(authorization_url)

    async def callback(self) -> AuthorizationCodeResult:
        return AuthorizationCodeResult(
            code=self.result["code"], state=self.result.get("state"), iss=self.result.get("iss")
        )


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
    browser = Browser()
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
