// Odometer dashboard: a single page routed on location.hash.
//
//   #/meters         the meters of the key's namespace
//   #/meters/{slug}  one meter's usage: pickers, an SVG chart, a table, CSV
//   #/events         recent events, filters, live polling, look-up by id
//   #/exports        the export destinations
//   #/exports/{name} one destination's status per hour and dimension, and
//                    the records of a chosen row
//
// The API key lives in sessionStorage only (gone when the tab closes) and is
// sent as "Authorization: Bearer …". Usage values are exact decimals written
// as JSON numbers, so the query response is read by parseExactJSON, which
// keeps every number as its decimal text; Number() is applied only to draw.
//
// The DOM is built with createElement and textContent only (no innerHTML),
// and no inline style is used: the Content-Security-Policy forbids it.

const KEY_STORAGE = "odometer.apiKey";
const WINDOW_SIZES = ["MINUTE", "HOUR", "DAY", "MONTH"];
const ZONES = [
  "UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Madrid",
  "Europe/Amsterdam", "Europe/Stockholm", "Europe/Warsaw", "Europe/Athens",
  "Europe/Istanbul", "Europe/Moscow", "Africa/Cairo", "Africa/Johannesburg",
  "Africa/Lagos", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore",
  "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Tokyo", "Asia/Seoul",
  "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo",
  "America/New_York", "America/Chicago", "America/Denver",
  "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
];
const SERIES_CLASSES = 8;

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

// ---- Time ------------------------------------------------------------------

// zoneOffset returns how far the wall clock of time zone tz is ahead of UTC
// at the instant ms, in milliseconds. An unknown zone throws a RangeError.
function zoneOffset(tz, ms) {
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
function todayIn(tz) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz, year: "numeric", month: "numeric", day: "numeric",
  }).formatToParts(new Date());
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  return [get("year"), get("month"), get("day")];
}

// wallDay returns "YYYY-MM-DDT00:00" for the date [y, m, d] plus days.
function wallDay([y, m, d], days) {
  const t = new Date(Date.UTC(y, m - 1, d + days));
  return t.toISOString().slice(0, 10) + "T00:00";
}

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

