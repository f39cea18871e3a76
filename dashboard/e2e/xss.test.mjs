// What an ingest key sends ends up on the operator's screen: subjects,
// sources, group-by values, and what an admin names meters. The dashboard
// shows them as text, never as markup, under a strict Content-Security-
// Policy (docs/dashboard.md): this test seeds markup everywhere it can go
// and checks, page by page, that none of it became an element or ran.
//
// Run through run.sh, which builds the server and sets ODOMETER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { start } from "./server.mjs";

let url, browser, api, stop;

const img = `<img src=x onerror="window.__xss='img'">`;
const script = `<script>window.__xss='script'</script>`;
const subject = `acme${img}`;

before(async () => {
  ({ url, browser, api, stop } = await start());
  await api("POST", "/api/v1/meters", {
    slug: "tokens", name: `Tokens ${script}`, description: img, eventType: "prompt", aggregation: "SUM",
    valueProperty: "$.tokens", groupBy: { model: "$.model" },
  });
  const now = Date.now();
  await api("POST", "/api/v1/events", [0, 1, 2].map((i) => ({
    specversion: "1.0", id: `x${i}${script}`, source: `src${img}`, type: "prompt", subject: i ? subject : `beta${script}`,
    time: new Date(now - i * 3600 * 1000).toISOString(), data: { tokens: "1.5", model: i % 2 ? img : script },
  })));
  await api("POST", "/api/v1/features", { key: "chat", name: `Chat ${img}`, meterSlug: "tokens" });
  const ledger = JSON.parse(await api("POST", "/api/v1/ledgers", { subject }));
  await api("POST", `/api/v1/ledgers/${ledger.id}/grants`, { feature: "chat", amount: 10, metadata: { note: script } });
});

after(async () => {
  await stop?.();
});

test("markup sent as data stays text on every page", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  for (const [hash, ready] of [
    ["#/meters", "[data-testid=meters-table]"],
    ["#/meters/tokens", "[data-testid=usage-table]"],
    ["#/customers", "main li"],
    [`#/customers/${encodeURIComponent(subject)}`, "main h1"],
    ["#/events", "[data-testid=events-table]"],
  ]) {
    await page.goto(url + "/" + hash);
    await page.waitForSelector(ready, { timeout: 15000 });
    await page.waitForLoadState("networkidle");
    const found = await page.evaluate(() => ({
      ran: window.__xss ?? null,
      injected: document.querySelectorAll("main img[src=x], main script, [onerror]").length,
      text: document.querySelector("main").textContent,
    }));
    assert.equal(found.ran, null, `${hash}: seeded markup ran`);
    assert.equal(found.injected, 0, `${hash}: seeded markup became elements`);
    assert.ok(found.text.includes("<img src=x") || found.text.includes("<script>"), `${hash} does not show the seeded text as text`);
  }
  assert.deepEqual(errors, []);
  await page.close();
});
