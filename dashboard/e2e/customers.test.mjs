// End-to-end test of the dashboard's customers pages in headless Chromium
// (Debian's package), against a real `odometer serve` with seeded data:
// events of a few subjects across three meters, features, and a ledger with
// grants for one subject whose usage burns part of a grant. The search must
// find exactly the expected subjects, and page through more than 50; the
// customer page's totals, balances, burn-down numbers and access states
// must be exactly the API's (compared as decimal text). Screenshots go to
// $ARTIFACTS (default ./artifacts).
//
// Run through run.sh, which builds the server and sets ODOMETER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, decimalSub, exactJSON, start } from "./server.mjs";

let url, browser, api, stop;
let ledgerID;

const minute = 60 * 1000;

before(async () => {
  ({ url, browser, api, stop } = await start());
  await seed();
});

after(async () => {
  await stop?.();
});

const getJSON = async (path) => exactJSON(await api("GET", path));

// seed stores three meters, events of five subjects in the last hour, three
// features, and a ledger for customer-1 whose grants (effective an hour ago)
// the events burn: gpt4's first grant in part, calls' grant entirely (so
// calls runs into overage and is denied). A second ledger belongs to a
// subject without events.
async function seed() {
  await api("POST", "/api/v1/meters", {
    slug: "tokens", name: "LLM tokens", eventType: "prompt", aggregation: "SUM",
    valueProperty: "$.tokens", groupBy: { model: "$.model" },
  });
  await api("POST", "/api/v1/meters", { slug: "requests", eventType: "request", aggregation: "COUNT" });
  await api("POST", "/api/v1/meters", { slug: "latency", eventType: "request", aggregation: "MAX", valueProperty: "$.ms" });

  const start = Math.floor(Date.now() / minute) * minute - 60 * minute;
  const at = (i) => new Date(start + (i + 1) * minute).toISOString();
  const events = [];
  const tokens = ["12.3", "0.1", "0.2", "7.05", "21.9"]; // gpt-4 sum 41.55; floats would say 41.550000000000004
  tokens.forEach((t, i) => events.push({
    specversion: "1.0", id: `c1-t${i}`, source: "e2e", type: "prompt", subject: "customer-1", time: at(i),
    data: { tokens: t, model: "gpt-4" },
  }));
  events.push({ specversion: "1.0", id: "c1-small", source: "e2e", type: "prompt", subject: "customer-1", time: at(6),
    data: { tokens: "1000", model: "small" } });
  for (let i = 0; i < 5; i++) {
    events.push({ specversion: "1.0", id: `c1-r${i}`, source: "e2e", type: "request", subject: "customer-1", time: at(10 + i),
      data: { ms: String(100 + i * 7.5) } });
  }
  for (const [subject, n] of [["customer-2", 3], ["customer-10", 2], ["cust-x", 1], ["other", 4]]) {
    for (let i = 0; i < n; i++) {
      events.push({ specversion: "1.0", id: `${subject}-${i}`, source: "e2e", type: i % 2 ? "request" : "prompt",
        subject, time: at(20 + i), data: { tokens: `0.${i + 1}`, model: "gpt-4", ms: String(i + 0.5) } });
    }
  }
  await api("POST", "/api/v1/events", events);

  await api("POST", "/api/v1/features", { key: "gpt4", name: "GPT-4 tokens", meter: "tokens", meterGroupByFilters: { model: "gpt-4" } });
  await api("POST", "/api/v1/features", { key: "calls", meter: "requests" });
  await api("POST", "/api/v1/features", { key: "spare", meter: "tokens" });

  ledgerID = JSON.parse(await api("POST", "/api/v1/ledgers", { subject: "customer-1" })).id;
  await api("POST", "/api/v1/ledgers", { subject: "acme-customer-1" });
  const grant = (body) => api("POST", `/api/v1/ledgers/${ledgerID}/grants`,
    { effectiveAt: new Date(start).toISOString(), ...body }).then((t) => JSON.parse(t).id);
  await grant({ feature: "gpt4", amount: "100", priority: 1 });
  await grant({ feature: "gpt4", amount: "50.5", priority: 2, expiration: { count: 1, duration: "MONTH" } });
  const voided = await grant({ feature: "gpt4", amount: "10", priority: 3 });
  await api("POST", `/api/v1/ledgers/${ledgerID}/grants/${voided}/void`, { at: new Date(start + 30 * minute).toISOString() });
  await grant({ feature: "calls", amount: "3" });
}

