// The customers pages.
//
//   #/customers          search: subjects that have events, by prefix
//                        (GET /api/v1/event-subjects), and subjects of ledgers
//                        containing the text (GET /api/v1/ledgers?subjectLike=),
//                        merged; "More" pages both.
//   #/customers/{subj}   one subject: its total per meter over a period
//                        (UTC), its ledger (balance per feature, grants with
//                        their burn-down, history) and the access check of
//                        each feature.
//
// Every value, balance and amount is read with parseExactJSON and shown as
// the API's exact decimal text; Number() is used only to fill a bar.
import {
  api, customerHref, decimalSign, decimalSub, el, field, handleError, isCurrent, latest, load, parseExactJSON, show,
  uid,
} from "./core.js";
import { meterHref } from "./meters.js";

// SUBJECTS lists subjects that have events; see docs/dashboard.md.
const SUBJECTS = "/api/v1/event-subjects";
const PAGE = 50;
const SEARCH_DELAY_MS = 250;
// QUERIES is how many usage queries the customer page runs at once.
const QUERIES = 6;

async function exactJSON(path, signal) {
  return parseExactJSON(await (await api(path, { signal })).text());
}

// ---- Search ----------------------------------------------------------------

export function customersPage(v, signal, params) {
  document.title = "Customers · Odometer";
  const input = el("input", {
    type: "search", name: "q", autocomplete: "off", spellcheck: "false", autocapitalize: "off",
    value: params.get("q") || null,
  });
  const form = el("form", { class: "controls", role: "search", "aria-label": "Customers" },
    field("Search subjects", input,
      "Subjects with events that start with this text, and ledgers whose subject contains it. Case-sensitive; empty lists all."),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Search")));
  const status = el("div", { class: "muted", "aria-live": "polite", "data-testid": "customer-count" });
  const list = el("ul", { class: "results", "data-testid": "customer-results" });
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "More");
  const results = el("section", { "aria-label": "Subjects", "aria-busy": "false" }, status, list, el("div", {}, more));
  show(el("h1", {}, "Customers"), form, results);

  // The search in progress: its run (latest), its text, what it found and
  // where each source goes on.
  let s = null;
  let timer = null;
  const start = latest(signal);
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });

  const render = () => {
    const subjects = [...s.found.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    list.replaceChildren(...subjects.map((subject) => {
      const f = s.found.get(subject);
      return el("li", { "data-subject": subject },
        el("a", { href: customerHref(subject) }, subject),
        f.ledger ? el("span", { class: "tag" }, "ledger") : null);
    }));
    const what = s.text ? `matching “${s.text}”` : "";
    status.textContent = subjects.length === 0
      ? `No subjects ${what || "yet"}.`
      : `${subjects.length} subject${subjects.length === 1 ? "" : "s"} ${what}${s.eventsNext || s.ledgersMore ? " so far" : ""}.`;
    more.hidden = !(s.eventsNext || s.ledgersMore);
  };

  // fetchPage loads the next page of each source that has more.
  const fetchPage = async () => {
    const r = s.run;
    const jobs = [];
    if (s.eventsNext !== null) {
      const q = new URLSearchParams({ prefix: s.text, limit: String(PAGE) });
      if (s.eventsNext) q.set("after", s.eventsNext);
      jobs.push(api(`${SUBJECTS}?${q}`, { signal: r.signal }).then((r) => r.json()).then((res) => {
        if (!r.current()) return;
        for (const subject of res.subjects || []) s.found.set(subject, { ...s.found.get(subject), events: true });
        s.eventsNext = res.next ? res.next : null;
      }));
    }
    if (s.ledgersMore) {
      const q = new URLSearchParams({ limit: String(PAGE), offset: String(s.ledgerOffset) });
      if (s.text) q.set("subjectLike", s.text);
      jobs.push(api(`/api/v1/ledgers?${q}`, { signal: r.signal }).then((r) => r.json()).then((res) => {
        if (!r.current()) return;
        const ledgers = Array.isArray(res) ? res : [];
        for (const l of ledgers) s.found.set(l.subject, { ...s.found.get(l.subject), ledger: true });
        s.ledgerOffset += ledgers.length;
        s.ledgersMore = ledgers.length === PAGE;
      }));
    }
    results.setAttribute("aria-busy", "true");
    more.disabled = true;
    try {
      await Promise.all(jobs);
      if (r.current() && isCurrent(v)) render();
    } catch (err) {
      if (r.current() && isCurrent(v)) handleError(err, status);
    } finally {
      if (r.current()) results.setAttribute("aria-busy", "false");
      more.disabled = false;
    }
  };

  const search = () => {
    clearTimeout(timer);
    const text = input.value;
    if (s && s.text === text) return;
    // eventsNext: "" for the first page, a subject to go on after, null when done.
    s = { run: start(), text, found: new Map(), eventsNext: "", ledgersMore: true, ledgerOffset: 0 };
    // Keep the search in the URL (without a new history entry), so that
    // going back from a customer returns to it.
    history.replaceState(null, "", text ? `#/customers?${new URLSearchParams({ q: text })}` : "#/customers");
    fetchPage();
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, SEARCH_DELAY_MS);
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    search();
  });
  more.addEventListener("click", fetchPage);
  search();
}

