// End-to-end test of the dashboard's meter pages in headless Chromium
// (Debian's package), against a real `odometer serve` with seeded data.
// It changes the window size and the group-by and checks that the chart's
// points and the table's numbers are exactly what the API answers for the
// query the page sent. Screenshots go to $ARTIFACTS (default ./artifacts).
//
// Run through run.sh, which builds the server and sets ODOMETER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, start } from "./server.mjs";

let url, browser, api, stop;

before(async () => {
  ({ url, browser, api, stop } = await start());
  await seed();
});

after(async () => {
  await stop?.();
});

// seed stores a meter and events over the last five days, with values that
// floating point would not add up exactly.
async function seed() {
  await api("POST", "/api/v1/meters", {
    slug: "tokens", name: "LLM tokens", eventType: "prompt", aggregation: "SUM",
    valueProperty: "$.tokens", groupBy: { model: "$.model" },
  });
  const now = Date.now();
  const events = [];
  for (let i = 0; i < 120; i++) {
    events.push({
      specversion: "1.0", id: `e${i}`, source: "e2e", type: "prompt", subject: ["acme", "beta"][i % 2],
      time: new Date(now - i * 55 * 60 * 1000).toISOString(),
      data: { tokens: `0.${(i % 9) + 1}`, model: ["gpt-4", "small", "large"][i % 3] },
    });
  }
  await api("POST", "/api/v1/events", events);
}

// exact returns the API's answer to the query URL q as [windowStart, key,
// value text] rows, keeping each value's exact text.
async function exact(q) {
  const res = await fetch(q);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  const values = [...text.matchAll(/"value":(-?[0-9.eE+-]+)/g)].map((m) => m[1]);
  const rows = JSON.parse(text).data;
  assert.equal(values.length, rows.length);
  return rows.map((r, i) => ({ start: r.windowStart, value: values[i], group: r.groupBy || {}, subject: r.subject }));
}

// shown returns what the page shows: the chart's points and the table's
// value column, once the answer to the query it sends is drawn.
async function queryAndRead(page, change) {
  const [req] = await Promise.all([
    page.waitForRequest((r) => r.url().includes("/api/v1/meters/tokens/query")),
    change(),
  ]);
  // req.response() also returns an answer that arrived before this line ran
  // (waiting for a "response" event from here could miss it).
  await req.response();
  const table = page.getByTestId("usage-table");
  await table.waitFor();
  await page.waitForFunction(() => document.querySelector("section[aria-busy]")?.getAttribute("aria-busy") === "false");
  const points = await page.$$eval("[data-testid=usage-chart] [data-value]",
    (els) => els.map((e) => ({ start: e.getAttribute("data-window-start"), value: e.getAttribute("data-value") })));
  const cells = await table.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => tr.lastElementChild.textContent.trim()));
  return { query: req.url(), points, cells };
}

function sortedValues(list) {
  return list.map((p) => p.value).sort();
}

test("the meter page shows exactly what the API answers, across window sizes and group-bys", async () => {
  const context = await browser.newContext({ timezoneId: "UTC", viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const failures = [];
  page.on("pageerror", (e) => failures.push(e.message));

  await page.goto(url + "/#/meters");
  await page.getByRole("link", { name: "tokens" }).waitFor();
  await page.screenshot({ path: join(artifacts, "dashboard-meters.png"), fullPage: true });

  // The page queries on load (DAY windows, no group-by).
  let shown = await queryAndRead(page, () => page.getByRole("link", { name: "tokens" }).click());
  let want = await exact(shown.query);
  assert.ok(want.length >= 5, `want several DAY windows, got ${want.length}`);
  assert.deepEqual(sortedValues(shown.points), sortedValues(want));
  assert.deepEqual([...shown.cells].sort(), sortedValues(want));
  const sum = want.reduce((a, r) => a + Math.round(Number(r.value) * 10), 0);
  assert.equal(sum, [...Array(120).keys()].reduce((a, i) => a + (i % 9) + 1, 0), "the DAY windows hold every event");
  // The page says how the server reads the meter, as the API does.
  const state = (await (await fetch(url + "/api/v1/meters/tokens")).json()).usageRollup.state;
  const said = await page.getByTestId("usage-rollup").textContent();
  assert.match(said, { ready: /read from rollups/, backfilling: /being built/, none: /stored events/ }[state],
    `rollup state ${state}, page says ${JSON.stringify(said)}`);

  // HOUR windows.
  shown = await queryAndRead(page, () => page.getByLabel("Window size").selectOption("HOUR"));
  assert.match(shown.query, /windowSize=HOUR/);
  want = await exact(shown.query);
  assert.ok(want.length > 24, `want many HOUR windows, got ${want.length}`);
  assert.deepEqual(sortedValues(shown.points), sortedValues(want));
  assert.deepEqual([...shown.cells].sort(), sortedValues(want));

  // DAY windows grouped by model: one series per model.
  await page.getByLabel("Window size").selectOption("DAY");
  shown = await queryAndRead(page, () => page.getByLabel("Group by").selectOption("model"));
  assert.match(shown.query, /groupBy=model/);
  want = await exact(shown.query);
  assert.deepEqual(new Set(want.map((r) => r.group.model)), new Set(["gpt-4", "small", "large"]));
  assert.deepEqual(sortedValues(shown.points), sortedValues(want));
  assert.deepEqual([...shown.cells].sort(), sortedValues(want));
  await page.screenshot({ path: join(artifacts, "dashboard-meter.png"), fullPage: true });

  // The page works from the keyboard: the pickers are reachable with Tab.
  await page.keyboard.press("Tab");
  assert.ok(await page.evaluate(() => document.activeElement && document.activeElement !== document.body));

  assert.deepEqual(failures, [], "no script errors");
  await context.close();
});
