// The tenant id rule, the same as the server's (server/tenants/validate.c): it becomes
// the host name and the database name.

export const TENANT_ID_PATTERN = /^[a-z][a-z0-9-]{1,38}[a-z0-9]$/;

export const TENANT_ID_RULE =
  "3 to 40 characters: lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen.";

export const RESERVED_TENANT_IDS = new Set([
  "www", "api", "admin", "app", "apps", "mail", "smtp", "imap", "pop", "pop3", "ftp", "ns1", "ns2",
  "dns", "mx", "webmail", "static", "assets", "cdn", "blog", "docs", "help", "support", "status",
  "billing", "dashboard", "login", "auth", "account", "portal", "console", "root", "postgres",
  "template0", "template1", "saasodoo", "odoo", "localhost", "grpc", "gateway", "metrics",
  "monitoring", "backup", "backups", "system", "operator", "signup", "register",
]);

// Returns "" when id is acceptable, otherwise a sentence saying what is wrong.
export function tenantIdProblem(id) {
  if (!id) return `Choose an id for the tenant: ${TENANT_ID_RULE}`;
  if (!TENANT_ID_PATTERN.test(id)) {
    let why = "";
    if (/[A-Z]/.test(id)) why = "Use lower-case letters only. ";
    else if (!/^[a-z]/.test(id)) why = "Start with a letter. ";
    else if (id.endsWith("-")) why = "Do not end with a hyphen. ";
    else if (id.length < 3) why = "Too short. ";
    else if (id.length > 40) why = "Too long. ";
    else if (/[^a-z0-9-]/.test(id)) why = "Only letters, digits and hyphens are allowed. ";
    return `${why}The id must be ${TENANT_ID_RULE}`;
  }
  if (RESERVED_TENANT_IDS.has(id)) return `"${id}" is reserved by the platform; choose another id.`;
  return "";
}

export const RESOURCE_ID_PATTERN = TENANT_ID_PATTERN;
