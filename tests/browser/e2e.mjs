// Browser end-to-end scenarios for the saasodoo frontend, in Debian's Chromium driven by
// playwright-core, against a running saasodoo-gateway (and the server behind it).
//
//   node e2e.mjs --scenario NAME [--base-url http://127.0.0.1:8080] [--out DIR]
//   node e2e.mjs --list
//
// Environment: SAASODOO_E2E_BASE_URL, SAASODOO_E2E_OUT (screenshots), SAASODOO_CHROMIUM
// (default /usr/bin/chromium), SAASODOO_E2E_ACTIVE_TIMEOUT (seconds to wait for a tenant
// to become ACTIVE, default 120), SAASODOO_E2E_PICKUP_TIMEOUT (seconds an operation may
// stay PENDING before the run concludes nothing is working on it, default 20).
//
// A scenario fails on any console error or uncaught exception in a page, except the
// browser's own "Failed to load resource" line for an API call (/v1/...) that answered
// with an error status: those answers are part of the API, and the pages show them in
// words (which the scenarios check).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
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

const PAGES = ["index.html", "login.html", "register.html", "dashboard.html", "tenant-create.html",
  "billing.html", "admin.html"];
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

async function api(method, path, body) {
  const resp = await fetch(BASE + path, {
    method, headers: body ? { "Content-Type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined,
  });
  const text = await resp.text();
  const json = text ? JSON.parse(text) : {};
  if (!resp.ok) throw new Failure(`${method} ${path} answered HTTP ${resp.status}: ${json.message || text}`);
  return json;
}

// Waits until the tenant reaches state, failing early when its operation is never
// picked up (nothing works on operations) or fails.
async function waitTenantState(tenantId, state, opName, what) {
  const started = Date.now();
  for (;;) {
    const t = await api("GET", `/v1/tenants/${tenantId}`);
    if (t.state === state) return t;
    if (t.state === "FAILED") throw new Failure(`${what}: tenant ${tenantId} is FAILED: ${t.state_reason}`);
    if (opName) {
      const op = await api("GET", `/v1/${opName}`);
      if (op.done && op.state !== "SUCCEEDED") {
        throw new Failure(`${what}: ${opName} ended ${op.state}: ${op.error ? op.error.message : ""}`);
      }
      if (op.state === "PENDING" && Date.now() - started > PICKUP_TIMEOUT) {
        throw new Failure(`${what}: ${opName} (${op.kind}) is still PENDING ("${op.step}") after ` +
          `${PICKUP_TIMEOUT / 1000}s: nothing is running the platform's operations`);
      }
    }
    if (Date.now() - started > ACTIVE_TIMEOUT) {
      throw new Failure(`${what}: tenant ${tenantId} is ${t.state}, not ${state}, after ${ACTIVE_TIMEOUT / 1000}s`);
    }
    await sleep(500);
  }
}

async function createActiveTenant(prefix) {
  const id = uniqueId(prefix);
  const op = await api("POST", "/v1/tenants", { tenant_id: id, tenant: { plan: "plans/basic", display_name: `E2E ${id}` } });
  await waitTenantState(id, "ACTIVE", op.name, `provisioning ${id} through the API`);
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

// --- scenarios -----------------------------------------------------------------------

const scenarios = {};

// Every page renders at desktop and phone width: header, a heading, no loading left,
// errors in words, nothing wider than a phone, keyboard reachable.
scenarios.pages = async () => withBrowser(async (page) => {
  for (const [label, size] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(size);
    for (const p of PAGES) {
      await gotoPage(page, p);
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
  }
  // A failed sign-in is explained in a sentence (whatever the platform answers).
  await page.setViewportSize(DESKTOP);
  await gotoPage(page, "login.html");
  await page.locator("#email").fill("nobody@example.com");
  await page.locator("#password").fill("not-the-password");
  await page.locator("#login-form button[type=submit]").click();
  await page.locator("#notice .alert").waitFor();
  await checkErrorsInWords(page);
  await shot(page, "pages", "login-refused");

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
  await gotoPage(page, "tenant-create.html");
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

// Create a tenant in the form and follow it on the dashboard until it is ACTIVE.
scenarios.create_watch_active = async () => withBrowser(async (page) => {
  const id = uniqueId("e2e");
  await gotoPage(page, "tenant-create.html");
  await settled(page);
  await page.locator("#tenant-id").fill(id);
  await page.locator("#display-name").fill("End To End Ltd");
  await choosePlan(page);
  await shot(page, "create_watch_active", "form");
  await Promise.all([page.waitForURL(/dashboard\.html\?operation=/), page.locator("#create-button").click()]);
  const opName = new URL(page.url()).searchParams.get("operation");
  check(/^operations\//.test(opName), `the dashboard was not given the operation: ${page.url()}`);
  const card = page.locator(`.op-card[data-operation="${opName}"]`);
  await card.waitFor();
  check(await card.locator("progress").count() === 1, "no progress bar for the running operation");
  const row = page.locator(`tr[data-tenant="${id}"]`);
  await row.waitFor();
  await shot(page, "create_watch_active", "progress");

  // Follow the page while the tenant is provisioned; the API tells us if nothing runs it.
  const seen = new Set();
  const started = Date.now();
  const apiWait = waitTenantState(id, "ACTIVE", opName, "create in the browser");
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
  const t = await api("GET", `/v1/tenants/${id}`);
  check((await open.getAttribute("href")) === t.url, "the open link is not the tenant's url");
  await shot(page, "create_watch_active", "active");
});

// Suspend (with a confirmation naming the tenant) and resume from the dashboard.
scenarios.suspend_resume = async () => {
  const id = await createActiveTenant("e2e-sr");
  await withBrowser(async (page) => {
    await gotoPage(page, "dashboard.html");
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
    const t = await api("GET", `/v1/tenants/${id}`);
    check(t.state === "ACTIVE", `the API says ${t.state} after resuming`);
  });
};

// Delete: the confirmation names the tenant and wants its id typed.
scenarios.delete = async () => {
  const id = await createActiveTenant("e2e-del");
  await withBrowser(async (page) => {
    await gotoPage(page, "dashboard.html");
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
    const t = await api("GET", `/v1/tenants/${id}`).catch(() => ({ state: "DELETED" }));
    check(t.state === "DELETED", `the API says ${t.state} after deleting`);
  });
};

// The admin page lists the database server(s) with their load.
scenarios.admin_lists_database_server = async () => withBrowser(async (page) => {
  await gotoPage(page, "admin.html");
  await settled(page);
  const rows = page.locator("#db-servers tbody tr[data-server]");
  const notice = await page.locator("#servers-notice").innerText();
  check(await rows.count() >= 1, `no database server is listed${notice ? `; the page says: ${notice}` : ""}`);
  const load = await rows.first().locator(".meter span").innerText();
  check(/\d+ (of \d+ )?tenants/.test(load), `the server's load is not shown: "${load}"`);
  await checkErrorsInWords(page);
  await shot(page, "admin_lists_database_server", "admin");
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
