// Sign in with IdentityService.SignIn; the session is kept in this browser.
import { identity, saveSession } from "./api-client.js";
import { busy, notify, notifyError } from "./components.js";

const form = document.getElementById("login-form");
const notice = document.getElementById("notice");

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email || !password) {
    notify(notice, "error", "Enter your email and your password.");
    (email ? form.password : form.email).focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  try {
    const session = await busy(button, () => identity.signIn(email, password));
    saveSession(session);
    const next = new URLSearchParams(location.search).get("next");
    location.href = next && /^[a-z-]+\.html$/.test(next) ? next : "dashboard.html";
  } catch (err) {
    notifyError(notice, err, "You could not be signed in.");
  }
});
