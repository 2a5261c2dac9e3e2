/* A local stand-in for Google's gtag.js (no network): defines gtag() as Google's snippet does and
   configures the property. consentkit's consent-mode.js runs before it (injected at the top of
   <head>), so the dataLayer reads: consent default -> js/config -> consent update (on a choice). */
(function () {
  "use strict";
  var w = window;
  w.dataLayer = w.dataLayer || [];
  w.gtag = w.gtag || function () { w.dataLayer.push(arguments); };
  w.gtag("js", new Date());
  w.gtag("config", "G-NORTHWIND01", { send_page_view: false });
})();
