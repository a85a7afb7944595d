// A real OpenID Provider (panva/node-oidc-provider) for the upstream-login end-to-end tests.
//
//   node provider.js <port> <redirect_uri>
//
// Issuer http://127.0.0.1:<port>; one confidential client `forwardauth` / `forwardauth-secret` whose only redirect
// URI is <redirect_uri>; PKCE required. Accounts (any password, through the provider's development
// interactions at /interaction/:uid): alice (verified e-mail at example.com, group staff), bob (verified e-mail at
// other.org, group guests), carol (unverified e-mail at example.com). Claims come from userinfo
// (`conformIdTokenClaims`), as with most real providers. Prints `ready` when listening.
//
// Test-only additions, for re-checks at refresh:
// * the environment variable ACCESS_TOKEN_TTL (seconds) shortens the access tokens' lifetime (default one hour);
// * `PUT /test/accounts/<id>/groups` with a JSON array body replaces that account's groups, and with `null` removes
//   the groups claim altogether (204; 404 for an unknown account): a user's membership changes mid-session, as
//   when an administrator removes them from a group. Refresh tokens are issued with `offline_access` (which this
//   provider keeps only with `prompt=consent`).
import Provider from 'oidc-provider';

const [port, redirectUri] = process.argv.slice(2);
if (!port || !redirectUri) {
  console.error('usage: node provider.js <port> <redirect_uri>');
  process.exit(2);
}

const accounts = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice', preferred_username: 'alice', groups: ['staff'] },
  bob: { email: 'bob@other.org', email_verified: true, name: 'Bob', preferred_username: 'bob', groups: ['guests'] },
  carol: { email: 'carol@example.com', email_verified: false, name: 'Carol', preferred_username: 'carol', groups: ['staff'] },
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'forwardauth',
    client_secret: 'forwardauth-secret',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  pkce: { required: () => true },
  cookies: { keys: ['e2e-test-only-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  ...(process.env.ACCESS_TOKEN_TTL ? { ttl: { AccessToken: Number(process.env.ACCESS_TOKEN_TTL) } } : {}),
});

provider.use(async (ctx, next) => {
  const route = ctx.method === 'PUT' && ctx.path.match(/^\/test\/accounts\/([^/]+)\/groups$/);
  if (!route) return next();
  const account = accounts[route[1]];
  if (!account) {
    ctx.status = 404;
    return undefined;
  }
  let body = '';
  for await (const chunk of ctx.req) body += chunk;
  const groups = JSON.parse(body);
  if (groups === null) delete account.groups;
  else account.groups = groups;
  ctx.status = 204;
  return undefined;
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log('ready');
});
