// The customer's dashboard: tenants with their state, and live progress of the work
// running on them (WatchOperation, read as newline-delimited JSON while it arrives).
import { getSession, operations, tenants } from "./api-client.js";
import {
  alertBox, busy, clear, confirmDialog, el, errorBox, formatTime, notify, notifyError, operationBadge,
  operationTitle, progressBar, shortName, td, tenantBadge, titleCase,
} from "./components.js";

const tbody = document.querySelector("#tenants tbody");
const notice = document.getElementById("notice");
const tenantsNotice = document.getElementById("tenants-notice");
const opsSection = document.getElementById("ops-section");
const opsList = document.getElementById("ops");
const moreWrap = document.getElementById("more-wrap");

const created = new URLSearchParams(location.search).get("created");
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
  if (t.state === "ACTIVE") actions.append(actionButton("suspend", "Suspend", t, suspend));
  if (t.state === "SUSPENDED") actions.append(actionButton("resume", "Resume", t, resume));
  if (t.state === "ACTIVE" && t.database_strategy !== "DEDICATED") {
    actions.append(actionButton("migrate", "Move to dedicated", t, migrate));
  }
  if (!["DELETING", "DELETED"].includes(t.state)) {
    actions.append(actionButton("delete", "Delete", t, remove, "btn btn-small btn-link"));
  }
  const state = el("div", {}, tenantBadge(t.state));
  if (t.state_reason) state.append(el("span", { class: "state-reason" }, t.state_reason));
  return el("tr", { dataset: { tenant: id, state: t.state } },
    td("Tenant", el("span", { class: "tenant-name" }, t.display_name || id), el("span", { class: "sub tenant-id" }, id)),
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
  const id = shortName(op.target);
  if (op.state === "SUCCEEDED") {
    switch (op.kind) {
      case "CREATE_TENANT": return `Tenant ${id} is ready.`;
      case "SUSPEND_TENANT": return `Tenant ${id} is suspended.`;
      case "RESUME_TENANT": return `Tenant ${id} is running again.`;
      case "DELETE_TENANT": return `Tenant ${id} is deleted.`;
      case "MIGRATE_TENANT": return `Tenant ${id} has moved.`;
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
  const card = el("article", { class: "card op-card", dataset: { operation: op.name, target: shortName(op.target) } },
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
    if (created && shortName(o.target) === created) clear(notice);
    loadTenants();
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
    loadTenants();
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

// --- start ---------------------------------------------------------------------------

document.getElementById("refresh").addEventListener("click", (e) => busy(e.currentTarget, () => loadTenants()));
document.getElementById("more").addEventListener("click", (e) => busy(e.currentTarget, () => loadTenants({ append: true })));

if (created) notify(notice, "info", `Tenant ${created} is being set up. You can follow it below.`);

loadTenants();
loadRunningOperations();
setInterval(() => {
  if (document.visibilityState === "visible" && !document.querySelector("dialog[open]")) loadTenants();
}, 20000);
