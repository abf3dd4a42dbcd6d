// Billing: each tenant's subscription (BillingService.GetSubscription, ChangePlan)
// and the invoices (ListInvoices, PayInvoice).
import { billing, getSession, requireSession, tenants } from "./api-client.js";
import {
  alertBox, busy, clear, el, errorBox, formatMoney, formatTime, notifyError, shortName, td, titleCase,
} from "./components.js";

const subsBody = document.querySelector("#subscriptions tbody");
const invBody = document.querySelector("#invoices tbody");
const subsNotice = document.getElementById("subs-notice");
const invNotice = document.getElementById("invoices-notice");
let plans = null;

function ownerFilter() {
  const s = getSession();
  return s && s.user && s.user.name ? `owner = "${s.user.name}"` : "";
}

function emptyRow(cols, text) {
  return el("tr", {}, el("td", { colspan: cols, class: "empty" }, text));
}

function planPicker(tenant, sub) {
  if (!plans || !plans.length) return el("span", { class: "sub" }, "—");
  const id = shortName(tenant.name);
  const select = el("select", { "aria-label": `New plan for ${id}` },
    plans.map((p) => el("option", { value: p.name, selected: p.name === sub.plan }, p.display_name || shortName(p.name))));
  const msg = el("div", { "aria-live": "polite" });
  const button = el("button", { class: "btn btn-small", type: "button" }, "Change");
  button.addEventListener("click", async () => {
    if (select.value === sub.plan) return;
    try {
      await busy(button, () => billing.changePlan(tenant.name, select.value, sub.etag));
      clear(msg).append(alertBox("ok", `The plan of ${id} is being changed; follow it on the dashboard.`));
    } catch (err) {
      clear(msg).append(errorBox(err));
    }
  });
  return el("div", {}, el("div", { class: "actions" }, select, button), msg);
}

async function loadSubscriptions() {
  let list;
  try {
    list = (await tenants.list({ pageSize: 100, filter: ownerFilter() })).tenants || [];
  } catch (err) {
    clear(subsBody);
    notifyError(subsNotice, err, "Your tenants cannot be listed right now.");
    return;
  }
  clear(subsBody);
  if (!list.length) {
    subsBody.append(emptyRow(5, "No tenants, so nothing to bill yet."));
    return;
  }
  try {
    plans = (await billing.listPlans()).plans || [];
  } catch {
    plans = null; // the plan picker is left out; the subscriptions say why below
  }
  for (const t of list) {
    const id = shortName(t.name);
    try {
      const sub = await billing.getSubscription(t.name);
      subsBody.append(el("tr", { dataset: { tenant: id } },
        td("Tenant", t.display_name || id),
        td("Plan", titleCase(shortName(sub.plan))),
        td("State", el("span", { class: "badge" }, titleCase(sub.state))),
        td("Current period", sub.current_period_end
          ? `${formatTime(sub.current_period_start)} – ${formatTime(sub.current_period_end)}` : "—"),
        td("Change plan", planPicker(t, sub))));
    } catch (err) {
      // The same answer for every tenant: say it once.
      clear(subsBody);
      notifyError(subsNotice, err, "Subscriptions cannot be shown right now.");
      return;
    }
  }
}

async function loadInvoices() {
  try {
    const resp = await billing.listInvoices({ pageSize: 50 });
    clear(invBody);
    const invoices = resp.invoices || [];
    if (!invoices.length) invBody.append(emptyRow(7, "No invoices yet."));
    for (const inv of invoices) {
      const id = shortName(inv.name);
      const actions = el("div", { class: "actions" });
      const msg = el("div", { "aria-live": "polite" });
      if (inv.state === "OPEN") {
        const pay = el("button", { class: "btn btn-small btn-primary", type: "button", "aria-label": `Pay invoice ${id}` }, "Pay");
        pay.addEventListener("click", async () => {
          try {
            const paid = await busy(pay, () => billing.payInvoice(inv.name));
            clear(msg).append(alertBox("ok", `Invoice ${id} is ${titleCase(paid.state).toLowerCase()}.`));
            pay.remove();
          } catch (err) {
            clear(msg).append(errorBox(err));
          }
        });
        actions.append(pay);
      }
      invBody.append(el("tr", { dataset: { invoice: id } },
        td("Invoice", id), td("Tenant", shortName(inv.tenant)), td("Date", formatTime(inv.create_time)),
        td("Total", formatMoney(inv.total)), td("Due", formatTime(inv.due_time)),
        td("State", el("span", { class: "badge" }, titleCase(inv.state))),
        el("td", { class: "actions-cell" }, actions, msg)));
    }
  } catch (err) {
    clear(invBody);
    notifyError(invNotice, err, "Invoices cannot be shown right now.");
  }
}

if (requireSession()) {
  loadSubscriptions();
  loadInvoices();
}
