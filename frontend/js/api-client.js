// The one place that talks to the saasodoo REST API (saasodoo-gateway, same origin).
// Every call gets an X-Request-Id; failures become ApiError whose .sentence says what
// went wrong in words a person can act on.

const SESSION_KEY = "saasodoo.session";

// gRPC status codes by number, as the gateway reports them in "code".
const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
];

export function newRequestId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function capitalize(s) {
  s = String(s || "").trim();
  if (!s) return s;
  s = s[0].toUpperCase() + s.slice(1);
  return /[.!?]$/.test(s) ? s : s + ".";
}

// "method /saasodoo.v1.TenantService/SuspendTenant is not implemented yet" -> "TenantService.SuspendTenant"
function methodFrom(message) {
  const m = /\/saasodoo\.v1\.([A-Za-z]+)\/([A-Za-z]+)/.exec(message || "");
  return m ? `${m[1]}.${m[2]}` : "";
}

export class ApiError extends Error {
  constructor({ httpStatus = 0, code = 2, message = "", requestId = "", details = [], network = false }) {
    super(message || `HTTP ${httpStatus}`);
    this.name = "ApiError";
    this.httpStatus = httpStatus;
    this.code = code;
    this.codeName = CODE_NAMES[code] || "UNKNOWN";
    this.serverMessage = message;
    this.requestId = requestId;
    this.details = details || [];
    this.network = network;
    this.sentence = describe(this);
  }

  // Seconds to wait before trying again, from a google.rpc.RetryInfo detail (or the
  // message, "... in 30 seconds"); 0 when the server did not say.
  get retryAfterSeconds() {
    for (const d of this.details) {
      if (!d || !String(d["@type"] || "").endsWith("google.rpc.RetryInfo")) continue;
      const delay = d.retry_delay ?? d.retryDelay;
      if (typeof delay === "string") {
        const n = parseFloat(delay);
        if (Number.isFinite(n) && n > 0) return Math.ceil(n);
      } else if (delay && typeof delay === "object") {
        const n = Number(delay.seconds || 0) + Number(delay.nanos || 0) / 1e9;
        if (n > 0) return Math.ceil(n);
      }
    }
    const m = /(\d+(?:\.\d+)?)\s*(seconds?|secs?|s\b|minutes?|mins?)/i.exec(this.serverMessage || "");
    if (m) return Math.ceil(parseFloat(m[1]) * (/^min/i.test(m[2]) ? 60 : 1));
    return 0;
  }

  // The field the server named as wrong, when it sent a google.rpc.BadRequest.
  get field() {
    for (const d of this.details) {
      const v = d && d.field_violations && d.field_violations[0];
      if (v && v.field) return v.field;
    }
    return "";
  }
}

// 45 -> "45 seconds", 120 -> "2 minutes".
export function waitWords(seconds) {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 90) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.ceil(s / 60);
  return `${m} minute${m === 1 ? "" : "s"}`;
}

function describe(e) {
  const msg = e.serverMessage;
  if (e.network) {
    return "The saasodoo service could not be reached. Check your connection and try again.";
  }
  switch (e.codeName) {
    case "INVALID_ARGUMENT":
    case "OUT_OF_RANGE":
      return capitalize(msg || "The request was not accepted");
    case "NOT_FOUND":
      return capitalize(msg || "That no longer exists");
    case "ALREADY_EXISTS":
      return capitalize(msg || "That exists already");
    case "FAILED_PRECONDITION":
      return capitalize(msg || "This cannot be done in the current state");
    case "ABORTED":
      return `Someone else changed this in the meantime. Reload the page and try again. (${msg})`;
    case "UNIMPLEMENTED": {
      const method = methodFrom(msg);
      return method
        ? `This is not available on the platform yet: the server does not offer ${method} so far.`
        : "This is not available on the platform yet.";
    }
    case "UNAUTHENTICATED":
      return "Please sign in first: the platform did not recognise your session.";
    case "PERMISSION_DENIED":
      return capitalize(msg ? `You are not allowed to do this: ${msg}` : "You are not allowed to do this");
    case "RESOURCE_EXHAUSTED": {
      const wait = e.retryAfterSeconds;
      if (wait && !/\d/.test(msg || "")) {
        return `${capitalize(msg || "Too many requests")} Try again in ${waitWords(wait)}.`;
      }
      return capitalize(msg || "The platform is busy; wait a moment and try again");
    }
    case "UNAVAILABLE":
      return "The platform is not reachable right now. Please try again in a moment.";
    case "DEADLINE_EXCEEDED":
      return "The platform took too long to answer. Please try again.";
    case "CANCELLED":
      return "The request was cancelled.";
    default:
      return "Something went wrong on the platform. If it keeps happening, contact support and quote the reference below.";
  }
}

