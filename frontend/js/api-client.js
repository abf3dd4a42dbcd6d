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

  // The field the server named as wrong, when it sent a google.rpc.BadRequest.
  get field() {
    for (const d of this.details) {
      const v = d && d.field_violations && d.field_violations[0];
      if (v && v.field) return v.field;
    }
    return "";
  }
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
    case "RESOURCE_EXHAUSTED":
      return capitalize(msg || "The platform is busy; wait a moment and try again");
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

export function getSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    return s && s.access_token ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  localStorage.removeItem(SESSION_KEY);
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

async function send(method, path, { query, body, signal } = {}) {
  const requestId = newRequestId();
  const headers = { "X-Request-Id": requestId, Accept: "application/json" };
  const session = getSession();
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
  signOut: (refreshToken) => request("POST", "/v1/auth:signOut", { body: { refresh_token: refreshToken } }),
  currentUser: () => request("GET", "/v1/users/me"),
};

export const admin = {
  listDatabaseServers: ({ pageSize = 100, pageToken = "", filter = "" } = {}) =>
    request("GET", "/v1/databaseServers", { query: { page_size: pageSize, page_token: pageToken, filter } }),
  createDatabaseServer: (id, server) =>
    request("POST", "/v1/databaseServers", { query: { database_server_id: id, request_id: newRequestId() },
      body: server }),
  updateDatabaseServer: (name, fields, mask, etag = "") =>
    request("PATCH", namePath(name), { query: { update_mask: mask.join(",") }, body: { ...fields, etag } }),
  listAuditEvents: ({ pageSize = 50, filter = "" } = {}) =>
    request("GET", "/v1/auditEvents", { query: { page_size: pageSize, filter } }),
  listUsers: ({ pageSize = 50, filter = "" } = {}) =>
    request("GET", "/v1/users", { query: { page_size: pageSize, filter } }),
};

export const monitoring = {
  platformStatus: () => request("GET", "/v1/platformStatus"),
};
