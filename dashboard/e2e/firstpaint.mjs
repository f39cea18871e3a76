// firstpaint.mjs measures how fast each dashboard page shows, in headless
// Chromium (Debian's package), against a server that is already running
// with its data (for instance 1M events loaded by bench/loadgen; see
// docs/dashboard.md). It is not part of `make test-browser`.
//
//   node firstpaint.mjs [URL]     URL default http://127.0.0.1:8888
//
// Environment: ODOMETER_API_KEY (when the server has keys), CHROMIUM
// (default /usr/bin/chromium), RUNS (loads per page, default 5), GOAL_MS
// (default 1000).
//
// For each page it loads the dashboard in a fresh browser context (no
// cache) and reports, in milliseconds from the start of navigation, the
// median and the worst of:
//   - FCP: First Contentful Paint (the page's frame and heading);
//   - content: the first animation frame after the page's main table or
//     chart is in the document (its data is fetched and rendered).
// It exits with status 1 when a page's worst content time is over GOAL_MS.
import { chromium } from "playwright-core";

const base = (process.argv[2] || "http://127.0.0.1:8888").replace(/\/$/, "");
const key = process.env.ODOMETER_API_KEY || "";
const runs = Number(process.env.RUNS || 5);
const goal = Number(process.env.GOAL_MS || 1000);

async function get(path) {
  const res = await fetch(base + path, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

// The pages, with what shows that each is rendered. The meter and the
// customer are the first the API lists.
const meters = await get("/api/v1/meters");
const subjects = await get("/api/v1/event-subjects?limit=1").then((r) => r.subjects || [], (err) => {
  console.error(`no customer page: ${err.message}`);
  return [];
});
const pages = [
  ["meters", "#/meters", "[data-testid=meters-table]"],
  ["meter", meters[0] && `#/meters/${encodeURIComponent(meters[0].slug)}`, "[data-testid=usage-chart], section[aria-label=Results] > p"],
  ["customers", "#/customers", "[data-testid=customer-results] li, [data-testid=customer-count]:not(:empty)"],
  ["customer", subjects[0] && `#/customers/${encodeURIComponent(subjects[0])}`, "[data-testid=customer-usage]"],
  ["events", "#/events", "[data-testid=events-table], [data-testid=events-empty]"],
  ["exports", "#/exports", "[data-testid=exports-table], main h1 + p:not(.muted)"],
].filter(([, hash]) => hash);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

// measure loads hash once and returns { fcp, content } in milliseconds.
async function measure(hash, selector) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript(([k, sel]) => {
    if (k) sessionStorage.setItem("odometer.apiKey", k);
    window.__content = null;
    const check = () => {
      if (window.__seen || !document.querySelector(sel)) return;
      window.__seen = true;
      requestAnimationFrame(() => {
        window.__content = performance.now();
      });
    };
    new MutationObserver(check).observe(document, { childList: true, subtree: true, characterData: true });
  }, [key, selector]);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(base + "/" + hash);
  await page.waitForFunction(() => window.__content !== null &&
    performance.getEntriesByName("first-contentful-paint").length > 0, null, { timeout: 60000 });
  const m = await page.evaluate(() => ({
    fcp: performance.getEntriesByName("first-contentful-paint")[0].startTime,
    content: window.__content,
    problem: document.querySelector("main .error")?.textContent || null,
  }));
  await context.close();
  if (errors.length > 0 || m.problem) throw new Error(`${hash}: ${errors.join("; ") || m.problem}`);
  return m;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const ms = (x) => String(Math.round(x)).padStart(7);

let over = false;
console.log(`${base}, ${runs} loads per page, goal ${goal} ms`);
console.log("page        FCP median   FCP max   content median   content max");
for (const [name, hash, selector] of pages) {
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await measure(hash, selector));
  const fcp = results.map((r) => r.fcp);
  const content = results.map((r) => r.content);
  const worst = Math.max(...content);
  if (worst > goal) over = true;
  console.log(`${name.padEnd(10)}  ${ms(median(fcp))}   ${ms(Math.max(...fcp))}   ${ms(median(content))}        ${ms(worst)}${worst > goal ? "  over the goal" : ""}`);
}
await browser.close();
process.exit(over ? 1 : 0);