// Reads an error response (grpc-gateway's {"error","message","code","details"}, or
// a stream's {"error": {...}}); anything else becomes a sentence about the HTTP status.
async function errorFrom(resp, requestId) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  const rid = resp.headers.get("X-Request-Id") || requestId;
  if (body && typeof body === "object") {
    let e = body;
    if (body.error && typeof body.error === "object") {
      e = { message: body.error.message, code: body.error.grpc_code, details: body.error.details };
    }
    if (typeof e.code === "number" || typeof e.message === "string") {
      return new ApiError({ httpStatus: resp.status, code: e.code ?? 2, message: e.message || "",
        requestId: rid, details: e.details || [] });
    }
  }
  const code = resp.status === 404 ? 5 : resp.status === 503 || resp.status === 502 ? 14 : 2;
  return new ApiError({ httpStatus: resp.status, code, message: `HTTP ${resp.status} ${resp.statusText}`, requestId: rid });
}

// --- session -------------------------------------------------------------------------
//
// The session is IdentityService's Session as the gateway writes it (access_token,
// access_token_expire_time, refresh_token, refresh_token_expire_time, user), kept in
// localStorage with the time it was obtained. The access token is exchanged for a new one
// shortly before it expires, and once when a call answers 401; every call waiting at
// that moment shares the one exchange (across tabs too, where the browser has Web Locks).

const AUTH_PATHS = new Set(["/v1/auth:signUp", "/v1/auth:signIn", "/v1/auth:refresh"]);
const PUBLIC_PAGES = new Set(["", "index.html", "login.html", "register.html"]);
const REFRESH_MARGIN_MS = 60000;

function timeOf(ts) {
  const t = Date.parse(ts || "");
  return Number.isFinite(t) ? t : 0;
}

export function getSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    if (!s || !s.access_token) return null;
    const refreshEnd = timeOf(s.refresh_token_expire_time);
    if (refreshEnd && refreshEnd <= Date.now()) return null; // nothing can renew it any more
    return s;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  localStorage.setItem(SESSION_KEY, JSON.stringify({ ...session, obtained_at: Date.now() }));
}

export function clearSession() {
  localStorage.removeItem(SESSION_KEY);
}

// The signed-in user as last seen (from the session or GetCurrentUser), or null.
export function sessionUser() {
  const s = getSession();
  return (s && s.user) || null;
}

// Keeps a fresher copy of the user (e.g. a changed role) in the stored session.
export function rememberUser(user) {
  const s = getSession();
  if (!s || !user) return;
  s.user = user;
  localStorage.setItem(SESSION_KEY, JSON.stringify(s));
}

// How long before its expiry an access token is renewed: a minute, or a quarter of
// its lifetime when that is shorter.
function refreshMargin(s) {
  const end = timeOf(s.access_token_expire_time);
  const start = Number(s.obtained_at) || 0;
  if (!end || !start || end <= start) return REFRESH_MARGIN_MS;
  return Math.min(REFRESH_MARGIN_MS, (end - start) / 4);
}

function expiresSoon(s) {
  const end = timeOf(s.access_token_expire_time);
  return end > 0 && end - Date.now() < refreshMargin(s);
}

function currentPage() {
  return location.pathname.split("/").pop() || "index.html";
}

export function isPublicPage() {
  return PUBLIC_PAGES.has(currentPage());
}

// login.html with a way back to this page (path and query, never another origin).
export function loginUrl() {
  const here = currentPage() + location.search;
  return PUBLIC_PAGES.has(currentPage()) ? "login.html" : `login.html?next=${encodeURIComponent(here)}`;
}

let leaving = false;
function goToLogin() {
  if (leaving || isPublicPage()) return;
  leaving = true;
  location.replace(loginUrl());
}

// For pages that need a signed-in user: true when there is a session; otherwise sends
// the browser to the sign-in page (which comes back here) and returns false.
export function requireSession() {
  if (getSession()) return true;
  goToLogin();
  return false;
}

let refreshing = null;

