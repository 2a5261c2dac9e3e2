/* consentkit widget: enhances the server-rendered banner, which works without it. See README.md. */
(() => {
  "use strict";
  const d = document, w = window;
  const me = d.currentScript;
  const NONCE = (me && me.nonce) || "";
  const subs = {};
  let root, ep, granted = [], modes = {}, busy, dlg, home, panel, opener;

  const $ = (s, el) => (el || d).querySelector(s);
  const $$ = (s, el) => Array.from((el || d).querySelectorAll(s));
  const mk = (tag, cls) => {
    const e = d.createElement(tag);
    if (cls) e.className = cls;
    return e;
  };

  const emit = (ev, x) => (subs[ev] || []).forEach((fn) => {
    try { fn(x); } catch (e) { console.error(e); }
  });

  // A polite live region, created empty so that later text is announced.
  const status = (box) => {
    let s = $(":scope>.ck-msg", box);
    if (!s) {
      s = box.appendChild(mk("p", "ck-msg"));
      s.setAttribute("role", "status");
    }
    return s;
  };
  const say = (t) => { status(dlg ? $(".ck-dlg", dlg) : $("[data-ck-banner],.ck-panel", root) || root).textContent = t; };

  // Google Consent Mode v2: a type is granted if any granted purpose drives it.
  const consentMode = () => {
    const all = {};
    Object.keys(modes).forEach((p) => modes[p].forEach((t) => { all[t] = all[t] === "granted" || granted.includes(p) ? "granted" : "denied"; }));
    if (!Object.keys(all).length) return;
    w.dataLayer = w.dataLayer || [];
    w.gtag = w.gtag || function () { w.dataLayer.push(arguments); };
    w.gtag("consent", "update", all);
  };

  // <script type="text/plain" data-consent="ads"> runs once all its purposes are granted.
  const activate = () => $$('script[type="text/plain"][data-consent]:not([data-ck-done])').forEach((old) => {
    if (!old.dataset.consent.split(/\s+/).every((p) => !p || granted.includes(p))) return;
    old.setAttribute("data-ck-done", "");
    const s = mk("script");
    for (const a of old.attributes) if (a.name !== "type" && a.name !== "nonce") s.setAttribute(a.name, a.value);
    if (old.dataset.type) s.type = old.dataset.type;
    s.nonce = old.nonce || NONCE;
    if (!old.hasAttribute("async")) s.async = false; // external scripts keep their order
    s.text = old.text;
    old.replaceWith(s);
  });

  const init = () => {
    root = $("#consentkit[data-consentkit]");
    if (!root) return;
    ep = root.dataset.endpoint || "/consent";
    const g = root.dataset.granted;
    if (g != null) granted = g.split(/\s+/).filter(Boolean);
    try { modes = JSON.parse(root.dataset.consentMode) || modes; } catch {}
    const b = $("[data-ck-banner]", root);
    if (b) status(b);
    if (w.HTMLDialogElement) $$("[data-ck-customize],[data-ck-settings]", root).forEach((s) => s.setAttribute("aria-haspopup", "dialog"));
  };

  // Close the dialog; the panel goes back into its <details>.
  const shut = (cancel) => {
    if (!dlg) return;
    const g = dlg;
    dlg = null;
    home.appendChild(panel);
    if (g.open) g.close();
    g.remove();
    if (cancel) {
      $$("form", panel).forEach((f) => f.reset()); // closing decides nothing
      opener.focus();
    }
  };

  const trap = (e) => {
    if (e.key !== "Tab") return;
    const f = $$("button,[href],input,select,textarea,summary,[tabindex]", dlg)
      .filter((x) => !x.disabled && x.tabIndex >= 0 && x.getClientRects().length);
    const a = f[0], z = f[f.length - 1], i = d.activeElement;
    if (e.shiftKey ? i === a || !dlg.contains(i) : i === z) {
      e.preventDefault();
      (e.shiftKey ? z : a).focus();
    }
  };

  // The preference center as a modal dialog.
  const open = (s) => {
    s = s || (root && $("[data-ck-customize],[data-ck-settings]", root));
    if (!s || !w.HTMLDialogElement) return false;
    if (dlg) return true;
    opener = s;
    home = s.parentNode;
    panel = $(".ck-panel", home);
    if (!panel) return false;
    home.open = false;
    dlg = mk("dialog", "ck-dialog");
    dlg.setAttribute("aria-label", panel.getAttribute("aria-label") || s.textContent);
    dlg.setAttribute("closedby", "any");
    const box = mk("div", "ck-dlg");
    const x = Object.assign(mk("button", "ck-close"), { type: "button", textContent: "×" });
    x.setAttribute("aria-label", root.dataset.closeLabel || "Close");
    x.addEventListener("click", () => shut(1));
    box.append(x, panel);
    status(box);
    dlg.append(box);
    dlg.addEventListener("close", () => shut(1));
    dlg.addEventListener("keydown", trap);
    root.append(dlg);
    dlg.showModal();
    ($(".ck-switch:not(:disabled)", dlg) || x).focus();
    return true;
  };

  // After a decision: the server's fresh fragment (settings control) replaces the widget.
  const refresh = async () => {
    let n;
    try {
      const r = await fetch(ep + "/banner?next=" + encodeURIComponent(location.pathname + location.search), { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (r.ok) {
        const t = mk("template");
        t.innerHTML = await r.text();
        n = $("#consentkit", t.content);
      }
    } catch {}
    if (!n) return location.reload();
    shut();
    root.replaceWith(n);
    init();
    clear();
    const c = $("[data-ck-settings],[data-ck-customize],button", root);
    if (c) c.focus();
  };

  const submit = async (e) => {
    const f = e.target, b = e.submitter; // without submitter (old browsers) the form posts natively
    if (!b || !root || !root.contains(f) || !f.matches("[data-ck-form]")) return;
    e.preventDefault();
    if (busy) return;
    busy = 1;
    say("");
    let r, j = {};
    try {
      r = await fetch(ep, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({
          action: b.value,
          granted: $$("input[name=granted]:checked:not(:disabled)", f).map((i) => i.value),
          method: $("[name=granted]", f) ? "preferences" : "banner",
        }),
      });
    } catch {
      // Network failure: the browser posts the plain form instead (the no-JS path).
      if (b.name) f.append(Object.assign(mk("input"), { type: "hidden", name: b.name, value: b.value }));
      return f.submit();
    }
    try { j = await r.json(); } catch {}
    if (!r.ok || !j.purposes) {
      busy = 0;
      return say(j.message || r.status + " " + r.statusText);
    }
    granted = Object.keys(j.purposes).filter((p) => j.purposes[p]);
    consentMode();
    activate();
    emit("change", granted.slice());
    try { await refresh(); } finally { busy = 0; }
  };

  w.consentkit = {
    open: () => open(),
    get granted() { return granted.slice(); },
    on(ev, fn) { (subs[ev] = subs[ev] || []).push(fn); },
  };

  // WCAG 2.4.11: what has the keyboard focus must never hide behind the banner. The page keeps
  // room below its end for the banner (--ck-banner-h), and a focused element under it is
  // scrolled into sight.
  const bar = () => $(".ck-banner");
  const clear = () => {
    const b = bar();
    d.documentElement.style.setProperty("--ck-banner-h", (b ? b.offsetHeight : 0) + "px");
  };
  const unhide = (e) => {
    const b = bar(), t = e.target;
    if (!b || b.contains(t) || !t.getBoundingClientRect) return;
    const over = t.getBoundingClientRect().bottom - b.getBoundingClientRect().top;
    if (over > 0) w.scrollBy(0, over + 8);
  };

  const start = () => {
    init();
    if (!root) return;
    clear();
    w.addEventListener("resize", clear);
    d.addEventListener("focusin", unhide);
    activate();
    d.addEventListener("submit", submit);
    d.addEventListener("click", (e) => {
      const s = e.target.closest && e.target.closest("[data-ck-customize],[data-ck-settings]");
      if (s && root.contains(s) && open(s)) e.preventDefault();
    });
  };
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", start);
  else start();
})();