// formatTime formats an RFC 3339 time for people, in time zone tz.
function formatTime(iso, tz, windowSize) {
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
function el(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

function svg(tag, attrs = {}, ...children) {
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
function uid(prefix) {
  idCounter++;
  return `${prefix}-${idCounter}`;
}

// field returns a labelled control wrapped in a div, with an optional hint
// linked by aria-describedby.
function field(labelText, control, hint) {
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

// show replaces the content of main and moves focus to its heading, so that
// keyboard and screen reader users land on the new view.
function show(...nodes) {
  const m = main();
  m.replaceChildren(...nodes);
  const h1 = m.querySelector("h1");
  if (h1) {
    h1.setAttribute("tabindex", "-1");
    h1.focus({ preventScroll: false });
  }
}

// ---- API -------------------------------------------------------------------

class APIError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

// api fetches path from the API with the stored key. It resolves to the
// response when its status is 2xx and rejects with an APIError (carrying the
// RFC 9457 problem document) otherwise.
async function api(path, { accept = "application/json", signal } = {}) {
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
function problemView(err) {
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
function handleError(err, container) {
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

function updateNav() {
  document.getElementById("sign-out").hidden = !apiKey();
}

function signInView(message, isError = true) {
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
    route();
  });
  show(el("h1", {}, "Sign in"), status, form);
  input.focus();
}

// ---- Routing ---------------------------------------------------------------

// view counts route changes; an async view renders only while it is current.
let view = 0;
let viewAbort = null;

function route() {
  view++;
  if (viewAbort) viewAbort.abort();
  viewAbort = new AbortController();
  const hash = location.hash || "#/meters";
  if (/^#\/events\/?$/.test(hash)) {
    eventsPage(view, viewAbort.signal);
    return;
  }
  const x = /^#\/exports(?:\/([^/?#]+))?\/?$/.exec(hash);
  if (x) {
    if (x[1]) exportPage(decodePart(x[1]), view, viewAbort.signal);
    else exportsPage(view, viewAbort.signal);
    return;
  }
  const m = /^#\/meters(?:\/([^/?#]+))?\/?$/.exec(hash);
  if (!m) {
    show(el("h1", {}, "Not found"), el("p", {}, "No such page. ", el("a", { href: "#/meters" }, "See the meters.")));
    return;
  }
  const slug = m[1] ? decodePart(m[1]) : null;
  if (slug === null) metersPage(view, viewAbort.signal);
  else meterPage(slug, view, viewAbort.signal);
}

// decodePart decodes a percent-encoded route segment, or returns it as is.
function decodePart(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

// load titles the page and shows its heading with "Loading…" while fetch
// runs, and returns what fetch returned; undefined when it failed (the
// error is shown) or the user went to another page meanwhile.
async function load(v, title, heading, fetch) {
  document.title = title;
  show(el("h1", {}, heading), el("p", { class: "muted" }, "Loading…"));
  try {
    const result = await fetch();
    return v === view ? result : undefined;
  } catch (err) {
    if (v === view) handleError(err);
    return undefined;
  }
}

function meterHref(slug) {
  return `#/meters/${encodeURIComponent(slug)}`;
}

// ---- Meters page -----------------------------------------------------------

async function metersPage(v, signal) {
  const meters = await load(v, "Meters · Odometer", "Meters",
    async () => (await api("/api/v1/meters", { signal })).json());
  if (meters === undefined) return;
  if (!Array.isArray(meters) || meters.length === 0) {
    show(el("h1", {}, "Meters"), el("p", {}, "No meters yet. Create one with POST /api/v1/meters."));
    return;
  }
  const head = ["Slug", "Name", "Aggregation", "Event type", "Group by"];
  const table = el("table", { "data-testid": "meters-table" },
    el("caption", { class: "sr-only" }, "Meters"),
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, meters.map((m) => el("tr", {},
      el("th", { scope: "row" }, el("a", { href: meterHref(m.slug) }, el("code", {}, m.slug))),
      el("td", {}, m.name || ""),
      el("td", {}, m.aggregation || ""),
      el("td", {}, el("code", {}, m.eventType || "")),
      el("td", {}, groupByKeys(m).join(", "))))));
  show(el("h1", {}, "Meters"), el("div", { class: "table-wrap" }, table));
}

function groupByKeys(meter) {
  return Object.keys(meter.groupBy || {}).sort();
}

// ---- Meter page ------------------------------------------------------------

async function meterPage(slug, v, signal) {
  const meter = await load(v, `${slug} · Odometer`, slug,
    async () => (await api(`/api/v1/meters/${encodeURIComponent(slug)}`, { signal })).json());
  if (meter === undefined) return;

  const tz = browserZone();
  const today = todayIn(tz);
  const windowSize = el("select", { name: "windowSize" },
    WINDOW_SIZES.map((w) => el("option", { value: w }, w)));
  windowSize.value = "DAY";
  const zonesList = el("datalist", { id: uid("zones") },
    [...new Set([tz, ...ZONES])].map((z) => el("option", { value: z })));
  const zone = el("input", {
    type: "text", name: "windowTimeZone", value: tz, list: zonesList.id,
    autocomplete: "off", spellcheck: "false", autocapitalize: "off",
  });
  const from = el("input", { type: "datetime-local", name: "from", value: wallDay(today, -6), required: true });
  const to = el("input", { type: "datetime-local", name: "to", value: wallDay(today, 1), required: true });
  const keys = groupByKeys(meter);
  const groupBy = el("select", { name: "groupBy" },
    el("option", { value: "" }, "none"),
    el("option", { value: "subject" }, "subject"),
    keys.filter((k) => k !== "subject").map((k) => el("option", { value: k }, k)));
  const subjects = el("input", {
    type: "text", name: "subject", autocomplete: "off", spellcheck: "false",
    autocapitalize: "off", placeholder: "customer-1, customer-2",
  });
  const download = el("button", { type: "button", class: "secondary" }, "Download CSV");
  const form = el("form", { class: "controls", "aria-label": "Usage query" },
    field("Window size", windowSize),
    field("Time zone", zone, "IANA name; DAY and MONTH windows follow it."),
    field("From", from, "Inclusive, in the time zone above."),
    field("To", to, "Exclusive, in the time zone above."),
    field("Group by", groupBy),
    field("Subjects", subjects, "Comma-separated; empty for all."),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Query"), download));
  const results = el("section", { "aria-label": "Results", "aria-live": "polite", "aria-busy": "false" });

  const desc = [meter.name && meter.name !== meter.slug ? meter.name : null,
    `${meter.aggregation} of ${meter.eventType} events`, meter.valueProperty ? `(${meter.valueProperty})` : null]
    .filter(Boolean).join(" · ");
  show(el("p", {}, el("a", { href: "#/meters" }, "← Meters")), el("h1", {}, slug),
    el("p", { class: "muted" }, desc), form, zonesList, results);

  // request builds the query from the pickers, or throws an Error whose
  // message says which picker is wrong.
  const request = () => {
    const zoneName = zone.value.trim() || "UTC";
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: zoneName });
    } catch {
      throw new Error(`Unknown time zone "${zoneName}". Use an IANA name such as Europe/Berlin.`);
    }
    let f, t;
    try {
      f = wallToDate(from.value, zoneName);
      t = wallToDate(to.value, zoneName);
    } catch {
      throw new Error("Pick both a start and an end date and time.");
    }
    const q = new URLSearchParams();
    q.set("from", f.toISOString());
    q.set("to", t.toISOString());
    q.set("windowSize", windowSize.value);
    q.set("windowTimeZone", zoneName);
    const subjectList = subjects.value.split(",").map((s) => s.trim()).filter(Boolean);
    for (const s of subjectList) q.append("subject", s);
    if (groupBy.value) q.append("groupBy", groupBy.value);
    return {
      url: `/api/v1/meters/${encodeURIComponent(slug)}/query?${q}`,
      zone: zoneName,
      windowSize: windowSize.value,
      groupKey: groupBy.value && groupBy.value !== "subject" ? groupBy.value : null,
      bySubject: groupBy.value === "subject" || subjectList.length > 0,
    };
  };

  let seq = 0;
  let queryAbort = new AbortController();
  signal.addEventListener("abort", () => queryAbort.abort(), { once: true });
  const run = async () => {
    const n = ++seq;
    queryAbort.abort();
    queryAbort = new AbortController();
    let req;
    try {
      req = request();
    } catch (err) {
      results.replaceChildren(el("div", { class: "error", role: "alert" }, el("p", {}, err.message)));
      return;
    }
    results.setAttribute("aria-busy", "true");
    try {
      const res = await api(req.url, { signal: queryAbort.signal });
      const body = parseExactJSON(await res.text());
      if (n !== seq || v !== view) return;
      results.replaceChildren(...usageView(body, req, meter));
    } catch (err) {
      if (n === seq && v === view) handleError(err, results);
    } finally {
      if (n === seq) results.setAttribute("aria-busy", "false");
    }
  };

  form.addEventListener("change", run);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run();
  });
  download.addEventListener("click", async () => {
    let req;
    try {
      req = request();
    } catch (err) {
      results.replaceChildren(el("div", { class: "error", role: "alert" }, el("p", {}, err.message)));
      return;
    }
    download.disabled = true;
    try {
      const res = await api(req.url, { accept: "text/csv", signal });
      const blob = await res.blob();
      const href = URL.createObjectURL(blob);
      const a = el("a", { href, download: `${slug}.csv`, class: "sr-only" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 10000);
    } catch (err) {
      if (v === view) handleError(err, results);
    } finally {
      download.disabled = false;
    }
  });
  run();
}

// seriesLabel names the series a row belongs to.
function seriesLabel(row, req, meter) {
  const parts = [];
  if (req.bySubject) parts.push(row.subject ?? "(no subject)");
  if (req.groupKey) {
    const g = row.groupBy ? row.groupBy[req.groupKey] : null;
    parts.push(`${req.groupKey}=${g ?? "(none)"}`);
  }
  return parts.length > 0 ? parts.join(", ") : meter.slug;
}

// usageView renders a query result: a legend, the chart and the table.
function usageView(body, req, meter) {
  const rows = Array.isArray(body.data) ? body.data : [];
  if (rows.length === 0) {
    return [el("p", {}, "No usage in this range.")];
  }
  const series = new Map();
  for (const row of rows) {
    const label = seriesLabel(row, req, meter);
    if (!series.has(label)) series.set(label, []);
    series.get(label).push(row);
  }
  const legend = el("ul", { class: "legend", "aria-label": "Legend" },
    [...series.keys()].map((label, i) =>
      el("li", {}, el("span", { class: `swatch s${i % SERIES_CLASSES}`, "aria-hidden": "true" }), label)));
  return [
    el("h2", {}, "Chart"),
    legend,
    el("div", { class: "chart" }, chart(series, req)),
    el("h2", {}, "Table"),
    el("div", { class: "table-wrap" }, usageTable(rows, req, meter)),
  ];
}

// niceTicks returns about count round values spanning [lo, hi].
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw);
  const ticks = [];
  const start = Math.floor(lo / step) * step;
  for (let t = start; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1] < hi) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

