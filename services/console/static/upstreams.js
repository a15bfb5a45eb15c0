// The profiles page's read-only view of upstream routing, over the admin API (/api/deployments,
// /api/model-aliases). Every value from the API is put in the page as text (textContent), never as markup.
(function () {
  "use strict";

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "—" : String(text);
    return td;
  }

  function table(headers, rows) {
    const t = document.createElement("table");
    t.className = "violations";
    const head = document.createElement("tr");
    headers.forEach(function (name) {
      const th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    });
    const thead = document.createElement("thead");
    thead.appendChild(head);
    t.appendChild(thead);
    const body = document.createElement("tbody");
    rows.forEach(function (values) {
      const tr = document.createElement("tr");
      values.forEach(function (value) { tr.appendChild(cell(value)); });
      body.appendChild(tr);
    });
    t.appendChild(body);
    return t;
  }

  async function items(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      throw new Error(url + " answered " + response.status);
    }
    const body = await response.json();
    return Array.isArray(body.items) ? body.items : [];
  }

  async function load() {
    const place = document.getElementById("routing");
    const status = document.getElementById("routing-status");
    if (!place || !status) {
      return;
    }
    try {
      const deployments = await items("/api/deployments");
      const aliases = await items("/api/model-aliases");
      if (!deployments.length && !aliases.length) {
        status.textContent = "No deployments or model aliases are stored through the API.";
        return;
      }
      status.textContent = deployments.length + " deployment(s), " + aliases.length + " model alias(es)";
      place.replaceChildren(
        table(
          ["Deployment", "Provider", "Base URL", "Weight", "Models", "Max concurrent", "Credential"],
          deployments.map(function (d) {
            return [d.name, d.provider, d.base_url, d.weight, (d.models || []).join(", ") || "any",
              d.max_concurrent, d.credential && d.credential.set ? "set" : "none"];
          })
        ),
        table(
          ["Alias", "Strategy", "Max attempts", "Targets (priority: deployment → model)"],
          aliases.map(function (a) {
            const targets = (a.targets || []).map(function (t) {
              return t.priority + ": " + t.deployment + " → " + (t.model || a.name);
            });
            return [a.provider + "/" + a.name, a.strategy, a.max_attempts, targets.join("; ")];
          })
        )
      );
    } catch (err) {
      status.textContent = "routing API unavailable";
    }
  }

  document.addEventListener("DOMContentLoaded", load);
})();
