// The frame every page shares: skip link, header with navigation and the signed-in
// user, footer. Pages hold <header id="site-header"> and <footer id="site-footer">.
// Pages other than the landing, sign-in and registration pages need a session: without
// one the browser goes to the sign-in page, which comes back afterwards.
import {
  getSession, isPublicPage, requireSession, scheduleRefresh, sessionUser, signOut, whoAmI,
} from "./api-client.js";
import { el } from "./components.js";

// [href, label, page file, who sees it: "all", "user" (signed in) or "admin"]
const LINKS = [
  ["index.html#plans", "Plans", "index.html", "all"],
  ["dashboard.html", "Dashboard", "dashboard.html", "user"],
  ["tenant-create.html", "New tenant", "tenant-create.html", "user"],
  ["billing.html", "Billing", "billing.html", "user"],
  ["apikeys.html", "API keys", "apikeys.html", "user"],
  ["admin.html", "Admin", "admin.html", "admin"],
];

function currentPage() {
  const p = location.pathname.split("/").pop();
  return p || "index.html";
}

function visible(who, user, signedIn) {
  if (who === "all") return true;
  if (who === "user") return signedIn;
  return signedIn && !!user && user.role === "ADMIN";
}

export function renderLayout() {
  const page = currentPage();
  const header = document.getElementById("site-header");
  if (header) {
    header.className = "site-header";
    const session = getSession();
    const user = sessionUser();
    const nav = el("nav", { class: "nav", id: "site-nav", "aria-label": "Main" });
    for (const [href, label, file, who] of LINKS) {
      if (!visible(who, user, !!session)) continue;
      const a = el("a", { href }, label);
      if (file === page && !(page === "index.html" && href.includes("#"))) a.setAttribute("aria-current", "page");
      nav.append(a);
    }
    nav.append(el("span", { class: "spacer" }));
    if (session) {
      const who = user && (user.display_name || user.email);
      nav.append(el("span", { class: "who", id: "signed-in-as" }, who ? `Signed in as ${who}` : "Signed in"));
      nav.append(el("button", { class: "btn btn-small", type: "button", id: "sign-out", onclick: onSignOut }, "Sign out"));
    } else {
      nav.append(el("a", { href: "login.html", "aria-current": page === "login.html" ? "page" : null }, "Sign in"));
      nav.append(el("a", { href: "register.html", class: "btn btn-primary btn-small",
        "aria-current": page === "register.html" ? "page" : null }, "Create account"));
    }
    const wasOpen = header.querySelector(".nav.open") !== null;
    if (wasOpen) nav.classList.add("open");
    const toggle = el("button", { class: "btn btn-small nav-toggle", type: "button", "aria-expanded": String(wasOpen),
      "aria-controls": "site-nav" }, "Menu");
    toggle.addEventListener("click", () => {
      const open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
    });
    header.replaceChildren(
      el("a", { class: "skip-link", href: "#main" }, "Skip to content"),
      el("div", { class: "bar" },
        el("a", { class: "brand", href: "index.html" },
          el("img", { src: "assets/favicon.svg", alt: "" }), "saasodoo"),
        toggle, nav));
  }
  const footer = document.getElementById("site-footer");
  if (footer) {
    footer.className = "site-footer";
    footer.replaceChildren(el("div", { class: "bar" },
      el("span", {}, "saasodoo: Odoo, hosted for you."),
      el("span", {}, el("a", { href: "/openapi.json" }, "API (OpenAPI)"), " · ",
        el("a", { href: "https://www.odoo.com/documentation/", rel: "noopener" }, "Odoo documentation"))));
  }
}

async function onSignOut(e) {
  const button = e.currentTarget;
  button.disabled = true;
  await signOut();
  location.href = "login.html?signed_out=1";
}

// Reads the user again (GetCurrentUser) so that a changed role or name shows at once;
// redraws the header when it differs from the stored one.
function shown(user) {
  return user ? [user.name, user.email, user.display_name, user.role, user.disabled].join("\n") : "";
}

async function refreshUser() {
  const before = shown(sessionUser());
  try {
    const user = await whoAmI();
    if (shown(user) !== before) {
      renderLayout();
      document.dispatchEvent(new CustomEvent("saasodoo:user", { detail: user }));
    }
  } catch {
    // The page's own calls report a platform that cannot answer.
  }
}

if (!isPublicPage()) requireSession();
renderLayout();
if (getSession()) {
  scheduleRefresh();
  refreshUser();
}