// chart draws one line per series over the window starts, with a marker per
// row carrying data-window-start and data-value (the exact decimal text).
function chart(series, req) {
  const W = 800, H = 320, left = 72, right = 16, top = 16, bottom = 44;
  const starts = [...new Set([...series.values()].flat().map((r) => r.windowStart))]
    .sort((a, b) => Date.parse(a) - Date.parse(b));
  const index = new Map(starts.map((s, i) => [s, i]));
  const values = [...series.values()].flat().map((r) => Number(r.value)).filter(Number.isFinite);
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values));
  const yMin = ticks[0], yMax = ticks[ticks.length - 1];
  const x = (start) => starts.length === 1
    ? left + (W - left - right) / 2
    : left + (index.get(start) / (starts.length - 1)) * (W - left - right);
  const y = (v) => top + (1 - (v - yMin) / (yMax - yMin)) * (H - top - bottom);

  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, role: "img", "data-testid": "usage-chart",
    "aria-label": `Usage per ${req.windowSize.toLowerCase()}, ${series.size} series, ${starts.length} windows. The table below lists the values.`,
  });
  for (const t of ticks) {
    root.append(
      svg("line", { class: "grid", x1: left, x2: W - right, y1: y(t), y2: y(t) }),
      svg("text", { x: left - 8, y: y(t) + 4, "text-anchor": "end" }, formatNumber(t)));
  }
  root.append(svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: H - bottom }),
    svg("line", { class: "axis", x1: left, x2: W - right, y1: y(0), y2: y(0) }));
  const every = Math.max(1, Math.ceil(starts.length / 6));
  starts.forEach((s, i) => {
    if (i % every !== 0) return;
    let anchor = "middle";
    if (starts.length > 1 && i === 0) anchor = "start";
    else if (starts.length > 1 && i === starts.length - 1) anchor = "end";
    root.append(svg("text", { x: x(s), y: H - bottom + 20, "text-anchor": anchor },
      formatTime(s, req.zone, req.windowSize)));
  });
  [...series.entries()].forEach(([label, rows], i) => {
    const cls = `s${i % SERIES_CLASSES}`;
    const sorted = [...rows].sort((a, b) => index.get(a.windowStart) - index.get(b.windowStart));
    let d = "";
    let prev = -2;
    for (const r of sorted) {
      const n = Number(r.value);
      if (!Number.isFinite(n)) continue;
      const k = index.get(r.windowStart);
      d += `${k === prev + 1 ? "L" : "M"}${x(r.windowStart).toFixed(2)} ${y(n).toFixed(2)} `;
      prev = k;
    }
    const g = svg("g", { "data-series": label });
    if (d) g.append(svg("path", { class: `series ${cls}`, d: d.trim() }));
    for (const r of sorted) {
      const n = Number(r.value);
      if (!Number.isFinite(n)) continue;
      g.append(svg("circle", {
        class: cls, cx: x(r.windowStart).toFixed(2), cy: y(n).toFixed(2), r: 4,
        "data-window-start": r.windowStart, "data-value": r.value,
      }, svg("title", {}, `${label}: ${r.value} (${formatTime(r.windowStart, req.zone, req.windowSize)})`)));
    }
    root.append(g);
  });
  return root;
}

