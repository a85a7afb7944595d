// The official MCP TypeScript SDK client, run headlessly against an MCP server behind a proxy and forwardauth-svc.
//
//   node sdk-client.mjs '{"mcpUrl": "...", "username": "...", "password": "...", "accessTokenTtlSecs": 3,
//                         "forgedHeaders": {"X-User-Id": "..."}, "clientMetadataUrl": null}'
//
// The SDK does its own OAuth flow: 401 → protected-resource metadata → authorization-server metadata → dynamic
// registration, or with `clientMetadataUrl` the URL of a Client ID Metadata Document as the client_id (the SDK
// uses it when the AS metadata says `client_id_metadata_document_supported`) → authorization (our OAuthClientProvider does the browser part with fetch and a cookie jar) →
// token → initialize, tools/list, tools/call. Then the access token expires and the SDK refreshes it on the
// gate's 401; then the refresh token is revoked, the next call is refused, and the SDK sends the client back to
// authorization. Every request the SDK makes is recorded. Any failed check throws (exit status 1); on success the
// last stdout line is a JSON report that the Rust test checks again.
import assert from "node:assert/strict";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { HeadlessProvider, log, recordingFetch } from "./headless-provider.mjs";

const opts = JSON.parse(process.argv[2]);
const mcpUrl = new URL(opts.mcpUrl);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every HTTP exchange the SDK makes, as "METHOD path status". */
const { fetch: fetchAndRecord, exchanges } = recordingFetch();

const provider = new HeadlessProvider(opts);
const transportOptions = {
  authProvider: provider,
  fetch: fetchAndRecord,
  // Sent on every request: identity headers a client must not be able to forge.
  requestInit: { headers: opts.forgedHeaders ?? {} },
};

async function connect() {
  const client = new Client({ name: "e2e-ts-sdk", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(mcpUrl, transportOptions);
  await client.connect(transport);
  return { client, transport };
}

async function echo(client, message) {
  const result = await client.callTool({ name: "echo", arguments: { message } });
  assert.deepEqual(result.content, [{ type: "text", text: `Echo: ${message}` }]);
}

// 1. First connection: the SDK meets the gate's 401 and runs its OAuth flow up to the authorization redirect.
{
  const client = new Client({ name: "e2e-ts-sdk", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(mcpUrl, transportOptions);
  await assert.rejects(client.connect(transport), UnauthorizedError);
  assert.equal(provider.redirects, 1);
  assert.ok(provider.pendingCode);
  await transport.finishAuth(provider.pendingCode);
  await client.close();
}
const discoveryPrefix = [
  "POST /mcp 401",
  `GET /.well-known/oauth-protected-resource${mcpUrl.pathname} 200`,
  "GET /.well-known/oauth-authorization-server 200",
  ...(opts.clientMetadataUrl ? [] : ["POST /register 201"]),
  "POST /token authorization_code 200",
];
if (opts.clientMetadataUrl) {
  assert.equal(provider.clientInformation().client_id, opts.clientMetadataUrl, "the document URL is the client_id");
}
assert.deepEqual(exchanges.slice(0, discoveryPrefix.length), discoveryPrefix, exchanges.join("\n"));
const firstTokens = provider.tokens();
assert.equal(firstTokens.token_type.toLowerCase(), "bearer");
assert.ok(firstTokens.refresh_token, "a refresh token was issued");
assert.equal(provider.lastIss, opts.issuer, "RFC 9207 iss");

// 2. Connected: initialize, tools/list, tools/call through the proxy.
const { client, transport } = await connect();
const tools = await client.listTools();
assert.ok(tools.tools.some((t) => t.name === "echo"), "server-everything lists echo");
await echo(client, "hello through the gate");
log({ step: "connected", server: client.getServerVersion() });

// 3. The access token expires; the next call meets a 401 and the SDK refreshes, then retries.
const beforeRefresh = exchanges.length;
await sleep((opts.accessTokenTtlSecs + 1) * 1000);
await echo(client, "after expiry");
const refreshExchanges = exchanges.slice(beforeRefresh);
assert.ok(refreshExchanges.includes("POST /mcp 401"), refreshExchanges.join("\n"));
assert.ok(refreshExchanges.includes("POST /token refresh_token 200"), refreshExchanges.join("\n"));
assert.equal(provider.redirects, 1, "a refresh needs no new authorization");
const refreshed = provider.tokens();
assert.notEqual(refreshed.access_token, firstTokens.access_token);
assert.notEqual(refreshed.refresh_token, firstTokens.refresh_token, "refresh tokens rotate");

// 4. Revocation (RFC 7009) of the refresh token, as a client does at sign-out: its whole grant dies.
const asMetadata = await (await fetch(new URL("/.well-known/oauth-authorization-server", opts.issuer))).json();
const revoked = await fetch(asMetadata.revocation_endpoint, {
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams({ token: refreshed.refresh_token, client_id: provider.clientInformation().client_id }),
});
assert.equal(revoked.status, 200);
// The revoked access token is refused at the proxy with a fresh challenge.
const raw = await fetch(mcpUrl, {
  method: "POST",
  headers: {
    authorization: `Bearer ${refreshed.access_token}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  },
  body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "tools/list" }),
});
assert.equal(raw.status, 401);
const challenge = raw.headers.get("www-authenticate") ?? "";
assert.match(challenge, /^Bearer /);
assert.match(challenge, /error="invalid_token"/);
assert.match(challenge, /resource_metadata="[^"]+"/);

// The SDK's next call: 401, refresh refused, and the client is sent back to authorization.
const beforeRevoked = exchanges.length;
await assert.rejects(echo(client, "after revocation"), UnauthorizedError);
const revokedExchanges = exchanges.slice(beforeRevoked);
assert.equal(revokedExchanges[0], "POST /mcp 401", revokedExchanges.join("\n"));
assert.ok(revokedExchanges.includes("POST /token refresh_token 400"), revokedExchanges.join("\n"));
assert.equal(provider.redirects, 2, "the SDK sent the client back to authorization");

// 5. The user authorizes again and the same session carries on.
await transport.finishAuth(provider.pendingCode);
await echo(client, "after re-authorization");
await client.close();

console.log(
  JSON.stringify({
    ok: true,
    redirects: provider.redirects,
    client_id: provider.clientInformation().client_id,
    tokens_saved: provider.savedTokens.length,
    exchanges,
  }),
);
