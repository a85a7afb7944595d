// The OAuthClientProvider the e2e TypeScript SDK clients give the SDK: tokens and client information kept in
// memory, and a "browser" (authorizeHeadlessly) that logs in as the given user and approves the consent page.
// Shared by sdk-client.mjs (server-everything over HTTP) and memory-client.mjs (server-memory behind mcp-bridge).
import assert from "node:assert/strict";

import { authorizeHeadlessly } from "./headless-browser.mjs";

// Never listened on: the headless browser reads the code from the redirect's Location header.
export const redirectUrl = "http://127.0.0.1:53682/callback";

export const log = (event) => console.error(JSON.stringify(event));

/**
 * Every HTTP exchange an SDK makes through `fetch`, as "METHOD path status" (with the grant type for /token).
 * Returns the recording fetch and the array it appends to.
 */
export function recordingFetch() {
  const exchanges = [];
  const fetchAndRecord = async (input, init) => {
    const response = await fetch(input, init);
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    let grant = "";
    if (url.pathname === "/token" && init?.body) {
      grant = ` ${new URLSearchParams(String(init.body)).get("grant_type")}`;
    }
    exchanges.push(`${method} ${url.pathname}${grant} ${response.status}`);
    return response;
  };
  return { fetch: fetchAndRecord, exchanges };
}

/**
 * An in-memory OAuthClientProvider whose "browser" is authorizeHeadlessly.
 *
 * `opts`: `{ mcpUrl, username, password, clientName?, clientMetadataUrl? }`. Each authorization asks for the
 * RFC 8707 resource `mcpUrl` with PKCE S256 (checked here), logs in as `username` and leaves the code in
 * `pendingCode` for `transport.finishAuth`.
 */
export class HeadlessProvider {
  constructor(opts) {
    this.opts = opts;
    this.mcpUrl = new URL(opts.mcpUrl);
    this.redirects = 0;
    this.savedTokens = [];
    this.pendingCode = undefined;
    this.lastIss = undefined;
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
  }
  get redirectUrl() {
    return redirectUrl;
  }
  get clientMetadataUrl() {
    return this.opts.clientMetadataUrl ?? undefined;
  }
  get clientMetadata() {
    return {
      client_name: this.opts.clientName ?? "e2e TypeScript SDK client",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
    this.savedTokens.push(tokens);
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    return this._verifier;
  }
  saveDiscoveryState(state) {
    this._discovery = state;
  }
  discoveryState() {
    return this._discovery;
  }
  invalidateCredentials(scope) {
    log({ invalidateCredentials: scope });
    if (scope === "all" || scope === "client") this._client = undefined;
    if (scope === "all" || scope === "tokens") this._tokens = undefined;
    if (scope === "all" || scope === "verifier") this._verifier = undefined;
    if (scope === "all" || scope === "discovery") this._discovery = undefined;
  }
  async redirectToAuthorization(authorizationUrl) {
    this.redirects += 1;
    log({ redirectToAuthorization: authorizationUrl.origin + authorizationUrl.pathname });
    assert.equal(authorizationUrl.searchParams.get("resource"), this.mcpUrl.href, "RFC 8707 resource");
    assert.equal(authorizationUrl.searchParams.get("code_challenge_method"), "S256");
    const result = await authorizeHeadlessly(authorizationUrl, this.opts);
    assert.ok(result.code, `no code in the redirect: ${JSON.stringify(result)}`);
    this.pendingCode = result.code;
    this.lastIss = result.iss;
  }
}
