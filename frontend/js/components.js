// Small DOM building blocks shared by the pages: elements, badges, alerts, progress,
// confirmation dialogs and formatting. Text always goes in as text, never as HTML.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

// --- states --------------------------------------------------------------------------

const TENANT_STATES = {
  PROVISIONING: ["Provisioning", "badge-info"],
  ACTIVE: ["Active", "badge-ok"],
  SUSPENDED: ["Suspended", "badge-warn"],
  MIGRATING: ["Migrating", "badge-info"],
  DELETING: ["Deleting", "badge-warn"],
  DELETED: ["Deleted", ""],
  FAILED: ["Failed", "badge-bad"],
  STATE_UNSPECIFIED: ["Unknown", ""],
};

const OPERATION_STATES = {
  PENDING: ["Waiting", "badge-info"],
  RUNNING: ["Running", "badge-info"],
  SUCCEEDED: ["Done", "badge-ok"],
  FAILED: ["Failed", "badge-bad"],
  CANCELLING: ["Cancelling", "badge-warn"],
  CANCELLED: ["Cancelled", ""],
  STATE_UNSPECIFIED: ["Unknown", ""],
};

export function tenantBadge(state) {
  const [label, cls] = TENANT_STATES[state] || [String(state || "Unknown"), ""];
  return el("span", { class: `badge ${cls}`, dataset: { state: state || "" } }, label);
}

export function operationBadge(state) {
  const [label, cls] = OPERATION_STATES[state] || [String(state || "Unknown"), ""];
  return el("span", { class: `badge ${cls}`, dataset: { state: state || "" } }, label);
}

const KIND_WORDS = {
  CREATE_TENANT: "Creating",
  SUSPEND_TENANT: "Suspending",
  RESUME_TENANT: "Resuming",
  DELETE_TENANT: "Deleting",
  MIGRATE_TENANT: "Moving",
  BACKUP: "Backing up",
  RESTORE: "Restoring",
  CHANGE_PLAN: "Changing the plan of",
};

// The tenant id a resource name belongs to ("tenants/acme/backups/b1" -> "acme"), or
// the name's last part when it is not under a tenant.
export function tenantOf(name) {
  const m = /^tenants\/([^/]+)/.exec(String(name || ""));
  return m ? m[1] : shortName(name);
}

// "Creating acme", "Suspending acme", ...
export function operationTitle(op) {
  const what = KIND_WORDS[op.kind] || "Working on";
  return `${what} ${tenantOf(op.target)}`;
}

const BACKUP_STATES = {
  CREATING: ["Being made", "badge-info"],
  COMPLETE: ["Complete", "badge-ok"],
  FAILED: ["Failed", "badge-bad"],
  DELETING: ["Being deleted", "badge-warn"],
  STATE_UNSPECIFIED: ["Unknown", ""],
};

export function backupBadge(state) {
  const [label, cls] = BACKUP_STATES[state] || [String(state || "Unknown"), ""];
  return el("span", { class: `badge ${cls}`, dataset: { state: state || "" } }, label);
}

export function shortName(name) {
  const s = String(name || "");
  return s.includes("/") ? s.slice(s.lastIndexOf("/") + 1) : s;
}

// --- messages ------------------------------------------------------------------------

// An alert box for an error (ApiError or any Error) or a plain message.
export function alertBox(kind, message, { reference = "", title = "" } = {}) {
  const box = el("div", { class: `alert alert-${kind}`, role: kind === "error" ? "alert" : "status" });
  if (title) box.append(el("p", {}, el("strong", {}, title)));
  box.append(el("p", { class: "message" }, message));
  if (reference) box.append(el("p", { class: "ref" }, `Reference: ${reference}`));
  return box;
}

export function errorBox(err, title = "") {
  const sentence = err && err.sentence ? err.sentence : "Something unexpected happened. Please reload the page.";
  return alertBox("error", sentence, { reference: err && err.requestId, title });
}

// Replaces the contents of a notice area with one message.
export function notify(area, kind, message, options) {
  clear(area).append(alertBox(kind, message, options));
}

export function notifyError(area, err, title) {
  clear(area).append(errorBox(err, title));
}

// --- progress ------------------------------------------------------------------------

