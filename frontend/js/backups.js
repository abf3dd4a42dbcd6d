// The Backups tab of a tenant (BackupService): its backups with state, trigger, size,
// date and latest restore drill; "Back up now", restore (in place or into a new
// tenant) and delete. Each of those starts an operation, whose progress the dashboard
// shows like any other. Admins also get a Download link per part of a complete backup.
import { backups, sessionUser, whoAmI } from "./api-client.js";
import {
  backupBadge, busy, clear, confirmDialog, el, formatBytes, formatTime, formDialog, notify, notifyError, shortName,
  td, titleCase,
} from "./components.js";
import { tenantIdProblem } from "./validation.js";

const TRIGGERS = {
  MANUAL: "By hand",
  SCHEDULED: "Scheduled",
  PRE_MIGRATION: "Before a move",
  PRE_PLAN_CHANGE: "Before a plan change",
};

function drillWords(drill) {
  const d = String(drill || "");
  if (!d) return el("span", { class: "sub" }, "Not tried yet");
  if (d === "passed") return el("span", { class: "badge badge-ok" }, "Restore test passed");
  const why = d.replace(/^failed:?\s*/, "");
  return el("span", {}, el("span", { class: "badge badge-bad" }, "Restore test failed"),
    why ? el("span", { class: "sub" }, why) : null);
}

