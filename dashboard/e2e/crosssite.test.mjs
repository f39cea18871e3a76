// Web pages an operator has open in the browser cannot drive a server that
// runs without API keys on loopback (docs/security.md, "Web pages"): a page
// of another site sends the requests a browser lets it send without asking
// the server first (no-cors fetches with a Blob or text/plain body, a form
// post, a POST without a body) and none of them changes anything; a page
// whose own host name resolves to 127.0.0.1 (DNS rebinding, played here by
// Chromium's --host-resolver-rules) reads nothing.
//
// Run through run.sh, which builds the server and sets ODOMETER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { start } from "./server.mjs";

let url, browser, api, stop, site;

before(async () => {
  ({ url, browser, api, stop } = await start({ browserArgs: ["--host-resolver-rules=MAP rebind.test 127.0.0.1"] }));
  await api("POST", "/api/v1/meters", { slug: "tokens", eventType: "prompt", aggregation: "COUNT" });
  await api("POST", "/api/v1/features", { key: "chat", name: "Chat", meterSlug: "tokens" });
  // The other site: another host name and port than the server's.
  site = createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end("<!doctype html><title>another site</title><p>nothing to see</p>");
  });
  await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
});

after(async () => {
  site?.close();
  await stop?.();
});

const state = async () => ({
  meters: JSON.parse(await api("GET", "/api/v1/meters")).map((m) => m.slug).sort(),
  keys: JSON.parse(await api("GET", "/api/v1/keys")).length,
  archived: JSON.parse(await api("GET", "/api/v1/features/chat")).archivedAt ?? null,
});

test("a page of another site changes nothing", async () => {
  const before = await state();
  assert.deepEqual(before, { meters: ["tokens"], keys: 0, archived: null });
  const page = await browser.newPage();
  await page.goto(`http://localhost:${site.address().port}/`);
  const sent = await page.evaluate(async (target) => {
    const meter = JSON.stringify({ slug: "planted", eventType: "x", aggregation: "COUNT" });
    const key = JSON.stringify({ name: "mine now", scopes: ["admin"] });
    const tries = [
      () => fetch(target + "/api/v1/meters", { method: "POST", mode: "no-cors", body: new Blob([meter]) }),
      () => fetch(target + "/api/v1/meters", { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: meter }),
      () => fetch(target + "/api/v1/keys", { method: "POST", mode: "no-cors", body: new Blob([key]) }),
      () => fetch(target + "/api/v1/features/chat/archive", { method: "POST", mode: "no-cors" }),
      () => fetch(target + "/api/v1/meters/tokens", { method: "DELETE", mode: "no-cors" }),
    ];
    let n = 0;
    for (const t of tries) {
      try {
        await t();
        n++;
      } catch {
        // a network error is as good as a refusal
        n++;
      }
    }
    return n;
  }, url);
  assert.equal(sent, 5);
  // A form post, with a JSON-looking text/plain body: the classic forgery.
  await page.evaluate((target) => {
    const f = document.createElement("form");
    f.method = "POST";
    f.enctype = "text/plain";
    f.action = target + "/api/v1/meters";
    const i = document.createElement("input");
    i.name = '{"slug":"formed","eventType":"x","aggregation":"COUNT","x":"';
    i.value = '"}';
    f.append(i);
    document.body.append(f);
    f.submit();
  }, url);
  await page.waitForURL((u) => u.toString().startsWith(url), { timeout: 10000 }).catch(() => {});
  await page.close();
  assert.deepEqual(await state(), before, "a request from another site changed something");
  // The server is still open, so no key was made behind the operator's back.
  await api("GET", "/api/v1/meters");
});

test("a page rebinding its own name to 127.0.0.1 reads nothing", async () => {
  const port = new URL(url).port;
  const page = await browser.newPage();
  await page.goto(`http://rebind.test:${port}/api/v1/meters`);
  const got = await page.evaluate(async () => {
    const res = await fetch("/api/v1/meters");
    return { status: res.status, body: await res.text() };
  });
  assert.equal(got.status, 403, got.body);
  assert.match(got.body, /--allowed-hosts/);
  assert.doesNotMatch(got.body, /tokens/);
  // The same server by loopback names: the dashboard works.
  for (const host of ["127.0.0.1", "localhost"]) {
    await page.goto(`http://${host}:${port}/#/meters`);
    await page.waitForSelector("[data-testid=meters-table]");
    assert.match(await page.textContent("[data-testid=meters-table]"), /tokens/);
  }
  await page.close();
});
