// The customer's dashboard: tenants with their state, and live progress of the work
// running on them (WatchOperation, read as newline-delimited JSON while it arrives).
// With ?tenant=ID it shows that tenant alone, with an Overview and a Backups tab
// (&tab=backups opens the latter).
import { getSession, operations, requireSession, sessionUser, tenants } from "./api-client.js";
import { backupsTab } from "./backups.js";
import {
  alertBox, busy, clear, confirmDialog, el, errorBox, formatTime, notify, notifyError, operationBadge,
  operationTitle, progressBar, shortName, td, tenantBadge, tenantOf, titleCase,
} from "./components.js";
import { TENANT_ID_PATTERN } from "./validation.js";

const tbody = document.querySelector("#tenants tbody");
const notice = document.getElementById("notice");
const tenantsNotice = document.getElementById("tenants-notice");
const opsSection = document.getElementById("ops-section");
const opsList = document.getElementById("ops");
const moreWrap = document.getElementById("more-wrap");

const params = new URLSearchParams(location.search);
const created = params.get("created");
const detailId = params.get("tenant");
const watchers = new Map(); // operation name -> { card, controller }
let nextPageToken = "";
let loading = false;

function ownerFilter() {
  const s = getSession();
  return s && s.user && s.user.name ? `owner = "${s.user.name}"` : "";
}

// --- tenants -------------------------------------------------------------------------

function actionButton(action, label, tenant, handler, cls = "btn btn-small") {
  const id = shortName(tenant.name);
  return el("button", { class: cls, type: "button", dataset: { action }, "aria-label": `${label} ${id}`,
    onclick: (e) => handler(tenant, e.currentTarget) }, label);
}

function tenantRow(t) {
  const id = shortName(t.name);
  const actions = el("div", { class: "actions" });
  if (t.state === "ACTIVE" && t.url) {
    actions.append(el("a", { class: "btn btn-small btn-primary", href: t.url, target: "_blank", rel: "noopener",
      dataset: { action: "open" }, "aria-label": `Open ${id}` }, "Open"));
  }
  // Suspending, resuming and moving a tenant are the operators' decisions.
  const user = sessionUser();
  if (user && user.role === "ADMIN") {
    if (t.state === "ACTIVE") actions.append(actionButton("suspend", "Suspend", t, suspend));
    if (t.state === "SUSPENDED") actions.append(actionButton("resume", "Resume", t, resume));
    if (t.state === "ACTIVE" && t.database_strategy !== "DEDICATED") {
      actions.append(actionButton("migrate", "Move to dedicated", t, migrate));
    }
  }
  if (t.state !== "DELETED") {
    actions.append(el("a", { class: "btn btn-small", href: detailHref(id, "backups"), dataset: { action: "backups" },
      "aria-label": `Backups of ${id}` }, "Backups"));
  }
  if (!["DELETING", "DELETED"].includes(t.state)) {
    actions.append(actionButton("delete", "Delete", t, remove, "btn btn-small btn-link"));
  }
  const state = el("div", {}, tenantBadge(t.state));
  if (t.state_reason) state.append(el("span", { class: "state-reason" }, t.state_reason));
  return el("tr", { dataset: { tenant: id, state: t.state } },
    td("Tenant", el("a", { class: "tenant-name", href: detailHref(id) }, t.display_name || id),
      el("span", { class: "sub tenant-id" }, id)),
    td("Plan", titleCase(shortName(t.plan))),
    td("State", state),
    td("Database", titleCase(t.database_strategy === "DATABASE_STRATEGY_UNSPECIFIED" ? "" : t.database_strategy)),
    td("Created", formatTime(t.create_time)),
    el("td", { class: "actions-cell" }, actions));
}

