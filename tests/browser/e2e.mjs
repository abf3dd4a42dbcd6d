// Browser end-to-end scenarios for the saasodoo frontend, in Debian's Chromium driven by
// playwright-core, against a running saasodoo-gateway (and the server behind it).
//
//   node e2e.mjs --scenario NAME [--base-url http://127.0.0.1:8080] [--out DIR]
//   node e2e.mjs --list
//
// Environment: SAASODOO_E2E_BASE_URL, SAASODOO_E2E_OUT (screenshots), SAASODOO_CHROMIUM
// (default /usr/bin/chromium), SAASODOO_E2E_ACTIVE_TIMEOUT (seconds to wait for a tenant
// to become ACTIVE, default 120), SAASODOO_E2E_PICKUP_TIMEOUT (seconds an operation may
// stay PENDING before the run concludes nothing is working on it, default 20),
// SAASODOO_E2E_ADMIN_EMAIL and SAASODOO_E2E_ADMIN_PASSWORD (the platform's admin, for
// the scenarios that need one). Customers are made afresh by each scenario (SignUp).
//
// A scenario fails on any console error or uncaught exception in a page, except the
// browser's own "Failed to load resource" line for an API call (/v1/...) that answered
// with an error status: those answers are part of the API, and the pages show them in
// words (which the scenarios check).
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const BASE = (opt("base-url", process.env.SAASODOO_E2E_BASE_URL) || "http://127.0.0.1:8080").replace(/\/$/, "");
const OUT = opt("out", process.env.SAASODOO_E2E_OUT) || join(process.cwd(), "e2e-output");
const CHROMIUM = process.env.SAASODOO_CHROMIUM || "/usr/bin/chromium";
const ACTIVE_TIMEOUT = Number(process.env.SAASODOO_E2E_ACTIVE_TIMEOUT || 120) * 1000;
const PICKUP_TIMEOUT = Number(process.env.SAASODOO_E2E_PICKUP_TIMEOUT || 20) * 1000;
const ADMIN_EMAIL = process.env.SAASODOO_E2E_ADMIN_EMAIL || "";
const ADMIN_PASSWORD = process.env.SAASODOO_E2E_ADMIN_PASSWORD || "";

const PUBLIC_PAGES = ["index.html", "login.html", "register.html"];
const SIGNED_IN_PAGES = ["dashboard.html", "tenant-create.html", "billing.html", "apikeys.html", "admin.html"];
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

function log(...a) {
  console.log(`[e2e ${new Date().toISOString().slice(11, 23)}]`, ...a);
}

class Failure extends Error {}