function formatNumber(n) {
  return new Intl.NumberFormat(undefined, { maximumSignificantDigits: 6 }).format(n);
}

// usageTable lists the rows with their exact values.
function usageTable(rows, req, meter) {
  const cols = ["Window start", "Window end"];
  if (req.bySubject) cols.push("Subject");
  if (req.groupKey) cols.push(req.groupKey);
  return el("table", { "data-testid": "usage-table" },
    el("caption", {}, `${meter.aggregation} of ${meter.slug}, times in ${req.zone}`),
    el("thead", {}, el("tr", {},
      cols.map((c) => el("th", { scope: "col" }, c)),
      el("th", { scope: "col", class: "num" }, "Value"))),
    el("tbody", {}, rows.map((r) => el("tr", { "data-window-start": r.windowStart },
      el("td", {}, el("time", { datetime: r.windowStart }, formatTime(r.windowStart, req.zone, "MINUTE"))),
      el("td", {}, el("time", { datetime: r.windowEnd }, formatTime(r.windowEnd, req.zone, "MINUTE"))),
      req.bySubject ? el("td", {}, r.subject ?? "") : null,
      req.groupKey ? el("td", {}, (r.groupBy && r.groupBy[req.groupKey]) ?? "") : null,
      el("td", { class: "num", "data-value": r.value }, r.value)))));
}