async function loadTenants({ append = false } = {}) {
  if (loading) return;
  loading = true;
  try {
    const resp = await tenants.list({ pageSize: 50, pageToken: append ? nextPageToken : "", filter: ownerFilter() });
    if (!append) clear(tbody);
    clear(tenantsNotice);
    for (const t of resp.tenants || []) tbody.append(tenantRow(t));
    if (!tbody.children.length) {
      tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No tenants yet. ",
        el("a", { href: "tenant-create.html" }, "Create your first one"), ".")));
    }
    nextPageToken = resp.next_page_token || "";
    moreWrap.hidden = !nextPageToken;
  } catch (err) {
    if (!append) clear(tbody);
    notifyError(tenantsNotice, err, "Your tenants cannot be shown right now.");
  } finally {
    loading = false;
  }
}

// --- operations ----------------------------------------------------------------------

function outcomeSentence(op) {
  const id = tenantOf(op.target);
  if (op.state === "SUCCEEDED") {
    switch (op.kind) {
      case "CREATE_TENANT": return `Tenant ${id} is ready.`;
      case "SUSPEND_TENANT": return `Tenant ${id} is suspended.`;
      case "RESUME_TENANT": return `Tenant ${id} is running again.`;
      case "DELETE_TENANT": return `Tenant ${id} is deleted.`;
      case "MIGRATE_TENANT": return `Tenant ${id} has moved.`;
      case "BACKUP": return `The backup of ${id} is done.`;
      case "RESTORE": return op.result && tenantOf(op.result) !== id
        ? `The backup is restored into tenant ${tenantOf(op.result)}.`
        : `Tenant ${id} is restored.`;
      default: return `${operationTitle(op)}: done.`;
    }
  }
  if (op.state === "CANCELLED") return `${operationTitle(op)} was cancelled.`;
  const why = op.error && op.error.message ? op.error.message : "the platform gave no reason";
  return `${operationTitle(op)} failed: ${why}`;
}

function followOperation(op) {
  if (watchers.has(op.name)) return;
  opsSection.hidden = false;
  const bar = progressBar(op);
  const badge = el("span", {}, operationBadge(op.state));
  const result = el("div", { "aria-live": "polite" });
  const cancel = el("button", { class: "btn btn-small", type: "button", dataset: { action: "cancel-operation" } }, "Cancel");
  const card = el("article", { class: "card op-card", dataset: { operation: op.name, target: tenantOf(op.target), kind: op.kind } },
    el("div", { class: "title" }, el("strong", {}, operationTitle(op)), badge),
    bar, result, el("div", { class: "actions" }, cancel));
  opsList.prepend(card);
  const controller = new AbortController();
  watchers.set(op.name, { card, controller });

  cancel.addEventListener("click", async () => {
    try {
      await busy(cancel, () => operations.cancel(op.name));
    } catch (err) {
      clear(result).append(errorBox(err, "The work could not be cancelled."));
    }
  });

  const update = (o) => {
    bar.update(o);
    badge.replaceChildren(operationBadge(o.state));
    card.dataset.state = o.state;
  };

  const finish = (o) => {
    update(o);
    cancel.remove();
    card.dataset.done = "true";
    clear(result).append(alertBox(o.state === "SUCCEEDED" ? "ok" : o.state === "CANCELLED" ? "info" : "error",
      outcomeSentence(o)));
    const dismiss = el("button", { class: "btn btn-small", type: "button", dataset: { action: "dismiss" } }, "Dismiss");
    dismiss.addEventListener("click", () => {
      card.remove();
      watchers.delete(op.name);
      if (!opsList.children.length) opsSection.hidden = true;
    });
    card.querySelector(".actions").append(dismiss);
    if (created && tenantOf(o.target) === created) clear(notice);
    document.dispatchEvent(new CustomEvent("saasodoo:operation-done", { detail: o }));
    refreshView();
  };

  (async () => {
    let current = op;
    for (let attempt = 0; attempt < 6 && !controller.signal.aborted; attempt++) {
      try {
        const last = await operations.watch(op.name, (o) => {
          current = o;
          update(o);
        }, { signal: controller.signal });
        if (last && last.done) return finish(last);
        // The stream ended early (server restart, proxy): read the operation and go on.
        current = await operations.get(op.name);
        if (current.done) return finish(current);
      } catch (err) {
        if (err && err.name === "AbortError") return;
        if (err.codeName === "NOT_FOUND" || err.codeName === "INVALID_ARGUMENT" || attempt === 5) {
          clear(result).append(errorBox(err, "The progress of this work cannot be followed."));
          return;
        }
      }
      await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    }
    update(current);
  })();
}

