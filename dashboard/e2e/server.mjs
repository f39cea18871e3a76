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

// start starts the server, with args added to `odometer serve`, and the
// browser, with browserArgs added to Chromium's. It resolves to { url, browser, api, useKey, dataDir, stop };
// api(method, path, body) sends JSON and resolves to the response text,
// rejecting on a status other than 2xx; after useKey(token) it sends that
// API key.
export async function start({ args = [], browserArgs = [] } = {}) {
  const bin = process.env.ODOMETER_BIN;
  const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
  assert.ok(bin, "ODOMETER_BIN must name a built odometer binary (run.sh sets it)");
  mkdirSync(artifacts, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "odometer-dash-"));
  const server = spawn(bin, ["serve", "--data", dataDir, "--addr", "127.0.0.1:0", ...args], { stdio: ["ignore", "ignore", "pipe"] });
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
        "--disable-component-update", "--disable-sync", ...browserArgs],
    });
    let key = null;
    const useKey = (token) => {
      key = token;
    };
    const api = async (method, path, body) => {
      const headers = { "Content-Type": "application/json" };
      if (key) headers.Authorization = `Bearer ${key}`;
      const res = await fetch(url + path, { method, headers, body: body && JSON.stringify(body) });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.text();
    };
    return { url, browser, api, useKey, dataDir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// exactJSON parses JSON text with every number turned into its exact
// decimal text (a string), so that tests compare the API's numbers with the
// page's as text. It is independent of the page's own parser on purpose.
export function exactJSON(text) {
  return JSON.parse(text.replace(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g,
    (m) => (m[0] === '"' ? m : `"${m}"`)));
}

// decimalSub returns a − b for plain decimal texts (no exponent), exactly.
export function decimalSub(a, b) {
  const scale = Math.max(...[a, b].map((s) => (s.split(".")[1] || "").length));
  const big = (s) => {
    assert.match(s, /^-?\d+(\.\d+)?$/, `plain decimal text: ${s}`);
    const [w, f = ""] = s.split(".");
    return BigInt(w + f.padEnd(scale, "0"));
  };
  const d = big(a) - big(b);
  const neg = d < 0n;
  const digits = (neg ? -d : d).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const frac = digits.slice(digits.length - scale).replace(/0+$/, "");
  return (neg ? "-" : "") + whole + (frac ? "." + frac : "");
}
