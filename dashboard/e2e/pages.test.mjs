// End-to-end test of the dashboard's events and exports pages in headless
// Chromium (Debian's package), against a real `odometer serve` with seeded
// data. The events table must list exactly the events the API lists; the
// look-up must say accepted (with the ingestion time), duplicate, rejected
// (with the API's reasons) or not found as GET /api/v1/events/outcomes
// does; the Live box must pick up a new event; a destination without
// frozen records shows its settings and an empty state, and one with
// records frozen by the exporter shows the API's status rows and records.
// Screenshots go to $ARTIFACTS (default ./artifacts).
//
// Run through run.sh, which builds the server and sets ODOMETER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, exactJSON, start } from "./server.mjs";

let url, browser, api, stop;

before(async () => {
  ({ url, browser, api, stop } = await start({ args: ["--export-interval", "1s"] }));
  await api("POST", "/api/v1/meters", {
    slug: "tokens", name: "LLM tokens", eventType: "prompt", aggregation: "SUM", valueProperty: "$.tokens",
  });
  const now = Date.now();
  await api("POST", "/api/v1/events", [0, 1, 2, 3, 4].map((i) => ({
    specversion: "1.0", id: `ev-${i}`, source: "e2e", type: "prompt", subject: ["acme", "beta"][i % 2],
    time: new Date(now - i * 10 * 60 * 1000).toISOString(), data: { tokens: `${i + 1}.5` },
  })));
});

after(async () => {
  await stop?.();
});

// tableIDs returns the data-event-id of each row of the events table.
function tableIDs(page) {
  return page.getByTestId("events-table").locator("tbody tr")
    .evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-event-id")));
}

async function apiIDs() {
  return JSON.parse(await api("GET", "/api/v1/events")).map((e) => e.event.id);
}

test("the events and exports pages show what the API answers", async (t) => {
  const context = await browser.newContext({ timezoneId: "UTC", viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const failures = [];
  page.on("pageerror", (e) => failures.push(e.message));

  // Events: the table lists exactly the ids the API lists, in its order.
  await page.goto(url + "/#/meters");
  await page.getByRole("link", { name: "Events" }).click();
  await page.getByTestId("events-table").waitFor();
  const want = await apiIDs();
  assert.deepEqual(want, ["ev-0", "ev-1", "ev-2", "ev-3", "ev-4"]);
  assert.deepEqual(await tableIDs(page), want);

  // A subject filter narrows the table to what the API answers for it.
  await page.getByLabel("Subject").fill("acme");
  await page.getByRole("button", { name: "Apply" }).click();
  const filtered = JSON.parse(await api("GET", "/api/v1/events?subject=acme")).map((e) => e.event.id);
  assert.deepEqual(filtered, ["ev-0", "ev-2", "ev-4"]);
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=events-table] tbody tr").length === n,
    filtered.length);
  assert.deepEqual(await tableIDs(page), filtered);
  await page.getByLabel("Subject").fill("");

  // Live: a new event appears without a click while the box is checked.
  await page.getByLabel("Live").check();
  await api("POST", "/api/v1/events", {
    specversion: "1.0", id: "ev-live", source: "e2e", type: "prompt", subject: "acme", data: { tokens: "1" },
  });
  await page.locator('[data-testid=events-table] tr[data-event-id="ev-live"]').waitFor({ timeout: 10000 });
  await page.getByLabel("Live").uncheck();
  assert.deepEqual(await tableIDs(page), await apiIDs());

  // Look up by id: accepted (stored), a duplicate, a rejection with its
  // reasons, and an unknown id.
  const lookup = async (id, outcome) => {
    await page.getByLabel("Event id").fill(id);
    await page.getByRole("button", { name: "Look up" }).click();
    const result = page.locator(`[data-testid=lookup-result][data-outcome="${outcome}"]`);
    await result.waitFor();
    return result;
  };
  let result = await lookup("ev-2", "accepted");
  const stored = JSON.parse(await api("GET", "/api/v1/events/outcomes?id=ev-2")).stored[0];
  assert.equal(await result.locator("[data-outcome=accepted] time").first().getAttribute("datetime"), stored.ingestedAt);
  const text = await result.textContent();
  assert.match(text, /Accepted: stored, ingested at/);
  assert.match(text, /"tokens": "3\.5"/);
  assert.equal(await result.locator("li[data-outcome]").count(), 0);

  const again = JSON.parse(await api("POST", "/api/v1/events", {
    specversion: "1.0", id: "ev-2", source: "e2e", type: "prompt", subject: "beta", data: { tokens: "9" },
  }));
  assert.equal(again.duplicate, 1);
  result = await lookup("ev-2", "accepted");
  assert.equal(await result.locator("li[data-outcome=duplicate]").count(), 1);
  assert.match(await result.locator("li[data-outcome=duplicate]").textContent(), /^Duplicate: received at .*source e2e/);

  await assert.rejects(api("POST", "/api/v1/events", { specversion: "1.0", id: "bad-1", source: "e2e", subject: "acme" }), /400/);
  result = await lookup("bad-1", "rejected");
  const outcomes = JSON.parse(await api("GET", "/api/v1/events/outcomes?id=bad-1"));
  assert.equal(outcomes.stored.length, 0);
  const reasons = outcomes.recent.flatMap((r) => r.reasons.map((x) => `${x.field}: ${x.reason}`));
  assert.ok(reasons.length > 0);
  assert.deepEqual(await result.getByTestId("lookup-reasons").locator("li").allTextContents(), reasons);

  result = await lookup("no-such-event", "not-found");
  assert.match(await result.textContent(),
    /not found: no stored event has this id.*Only recent rejections and duplicates on this node are remembered/);
  await lookup("bad-1", "rejected");
  await page.screenshot({ path: join(artifacts, "dashboard-events.png"), fullPage: true });

  // Exports: a new destination has no frozen records yet.
  await api("PUT", "/api/v1/exports/aws", {
    productCode: "prod-x", dryRun: true, dimensions: [{ dimension: "tokens", meterSlug: "tokens" }],
  });
  await page.getByRole("link", { name: "Exports" }).click();
  await page.getByTestId("exports-table").getByRole("link", { name: "aws" }).click();
  await page.getByTestId("export-status-empty").waitFor();
  assert.equal(new URL(page.url()).hash, "#/exports/aws");
  assert.match(await page.getByRole("heading", { level: 1 }).textContent(), /^aws$/);
  assert.match(await page.getByTestId("export-destination").textContent(), /prod-x.*dry run.*tokens ← meter tokens/s);
  assert.equal(await page.getByTestId("export-status").count(), 0);

  // Exports with frozen records, made by the real exporter (every second,
  // see before()).
  await exportRows(page);
  await page.screenshot({ path: join(artifacts, "dashboard-exports.png"), fullPage: true });

  // The page works from the keyboard.
  await page.keyboard.press("Tab");
  assert.ok(await page.evaluate(() => document.activeElement && document.activeElement !== document.body));

  assert.deepEqual(failures, [], "no script errors");
  await context.close();
});

