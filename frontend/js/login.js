// Sign in with IdentityService.SignIn; the session is kept in this browser. Afterwards
// the browser goes back to the page that asked for a sign-in (?next=), or the dashboard.
import { identity, saveSession, waitWords } from "./api-client.js";
import { busy, notify, notifyError } from "./components.js";

const form = document.getElementById("login-form");
const notice = document.getElementById("notice");
const button = form.querySelector("button[type=submit]");
const params = new URLSearchParams(location.search);

// Only a page of this site, given as "page.html" with an optional query.
function safeNext(next) {
  return next && /^[a-z][a-z-]*\.html(\?[^#]*)?$/.test(next) ? next : "dashboard.html";
}

if (params.get("signed_out")) notify(notice, "info", "You are signed out. See you soon.");
else if (params.get("next")) notify(notice, "info", "Please sign in to continue.");

let waitTimer = 0;

// Keeps the button disabled while the platform asks to wait, counting down.
function holdOff(seconds) {
  clearInterval(waitTimer);
  let left = seconds;
  const label = "Sign in";
  button.disabled = true;
  const tick = () => {
    if (left <= 0) {
      clearInterval(waitTimer);
      button.disabled = false;
      button.textContent = label;
      return;
    }
    button.textContent = `Wait ${left} s`;
    left -= 1;
  };
  tick();
  waitTimer = setInterval(tick, 1000);
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  if (button.disabled) return;
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email || !password) {
    notify(notice, "error", "Enter your email and your password.");
    (email ? form.password : form.email).focus();
    return;
  }
  try {
    const session = await busy(button, () => identity.signIn(email, password));
    saveSession(session);
    location.href = safeNext(params.get("next"));
  } catch (err) {
    if (err.codeName === "UNAUTHENTICATED" || err.codeName === "NOT_FOUND") {
      notify(notice, "error", "Wrong email or password. Check both and try again.",
        { title: "You could not be signed in.", reference: err.requestId });
      form.password.select();
    } else if (err.codeName === "RESOURCE_EXHAUSTED") {
      const wait = err.retryAfterSeconds;
      notify(notice, "error", wait
        ? `Too many sign-in attempts. For your safety, try again in ${waitWords(wait)}.`
        : "Too many sign-in attempts. For your safety, wait a while before trying again.",
      { title: "Sign-in is paused.", reference: err.requestId });
      if (wait) holdOff(wait);
    } else if (err.codeName === "PERMISSION_DENIED") {
      notify(notice, "error", err.serverMessage
        ? `This account cannot sign in: ${err.serverMessage}`
        : "This account cannot sign in. It may have been disabled; contact support.",
      { title: "You could not be signed in.", reference: err.requestId });
    } else {
      notifyError(notice, err, "You could not be signed in.");
    }
  }
});
