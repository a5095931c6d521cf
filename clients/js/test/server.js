// A real Tidings node for the tests: `tidings serve` on a free port of 127.0.0.1 with a
// throwaway SQLite file, stopped by its PID. TIDINGS_BIN names the command (default: the
// repository's .venv/bin/tidings, which `make test` creates).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = fileURLToPath(new URL(".", import.meta.url));
export const TIDINGS_BIN = process.env.TIDINGS_BIN ?? resolve(HERE, "../../../.venv/bin/tidings");
const START_TIMEOUT = 20000;
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((path) => existsSync(path));
let names = 0;

export class TidingsNode {
  constructor(extraArgs = []) {
    this.dir = mkdtempSync(join(tmpdir(), "tidings-js-"));
    this.extraArgs = extraArgs;
    this.port = 0;
    this.proc = null;
    this.log = "";
  }

  get httpUrl() { return `http://127.0.0.1:${this.port}`; }
  get wsUrl() { return `ws://127.0.0.1:${this.port}/ws`; }

  /** Start (or restart, on the same port and database) and wait until it listens. */
  async start() {
    const args = ["serve", "--host", "127.0.0.1", "--port", String(this.port),
                  "--database-url", `sqlite:///${join(this.dir, "tidings.db")}`,
                  "--log-level", "info", ...this.extraArgs];
    // setpriv --pdeathsig: if this test process dies without stopping the node (killed,
    // timed out), the kernel stops the node too. setpriv execs: the PID stays the node's.
    const [command, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "KILL", "--", TIDINGS_BIN, ...args]]
                                    : [TIDINGS_BIN, args];
    const proc = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    const exited = new Promise((ok) => proc.once("exit", (code, signal) => ok({ code, signal })));
    this.exited = exited;
    const listening = new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`tidings did not start:\n${this.log}`)),
                               START_TIMEOUT);
      const read = (chunk) => {
        this.log += chunk;
        const found = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(this.log);
        if (found) {
          clearTimeout(timer);
          ok(Number(found[1]));
        }
      };
      proc.stdout.setEncoding("utf8").on("data", read);
      proc.stderr.setEncoding("utf8").on("data", read);
      exited.then(({ code }) => {
        clearTimeout(timer);
        fail(new Error(`tidings exited with ${code}:\n${this.log}`));
      });
    });
    this.port = await listening;
    return this;
  }

  /** Stop the process (SIGTERM, then SIGKILL after 5 s); keep the database. */
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGTERM");
    const killer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(killer);
  }

  /** Stop and delete the database. */
  async destroy() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async post(path, body, token) {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(this.httpUrl + path,
                                 { method: "POST", headers, body: JSON.stringify(body) });
    return { status: response.status, body: await response.json() };
  }

  async get(path, token) {
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    const response = await fetch(this.httpUrl + path, { headers });
    return { status: response.status, body: await response.json() };
  }

  /** Register a user and log in: { userId, token, username }. */
  async newUser(prefix = "js") {
    const username = `${prefix}${process.pid}_${++names}`;
    const creds = { username, password: "correct horse" };
    const registered = await this.post("/api/v1/auth/register", creds);
    if (registered.status !== 201) throw new Error(JSON.stringify(registered));
    const login = await this.post("/api/v1/auth/login", creds);
    if (login.status !== 200) throw new Error(JSON.stringify(login));
    return { userId: login.body.user_id, token: login.body.token, username };
  }
}

/** Resolve with the next `name` event's detail that satisfies `match`, or fail after `ms`. */
export function nextEvent(client, name, match = () => true, ms = 5000) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      off();
      fail(new Error(`no "${name}" event within ${ms} ms`));
    }, ms);
    const off = client.on(name, (detail) => {
      if (!match(detail)) return;
      clearTimeout(timer);
      off();
      ok(detail);
    });
  });
}

/** Collect every `name` event's detail into an array. */
export function collect(client, name) {
  const seen = [];
  client.on(name, (detail) => seen.push(detail));
  return seen;
}

/** Resolve once `predicate()` is true (checked every 20 ms), or fail after `ms`. */
export async function waitFor(predicate, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}
