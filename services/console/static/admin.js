// What the admin pages share: building elements whose values are text (never markup) and reading an admin API
// refusal as the sentence it carries.
window.WardenAdmin = (function () {
  "use strict";

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(function ([key, value]) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  async function errorText(response) {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error && body.error.message) return body.error.message;
      if (body && body.detail) return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      return text;
    } catch (err) {
      return text || "HTTP " + response.status;
    }
  }

  // A JSON request to the admin API from this page: the login cookie goes along (same origin, so the browser sends
  // Origin and the console believes it), and the body is always application/json, the only kind it takes.
  function send(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  return { el: el, errorText: errorText, send: send };
})();
