// tokengate console: the only script the pages load. It does what
// browsers offer to scripts alone: WebAuthn (security keys) and copying a
// secret. Everything else works without it.
"use strict";

const b64 = {
  decode(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(s + "===".slice((s.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  },
  encode(buf) {
    const bin = String.fromCharCode(...new Uint8Array(buf));
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

async function post(url, csrf, body) {
  const res = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
    body: body === undefined ? "{}" : body,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.detail || "the console refused (" + res.status + ")");
  return data;
}

function show(form, err) {
  const p = form.querySelector(".stepup-error");
  if (!p) return;
  p.textContent = err.message || String(err);
  p.hidden = false;
  p.focus();
}

// Approving a request that needs a step-up: get a challenge bound to this
// request, have the key sign it, and send the assertion with the form.
function stepUpApprovals() {
  for (const form of document.querySelectorAll("form[data-step-up]")) {
    form.addEventListener("submit", async (ev) => {
      if (!ev.submitter || ev.submitter.value !== "approve") return;
      if (form.elements.assertion.value) return;
      ev.preventDefault();
      try {
        const opts = await post(form.dataset.stepUp, form.dataset.stepUpCsrf);
        const pk = opts.publicKey;
        pk.challenge = b64.decode(pk.challenge);
        for (const c of pk.allowCredentials || []) c.id = b64.decode(c.id);
        const cred = await navigator.credentials.get({ publicKey: pk });
        form.elements.assertion.value = JSON.stringify({
          id: cred.id, rawId: b64.encode(cred.rawId), type: cred.type,
          response: {
            clientDataJSON: b64.encode(cred.response.clientDataJSON),
            authenticatorData: b64.encode(cred.response.authenticatorData),
            signature: b64.encode(cred.response.signature),
            userHandle: cred.response.userHandle ? b64.encode(cred.response.userHandle) : "",
          },
        });
        const approve = document.createElement("input");
        approve.type = "hidden"; approve.name = "decision"; approve.value = "approve";
        form.appendChild(approve);
        form.submit();
      } catch (err) { show(form, err); }
    });
  }
}

// Registering a security key.
function registration() {
  const form = document.querySelector("form.register");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const opts = await post(form.dataset.begin, form.dataset.beginCsrf);
      const pk = opts.publicKey;
      pk.challenge = b64.decode(pk.challenge);
      pk.user.id = b64.decode(pk.user.id);
      for (const c of pk.excludeCredentials || []) c.id = b64.decode(c.id);
      const cred = await navigator.credentials.create({ publicKey: pk });
      await post(form.dataset.finish + "?name=" + encodeURIComponent(form.elements.name.value), form.dataset.finishCsrf, JSON.stringify({
        id: cred.id, rawId: b64.encode(cred.rawId), type: cred.type,
        response: {
          clientDataJSON: b64.encode(cred.response.clientDataJSON),
          attestationObject: b64.encode(cred.response.attestationObject),
        },
      }));
      location.reload();
    } catch (err) { show(form, err); }
  });
}

function copyButtons() {
  for (const b of document.querySelectorAll("button[data-copy]")) {
    b.addEventListener("click", async () => {
      const field = document.getElementById(b.dataset.copy);
      await navigator.clipboard.writeText(field.value);
      b.textContent = "Copied";
    });
  }
}

stepUpApprovals();
registration();
copyButtons();
