// Shared set-up of the dashboard's browser tests: a real `odometer serve` on
// a free port with a fresh data directory, headless Chromium (Debian's
// package) and a small API client. Each test file starts its own.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

// artifacts is where screenshots go: $ARTIFACTS, default ./artifacts.
export const artifacts = process.env.ARTIFACTS || new URL("./artifacts", import.meta.url).pathname;

// start starts the server and the browser. It resolves to { url, browser,
// api, stop }; api(method, path, body) sends JSON and resolves to the
// response text, rejecting on a status other than 2xx.
export async function start() {
  const bin = process.env.ODOMETER_BIN;
  const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
  assert.ok(bin, "ODOMETER_BIN must name a built odometer binary (run.sh sets it)");
  mkdirSync(artifacts, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "odometer-dash-"));
  const server = spawn(bin, ["serve", "--data", dataDir, "--addr", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "pipe"] });
  let browser;
  const stop = async () => {
    await browser?.close();
    server.kill("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const url = await new Promise((resolve, reject) => {
      let log = "";
      const timer = setTimeout(() => reject(new Error("server did not start:\n" + log)), 30000);
      server.stderr.on("data", (b) => {
        log += b;
        const m = /msg=listening addr=(\S+)/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve("http://" + m[1]);
        }
      });
      server.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
    });
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
    });
    const api = async (method, path, body) => {
      const res = await fetch(url + path, {
        method, headers: { "Content-Type": "application/json" }, body: body && JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.text();
    };
    return { url, browser, api, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
