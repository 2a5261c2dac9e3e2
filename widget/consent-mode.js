/* consentkit: Consent Mode v2 defaults before any tag. See README.md. */
(() => {
  "use strict";
  const w = window, s = document.currentScript;
  const get = (n) => {
    try { return JSON.parse(s.getAttribute(n)); } catch (e) { return null; }
  };
  w.dataLayer = w.dataLayer || [];
  w.gtag = w.gtag || function () { w.dataLayer.push(arguments); };
  const def = get("data-default"), up = get("data-update");
  if (def) {
    if (s.hasAttribute("data-wait")) def.wait_for_update = Number(s.getAttribute("data-wait"));
    w.gtag("consent", "default", def);
  }
  if (up) w.gtag("consent", "update", up);
})();