// ---- Shared by the events and exports pages --------------------------------

// formatInstant formats an RFC 3339 time to the second, in time zone tz.
function formatInstant(iso, tz) {
  try {
    return new Intl.DateTimeFormat(undefined, {
      timeZone: tz, year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).format(new Date(iso));
  } catch {
    return iso;
  }
}

function timeCell(iso, tz) {
  return el("td", {}, iso ? el("time", { datetime: iso, title: iso }, formatInstant(iso, tz)) : "");
}

// rangeParams sets from and to on q from two datetime-local inputs read in
// time zone tz; an empty input sets nothing. It throws an Error naming the
// input that does not hold a date and time.
function rangeParams(q, tz, pairs) {
  for (const [name, input] of pairs) {
    if (!input.value) continue;
    try {
      q.set(name, wallToDate(input.value, tz).toISOString());
    } catch {
      throw new Error(`"${name}" is not a date and time.`);
    }
  }
}

function alertBox(message) {
  return el("div", { class: "error", role: "alert" }, el("p", {}, message));
}

// ---- Events page -----------------------------------------------------------

const LIVE_INTERVAL_MS = 2000;

// NOT_FOUND is what the look-up says about an id the store does not hold.
const NOT_FOUND = "not found: never accepted, or rejected (rejected events are not stored; the ingestion answer said why)";

function eventsPage(v, signal) {
  document.title = "Events · Odometer";
  const tz = browserZone();
  const input = (name, attrs = {}) => el("input", {
    type: "text", name, autocomplete: "off", spellcheck: "false", autocapitalize: "off", ...attrs,
  });
  const subject = input("subject");
  const id = input("id");
  const from = el("input", { type: "datetime-local", name: "from", step: 1 });
  const to = el("input", { type: "datetime-local", name: "to", step: 1 });
  const live = el("input", { type: "checkbox", name: "live", id: uid("f") });
  const form = el("form", { class: "controls", "aria-label": "Event filters" },
    field("Subject", subject, "Contains; case-sensitive."),
    field("ID", id, "Contains; case-sensitive."),
    field("From", from, `Event time, inclusive, in ${tz}. Empty: the last 72 hours.`),
    field("To", to, `Event time, exclusive, in ${tz}.`),
    el("div", { class: "check" }, live, el("label", { for: live.id }, "Live"),
      el("span", { class: "hint" }, "Refresh every 2 s")),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Apply")));
  const results = el("section", { "aria-label": "Events", "aria-busy": "false" });

  const lookupID = input("lookupId", { required: true });
  const lookupSource = input("lookupSource");
  const lookupForm = el("form", { class: "controls", "aria-label": "Look up an event by id" },
    field("Event id", lookupID),
    field("Source", lookupSource, "Optional; the id is unique per source."),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Look up")));
  const lookupResult = el("section", { "aria-label": "Look-up result", "aria-live": "polite" });

  show(el("h1", {}, "Events"), form, results,
    el("h2", {}, "Look up by id"), lookupForm, lookupResult);

  let seq = 0;
  let timer = null;
  let queryAbort = new AbortController();
  const stop = () => {
    clearTimeout(timer);
    timer = null;
  };
  signal.addEventListener("abort", () => {
    stop();
    queryAbort.abort();
  }, { once: true });

  // schedule polls again in 2 s while the box is checked and the page shown.
  const schedule = () => {
    stop();
    if (live.checked && v === view && !signal.aborted) timer = setTimeout(run, LIVE_INTERVAL_MS);
  };
  const run = async () => {
    const n = ++seq;
    stop();
    queryAbort.abort();
    queryAbort = new AbortController();
    const q = new URLSearchParams();
    try {
      rangeParams(q, tz, [["from", from], ["to", to]]);
    } catch (err) {
      results.replaceChildren(alertBox(err.message));
      return;
    }
    if (subject.value.trim()) q.set("subject", subject.value.trim());
    if (id.value.trim()) q.set("id", id.value.trim());
    results.setAttribute("aria-busy", "true");
    try {
      const list = await (await api(`/api/v1/events?${q}`, { signal: queryAbort.signal })).json();
      if (n !== seq || v !== view) return;
      results.replaceChildren(eventsTable(Array.isArray(list) ? list : [], tz));
    } catch (err) {
      if (n === seq && v === view) handleError(err, results);
    } finally {
      if (n === seq) {
        results.setAttribute("aria-busy", "false");
        schedule();
      }
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run();
  });
  form.addEventListener("change", (ev) => {
    if (ev.target === live && !live.checked) stop();
    else run();
  });

  lookupForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const want = lookupID.value.trim();
    const source = lookupSource.value.trim();
    if (!want) {
      lookupResult.replaceChildren(alertBox("Enter an event id."));
      return;
    }
    // The id filter matches substrings; from the epoch so that old events count.
    const q = new URLSearchParams({ id: want, from: "1970-01-01T00:00:00Z", limit: "1000" });
    lookupResult.replaceChildren(el("p", { class: "muted" }, "Looking up…"));
    try {
      const list = await (await api(`/api/v1/events?${q}`, { signal })).json();
      if (v !== view) return;
      const found = (Array.isArray(list) ? list : [])
        .filter((e) => e.event && e.event.id === want && (!source || e.event.source === source));
      lookupResult.replaceChildren(found.length === 0
        ? el("p", { "data-testid": "lookup-result", "data-found": "false" }, el("strong", {}, want), ": ", NOT_FOUND)
        : el("div", { "data-testid": "lookup-result", "data-found": "true" },
          found.map((e) => eventDetails(e, tz))));
    } catch (err) {
      if (v === view) handleError(err, lookupResult);
    }
  });
  run();
}

// eventsTable lists events newest first, one row per event.
function eventsTable(list, tz) {
  if (list.length === 0) return el("p", { "data-testid": "events-empty" }, "No events match.");
  const head = ["ID", "Source", "Type", "Subject", "Time", "Ingested at", "Data"];
  return el("div", { class: "table-wrap" }, el("table", { "data-testid": "events-table" },
    el("caption", {}, `${list.length} event${list.length === 1 ? "" : "s"}, newest first, times in ${tz}`),
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, list.map((item) => {
      const e = item.event || {};
      return el("tr", { "data-event-id": e.id },
        el("th", { scope: "row" }, el("code", {}, e.id ?? "")),
        el("td", {}, e.source ?? ""),
        el("td", {}, el("code", {}, e.type ?? "")),
        el("td", {}, e.subject ?? ""),
        timeCell(e.time, tz),
        timeCell(item.ingestedAt, tz),
        el("td", { class: "data" }, e.data === undefined ? "" : el("code", {}, JSON.stringify(e.data))));
    }))));
}