// exportRows makes the exporter freeze records of past hours for a dry-run
// destination and checks that its page shows the API's status rows and,
// for a chosen hour, its records. The customer mapping's `from` starts its
// export three hours back, so the exporter freezes those hours at once.
async function exportRows(page) {
  const hour = 3600 * 1000;
  const now = Date.now();
  await api("POST", "/api/v1/events", [["x-1", 170, "2.5"], ["x-2", 150, "0.75"], ["x-3", 100, "4.25"]].map(([id, ago, tokens]) => ({
    specversion: "1.0", id, source: "e2e", type: "prompt", subject: "acme",
    time: new Date(now - ago * 60 * 1000).toISOString(), data: { tokens },
  })));
  const dest = (delay) => api("PUT", "/api/v1/exports/aws-rows", {
    productCode: "prod-y", dryRun: true, delay, startHour: new Date(Math.floor(now / hour) * hour - 3 * hour).toISOString(),
    dimensions: [{ dimension: "tokens", meterSlug: "tokens" }],
  });
  await dest("4h"); // nothing closes yet
  await api("PUT", "/api/v1/exports/aws-rows/customers/acme", {
    customerId: "cust-1", from: new Date(Math.floor(now / hour) * hour - 3 * hour).toISOString(),
  });
  await dest("1s");
  let status;
  for (let i = 0; i < 100; i++) {
    status = exactJSON(await api("GET", "/api/v1/exports/aws-rows/status"));
    if (status.frozenThrough && status.hours.length > 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(status.hours.length >= 2, `frozen hours: ${JSON.stringify(status)}`);

  await page.getByRole("link", { name: "Exports", exact: true }).click();
  await page.getByTestId("exports-table").getByRole("link", { name: "aws-rows" }).click();
  const table = page.getByTestId("export-status");
  await table.waitFor();
  const columns = ["pending", "inFlight", "accepted", "duplicate", "notSubscribed", "rejected", "expired", "empty", "quantityAccepted"];
  const rows = await table.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => [tr.dataset.hour, tr.dataset.dimension,
    ...[...tr.querySelectorAll("td.num")].map((td) => td.textContent)]));
  assert.deepEqual(rows, status.hours.map((h) => [h.hour, h.dimension, ...columns.map((c) => h[c])]));

  // The records of the last hour with records.
  const last = status.hours.at(-1);
  const to = new Date(Date.parse(last.hour) + hour).toISOString();
  const want = exactJSON(await api("GET", `/api/v1/exports/aws-rows/records?from=${last.hour}&to=${to}`)).records;
  await table.locator(`tr[data-hour="${last.hour}"] button`).click();
  const records = page.getByTestId("export-records");
  await records.waitFor();
  const shown = await records.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
  assert.deepEqual(shown, want.map((r) => [r.subject, r.customerId, r.quantity, r.status, r.reason || r.meteringRecordId || ""]));
  assert.ok(want.length > 0 && want.every((r) => r.status === "pending"), "a dry run's records stay pending");
}
