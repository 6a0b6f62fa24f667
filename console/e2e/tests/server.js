// A live `vitrina serve` for the console tests: a fresh data directory with the demo shop, on
// a port the system picks; the address is read from the server's first line.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const BINARY = process.env.VITRINA_BIN ?? join(ROOT, "target", "debug", "vitrina");

export async function startServer() {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run \`cargo build --bin vitrina\` first`);
  const work = mkdtempSync(join(tmpdir(), "vitrina-console-"));
  const log = join(work, "server.log");
  const child = spawn(BINARY, ["serve", "--addr", "127.0.0.1:0", "--data-dir", join(work, "data")], {
    stdio: ["ignore", "pipe", openSync(log, "w")],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  const base = await new Promise((ok, fail) => {
    let found;
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = /^vitrina listening on (\S+)/.exec(line);
      if (m && found === undefined) ok((found = m[1]));
    });
    child.once("error", fail);
    child.once("exit", (code, signal) => found === undefined && fail(new Error(`the server exited (${code ?? signal}): ${readFileSync(log, "utf8")}`)));
  });
  return {
    base,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** JSON from the live server (the tests' own view, independent of the console's code). */
export async function call(base, path, { method = "GET", body, key } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (key) headers.authorization = `Bearer ${key}`;
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
}
