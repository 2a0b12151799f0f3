// A page on another origin than authd, using its API the way a single-page
// app would: cookies sent cross-origin (credentialed CORS), and the
// session's CSRF token echoed in X-CSRF-Token on every unsafe request.
// openapi.yaml is the contract; these comments say why it is used so.
"use strict";

// Where authd is. By default this page's own host on port 8080: the session
// cookie is SameSite=Lax, so the browser sends it only to the same site
// (same host name; the port may differ). Open the page at 127.0.0.1 to talk
// to authd at 127.0.0.1, not at localhost.
//
// `?api=http://127.0.0.1:9999` points the page at another authd on this
// machine (the browser test does so). Only loopback addresses are taken,
// so that a link cannot make the page send passwords to someone else. In
// your own app, write your API's address here instead.
const API = (() => {
  const fallback = `${location.protocol}//${location.hostname}:8080`;
  const asked = new URLSearchParams(location.search).get("api");
  if (asked === null) return fallback;
  try {
    const url = new URL(asked);
    if (["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) return url.origin;
  } catch {
    // Not a URL: refused below, like a foreign one.
  }
  console.warn(`?api=${asked} ignored: not a loopback http(s) address`);
  return fallback;
})();

// The session's CSRF token, from the login answer or GET /api/me. Kept in
// memory only: after a reload GET /api/me gives it again. (authd's
// readable csrf_token cookie belongs to authd's host, which a page on
// another site cannot read, so the page does not count on it.)
let csrfToken = null;

// An error answer (a problem document: `type`, `detail`, and `errors` per
// field for a 422), or authd out of reach.
class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `authd answered ${status}.`);
    this.status = status;
    this.errors = problem?.errors ?? {};
    this.problem = problem ?? {};
  }
}

async function call(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // authd refuses an unsafe request that carries the session cookie
  // without the session's token (403): a forged request from another site
  // carries the cookie but cannot know the token.
  if (method !== "GET" && csrfToken !== null) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // Send authd's cookies to it, and take the ones it sets, although
      // it is another origin.
      credentials: "include",
    });
  } catch {
    // The browser tells a script nothing more, on purpose: a refused CORS
    // request and a server that is down look the same.
    throw new ApiError(0, {
      detail: `Cannot reach authd at ${API}. Is it running, with CORS_ORIGINS=${location.origin}?`,
    });
  }
  const answer = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

const $ = (id) => document.getElementById(id);

function say(text) {
  $("message").textContent = text;
}

// Shows a failed request beside the form that sent it: each field's
// messages under that field, and the problem's detail on top. When every
// message is under its field, the top says so in words for people
// (authd's detail for a 422 points developers to `errors`).
function showError(form, error) {
  clearErrors(form);
  const unplaced = [];
  for (const [field, messages] of Object.entries(error.errors)) {
    const input = form.elements.namedItem(field);
    const slot = $(`${form.id}-${field}-error`);
    if (input && slot) {
      input.setAttribute("aria-invalid", "true");
      slot.textContent = messages.join(" ");
    } else {
      unplaced.push(...messages);
    }
  }
  const placed = Object.keys(error.errors).length > 0 && unplaced.length === 0;
  $(`${form.id}-error`).textContent = placed
    ? "Please correct the fields marked below."
    : [error.message, ...unplaced].join(" ");
}