// Builds the tab in panel for tenant (a Tenant resource). follow(op) shows an
// operation's progress; the tab reloads itself when an operation on the tenant ends
// (the "saasodoo:operation-done" event).
export function backupsTab(panel, tenant, { follow }) {
  const id = shortName(tenant.name);
  const notice = el("div", { id: "backups-notice", "aria-live": "polite" });
  const createBtn = el("button", { class: "btn btn-primary", type: "button", id: "backup-now" }, "Back up now");
  const refreshBtn = el("button", { class: "btn btn-small", type: "button", id: "backups-refresh" }, "Refresh");
  const tbody = el("tbody", {}, el("tr", {}, el("td", { colspan: 6, class: "loading" }, "Loading the backups…")));
  const moreBtn = el("button", { class: "btn", type: "button", id: "backups-more" }, "Show more");
  const moreWrap = el("div", { class: "actions", hidden: true }, moreBtn);
  let nextPageToken = "";
  let admin = false; // from GetCurrentUser: downloads are for admins only

  clear(panel).append(
    el("div", { class: "card-head" },
      el("p", { class: "sub" }, `Each backup holds ${id}'s database, its files and a checksummed manifest.`),
      el("div", { class: "actions" }, refreshBtn, createBtn)),
    notice,
    el("div", { class: "table-wrap" }, el("table", { class: "data stack", id: "backups" },
      el("thead", {}, el("tr", {}, ["Created", "State", "Trigger", "Size", "Last restore test"]
        .map((h) => el("th", { scope: "col" }, h)), el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Actions")))),
      tbody)),
    moreWrap);

  function row(b) {
    const bid = shortName(b.name);
    const when = formatTime(b.create_time) || bid;
    const msg = el("div", { "aria-live": "polite" });
    const actions = el("div", { class: "actions" });
    if (b.state === "COMPLETE") {
      actions.append(el("button", { class: "btn btn-small", type: "button", dataset: { action: "restore" },
        "aria-label": `Restore the backup of ${when}`, onclick: (e) => restore(b, e.currentTarget, msg) }, "Restore"));
    }
    if (b.state === "COMPLETE" || b.state === "FAILED") {
      actions.append(el("button", { class: "btn btn-small btn-link", type: "button", dataset: { action: "delete-backup" },
        "aria-label": `Delete the backup of ${when}`, onclick: (e) => remove(b, e.currentTarget, msg) }, "Delete"));
    }
    const downloads = admin && b.state === "COMPLETE" && (b.parts || []).length
      ? el("div", { class: "downloads" }, el("span", { class: "sub" }, "Download:"),
        b.parts.map((p) => el("button", { class: "btn btn-small btn-link", type: "button",
          dataset: { action: "download", part: p.name },
          "aria-label": `Download ${p.name} of the backup of ${when} (${formatBytes(p.size_bytes)})`,
          title: `SHA-256 ${p.sha256}`,
          onclick: (e) => download(b, p, e.currentTarget, msg) }, p.name)))
      : null;
    return el("tr", { dataset: { backup: b.name, state: b.state } },
      td("Created", when, b.description ? el("span", { class: "sub" }, b.description) : null),
      td("State", backupBadge(b.state)),
      td("Trigger", TRIGGERS[b.trigger] || titleCase(b.trigger === "TRIGGER_UNSPECIFIED" ? "" : b.trigger) || "—"),
      td("Size", formatBytes(b.size_bytes)),
      td("Last restore test", drillWords(b.last_drill)),
      el("td", { class: "actions-cell" }, actions, downloads, msg));
  }

  async function load({ append = false } = {}) {
    try {
      const user = await whoAmI().catch(() => sessionUser());
      admin = !!user && user.role === "ADMIN";
      const resp = await backups.list(tenant.name, { pageSize: 50, pageToken: append ? nextPageToken : "" });
      if (!append) clear(tbody);
      for (const b of resp.backups || []) tbody.append(row(b));
      if (!tbody.children.length) {
        tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, `${id} has no backups yet.`)));
      }
      nextPageToken = resp.next_page_token || "";
      moreWrap.hidden = !nextPageToken;
    } catch (err) {
      if (!append) clear(tbody);
      notifyError(notice, err, "The backups cannot be shown right now.");
    }
  }

  async function started(button, what, call) {
    try {
      const op = await busy(button, call);
      notify(notice, "info", `${what} has started; its progress is shown above.`);
      if (op && op.name && String(op.name).startsWith("operations/")) follow(op);
      load();
    } catch (err) {
      notifyError(notice, err, `${what} could not be started.`);
    }
  }

  async function restore(b, button, msg) {
    const when = formatTime(b.create_time) || shortName(b.name);
    const choice = await formDialog({
      title: `Restore the backup of ${when}?`,
      confirmLabel: "Restore",
      danger: true,
      build: (fields, setValid) => {
        const inPlace = el("input", { type: "radio", name: "where", value: "in-place", id: "restore-in-place", checked: true });
        const toNew = el("input", { type: "radio", name: "where", value: "new", id: "restore-new" });
        const confirmInput = el("input", { type: "text", id: "restore-confirm", autocomplete: "off", spellcheck: "false",
          "aria-describedby": "restore-confirm-hint" });
        const target = el("input", { type: "text", id: "restore-target", name: "target", autocomplete: "off",
          spellcheck: "false", autocapitalize: "none", maxlength: 64, "aria-describedby": "restore-target-status" });
        const status = el("p", { id: "restore-target-status", class: "hint", "aria-live": "polite" });
        const inPlaceBox = el("div", { class: "field" },
          el("p", {}, `${id}'s current data is replaced by this backup; what changed since ${when} is lost. `
            + `${id} is unavailable while it is restored.`),
          el("label", { for: "restore-confirm" }, "Type ", el("code", {}, id), " to confirm"), confirmInput,
          el("p", { class: "hint", id: "restore-confirm-hint" }, "The tenant's own data is overwritten."));
        const newBox = el("div", { class: "field", hidden: true },
          el("label", { for: "restore-target" }, "Id of the new tenant"), target, status);
        const update = () => {
          const fresh = toNew.checked;
          inPlaceBox.hidden = fresh;
          newBox.hidden = !fresh;
          if (!fresh) {
            setValid(confirmInput.value.trim() === id);
            return;
          }
          const t = target.value.trim();
          let problem = tenantIdProblem(t);
          if (!problem && t === id) problem = `Choose an id other than ${id}, or restore in place.`;
          status.textContent = t ? (problem || `The data goes into a new tenant ${t}; ${id} stays as it is.`) : "";
          status.className = problem && t ? "problem" : "hint";
          target.setAttribute("aria-invalid", problem && t ? "true" : "false");
          setValid(!problem);
        };
        for (const input of [inPlace, toNew, confirmInput, target]) input.addEventListener("input", update);
        fields.append(el("fieldset", { class: "field choice" }, el("legend", {}, "Restore where?"),
          el("label", { for: "restore-in-place" }, inPlace, el("span", {}, `Into ${id} itself (in place)`)),
          el("label", { for: "restore-new" }, toNew, el("span", {}, "Into a new tenant"))), inPlaceBox, newBox);
        update();
        return confirmInput;
      },
      collect: (form) => (form.querySelector("#restore-new").checked ? form.querySelector("#restore-target").value.trim() : ""),
    });
    if (choice === null) return;
    clear(msg);
    await started(button, choice ? `Restoring into the new tenant ${choice}` : `Restoring ${id}`,
      () => backups.restore(b.name, choice));
  }

  // Fetches the part with the session's token and hands it to the browser as a file
  // (an object URL on a temporary link), so the token never appears in a URL.
  async function download(b, part, button, msg) {
    clear(msg);
    try {
      const { blob, filename } = await busy(button, () => backups.download(b.name, part.name));
      const href = URL.createObjectURL(blob);
      const link = el("a", { href, download: filename, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60000);
    } catch (err) {
      notifyError(msg, err, `${part.name} could not be downloaded.`);
    }
  }

  async function remove(b, button, msg) {
    const when = formatTime(b.create_time) || shortName(b.name);
    const ok = await confirmDialog({
      title: `Delete the backup of ${when}?`,
      message: `The backup's files are removed for good; ${id} cannot be restored to ${when} afterwards.`,
      confirmLabel: "Delete backup",
      danger: true,
    });
    if (!ok) return;
    clear(msg);
    await started(button, "Deleting the backup", () => backups.remove(b.name));
  }

  createBtn.addEventListener("click", () =>
    started(createBtn, `A backup of ${id}`, () => backups.create(tenant.name)));
  refreshBtn.addEventListener("click", () => busy(refreshBtn, () => load()));
  moreBtn.addEventListener("click", () => busy(moreBtn, () => load({ append: true })));
  document.addEventListener("saasodoo:user", () => load()); // the role may have changed
  document.addEventListener("saasodoo:operation-done", (e) => {
    const op = e.detail || {};
    const ours = (n) => n === tenant.name || String(n || "").startsWith(`${tenant.name}/`);
    if (ours(op.target) || ours(op.result)) load();
  });

  load();
  return { reload: load };
}