// eventDetails shows one stored event: its fields and its data.
function eventDetails(item, tz) {
  const e = item.event;
  const rows = [["ID", e.id], ["Source", e.source], ["Type", e.type], ["Subject", e.subject],
    ["Time", e.time], ["Ingested at", item.ingestedAt]];
  return el("div", { class: "details" },
    el("p", {}, el("strong", {}, "Stored."), ` Event time ${formatInstant(e.time, tz)} (${tz}); below in UTC.`),
    el("dl", {}, rows.flatMap(([k, val]) => [el("dt", {}, k), el("dd", {}, el("code", {}, val ?? ""))])),
    el("h3", {}, "Data"),
    el("pre", {}, e.data === undefined ? "(none)" : JSON.stringify(e.data, null, 2)));
}

// ---- Exports pages ---------------------------------------------------------

function exportHref(name) {
  return `#/exports/${encodeURIComponent(name)}`;
}

async function exportsPage(v, signal) {
  const list = await load(v, "Exports · Odometer", "Exports",
    async () => (await api("/api/v1/exports", { signal })).json());
  if (list === undefined) return;
  if (!Array.isArray(list) || list.length === 0) {
    show(el("h1", {}, "Exports"),
      el("p", {}, "No export destinations yet. Create one with PUT /api/v1/exports/{name}."));
    return;
  }
  const tz = browserZone();
  const head = ["Name", "Product code", "Dimensions", "Mode", "Frozen through"];
  const table = el("table", { "data-testid": "exports-table" },
    el("caption", { class: "sr-only" }, "Export destinations"),
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, list.map((d) => el("tr", { "data-destination": d.name },
      el("th", { scope: "row" }, el("a", { href: exportHref(d.name) }, el("code", {}, d.name))),
      el("td", {}, el("code", {}, d.productCode ?? "")),
      el("td", {}, (d.dimensions || []).map((x) => `${x.dimension} ← ${x.meterSlug}`).join(", ")),
      el("td", {}, d.dryRun ? "dry run" : "live"),
      d.frozenThrough ? timeCell(d.frozenThrough, tz) : el("td", { class: "muted" }, "nothing frozen yet")))));
  show(el("h1", {}, "Exports"), el("div", { class: "table-wrap" }, table));
}