function clearErrors(form) {
  for (const slot of form.querySelectorAll(".error")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// Asks authd who is logged in, and shows it. authd, not the page, knows
// whether the session still lives (it may have been ended elsewhere).
async function refresh() {
  let me;
  try {
    me = await call("GET", "/api/me");
  } catch (error) {
    if (error.status !== 401) {
      say(error.message);
      return;
    }
    csrfToken = null;
    $("account").hidden = true;
    $("guest").hidden = false;
    $("me-status").textContent = "Not logged in.";
    return;
  }
  csrfToken = me.csrf_token ?? null;
  const until = new Date(me.session.expires_at).toLocaleString();
  $("me-status").textContent =
    `Logged in as ${me.username} (${me.email}), ` +
    (me.session.remember ? `remembered until ${until}.` : `until ${until} at the latest.`);
  $("me-amr").textContent =
    `This session was made with ${me.session.amr.map((method) => METHODS[method] ?? method).join(" and ")}.`;
  $("guest").hidden = true;
  $("account").hidden = false;
  await Promise.all([listSessions(), listPasskeys()]);
}

// How a session was made (`amr` in GET /api/me), in words.
const METHODS = {
  pwd: "a password",
  otp: "a code from an authenticator app",
  recovery: "a recovery code",
  passkey: "a passkey",
};

async function listSessions() {
  let sessions;
  try {
    sessions = await call("GET", "/api/sessions");
  } catch (error) {
    $("account-error").textContent = error.message;
    return;
  }
  $("account-error").textContent = "";
  $("sessions").replaceChildren(...sessions.map(sessionItem));
}

// textContent only, never HTML: a session's user agent is whatever its
// client sent.
function sessionItem(session) {
  const item = document.createElement("li");
  item.dataset.id = session.id;
  item.dataset.current = session.current;
  const who = document.createElement("strong");
  who.textContent = session.current ? "This device" : "Another device";
  const since = new Date(session.created_at).toLocaleString();
  const until = new Date(session.expires_at).toLocaleString();
  item.append(
    who,
    `: ${session.user_agent ?? "an unnamed client"} from ${session.ip ?? "an unknown address"}, ` +
      `since ${since}, until ${until}${session.remember ? " (remembered)" : ""}. `,
  );
  if (!session.current) {
    const end = document.createElement("button");
    end.type = "button";
    end.textContent = "End";
    end.setAttribute("aria-label", `End the session of ${session.user_agent ?? "an unnamed client"}`);
    end.addEventListener("click", () => endSession(session.id));
    item.append(end);
  }
  return item;
}

async function endSession(id) {
  try {
    await call("DELETE", `/api/sessions/${encodeURIComponent(id)}`);
    say("That session has ended: its cookie or token no longer works.");
  } catch (error) {
    $("account-error").textContent = error.message;
  }
  await listSessions();
}

// Passkeys (WebAuthn). authd answers each ceremony's options in WebAuthn's
// JSON form and takes the browser's answer in that form too, so the page
// converts nothing by hand: parse...FromJSON() on the way in, toJSON() on
// the way out. A ceremony is two requests to authd with the browser's
// dialog between them: start (authd makes a challenge, remembered under
// `challenge_id`), navigator.credentials.create() or .get(), finish.
//
// Browsers allow passkeys only on a secure origin (https, or http on
// localhost) whose host is the relying party authd names (WEBAUTHN_RP_ID)
// or under it. An IP address never is: open this page at localhost, not
// 127.0.0.1.

// Makes a passkey for the options of POST /api/passkeys/register/start.
async function createPasskey(options) {
  needPasskeys();
  try {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
    const credential = await navigator.credentials.create({ publicKey });
    return credential.toJSON();
  } catch (error) {
    throw refused(error);
  }
}

// Signs authd's challenge with a passkey, for the options of
// POST /api/passkeys/login/start.
async function usePasskey(options) {
  needPasskeys();
  try {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
    const credential = await navigator.credentials.get({ publicKey });
    return credential.toJSON();
  } catch (error) {
    throw refused(error);
  }
}

function needPasskeys() {
  if (typeof window.PublicKeyCredential?.parseCreationOptionsFromJSON !== "function") {
    throw new ApiError(0, {
      detail: window.isSecureContext
        ? "This browser cannot use passkeys here (it lacks WebAuthn's JSON methods)."
        : "Passkeys need a secure page: https, or http://localhost.",
    });
  }
}

// The browser's refusal (a DOMException), said for people.
function refused(error) {
  const why = {
    // Also a timeout, and the browser's own privacy answer for some
    // failures: it does not tell the page which.
    NotAllowedError: "No passkey was used: the browser's dialog was closed or timed out.",
    InvalidStateError: "This device already holds one of your passkeys.",
    SecurityError:
      `This page's host (${location.hostname}) is not under authd's relying party ` +
      "(WEBAUTHN_RP_ID); open it at localhost, not 127.0.0.1.",
  }[error.name];
  return new ApiError(0, { detail: why ?? `The browser refused: ${error.message}` });
}

async function listPasskeys() {
  let passkeys;
  try {
    passkeys = await call("GET", "/api/passkeys");
  } catch (error) {
    $("passkeys-error").textContent = error.message;
    return;
  }
  $("passkeys-error").textContent = "";
  $("passkeys").replaceChildren(...passkeys.map(passkeyItem));
}

function passkeyItem(passkey) {
  const item = document.createElement("li");
  item.dataset.id = passkey.id;
  const name = document.createElement("strong");
  name.textContent = passkey.name;
  const added = new Date(passkey.created_at).toLocaleString();
  const used = passkey.last_used_at ? new Date(passkey.last_used_at).toLocaleString() : "never";
  item.append(name, `: added ${added}, last used ${used}.`);
  return item;
}

$("passkey-add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  try {
    // The password again: whoever finds the device unlocked cannot add
    // a way in of their own.
    const started = await call("POST", "/api/passkeys/register/start", {
      current_password: form.elements.current_password.value,
    });
    const credential = await createPasskey(started.publicKey);
    const name = form.elements.name.value.trim();
    const passkey = await call("POST", "/api/passkeys/register/finish", {
      challenge_id: started.challenge_id,
      ...(name === "" ? {} : { name }),
      credential,
    });
    clearErrors(form);
    form.reset();
    say(`Passkey ${passkey.name} added. Your next login can use it.`);
  } catch (error) {
    showError(form, error);
    return;
  }
  await listPasskeys();
});

