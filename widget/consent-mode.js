/* consentkit: Consent Mode v2 defaults before any tag. See README.md. */
(() => {
  "use strict";
  const w = window, s = document.currentScript;
  const get = (n) => {
    try { return JSON.parse(s.getAttribute(n)); } catch (e) { return null; }
  };
  w.dataLayer = w.dataLayer || [];
  w.gtag = w.gtag || function () { w.dataLayer.push(arguments); };
  // One default, or (with regions) one per region list and the general one last.
  const defs = [].concat(get("data-default") || []), up = get("data-update");
  for (const def of defs) {
    if (s.hasAttribute("data-wait")) def.wait_for_update = Number(s.getAttribute("data-wait"));
    w.gtag("consent", "default", def);
  }
  if (up) w.gtag("consent", "update", up);
})();
