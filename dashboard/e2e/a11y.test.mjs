// Accessibility and small screens, in headless Chromium (Debian's package)
// against a real `odometer serve` that needs an API key:
//   - with the keyboard only (Tab, Shift+Tab, typing, Enter), a user signs
//     in, reaches the customers page through the navigation, searches and
//     opens a customer; the skip link moves focus to the content;
//   - at a phone's width (390×844) no page scrolls sideways (wide tables
//     scroll inside their own container), and on every page each control
//     has a label and each table a caption or label and header scopes.
//
// Run through run.sh, which builds the server and sets ODOMETER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { start } from "./server.mjs";

let url, browser, api, useKey, stop;
let token;

before(async () => {
  ({ url, browser, api, useKey, stop } = await start());
  await api("POST", "/api/v1/meters", {
    slug: "tokens", name: "LLM tokens", eventType: "prompt", aggregation: "SUM",
    valueProperty: "$.tokens", groupBy: { model: "$.model" },
  });
  const now = Date.now();
  await api("POST", "/api/v1/events", Array.from({ length: 40 }, (_, i) => ({
    specversion: "1.0", id: `a11y-${i}`, source: "e2e", type: "prompt", subject: ["acme", "beta", "a-very-long-subject-name-of-a-customer-that-does-not-fit-on-a-phone"][i % 3],
    time: new Date(now - i * 37 * 60 * 1000).toISOString(),
    data: { tokens: `${i}.25`, model: ["gpt-4", "a-model-with-a-long-name"][i % 2], note: "x".repeat(120) },
  })));
  await api("POST", "/api/v1/features", { key: "gpt4", meter: "tokens", meterGroupByFilters: { model: "gpt-4" } });
  const ledger = JSON.parse(await api("POST", "/api/v1/ledgers", { subject: "acme" }));
  await api("POST", `/api/v1/ledgers/${ledger.id}/grants`, {
    feature: "gpt4", amount: "1000", effectiveAt: new Date(now - 30 * 3600 * 1000).toISOString(),
  });
  await api("PUT", "/api/v1/exports/aws", {
    productCode: "prod-x", dryRun: true, dimensions: [{ dimension: "tokens", meterSlug: "tokens" }],
  });
  // From now on the server needs a key.
  token = JSON.parse(await api("POST", "/api/v1/keys", { name: "e2e", scopes: ["admin"] })).token;
  useKey(token);
});

after(async () => {
  await stop?.();
});

// focused describes the focused element.
function focused(page) {
  return page.evaluate(() => {
    const a = document.activeElement;
    return {
      tag: a.tagName.toLowerCase(), id: a.id, name: a.getAttribute("name"), text: a.textContent.trim(),
      label: a.labels && a.labels[0] ? a.labels[0].textContent : null, subject: a.closest("li")?.dataset.subject,
      outline: getComputedStyle(a).outlineStyle,
    };
  });
}

// tabTo presses Tab (Shift+Tab when back) until want(focused) holds, at
// most max times.
async function tabTo(page, want, { back = false, max = 40 } = {}) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(back ? "Shift+Tab" : "Tab");
    const f = await focused(page);
    if (want(f)) return f;
  }
  assert.fail(`focus never reached the element after ${max} presses; at ${JSON.stringify(await focused(page))}`);
}

