"""The official MCP Python SDK client as one user of @modelcontextprotocol/server-memory (a stdio server) behind
mcp-bridge, the gate and a proxy.

    .venv/bin/python memory_client.py '{"mcpUrl": "...", "issuer": "...", "username": "...", "password": "...",
                                        "actions": [{"read": true}, {"create": "bob-note"}]}'

The SDK's OAuthClientProvider runs its own flow on the first request (401 -> discovery -> dynamic registration ->
authorization, done headlessly as `username` -> token), then the session starts (initialize), tools/list must
show server-memory's tools, and the actions run in order: `create` makes an entity of that name with
create_entities, `read` calls read_graph and reports the entity names it holds. A failed check raises (exit
status 1); on success the last stdout line is a JSON report: `{"ok": true, "session_ids": [...], "client_id": ...,
"tools": [...], "results": [{"created": name} | {"entities": [names]}], "exchanges": [...]}`.
"""

import json
import sys
from urllib.parse import parse_qs

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from mcp.types import CallToolResult

from headless import REDIRECT_URI, Browser, MemoryStorage, log

OPTS = json.loads(sys.argv[1])
MCP_URL = OPTS["mcpUrl"]

EXCHANGES: list[str] = []
# Every Mcp-Session-Id the bridge answered with, in order of first appearance.
SESSION_IDS: list[str] = []


async def record(response: httpx2.Response) -> None:
    request = response.request
    grant = ""
    if request.url.path == "/token":
        grant = " " + parse_qs(request.content.decode())["grant_type"][0]
    EXCHANGES.append(f"{request.method} {request.url.path}{grant} {response.status_code}")
    session = response.headers.get("mcp-session-id")
    if session and session not in SESSION_IDS:
        SESSION_IDS.append(session)


def parsed(result: CallToolResult):
    """The one text item of a tool result, parsed as JSON."""
    assert not result.is_error, result
    assert len(result.content) == 1, result
    return json.loads(result.content[0].text)


async def main() -> None:
    storage = MemoryStorage()
    browser = Browser(MCP_URL, OPTS["username"], OPTS["password"])
    provider = OAuthClientProvider(
        server_url=MCP_URL,
        client_metadata=OAuthClientMetadata(
            client_name=f"e2e Python memory client ({OPTS['username']})",
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
        auth=provider, timeout=httpx2.Timeout(30, read=300), event_hooks={"response": [record]}
    )
    results: list[dict] = []
    async with http, Client(streamable_http_client(MCP_URL, http_client=http)) as client:
        # The OAuth flow happened on the first request; the session is initialized.
        assert browser.redirects == 1, browser.redirects
        assert browser.result.get("iss") == OPTS["issuer"], browser.result
        assert "POST /token authorization_code 200" in EXCHANGES, EXCHANGES
        assert SESSION_IDS, f"the bridge gave the session an id: {EXCHANGES}"
        tools = [t.name for t in (await client.list_tools()).tools]
        for name in ["create_entities", "read_graph", "search_nodes"]:
            assert name in tools, (name, tools)
        log({"step": "connected", "server": str(client.server_info)})

        for action in OPTS.get("actions", []):
            if action.get("create"):
                name = action["create"]
                created = parsed(
                    await client.call_tool(
                        "create_entities",
                        {
                            "entities": [
                                {"name": name, "entityType": "note", "observations": [f"written by {OPTS['username']}"]}
                            ]
                        },
                    )
                )
                assert [e["name"] for e in created] == [name], created
                results.append({"created": name})
            elif action.get("read"):
                graph = parsed(await client.call_tool("read_graph", {}))
                results.append({"entities": [e["name"] for e in graph["entities"]]})
            else:
                raise AssertionError(f"unknown action {action}")

    print(
        json.dumps(
            {
                "ok": True,
                "session_ids": SESSION_IDS,
                "client_id": storage.client.client_id if storage.client else None,
                "tools": tools,
                "results": results,
                "exchanges": EXCHANGES,
            }
        )
    )


anyio.run(main)