async function loadRunningOperations() {
  const wanted = new URLSearchParams(location.search).get("operation");
  if (wanted && /^operations\/[A-Za-z0-9-]+$/.test(wanted)) {
    try {
      followOperation(await operations.get(wanted));
    } catch (err) {
      notifyError(notice, err, "The work you started cannot be followed.");
    }
  }
  try {
    const resp = await operations.list({ pageSize: 20, filter: "done = false" });
    for (const op of (resp.operations || []).reverse()) followOperation(op);
  } catch (err) {
    notifyError(notice, err, "Running work cannot be shown right now.");
  }
}

// --- actions -------------------------------------------------------------------------

async function runAction(button, label, call) {
  try {
    const op = await busy(button, call);
    clear(notice);
    if (op && op.name && op.name.startsWith("operations/")) followOperation(op);
    refreshView();
  } catch (err) {
    notifyError(notice, err, label);
  }
}

async function suspend(t, button) {
  const id = shortName(t.name);
  const ok = await confirmDialog({
    title: `Suspend ${id}?`,
    message: `${t.display_name || id} stops answering until you resume it. Its data is kept.`,
    confirmLabel: `Suspend ${id}`,
  });
  if (ok) await runAction(button, `${id} could not be suspended.`, () => tenants.suspend(t.name, "suspended by its owner"));
}

async function resume(t, button) {
  const id = shortName(t.name);
  await runAction(button, `${id} could not be resumed.`, () => tenants.resume(t.name));
}

async function migrate(t, button) {
  const id = shortName(t.name);
  const ok = await confirmDialog({
    title: `Move ${id} to a dedicated database server?`,
    message: `${t.display_name || id} is paused for a short while, its database is copied to a server of its own and checked, then it starts again.`,
    confirmLabel: "Move it",
  });
  if (ok) await runAction(button, `${id} could not be moved.`, () => tenants.migrate(t.name, "DEDICATED"));
}

async function remove(t, button) {
  const id = shortName(t.name);
  const ok = await confirmDialog({
    title: `Delete tenant ${id}?`,
    message: `This deletes ${t.display_name ? `${t.display_name} (${id})` : id}: its Odoo, its database and its files. This cannot be undone.`,
    confirmLabel: `Delete ${id}`,
    danger: true,
    requireText: id,
  });
  if (ok) await runAction(button, `${id} could not be deleted.`, () => tenants.remove(t.name, t.etag));
}

// --- one tenant ----------------------------------------------------------------------

function detailHref(id, tab = "") {
  return `dashboard.html?tenant=${encodeURIComponent(id)}${tab ? `&tab=${tab}` : ""}`;
}

let detailTenant = null;
let backupsView = null;

function field(label, ...value) {
  return [el("dt", {}, label), el("dd", {}, ...value)];
}

function showOverview(t) {
  const id = shortName(t.name);
  const panel = document.getElementById("panel-overview");
  const open = t.state === "ACTIVE" && t.url
    ? el("a", { href: t.url, target: "_blank", rel: "noopener", dataset: { action: "open" } }, t.url)
    : (t.url || "—");
  clear(panel).append(el("dl", { class: "facts" },
    field("Id", el("code", {}, id)),
    field("State", tenantBadge(t.state), t.state_reason ? el("span", { class: "state-reason" }, t.state_reason) : null),
    field("Plan", titleCase(shortName(t.plan)) || "—"),
    field("Address", open),
    field("Database", titleCase(t.database_strategy === "DATABASE_STRATEGY_UNSPECIFIED" ? "" : t.database_strategy) || "—"),
    field("Created", formatTime(t.create_time) || "—"),
    field("Changed", formatTime(t.update_time) || "—")));
}

