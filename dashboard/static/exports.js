// The exports pages: the AWS Marketplace destinations (#/exports) and one
// destination (#/exports/{name}): its settings, the status of its frozen
// records per hour and dimension, and the records of a chosen row.
import {
  api, browserZone, customerHref, el, formatInstant, handleError, isCurrent, latest, load, parseExactJSON, show,
  timeCell,
} from "./core.js";

function exportHref(name) {
  return `#/exports/${encodeURIComponent(name)}`;
}

export async function exportsPage(v, signal) {
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

export async function exportPage(name, v, signal) {
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
    const start = latest(signal);
    const open = async (row, h) => {
      const r = start();
      for (const tr of row.parentNode.children) tr.removeAttribute("aria-current");
      row.setAttribute("aria-current", "true");
      const to = new Date(Date.parse(h.hour) + 3600 * 1000).toISOString();
      const q = new URLSearchParams({ from: h.hour, to, dimension: h.dimension, limit: "1000" });
      records.replaceChildren(el("p", { class: "muted" }, "Loading records…"));
      try {
        const res = parseExactJSON(await (await api(`${base}/records?${q}`, { signal: r.signal })).text());
        if (!r.current() || !isCurrent(v)) return;
        records.replaceChildren(recordsTable(res.records || [], h, tz));
      } catch (err) {
        if (r.current() && isCurrent(v)) handleError(err, records);
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
      el("caption", { class: "sr-only" }, title),
      el("thead", {}, el("tr", {},
        ["Subject", "Customer"].map((c) => el("th", { scope: "col" }, c)),
        el("th", { scope: "col", class: "num" }, "Quantity"),
        ["Status", "Reason / metering record id"].map((c) => el("th", { scope: "col" }, c)))),
      el("tbody", {}, list.map((r) => el("tr", { "data-subject": r.subject },
        el("th", { scope: "row" }, r.subject ? el("a", { href: customerHref(r.subject) }, r.subject) : ""),
        el("td", {}, el("code", {}, r.customerId || r.awsAccountId || r.licenseArn || "")),
        el("td", { class: "num" }, r.quantity ?? ""),
        el("td", {}, r.status ?? ""),
        el("td", {}, r.reason || (r.meteringRecordId ? el("code", {}, r.meteringRecordId) : ""))))))));
}