// Exchanges the refresh token for a new session. staleToken is the access token the
// caller found wanting: when the stored session already holds another (a parallel
// call or another tab renewed it), that one is used. Resolves with the new session, or
// null when the refresh token is refused (the session is then cleared); rejects with
// an ApiError when the platform cannot be reached, keeping the session.
export function refreshSession(staleToken = "") {
  if (!refreshing) {
    const run = () => exchange(staleToken);
    const locked = globalThis.navigator && navigator.locks && typeof navigator.locks.request === "function";
    refreshing = (locked ? navigator.locks.request("saasodoo.session.refresh", run) : run())
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function exchange(staleToken) {
  const current = getSession();
  if (!current || !current.refresh_token) return null;
  if (staleToken && current.access_token !== staleToken && !expiresSoon(current)) return current;
  const { resp, requestId } = await rawSend("POST", "/v1/auth:refresh",
    { body: { refresh_token: current.refresh_token } }, null);
  if (resp.ok) {
    const session = JSON.parse((await resp.text()) || "{}");
    if (!session.access_token) return null;
    if (!session.user && current.user) session.user = current.user;
    saveSession(session);
    scheduleRefresh();
    return getSession();
  }
  const err = await errorFrom(resp, requestId);
  const now = getSession();
  if (now && now.refresh_token !== current.refresh_token) return now; // another tab won the race
  if (["UNAUTHENTICATED", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "FAILED_PRECONDITION"]
    .includes(err.codeName)) {
    clearSession();
    return null;
  }
  throw err;
}

let refreshTimer = 0;

// Renews the access token in the background shortly before it expires, so that a page
// left open keeps its session. Called by the layout and after every renewal.
export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const s = getSession();
  if (!s) return;
  const end = timeOf(s.access_token_expire_time);
  if (!end) return;
  const wait = Math.max(1000, end - refreshMargin(s) - Date.now());
  refreshTimer = setTimeout(async () => {
    try {
      const fresh = await refreshSession(s.access_token);
      if (!fresh) goToLogin();
    } catch {
      // The platform is unreachable for now; the next call tries again.
      refreshTimer = setTimeout(scheduleRefresh, 15000);
    }
  }, Math.min(wait, 2 ** 31 - 1));
}

// --- requests ------------------------------------------------------------------------

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

// A resource name ("tenants/acme") as a URL path under /v1/.
export function namePath(name, suffix = "") {
  return "/v1/" + String(name).split("/").map(encodeURIComponent).join("/") + suffix;
}

async function rawSend(method, path, { query, body, signal } = {}, session) {
  const requestId = newRequestId();
  const headers = { "X-Request-Id": requestId, Accept: "application/json" };
  if (session) headers.Authorization = `Bearer ${session.access_token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url(path, query), {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin", cache: "no-store",
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError({ network: true, code: 14, message: String(err && err.message), requestId });
  }
  return { resp, requestId };
}

// Sends a call with the session's access token: renewed first when it is about to
// expire, and renewed and sent once more when the call answers 401. When the session
// cannot be renewed, the browser goes to the sign-in page.
async function send(method, path, options = {}) {
  if (AUTH_PATHS.has(path)) return rawSend(method, path, options, getSession());
  let session = getSession();
  if (session && expiresSoon(session)) {
    try {
      session = await refreshSession(session.access_token);
    } catch {
      session = getSession(); // unreachable for now: try with what we have
    }
  }
  const first = await rawSend(method, path, options, session);
  if (first.resp.status !== 401) return first;
  if (!session) {
    goToLogin();
    return first;
  }
  let fresh;
  try {
    fresh = await refreshSession(session.access_token);
  } catch {
    return first; // the platform cannot renew it right now: report the 401 as it is
  }
  if (!fresh) {
    goToLogin();
    return first;
  }
  if (first.resp.body && typeof first.resp.body.cancel === "function") first.resp.body.cancel().catch(() => {});
  const second = await rawSend(method, path, options, fresh);
  if (second.resp.status === 401) {
    clearSession();
    goToLogin();
  }
  return second;
}

export async function request(method, path, options = {}) {
  const { resp, requestId } = await send(method, path, options);
  if (!resp.ok) throw await errorFrom(resp, requestId);
  const text = await resp.text();
  return text ? JSON.parse(text) : {};
}

// Follows a long-running operation through GET /v1/operations/{id}:watch, which
// answers newline-delimited JSON: one {"result": Operation} per change, or one
// {"error": {...}} if the watch fails midway. onUpdate gets each Operation; the
// promise resolves with the last one (done, unless the stream ended early).
export async function watchOperation(name, onUpdate, { signal } = {}) {
  const { resp, requestId } = await send("GET", namePath(name, ":watch"), { signal });
  if (!resp.ok) throw await errorFrom(resp, requestId);
  if (!resp.body || !resp.body.getReader) {
    const op = await request("GET", namePath(name), { signal });
    onUpdate(op);
    return op;
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let last = null;
  const handle = (line) => {
    if (!line.trim()) return;
    const msg = JSON.parse(line);
    if (msg.error) {
      throw new ApiError({ httpStatus: msg.error.http_code || 500, code: msg.error.grpc_code ?? 2,
        message: msg.error.message || "", requestId, details: msg.error.details || [] });
    }
    if (msg.result) {
      last = msg.result;
      onUpdate(last);
    }
  };
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError({ network: true, code: 14, message: String(err && err.message), requestId });
    }
    if (chunk.done) break;
    buffered += decoder.decode(chunk.value, { stream: true });
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      handle(line);
    }
  }
  handle(buffered + decoder.decode());
  return last;
}

// Fetches one part of a backup (admins only) through GET {name}:download?part=PART,
// which answers the part's raw bytes. The access token goes in the Authorization
// header as for every call, never in the URL. Resolves with { blob, filename }, the
// file name being the one the gateway suggests (tenant-backup-part).
export async function downloadBackupPart(name, part, { signal } = {}) {
  const { resp, requestId } = await send("GET", namePath(name, ":download"), { query: { part }, signal });
  if (!resp.ok) throw await errorFrom(resp, requestId);
  let blob;
  try {
    blob = await resp.blob();
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    // the gateway cuts a download short when the part fails its checksum midway
    throw new ApiError({ network: true, code: 15, message: String(err && err.message), requestId });
  }
  const size = Number(resp.headers.get("Content-Length"));
  if (Number.isFinite(size) && size > 0 && blob.size !== size) {
    throw new ApiError({ code: 15, message: `the download of ${part} stopped after ${blob.size} of ${size} bytes`,
      requestId });
  }
  const m = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "");
  return { blob, filename: m ? m[1] : part };
}

// Ends the session on the platform (SignOut with the refresh token, renewed first if
// the access token is about to expire) and in this browser. The local session is gone
// even when the platform cannot be told.
export async function signOut() {
  let s = getSession();
  clearTimeout(refreshTimer);
  try {
    if (s && expiresSoon(s)) s = await refreshSession(s.access_token);
    if (s) {
      const { resp } = await rawSend("POST", "/v1/auth:signOut", { body: { refresh_token: s.refresh_token } }, s);
      if (resp.body && typeof resp.body.cancel === "function") await resp.body.cancel().catch(() => {});
    }
  } catch {
    // Unreachable: the refresh token runs out on its own.
  } finally {
    clearSession();
  }
}

// --- the API, by service -------------------------------------------------------------

export const tenants = {
  list: ({ pageSize = 50, pageToken = "", filter = "", showDeleted = false } = {}) =>
    request("GET", "/v1/tenants", { query: { page_size: pageSize, page_token: pageToken, filter,
      show_deleted: showDeleted ? "true" : "" } }),
  get: (name) => request("GET", namePath(name)),
  create: (tenantId, tenant, requestId) =>
    request("POST", "/v1/tenants", { body: { tenant_id: tenantId, tenant, request_id: requestId } }),
  update: (name, fields, mask, etag = "") =>
    request("PATCH", namePath(name), { query: { update_mask: mask.join(",") }, body: { ...fields, etag } }),
  suspend: (name, reason = "") =>
    request("POST", namePath(name, ":suspend"), { body: { reason, request_id: newRequestId() } }),
  resume: (name) => request("POST", namePath(name, ":resume"), { body: { request_id: newRequestId() } }),
  remove: (name, etag = "") =>
    request("DELETE", namePath(name), { query: { etag, request_id: newRequestId() } }),
  migrate: (name, targetStrategy, targetDatabaseServer = "") =>
    request("POST", namePath(name, ":migrate"), { body: { target_strategy: targetStrategy,
      target_database_server: targetDatabaseServer, request_id: newRequestId() } }),
};

export const operations = {
  list: ({ pageSize = 50, pageToken = "", filter = "" } = {}) =>
    request("GET", "/v1/operations", { query: { page_size: pageSize, page_token: pageToken, filter } }),
  get: (name) => request("GET", namePath(name)),
  cancel: (name) => request("POST", namePath(name, ":cancel"), { body: {} }),
  watch: watchOperation,
};

export const billing = {
  listPlans: () => request("GET", "/v1/plans", { query: { page_size: 100 } }),
  getSubscription: (tenantName) => request("GET", namePath(`${tenantName}/subscription`)),
  changePlan: (tenantName, plan, etag = "") =>
    request("POST", namePath(`${tenantName}/subscription`, ":changePlan"),
      { body: { plan, etag, request_id: newRequestId() } }),
  listInvoices: ({ pageSize = 50, pageToken = "", filter = "" } = {}) =>
    request("GET", "/v1/invoices", { query: { page_size: pageSize, page_token: pageToken, filter } }),
  payInvoice: (name) => request("POST", namePath(name, ":pay"), { body: { request_id: newRequestId() } }),
};

export const identity = {
  signUp: (email, password, displayName) =>
    request("POST", "/v1/auth:signUp", { body: { email, password, display_name: displayName } }),
  signIn: (email, password) => request("POST", "/v1/auth:signIn", { body: { email, password } }),
  currentUser: () => request("GET", "/v1/users/me"),
  listApiKeys: (parent, { pageSize = 100, pageToken = "" } = {}) =>
    request("GET", namePath(parent, "/apiKeys"), { query: { page_size: pageSize, page_token: pageToken } }),
  createApiKey: (parent, displayName, requestId = newRequestId()) =>
    request("POST", namePath(parent, "/apiKeys"), { query: { request_id: requestId },
      body: { display_name: displayName } }),
  deleteApiKey: (name) => request("DELETE", namePath(name)),
};

let whoAmIPromise = null;

// The signed-in user from GetCurrentUser, asked once per page and shared by every
// caller; the stored session keeps the fresh copy.
export function whoAmI() {
  if (!whoAmIPromise) {
    whoAmIPromise = identity.currentUser().then((user) => {
      rememberUser(user);
      return user;
    }, (err) => {
      whoAmIPromise = null;
      throw err;
    });
  }
  return whoAmIPromise;
}

export const backups = {
  list: (tenantName, { pageSize = 50, pageToken = "", filter = "" } = {}) =>
    request("GET", namePath(tenantName, "/backups"), { query: { page_size: pageSize, page_token: pageToken, filter } }),
  get: (name) => request("GET", namePath(name)),
  create: (tenantName, description = "", requestId = newRequestId()) =>
    request("POST", namePath(tenantName, "/backups"), { body: { description, request_id: requestId } }),
  restore: (name, targetTenantId = "", requestId = newRequestId()) =>
    request("POST", namePath(name, ":restore"), { body: { target_tenant_id: targetTenantId, request_id: requestId } }),
  remove: (name) => request("DELETE", namePath(name), { query: { request_id: newRequestId() } }),
  getPolicy: (tenantName) => request("GET", namePath(`${tenantName}/backupPolicy`)),
  download: downloadBackupPart,
};

export const admin = {
  listDatabaseServers: ({ pageSize = 100, pageToken = "", filter = "" } = {}) =>
    request("GET", "/v1/databaseServers", { query: { page_size: pageSize, page_token: pageToken, filter } }),
  createDatabaseServer: (id, server) =>
    request("POST", "/v1/databaseServers", { query: { database_server_id: id, request_id: newRequestId() },
      body: server }),
  updateDatabaseServer: (name, fields, mask, etag = "") =>
    request("PATCH", namePath(name), { query: { update_mask: mask.join(",") }, body: { ...fields, etag } }),
  listAuditEvents: ({ pageSize = 50, pageToken = "", filter = "" } = {}) =>
    request("GET", "/v1/auditEvents", { query: { page_size: pageSize, page_token: pageToken, filter } }),
  listUsers: ({ pageSize = 50, pageToken = "", filter = "" } = {}) =>
    request("GET", "/v1/users", { query: { page_size: pageSize, page_token: pageToken, filter } }),
  updateUser: (name, fields, mask, etag = "") =>
    request("PATCH", namePath(name), { query: { update_mask: mask.join(","), request_id: newRequestId() },
      body: { ...fields, etag } }),
};

export const monitoring = {
  platformStatus: () => request("GET", "/v1/platformStatus"),
};