// ---- One customer ----------------------------------------------------------

// utcDay returns "YYYY-MM-DD" of the UTC day that is days after the day of
// date.
function utcDay(date, days = 0) {
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() + days))
    .toISOString().slice(0, 10);
}

function utcMonth(date, months) {
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + months, 1)).toISOString().slice(0, 10);
}

// PERIODS are the period picker's choices: [value, label, [from, to] as
// UTC days ("" for open)].
const PERIODS = [
  ["month", "This month", (now) => [utcMonth(now, 0), utcMonth(now, 1)]],
  ["last-month", "Last month", (now) => [utcMonth(now, -1), utcMonth(now, 0)]],
  ["30d", "Last 30 days", (now) => [utcDay(now, -29), utcDay(now, 1)]],
  ["all", "All time", () => ["", ""]],
  ["custom", "Custom", null],
];

export async function customerPage(subject, v, signal) {
  const loaded = await load(v, `${subject} · Customers · Odometer`, subject, () => Promise.all([
    api("/api/v1/meters", { signal }).then((r) => r.json()),
    api(`/api/v1/ledgers?${new URLSearchParams({ subject })}`, { signal }).then((r) => r.json()),
    exactJSON("/api/v1/features?includeArchived=true", signal),
  ]));
  if (loaded === undefined) return;
  const [meters, ledgers, features] = loaded;

  const usage = el("section", { "aria-labelledby": uid("h"), "data-testid": "customer-usage-section" });
  const credits = el("section", { "aria-labelledby": uid("h") });
  show(el("p", {}, el("a", { href: "#/customers" }, "← Customers")), el("h1", {}, subject), usage, credits);
  usageSection(usage, subject, Array.isArray(meters) ? meters : [], v, signal);
  creditsSection(credits, subject, Array.isArray(ledgers) ? ledgers : [], Array.isArray(features) ? features : [], v, signal);
}

// ---- Usage per meter -------------------------------------------------------

function usageSection(section, subject, meters, v, signal) {
  const heading = el("h2", { id: section.getAttribute("aria-labelledby") }, "Usage");
  if (meters.length === 0) {
    section.replaceChildren(heading, el("p", {}, "No meters yet."));
    return;
  }
  const period = el("select", { name: "period" }, PERIODS.map(([value, label]) => el("option", { value }, label)));
  const from = el("input", { type: "date", name: "from" });
  const to = el("input", { type: "date", name: "to" });
  const form = el("form", { class: "controls", "aria-label": "Usage period" },
    field("Period", period),
    field("From (UTC)", from, "Inclusive; empty for no start."),
    field("To (UTC)", to, "Exclusive; empty for now."),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Show")));
  const results = el("div", { "aria-live": "polite", "aria-busy": "false" });
  section.replaceChildren(heading, form, results);

  const setPeriod = () => {
    const p = PERIODS.find(([value]) => value === period.value);
    if (p && p[2]) [from.value, to.value] = p[2](new Date());
  };

  const start = latest(signal);
  const run = async () => {
    const r = start();
    const q = new URLSearchParams({ subject });
    if (from.value) q.set("from", `${from.value}T00:00:00Z`);
    if (to.value) q.set("to", `${to.value}T00:00:00Z`);
    const range = `${from.value || "the first event"} to ${to.value ? `${to.value} (exclusive)` : "now"}, UTC`;
    results.setAttribute("aria-busy", "true");
    const totals = await pool(meters, QUERIES, async (m) => {
      try {
        const res = await exactJSON(`/api/v1/meters/${encodeURIComponent(m.slug)}/query?${q}`, r.signal);
        return { rows: Array.isArray(res.data) ? res.data : [] };
      } catch (err) {
        return { err };
      }
    });
    if (!r.current() || !isCurrent(v)) return;
    results.setAttribute("aria-busy", "false");
    const unauthorized = totals.find((t) => t.err && t.err.status === 401);
    if (unauthorized) {
      handleError(unauthorized.err);
      return;
    }
    results.replaceChildren(el("div", { class: "table-wrap" }, el("table", { "data-testid": "customer-usage" },
      el("caption", {}, `Total per meter, ${range}. Each meter links to its chart for this subject.`),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, "Meter"), el("th", { scope: "col" }, "Aggregation"),
        el("th", { scope: "col", class: "num" }, "Total"))),
      el("tbody", {}, meters.map((m, i) => el("tr", { "data-meter": m.slug },
        el("th", { scope: "row" }, el("a", { href: meterHref(m.slug, subject) }, el("code", {}, m.slug))),
        el("td", {}, m.aggregation || ""),
        totalCell(m, totals[i])))))));
  };

  period.addEventListener("change", () => {
    setPeriod();
    run();
  });
  for (const input of [from, to]) {
    input.addEventListener("change", () => {
      period.value = "custom";
      run();
    });
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run();
  });
  setPeriod();
  run();
}

