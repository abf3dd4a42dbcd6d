// The operator's console: platform status, database servers (load, register, drain),
// every tenant with filters, recent operations and failures, the audit log.
import { admin, monitoring, operations, tenants } from "./api-client.js";
import {
  alertBox, busy, clear, confirmDialog, el, errorBox, formatTime, notifyError, operationBadge,
  operationTitle, shortName, td, tenantBadge, titleCase,
} from "./components.js";
import { RESOURCE_ID_PATTERN } from "./validation.js";

// --- platform status -----------------------------------------------------------------

async function loadStatus() {
  const box = document.getElementById("status");
  try {
    const s = await monitoring.platformStatus();
    clear(box).append(
      el("div", { class: "figures" },
        el("div", {}, el("strong", {}, String(s.tenants_total || 0)), el("span", {}, "tenants")),
        el("div", {}, el("strong", {}, String(s.tenants_active || 0)), el("span", {}, "active")),
        el("div", {}, el("strong", {}, String(s.operations_running || 0)), el("span", {}, "operations running")),
        el("div", {}, el("strong", {}, s.version || "?"), el("span", {}, `version, up since ${formatTime(s.start_time)}`))),
      el("ul", { class: "status-list" }, (s.components || []).map((c) =>
        el("li", {}, el("span", {}, c.component, c.detail ? el("span", { class: "sub" }, c.detail) : null),
          el("span", { class: `badge ${c.healthy ? "badge-ok" : "badge-bad"}` }, c.healthy ? "Healthy" : "Failing")))));
  } catch (err) {
    clear(box).append(errorBox(err, "Platform status cannot be shown right now."));
  }
}

// --- database servers ----------------------------------------------------------------

function loadMeter(s) {
  const cap = s.capacity || 0;
  const n = s.tenant_count || 0;
  const meter = el("meter", { min: 0, max: Math.max(cap, 1), value: n, low: cap * 0.7, high: cap * 0.9,
    optimum: 0, "aria-label": `${n} of ${cap} tenants` });
  return el("div", { class: "meter" }, meter, el("span", {}, cap ? `${n} of ${cap} tenants` : `${n} tenants`));
}

function serverRow(s) {
  const id = shortName(s.name);
  const accepting = s.accepting_tenants;
  const toggle = el("button", { class: "btn btn-small", type: "button", dataset: { action: accepting ? "drain" : "undrain" },
    "aria-label": `${accepting ? "Drain" : "Reopen"} ${id}` }, accepting ? "Drain" : "Reopen");
  const msg = el("div", { "aria-live": "polite" });
  toggle.addEventListener("click", async () => {
    if (accepting) {
      const ok = await confirmDialog({ title: `Drain ${id}?`,
        message: "No new tenants are placed on this server. Tenants already there stay until you move them.",
        confirmLabel: "Drain" });
      if (!ok) return;
    }
    try {
      await busy(toggle, () => admin.updateDatabaseServer(s.name, { accepting_tenants: !accepting },
        ["accepting_tenants"], s.etag));
      loadServers();
    } catch (err) {
      clear(msg).append(errorBox(err));
    }
  });
  return el("tr", { dataset: { server: id } },
    td("Server", el("span", { class: "tenant-name" }, s.display_name || id), el("span", { class: "sub" }, id)),
    td("Kind", titleCase(s.kind === "KIND_UNSPECIFIED" ? "" : s.kind), s.tenant ? el("span", { class: "sub" }, shortName(s.tenant)) : null),
    td("Address", el("span", { class: "mono" }, `${s.host}:${s.port}`)),
    td("Load", loadMeter(s)),
    td("New tenants", el("span", { class: `badge ${accepting ? "badge-ok" : "badge-warn"}` }, accepting ? "Accepting" : "Drained")),
    el("td", { class: "actions-cell" }, el("div", { class: "actions" }, toggle), msg));
}

async function loadServers() {
  const body = document.querySelector("#db-servers tbody");
  const notice = document.getElementById("servers-notice");
  try {
    const resp = await admin.listDatabaseServers();
    clear(body);
    clear(notice);
    const list = resp.database_servers || [];
    if (!list.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No database servers are registered.")));
    for (const s of list) body.append(serverRow(s));
  } catch (err) {
    clear(body);
    notifyError(notice, err, "Database servers cannot be shown right now.");
  }
}

function setupServerForm() {
  const form = document.getElementById("server-form");
  const problem = document.getElementById("server-form-problem");
  const say = (text) => { problem.textContent = text; problem.hidden = !text; };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const id = form.elements.server_id.value.trim();
    if (!RESOURCE_ID_PATTERN.test(id)) {
      say("The id must be 3 to 40 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen.");
      form.elements.server_id.focus();
      return;
    }
    if (!form.host.value.trim()) {
      say("Enter the server's host name.");
      form.host.focus();
      return;
    }
    say("");
    const server = {
      display_name: form.display_name.value.trim(), host: form.host.value.trim(),
      port: Number(form.port.value) || 5432, kind: form.kind.value, capacity: Number(form.capacity.value) || 0,
      admin_conninfo: form.admin_conninfo.value, accepting_tenants: true,
    };
    const button = form.querySelector("button[type=submit]");
    try {
      await busy(button, () => admin.createDatabaseServer(id, server));
      form.reset();
      clear(document.getElementById("servers-notice")).append(alertBox("ok", `Database server ${id} is registered.`));
      loadServers();
    } catch (err) {
      say(err.sentence);
    }
  });
}