export function progressBar(op) {
  const bar = el("progress", { max: 100, value: op.progress_percent || 0 });
  const pct = el("span", { class: "pct" }, `${op.progress_percent || 0}%`);
  const step = el("span", { class: "step" }, op.step || "waiting to start");
  const box = el("div", { class: "progress" }, el("div", { class: "line" }, step, pct), bar);
  bar.setAttribute("aria-label", operationTitle(op));
  box.update = (o) => {
    bar.value = o.progress_percent || 0;
    pct.textContent = `${o.progress_percent || 0}%`;
    step.textContent = o.step || (o.done ? "finished" : "waiting to start");
  };
  return box;
}

// --- dialogs -------------------------------------------------------------------------

// Asks for confirmation in a modal dialog. With requireText, the confirm button stays
// disabled until that text is typed. Resolves true (confirmed) or false.
export function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false, requireText = "" }) {
  return new Promise((resolve) => {
    const confirmBtn = el("button", { class: `btn ${danger ? "btn-danger" : "btn-primary"}`, type: "submit",
      value: "confirm", dataset: { role: "confirm" } }, confirmLabel);
    const cancelBtn = el("button", { class: "btn", type: "button", dataset: { role: "cancel" } }, "Cancel");
    let input = null;
    const body = [el("h2", { id: "dialog-title" }, title), el("p", {}, message)];
    if (requireText) {
      input = el("input", { type: "text", id: "dialog-confirm-input", autocomplete: "off", spellcheck: "false" });
      confirmBtn.disabled = true;
      input.addEventListener("input", () => { confirmBtn.disabled = input.value.trim() !== requireText; });
      body.push(el("div", { class: "field" },
        el("label", { for: "dialog-confirm-input" }, "Type ", el("code", {}, requireText), " to confirm"), input));
    }
    const form = el("form", { method: "dialog" }, ...body, el("div", { class: "actions" }, cancelBtn, confirmBtn));
    const dialog = el("dialog", { "aria-labelledby": "dialog-title" }, form);
    let result = false;
    form.addEventListener("submit", (e) => {
      if (input && input.value.trim() !== requireText) {
        e.preventDefault();
        return;
      }
      result = true;
    });
    cancelBtn.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    (input || confirmBtn).focus();
  });
}

// A modal dialog holding a form: build(form, setValid) adds the fields and may call
// setValid(false) to keep the confirm button disabled; collect(form) gives the value
// the promise resolves with once confirmed (null when cancelled).
export function formDialog({ title, confirmLabel = "Confirm", danger = false, build, collect }) {
  return new Promise((resolve) => {
    const confirmBtn = el("button", { class: `btn ${danger ? "btn-danger" : "btn-primary"}`, type: "submit",
      value: "confirm", dataset: { role: "confirm" } }, confirmLabel);
    const cancelBtn = el("button", { class: "btn", type: "button", dataset: { role: "cancel" } }, "Cancel");
    const fields = el("div", { class: "dialog-fields" });
    const form = el("form", { method: "dialog", novalidate: true }, el("h2", { id: "dialog-title" }, title), fields,
      el("div", { class: "actions" }, cancelBtn, confirmBtn));
    const dialog = el("dialog", { "aria-labelledby": "dialog-title" }, form);
    const setValid = (ok) => { confirmBtn.disabled = !ok; };
    let result = null;
    form.addEventListener("submit", (e) => {
      if (confirmBtn.disabled) {
        e.preventDefault();
        return;
      }
      result = collect(form);
    });
    cancelBtn.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    const focus = build(fields, setValid);
    document.body.append(dialog);
    dialog.showModal();
    (focus || confirmBtn).focus();
  });
}

// --- formatting ----------------------------------------------------------------------

export function formatTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function formatMoney(money) {
  if (!money || !money.currency_code) return "";
  const minor = Number(money.amount_minor || 0);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: money.currency_code }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${money.currency_code}`;
  }
}

// 1536 -> "1.5 KB"; int64 fields arrive as strings.
export function formatBytes(n) {
  let v = Number(n || 0);
  if (!Number.isFinite(v) || v <= 0) return "—";
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function titleCase(word) {
  const s = String(word || "").toLowerCase().replace(/_/g, " ");
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

// A table cell with the column name for the stacked (phone) layout.
export function td(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

// Marks a button busy while an async action runs; returns the action's result.
export async function busy(button, action) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  }
}
