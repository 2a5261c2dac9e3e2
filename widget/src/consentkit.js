/*
 * consentkit widget: enhances the server-rendered banner, which works without it. See ../README.md.
 *
 * This is the readable source. The file the server ships, ../consentkit.js, is generated from it
 * by `make widget` (esbuild --minify); edit this file, never the generated one, and rebuild.
 * tests/test_widget_build.py fails when the two disagree.
 *
 * esbuild lowers newer syntax to ES2019 (--target=es2019, see ../package.json). No eval, no
 * inline styles or handlers: the README's Content Security Policy promises depend on it.
 */
(() => {
  "use strict";

  // Read at load: browsers hide the nonce *attribute* from scripts, but the property keeps it, and
  // document.currentScript is only set while this script first runs.
  const ownScript = document.currentScript;
  const ownNonce = (ownScript && ownScript.nonce) || "";

  // window.consentkit.on(event, fn) listeners, by event name.
  const listeners = {};

  let root; // #consentkit[data-consentkit]; replaced by a fresh fragment after each decision
  let endpoint; // the consent mount, e.g. "/consent"
  let grantedPurposes = []; // purpose ids, essential ones included
  let consentModeTypes = {}; // purpose id -> Consent Mode types it drives
  let submitting; // a decision is on its way: further submits are ignored
  let dialog; // the open <dialog>, if any
  let panelHome; // the <details> the panel came from, to put it back on close
  let panel; // the .ck-panel moved into the dialog
  let dialogOpener; // the <summary> that opened the dialog, to take focus back on close

  const find = (selector, scope) => (scope || document).querySelector(selector);
  const findAll = (selector, scope) => Array.from((scope || document).querySelectorAll(selector));
  const createElement = (tag, className) => {
    const element = document.createElement(tag);
    if (className) element.className = className;
    return element;
  };

  // One failing listener must not stop the others, nor the widget.
  const emit = (event, detail) =>
    (listeners[event] || []).forEach((listener) => {
      try {
        listener(detail);
      } catch (error) {
        console.error(error);
      }
    });

  // A polite live region, created empty so that later text is announced.
  const statusRegion = (box) => {
    let region = find(":scope>.ck-msg", box);
    if (!region) {
      region = box.appendChild(createElement("p", "ck-msg"));
      region.setAttribute("role", "status");
    }
    return region;
  };

  // Messages go where the visitor is: the dialog if open, else the banner or the settings panel.
  const announce = (text) => {
    const box = dialog ? find(".ck-dlg", dialog) : find("[data-ck-banner],.ck-panel", root) || root;
    statusRegion(box).textContent = text;
  };

  // Google Consent Mode v2: a type is granted if any granted purpose drives it.
  const pushConsentModeUpdate = () => {
    const states = {};
    Object.keys(consentModeTypes).forEach((purpose) =>
      consentModeTypes[purpose].forEach((type) => {
        states[type] = states[type] === "granted" || grantedPurposes.includes(purpose) ? "granted" : "denied";
      }),
    );
    if (!Object.keys(states).length) return;
    // Google's own snippet: gtag pushes its `arguments` object. A gtag the site defined is kept.
    window.dataLayer = window.dataLayer || [];
    window.gtag =
      window.gtag ||
      function () {
        window.dataLayer.push(arguments);
      };
    window.gtag("consent", "update", states);
  };

  // <script type="text/plain" data-consent="ads"> runs once all its purposes are granted.
  const activateScripts = () =>
    findAll('script[type="text/plain"][data-consent]:not([data-ck-done])').forEach((blocked) => {
      const allowed = blocked.dataset.consent
        .split(/\s+/)
        .every((purpose) => !purpose || grantedPurposes.includes(purpose));
      if (!allowed) return;
      // Marked before anything else, so that it can never run twice.
      blocked.setAttribute("data-ck-done", "");
      // Only a newly created <script> runs; changing the type of the old one would not.
      const script = createElement("script");
      for (const attribute of blocked.attributes) {
        if (attribute.name !== "type" && attribute.name !== "nonce") {
          script.setAttribute(attribute.name, attribute.value);
        }
      }
      if (blocked.dataset.type) script.type = blocked.dataset.type;
      script.nonce = blocked.nonce || ownNonce;
      // Inserted scripts are async by default; external scripts without `async` keep their order.
      if (!blocked.hasAttribute("async")) script.async = false;
      script.text = blocked.text;
      blocked.replaceWith(script);
    });

  // Read the widget's state from the markup; run at load and after every fresh fragment.
  const readRoot = () => {
    root = find("#consentkit[data-consentkit]");
    if (!root) return;
    endpoint = root.dataset.endpoint || "/consent";
    const granted = root.dataset.granted;
    if (granted != null) grantedPurposes = granted.split(/\s+/).filter(Boolean);
    try {
      consentModeTypes = JSON.parse(root.dataset.consentMode) || consentModeTypes;
    } catch {
      // Missing or malformed: keep the types we had.
    }
    const banner = find("[data-ck-banner]", root);
    if (banner) statusRegion(banner);
    // Only where the summaries really open a dialog do they say so.
    if (window.HTMLDialogElement) {
      findAll("[data-ck-customize],[data-ck-settings]", root).forEach((summary) =>
        summary.setAttribute("aria-haspopup", "dialog"),
      );
    }
  };

  // Close the dialog; the panel goes back into its <details>. `cancelled` is true when the
  // visitor closed it (×, Escape, backdrop) and false when a decision replaced the widget.
  const closeDialog = (cancelled) => {
    if (!dialog) return;
    // Cleared first: close() fires "close", which calls us again.
    const closing = dialog;
    dialog = null;
    panelHome.appendChild(panel);
    if (closing.open) closing.close();
    closing.remove();
    if (cancelled) {
      findAll("form", panel).forEach((form) => form.reset()); // closing decides nothing
      dialogOpener.focus();
    }
  };

  // Tab and Shift+Tab cycle inside the dialog (a modal dialog alone lets Tab leave for the browser UI).
  const trapFocus = (event) => {
    if (event.key !== "Tab") return;
    const focusable = findAll("button,[href],input,select,textarea,summary,[tabindex]", dialog).filter(
      (element) => !element.disabled && element.tabIndex >= 0 && element.getClientRects().length,
    );
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    const active = document.activeElement;
    const leaving = event.shiftKey ? active === first || !dialog.contains(active) : active === last;
    if (leaving) {
      event.preventDefault();
      (event.shiftKey ? last : first).focus();
    }
  };

  // The preference center as a modal dialog. `summary` is the control that asked for it (default:
  // the banner's "Customize" or the "Cookie settings" control). Returns false where the browser
  // has no <dialog> or the markup has no panel: the <details> then opens in place.
  const openDialog = (summary) => {
    summary = summary || (root && find("[data-ck-customize],[data-ck-settings]", root));
    if (!summary || !window.HTMLDialogElement) return false;
    if (dialog) return true;
    dialogOpener = summary;
    panelHome = summary.parentNode;
    panel = find(".ck-panel", panelHome);
    if (!panel) return false;
    panelHome.open = false;
    dialog = createElement("dialog", "ck-dialog");
    dialog.setAttribute("aria-label", panel.getAttribute("aria-label") || summary.textContent);
    // Where supported, a click on the backdrop closes it too.
    dialog.setAttribute("closedby", "any");
    const box = createElement("div", "ck-dlg");
    const closeButton = Object.assign(createElement("button", "ck-close"), { type: "button", textContent: "×" });
    closeButton.setAttribute("aria-label", root.dataset.closeLabel || "Close");
    closeButton.addEventListener("click", () => closeDialog(true));
    box.append(closeButton, panel);
    statusRegion(box);
    dialog.append(box);
    // Escape and a backdrop click close the dialog natively; treat them like the × button.
    dialog.addEventListener("close", () => closeDialog(true));
    dialog.addEventListener("keydown", trapFocus);
    root.append(dialog);
    dialog.showModal();
    // Start on the first switch the visitor can change (essential ones are disabled).
    (find(".ck-switch:not(:disabled)", dialog) || closeButton).focus();
    return true;
  };

  // After a decision: the server's fresh fragment (settings control) replaces the widget. It is the
  // same markup a visitor without JavaScript gets; if it cannot be had, reload the page instead.
  const replaceWithFreshFragment = async () => {
    let fresh;
    try {
      const response = await fetch(
        endpoint + "/banner?next=" + encodeURIComponent(location.pathname + location.search),
        { credentials: "same-origin", headers: { Accept: "text/html" } },
      );
      if (response.ok) {
        const template = createElement("template");
        template.innerHTML = await response.text();
        fresh = find("#consentkit", template.content);
      }
    } catch {
      // Network failure: handled below, like a bad answer.
    }
    if (!fresh) return location.reload();
    closeDialog();
    root.replaceWith(fresh);
    readRoot();
    reserveBannerRoom();
    const control = find("[data-ck-settings],[data-ck-customize],button", root);
    if (control) control.focus();
  };

  const idempotencyKey = () =>
    window.crypto && crypto.randomUUID
      ? crypto.randomUUID()
      : Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);

  // Decisions without reload: the form's submit is sent as JSON with fetch.
  const handleSubmit = async (event) => {
    const form = event.target;
    const button = event.submitter; // without submitter (old browsers) the form posts natively
    if (!button || !root || !root.contains(form) || !form.matches("[data-ck-form]")) return;
    event.preventDefault();
    if (submitting) return;
    submitting = true;
    announce("");
    let response;
    let answer = {};
    // One key per decision (the IETF Idempotency-Key): sent again, the server answers the first
    // outcome and records the decision once, however many times the network made us send it.
    const key = idempotencyKey();
    const post = () =>
      fetch(endpoint, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "Idempotency-Key": key },
        body: JSON.stringify({
          action: button.value,
          granted: findAll("input[name=granted]:checked:not(:disabled)", form).map((input) => input.value),
          // Only the preference form has switches; the first layer's form has none.
          method: find("[name=granted]", form) ? "preferences" : "banner",
        }),
      });
    try {
      try {
        response = await post();
      } catch {
        response = await post(); // a network failure: once more, with the same key
      }
    } catch {
      // Still no answer: the browser posts the plain form instead (the no-JS path), with the same
      // key. The clicked button's name and value would be lost with form.submit(), so they go in
      // hidden fields too.
      const hidden = (name, value) => form.append(Object.assign(createElement("input"), { type: "hidden", name, value }));
      if (button.name) hidden(button.name, button.value);
      hidden("idempotency_key", key);
      return form.submit();
    }
    try {
      answer = await response.json();
    } catch {
      // Not JSON: the status line is the message.
    }
    if (!response.ok || !answer.purposes) {
      // Nothing changed on the server, so nothing changes here; say why.
      submitting = false;
      return announce(answer.message || response.status + " " + response.statusText);
    }
    grantedPurposes = Object.keys(answer.purposes).filter((purpose) => answer.purposes[purpose]);
    pushConsentModeUpdate();
    activateScripts();
    emit("change", grantedPurposes.slice());
    try {
      await replaceWithFreshFragment();
    } finally {
      submitting = false;
    }
  };

  window.consentkit = {
    open: () => openDialog(),
    // A copy: callers cannot change the widget's state.
    get granted() {
      return grantedPurposes.slice();
    },
    on(event, listener) {
      (listeners[event] = listeners[event] || []).push(listener);
    },
  };

  // WCAG 2.4.11: what has the keyboard focus must never hide behind the banner. The page keeps
  // room below its end for the banner (--ck-banner-h), and a focused element under it is
  // scrolled into sight.
  const findBanner = () => find(".ck-banner");
  const reserveBannerRoom = () => {
    const banner = findBanner();
    // CSSOM, not the style attribute: allowed under a strict style-src.
    document.documentElement.style.setProperty("--ck-banner-h", (banner ? banner.offsetHeight : 0) + "px");
  };
  const revealFocused = (event) => {
    const banner = findBanner();
    const target = event.target;
    if (!banner || banner.contains(target) || !target.getBoundingClientRect) return;
    const hidden = target.getBoundingClientRect().bottom - banner.getBoundingClientRect().top;
    if (hidden > 0) window.scrollBy(0, hidden + 8);
  };

  const start = () => {
    readRoot();
    if (!root) return;
    reserveBannerRoom();
    window.addEventListener("resize", reserveBannerRoom);
    document.addEventListener("focusin", revealFocused);
    activateScripts();
    // Delegated to the document: the listeners survive the fragment replacing #consentkit.
    document.addEventListener("submit", handleSubmit);
    document.addEventListener("click", (event) => {
      const summary = event.target.closest && event.target.closest("[data-ck-customize],[data-ck-settings]");
      // preventDefault keeps the <details> shut when the dialog opened instead.
      if (summary && root.contains(summary) && openDialog(summary)) event.preventDefault();
    });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
