// Shared by every page of the dashboard: the exact JSON parser and decimal
// helpers, time helpers, DOM helpers, the API client, errors, sign-in and
// the view state that tells an async page whether it is still shown.
//
// The DOM is built with createElement and textContent only (no innerHTML),
// and no inline style is used: the Content-Security-Policy forbids it.

const KEY_STORAGE = "odometer.apiKey";

// ---- Exact JSON ------------------------------------------------------------

// parseExactJSON parses JSON text as JSON.parse does, except that every
// number is returned as its exact decimal text (a string), and objects have
// no prototype (so a "__proto__" member is an ordinary member).
export function parseExactJSON(text) {
  const numberRE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const stringRE = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
  let i = 0;
  const fail = () => {
    throw new SyntaxError(`invalid JSON at offset ${i}`);
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const expect = (c) => {
    space();
    if (text[i] !== c) fail();
    i++;
  };
  const match = (re) => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) fail();
    i = re.lastIndex;
    return m[0];
  };
  const value = () => {
    space();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = Object.create(null);
      space();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        space();
        const k = JSON.parse(match(stringRE));
        expect(":");
        obj[k] = value();
        space();
        if (text[i] === ",") {
          i++;
          continue;
        }
        expect("}");
        return obj;
      }
    }
    if (c === "[") {
      i++;
      const arr = [];
      space();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        space();
        if (text[i] === ",") {
          i++;
          continue;
        }
        expect("]");
        return arr;
      }
    }
    if (c === '"') return JSON.parse(match(stringRE));
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return match(numberRE);
  };
  const result = value();
  space();
  if (i !== text.length) fail();
  return result;
}

// ---- Exact decimals --------------------------------------------------------

// decimal reads decimal text (as parseExactJSON returns it) as an exact
// value: digits × 10^-scale. It returns null for anything else.
function decimal(text) {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(String(text));
  if (!m) return null;
  const frac = m[3] || "";
  return { digits: BigInt(m[1] + m[2] + frac), scale: frac.length - Number(m[4] || 0) };
}

function rescale(d, scale) {
  return d.digits * 10n ** BigInt(scale - d.scale);
}

// decimalText writes digits × 10^-scale as plain decimal text, without
// trailing zeros after the point.
function decimalText(digits, scale) {
  const neg = digits < 0n;
  let s = (neg ? -digits : digits).toString();
  if (scale <= 0) return (neg ? "-" : "") + s + "0".repeat(-scale);
  s = s.padStart(scale + 1, "0");
  const whole = s.slice(0, s.length - scale);
  const frac = s.slice(s.length - scale).replace(/0+$/, "");
  return (neg && (whole !== "0" || frac) ? "-" : "") + whole + (frac ? "." + frac : "");
}

// decimalSub returns a − b for two decimal texts, exactly, as plain decimal
// text; null when either is not decimal text.
export function decimalSub(a, b) {
  const x = decimal(a), y = decimal(b);
  if (!x || !y) return null;
  const scale = Math.max(x.scale, y.scale, 0);
  return decimalText(rescale(x, scale) - rescale(y, scale), scale);
}

// decimalSign returns -1, 0 or 1 for decimal text; NaN when it is not one.
export function decimalSign(text) {
  const d = decimal(text);
  if (!d) return NaN;
  return d.digits < 0n ? -1 : d.digits > 0n ? 1 : 0;
}

// ---- Time ------------------------------------------------------------------

// zoneOffset returns how far the wall clock of time zone tz is ahead of UTC
// at the instant ms, in milliseconds. An unknown zone throws a RangeError.
export function zoneOffset(tz, ms) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return wall - Math.floor(ms / 1000) * 1000;
}

// wallToDate returns the instant at which the wall clock of time zone tz
// shows wall ("YYYY-MM-DDTHH:MM" or "YYYY-MM-DDTHH:MM:SS", the value of a
// datetime-local input). A wall time skipped by a DST change maps to the
// instant the offset before the change gives.
export function wallToDate(wall, tz) {
  const m = /^(\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?$/.exec(wall);
  if (!m) throw new RangeError(`not a date and time: "${wall}"`);
  const guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  let ms = guess - zoneOffset(tz, guess);
  ms = guess - zoneOffset(tz, ms);
  return new Date(ms);
}

// todayIn returns the calendar date in time zone tz now, as [y, m, d].
export function todayIn(tz) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz, year: "numeric", month: "numeric", day: "numeric",
  }).formatToParts(new Date());
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  return [get("year"), get("month"), get("day")];
}