// results returns the subjects the search lists, once the answers to the
// search for text are drawn.
async function search(page, text) {
  await page.getByLabel("Search subjects").fill(text);
  const want = text ? `#/customers?q=${encodeURIComponent(text)}` : "#/customers";
  await page.waitForFunction((h) => location.hash === h, want);
  await page.waitForFunction(() =>
    document.querySelector("section[aria-label=Subjects]")?.getAttribute("aria-busy") === "false" &&
    document.querySelector("[data-testid=customer-count]")?.textContent !== "");
  return page.getByTestId("customer-results").locator("li")
    .evaluateAll((lis) => lis.map((li) => li.getAttribute("data-subject")));
}

// apiSubjects is what the two APIs the search reads answer for text.
async function apiSubjects(text) {
  const events = JSON.parse(await api("GET", `/api/v1/event-subjects?${new URLSearchParams({ prefix: text })}`)).subjects;
  const ledgers = JSON.parse(await api("GET", `/api/v1/ledgers?${new URLSearchParams({ subjectLike: text })}`))
    .map((l) => l.subject);
  return [...new Set([...events, ...ledgers])].sort();
}

test("the customers pages show exactly what the API answers", async () => {
  const context = await browser.newContext({ timezoneId: "UTC", viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const failures = [];
  page.on("pageerror", (e) => failures.push(e.message));
  const queries = [];
  page.on("request", (r) => {
    if (r.url().includes("/query?")) queries.push(r.url());
  });

  // Search: event subjects by prefix, ledger subjects containing the text.
  await page.goto(url + "/#/meters");
  await page.getByRole("link", { name: "Customers" }).click();
  let shown = await search(page, "");
  assert.deepEqual(shown, ["acme-customer-1", "cust-x", "customer-1", "customer-10", "customer-2", "other"]);
  shown = await search(page, "customer-1");
  assert.deepEqual(shown, ["acme-customer-1", "customer-1", "customer-10"]);
  assert.deepEqual(shown, await apiSubjects("customer-1"));
  shown = await search(page, "cust");
  assert.deepEqual(shown, ["acme-customer-1", "cust-x", "customer-1", "customer-10", "customer-2"]);
  assert.deepEqual(shown, await apiSubjects("cust"));
  shown = await search(page, "nobody");
  assert.deepEqual(shown, []);
  assert.match(await page.getByTestId("customer-count").textContent(), /No subjects matching/);

  // Paging: 55 subjects with a common prefix come as 50, then 5 more.
  const bulk = Array.from({ length: 55 }, (_, i) => `bulk-${String(i).padStart(2, "0")}`);
  await api("POST", "/api/v1/events", bulk.map((subject) => ({
    specversion: "1.0", id: subject, source: "e2e", type: "signup", subject, time: new Date(Date.now() - 5 * minute).toISOString(),
  })));
  shown = await search(page, "bulk-");
  const firstPage = JSON.parse(await api("GET", "/api/v1/event-subjects?prefix=bulk-&limit=50"));
  assert.deepEqual(shown, firstPage.subjects);
  assert.equal(firstPage.next, "bulk-49");
  await page.getByRole("button", { name: "More" }).click();
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=customer-results] li").length > 50);
  await page.waitForFunction(() => document.querySelector("section[aria-label=Subjects]").getAttribute("aria-busy") === "false");
  assert.deepEqual(await page.getByTestId("customer-results").locator("li")
    .evaluateAll((lis) => lis.map((li) => li.getAttribute("data-subject"))), bulk);
  assert.ok(await page.getByRole("button", { name: "More" }).isHidden(), "no More after the last page");

  shown = await search(page, "customer-1");
  await page.screenshot({ path: join(artifacts, "dashboard-customers.png"), fullPage: true });

  // The customer page: one row per meter, each the API's answer to the
  // query the page sent (this month, UTC).
  await page.getByTestId("customer-results").getByRole("link", { name: "customer-1", exact: true }).click();
  assert.equal(new URL(page.url()).hash, "#/customers/customer-1");
  await page.getByTestId("customer-usage").waitFor();
  await page.getByTestId("customer-grants").waitFor();
  await checkTotals(page, queries, "customer-1");
  const month = new Date();
  const from = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth(), 1)).toISOString().slice(0, 10);
  assert.ok(queries.every((q) => new URL(q).searchParams.get("from") === `${from}T00:00:00Z`), "the default period is this month, UTC");
  assert.equal(await totalOf(page, "tokens"), exactSum(["12.3", "0.1", "0.2", "7.05", "21.9", "1000"]));
  assert.equal(await totalOf(page, "requests"), "5");

  // Balance per feature: exactly the balance endpoint's numbers.
  const balance = await getJSON(`/api/v1/ledgers/${ledgerID}/balance`);
  const rows = await page.getByTestId("customer-balance").locator("tbody tr").evaluateAll((trs) => trs.map((tr) => ({
    feature: tr.getAttribute("data-feature"),
    balance: tr.querySelector("[data-balance]").textContent,
    usage: tr.querySelector("[data-usage]").textContent,
    overage: tr.querySelector("[data-overage]").textContent,
  })));
  assert.deepEqual(rows, balance.features.map((f) => ({ feature: f.feature, balance: f.balance, usage: f.usage, overage: f.overage })));
  const gpt4 = balance.features.find((f) => f.feature === "gpt4");
  assert.equal(gpt4.usage, "41.55");
  assert.equal(gpt4.balance, "108.95"); // 100 − 41.55 + 50.5

  // Grants: the burn-down of each active grant is amount − balance, with
  // the balance endpoint's balance; the voided grant says so.
  const grants = await getJSON(`/api/v1/ledgers/${ledgerID}/grants?includeVoid=true`);
  const burns = await page.getByTestId("customer-grants").locator("tbody tr").evaluateAll((trs) => trs.map((tr) => {
    const b = tr.querySelector("[data-testid=burn]");
    const bar = tr.querySelector("progress");
    return {
      id: tr.getAttribute("data-grant"), state: tr.lastElementChild.textContent,
      burn: b && { used: b.dataset.used, granted: b.dataset.granted, balance: b.dataset.balance, text: b.textContent },
      bar: bar && { max: bar.getAttribute("max"), value: bar.getAttribute("value"), label: bar.getAttribute("aria-label") },
    };
  }));
  assert.equal(burns.length, grants.length);
  let active = 0;
  for (const g of grants) {
    const row = burns.find((r) => r.id === g.id);
    assert.ok(row, `grant ${g.id} is listed`);
    const gb = balance.features.flatMap((f) => f.grants).find((x) => x.id === g.id);
    if (g.voidedAt) {
      assert.match(row.state, /^voided/);
      assert.equal(row.burn, null);
      continue;
    }
    assert.ok(gb && gb.active, `grant ${g.id} is active`);
    active++;
    const used = decimalSub(g.amount, gb.balance);
    assert.deepEqual(row.burn, { used, granted: g.amount, balance: gb.balance, text: `${used} used of ${g.amount} · ${gb.balance} left` });
    assert.equal(row.state, "active");
    assert.equal(Number(row.bar.max), Number(g.amount));
    assert.equal(Number(row.bar.value), Math.max(0, Number(used)));
    assert.match(row.bar.label, new RegExp(`${used.replace(".", "\\.")} used of`));
  }
  assert.equal(active, 3);
  const first = burns.find((r) => r.burn && r.burn.granted === "100");
  assert.equal(first.burn.used, "41.55");
  assert.equal(first.burn.balance, "58.45");

  // Access: each feature's state is the access endpoint's.
  const access = await page.getByTestId("customer-access").locator("tbody tr").evaluateAll((trs) => trs.map((tr) => ({
    feature: tr.getAttribute("data-feature"), access: tr.getAttribute("data-access"), why: tr.lastElementChild.textContent,
  })));
  assert.deepEqual(access.map((a) => a.feature).sort(), ["calls", "gpt4", "spare"]);
  for (const a of access) {
    const want = await getJSON(`/api/v1/ledgers/${ledgerID}/access?feature=${a.feature}`);
    assert.equal(a.access, String(want.hasAccess), a.feature);
    if (want.hasAccess) assert.ok(a.why.includes(`balance ${want.balance} left`), a.why);
  }
  assert.deepEqual(Object.fromEntries(access.map((a) => [a.feature, a.access])), { gpt4: "true", calls: "false", spare: "false" });
  assert.match(access.find((a) => a.feature === "calls").why, /used up; overage 2$/);
  assert.match(access.find((a) => a.feature === "spare").why, /^no grants in the current period/);

  // History: the entries the history endpoint lists, in its order.
  const history = await getJSON(`/api/v1/ledgers/${ledgerID}/history?limit=100`);
  const kinds = await page.getByTestId("customer-history").locator("tbody tr")
    .evaluateAll((trs) => trs.map((tr) => [tr.getAttribute("data-kind"), tr.children[4].textContent]));
  assert.deepEqual(kinds, history.entries.map((e) => [e.kind, e.amount ?? ""]));
  assert.ok(kinds.some(([k]) => k === "VOID") && kinds.some(([k]) => k === "OVERAGE"));
  await page.screenshot({ path: join(artifacts, "dashboard-customer.png"), fullPage: true });

  // Another period: last month has none of these events.
  queries.length = 0;
  const lastMonth = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() - 1, 1)).toISOString().slice(0, 10);
  await page.getByLabel("Period", { exact: true }).selectOption("last-month");
  await page.waitForFunction((d) => document.querySelector("[data-testid=customer-usage] caption")?.textContent.includes(`, ${d} to`) &&
    document.querySelector("[aria-busy=true]") === null, lastMonth);
  await checkTotals(page, queries, "customer-1");

  // The meter link opens the meter page filtered to the subject.
  await page.getByTestId("customer-usage").getByRole("link", { name: "tokens" }).click();
  await page.getByTestId("usage-table").waitFor();
  assert.equal(await page.getByLabel("Subjects").inputValue(), "customer-1");

  // A subject without a ledger: totals and the empty state.
  queries.length = 0;
  await page.goto(url + "/#/customers/customer-2");
  await page.getByTestId("customer-usage").waitFor();
  await page.getByTestId("customer-no-ledger").waitFor();
  await checkTotals(page, queries, "customer-2");

  // On a phone: nothing wider than the screen.
  const phone = await browser.newContext({ timezoneId: "UTC", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const small = await phone.newPage();
  small.on("pageerror", (e) => failures.push(e.message));
  await small.goto(url + "/#/customers/customer-1");
  await small.getByTestId("customer-history").waitFor();
  await small.getByTestId("customer-usage").waitFor();
  assert.ok(await small.evaluate(() => document.documentElement.scrollWidth <= innerWidth), "no horizontal page scroll");
  await small.screenshot({ path: join(artifacts, "dashboard-customer-phone.png"), fullPage: true });
  await phone.close();

  assert.deepEqual(failures, [], "no script errors");
  await context.close();
});

