/* Northwind's ad tag (a local stand-in for a real one). The page includes it with
   consent_scripts("ads"): it runs only for visitors who allowed targeted advertising. It sets the
   conversion-linker cookie and, when consent was just given, fills the ad slot without a reload. */
(function () {
  "use strict";
  var w = window, d = document;
  w.dataLayer = w.dataLayer || [];
  if (!/(?:^|;\s*)_gcl_au=/.test(d.cookie)) {
    d.cookie = "_gcl_au=1.1." + Math.floor(Math.random() * 2147483647) + "." +
      Math.floor(Date.now() / 1000) + "; Max-Age=" + 90 * 86400 + "; Path=/; SameSite=Lax";
  }
  w.dataLayer.push({ event: "ads_ready", tag: "northwind-ads" });
  Array.prototype.forEach.call(d.querySelectorAll("[data-ad-slot]"), function (slot) {
    if (!slot.querySelector('[data-ad-state="off"]')) return;
    fetch(slot.getAttribute("data-ad-src"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { if (j && j.ad) slot.innerHTML = j.html; })
      .catch(function () {});
  });
})();
