// The operator's console: platform status, database servers (load, register, drain),
// every tenant with filters, users (role, disable), recent operations and failures, the
// audit log. Shown to admins only (GetCurrentUser's role); the server refuses the
// calls to anyone else as well.
import { admin, monitoring, operations, requireSession, sessionUser, tenants, whoAmI } from "./api-client.js";
import {
  alertBox, busy, clear, confirmDialog, el, errorBox, formatTime, notify, notifyError, operationBadge,
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

// --- users ---------------------------------------------------------------------------

let usersToken = "";
let me = null;

function userFilter(form) {
  const parts = [];
  if (form.role.value) parts.push(`role = ${form.role.value}`);
  if (form.state.value) parts.push(`disabled = ${form.state.value}`);
  return parts.join(" AND ");
}

function userRow(u) {
  const id = shortName(u.name);
  const label = u.display_name || u.email || id;
  const self = me && me.name === u.name;
  const msg = el("div", { "aria-live": "polite" });
  const roleSelect = el("select", { "aria-label": `Role of ${label}`, disabled: self, dataset: { field: "role" } },
    el("option", { value: "CUSTOMER", selected: u.role === "CUSTOMER" }, "Customer"),
    el("option", { value: "ADMIN", selected: u.role === "ADMIN" }, "Admin"));
  const roleSave = el("button", { class: "btn btn-small", type: "button", disabled: true, dataset: { action: "save-role" },
    "aria-label": `Save the role of ${label}` }, "Save");
  roleSelect.addEventListener("change", () => { roleSave.disabled = roleSelect.value === u.role; });
  roleSave.addEventListener("click", async () => {
    const role = roleSelect.value;
    const ok = await confirmDialog({
      title: role === "ADMIN" ? `Make ${label} an admin?` : `Make ${label} a customer?`,
      message: role === "ADMIN"
        ? `${label} can then see and change every tenant, user and database server.`
        : `${label} then sees only their own tenants and can no longer use this console.`,
      confirmLabel: role === "ADMIN" ? "Make admin" : "Make customer",
    });
    if (!ok) {
      roleSelect.value = u.role;
      roleSave.disabled = true;
      return;
    }
    try {
      await busy(roleSave, () => admin.updateUser(u.name, { role }, ["role"], u.etag));
      loadUsers();
    } catch (err) {
      clear(msg).append(errorBox(err));
    }
  });
  const toggle = el("button", { class: `btn btn-small${u.disabled ? "" : " btn-link"}`, type: "button", disabled: self,
    dataset: { action: u.disabled ? "enable-user" : "disable-user" },
    "aria-label": `${u.disabled ? "Enable" : "Disable"} ${label}` }, u.disabled ? "Enable" : "Disable");
  toggle.addEventListener("click", async () => {
    const ok = await confirmDialog(u.disabled
      ? { title: `Enable ${label}?`, message: `${label} can sign in and use the platform again.`, confirmLabel: "Enable" }
      : { title: `Disable ${label}?`,
        message: `${label} can no longer sign in, and their sessions and API keys stop working. Their tenants keep running.`,
        confirmLabel: "Disable", danger: true });
    if (!ok) return;
    try {
      await busy(toggle, () => admin.updateUser(u.name, { disabled: !u.disabled }, ["disabled"], u.etag));
      loadUsers();
    } catch (err) {
      clear(msg).append(errorBox(err));
    }
  });
  return el("tr", { dataset: { user: u.name, role: u.role, disabled: String(!!u.disabled) } },
    td("User", el("span", { class: "tenant-name" }, u.display_name || id, self ? " (you)" : ""),
      el("span", { class: "sub" }, u.email || id)),
    td("Role", el("div", { class: "actions" }, roleSelect, roleSave)),
    td("Account", el("span", { class: `badge ${u.disabled ? "badge-warn" : "badge-ok"}` }, u.disabled ? "Disabled" : "Active")),
    td("Created", formatTime(u.create_time)),
    td("Last sign-in", u.last_sign_in_time ? formatTime(u.last_sign_in_time) : "Never"),
    el("td", { class: "actions-cell" }, el("div", { class: "actions" }, toggle), msg));
}

async function loadUsers({ append = false } = {}) {
  const form = document.getElementById("user-filters");
  const body = document.querySelector("#users tbody");
  const notice = document.getElementById("users-notice");
  try {
    const resp = await admin.listUsers({ pageSize: 50, pageToken: append ? usersToken : "", filter: userFilter(form) });
    if (!append) clear(body);
    clear(notice);
    for (const u of resp.users || []) body.append(userRow(u));
    if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No user matches.")));
    usersToken = resp.next_page_token || "";
    document.getElementById("users-more-wrap").hidden = !usersToken;
  } catch (err) {
    if (!append) clear(body);
    notifyError(notice, err, "Users cannot be shown right now.");
  }
}

// --- audit log -----------------------------------------------------------------------

const AUDIT_PAGE = 25;
// Page tokens of the pages shown so far: auditPages[i] opens page i + 1.
let auditPages = [""];
let auditIndex = 0;
let auditNext = "";

function quoted(v) {
  return `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function auditFilter() {
  const form = document.getElementById("audit-filters");
  const parts = [];
  let who = form.principal.value.trim();
  if (who) {
    if (!who.includes("/")) who = `users/${who}`;
    parts.push(`principal = ${quoted(who)}`);
  }
  const method = form.method.value.trim();
  if (method) parts.push(`method = ${quoted(method)}`);
  const target = form.target.value.trim();
  if (target) parts.push(`target = ${quoted(target)}`);
  return parts.join(" AND ");
}

async function loadAudit() {
  const box = document.getElementById("audit");
  const pager = document.getElementById("audit-pager");
  const problem = document.getElementById("audit-filter-problem");
  try {
    const resp = await admin.listAuditEvents({ pageSize: AUDIT_PAGE, pageToken: auditPages[auditIndex],
      filter: auditFilter() });
    problem.hidden = true;
    const events = resp.audit_events || [];
    auditNext = resp.next_page_token || "";
    clear(box);
    if (!events.length) {
      box.append(el("p", { class: "empty" }, auditFilter() ? "No recorded call matches the filter." : "Nothing recorded yet."));
    } else {
      const tbody = el("tbody");
      for (const ev of events) {
        tbody.append(el("tr", { dataset: { event: ev.name, result: ev.result } },
          td("When", formatTime(ev.create_time)),
          td("Who", ev.principal || "—", ev.client_address ? el("span", { class: "sub" }, ev.client_address) : null),
          td("What", el("span", { class: "mono" }, String(ev.method || "").split("/").pop()),
            el("span", { class: "sub mono" }, ev.method || "")),
          td("Target", ev.target || "—"),
          td("Result", el("span", { class: `badge ${ev.result === "OK" ? "badge-ok" : "badge-warn"}` }, ev.result || "?"))));
      }
      box.append(el("div", { class: "table-wrap" }, el("table", { class: "data stack", id: "audit-events" },
        el("thead", {}, el("tr", {}, ["When", "Who", "What", "Target", "Result"].map((h) => el("th", { scope: "col" }, h)))),
        tbody)));
    }
    pager.hidden = auditIndex === 0 && !auditNext;
    document.getElementById("audit-page").textContent = `Page ${auditIndex + 1}`;
    document.getElementById("audit-prev").disabled = auditIndex === 0;
    document.getElementById("audit-next").disabled = !auditNext;
  } catch (err) {
    if (err.codeName === "INVALID_ARGUMENT") {
      problem.textContent = err.sentence;
      problem.hidden = false;
      clear(box);
      return;
    }
    clear(box).append(errorBox(err, "The audit log cannot be shown right now."));
  }
}

function setupAudit() {
  document.getElementById("audit-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    auditPages = [""];
    auditIndex = 0;
    busy(e.submitter || e.target.querySelector("button"), loadAudit);
  });
  document.getElementById("audit-next").addEventListener("click", (e) => {
    if (!auditNext) return;
    auditPages[auditIndex + 1] = auditNext;
    auditIndex += 1;
    busy(e.currentTarget, loadAudit);
  });
  document.getElementById("audit-prev").addEventListener("click", (e) => {
    if (auditIndex === 0) return;
    auditIndex -= 1;
    busy(e.currentTarget, loadAudit);
  });
  document.getElementById("audit-refresh").addEventListener("click", (e) => busy(e.currentTarget, loadAudit));
}

// --- start ---------------------------------------------------------------------------

function startConsole() {
  document.getElementById("tenant-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(e.submitter || e.target.querySelector("button"), () => loadTenants());
  });
  document.getElementById("user-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(e.submitter || e.target.querySelector("button"), () => loadUsers());
  });
  document.getElementById("tenants-more").addEventListener("click", (e) => busy(e.currentTarget, () => loadTenants({ append: true })));
  document.getElementById("users-more").addEventListener("click", (e) => busy(e.currentTarget, () => loadUsers({ append: true })));
  document.getElementById("users-refresh").addEventListener("click", (e) => busy(e.currentTarget, () => loadUsers()));
  document.getElementById("servers-refresh").addEventListener("click", (e) => busy(e.currentTarget, loadServers));
  document.getElementById("ops-refresh").addEventListener("click", (e) => busy(e.currentTarget, loadOperations));
  setupServerForm();
  setupAudit();
  loadStatus();
  loadServers();
  loadTenants();
  loadUsers();
  loadOperations();
  loadAudit();
}

// Admins get the console; anyone else a polite word, and none of the admin calls.
async function start() {
  const check = document.getElementById("admin-check");
  const grid = document.getElementById("admin-console");
  const notice = document.getElementById("notice");
  try {
    me = await whoAmI();
  } catch (err) {
    // Fall back to the user the session was opened with; the server decides anyway.
    me = sessionUser();
    if (!me || !me.role) {
      check.remove();
      grid.remove();
      notifyError(notice, err, "Your access cannot be checked right now.");
      return;
    }
  }
  check.remove();
  if (me.role !== "ADMIN") {
    grid.remove();
    notify(notice, "info", "This console is for the platform's administrators only. Your tenants, billing and API keys are "
      + "on the dashboard.", { title: "Admins only" });
    notice.append(el("p", {}, el("a", { class: "btn btn-primary", href: "dashboard.html" }, "Go to your dashboard")));
    return;
  }
  grid.hidden = false;
  startConsole();
}

if (requireSession()) start();
