// API keys of the signed-in user (IdentityService.ListApiKeys, CreateApiKey,
// DeleteApiKey under users/{id} from GetCurrentUser). A new key's secret is shown once,
// in a box to copy it from; afterwards only its first characters are known.
import { identity, newRequestId, requireSession, whoAmI } from "./api-client.js";
import {
  alertBox, busy, clear, confirmDialog, el, formatTime, notify, notifyError, td,
} from "./components.js";

const form = document.getElementById("key-form");
const formProblem = document.getElementById("key-form-problem");
const tbody = document.querySelector("#api-keys tbody");
const keysNotice = document.getElementById("keys-notice");
const notice = document.getElementById("notice");
const secretBox = document.getElementById("new-key");
const secretInput = document.getElementById("new-key-secret");
const copyStatus = document.getElementById("copy-status");
const moreWrap = document.getElementById("keys-more-wrap");

let parent = "";
let nextPageToken = "";
// One request id per distinct key name, so that a retry after a network failure does
// not make two keys.
let pending = { name: "", requestId: "" };

function say(text) {
  formProblem.textContent = text;
  formProblem.hidden = !text;
  form.display_name.setAttribute("aria-invalid", text ? "true" : "false");
}

function keyRow(k) {
  const label = k.display_name || k.prefix || "key";
  const del = el("button", { class: "btn btn-small btn-link", type: "button", dataset: { action: "delete-key" },
    "aria-label": `Delete key ${label}` }, "Delete");
  const msg = el("div", { "aria-live": "polite" });
  del.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: `Delete the key "${label}"?`,
      message: `Scripts and tools that use the key starting with ${k.prefix || "…"} stop working at once. This cannot be undone.`,
      confirmLabel: "Delete key",
      danger: true,
    });
    if (!ok) return;
    try {
      await busy(del, () => identity.deleteApiKey(k.name));
      notify(notice, "ok", `The key "${label}" is deleted.`);
      loadKeys();
    } catch (err) {
      clear(msg).append(alertBox("error", err.sentence, { reference: err.requestId }));
    }
  });
  return el("tr", { dataset: { key: k.name, prefix: k.prefix || "" } },
    td("Name", el("span", { class: "tenant-name" }, k.display_name || "(no name)")),
    td("Key starts with", el("code", { class: "key-prefix" }, `${k.prefix || ""}…`)),
    td("Created", formatTime(k.create_time)),
    td("Last used", k.last_used_time ? formatTime(k.last_used_time) : "Never"),
    td("Expires", k.expire_time ? formatTime(k.expire_time) : "Never"),
    el("td", { class: "actions-cell" }, el("div", { class: "actions" }, del), msg));
}

async function loadKeys({ append = false } = {}) {
  try {
    const resp = await identity.listApiKeys(parent, { pageSize: 50, pageToken: append ? nextPageToken : "" });
    if (!append) clear(tbody);
    clear(keysNotice);
    for (const k of resp.api_keys || []) tbody.append(keyRow(k));
    if (!tbody.children.length) {
      tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "You have no API keys yet.")));
    }
    nextPageToken = resp.next_page_token || "";
    moreWrap.hidden = !nextPageToken;
  } catch (err) {
    if (!append) clear(tbody);
    notifyError(keysNotice, err, "Your keys cannot be shown right now.");
  }
}

function showSecret(key) {
  secretInput.value = key.secret || "";
  document.getElementById("new-key-name").textContent = key.display_name ? `(${key.display_name})` : "";
  copyStatus.textContent = "";
  secretBox.hidden = false;
  secretInput.focus();
  secretInput.select();
}

function hideSecret() {
  secretInput.value = "";
  secretBox.hidden = true;
  form.display_name.focus();
}

async function copySecret() {
  secretInput.focus();
  secretInput.select();
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
    await navigator.clipboard.writeText(secretInput.value);
    copyStatus.textContent = "Copied to the clipboard.";
  } catch {
    const copied = typeof document.execCommand === "function" && document.execCommand("copy");
    copyStatus.textContent = copied ? "Copied to the clipboard."
      : "The browser does not let this page copy: the key is selected, press Ctrl+C (⌘C) to copy it.";
  }
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = form.display_name.value.trim();
  if (!name) {
    say("Give the key a name, so that you can tell it apart later.");
    form.display_name.focus();
    return;
  }
  if (name.length > 100) {
    say("Keep the name to 100 characters or fewer.");
    return;
  }
  say("");
  if (pending.name !== name) pending = { name, requestId: newRequestId() };
  const button = document.getElementById("create-key");
  try {
    const key = await busy(button, () => identity.createApiKey(parent, name, pending.requestId));
    pending = { name: "", requestId: "" };
    form.reset();
    clear(notice);
    if (!key.secret) {
      notify(notice, "warn", `The key "${name}" was made, but the platform did not return its secret. Delete it and try again.`);
    } else {
      showSecret(key);
    }
    loadKeys();
  } catch (err) {
    if (err.codeName === "INVALID_ARGUMENT") say(err.sentence);
    else notifyError(notice, err, "The key could not be created.");
  }
});

document.getElementById("copy-key").addEventListener("click", copySecret);
document.getElementById("key-done").addEventListener("click", hideSecret);
document.getElementById("keys-refresh").addEventListener("click", (e) => busy(e.currentTarget, () => loadKeys()));
document.getElementById("keys-more").addEventListener("click", (e) => busy(e.currentTarget, () => loadKeys({ append: true })));

async function start() {
  try {
    const user = await whoAmI();
    parent = user.name;
  } catch (err) {
    clear(tbody);
    notifyError(keysNotice, err, "Your keys cannot be shown right now.");
    form.querySelector("button[type=submit]").disabled = true;
    return;
  }
  loadKeys();
}

if (requireSession()) start();
