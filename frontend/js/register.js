// Create an account with IdentityService.SignUp, then go to the dashboard.
import { identity, saveSession } from "./api-client.js";
import { busy, notify, notifyError } from "./components.js";

const form = document.getElementById("register-form");
const notice = document.getElementById("notice");

function problem(input, id, text) {
  const p = document.getElementById(id);
  p.textContent = text;
  p.hidden = !text;
  input.setAttribute("aria-invalid", text ? "true" : "false");
  return !text;
}

function check() {
  const email = form.email.value.trim();
  const okEmail = problem(form.email, "email-problem",
    email && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email) ? "That does not look like an email address." : "");
  const okMatch = problem(form.password2, "password2-problem",
    form.password2.value && form.password2.value !== form.password.value ? "The two passwords differ." : "");
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
    return;
  }
  if (password.length < 10) {
    notify(notice, "error", "Choose a password of at least 10 characters.");
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
    notifyError(notice, err, "Your account could not be created.");
  }
});
