// Landing page: the plans, straight from BillingService.ListPlans.
import { billing, getSession } from "./api-client.js";
import { alertBox, clear, el, errorBox, formatMoney, titleCase } from "./components.js";
import { planFeatures } from "./plans.js";

async function loadPlans() {
  const list = document.getElementById("plan-list");
  try {
    const resp = await billing.listPlans();
    const plans = resp.plans || [];
    clear(list);
    if (!plans.length) {
      list.append(el("p", { class: "empty" }, "No plans are on offer right now."));
      return;
    }
    for (const p of plans) {
      const id = p.name.split("/").pop();
      list.append(el("article", { class: "card plan-card", dataset: { plan: p.name } },
        el("h3", {}, p.display_name || id),
        el("div", { class: "price" }, formatMoney(p.price), " ",
          el("small", {}, p.billing_period ? `per ${p.billing_period === "yearly" ? "year" : "month"}` : "")),
        el("p", {}, p.description || ""),
        el("ul", {}, planFeatures(p).map((f) => el("li", {}, f))),
        el("a", { class: "btn btn-primary", href: `tenant-create.html?plan=${encodeURIComponent(p.name)}` },
          `Start with ${p.display_name || titleCase(id)}`)));
    }
  } catch (err) {
    clear(list);
    if (err.codeName === "UNAUTHENTICATED" && !getSession()) {
      clear(document.getElementById("plans-notice")).append(
        alertBox("info", "The plans and their prices are shown once you are signed in."),
        el("p", {}, el("a", { class: "btn btn-primary", href: "register.html" }, "Create an account"), " or ",
          el("a", { href: "login.html" }, "sign in"), "."));
      return;
    }
    clear(document.getElementById("plans-notice")).append(
      errorBox(err, "The plans cannot be shown right now."),
      el("p", {}, "You can still ", el("a", { href: "tenant-create.html" }, "start a tenant"),
        " by naming the plan you want."));
  }
}

loadPlans();
