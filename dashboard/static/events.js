// The events page (#/events): recent events with filters and a live tail,
// and the look-up of one id: accepted (stored), a duplicate or rejected (as
// this node remembers recent outcomes), or not found.
import {
  alertBox, api, browserZone, el, field, formatInstant, handleError, isCurrent, latest, rangeParams,
  show, timeCell, uid,
} from "./core.js";

const LIVE_INTERVAL_MS = 2000;

// NOT_FOUND is what the look-up says about an id that is neither stored nor
// among this node's recent outcomes.
const NOT_FOUND = "not found: no stored event has this id, and this node has not rejected it or received it " +
  "as a duplicate recently. Only recent rejections and duplicates on this node are remembered: an event " +
  "rejected earlier, or by another node, was never stored (its ingestion answer said why).";

export function eventsPage(v, signal) {
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

  let timer = null;
  const start = latest(signal);
  const stop = () => {
    clearTimeout(timer);
    timer = null;
  };
  signal.addEventListener("abort", stop, { once: true });

  // schedule polls again in 2 s while the box is checked and the page shown.
  const schedule = () => {
    stop();
    if (live.checked && isCurrent(v) && !signal.aborted) timer = setTimeout(run, LIVE_INTERVAL_MS);
  };
  const run = async () => {
    const r = start();
    stop();
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
      const list = await (await api(`/api/v1/events?${q}`, { signal: r.signal })).json();
      if (!r.current() || !isCurrent(v)) return;
      results.replaceChildren(eventsTable(Array.isArray(list) ? list : [], tz));
    } catch (err) {
      if (r.current() && isCurrent(v)) handleError(err, results);
    } finally {
      if (r.current()) {
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
    const q = new URLSearchParams({ id: want });
    if (source) q.set("source", source);
    lookupResult.replaceChildren(el("p", { class: "muted" }, "Looking up…"));
    try {
      const res = await (await api(`/api/v1/events/outcomes?${q}`, { signal })).json();
      if (!isCurrent(v)) return;
      lookupResult.replaceChildren(outcomesView(want, res, tz));
    } catch (err) {
      if (isCurrent(v)) handleError(err, lookupResult);
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

// outcomesView says what became of the events with one id: each stored one
// (accepted), then each recent duplicate or rejection this node remembers.
// data-outcome is the first of accepted, duplicate, rejected, not-found
// that applies.
function outcomesView(id, res, tz) {
  const stored = Array.isArray(res.stored) ? res.stored : [];
  const recent = Array.isArray(res.recent) ? res.recent : [];
  let outcome = "not-found";
  if (stored.length > 0) outcome = "accepted";
  else if (recent.some((r) => r.outcome === "duplicate")) outcome = "duplicate";
  else if (recent.length > 0) outcome = "rejected";
  const box = el("div", { "data-testid": "lookup-result", "data-outcome": outcome, "data-found": String(stored.length > 0) });
  if (stored.length === 0 && recent.length === 0) {
    box.append(el("p", {}, el("strong", {}, id), ": ", NOT_FOUND));
    return box;
  }
  box.append(...stored.map((e) => eventDetails(e, tz)));
  if (recent.length > 0) {
    box.append(el("h3", {}, "Recent outcomes on this node"),
      el("ul", { class: "outcomes" }, recent.map((r) => recentOutcome(r, tz))));
  }
  return box;
}

// recentOutcome describes one remembered duplicate or rejection.
function recentOutcome(r, tz) {
  const when = r.receivedAt ? el("time", { datetime: r.receivedAt, title: r.receivedAt }, formatInstant(r.receivedAt, tz)) : "";
  const from = `, id ${r.id ?? ""}, source ${r.source ?? ""}${r.truncated ? " (cut to 256 bytes)" : ""}`;
  if (r.outcome === "duplicate") {
    return el("li", { "data-outcome": "duplicate" }, el("strong", {}, "Duplicate"), ": received at ", when, ` (${tz})${from}. ` +
      "An event with this source and id was already stored, so it was not counted again.");
  }
  const reasons = Array.isArray(r.reasons) ? r.reasons : [];
  return el("li", { "data-outcome": r.outcome ?? "rejected" },
    el("strong", {}, r.outcome === "rejected" ? "Rejected" : String(r.outcome ?? "")), ": received at ", when,
    ` (${tz})${from}. Nothing was stored${reasons.length > 0 ? ":" : "."}`,
    reasons.length > 0 ? el("ul", { "data-testid": "lookup-reasons" }, reasons.map((x) =>
      el("li", {}, x.field ? [el("code", {}, x.field), ": "] : null, x.reason ?? ""))) : null);
}

// eventDetails shows one stored event: its fields and its data.
function eventDetails(item, tz) {
  const e = item.event;
  const rows = [["ID", e.id], ["Source", e.source], ["Type", e.type], ["Subject", e.subject],
    ["Time", e.time], ["Ingested at", item.ingestedAt]];
  return el("div", { class: "details", "data-outcome": "accepted" },
    el("p", {}, el("strong", {}, "Accepted"), ": stored, ingested at ",
      el("time", { datetime: item.ingestedAt, title: item.ingestedAt }, formatInstant(item.ingestedAt, tz)),
      ` (${tz}); event time ${formatInstant(e.time, tz)}. Below in UTC.`),
    el("dl", {}, rows.flatMap(([k, val]) => [el("dt", {}, k), el("dd", {}, el("code", {}, val ?? ""))])),
    el("h3", {}, "Data"),
    el("pre", {}, e.data === undefined ? "(none)" : JSON.stringify(e.data, null, 2)));
}
