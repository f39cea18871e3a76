// End-to-end test of the dashboard's events and exports pages in headless
// Chromium (Debian's package), against a real `odometer serve` with seeded
// data. The events table must list exactly the events the API lists; the
// look-up must find a stored id and say "not found" for an unknown one; the
// Live box must pick up a new event; a destination without frozen records
// shows its settings and an empty state. Screenshots go to $ARTIFACTS
// (default ./artifacts).
//
// Run through run.sh, which builds the server and sets ODOMETER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, start } from "./server.mjs";

let url, browser, api, stop;

before(async () => {
  ({ url, browser, api, stop } = await start());
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

test("the events and exports pages show what the API answers", async () => {
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

  // Look up by id: a stored one, then an unknown one.
  await page.getByLabel("Event id").fill("ev-2");
  await page.getByRole("button", { name: "Look up" }).click();
  const found = page.locator('[data-testid=lookup-result][data-found="true"]');
  await found.waitFor();
  const text = await found.textContent();
  assert.match(text, /ev-2/);
  assert.match(text, /"tokens": "3\.5"/);
  await page.getByLabel("Event id").fill("no-such-event");
  await page.getByRole("button", { name: "Look up" }).click();
  const missing = page.locator('[data-testid=lookup-result][data-found="false"]');
  await missing.waitFor();
  assert.match(await missing.textContent(), /not found: never accepted, or rejected \(rejected events are not stored/);
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
  await page.screenshot({ path: join(artifacts, "dashboard-exports.png"), fullPage: true });

  // The page works from the keyboard.
  await page.keyboard.press("Tab");
  assert.ok(await page.evaluate(() => document.activeElement && document.activeElement !== document.body));

  assert.deepEqual(failures, [], "no script errors");
  await context.close();
});