// A login with a passkey alone: the options name no account, so the
// browser offers every passkey it holds for this site, and the one chosen
// says whose it is.
$("passkey-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  try {
    const started = await call("POST", "/api/passkeys/login/start", {});
    const credential = await usePasskey(started.publicKey);
    const login = await call("POST", "/api/passkeys/login/finish", {
      challenge_id: started.challenge_id,
      credential,
      remember_me: $("login-remember").checked,
    });
    loggedIn(login);
    clearErrors(form);
  } catch (error) {
    showError(form, error);
    return;
  }
  await refresh();
});

// The login's second step, while the password was right but the account
// asks for more: the `mfa_token` of authd's mfa-required answer.
let mfaToken = null;

function askSecondStep(problem) {
  mfaToken = problem.mfa_token;
  clearErrors($("second-step"));
  $("login").hidden = true;
  $("second-step").hidden = false;
  $("second-step-passkey").focus();
}

function endSecondStep() {
  mfaToken = null;
  $("second-step").hidden = true;
  $("login").hidden = false;
}

$("second-step").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  try {
    // With the mfa_token the options name that account's passkeys only.
    const started = await call("POST", "/api/passkeys/login/start", { mfa_token: mfaToken });
    const credential = await usePasskey(started.publicKey);
    const login = await call("POST", "/api/login/mfa", {
      mfa_token: mfaToken,
      passkey: { challenge_id: started.challenge_id, credential },
    });
    loggedIn(login);
    endSecondStep();
  } catch (error) {
    if (error.problem.type === "urn:authd:problem:mfa-expired") {
      // Used, expired or voided: only a new login makes another.
      endSecondStep();
      showError($("login"), error);
    } else {
      showError(form, error);
    }
    return;
  }
  await refresh();
});

$("second-step-cancel").addEventListener("click", endSecondStep);

// A login's answer, however it was made: the session's cookies are set
// already; the page keeps the CSRF token.
function loggedIn(login) {
  csrfToken = login.csrf_token;
  say("");
}

$("register").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const fields = Object.fromEntries(new FormData(form));
  try {
    const user = await call("POST", "/api/register", fields);
    clearErrors(form);
    form.reset();
    // Registering does not log in.
    say(`Account ${user.username} created. Log in now.`);
    $("login-username").value = user.username;
    $("login-password").focus();
  } catch (error) {
    showError(form, error);
  }
});

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  try {
    const login = await call("POST", "/api/login", {
      username: form.elements.username.value,
      password: form.elements.password.value,
      remember_me: form.elements.remember_me.checked,
    });
    loggedIn(login);
    clearErrors(form);
    form.reset();
  } catch (error) {
    // The right password of an account with a second factor: no session
    // yet, and a token for the second step.
    const { type, methods = [] } = error.problem;
    if (type === "urn:authd:problem:mfa-required" && methods.includes("passkey")) {
      clearErrors(form);
      form.elements.password.value = "";
      askSecondStep(error.problem);
    } else if (type === "urn:authd:problem:mfa-required") {
      const detail =
        "This account's second step is a code from an authenticator app, which this page does not ask for.";
      showError(form, new ApiError(401, { detail }));
    } else {
      showError(form, error);
    }
    return;
  }
  await refresh();
});

$("logout").addEventListener("click", async () => {
  try {
    await call("POST", "/api/logout");
  } catch (error) {
    $("account-error").textContent = error.message;
    return;
  }
  say("Logged out.");
  await refresh();
});

$("sessions-refresh").addEventListener("click", listSessions);

$("api").textContent = API;
refresh();
