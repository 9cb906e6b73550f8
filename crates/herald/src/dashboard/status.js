// Herald's status page: refreshes its numbers in place every few seconds. The
// page works without it (its "Refresh now" link); this only enhances it.
(function () {
  "use strict";
  var box = document.getElementById("refresh");
  if (!box || !window.fetch || !window.DOMParser) {
    return;
  }
  var seconds = parseInt(box.getAttribute("data-seconds"), 10) || 0;
  if (seconds <= 0) {
    return;
  }
  // A way to stop the updates (WCAG 2.2.2), on by default.
  var label = document.createElement("label");
  var input = document.createElement("input");
  input.type = "checkbox";
  input.checked = true;
  input.id = "auto-refresh";
  label.appendChild(input);
  label.appendChild(document.createTextNode(" " + box.getAttribute("data-label")));
  box.insertBefore(label, box.firstChild);
  function update() {
    if (!input.checked) {
      return;
    }
    fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("HTTP " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          var name = old.getAttribute("data-live");
          var next = fresh.querySelector('[data-live="' + name + '"]');
          if (next) {
            old.replaceWith(document.importNode(next, true));
          }
        });
      })
      .catch(function () {
        // A failed refresh leaves the numbers as they are; the next one tries again.
      });
  }
  window.setInterval(update, seconds * 1000);
})();
