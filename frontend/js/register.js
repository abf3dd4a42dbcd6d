// Create an account with IdentityService.SignUp, then go to the dashboard. The password
// rule (at least 10 characters, the server's) is shown live while typing.
import { identity, saveSession, waitWords } from "./api-client.js";
import { busy, clear, el, notify, notifyError } from "./components.js";

const MIN_PASSWORD = 10;
const form = document.getElementById("register-form");
const notice = document.getElementById("notice");
const hint = document.getElementById("password-hint");

function problem(input, id, text) {
  const p = document.getElementById(id);
  p.textContent = text;
  p.hidden = !text;
  input.setAttribute("aria-invalid", text ? "true" : "false");
  return !text;
}

function passwordHint() {
  const n = form.password.value.length;
  if (!n) {
    hint.textContent = `At least ${MIN_PASSWORD} characters.`;
    hint.className = "hint";
    form.password.removeAttribute("aria-invalid");
  } else if (n < MIN_PASSWORD) {
    const more = MIN_PASSWORD - n;
    hint.textContent = `At least ${MIN_PASSWORD} characters: ${more} more to go.`;
    hint.className = "problem";
    form.password.setAttribute("aria-invalid", "true");
  } else {
    hint.textContent = "Long enough.";
    hint.className = "fine";
    form.password.setAttribute("aria-invalid", "false");
  }
  hint.dataset.ok = String(n >= MIN_PASSWORD);
  return n >= MIN_PASSWORD;
}

function check() {
  const email = form.email.value.trim();
  const okEmail = problem(form.email, "email-problem",
    email && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email) ? "That does not look like an email address." : "");
  const okMatch = problem(form.password2, "password2-problem",
    form.password2.value && form.password2.value !== form.password.value ? "The two passwords differ." : "");
  passwordHint();
  return okEmail && okMatch;
}

form.addEventListener("input", check);

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = form.display_name.value.trim();
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!check()) return;
  if (!name || !email) {
    notify(notice, "error", "Enter your name and your email address.");
    (name ? form.email : form.display_name).focus();
    return;
  }
  if (password.length < MIN_PASSWORD) {
    notify(notice, "error", `Choose a password of at least ${MIN_PASSWORD} characters.`);
    form.password.focus();
    return;
  }
  if (password !== form.password2.value) {
    notify(notice, "error", "The two passwords differ.");
    form.password2.focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  try {
    const session = await busy(button, () => identity.signUp(email, password, name));
    saveSession(session);
    location.href = "dashboard.html";
  } catch (err) {
    if (err.codeName === "ALREADY_EXISTS") {
      clear(notice).append(el("div", { class: "alert alert-error", role: "alert" },
        el("p", {}, el("strong", {}, "Your account could not be created.")),
        el("p", { class: "message" }, `There is an account for ${email} already. `,
          el("a", { href: "login.html" }, "Sign in"), " instead.")));
    } else if (err.codeName === "RESOURCE_EXHAUSTED" && err.retryAfterSeconds) {
      notify(notice, "error", `Too many attempts from here. Try again in ${waitWords(err.retryAfterSeconds)}.`,
        { title: "Your account could not be created.", reference: err.requestId });
    } else {
      notifyError(notice, err, "Your account could not be created.");
    }
  }
});
