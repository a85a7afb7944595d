// The browser part of an OAuth authorization, done headlessly with fetch and a cookie jar: open the
// authorization URL, fill the login form, approve the consent form, and read the code from the redirect.
// The forms are forwardauth-svc's own pages (hidden inputs `handle` and `csrf`, session cookie `fa_session`).

/** A minimal cookie jar for one origin: name=value pairs from Set-Cookie, sent back on every request. */
class CookieJar {
  constructor() {
    this.cookies = new Map();
  }
  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = pair.indexOf("=");
      if (eq > 0) this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
  }
  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
}

function hidden(html, name) {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  if (!m) throw new Error(`no hidden input ${name} in page:\n${html}`);
  return m[1];
}

/**
 * Walks authorize → login → consent and returns the redirect's query parameters (code, state, iss).
 * Every request goes where the authorization server's pages send it, i.e. through the proxy.
 */
export async function authorizeHeadlessly(authorizationUrl, { username, password }) {
  const jar = new CookieJar();
  const get = async (url) => {
    const r = await fetch(url, { headers: { cookie: jar.header() }, redirect: "manual" });
    jar.store(r);
    return r;
  };
  const post = async (url, form) => {
    const r = await fetch(url, {
      method: "POST",
      headers: { cookie: jar.header(), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form).toString(),
      redirect: "manual",
    });
    jar.store(r);
    return r;
  };
  const url = new URL(authorizationUrl);
  const loginPage = await get(url);
  if (loginPage.status !== 200) {
    throw new Error(`authorize answered ${loginPage.status}: ${await loginPage.text()}`);
  }
  const loginHtml = await loginPage.text();
  const handle = hidden(loginHtml, "handle");
  const consentPage = await post(new URL("/login", url), {
    handle,
    csrf: hidden(loginHtml, "csrf"),
    username,
    password,
  });
  if (consentPage.status !== 200) {
    throw new Error(`login answered ${consentPage.status}: ${await consentPage.text()}`);
  }
  const consentHtml = await consentPage.text();
  const approved = await post(new URL("/consent", url), {
    handle: hidden(consentHtml, "handle"),
    csrf: hidden(consentHtml, "csrf"),
    decision: "approve",
  });
  if (approved.status !== 302) {
    throw new Error(`consent answered ${approved.status}: ${await approved.text()}`);
  }
  const location = new URL(approved.headers.get("location"));
  return Object.fromEntries(location.searchParams);
}
