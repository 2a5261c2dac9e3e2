/* Northwind's analytics tag (a local stand-in for a real one). The page includes it with
   consent_scripts("analytics"): it runs only for visitors who allowed analytics. */
(function () {
  "use strict";
  var w = window, d = document;
  w.dataLayer = w.dataLayer || [];
  if (!/(?:^|;\s*)_ga=/.test(d.cookie)) {
    var id = "GA1.1." + Math.floor(Math.random() * 2147483647) + "." + Math.floor(Date.now() / 1000);
    d.cookie = "_ga=" + id + "; Max-Age=" + 390 * 86400 + "; Path=/; SameSite=Lax";
  }
  w.dataLayer.push({ event: "page_view", page_path: location.pathname, tag: "northwind-analytics" });
})();
