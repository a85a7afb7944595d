"""The OAuth pieces the e2e Python SDK clients give the SDK's OAuthClientProvider: token storage kept in memory,
and a "browser" that logs in as the given user on forwardauth-svc's own pages and approves the consent page.

Shared by sdk_client.py (server-everything over HTTP) and memory_client.py (server-memory behind mcp-bridge).
"""

import json
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp.client.auth import AuthorizationCodeResult
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

# Never listened on: the headless browser reads the code from the redirect's Location header.
REDIRECT_URI = "http://127.0.0.1:53682/callback"


def log(event: dict) -> None:
    print(json.dumps(event), file=sys.stderr, flush=True)


def hidden(html: str, name: str) -> str:
    m = re.search(f'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden input {name} in page:\n{html}"
    return m.group(1)


async def authorize_headlessly(authorization_url: str, username: str, password: str) -> dict[str, str]:
    """authorize -> login form -> consent form -> the redirect's query parameters (code, state, iss)."""
    async with httpx2.AsyncClient(follow_redirects=False) as browser:
        page = await browser.get(authorization_url)
        assert page.status_code == 200, f"authorize answered {page.status_code}: {page.text}"
        consent = await browser.post(
            urljoin(authorization_url, "/login"),
            data={
                "handle": hidden(page.text, "handle"),
                "csrf": hidden(page.text, "csrf"),
                "username": username,
                "password": password,
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
    """The redirect and callback handlers: the SDK hands over the authorization URL and waits for the code.

    Each authorization must ask for the RFC 8707 resource `mcp_url` with PKCE S256, and logs in as `username`.
    """

    def __init__(self, mcp_url: str, username: str, password: str) -> None:
        self.mcp_url = mcp_url
        self.username = username
        self.password = password
        self.redirects = 0
        self.result: dict[str, str] = {}

    async def redirect(self, authorization_url: str) -> None:
        self.redirects += 1
        params = parse_qs(urlparse(authorization_url).query)
        log({"redirect": authorization_url.split("?")[0]})
        assert params["resource"] == [self.mcp_url], params
        assert params["code_challenge_method"] == ["S256"], params
        self.result = await authorize_headlessly(authorization_url, self.username, self.password)

    async def callback(self) -> AuthorizationCodeResult:
        return AuthorizationCodeResult(
            code=self.result["code"], state=self.result.get("state"), iss=self.result.get("iss")
        )