const STATUS_COLUMNS = [
  ["pending", "Pending"], ["inFlight", "In flight"], ["accepted", "Accepted"], ["duplicate", "Duplicate"],
  ["notSubscribed", "Not subscribed"], ["rejected", "Rejected"], ["expired", "Expired"], ["empty", "Empty"],
  ["quantityAccepted", "Quantity accepted"],
];

async function exportPage(name, v, signal) {
  const base = `/api/v1/exports/${encodeURIComponent(name)}`;
  // Counts and quantities are integers that may exceed 2^53: keep their text.
  const loaded = await load(v, `${name} · Exports · Odometer`, name, () => Promise.all([
    api(base, { signal }).then((r) => r.json()),
    api(`${base}/status`, { signal }).then(async (r) => parseExactJSON(await r.text())),
  ]));
  if (loaded === undefined) return;
  const [dest, status] = loaded;
  const tz = browserZone();
  const summary = el("dl", { class: "summary", "data-testid": "export-destination" },
    el("dt", {}, "Product code"), el("dd", {}, el("code", {}, dest.productCode ?? "")),
    el("dt", {}, "Mode"), el("dd", {}, dest.dryRun ? "dry run (nothing is sent to AWS)" : "live"),
    el("dt", {}, "Dimensions"), el("dd", {}, (dest.dimensions || [])
      .map((x) => `${x.dimension} ← meter ${x.meterSlug}`).join(", ")),
    el("dt", {}, "Delay"), el("dd", {}, dest.delay ?? ""),
    el("dt", {}, "Frozen through"), el("dd", {}, dest.frozenThrough
      ? el("time", { datetime: dest.frozenThrough }, formatInstant(dest.frozenThrough, tz))
      : "nothing frozen yet"));
  const records = el("section", { "aria-label": "Records", "aria-live": "polite" });
  const hours = Array.isArray(status.hours) ? status.hours : [];
  const range = `${formatInstant(status.from, tz)} – ${formatInstant(status.to, tz)} (${tz})`;
  let body;
  if (hours.length === 0) {
    body = el("p", { "data-testid": "export-status-empty" },
      `No frozen records from ${range}. An hour is frozen into records once the destination's delay has passed.`);
  } else {
    let seq = 0;
    const open = async (row, h) => {
      const n = ++seq;
      for (const tr of row.parentNode.children) tr.removeAttribute("aria-current");
      row.setAttribute("aria-current", "true");
      const to = new Date(Date.parse(h.hour) + 3600 * 1000).toISOString();
      const q = new URLSearchParams({ from: h.hour, to, dimension: h.dimension, limit: "1000" });
      records.replaceChildren(el("p", { class: "muted" }, "Loading records…"));
      try {
        const res = parseExactJSON(await (await api(`${base}/records?${q}`, { signal })).text());
        if (n !== seq || v !== view) return;
        records.replaceChildren(recordsTable(res.records || [], h, tz));
      } catch (err) {
        if (n === seq && v === view) handleError(err, records);
      }
    };
    body = el("div", { class: "table-wrap" }, el("table", { "data-testid": "export-status" },
      el("caption", {}, `Records per hour and dimension, ${range}. Choose an hour to list its records.`),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Hour"), el("th", { scope: "col" }, "Dimension"),
        STATUS_COLUMNS.map(([, label]) => el("th", { scope: "col", class: "num" }, label)))),
      el("tbody", {}, hours.map((h) => {
        const button = el("button", { type: "button", class: "link" }, formatInstant(h.hour, tz));
        const row = el("tr", { "data-hour": h.hour, "data-dimension": h.dimension },
          el("th", { scope: "row" }, button),
          el("td", {}, el("code", {}, h.dimension)),
          STATUS_COLUMNS.map(([k]) => el("td", { class: "num" }, h[k] ?? "0")));
        button.addEventListener("click", () => open(row, h));
        return row;
      }))));
  }
  show(el("p", {}, el("a", { href: "#/exports" }, "← Exports")), el("h1", {}, name), summary,
    el("h2", {}, "Status"), body, records);
}

