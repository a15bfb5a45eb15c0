// The logs page. Live refresh of the table: every few seconds, fetch this same page's rows (the server renders and escapes
// them) and swap the results in. The fetched HTML is parsed with DOMParser, where scripts never run, and nodes are
// moved, not assigned through innerHTML. The checkbox state is kept in the URL (live=1) so a shared link keeps it.
(function () {
  "use strict";
  const PERIOD_MS = 4000;
  const form = document.getElementById("filters");

  // Empty fields stay out of the address, so a shared filtered view reads as what it filters on.
  if (form) {
    form.addEventListener("submit", function () {
      Array.from(form.elements).forEach(function (field) {
        if (field.name && !field.value && field.type !== "submit") field.disabled = true;
      });
    });
    // Coming back with the browser's Back button restores the page as it was left: fields usable again.
    window.addEventListener("pageshow", function () {
      Array.from(form.elements).forEach(function (field) { field.disabled = false; });
    });
  }

  const box = document.getElementById("live");
  const status = document.getElementById("live-status");
  if (!box) return;
  let timer = null;

  function setUrlFlag(on) {
    const url = new URL(window.location.href);
    if (on) url.searchParams.set("live", "1");
    else url.searchParams.delete("live");
    window.history.replaceState(null, "", url);
  }

  function stop(message) {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
    box.checked = false;
    setUrlFlag(false);
    status.textContent = message || "";
  }

  async function refresh() {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "rows");
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch (err) {
      status.textContent = "refresh failed, retrying";
      return;
    }
    if (response.status === 401 || response.status === 403) {
      stop("live refresh stopped: not logged in");
      return;
    }
    if (!response.ok && response.status !== 400) {
      status.textContent = "refresh failed (HTTP " + response.status + "), retrying";
      return;
    }
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("results");
    const current = document.getElementById("results");
    if (fresh && current) current.replaceWith(document.adoptNode(fresh));
    status.textContent = "updated " + new Date().toLocaleTimeString();
  }

  function start() {
    if (timer !== null) return;
    setUrlFlag(true);
    status.textContent = "live";
    timer = window.setInterval(refresh, PERIOD_MS);
  }

  box.addEventListener("change", function () {
    if (box.checked) start();
    else stop("");
  });
  if (box.checked) start();
})();
