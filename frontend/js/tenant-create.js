// Create a tenant: the id is checked as you type with the server's rule; the plan
// list comes from BillingService.ListPlans. On success the dashboard follows the
// provisioning operation.
import { billing, newRequestId, requireSession, tenants } from "./api-client.js";
import { busy, clear, el, errorBox, notifyError } from "./components.js";
import { planFeatures, planPrice } from "./plans.js";
import { tenantIdProblem } from "./validation.js";

const form = document.getElementById("create-form");
const idInput = document.getElementById("tenant-id");
const idStatus = document.getElementById("tenant-id-status");
const planOptions = document.getElementById("plan-options");
const button = document.getElementById("create-button");
const notice = document.getElementById("notice");

const wantedPlan = new URLSearchParams(location.search).get("plan") || "";
// One request id per distinct request, so a retry after a network failure is safe.
let requestId = newRequestId();
let lastRequest = "";
let touched = false;

function idState() {
  const id = idInput.value.trim();
  const problem = tenantIdProblem(id);
  return { id, problem };
}

function showIdState() {
  const { id, problem } = idState();
  const show = touched || id.length > 0;
  idStatus.className = problem ? "problem" : "fine";
  idStatus.textContent = !show ? "" : problem || `Your Odoo will answer at ${id}.<your platform domain>.`;
  idInput.setAttribute("aria-invalid", show && problem ? "true" : "false");
  updateButton();
}

function selectedPlan() {
  const checked = form.querySelector("input[name=plan]:checked");
  if (checked) return checked.value;
  const typed = form.querySelector("input[name=plan_name]");
  if (typed && typed.value.trim()) {
    const v = typed.value.trim();
    return v.startsWith("plans/") ? v : `plans/${v}`;
  }
  return "";
}

function updateButton() {
  button.disabled = Boolean(idState().problem) || !selectedPlan();
}

idInput.addEventListener("input", showIdState);
idInput.addEventListener("blur", () => { touched = true; showIdState(); });
form.addEventListener("change", updateButton);
form.addEventListener("input", updateButton);

async function loadPlans() {
  try {
    const resp = await billing.listPlans();
    const plans = resp.plans || [];
    if (!plans.length) throw Object.assign(new Error("no plans"), { sentence: "No plans are on offer right now." });
    const group = el("div", { class: "plan-choice" });
    plans.forEach((p, i) => {
      const checked = wantedPlan ? p.name === wantedPlan : i === 0;
      group.append(el("label", {},
        el("span", {}, el("input", { type: "radio", name: "plan", value: p.name, checked }), " ",
          el("strong", {}, p.display_name || p.name)),
        el("span", { class: "price" }, planPrice(p)),
        el("span", { class: "desc" }, planFeatures(p).slice(0, 3).join(" · "))));
    });
    clear(planOptions).append(group);
  } catch (err) {
    // No plan list: say why, and let the customer name the plan.
    const input = el("input", { type: "text", id: "plan-name", name: "plan_name", autocomplete: "off",
      spellcheck: "false", value: wantedPlan.replace(/^plans\//, ""), "aria-describedby": "plan-name-hint" });
    clear(planOptions).append(
      errorBox(err, "The list of plans cannot be shown right now."),
      el("div", { class: "field" },
        el("label", { for: "plan-name" }, "Plan name"),
        input,
        el("p", { class: "hint", id: "plan-name-hint" }, "The plan's id as your provider gave it, e.g. basic.")));
  }
  updateButton();
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  touched = true;
  showIdState();
  const { id, problem } = idState();
  const plan = selectedPlan();
  if (problem) {
    idInput.focus();
    return;
  }
  if (!plan) return;
  const tenant = { plan };
  const displayName = form.display_name.value.trim();
  if (displayName) tenant.display_name = displayName;
  const key = JSON.stringify([id, tenant]);
  if (key !== lastRequest) {
    requestId = newRequestId();
    lastRequest = key;
  }
  try {
    const op = await busy(button, () => tenants.create(id, tenant, requestId));
    location.href = `dashboard.html?operation=${encodeURIComponent(op.name)}&created=${encodeURIComponent(id)}`;
  } catch (err) {
    notifyError(notice, err, "The tenant was not created.");
    if (err.field === "tenant_id") idInput.focus();
    updateButton();
  }
});

if (requireSession()) {
  loadPlans();
  showIdState();
}