function check(cond, message) {
  if (!cond) throw new Failure(message);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function uniqueId(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

// --- the REST API, for setting up and checking state -------------------------------

// One call; token is an access token (or API key) sent as a Bearer credential.
async function apiCall(method, path, body, token) {
  const headers = {};
  if (body) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const resp = await fetch(BASE + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await resp.text();
  let json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { message: text };
  }
  return { status: resp.status, json };
}

async function api(method, path, body, token) {
  const { status, json } = await apiCall(method, path, body, token);
  if (status < 200 || status > 299) throw new Failure(`${method} ${path} answered HTTP ${status}: ${json.message || JSON.stringify(json)}`);
  return json;
}

// A new customer through IdentityService.SignUp: { email, password, name, token, session }.
async function newCustomer(prefix = "cust") {
  const email = `${uniqueId(prefix)}@example.com`;
  const password = `pw-${Math.random().toString(36).slice(2)}-long-enough`;
  const name = `E2E ${prefix}`;
  const session = await api("POST", "/v1/auth:signUp", { email, password, display_name: name });
  check(session.access_token && session.user && session.user.name, `SignUp answered no session: ${JSON.stringify(session)}`);
  return { email, password, name, token: session.access_token, session };
}

function adminAccount() {
  if (!ADMIN_EMAIL || !ADMIN_PASSWORD) {
    throw new Failure("this scenario needs the platform's admin: set SAASODOO_E2E_ADMIN_EMAIL and " +
      "SAASODOO_E2E_ADMIN_PASSWORD (test_browser.py passes the test server's bootstrap admin)");
  }
  return { email: ADMIN_EMAIL, password: ADMIN_PASSWORD };
}

async function adminToken() {
  const a = adminAccount();
  return (await api("POST", "/v1/auth:signIn", { email: a.email, password: a.password })).access_token;
}

// Waits until the tenant reaches state, failing early when its operation is never
// picked up (nothing works on operations) or fails.
async function waitTenantState(tenantId, state, opName, what, token) {
  const started = Date.now();
  for (;;) {
    const t = await api("GET", `/v1/tenants/${tenantId}`, undefined, token);
    if (t.state === state) return t;
    if (t.state === "FAILED") throw new Failure(`${what}: tenant ${tenantId} is FAILED: ${t.state_reason}`);
    if (opName) {
      const op = await waitOperationStep(opName, what, started, token);
      if (op.done && op.state !== "SUCCEEDED") {
        throw new Failure(`${what}: ${opName} ended ${op.state}: ${op.error ? op.error.message : ""}`);
      }
    }
    if (Date.now() - started > ACTIVE_TIMEOUT) {
      throw new Failure(`${what}: tenant ${tenantId} is ${t.state}, not ${state}, after ${ACTIVE_TIMEOUT / 1000}s`);
    }
    await sleep(500);
  }
}

// Reads an operation, failing when it has stayed PENDING too long (nothing runs it).
async function waitOperationStep(opName, what, started, token) {
  const op = await api("GET", `/v1/${opName}`, undefined, token);
  if (op.state === "PENDING" && Date.now() - started > PICKUP_TIMEOUT) {
    throw new Failure(`${what}: ${opName} (${op.kind}) is still PENDING ("${op.step}") after ` +
      `${PICKUP_TIMEOUT / 1000}s: nothing is running the platform's operations`);
  }
  return op;
}

// Waits until the operation is done; returns it (whatever its end state).
async function waitOperationDone(opName, what, token) {
  const started = Date.now();
  for (;;) {
    const op = await waitOperationStep(opName, what, started, token);
    if (op.done) return op;
    if (Date.now() - started > ACTIVE_TIMEOUT) {
      throw new Failure(`${what}: ${opName} is ${op.state} ("${op.step}") after ${ACTIVE_TIMEOUT / 1000}s`);
    }
    await sleep(500);
  }
}

async function createActiveTenant(prefix, token) {
  const id = uniqueId(prefix);
  const op = await api("POST", "/v1/tenants", { tenant_id: id, tenant: { plan: "plans/basic", display_name: `E2E ${id}` } }, token);
  await waitTenantState(id, "ACTIVE", op.name, `provisioning ${id} through the API`, token);
  return id;
}

// --- the browser ---------------------------------------------------------------------

const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"];

// Runs fn(page) in a fresh Chromium profile, then fails if any page reported an error.
async function withBrowser(fn) {
  const profile = mkdtempSync(join(tmpdir(), "saasodoo-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, viewport: DESKTOP, args: CHROMIUM_ARGS,
  });
  const problems = [];
  const watchPage = (page) => {
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      const text = msg.text();
      const where = (msg.location() && msg.location().url) || "";
      if (/^Failed to load resource: the server responded with a status of \d+/.test(text) && where.includes("/v1/")) return;
      problems.push(`console error on ${page.url()}: ${text}${where ? ` (${where})` : ""}`);
    });
    page.on("pageerror", (err) => problems.push(`uncaught exception on ${page.url()}: ${err.message}`));
    page.on("requestfailed", (req) => {
      const f = req.failure();
      // Streams and fetches a page drops when it navigates away are aborted on purpose.
      if (f && /ERR_ABORTED/.test(f.errorText)) return;
      problems.push(`request failed on ${page.url()}: ${req.url()} ${f ? f.errorText : ""}`);
    });
  };
  context.on("page", watchPage);
  const existing = context.pages()[0];
  if (existing) watchPage(existing); // opened with the context, before the listener
  const page = existing || (await context.newPage());
  page.setDefaultTimeout(15000);
  try {
    await fn(page, context);
  } catch (err) {
    await shot(page, currentScenario, "failure").catch(() => {});
    throw err;
  } finally {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  const unique = [...new Set(problems)];
  check(!unique.length, `the pages reported errors:\n  ${unique.join("\n  ")}`);
}

let shotCount = 0;
let currentScenario = "e2e";
async function shot(page, scenario, name, fullPage = true) {
  mkdirSync(OUT, { recursive: true });
  const file = join(OUT, `${scenario}-${String(++shotCount).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage });
  log(`screenshot ${file}`);
}

// Waits until no loading placeholder is left on the page.
async function settled(page) {
  await page.waitForFunction(() => !document.querySelector(".loading"), null, { timeout: 15000 });
}

// Every error a page shows must be a sentence, not raw JSON.
async function checkErrorsInWords(page) {
  const texts = await page.locator(".alert").allInnerTexts();
  for (const t of texts) {
    check(!/^\s*[{[]/.test(t) && !/"code"\s*:/.test(t) && !/"error"\s*:/.test(t),
      `${page.url()} shows raw JSON in an alert: ${t}`);
    check(t.trim().length > 10, `${page.url()} shows an empty or terse alert: "${t}"`);
  }
}

async function gotoPage(page, path) {
  const resp = await page.goto(BASE + "/" + path, { waitUntil: "load" });
  check(resp && resp.ok(), `${path} answered HTTP ${resp ? resp.status() : "nothing"}`);
}

// --- signing in ----------------------------------------------------------------------

// Signs in through login.html and waits for the page it leads to (the dashboard, or
// ?next=). Returns the stored session.
async function signIn(page, account, { next = "" } = {}) {
  await gotoPage(page, next ? `login.html?next=${encodeURIComponent(next)}` : "login.html");
  await page.locator("#email").fill(account.email);
  await page.locator("#password").fill(account.password);
  await Promise.all([
    page.waitForURL((u) => !u.pathname.endsWith("/login.html"), { timeout: 15000 }),
    page.locator("#login-form button[type=submit]").click(),
  ]).catch(async (err) => {
    const said = await page.locator("#notice").innerText().catch(() => "");
    throw new Failure(`signing in as ${account.email} did not leave the sign-in page${said ? `; it says: ${said}` : ""} (${err.message})`);
  });
  const session = await storedSession(page);
  check(session && session.access_token && session.refresh_token, "no session is kept after signing in");
  return session;
}

// Creates an account through register.html; returns { email, password, name }.
async function signUp(page, prefix = "ui") {
  const account = { email: `${uniqueId(prefix)}@example.com`, password: `pw-${Math.random().toString(36).slice(2)}-long-enough`,
    name: `E2E ${prefix}` };
  await gotoPage(page, "register.html");
  await page.locator("#display-name").fill(account.name);
  await page.locator("#email").fill(account.email);
  await page.locator("#password").fill("short");
  const hint = page.locator("#password-hint");
  check((await hint.innerText()).includes("more to go"), `a short password is not flagged while typing: "${await hint.innerText()}"`);
  await page.locator("#password").fill(account.password);
  check((await hint.innerText()).includes("Long enough"), `a long password is not accepted while typing: "${await hint.innerText()}"`);
  await page.locator("#password2").fill(account.password);
  await Promise.all([
    page.waitForURL(/dashboard\.html/, { timeout: 15000 }),
    page.locator("#register-form button[type=submit]").click(),
  ]).catch(async (err) => {
    const said = await page.locator("#notice").innerText().catch(() => "");
    throw new Failure(`signing up ${account.email} did not reach the dashboard${said ? `; it says: ${said}` : ""} (${err.message})`);
  });
  const session = await storedSession(page);
  check(session && session.user && session.user.email === account.email, "the new account's session is not kept");
  account.token = session.access_token;
  return account;
}

// Signs out with the header's button and checks the session is gone.
async function signOut(page) {
  const button = page.locator("#sign-out");
  if (!(await button.isVisible())) await page.locator(".nav-toggle").click();
  await Promise.all([page.waitForURL(/login\.html\?signed_out=1/), button.click()]);
  check(!(await storedSession(page)), "the session is still kept after signing out");
}

async function storedSession(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem("saasodoo.session") || "null"));
}

async function waitForOperationCard(page, selector, what) {
  const card = page.locator(selector).first();
  await card.waitFor({ timeout: 15000 }).catch(() => { throw new Failure(`${what}: no progress card appeared`); });
  const opName = await card.getAttribute("data-operation");
  return { card, opName };
}

// Waits for an operation card to finish and checks it ended SUCCEEDED.
async function waitCardSucceeded(page, card, opName, what, token) {
  const op = await waitOperationDone(opName, what, token);
  check(op.state === "SUCCEEDED", `${what}: ${opName} ended ${op.state}: ${op.error ? op.error.message : ""}`);
  await card.locator("[data-state=SUCCEEDED]").first().waitFor({ timeout: 15000 })
    .catch(() => { throw new Failure(`${what}: the API says SUCCEEDED but the card does not`); });
  return op;
}

// --- scenarios -----------------------------------------------------------------------

const scenarios = {};

async function checkPage(page, p, label) {
  await settled(page);
  check(await page.locator("header .brand").count() === 1, `${p}: no site header`);
  check(await page.locator("main h1").count() >= 1, `${p}: no heading`);
  await checkErrorsInWords(page);
  if (label === "phone") {
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(wide <= 1, `${p} is ${wide}px wider than a ${PHONE.width}px phone screen`);
  }
  await shot(page, "pages", `${p.replace(".html", "")}-${label}`);
}

// Every page renders at desktop and phone width: header, a heading, no loading left,
// errors in words, nothing wider than a phone, keyboard reachable. Signed out, the
// pages that need an account lead to the sign-in page, and back after it.
scenarios.pages = async () => withBrowser(async (page) => {
  for (const p of SIGNED_IN_PAGES) {
    await page.goto(`${BASE}/${p}`, { waitUntil: "commit" });
    await page.waitForURL(/login\.html\?next=/);
    check(new URL(page.url()).searchParams.get("next") === p, `${p} signed out does not lead to the sign-in page: ${page.url()}`);
  }
  await page.locator("#notice .alert").waitFor();
  await shot(page, "pages", "signed-out-redirect");
  // A failed sign-in says so in words.
  await page.locator("#email").fill("nobody@example.com");
  await page.locator("#password").fill("not-the-password");
  await page.locator("#login-form button[type=submit]").click();
  await page.waitForFunction(() => /wrong email or password/i.test(document.getElementById("notice").innerText));
  await checkErrorsInWords(page);
  await shot(page, "pages", "login-refused");
  // Too many failures for one account: the page says how long to wait, and waits.
  const locked = await newCustomer("locked");
  for (let i = 0; i < 5; i++) {
    await apiCall("POST", "/v1/auth:signIn", { email: locked.email, password: "not-the-password" });
  }
  await page.locator("#email").fill(locked.email);
  await page.locator("#password").fill(locked.password);
  await page.locator("#login-form button[type=submit]").click();
  await page.waitForFunction(() => /try again in \d+ (second|minute)/i.test(document.getElementById("notice").innerText));
  check(await page.locator("#login-form button[type=submit]").isDisabled(), "signing in can be tried again at once");
  check(/Wait \d+ s/.test(await page.locator("#login-form button[type=submit]").innerText()), "the button does not count down");
  await checkErrorsInWords(page);
  await shot(page, "pages", "login-locked");

  for (const [label, size] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(size);
    for (const p of PUBLIC_PAGES) {
      await gotoPage(page, p);
      await checkPage(page, p, `${label}-signed-out`);
    }
  }
  // Signed in as the admin: every page, the admin console included; after signing in
  // the browser is back on the page that asked for it.
  await page.setViewportSize(DESKTOP);
  await signIn(page, adminAccount(), { next: "billing.html" });
  check(page.url().endsWith("/billing.html"), `signing in did not lead back to billing.html: ${page.url()}`);
  for (const [label, size] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(size);
    for (const p of [...PUBLIC_PAGES, ...SIGNED_IN_PAGES]) {
      await gotoPage(page, p);
      await checkPage(page, p, label);
    }
  }

  // Keyboard: the first Tab reaches the skip link, which moves focus to the content.
  await page.setViewportSize(DESKTOP);
  await gotoPage(page, "dashboard.html");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement && document.activeElement.classList.contains("skip-link")),
    "the first Tab does not reach the skip link");
  await page.keyboard.press("Enter");
  check(await page.evaluate(() => location.hash === "#main"), "the skip link does not lead to the content");
  // Every control can take focus from the keyboard: tab through the whole page.
  const reached = new Set();
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press("Tab");
    const tag = await page.evaluate(() => {
      const a = document.activeElement;
      return a ? `${a.tagName}:${a.textContent.trim().slice(0, 30)}` : "";
    });
    reached.add(tag);
  }
  check([...reached].some((t) => t.startsWith("A:New tenant")), "the New tenant link cannot be reached with Tab");
  // The phone menu opens with the keyboard.
  await page.setViewportSize(PHONE);
  await gotoPage(page, "dashboard.html");
  const toggle = page.locator(".nav-toggle");
  check(await toggle.isVisible(), "no menu button at phone width");
  check(!(await page.locator("#site-nav a[href='billing.html']").isVisible()), "the menu is open before it is asked for");
  await toggle.focus();
  await page.keyboard.press("Enter");
  await page.locator("#site-nav a[href='billing.html']").waitFor({ state: "visible" });
  check((await toggle.getAttribute("aria-expanded")) === "true", "the menu button does not say it is expanded");
  await shot(page, "pages", "phone-menu-open");
});

// A bad tenant id shows the rule while typing; a reserved one says so; a good one is accepted.
scenarios.bad_tenant_id = async () => withBrowser(async (page) => {
  const customer = await newCustomer("badid");
  await signIn(page, customer, { next: "tenant-create.html" });
  await settled(page);
  const input = page.locator("#tenant-id");
  const status = page.locator("#tenant-id-status");
  const button = page.locator("#create-button");
  await input.pressSequentially("Bad_Id", { delay: 20 });
  await page.waitForFunction(() => document.getElementById("tenant-id-status").textContent.includes("3 to 40"));
  const text = await status.innerText();
  check(text.includes("lower-case letters, digits and hyphens"), `the rule is not shown: "${text}"`);
  check(text.includes("lower-case"), `no reason given: "${text}"`);
  check((await input.getAttribute("aria-invalid")) === "true", "the field is not marked invalid");
  check(await button.isDisabled(), "the create button is enabled for a bad id");
  await shot(page, "bad_tenant_id", "rule-shown");

  await input.fill("");
  await input.pressSequentially("ab-", { delay: 20 });
  check((await status.innerText()).includes("hyphen"), "an id ending with a hyphen is not explained");
  await input.fill("admin");
  await page.waitForFunction(() => document.getElementById("tenant-id-status").textContent.includes("reserved"));
  check(await button.isDisabled(), "the create button is enabled for a reserved id");
  await shot(page, "bad_tenant_id", "reserved");

  await input.fill("good-id-42");
  await page.waitForFunction(() => document.getElementById("tenant-id").getAttribute("aria-invalid") === "false");
  check(!(await status.innerText()).includes("must"), "a good id is still refused");
  await choosePlan(page);
  check(!(await button.isDisabled()), "the create button stays disabled for a good id and a plan");
  await shot(page, "bad_tenant_id", "accepted");

  // The server applies the same rule: a bad id sent anyway is refused in words.
  await input.fill("UPPER");
  await page.evaluate(() => { document.getElementById("create-button").disabled = false; });
  await page.evaluate(() => document.getElementById("create-form").requestSubmit());
  check((await input.getAttribute("aria-invalid")) === "true", "a bad id can be submitted");
});

async function choosePlan(page) {
  const radio = page.locator("input[name=plan][value='plans/basic']");
  if (await radio.count()) {
    await radio.check();
  } else {
    const typed = page.locator("#plan-name");
    check(await typed.count() === 1, "neither a plan list nor a plan field is shown");
    await typed.fill("basic");
  }
}

// Fills the new-tenant form and lands on the dashboard following the operation.
async function createTenantInForm(page, id, scenario) {
  await gotoPage(page, "tenant-create.html");
  await settled(page);
  await page.locator("#tenant-id").fill(id);
  await page.locator("#display-name").fill("End To End Ltd");
  await choosePlan(page);
  await shot(page, scenario, "form");
  await Promise.all([page.waitForURL(/dashboard\.html\?operation=/), page.locator("#create-button").click()]);
  const opName = new URL(page.url()).searchParams.get("operation");
  check(/^operations\//.test(opName), `the dashboard was not given the operation: ${page.url()}`);
  return opName;
}

// Create a tenant in the form and follow it on the dashboard until it is ACTIVE.
scenarios.create_watch_active = async () => withBrowser(async (page) => {
  const customer = await newCustomer("cwa");
  await signIn(page, customer);
  const id = uniqueId("e2e");
  const opName = await createTenantInForm(page, id, "create_watch_active");
  const card = page.locator(`.op-card[data-operation="${opName}"]`);
  await card.waitFor();
  check(await card.locator("progress").count() === 1, "no progress bar for the running operation");
  const row = page.locator(`tr[data-tenant="${id}"]`);
  await row.waitFor();
  await shot(page, "create_watch_active", "progress");

  // Follow the page while the tenant is provisioned; the API tells us if nothing runs it.
  const seen = new Set();
  const started = Date.now();
  const apiWait = waitTenantState(id, "ACTIVE", opName, "create in the browser", customer.token);
  let apiDone = false;
  let apiError = null;
  apiWait.then(() => { apiDone = true; }, (e) => { apiError = e; });
  for (;;) {
    if (apiError) throw apiError;
    const step = await card.locator(".step").innerText().catch(() => "");
    const pct = await card.locator("progress").getAttribute("value").catch(() => "0");
    const key = `${pct}:${step}`;
    if (!seen.has(key)) {
      seen.add(key);
      log(`progress ${pct}% ${step}`);
      if (seen.size <= 6) await shot(page, "create_watch_active", `step-${seen.size}`, false);
    }
    if ((await row.getAttribute("data-state").catch(() => "")) === "ACTIVE") break;
    if (apiDone && Date.now() - started > ACTIVE_TIMEOUT) {
      throw new Failure("the tenant is ACTIVE in the API but the dashboard never showed it");
    }
    if (Date.now() - started > ACTIVE_TIMEOUT + 15000) throw new Failure("the dashboard never showed ACTIVE");
    await sleep(250);
  }
  await card.locator("[data-state=SUCCEEDED], .badge-ok").first().waitFor();
  check(Number(await card.locator("progress").getAttribute("value")) === 100, "the finished progress bar is not full");
  check((await card.innerText()).includes(`${id} is ready`), "the dashboard does not say the tenant is ready");
  check(await row.locator(".badge").innerText() === "Active", "the state badge does not say Active");
  const open = row.locator("a[data-action=open]");
  check(await open.count() === 1, "no link to open the tenant");
  const t = await api("GET", `/v1/tenants/${id}`, undefined, customer.token);
  check((await open.getAttribute("href")) === t.url, "the open link is not the tenant's url");
  await shot(page, "create_watch_active", "active");
});

// Suspend (with a confirmation naming the tenant) and resume from the dashboard: the
// operators' decisions, so the admin does it with a tenant of their own; a customer is
// not offered either.
scenarios.suspend_resume = async () => {
  const customer = await newCustomer("sr");
  const own = await createActiveTenant("e2e-src", customer.token);
  const token = await adminToken();
  const id = await createActiveTenant("e2e-sr", token);
  await withBrowser(async (page) => {
    await signIn(page, customer);
    await page.locator(`tr[data-tenant="${own}"]`).waitFor();
    check(await page.locator(`tr[data-tenant="${own}"] button[data-action=suspend]`).count() === 0,
      "a customer is offered to suspend their tenant");
    await signOut(page);
    await signIn(page, adminAccount());
    const row = page.locator(`tr[data-tenant="${id}"]`);
    await row.waitFor();
    await row.locator("button[data-action=suspend]").click();
    const dialog = page.locator("dialog[open]");
    await dialog.waitFor();
    check((await dialog.innerText()).includes(id), "the suspend confirmation does not name the tenant");
    await shot(page, "suspend_resume", "confirm-suspend");
    await dialog.locator("[data-role=confirm]").click();
    await page.locator(`tr[data-tenant="${id}"][data-state=SUSPENDED]`).waitFor({ timeout: ACTIVE_TIMEOUT });
    await shot(page, "suspend_resume", "suspended");
    await page.locator(`tr[data-tenant="${id}"] button[data-action=resume]`).click();
    await page.locator(`tr[data-tenant="${id}"][data-state=ACTIVE]`).waitFor({ timeout: ACTIVE_TIMEOUT });
    await shot(page, "suspend_resume", "resumed");
    const t = await api("GET", `/v1/tenants/${id}`, undefined, token);
    check(t.state === "ACTIVE", `the API says ${t.state} after resuming`);
  });
};

// Delete: the confirmation names the tenant and wants its id typed.
scenarios.delete = async () => {
  const customer = await newCustomer("del");
  const id = await createActiveTenant("e2e-del", customer.token);
  await withBrowser(async (page) => {
    await signIn(page, customer);
    const row = page.locator(`tr[data-tenant="${id}"]`);
    await row.waitFor();
    await row.locator("button[data-action=delete]").click();
    const dialog = page.locator("dialog[open]");
    await dialog.waitFor();
    check((await dialog.innerText()).includes(id), "the delete confirmation does not name the tenant");
    const confirm = dialog.locator("[data-role=confirm]");
    check(await confirm.isDisabled(), "delete can be confirmed without typing the tenant's id");
    await dialog.locator("input").fill("not-the-id");
    check(await confirm.isDisabled(), "delete can be confirmed with the wrong id");
    await dialog.locator("input").fill(id);
    await shot(page, "delete", "confirm");
    await confirm.click();
    // The tenant goes (DELETED tenants are not listed) or shows as deleted.
    await page.waitForFunction((tid) => {
      const r = document.querySelector(`tr[data-tenant="${tid}"]`);
      return !r || r.dataset.state === "DELETED";
    }, id, { timeout: ACTIVE_TIMEOUT });
    await shot(page, "delete", "deleted");
    const t = await api("GET", `/v1/tenants/${id}`, undefined, customer.token).catch(() => ({ state: "DELETED" }));
    check(t.state === "DELETED", `the API says ${t.state} after deleting`);
  });
};

// The admin page lists the database server(s) with their load.
scenarios.admin_lists_database_server = async () => withBrowser(async (page) => {
  await signIn(page, adminAccount(), { next: "admin.html" });
  await settled(page);
  const rows = page.locator("#db-servers tbody tr[data-server]");
  const notice = await page.locator("#servers-notice").innerText();
  check(await rows.count() >= 1, `no database server is listed${notice ? `; the page says: ${notice}` : ""}`);
  const load = await rows.first().locator(".meter span").innerText();
  check(/\d+ (of \d+ )?tenants/.test(load), `the server's load is not shown: "${load}"`);
  await checkErrorsInWords(page);
  await shot(page, "admin_lists_database_server", "admin");
});

// A customer signs up and creates a tenant, signs out; a second customer signs up and
// sees none of it: not in the list, and its address says not found.
scenarios.customers_see_only_their_own = async () => withBrowser(async (page) => {
  const first = await signUp(page, "first");
  await shot(page, "customers_see_only_their_own", "first-signed-up");
  const id = uniqueId("own");
  await createTenantInForm(page, id, "customers_see_only_their_own");
  await page.locator(`tr[data-tenant="${id}"]`).waitFor();
  await shot(page, "customers_see_only_their_own", "first-has-tenant");
  await signOut(page);
  await shot(page, "customers_see_only_their_own", "signed-out");
  // Signed out, the dashboard asks for a sign-in.
  await page.goto(`${BASE}/dashboard.html`, { waitUntil: "commit" });
  await page.waitForURL(/login\.html\?next=dashboard\.html/);

  const second = await signUp(page, "second");
  check(second.email !== first.email, "the two customers are the same");
  await settled(page);
  check(await page.locator(`tr[data-tenant="${id}"]`).count() === 0, `the second customer sees ${id} in their list`);
  check(!(await page.locator("main").innerText()).includes(id), `the second customer's dashboard mentions ${id}`);
  await shot(page, "customers_see_only_their_own", "second-list");
  await gotoPage(page, `dashboard.html?tenant=${id}`);
  await page.locator("#detail-notice .alert").waitFor();
  const said = await page.locator("#detail-notice").innerText();
  check(/not found/i.test(said), `opening ${id} as another customer does not say not found: "${said}"`);
  check(await page.locator("#panel-overview dl").count() === 0, `${id}'s details are shown to another customer`);
  await checkErrorsInWords(page);
  await shot(page, "customers_see_only_their_own", "second-not-found");
  // The API agrees: 404, not 403, so that others' tenants are not even revealed.
  const { status } = await apiCall("GET", `/v1/tenants/${id}`, undefined, (await storedSession(page)).access_token);
  check(status === 404, `GET /v1/tenants/${id} as the second customer answered ${status}, not 404`);
});

// API keys: create one (its secret is shown once), it is listed by its first
// characters, it works as a credential, delete it (with a confirmation) and it stops.
scenarios.api_keys = async () => withBrowser(async (page) => {
  const customer = await newCustomer("keys");
  await signIn(page, customer);
  await page.locator("#site-nav a[href='apikeys.html']").click();
  await page.waitForURL(/apikeys\.html/);
  await settled(page);
  // A key without a name is refused in words.
  await page.locator("#create-key").click();
  check(await page.locator("#key-form-problem").isVisible(), "a key without a name is not explained");
  const name = `ci ${uniqueId("key")}`;
  await page.locator("#key-name").fill(name);
  await page.locator("#create-key").click();
  const box = page.locator("#new-key");
  await box.waitFor({ state: "visible" });
  const secret = await page.locator("#new-key-secret").inputValue();
  check(secret.length >= 20, `the new key's secret looks wrong: "${secret}"`);
  check(/only this once/i.test(await box.innerText()), "no warning that the secret is shown once");
  await page.locator("#copy-key").click();
  await page.waitForFunction(() => document.getElementById("copy-status").textContent.length > 0);
  await shot(page, "api_keys", "secret-shown");
  const row = page.locator("#api-keys tbody tr[data-key]", { hasText: name });
  await row.waitFor();
  const prefix = await row.getAttribute("data-prefix");
  check(prefix && secret.startsWith(prefix), `the key is not listed by the start of its secret (prefix "${prefix}")`);
  check(!(await row.innerText()).includes(secret), "the list shows the whole secret");
  // It works as a credential.
  const me = await apiCall("GET", "/v1/users/me", undefined, secret);
  check(me.status === 200 && me.json.email === customer.email, `the new key does not work as a credential: HTTP ${me.status}`);
  await page.locator("#key-done").click();
  check(!(await box.isVisible()), "the secret box stays open");
  check(await page.locator("#new-key-secret").inputValue() === "", "the secret stays in the page");
  await page.reload();
  await settled(page);
  await row.waitFor();
  check(!(await page.content()).includes(secret), "the secret is shown again after a reload");
  await shot(page, "api_keys", "listed");
  // Delete, with a confirmation.
  await row.locator("button[data-action=delete-key]").click();
  const dialog = page.locator("dialog[open]");
  await dialog.waitFor();
  check((await dialog.innerText()).includes(name), "the delete confirmation does not name the key");
  await shot(page, "api_keys", "confirm-delete");
  await dialog.locator("[data-role=confirm]").click();
  await page.waitForFunction((n) => ![...document.querySelectorAll("#api-keys tbody tr")].some((r) => r.innerText.includes(n)), name);
  await shot(page, "api_keys", "deleted");
  const after = await apiCall("GET", "/v1/users/me", undefined, secret);
  check(after.status === 401, `a deleted key still works: HTTP ${after.status}`);
});

// The admin console is for admins: a customer sees neither the menu entry nor the
// console; the admin sees both, lists users, disables and enables a customer.
scenarios.admin_only = async () => withBrowser(async (page) => {
  const customer = await newCustomer("notadmin");
  await signIn(page, customer);
  await page.locator("#site-nav").waitFor();
  await sleep(500); // the header is drawn again once GetCurrentUser answers
  check(await page.locator("#site-nav a[href='admin.html']").count() === 0, "a customer is offered the admin page");
  await gotoPage(page, "admin.html");
  await settled(page);
  const said = await page.locator("#notice").innerText();
  check(/admins only/i.test(said), `a customer opening admin.html is not told it is for admins: "${said}"`);
  check(await page.locator("#admin-console").count() === 0, "a customer is shown the admin console");
  await checkErrorsInWords(page);
  await shot(page, "admin_only", "customer");
  // The server refuses too.
  const { status } = await apiCall("GET", "/v1/users", undefined, customer.token);
  check(status === 403, `ListUsers as a customer answered HTTP ${status}, not 403`);
  await signOut(page);

  await signIn(page, adminAccount());
  await page.locator("#site-nav a[href='admin.html']").waitFor();
  await page.locator("#site-nav a[href='admin.html']").click();
  await page.waitForURL(/admin\.html/);
  await settled(page);
  check(await page.locator("#admin-console").isVisible(), "the admin is not shown the console");
  const row = page.locator(`#users tbody tr[data-user="${customer.session.user.name}"]`);
  await row.waitFor();
  check((await row.innerText()).includes(customer.email), "the users list does not show the customer's email");
  await page.locator("#audit-events tbody tr").first().waitFor();
  await shot(page, "admin_only", "admin");
  // Disable the customer (with a confirmation): they can no longer sign in.
  await row.locator("button[data-action=disable-user]").click();
  const dialog = page.locator("dialog[open]");
  await dialog.waitFor();
  check((await dialog.innerText()).includes(customer.name), "the disable confirmation does not name the user");
  await dialog.locator("[data-role=confirm]").click();
  await page.locator(`#users tbody tr[data-user="${customer.session.user.name}"][data-disabled=true]`).waitFor();
  const refused = await apiCall("POST", "/v1/auth:signIn", { email: customer.email, password: customer.password });
  check(refused.status === 403 || refused.status === 401, `a disabled customer can still sign in: HTTP ${refused.status}`);
  await shot(page, "admin_only", "disabled");
  await row.locator("button[data-action=enable-user]").click();
  await page.locator("dialog[open] [data-role=confirm]").click();
  await page.locator(`#users tbody tr[data-user="${customer.session.user.name}"][data-disabled=false]`).waitFor();
  await api("POST", "/v1/auth:signIn", { email: customer.email, password: customer.password });
  // The audit log filters by target.
  await page.locator("#a-target").fill(customer.session.user.name);
  await page.locator("#audit-filters button[type=submit]").click();
  await page.waitForFunction((u) => {
    const rows = [...document.querySelectorAll("#audit-events tbody tr")];
    return rows.length > 0 && rows.every((r) => r.innerText.includes(u));
  }, customer.session.user.name, { timeout: 15000 });
  await shot(page, "admin_only", "audit-filtered");
});

// Backups: back up a tenant from its Backups tab, follow the operation, restore it in
// place (the confirmation wants the tenant's id), and the restore succeeds.
scenarios.backups = async () => {
  const customer = await newCustomer("bk");
  const id = await createActiveTenant("e2e-bk", customer.token);
  await withBrowser(async (page) => {
    await signIn(page, customer);
    const row = page.locator(`tr[data-tenant="${id}"]`);
    await row.waitFor();
    await Promise.all([page.waitForURL(/tab=backups/), row.locator("[data-action=backups]").click()]);
    await settled(page);
    check((await page.locator("#tab-backups").getAttribute("aria-selected")) === "true", "the Backups tab is not open");
    await page.waitForFunction(() => !document.querySelector("#backups .loading"));
    const before = await page.locator("#backups tbody tr[data-backup]").count();
    await shot(page, "backups", "before");

    await page.locator("#backup-now").click();
    const made = await waitForOperationCard(page, '.op-card[data-kind="BACKUP"]', "backing up");
    await shot(page, "backups", "backing-up");
    await waitCardSucceeded(page, made.card, made.opName, "backing up", customer.token);
    await page.waitForFunction((n) => document.querySelectorAll("#backups tbody tr[data-backup]").length > n, before,
      { timeout: 15000 });
    const backupRow = page.locator("#backups tbody tr[data-state=COMPLETE]").first();
    await backupRow.waitFor({ timeout: 15000 });
    const text = await backupRow.innerText();
    check(/By hand/.test(text), `the backup's trigger is not shown: ${text}`);
    check(/\d+(\.\d+)? (bytes|KB|MB|GB)/.test(text), `the backup's size is not shown: ${text}`);
    await shot(page, "backups", "complete");

    // Downloading a part is for admins: the customer has no Download link; the admin
    // downloads the manifest, named tenant-backup-part.
    check((await backupRow.locator("[data-action=download]").count()) === 0, "a customer is offered a backup download");
    const completeName = await backupRow.getAttribute("data-backup");
    await withBrowser(async (adminPage) => {
      await signIn(adminPage, adminAccount(), { next: `dashboard.html?tenant=${encodeURIComponent(id)}&tab=backups` });
      const adminRow = adminPage.locator(`#backups tbody tr[data-backup="${completeName}"]`);
      await adminRow.waitFor();
      const link = adminRow.locator('button[data-action=download][data-part="manifest.json"]');
      const [dl] = await Promise.all([adminPage.waitForEvent("download"), link.click()]);
      const want = `${id}-${completeName.split("/").pop()}-manifest.json`;
      check(dl.suggestedFilename() === want, `the download is named ${dl.suggestedFilename()}, not ${want}`);
      const manifest = JSON.parse(readFileSync(await dl.path(), "utf8"));
      check(manifest && typeof manifest === "object", "the downloaded manifest is not a JSON object");
      await shot(adminPage, "backups", "admin-download");
    });

    // Restore in place: the confirmation wants the tenant's id; a new tenant id is checked.
    await backupRow.locator("button[data-action=restore]").click();
    const dialog = page.locator("dialog[open]");
    await dialog.waitFor();
    const confirm = dialog.locator("[data-role=confirm]");
    check(await confirm.isDisabled(), "an in-place restore can be confirmed without typing the tenant's id");
    await dialog.locator("#restore-new").check();
    await dialog.locator("#restore-target").fill("Bad_Id");
    check(await confirm.isDisabled(), "a restore into a bad tenant id can be confirmed");
    check(/lower-case/.test(await dialog.locator("#restore-target-status").innerText()), "a bad new tenant id is not explained");
    await dialog.locator("#restore-in-place").check();
    await dialog.locator("#restore-confirm").fill(id);
    check(!(await confirm.isDisabled()), "the in-place restore cannot be confirmed with the tenant's id typed");
    await shot(page, "backups", "confirm-restore");
    await confirm.click();
    const restored = await waitForOperationCard(page, '.op-card[data-kind="RESTORE"]', "restoring");
    await shot(page, "backups", "restoring");
    await waitCardSucceeded(page, restored.card, restored.opName, "restoring in place", customer.token);
    await waitTenantState(id, "ACTIVE", "", "after the restore", customer.token);
    await shot(page, "backups", "restored");

    // Delete the backup, with a confirmation; it leaves the list.
    const backupName = await backupRow.getAttribute("data-backup");
    await backupRow.locator("button[data-action=delete-backup]").click();
    const del = page.locator("dialog[open]");
    await del.waitFor();
    check(/cannot be restored/.test(await del.innerText()), "the delete confirmation does not say what is lost");
    await del.locator("[data-role=confirm]").click();
    await page.waitForFunction((n) => !document.querySelector(`#backups tr[data-backup="${n}"]`) ||
      document.querySelector(`#backups tr[data-backup="${n}"]`).dataset.state === "DELETING", backupName,
    { timeout: ACTIVE_TIMEOUT });
    await shot(page, "backups", "deleted");
  });
};

// The session renews itself: an access token refused with 401 is exchanged once for a
// new one, for all the calls waiting at that moment, and the page works without an
// error; a refresh token the platform refuses leads to the sign-in page.
scenarios.session_refresh = async () => withBrowser(async (page) => {
  const customer = await newCustomer("refresh");
  await signIn(page, customer);
  const refreshes = [];
  page.on("request", (r) => { if (r.url().endsWith("/v1/auth:refresh")) refreshes.push(r.url()); });
  // The access token goes bad (as if expired); the refresh token is still good.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("saasodoo.session"));
    s.access_token = "not-a-valid-token";
    localStorage.setItem("saasodoo.session", JSON.stringify(s));
  });
  await gotoPage(page, "dashboard.html");
  await settled(page);
  check(page.url().endsWith("/dashboard.html"), `a refused access token led away from the dashboard: ${page.url()}`);
  check(await page.locator("#tenants-notice .alert").count() === 0,
    `the dashboard shows an error after renewing: ${await page.locator("#tenants-notice").innerText()}`);
  check(refreshes.length === 1, `the session was renewed ${refreshes.length} times for the page's parallel calls, not once`);
  const renewed = await storedSession(page);
  check(renewed.access_token !== "not-a-valid-token", "the renewed access token was not kept");
  await shot(page, "session_refresh", "renewed");
  // Shortly before expiry, the token is renewed before the call.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("saasodoo.session"));
    s.access_token_expire_time = new Date(Date.now() + 5000).toISOString();
    s.obtained_at = Date.now() - 3600 * 1000; // an hour-long token with 5 s left
    localStorage.setItem("saasodoo.session", JSON.stringify(s));
  });
  await gotoPage(page, "apikeys.html");
  await settled(page);
  check(refreshes.length === 2, `an access token about to expire was not renewed first (${refreshes.length} renewals)`);
  // Both tokens refused: the sign-in page, which leads back afterwards.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("saasodoo.session"));
    s.access_token = "not-a-valid-token";
    s.refresh_token = "not-a-valid-refresh-token";
    localStorage.setItem("saasodoo.session", JSON.stringify(s));
  });
  await page.goto(`${BASE}/billing.html`, { waitUntil: "commit" });
  await page.waitForURL(/login\.html\?next=billing\.html/);
  check(!(await storedSession(page)), "a refused session is still kept");
  await shot(page, "session_refresh", "sign-in-again");
  await signIn(page, customer, { next: "billing.html" });
  check(page.url().endsWith("/billing.html"), `signing in again did not lead back: ${page.url()}`);
});

// --- main ----------------------------------------------------------------------------

if (args.includes("--list")) {
  console.log(Object.keys(scenarios).join("\n"));
  process.exit(0);
}
const name = opt("scenario", "");
if (!scenarios[name]) {
  console.error(`unknown scenario "${name}"; one of: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
currentScenario = name;
log(`scenario ${name} against ${BASE}, screenshots in ${OUT}`);
try {
  await scenarios[name]();
  log(`scenario ${name}: passed`);
  process.exit(0);
} catch (err) {
  console.error(`scenario ${name} FAILED: ${err instanceof Failure ? err.message : err.stack || err}`);
  process.exit(1);
}
