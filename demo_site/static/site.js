/* Northwind's own small script. Everything works without it. */
(function () {
  "use strict";
  var w = window, d = document;

  // "Cookie settings" links open consentkit's preference center (without JS they jump to it).
  d.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("[data-open-preferences]");
    if (a && w.consentkit && w.consentkit.open()) e.preventDefault();
  });

  // The Consent Mode dataLayer, shown live on /demo.
  var shown = -1;
  var describe = function (entry) {
    if (Object.prototype.toString.call(entry) === "[object Arguments]") {
      var args = Array.prototype.slice.call(entry);
      return "gtag(" + args.map(function (a) { return JSON.stringify(a); }).join(", ") + ")";
    }
    return "push(" + JSON.stringify(entry) + ")";
  };
  var render = function () {
    var log = d.getElementById("datalayer-log"), layer = w.dataLayer || [];
    if (!log || layer.length === shown) return;
    shown = layer.length;
    log.textContent = layer.map(function (e, i) { return i + ": " + describe(e); }).join("\n");
  };

  d.addEventListener("DOMContentLoaded", function () {
    render();
    if (d.getElementById("datalayer-log")) w.setInterval(render, 500);
    if (!w.consentkit) return;
    w.consentkit.on("change", function () {
      render();
      // Pages that show the visitor's choices and history reload to show the new record.
      if (d.querySelector("[data-reload-on-consent-change]")) w.location.reload();
    });
  });
})();