// wallDay returns "YYYY-MM-DDT00:00" for the date [y, m, d] plus days.
export function wallDay([y, m, d], days) {
  const t = new Date(Date.UTC(y, m - 1, d + days));
  return t.toISOString().slice(0, 10) + "T00:00";
}

export function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

// formatTime formats an RFC 3339 time for people, in time zone tz.
export function formatTime(iso, tz, windowSize) {
  const opts = { timeZone: tz, year: "numeric", month: "short", day: "numeric" };
  if (windowSize === "MONTH") delete opts.day;
  if (windowSize === "MINUTE" || windowSize === "HOUR") {
    Object.assign(opts, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }
  try {
    return new Intl.DateTimeFormat(undefined, opts).format(new Date(iso));
  } catch {
    return iso;
  }
}

// ---- DOM helpers -----------------------------------------------------------

// el creates an element; attrs maps attribute names to values (null and
// false omit the attribute, true sets it empty); children are nodes or text.
export function el(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);
}

function build(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

let idCounter = 0;
export function uid(prefix) {
  idCounter++;
  return `${prefix}-${idCounter}`;
}

// field returns a labelled control wrapped in a div, with an optional hint
// linked by aria-describedby.
export function field(labelText, control, hint) {
  control.id ||= uid("f");
  const wrap = el("div", {}, el("label", { for: control.id }, labelText), control);
  if (hint) {
    const h = el("p", { class: "hint", id: uid("hint") }, hint);
    control.setAttribute("aria-describedby", h.id);
    wrap.append(h);
  }
  return wrap;
}

const main = () => document.getElementById("main");

// focusOnShow is set once the user has navigated (a route change, signing
// in): from then on show moves focus to the new view's heading. On the first
// load focus stays at the start of the document, so that the first Tab
// reaches the skip link.
let focusOnShow = false;

// show replaces the content of main and, after the user navigated, moves
// focus to its heading, so that keyboard and screen reader users land on
// the new view.
export function show(...nodes) {
  const m = main();
  m.replaceChildren(...nodes);
  const h1 = m.querySelector("h1");
  if (h1) {
    h1.setAttribute("tabindex", "-1");
    if (focusOnShow) h1.focus({ preventScroll: false });
  }
}

// ---- View state ------------------------------------------------------------

// view counts route changes; an async view renders only while it is current.
let view = 0;
let viewAbort = null;
let router = () => {};

// setRouter names the function that shows the page of location.hash (called
// again after signing in).
export function setRouter(fn) {
  router = fn;
}

// nextView starts a new view: the previous one's requests are aborted. It
// returns the view's number and the signal that aborts when it ends;
// navigated says whether the user moved to it (focus follows).
export function nextView(navigated) {
  view++;
  if (navigated) focusOnShow = true;
  if (viewAbort) viewAbort.abort();
  viewAbort = new AbortController();
  return { v: view, signal: viewAbort.signal };
}

// isCurrent says whether view v is still the one shown.
export function isCurrent(v) {
  return v === view;
}

// latest is for a part of a page that runs a request again whenever its
// inputs change: only the newest run counts. Each call of the returned
// start() aborts the previous run and returns the new one's signal (for
// fetch) and current(), which stays true until the next start(); the
// view's signal aborts the last run.
export function latest(viewSignal) {
  let ctrl = new AbortController();
  viewSignal.addEventListener("abort", () => ctrl.abort(), { once: true });
  return () => {
    ctrl.abort();
    const mine = new AbortController();
    ctrl = mine;
    return { signal: mine.signal, current: () => ctrl === mine };
  };
}

// ---- API -------------------------------------------------------------------

export class APIError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

// api fetches path from the API with the stored key. It resolves to the
// response when its status is 2xx and rejects with an APIError (carrying the
// RFC 9457 problem document) otherwise.
export async function api(path, { accept = "application/json", signal } = {}) {
  const headers = { Accept: accept };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch(path, { headers, signal, cache: "no-store", credentials: "omit" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new APIError(0, { title: "Network error", detail: "The server could not be reached." });
  }
  if (res.ok) return res;
  let problem = { title: res.statusText || `HTTP ${res.status}`, status: res.status };
  const text = await res.text();
  try {
    const p = JSON.parse(text);
    if (p && typeof p === "object") problem = p;
  } catch {
    if (text.trim()) problem.detail = text.trim().slice(0, 500);
  }
  throw new APIError(res.status, problem);
}

// problemView renders an API error: its detail and the reason for each field.
export function problemView(err) {
  if (!(err instanceof APIError)) {
    return el("div", { class: "error", role: "alert" }, el("p", {}, String(err && err.message ? err.message : err)));
  }
  const p = err.problem;
  const box = el("div", { class: "error", role: "alert" },
    el("p", {}, el("strong", {}, p.title || `HTTP ${err.status}`), p.detail ? `: ${p.detail}` : ""));
  if (Array.isArray(p.errors) && p.errors.length > 0) {
    box.append(el("ul", {}, p.errors.map((e) =>
      el("li", {}, e.field ? [el("code", {}, e.field), ": "] : null, e.reason || ""))));
  }
  return box;
}

// handleError shows the sign-in form on 401 and the problem otherwise.
export function handleError(err, container) {
  if (err && err.name === "AbortError") return;
  if (err instanceof APIError && err.status === 401) {
    const had = apiKey();
    sessionStorage.removeItem(KEY_STORAGE);
    updateNav();
    const why = had
      ? `The server refused this API key${err.problem.detail ? ` (${err.problem.detail})` : ""}. Sign in with another key.`
      : "This server needs an API key. Sign in to continue.";
    signInView(why);
    return;
  }
  if (container) container.replaceChildren(problemView(err));
  else show(el("h1", {}, "Error"), problemView(err));
}

// ---- Sign in ---------------------------------------------------------------

export function updateNav() {
  document.getElementById("sign-out").hidden = !apiKey();
}

// signOut forgets the key and shows the sign-in form.
export function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  updateNav();
  signInView("Signed out. The key was removed from this tab.", false);
}

export function signInView(message, isError = true) {
  const input = el("input", {
    type: "password", name: "key", required: true, autocomplete: "off",
    spellcheck: "false", autocapitalize: "off", placeholder: "odo_…",
  });
  const status = el("div", { "aria-live": "polite" },
    message ? el("p", { class: isError ? "error" : "muted", role: isError ? "alert" : null }, message) : null);
  const form = el("form", { class: "signin", novalidate: true },
    field("API key", input, "Kept in this tab only (sessionStorage) and sent as a Bearer token. Closing the tab forgets it."),
    el("div", {}, el("button", { type: "submit" }, "Sign in")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!/^odo_\S+$/.test(key)) {
      status.replaceChildren(el("p", { class: "error", role: "alert" }, "An API key starts with odo_."));
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    updateNav();
    router();
  });
  document.title = "Sign in · Odometer";
  show(el("h1", {}, "Sign in"), status, form);
  input.focus();
}

// load titles the page and shows its heading with "Loading…" while fetch
// runs, and returns what fetch returned; undefined when it failed (the
// error is shown) or the user went to another page meanwhile.
export async function load(v, title, heading, fetch) {
  document.title = title;
  show(el("h1", {}, heading), el("p", { class: "muted" }, "Loading…"));
  try {
    const result = await fetch();
    return isCurrent(v) ? result : undefined;
  } catch (err) {
    if (isCurrent(v)) handleError(err);
    return undefined;
  }
}

// ---- Shared by the pages ---------------------------------------------------

// formatInstant formats an RFC 3339 time to the second, in time zone tz.
export function formatInstant(iso, tz) {
  try {
    return new Intl.DateTimeFormat(undefined, {
      timeZone: tz, year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).format(new Date(iso));
  } catch {
    return iso;
  }
}

export function timeCell(iso, tz) {
  return el("td", {}, iso ? el("time", { datetime: iso, title: iso }, formatInstant(iso, tz)) : "");
}

// rangeParams sets from and to on q from two datetime-local inputs read in
// time zone tz; an empty input sets nothing. It throws an Error naming the
// input that does not hold a date and time.
export function rangeParams(q, tz, pairs) {
  for (const [name, input] of pairs) {
    if (!input.value) continue;
    try {
      q.set(name, wallToDate(input.value, tz).toISOString());
    } catch {
      throw new Error(`"${name}" is not a date and time.`);
    }
  }
}

// customerHref links to a subject's customer page.
export function customerHref(subject) {
  return `#/customers/${encodeURIComponent(subject)}`;
}

export function alertBox(message) {
  return el("div", { class: "error", role: "alert" }, el("p", {}, message));
}