// --- tenants -------------------------------------------------------------------------

let tenantToken = "";

function tenantFilter(form) {
  const parts = [];
  if (form.state.value) parts.push(`state = ${form.state.value}`);
  const plan = form.plan.value.trim();
  if (plan) parts.push(`plan = "${plan.startsWith("plans/") ? plan : `plans/${plan}`}"`);
  const owner = form.owner.value.trim();
  if (owner) parts.push(`owner = "${owner.startsWith("users/") ? owner : `users/${owner}`}"`);
  if (form.strategy.value) parts.push(`database_strategy = ${form.strategy.value}`);
  return parts.join(" AND ");
}

async function loadTenants({ append = false } = {}) {
  const form = document.getElementById("tenant-filters");
  const body = document.querySelector("#all-tenants tbody");
  const notice = document.getElementById("tenants-notice");
  try {
    const resp = await tenants.list({ pageSize: 50, pageToken: append ? tenantToken : "", filter: tenantFilter(form),
      showDeleted: form.deleted.checked });
    if (!append) clear(body);
    clear(notice);
    for (const t of resp.tenants || []) {
      const id = shortName(t.name);
      body.append(el("tr", { dataset: { tenant: id, state: t.state } },
        td("Tenant", el("span", { class: "tenant-name" }, t.display_name || id), el("span", { class: "sub" }, id)),
        td("Owner", t.owner ? shortName(t.owner) : "—"),
        td("Plan", titleCase(shortName(t.plan))),
        td("State", tenantBadge(t.state), t.state_reason ? el("span", { class: "sub" }, t.state_reason) : null),
        td("Database server", t.database_server ? shortName(t.database_server) : "—"),
        td("Created", formatTime(t.create_time))));
    }
    if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No tenant matches.")));
    document.getElementById("tenant-count").textContent =
      `${resp.total_size || 0} tenant${resp.total_size === 1 ? "" : "s"} match`;
    tenantToken = resp.next_page_token || "";
    document.getElementById("tenants-more-wrap").hidden = !tenantToken;
  } catch (err) {
    if (!append) clear(body);
    notifyError(notice, err, "Tenants cannot be shown.");
  }
}

// --- operations ----------------------------------------------------------------------

async function loadOperations() {
  const body = document.querySelector("#operations tbody");
  const notice = document.getElementById("ops-notice");
  const failures = document.getElementById("failures");
  try {
    const resp = await operations.list({ pageSize: 100 });
    const ops = resp.operations || [];
    clear(body);
    clear(notice);
    for (const op of ops.slice(0, 25)) {
      body.append(el("tr", { dataset: { operation: shortName(op.name), state: op.state } },
        td("Started", formatTime(op.create_time)),
        td("Work", operationTitle(op), el("span", { class: "sub mono" }, shortName(op.name))),
        td("State", operationBadge(op.state)),
        td("Progress", `${op.progress_percent || 0}% · ${op.step || ""}`,
          op.error && op.error.message ? el("span", { class: "sub error-text" }, op.error.message) : null)));
    }
    if (!ops.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No operations yet.")));
    const failed = ops.filter((op) => op.state === "FAILED").slice(0, 20);
    clear(failures);
    if (!failed.length) {
      failures.append(el("p", { class: "empty" }, "No failures among the last 100 operations."));
    } else {
      failures.append(el("ul", {}, failed.map((op) => el("li", { dataset: { operation: shortName(op.name) } },
        el("strong", {}, operationTitle(op)), ` (${formatTime(op.update_time)}): `,
        (op.error && op.error.message) || "no reason given"))));
    }
  } catch (err) {
    clear(body);
    notifyError(notice, err, "Operations cannot be shown.");
    clear(failures).append(errorBox(err));
  }
}

// --- audit log -----------------------------------------------------------------------

async function loadAudit() {
  const box = document.getElementById("audit");
  try {
    const resp = await admin.listAuditEvents({ pageSize: 25 });
    const events = resp.audit_events || [];
    clear(box);
    if (!events.length) {
      box.append(el("p", { class: "empty" }, "Nothing recorded yet."));
      return;
    }
    const tbody = el("tbody");
    for (const ev of events) {
      tbody.append(el("tr", {}, td("When", formatTime(ev.create_time)), td("Who", shortName(ev.principal) || "—"),
        td("What", el("span", { class: "mono" }, ev.method.split("/").pop())), td("Target", ev.target || "—"),
        td("Result", ev.result)));
    }
    box.append(el("div", { class: "table-wrap" }, el("table", { class: "data stack" },
      el("thead", {}, el("tr", {}, ["When", "Who", "What", "Target", "Result"].map((h) => el("th", { scope: "col" }, h)))),
      tbody)));
  } catch (err) {
    clear(box).append(errorBox(err, "The audit log cannot be shown right now."));
  }
}

// --- start ---------------------------------------------------------------------------

document.getElementById("tenant-filters").addEventListener("submit", (e) => {
  e.preventDefault();
  busy(e.submitter || e.target.querySelector("button"), () => loadTenants());
});
document.getElementById("tenants-more").addEventListener("click", (e) => busy(e.currentTarget, () => loadTenants({ append: true })));
document.getElementById("servers-refresh").addEventListener("click", (e) => busy(e.currentTarget, loadServers));
document.getElementById("ops-refresh").addEventListener("click", (e) => busy(e.currentTarget, loadOperations));
setupServerForm();
loadStatus();
loadServers();
loadTenants();
loadOperations();
loadAudit();