test("signing in and reaching a customer with the keyboard only", async () => {
  const context = await browser.newContext({ timezoneId: "UTC", viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const failures = [];
  page.on("pageerror", (e) => failures.push(e.message));

  // The server needs a key: the sign-in form has focus.
  await page.goto(url + "/#/meters");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.equal((await focused(page)).label, "API key");
  await page.keyboard.type(token);
  await page.keyboard.press("Enter");
  await page.getByTestId("meters-table").waitFor();
  assert.equal((await focused(page)).text, "Meters", "focus is on the new page's heading");

  // Back through the navigation to Customers; the focus is visible.
  const link = await tabTo(page, (f) => f.tag === "a" && f.text === "Customers", { back: true });
  assert.notEqual(link.outline, "none", "the focused link has an outline");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Customers" }).waitFor();
  assert.equal(new URL(page.url()).hash, "#/customers");
  assert.equal(await page.locator('nav a[aria-current="page"]').textContent(), "Customers");

  // The labelled search box is next; type, then Tab to a result.
  assert.equal((await tabTo(page, (f) => f.tag === "input", { max: 1 })).label, "Search subjects");
  await page.keyboard.type("ac");
  await page.locator('[data-testid=customer-results] li[data-subject="acme"]').waitFor();
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=customer-results] li").length === 1);
  await tabTo(page, (f) => f.tag === "a" && f.subject === "acme", { max: 5 });
  await page.keyboard.press("Enter");
  await page.getByTestId("customer-usage").waitFor();
  await page.getByTestId("customer-grants").waitFor();
  assert.equal(new URL(page.url()).hash, "#/customers/acme");
  assert.equal((await focused(page)).text, "acme");

  // The period picker and the meter links are reachable.
  assert.equal((await tabTo(page, (f) => f.tag === "select", { max: 5 })).label, "Period");
  await tabTo(page, (f) => f.tag === "a" && f.text === "tokens", { max: 10 });
  await page.keyboard.press("Enter");
  await page.getByTestId("usage-table").waitFor();
  assert.equal(await page.getByLabel("Subjects").inputValue(), "acme");

  // After a fresh load, the first Tab reaches the skip link, which moves
  // focus to the content.
  await page.goto(url + "/#/customers/acme");
  await page.reload();
  await page.getByTestId("customer-usage").waitFor();
  const skip = await tabTo(page, () => true, { max: 1 });
  assert.equal(skip.id, "skip");
  assert.ok(await page.locator("#skip").isVisible());
  const box = await page.locator("#skip").boundingBox();
  assert.ok(box.y >= 0, "the focused skip link is on screen");
  await page.keyboard.press("Enter");
  assert.equal((await focused(page)).id, "main");
  assert.equal(new URL(page.url()).hash, "#/customers/acme", "the skip link keeps the route");
  assert.equal((await tabTo(page, () => true, { max: 1 })).text, "← Customers");

  assert.deepEqual(failures, [], "no script errors");
  await context.close();
});

// audit returns what is wrong on the page: a control without a label, a
// table without a caption or label, a column header without a scope, a page
// wider than the screen.
function audit(page) {
  return page.evaluate(() => {
    const problems = [];
    for (const c of document.querySelectorAll("input, select, textarea")) {
      if (c.type === "hidden") continue;
      if (c.labels.length === 0 && !c.getAttribute("aria-label")) problems.push(`unlabelled ${c.tagName} ${c.name}`);
    }
    for (const t of document.querySelectorAll("table")) {
      if (!t.querySelector("caption") && !t.getAttribute("aria-label")) problems.push(`table without caption: ${t.dataset.testid}`);
      for (const th of t.querySelectorAll("th")) if (!th.getAttribute("scope")) problems.push(`th without scope in ${t.dataset.testid}`);
    }
    for (const p of document.querySelectorAll("progress")) if (!p.getAttribute("aria-label")) problems.push("unlabelled progress");
    if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
    const root = document.documentElement;
    if (root.scrollWidth > innerWidth) problems.push(`page is ${root.scrollWidth}px wide on a ${innerWidth}px screen`);
    const nav = document.querySelector("nav");
    if (nav.scrollWidth > nav.clientWidth) problems.push("the navigation does not fit");
    return problems;
  });
}

test("at a phone's width no page scrolls sideways, and every control is labelled", async () => {
  const phone = { timezoneId: "UTC", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
  const failures = [];

  // Signed out: the sign-in form.
  let context = await browser.newContext(phone);
  let page = await context.newPage();
  page.on("pageerror", (e) => failures.push(e.message));
  await page.goto(url + "/#/customers");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.deepEqual(await audit(page), [], "sign-in");
  await context.close();

  context = await browser.newContext(phone);
  await context.addInitScript((t) => sessionStorage.setItem("odometer.apiKey", t), token);
  page = await context.newPage();
  page.on("pageerror", (e) => failures.push(e.message));
  const pages = [
    ["#/meters", "[data-testid=meters-table]"],
    ["#/meters/tokens", "[data-testid=usage-table]"],
    ["#/customers", "[data-testid=customer-results] li"],
    ["#/customers/acme", "[data-testid=customer-history]"],
    ["#/customers/a-very-long-subject-name-of-a-customer-that-does-not-fit-on-a-phone", "[data-testid=customer-no-ledger]"],
    ["#/events", "[data-testid=events-table]"],
    ["#/exports", "[data-testid=exports-table]"],
    ["#/exports/aws", "[data-testid=export-status-empty]"],
    ["#/no-such-page", "h1"],
  ];
  for (const [hash, ready] of pages) {
    await page.goto(url + "/" + hash);
    await page.locator(ready).first().waitFor();
    await page.waitForFunction(() => document.querySelector("[aria-busy=true]") === null);
    assert.deepEqual(await audit(page), [], hash);
  }
  // The events page with a look-up answer shown.
  await page.goto(url + "/#/events");
  await page.getByTestId("events-table").waitFor();
  await page.getByLabel("Event id").fill("a11y-3");
  await page.getByRole("button", { name: "Look up" }).click();
  await page.getByTestId("lookup-result").waitFor();
  assert.deepEqual(await audit(page), [], "#/events with a look-up");

  assert.deepEqual(failures, [], "no script errors");
  await context.close();
});