function selectTab(name, { focus = false } = {}) {
  for (const tab of ["overview", "backups"]) {
    const button = document.getElementById(`tab-${tab}`);
    const on = tab === name;
    button.setAttribute("aria-selected", String(on));
    button.tabIndex = on ? 0 : -1;
    document.getElementById(`panel-${tab}`).hidden = !on;
    if (on && focus) button.focus();
  }
  if (name === "backups" && detailTenant && !backupsView) {
    backupsView = backupsTab(document.getElementById("panel-backups"), detailTenant, { follow: followOperation });
  }
  const q = new URLSearchParams(location.search);
  if (name === "backups") q.set("tab", "backups");
  else q.delete("tab");
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

function setupTabs() {
  const names = ["overview", "backups"];
  for (const name of names) {
    const button = document.getElementById(`tab-${name}`);
    button.addEventListener("click", () => selectTab(name));
    button.addEventListener("keydown", (e) => {
      const i = names.indexOf(name);
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        e.preventDefault();
        const next = names[(i + (e.key === "ArrowRight" ? 1 : names.length - 1)) % names.length];
        selectTab(next, { focus: true });
      }
    });
  }
}

async function loadDetail() {
  const box = document.getElementById("detail-notice");
  const title = document.getElementById("detail-title");
  if (!TENANT_ID_PATTERN.test(detailId || "")) {
    title.textContent = "Tenant not found";
    document.getElementById("detail-tabs").hidden = true;
    clear(document.getElementById("panel-overview"));
    notify(box, "error", `There is no tenant "${detailId}": a tenant id is 3 to 40 lower-case letters, digits and hyphens.`,
      { title: "Tenant not found" });
    return;
  }
  try {
    const t = await tenants.get(`tenants/${detailId}`);
    detailTenant = t;
    clear(box);
    document.getElementById("detail-tabs").hidden = false;
    title.textContent = t.display_name && t.display_name !== detailId ? `${t.display_name} (${detailId})` : detailId;
    document.title = `${detailId} · saasodoo`;
    document.getElementById("detail-state").replaceChildren(tenantBadge(t.state));
    showOverview(t);
  } catch (err) {
    if (err.codeName === "NOT_FOUND") {
      detailTenant = null;
      title.textContent = "Tenant not found";
      document.getElementById("detail-tabs").hidden = true;
      document.getElementById("detail-state").replaceChildren();
      clear(document.getElementById("panel-overview"));
      document.getElementById("panel-backups").hidden = true;
      clear(box).append(alertBox("error", `Tenant ${detailId} was not found: it does not exist, or it is not one of yours.`,
        { title: "Tenant not found", reference: err.requestId }));
      box.querySelector(".alert").dataset.reason = "not-found";
      return;
    }
    notifyError(box, err, `Tenant ${detailId} cannot be shown right now.`);
  }
}

async function openDetail() {
  document.getElementById("tenants-section").hidden = true;
  clear(tbody); // the list is not loaded in this view
  document.getElementById("new-tenant").hidden = true;
  document.getElementById("tenant-detail").hidden = false;
  document.querySelector("main h1").textContent = "Your tenant";
  setupTabs();
  await loadDetail();
  if (detailTenant) selectTab(params.get("tab") === "backups" ? "backups" : "overview");
}

function refreshView() {
  if (detailId !== null) {
    loadDetail();
  } else {
    loadTenants();
  }
}

// --- start ---------------------------------------------------------------------------

document.getElementById("refresh").addEventListener("click", (e) => busy(e.currentTarget, () => loadTenants()));
document.getElementById("more").addEventListener("click", (e) => busy(e.currentTarget, () => loadTenants({ append: true })));

if (requireSession()) {
  if (created) notify(notice, "info", `Tenant ${created} is being set up. You can follow it below.`);
  if (detailId !== null) openDetail();
  else loadTenants();
  loadRunningOperations();
  setInterval(() => {
    if (document.visibilityState === "visible" && !document.querySelector("dialog[open]")) {
      if (detailId !== null) loadDetail();
      else loadTenants();
    }
  }, 20000);
}
