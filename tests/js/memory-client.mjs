// The official MCP TypeScript SDK client as one user of @modelcontextprotocol/server-memory (a stdio server)
// behind mcp-bridge, the gate and a proxy.
//
//   node memory-client.mjs '{"mcpUrl": "...", "issuer": "...", "username": "...", "password": "...",
//                            "actions": [{"create": "alice-secret"}, {"read": true}]}'
//
// The SDK runs its own OAuth flow (401 → discovery → dynamic registration → authorization, done headlessly as
// `username` → token), then initialize and tools/list (server-memory's tools must be there), then the actions in
// order: `create` makes an entity of that name with create_entities, `read` calls read_graph and reports the
// entity names it holds. Any failed check throws (exit status 1); on success the last stdout line is a JSON report:
// `{"ok": true, "session_id": …, "client_id": …, "tools": [...], "results": [{"created": name} |
// {"entities": [names]}], "exchanges": [...]}`.
import assert from "node:assert/strict";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { HeadlessProvider, log, recordingFetch } from "./headless-provider.mjs";

const opts = JSON.parse(process.argv[2]);
const mcpUrl = new URL(opts.mcpUrl);
const { fetch: fetchAndRecord, exchanges } = recordingFetch();
const provider = new HeadlessProvider({ clientName: `e2e TypeScript memory client (${opts.username})`, ...opts });
const transportOptions = { authProvider: provider, fetch: fetchAndRecord };

/** The one text item of a tool result, parsed as JSON. */
function json(result) {
  assert.ok(!result.isError, `tool error: ${JSON.stringify(result)}`);
  assert.equal(result.content.length, 1, JSON.stringify(result));
  assert.equal(result.content[0].type, "text");
  return JSON.parse(result.content[0].text);
}

// 1. The first connection meets the gate's 401; the SDK runs the OAuth flow up to the authorization redirect.
{
  const client = new Client({ name: "e2e-ts-memory", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(mcpUrl, transportOptions);
  await assert.rejects(client.connect(transport), UnauthorizedError);
  assert.equal(provider.redirects, 1);
  await transport.finishAuth(provider.pendingCode);
  await client.close();
}
assert.equal(provider.lastIss, opts.issuer, "RFC 9207 iss");

// 2. Connected with the token: initialize, tools/list.
const client = new Client({ name: "e2e-ts-memory", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(mcpUrl, transportOptions);
await client.connect(transport);
assert.ok(transport.sessionId, "the bridge gave the session an id");
const tools = (await client.listTools()).tools.map((t) => t.name);
for (const name of ["create_entities", "read_graph", "search_nodes"]) {
  assert.ok(tools.includes(name), `server-memory lists ${name}: ${tools}`);
}
log({ step: "connected", server: client.getServerVersion(), session: transport.sessionId });

// 3. The actions, in order.
const results = [];
for (const action of opts.actions ?? []) {
  if (action.create) {
    const created = json(
      await client.callTool({
        name: "create_entities",
        arguments: {
          entities: [{ name: action.create, entityType: "note", observations: [`written by ${opts.username}`] }],
        },
      }),
    );
    assert.deepEqual(
      created.map((e) => e.name),
      [action.create],
      `create_entities made ${action.create} (it did not exist)`,
    );
    results.push({ created: action.create });
  } else if (action.read) {
    const graph = json(await client.callTool({ name: "read_graph", arguments: {} }));
    results.push({ entities: graph.entities.map((e) => e.name) });
  } else {
    throw new Error(`unknown action ${JSON.stringify(action)}`);
  }
}
const sessionId = transport.sessionId;
await transport.terminateSession();
await client.close();

console.log(
  JSON.stringify({
    ok: true,
    session_id: sessionId,
    client_id: provider.clientInformation().client_id,
    server: client.getServerVersion(),
    tools,
    results,
    exchanges,
  }),
);
