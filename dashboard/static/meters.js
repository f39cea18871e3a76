// The meters pages: the list of meters (#/meters) and one meter's usage
// (#/meters/{slug}, optionally ?subject=a,b to start filtered): pickers, an
// SVG chart, a table of the exact values and CSV download.
import {
  api, browserZone, el, field, formatTime, handleError, isCurrent, latest, load, parseExactJSON, show, svg,
  todayIn, uid, wallDay, wallToDate,
} from "./core.js";

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

// meterHref links to a meter's usage page; subject, when given, starts it
// filtered to that subject.
export function meterHref(slug, subject) {
  const q = subject ? `?${new URLSearchParams({ subject })}` : "";
  return `#/meters/${encodeURIComponent(slug)}${q}`;
}

// ---- Meters page -----------------------------------------------------------

export async function metersPage(v, signal) {
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

export async function meterPage(slug, v, signal, params = new URLSearchParams()) {
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
    autocapitalize: "off", placeholder: "customer-1, customer-2", value: params.get("subject") || null,
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
  // How the server reads this meter's usage (docs/rollups.md).
  const ru = meter.usageRollup || { state: "none" };
  const rollup = el("p", { class: "muted", "data-testid": "usage-rollup" },
    ru.state === "ready" ? "Usage is read from rollups."
      : ru.state === "backfilling"
        ? `Rollups are being built: ${Number(ru.pendingEvents || 0).toLocaleString("en-US")} stored events to go; until then queries also read events, with the same answers.`
        : "Usage is read from the stored events.");
  show(el("p", {}, el("a", { href: "#/meters" }, "← Meters")), el("h1", {}, slug),
    el("p", { class: "muted" }, desc), rollup, form, zonesList, results);

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

  const start = latest(signal);
  const run = async () => {
    const r = start();
    let req;
    try {
      req = request();
    } catch (err) {
      results.replaceChildren(el("div", { class: "error", role: "alert" }, el("p", {}, err.message)));
      return;
    }
    results.setAttribute("aria-busy", "true");
    try {
      const res = await api(req.url, { signal: r.signal });
      const body = parseExactJSON(await res.text());
      if (!r.current() || !isCurrent(v)) return;
      results.replaceChildren(...usageView(body, req, meter));
    } catch (err) {
      if (r.current() && isCurrent(v)) handleError(err, results);
    } finally {
      if (r.current()) results.setAttribute("aria-busy", "false");
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
      if (isCurrent(v)) handleError(err, results);
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
