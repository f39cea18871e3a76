// Odometer dashboard: a single page routed on location.hash.
//
//   #/meters            the meters of the key's namespace (meters.js)
//   #/meters/{slug}     one meter's usage: pickers, an SVG chart, a table,
//                       CSV; ?subject=a,b starts it filtered
//   #/customers         search subjects (customers.js); ?q= keeps the search
//   #/customers/{subj}  one subject: usage per meter, ledger, grants,
//                       access per feature, history
//   #/events            recent events, filters, live polling, look-up by id
//                       (events.js)
//   #/exports           the export destinations (exports.js)
//   #/exports/{name}    one destination's status per hour and dimension, and
//                       the records of a chosen row
//
// The API key lives in sessionStorage only (gone when the tab closes) and is
// sent as "Authorization: Bearer …". Values, balances and counts are exact
// decimals written as JSON numbers, so the answers that carry them are read
// by parseExactJSON (core.js), which keeps every number as its decimal text;
// Number() is applied only to draw.
//
// The DOM is built with createElement and textContent only (no innerHTML),
// and no inline style is used: the Content-Security-Policy forbids it.

import { el, nextView, setRouter, show, signOut, updateNav } from "./core.js";
import { customerPage, customersPage } from "./customers.js";
import { eventsPage } from "./events.js";
import { exportPage, exportsPage } from "./exports.js";
import { meterPage, metersPage } from "./meters.js";

// pages maps a hash's first segment to its list page and its item page.
const pages = {
  meters: [metersPage, meterPage],
  customers: [customersPage, customerPage],
  events: [eventsPage, null],
  exports: [exportsPage, exportPage],
};

// parseHash splits "#/section/item?query" into the section, the decoded
// item (null without one) and the query's parameters; null when the hash
// is not of that form.
function parseHash(hash) {
  const q = hash.indexOf("?");
  const path = q < 0 ? hash : hash.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : hash.slice(q + 1));
  const m = /^#\/([a-z]+)(?:\/([^/?#]+))?\/?$/.exec(path);
  if (!m) return null;
  return { section: m[1], item: m[2] === undefined ? null : decodePart(m[2]), params };
}

// decodePart decodes a percent-encoded route segment, or returns it as is.
function decodePart(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

// route shows the page of location.hash. navigated says whether the user
// moved there (focus then goes to the page's heading).
function route(navigated = true) {
  const { v, signal } = nextView(navigated);
  const r = parseHash(location.hash || "#/meters");
  const page = r && pages[r.section] && pages[r.section][r.item === null ? 0 : 1];
  markNav(r && pages[r.section] ? r.section : null);
  if (!page) {
    document.title = "Not found · Odometer";
    show(el("h1", {}, "Not found"), el("p", {}, "No such page. ", el("a", { href: "#/meters" }, "See the meters.")));
    return;
  }
  if (r.item === null) page(v, signal, r.params);
  else page(r.item, v, signal, r.params);
}

// markNav marks the main navigation's link to section as the current page.
function markNav(section) {
  for (const a of document.querySelectorAll("nav a[data-section]")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function start() {
  document.getElementById("sign-out").addEventListener("click", signOut);
  // The skip link moves focus to the page's content without touching the
  // hash, which is the route.
  document.getElementById("skip").addEventListener("click", (ev) => {
    ev.preventDefault();
    const main = document.getElementById("main");
    main.focus();
    main.scrollIntoView();
  });
  setRouter(() => route(true));
  window.addEventListener("hashchange", () => route(true));
  updateNav();
  route(false);
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