// recordsTable lists the records of one hour and dimension.
function recordsTable(list, h, tz) {
  const title = `Records of ${h.dimension}, hour of ${formatInstant(h.hour, tz)}`;
  if (list.length === 0) return el("p", {}, `${title}: none.`);
  return el("div", {}, el("h2", {}, title), el("div", { class: "table-wrap" },
    el("table", { "data-testid": "export-records" },
      el("thead", {}, el("tr", {},
        ["Subject", "Customer"].map((c) => el("th", { scope: "col" }, c)),
        el("th", { scope: "col", class: "num" }, "Quantity"),
        ["Status", "Reason / metering record id"].map((c) => el("th", { scope: "col" }, c)))),
      el("tbody", {}, list.map((r) => el("tr", { "data-subject": r.subject },
        el("td", {}, r.subject ?? ""),
        el("td", {}, el("code", {}, r.customerId || r.awsAccountId || r.licenseArn || "")),
        el("td", { class: "num" }, r.quantity ?? ""),
        el("td", {}, r.status ?? ""),
        el("td", {}, r.reason || (r.meteringRecordId ? el("code", {}, r.meteringRecordId) : ""))))))));
}

// ---- Start -----------------------------------------------------------------

function start() {
  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    updateNav();
    signInView("Signed out. The key was removed from this tab.", false);
  });
  window.addEventListener("hashchange", route);
  updateNav();
  route();
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