// totalCell shows a windowless query's answer: its one value, 0 for a SUM
// or COUNT meter without events in the period, "no events" otherwise.
function totalCell(meter, t) {
  if (t.err) {
    if (t.err.name === "AbortError") return el("td", {}, "");
    return el("td", { class: "error-text" }, t.err.message || String(t.err));
  }
  if (t.rows.length === 0) {
    const zero = meter.aggregation === "SUM" || meter.aggregation === "COUNT";
    return el("td", { class: "num", "data-value": zero ? "0" : "" }, zero ? "0" : el("span", { class: "muted" }, "no events"));
  }
  // A windowless query of one subject answers one row.
  const value = t.rows[0].value;
  return el("td", { class: "num", "data-value": value }, value);
}

// pool calls fn on each item, at most limit at a time, and resolves to the
// results in the items' order.
async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// ---- Credits ---------------------------------------------------------------

async function creditsSection(section, subject, ledgers, features, v, signal) {
  const heading = el("h2", { id: section.getAttribute("aria-labelledby") }, "Credits");
  if (ledgers.length === 0) {
    section.replaceChildren(heading, el("p", { "data-testid": "customer-no-ledger" },
      "No ledger for this subject, so no credits, balances or access checks. Create one with POST /api/v1/ledgers ",
      el("code", {}, JSON.stringify({ subject })), "."));
    return;
  }
  section.replaceChildren(heading, el("p", { class: "muted" }, "Loading…"));
  // One ledger per subject: the API refuses a second one.
  const ledger = ledgers[0];
  const base = `/api/v1/ledgers/${encodeURIComponent(ledger.id)}`;
  let balance, grants, history;
  try {
    [balance, grants, history] = await Promise.all([
      exactJSON(`${base}/balance`, signal),
      exactJSON(`${base}/grants?includeVoid=true`, signal),
      exactJSON(`${base}/history?limit=100`, signal),
    ]);
  } catch (err) {
    if (isCurrent(v)) handleError(err, section);
    return;
  }
  const balances = Array.isArray(balance.features) ? balance.features : [];
  const withGrants = new Set(balances.map((f) => f.feature));
  // The access check for each feature that can be used: every feature not
  // archived, and archived ones whose grants still burn.
  const checked = features.filter((f) => !f.archivedAt || withGrants.has(f.key));
  const access = await pool(checked, QUERIES, async (f) => {
    try {
      return { feature: f, res: await exactJSON(`${base}/access?${new URLSearchParams({ feature: f.key })}`, signal) };
    } catch (err) {
      return { feature: f, err };
    }
  });
  if (!isCurrent(v)) return;
  const keyOf = new Map(features.map((f) => [f.id, f.key]));
  section.replaceChildren(heading,
    ledgerSummary(ledger, balance),
    el("h3", {}, "Balance per feature"), ...balanceTable(balances, balance),
    el("h3", {}, "Grants"), ...grantsTable(Array.isArray(grants) ? grants : [], balances, balance, keyOf),
    el("h3", {}, "Access"), ...accessTable(access, withGrants),
    el("h3", {}, "History"), historyView(history, base, v, signal));
}

// Credits work in whole minutes (docs/credits.md); the page shows their
// times in UTC, to the minute.
function minute(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? String(iso ?? "") : new Date(t).toISOString().slice(0, 16).replace("T", " ");
}

function minuteTime(iso) {
  return el("time", { datetime: iso }, minute(iso));
}

function minuteCell(iso) {
  return el("td", {}, iso ? minuteTime(iso) : "");
}

// minuteRange writes [from, to) without repeating the date of a range
// within one day.
function minuteRange(from, to) {
  const a = minute(from), b = minute(to);
  return a.slice(0, 10) === b.slice(0, 10) ? `${a}–${b.slice(11)}` : `${a} – ${b}`;
}

