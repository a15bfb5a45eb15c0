// The profiles page's upstream routing: deployments and model aliases over the admin API (/api/deployments,
// /api/model-aliases), created, edited and deleted as profiles are (a form, JSON for the rest); the configuration
// file's table (/api/routing/file) is listed read-only. Every value from the API is put in the page as text or as a
// form value, never as markup. A deployment's credential is write-only: the page never has the stored one (the API
// answers {"set": true}); left empty, {"set": true} is sent back and the stored one is kept.
(function () {
  "use strict";
  const el = window.WardenAdmin.el;
  const errorText = window.WardenAdmin.errorText;
  const send = window.WardenAdmin.send;
  const DEPLOYMENTS = "/api/deployments";
  const ALIASES = "/api/model-aliases";
  const DEPLOYMENT_FIELDS = ["name", "provider", "base_url", "credential", "credential_env"];
  const ALIAS_FIELDS = ["provider", "name"];
  const NEW_SETTINGS = { weight: 1, models: [], max_concurrent: null };
  const NEW_ALIAS = { targets: [{ deployment: "", model: null, priority: 0 }], strategy: "weighted", max_attempts: 3 };

  const place = document.getElementById("routing");
  const statusLine = document.getElementById("routing-status");
  const problem = document.getElementById("routing-error");
  const newDeployment = document.getElementById("new-deployment");
  const newAlias = document.getElementById("new-alias");
  const providerChoices = document.getElementById("d-providers");
  const dForm = document.getElementById("deployment-editor");
  const dTitle = document.getElementById("deployment-title");
  const dName = document.getElementById("d-name");
  const dProvider = document.getElementById("d-provider");
  const dBaseUrl = document.getElementById("d-base-url");
  const dCredential = document.getElementById("d-credential");
  const dDropCredential = document.getElementById("d-drop-credential");
  const dSettings = document.getElementById("d-settings");
  const dError = document.getElementById("deployment-error");
  const aForm = document.getElementById("alias-editor");
  const aTitle = document.getElementById("alias-title");
  const aProvider = document.getElementById("a-provider");
  const aModel = document.getElementById("a-model");
  const aSpec = document.getElementById("a-spec");
  const aError = document.getElementById("alias-error");
  let editingDeployment = null; // the deployment being edited (as the API shows it), or null for a new one
  let editingAlias = null;

  function show(value) {
    return value === null || value === undefined ? "—" : String(value);
  }

  function table(className, headers, rows) {
    const head = el("tr", {}, headers.map(function (name) { return el("th", { text: name }); }));
    return el("table", { class: "violations " + className }, [el("thead", {}, [head]), el("tbody", {}, rows)]);
  }

  function row(className, values, actions) {
    const cells = values.map(function (value) { return el("td", { text: show(value) }); });
    if (actions) cells.push(el("td", { class: "actions" }, actions));
    return el("tr", { class: className }, cells);
  }

  function button(className, text, action) {
    const node = el("button", { type: "button", class: className, text: text });
    node.addEventListener("click", action);
    return node;
  }

  function deploymentValues(d) {
    return [d.name, d.provider, d.base_url, d.weight, (d.models || []).join(", ") || "any", d.max_concurrent,
      d.credential && d.credential.set ? "set" : "none"];
  }

  function aliasValues(a) {
    const targets = (a.targets || []).map(function (t) {
      return t.priority + ": " + t.deployment + " → " + (t.model || a.name);
    });
    return [a.provider + "/" + a.name, a.strategy, a.max_attempts, targets.join("; ")];
  }

  function withoutFields(item, fields) {
    const rest = {};
    Object.keys(item).filter(function (k) { return !fields.includes(k); }).forEach(function (k) { rest[k] = item[k]; });
    return rest;
  }

  async function items(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    const body = await response.json();
    return Array.isArray(body.items) ? body.items : [];
  }

  async function fileTable() {
    // Older consoles have no such endpoint: then only the API's table is shown.
    const response = await fetch("/api/routing/file", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return { deployments: [], model_aliases: [] };
    return response.json();
  }

  async function load() {
    let deployments, aliases, file;
    try {
      deployments = await items(DEPLOYMENTS);
      aliases = await items(ALIASES);
      file = await fileTable();
    } catch (err) {
      statusLine.textContent = "routing API unavailable";
      return;
    }
    newDeployment.hidden = false;
    newAlias.hidden = false;
    const providers = new Set(Array.from(document.querySelectorAll("#f-cred-provider option")).map(function (o) {
      return o.value;
    }));
    deployments.concat(file.deployments || []).forEach(function (d) { providers.add(d.provider); });
    providerChoices.replaceChildren.apply(providerChoices, Array.from(providers).sort().map(function (name) {
      return el("option", { value: name });
    }));
    statusLine.textContent = deployments.length || aliases.length
      ? deployments.length + " deployment(s), " + aliases.length + " model alias(es) stored through the API"
      : "No deployments or model aliases are stored through the API.";
    const parts = [];
    if (deployments.length) {
      parts.push(table("deployments",
        ["Deployment", "Provider", "Base URL", "Weight", "Models", "Max concurrent", "Credential", ""],
        deployments.map(function (d) {
          const tr = row("deployment", deploymentValues(d), [
            button("secondary edit", "Edit", function () { openDeployment(d); }),
            button("danger delete", "Delete", function () { removeDeployment(d); }),
          ]);
          tr.dataset.name = String(d.name);
          return tr;
        })));
    }
    if (aliases.length) {
      parts.push(table("aliases", ["Alias", "Strategy", "Max attempts", "Targets (priority: deployment → model)", ""],
        aliases.map(function (a) {
          const tr = row("alias", aliasValues(a), [
            button("secondary edit", "Edit", function () { openAlias(a); }),
            button("danger delete", "Delete", function () { removeAlias(a); }),
          ]);
          tr.dataset.key = a.provider + "/" + a.name;
          return tr;
        })));
    }
    const fileDeployments = file.deployments || [];
    const fileAliases = file.model_aliases || [];
    if (fileDeployments.length || fileAliases.length) {
      parts.push(el("h3", { text: "From the configuration file (read-only; one stored through the API under the same name wins)" }));
      if (fileDeployments.length) {
        parts.push(table("file-deployments",
          ["Deployment", "Provider", "Base URL", "Weight", "Models", "Max concurrent", "Credential"],
          fileDeployments.map(function (d) { return row("file-deployment", deploymentValues(d)); })));
      }
      if (fileAliases.length) {
        parts.push(table("file-aliases", ["Alias", "Strategy", "Max attempts", "Targets (priority: deployment → model)"],
          fileAliases.map(function (a) { return row("file-alias", aliasValues(a)); })));
      }
    }
    place.replaceChildren.apply(place, parts);
  }

  // -- deployments ---------------------------------------------------------------------------------------------------

  function openDeployment(d) {
    editingDeployment = d;
    dTitle.textContent = d ? "Edit deployment " + d.name : "New deployment";
    dName.value = d ? d.name : "";
    dName.readOnly = Boolean(d); // another name is another deployment
    dProvider.value = d ? d.provider : "";
    dBaseUrl.value = d ? d.base_url : "";
    dCredential.value = "";
    dCredential.placeholder = d && d.credential && d.credential.set ? "set (leave empty to keep)" : "none";
    dDropCredential.checked = false;
    dDropCredential.parentElement.hidden = !(d && d.credential && d.credential.set);
    dSettings.value = JSON.stringify(d ? withoutFields(d, DEPLOYMENT_FIELDS) : NEW_SETTINGS, null, 2);
    dError.textContent = "";
    dForm.hidden = false;
    (d ? dProvider : dName).focus();
  }

  function closeDeployment() {
    dCredential.value = ""; // the typed credential does not stay in the page
    dForm.hidden = true;
    editingDeployment = null;
  }

  function parsed(text, what, shown) {
    let value;
    try {
      value = JSON.parse(text || "{}");
    } catch (err) {
      shown.textContent = what + " are not valid JSON: " + err.message;
      return null;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      shown.textContent = what + " must be a JSON object.";
      return null;
    }
    return value;
  }

  async function saveDeployment(event) {
    event.preventDefault();
    const settings = parsed(dSettings.value, "Settings", dError);
    if (!settings) return;
    const body = Object.assign({}, settings, { provider: dProvider.value, base_url: dBaseUrl.value });
    if (dCredential.value) {
      body.credential = dCredential.value; // write-only: sent once, stored encrypted, shown afterwards as "set"
    } else if (editingDeployment && editingDeployment.credential && editingDeployment.credential.set &&
      !dDropCredential.checked) {
      body.credential = { set: true }; // keep the stored one
    }
    const response = await send("PUT", DEPLOYMENTS + "/" + encodeURIComponent(dName.value), body);
    if (!response.ok) {
      dError.textContent = "Not saved: " + (await errorText(response));
      return;
    }
    closeDeployment();
    problem.textContent = "";
    await load();
  }

  async function removeDeployment(d) {
    if (!window.confirm("Delete deployment " + d.name + "?")) return;
    const response = await send("DELETE", DEPLOYMENTS + "/" + encodeURIComponent(d.name));
    if (!response.ok) {
      problem.textContent = "Deployment " + d.name + " not deleted: " + (await errorText(response));
      return;
    }
    problem.textContent = "";
    await load();
  }

  // -- model aliases -------------------------------------------------------------------------------------------------

  function aliasUrl(provider, model) {
    // The model may hold a slash ("meta/llama-3"): the API's route takes the rest of the path as the model.
    return ALIASES + "/" + encodeURIComponent(provider) + "/" + model.split("/").map(encodeURIComponent).join("/");
  }

  function openAlias(a) {
    editingAlias = a;
    aTitle.textContent = a ? "Edit model alias " + a.provider + "/" + a.name : "New model alias";
    aProvider.value = a ? a.provider : "";
    aModel.value = a ? a.name : "";
    aProvider.readOnly = Boolean(a);
    aModel.readOnly = Boolean(a);
    aSpec.value = JSON.stringify(a ? withoutFields(a, ALIAS_FIELDS) : NEW_ALIAS, null, 2);
    aError.textContent = "";
    aForm.hidden = false;
    (a ? aSpec : aProvider).focus();
  }

  function closeAlias() {
    aForm.hidden = true;
    editingAlias = null;
  }

  async function saveAlias(event) {
    event.preventDefault();
    const spec = parsed(aSpec.value, "Routing settings", aError);
    if (!spec) return;
    const response = await send("PUT", aliasUrl(aProvider.value, aModel.value), spec);
    if (!response.ok) {
      aError.textContent = "Not saved: " + (await errorText(response));
      return;
    }
    closeAlias();
    problem.textContent = "";
    await load();
  }

  async function removeAlias(a) {
    if (!window.confirm("Delete model alias " + a.provider + "/" + a.name + "?")) return;
    const response = await send("DELETE", aliasUrl(a.provider, a.name));
    if (!response.ok) {
      problem.textContent = "Model alias " + a.provider + "/" + a.name + " not deleted: " + (await errorText(response));
      return;
    }
    problem.textContent = "";
    await load();
  }

  newDeployment.addEventListener("click", function () { openDeployment(null); });
  newAlias.addEventListener("click", function () { openAlias(null); });
  document.getElementById("deployment-cancel").addEventListener("click", closeDeployment);
  document.getElementById("alias-cancel").addEventListener("click", closeAlias);
  dForm.addEventListener("submit", saveDeployment);
  aForm.addEventListener("submit", saveAlias);
  load();
})();
