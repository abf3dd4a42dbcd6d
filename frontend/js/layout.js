// The frame every page shares: skip link, header with navigation and the signed-in
// user, footer. Pages hold <header id="site-header"> and <footer id="site-footer">.
import { clearSession, getSession, identity } from "./api-client.js";
import { el } from "./components.js";

const LINKS = [
  ["index.html#plans", "Plans", "index.html"],
  ["dashboard.html", "Dashboard", "dashboard.html"],
  ["tenant-create.html", "New tenant", "tenant-create.html"],
  ["billing.html", "Billing", "billing.html"],
  ["admin.html", "Admin", "admin.html"],
];

function currentPage() {
  const p = location.pathname.split("/").pop();
  return p || "index.html";
}

export function renderLayout() {
  const page = currentPage();
  const header = document.getElementById("site-header");
  if (header) {
    header.className = "site-header";
    const nav = el("nav", { class: "nav", id: "site-nav", "aria-label": "Main" });
    for (const [href, label, file] of LINKS) {
      const a = el("a", { href }, label);
      if (file === page && !(page === "index.html" && href.includes("#"))) a.setAttribute("aria-current", "page");
      nav.append(a);
    }
    nav.append(el("span", { class: "spacer" }));
    const session = getSession();
    if (session) {
      const who = session.user && (session.user.display_name || session.user.email);
      nav.append(el("span", { class: "who" }, who ? `Signed in as ${who}` : "Signed in"));
      nav.append(el("button", { class: "btn btn-small", type: "button", onclick: signOut }, "Sign out"));
    } else {
      nav.append(el("a", { href: "login.html", "aria-current": page === "login.html" ? "page" : null }, "Sign in"));
      nav.append(el("a", { href: "register.html", class: "btn btn-primary btn-small",
        "aria-current": page === "register.html" ? "page" : null }, "Create account"));
    }
    const toggle = el("button", { class: "btn btn-small nav-toggle", type: "button", "aria-expanded": "false",
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

async function signOut() {
  const session = getSession();
  clearSession();
  try {
    if (session && session.refresh_token) await identity.signOut(session.refresh_token);
  } catch {
    // The local session is gone either way.
  }
  location.href = "index.html";
}

renderLayout();