// described returns a note and the table it describes, in a scrolling
// container: on a narrow screen the note stays readable while the table
// scrolls.
function described(note, table) {
  const p = el("p", { class: "note", id: uid("note") }, note);
  table.setAttribute("aria-describedby", p.id);
  return [p, el("div", { class: "table-wrap" }, table)];
}

function ledgerSummary(ledger, balance) {
  const s = ledger.resetSchedule;
  const rows = [
    ["Ledger", el("code", {}, ledger.id)],
    ["Created", [minuteTime(ledger.createdAt), " UTC"]],
    ["Resets", s ? [`every ${String(s.interval).toLowerCase()} from `, minuteTime(s.anchor), ` UTC (${s.timeZone || "UTC"})`]
      : "only when reset by hand"],
    ["Current period from", balance.periodStart ? [minuteTime(balance.periodStart), " UTC"] : "no period yet"],
    ["Balances as of", [minuteTime(balance.at), " UTC"]],
  ];
  return el("dl", { class: "summary", "data-testid": "customer-ledger" },
    rows.flatMap(([k, val]) => [el("dt", {}, k), el("dd", {}, val)]));
}

function balanceTable(balances, balance) {
  if (balances.length === 0) {
    return [el("p", { "data-testid": "customer-balance-empty" }, "No grants in the current period.")];
  }
  const table = el("table", { "data-testid": "customer-balance" },
    el("caption", { class: "sr-only" }, "Balance per feature"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Feature"),
      ["Balance", "Usage", "Overage"].map((h) => el("th", { scope: "col", class: "num" }, h)))),
    el("tbody", {}, balances.map((f) => el("tr", { "data-feature": f.feature },
      el("th", { scope: "row" }, el("code", {}, f.feature)),
      el("td", { class: "num", "data-balance": f.balance }, f.balance),
      el("td", { class: "num", "data-usage": f.usage }, f.usage),
      el("td", { class: "num", "data-overage": f.overage }, f.overage)))));
  return described(`As of ${minute(balance.at)} UTC; usage and overage since the period start.`, table);
}

// grantsTable lists the grants of the current period in burn order per
// feature, then the others (earlier periods, voided).
function grantsTable(grants, balances, balance, keyOf) {
  if (grants.length === 0) return [el("p", {}, "No grants.")];
  const byID = new Map(grants.map((g) => [g.id, g]));
  const inPeriod = new Map();
  const rows = [];
  for (const f of balances) {
    for (const gb of f.grants || []) {
      inPeriod.set(gb.id, gb);
      if (byID.has(gb.id)) rows.push(byID.get(gb.id));
    }
  }
  for (const g of grants) if (!inPeriod.has(g.id)) rows.push(g);
  const rolledOver = new Set(grants.filter((g) => g.parentId).map((g) => g.parentId));
  const head = ["Feature and grant", "Burn-down", "Priority", "Effective", "Expires", "State"];
  const table = el("table", { "data-testid": "customer-grants" },
    el("caption", { class: "sr-only" }, "Grants"),
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((g) => {
      const feature = keyOf.get(g.featureId) ?? g.featureId;
      const gb = inPeriod.get(g.id);
      return el("tr", { "data-grant": g.id, "data-feature": feature },
        el("th", { scope: "row" }, el("code", {}, feature), el("div", { class: "id" }, el("code", {}, g.id))),
        el("td", {}, burnDown(g, gb, feature)),
        el("td", { class: "num" }, g.priority ?? ""),
        minuteCell(g.effectiveAt),
        g.expiresAt ? minuteCell(g.expiresAt) : el("td", { class: "muted" }, "never"),
        el("td", { class: "state-cell" }, grantState(g, gb, balance, rolledOver)));
    })));
  return described("In burn order per feature, times in UTC. The bar shows how much of each active grant is used.", table);
}

// burnDown shows how much of an active grant is used: a bar and the exact
// numbers. The grant starts from its start balance if it carried one over
// (and does not recur), else from its amount; used = start − balance.
function burnDown(g, gb, feature) {
  const amountText = `granted ${g.amount}`;
  if (!gb || !gb.active) return el("span", { class: "muted" }, amountText);
  const granted = g.startBalance !== undefined && !g.recurrence ? g.startBalance : g.amount;
  const used = decimalSub(granted, gb.balance);
  if (used === null || !(decimalSign(granted) > 0)) return el("span", {}, `${amountText}, ${gb.balance} left`);
  const label = `${feature} grant ${g.id}: ${used} used of ${granted}, ${gb.balance} left`;
  return el("div", { class: "burn" },
    el("progress", { max: Number(granted), value: Math.max(0, Number(used)), "aria-label": label }),
    el("span", { "data-testid": "burn", "data-used": used, "data-granted": granted, "data-balance": gb.balance },
      `${used} used of ${granted} · ${gb.balance} left`));
}

