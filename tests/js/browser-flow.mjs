// A real browser through forwardauth-svc's pages: Debian's chromium, headless, driven by playwright-core.
// Run by tests/tests/browser.rs with one JSON argument (see `plan` below); prints `result {json}` at the end,
// and on a failed check exits non-zero with the page's URL and text. Every page visited is saved as a
// screenshot at desktop (1280x800) and phone (390x844) width in `plan.screenshots`.
//
// The walk: sign in with a wrong password (the focus must be in the password field, the username kept), then
// the right one; on the consent page "Not you?" returns to the same authorization's sign-in page, where bob
// signs in and approves; the browser lands on the client's loopback redirect URI with a code. Then GET /logout
// asks and its button signs out; the next authorization asks to sign in again (the sign-in page, not consent).
// Signed in again, the access policy's 403 page offers "Not you?", which signs out.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const plan = JSON.parse(process.argv[2]);
// plan = { authorize: [url, url, url], admin: url, chooser: url, redirect: "http://127.0.0.1:PORT/callback",
//          base: "http://127.0.0.1:PORT", users: { alice: pw, bob: pw }, screenshots: dir }

const WIDTHS = [
  ["desktop", { width: 1280, height: 800 }],
  ["phone", { width: 390, height: 844 }],
];

function fail(message) {
  throw new Error(message);
}

async function main() {
  const profile = mkdtempSync(join(tmpdir(), "forwardauth-chromium-"));
  mkdirSync(plan.screenshots, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: WIDTHS[0][1],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const result = { shots: [] };
  try {
    await walk(page, result);
  } catch (e) {
    let text = "";
    try {
      text = await page.locator("body").innerText();
    } catch {}
    console.error(`${e.stack}\n--- at ${page.url()}\n${text}`);
    process.exitCode = 1;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  if (!process.exitCode) console.log(`result ${JSON.stringify(result)}`);
}

/** Saves the current page at each width, as `<name>-<width>.png`. */
async function shoot(page, result, name) {
  for (const [label, size] of WIDTHS) {
    await page.setViewportSize(size);
    const path = join(plan.screenshots, `${name}-${label}.png`);
    await page.screenshot({ path, fullPage: true });
    result.shots.push(path);
  }
  await page.setViewportSize(WIDTHS[0][1]);
}

async function heading(page) {
  return (await page.locator("h1").innerText()).trim();
}

async function expectHeading(page, prefix, what) {
  const h = await heading(page);
  if (!h.startsWith(prefix)) fail(`${what}: expected a heading starting "${prefix}", got "${h}"`);
}

/** Submits the password form and waits for the answer. */
async function signIn(page, username, password) {
  await page.fill("#username", username);
  await page.fill("#password", password);
  await Promise.all([page.waitForLoadState("load"), page.click("form[action='/login'] button[type=submit]")]);
}

async function walk(page, result) {
  // 1. The sign-in page of the first authorization.
  await page.goto(plan.authorize[0]);
  await expectHeading(page, "Sign in", "the authorization URL");
  const focused = await page.evaluate(() => document.activeElement?.id);
  if (focused !== "username") fail(`a fresh sign-in page focuses the username, not ${focused}`);
  await shoot(page, result, "login");

  // 2. A wrong password: the page again, the name kept, the focus in the password field.
  await signIn(page, "alice", "not the password");
  await expectHeading(page, "Sign in", "after a wrong password");
  const state = await page.evaluate(() => ({
    focused: document.activeElement?.id,
    username: document.querySelector("#username").value,
    alert: document.querySelector("[role=alert]")?.textContent,
  }));
  if (state.focused !== "password") fail(`after a wrong password the focus is on ${state.focused}`);
  if (state.username !== "alice") fail(`the username was not kept: ${state.username}`);
  if (!state.alert?.includes("Invalid username or password")) fail(`no alert: ${state.alert}`);
  await shoot(page, result, "login-failed");

  // 3. The right password: the consent page, as alice.
  await page.fill("#password", plan.users.alice);
  await Promise.all([page.waitForLoadState("load"), page.press("#password", "Enter")]);
  await expectHeading(page, "Allow access to", "after signing in");
  if (!(await page.locator("form.who").innerText()).includes("alice")) fail("the consent page does not say who is signed in");
  await shoot(page, result, "consent");

  // 4. "Not you?": the same authorization's sign-in page; bob signs in and approves.
  await Promise.all([page.waitForLoadState("load"), page.click("text=Not you? Sign out")]);
  await expectHeading(page, "Sign in", "after Not you?");
  await signIn(page, "bob", plan.users.bob);
  await expectHeading(page, "Allow access to", "bob signed in");
  if (!(await page.locator("form.who").innerText()).includes("bob")) fail("the consent page is not bob's");
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(plan.redirect)),
    page.click("button[value=approve]"),
  ]);
  const back = new URL(page.url());
  result.code = back.searchParams.get("code");
  result.state = back.searchParams.get("state");
  if (!result.code) fail(`the client got no code: ${back}`);
  await shoot(page, result, "client-redirect");

  // 5. GET /logout asks; its button signs out.
  await page.goto(`${plan.base}/logout`);
  await expectHeading(page, "Sign out of", "GET /logout");
  await shoot(page, result, "sign-out");
  await Promise.all([page.waitForLoadState("load"), page.click("form[action='/logout'] button")]);
  await expectHeading(page, "Signed out", "after signing out");
  await shoot(page, result, "signed-out");

  // 6. The next authorization asks who you are again.
  await page.goto(plan.authorize[1]);
  await expectHeading(page, "Sign in", "an authorization after signing out");
  result.askedAgain = true;
  await shoot(page, result, "login-again");

  // 7. Signed in as alice, a resource the policy keeps from her: the 403 page offers "Not you?".
  await signIn(page, "alice", plan.users.alice);
  await expectHeading(page, "Allow access to", "alice again");
  const refused = await page.goto(plan.admin);
  if (refused.status() !== 403) fail(`the policy's refusal answered ${refused.status()}`);
  await expectHeading(page, "Access denied", "the policy's refusal");
  const why = await page.locator("p.error").innerText();
  if (!why.includes("alice may not use Admin MCP server")) fail(`the refusal does not name the resource: ${why}`);
  await shoot(page, result, "error");
  await Promise.all([page.waitForLoadState("load"), page.click("text=Not you? Sign out")]);
  await expectHeading(page, "Signed out", "Not you? on the error page");
  await page.goto(plan.authorize[2]);
  await expectHeading(page, "Sign in", "after Not you? on the error page");

  // 8. A server with an identity provider besides its accounts: the chooser.
  await page.goto(plan.chooser);
  await expectHeading(page, "Sign in", "the chooser");
  if ((await page.locator("form[action='/login/upstream'] button").count()) !== 1) fail("no provider button");
  await shoot(page, result, "chooser");
}

await main();
