// The profiles page, over the admin API (/api/profiles, /api/keys). Every value from the API is put in the page with
// textContent or as a form value: nothing from the API is ever parsed as HTML.
(function () {
  "use strict";
  const API = "/api/profiles";
  const OWN_FIELDS = ["id", "name", "mode", "auth", "redact_secrets", "created_at", "updated_at", "connect_urls"];
  const KEYS_API = "/api/keys";
  const EMPTY_POLICIES = { tool_invocation_policies: [], trusted_data_policies: [] };

  const statusLine = document.getElementById("profiles-status");
  const list = document.getElementById("profile-list");
  const newButton = document.getElementById("new-profile");
  const editor = document.getElementById("editor");
  const editorTitle = document.getElementById("editor-title");
  const fName = document.getElementById("f-name");
  const fMode = document.getElementById("f-mode");
  const fRedact = document.getElementById("f-redact");
  const fAuth = document.getElementById("f-auth");
  const fCredProvider = document.getElementById("f-cred-provider");
  const fCredSecret = document.getElementById("f-cred-secret");
  const fPolicies = document.getElementById("f-policies");
  const editorError = document.getElementById("editor-error");
  let editing = null; // the profile being edited, or null for a new one

  const el = window.WardenAdmin.el;
  const errorText = window.WardenAdmin.errorText;
  const send = window.WardenAdmin.send;

  async function copy(text, button) {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
      } else {
        const area = el("textarea", { readonly: "" });
        area.value = text;
        document.body.appendChild(area);
        area.select();
        document.execCommand("copy");
        area.remove();
      }
      button.textContent = "Copied";
    } catch (err) {
      button.textContent = "Copy failed";
    }
    window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
  }

  function card(profile) {
    const title = el("h3", {}, [
      el("span", { class: "name", text: profile.name || "(unnamed)" }),
      el("span", { class: "badge" + (profile.mode === "restrictive" ? " bad" : ""), text: profile.mode || "?" }),
    ]);
    if (profile.redact_secrets) title.appendChild(el("span", { class: "badge warn", text: "masks secrets" }));
    title.appendChild(el("span", { class: "badge auth", text: profile.auth === "managed" ? "managed keys" : "passthrough" }));
    // Budgets and rate limits, one short line each: "$5 / day per agent", "60 req/min per user".
    const limits = (profile.budgets || []).map(function (b) {
      return "$" + b.usd + " / " + b.period + (b.scope === "profile" ? "" : " per " + b.scope);
    }).concat((profile.rate_limits || []).map(function (r) {
      const parts = [];
      if (r.requests_per_minute) parts.push(r.requests_per_minute + " req/min");
      if (r.tokens_per_minute) parts.push(r.tokens_per_minute + " tokens/min");
      return parts.join(", ") + (r.scope === "profile" ? "" : " per " + r.scope);
    }));
    if (limits.length) title.appendChild(el("span", { class: "badge limits", text: limits.join(" · ") }));
    const stored = Object.keys(profile.credentials || {});
    const credentials = el("p", { class: "hint credentials", text: "provider credentials: " +
      (stored.length ? stored.join(", ") + " (set)" : "none") });
    const connect = el("div", { class: "connect" });
    Object.entries(profile.connect_urls || {}).forEach(function ([provider, url]) {
      const button = el("button", { type: "button", class: "secondary copy", text: "Copy" });
      button.addEventListener("click", function () { copy(String(url), button); });
      connect.appendChild(el("span", { class: "provider", text: provider }));
      connect.appendChild(el("code", { class: "url", text: String(url) }));
      connect.appendChild(button);
    });
    const edit = el("button", { type: "button", class: "secondary edit", text: "Edit" });
    edit.addEventListener("click", function () { openEditor(profile); });
    const remove = el("button", { type: "button", class: "danger delete", text: "Delete" });
    remove.addEventListener("click", function () { removeProfile(profile); });
    const counts = (profile.tool_invocation_policies || []).length + " tool invocation, " +
      (profile.trusted_data_policies || []).length + " trusted data policies";
    const box = el("div", { class: "profile" }, [
      title,
      el("p", { class: "hint" }, [el("span", { text: "id " }), el("code", { class: "id", text: String(profile.id) }),
        el("span", { text: " · " + counts })]),
      connect,
      credentials,
      keysSection(profile),
      // The default profile can be changed but not deleted.
      el("div", { class: "buttons" }, profile.id === "default" ? [edit] : [edit, remove]),
    ]);
    box.dataset.id = String(profile.id);
    return box;
  }

  // -- Warden keys: listed by prefix; a secret is shown once, in the answer that made it. ----------------------
  function keysSection(profile) {
    const section = el("div", { class: "keys" });
    const rows = el("ul", { class: "key-list" });
    const shown = el("p", { class: "secret-once", hidden: "" });
    const agent = el("input", { type: "text", class: "key-agent", placeholder: "agent id", maxlength: "128" });
    const create = el("button", { type: "button", class: "secondary create-key", text: "New key" });
    const problem = el("p", { class: "error", role: "alert" });
    function showSecret(body) {
      shown.replaceChildren(el("span", { text: "Secret (shown once, copy it now): " }),
        el("code", { class: "secret", text: String(body.secret) }));
      shown.hidden = false;
    }
    async function act(method, url, body) {
      const response = await send(method, url, body);
      if (!response.ok) {
        problem.textContent = await errorText(response);
        return null;
      }
      problem.textContent = "";
      return response.status === 204 ? {} : response.json();
    }
    async function refresh() {
      const answer = await fetch(KEYS_API + "?profile_id=" + encodeURIComponent(profile.id),
        { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!answer.ok) { problem.textContent = await errorText(answer); return; }
      const items = (await answer.json()).items || [];
      rows.replaceChildren.apply(rows, items.map(function (key) {
        const rotate = el("button", { type: "button", class: "secondary rotate-key", text: "Rotate" });
        rotate.addEventListener("click", async function () {
          const body = await act("POST", KEYS_API + "/" + encodeURIComponent(key.id) + "/rotate", { grace_seconds: 3600 });
          if (body) { showSecret(body); refresh(); }
        });
        const revoke = el("button", { type: "button", class: "danger revoke-key", text: "Revoke" });
        revoke.addEventListener("click", async function () {
          if (!window.confirm("Revoke key " + key.prefix + "…?")) return;
          if (await act("DELETE", KEYS_API + "/" + encodeURIComponent(key.id))) refresh();
        });
        const row = el("li", { class: "key" }, [
          el("code", { class: "prefix", text: String(key.prefix) + "…" }),
          el("span", { text: " agent " + String(key.agent_id) + " · " + String(key.state) + " " }),
          rotate, revoke,
        ]);
        row.dataset.id = String(key.id);
        return row;
      }));
    }
    create.addEventListener("click", async function () {
      const body = await act("POST", KEYS_API, { profile_id: profile.id, agent_id: agent.value });
      if (body) { showSecret(body); agent.value = ""; refresh(); }
    });
    section.appendChild(el("h4", { text: "Warden keys" }));
    section.appendChild(rows);
    section.appendChild(el("div", { class: "buttons" }, [agent, create]));
    section.appendChild(shown);
    section.appendChild(problem);
    refresh();
    return section;
  }

  async function load() {
    let response;
    try {
      response = await fetch(API, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (err) {
      statusLine.textContent = "profiles API unavailable";
      return;
    }
    if (response.status === 404 || response.status === 405 || response.status === 501) {
      statusLine.textContent = "profiles API unavailable";
      list.replaceChildren();
      newButton.hidden = true;
      return;
    }
    if (!response.ok) {
      statusLine.textContent = "could not load profiles: " + (await errorText(response));
      return;
    }
    const body = await response.json();
    const items = Array.isArray(body.items) ? body.items : [];
    // The credential's provider choices: every provider this Warden serves (custom ones included).
    const providers = Object.keys((items[0] && items[0].connect_urls) || {});
    if (providers.length) {
      fCredProvider.replaceChildren.apply(fCredProvider, providers.map(function (name) {
        return el("option", { value: name, text: name });
      }));
    }
    list.replaceChildren.apply(list, items.map(card));
    statusLine.textContent = items.length === 1 ? "1 profile" : items.length + " profiles";
    newButton.hidden = false;
  }

  function openEditor(profile) {
    editing = profile;
    editorTitle.textContent = profile ? "Edit profile " + (profile.name || profile.id) : "New profile";
    fName.value = profile ? profile.name || "" : "";
    fMode.value = profile && profile.mode === "restrictive" ? "restrictive" : "permissive";
    fRedact.checked = Boolean(profile && profile.redact_secrets);
    fAuth.value = profile && profile.auth === "managed" ? "managed" : "passthrough";
    fCredSecret.value = "";
    const rest = {};
    if (profile) {
      Object.keys(profile).filter(function (k) { return !OWN_FIELDS.includes(k); })
        .forEach(function (k) { rest[k] = profile[k]; });
    }
    fPolicies.value = JSON.stringify(profile ? rest : EMPTY_POLICIES, null, 2);
    editorError.textContent = "";
    editor.hidden = false;
    fName.focus();
  }

  async function save(event) {
    event.preventDefault();
    let policies;
    try {
      policies = JSON.parse(fPolicies.value || "{}");
    } catch (err) {
      editorError.textContent = "Policies are not valid JSON: " + err.message;
      return;
    }
    if (policies === null || typeof policies !== "object" || Array.isArray(policies)) {
      editorError.textContent = "Policies must be a JSON object.";
      return;
    }
    const body = Object.assign({}, policies, {
      name: fName.value, mode: fMode.value, redact_secrets: fRedact.checked, auth: fAuth.value,
    });
    if (fCredSecret.value) {
      // Write-only: sent once, stored encrypted, shown afterwards only as "set".
      body.credentials = Object.assign({}, body.credentials || {});
      body.credentials[fCredProvider.value] = fCredSecret.value;
    }
    const url = editing ? API + "/" + encodeURIComponent(editing.id) : API;
    const response = await send(editing ? "PUT" : "POST", url, body);
    if (!response.ok) {
      editorError.textContent = "Not saved: " + (await errorText(response));
      return;
    }
    editor.hidden = true;
    editing = null;
    await load();
  }

  async function removeProfile(profile) {
    if (!window.confirm("Delete profile " + (profile.name || profile.id) + "?")) return;
    const response = await send("DELETE", API + "/" + encodeURIComponent(profile.id));
    if (!response.ok) {
      statusLine.textContent = "Not deleted: " + (await errorText(response));
      return;
    }
    await load();
  }

  newButton.addEventListener("click", function () { openEditor(null); });
  document.getElementById("cancel").addEventListener("click", function () { editor.hidden = true; editing = null; });
  editor.addEventListener("submit", save);
  load();
})();