function grantState(g, gb, balance, rolledOver) {
  if (g.voidedAt) return el("span", {}, "voided ", minuteTime(g.voidedAt));
  const at = Date.parse(balance.at);
  if (gb) {
    if (gb.active) return "active";
    if (Date.parse(g.effectiveAt) > at) return "not yet effective";
    if (g.expiresAt && Date.parse(g.expiresAt) <= at) return "expired";
    return "inactive";
  }
  if (Date.parse(g.effectiveAt) > at) return "not yet effective";
  return rolledOver.has(g.id) ? "earlier period (rolled over)" : "earlier period";
}

// accessTable shows each feature's access check (hard limit) and why.
function accessTable(access, withGrants) {
  if (access.length === 0) return [el("p", {}, "No features yet.")];
  const table = el("table", { "data-testid": "customer-access" },
    el("caption", { class: "sr-only" }, "Access per feature"),
    el("thead", {}, el("tr", {}, ["Feature", "Access", "Why"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, access.map(({ feature, res, err }) => {
      if (err) {
        return el("tr", { "data-feature": feature.key, "data-access": "error" },
          el("th", { scope: "row" }, el("code", {}, feature.key)),
          el("td", {}, "unknown"), el("td", { class: "why error-text" }, err.message || String(err)));
      }
      return el("tr", { "data-feature": feature.key, "data-access": String(res.hasAccess === true) },
        el("th", { scope: "row" }, el("code", {}, feature.key)),
        el("td", {}, el("span", { class: res.hasAccess ? "state ok" : "state no" }, res.hasAccess ? "allowed" : "denied")),
        el("td", { class: "why" }, accessReason(res, withGrants.has(feature.key))));
    })));
  return described("Now, with a hard limit: a feature is allowed while its balance is above 0.", table);
}

// accessReason explains an access answer with its numbers.
function accessReason(a, hasGrants) {
  const overage = decimalSign(a.overage) > 0 ? `; overage ${a.overage}` : "";
  if (a.hasAccess) return `balance ${a.balance} left${overage}`;
  if (!hasGrants) {
    return `no grants in the current period${decimalSign(a.usage) > 0 ? `; usage ${a.usage} is overage` : ""}`;
  }
  return `balance ${a.balance}: used up${overage}`;
}

// historyView lists the ledger's history entries, oldest first, with "More"
// while there are more.
function historyView(first, base, v, signal) {
  const total = Number(first.totalCount ?? 0);
  const entries = [...(Array.isArray(first.entries) ? first.entries : [])];
  if (entries.length === 0) return el("p", {}, "No history yet.");
  const tbody = el("tbody", {});
  const caption = el("caption", {});
  const more = el("button", { type: "button", class: "secondary" }, "More");
  const status = el("div", { "aria-live": "polite" });
  const add = (list) => {
    tbody.append(...list.map((e) => el("tr", { "data-kind": e.kind },
      minuteCell(e.at),
      el("td", {}, el("code", {}, e.kind)),
      el("td", {}, e.feature ? el("code", {}, e.feature) : ""),
      el("td", {}, e.grantId ? el("code", {}, e.grantId) : ""),
      el("td", { class: "num" }, e.amount ?? ""),
      el("td", {}, e.from && e.to ? minuteRange(e.from, e.to) : ""))));
    caption.textContent = `${entries.length} of ${total} entries, oldest first, times in UTC`;
    more.hidden = entries.length >= total;
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const res = await exactJSON(`${base}/history?limit=100&offset=${entries.length}`, signal);
      if (!isCurrent(v)) return;
      const list = Array.isArray(res.entries) ? res.entries : [];
      entries.push(...list);
      add(list);
      if (list.length === 0) more.hidden = true;
    } catch (err) {
      if (isCurrent(v)) handleError(err, status);
    } finally {
      more.disabled = false;
    }
  });
  const table = el("table", { "data-testid": "customer-history" }, caption,
    el("thead", {}, el("tr", {}, ["At", "Kind", "Feature", "Grant"].map((h) => el("th", { scope: "col" }, h)),
      el("th", { scope: "col", class: "num" }, "Amount"), el("th", { scope: "col" }, "Usage from – to"))),
    tbody);
  add(entries);
  return el("div", {}, el("div", { class: "table-wrap" }, table), more, status);
}