// checkTotals checks that each meter's total on the customer page is the
// API's answer to the query the page sent for it.
async function checkTotals(page, queries, subject) {
  const shown = await page.getByTestId("customer-usage").locator("tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [tr.getAttribute("data-meter"), tr.querySelector("[data-value]")?.getAttribute("data-value")]));
  const meters = JSON.parse(await api("GET", "/api/v1/meters"));
  assert.deepEqual(shown.map(([m]) => m), meters.map((m) => m.slug));
  for (const [slug, value] of shown) {
    const q = queries.findLast((u) => new URL(u).pathname === `/api/v1/meters/${slug}/query`);
    assert.ok(q, `the page queried ${slug}`);
    assert.equal(new URL(q).searchParams.get("subject"), subject);
    const res = exactJSON(await (await fetch(q)).text());
    const meter = meters.find((m) => m.slug === slug);
    let want = res.data.length === 1 ? res.data[0].value : undefined;
    if (res.data.length === 0) want = meter.aggregation === "SUM" || meter.aggregation === "COUNT" ? "0" : "";
    assert.equal(value, want, `${slug} for ${subject}`);
  }
}

async function totalOf(page, slug) {
  return page.getByTestId("customer-usage").locator(`tr[data-meter="${slug}"] [data-value]`).getAttribute("data-value");
}

// exactSum adds decimal texts exactly.
function exactSum(list) {
  return list.reduce((a, b) => decimalSub(a, decimalSub("0", b)), "0");
}
