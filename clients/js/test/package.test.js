// The npm package as users get it: `npm pack` (which writes the .d.ts files from the
// checked JSDoc), installed from the tarball into a scratch project, type-checked from
// the user's side, and its example run there against a real `tidings serve`.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync }
  from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { TidingsNode } from "./server.js";

const run = promisify(execFile);
const PACKAGE = resolve(fileURLToPath(new URL("..", import.meta.url)));
const TSC = join(PACKAGE, "node_modules", ".bin", "tsc");
const LONG = { timeout: 300000 };

/** Runs a command; resolves with its outcome, whatever the exit code. */
async function outcome(command, args, options) {
  try {
    const { stdout, stderr } = await run(command, args, { maxBuffer: 1 << 24, ...options });
    return { code: 0, stdout, stderr };
  } catch (err) {
    return { code: err.code ?? 1, stdout: err.stdout ?? "", stderr: err.stderr ?? String(err) };
  }
}

const USES_THE_TYPES = `
import { Client, HttpApi, ReconnectPolicy, type ChatMessage } from "tidings-client";
import { EditingSession } from "tidings-client/editing";
const api = new HttpApi("http://127.0.0.1:1");
const client = new Client(api.wsUrl, "token", { reconnect: new ReconnectPolicy({ maxAttempts: 2 }) });
client.on("message", (m: ChatMessage) => m.content.toUpperCase());
client.on("publication", (p) => p.offset.toFixed());
export const started: Promise<EditingSession> = EditingSession.start(api, 1, 2);
`;

const MISUSES_THE_TYPES = `
import { Client } from "tidings-client";
const client = new Client("ws://127.0.0.1:1/ws", "token");
client.on("message", (m) => m.nonsense);
client.sendChat("not a user id", "hi");
`;

describe("the npm package", () => {
  const node = new TidingsNode();
  const scratch = mkdtempSync(join(tmpdir(), "tidings-npm-"));
  let tarball = "";

  before(async () => {
    const packed = await outcome("npm", ["pack", "--silent", "--pack-destination", scratch],
                                 { cwd: PACKAGE, ...LONG });
    assert.equal(packed.code, 0, packed.stderr);
    tarball = join(scratch, packed.stdout.trim().split("\n").at(-1));
    writeFileSync(join(scratch, "package.json"),
                  JSON.stringify({ name: "scratch", private: true, type: "module" }));
    const installed = await outcome("npm", ["install", "--no-audit", "--no-fund", tarball],
                                    { cwd: scratch, ...LONG });
    assert.equal(installed.code, 0, installed.stderr);
    await node.start();
  }, LONG);

  after(async () => {
    await node.destroy();
    rmSync(scratch, { recursive: true, force: true });
  });

  test("holds the ES modules, their types and the example, and no tests", () => {
    const root = join(scratch, "node_modules", "tidings-client");
    for (const name of ["tidings", "tidings-protocol", "tidings-connection", "tidings-http",
                        "tidings-editing"]) {
      assert.ok(existsSync(join(root, "src", `${name}.js`)), name);
      assert.ok(existsSync(join(root, "types", `${name}.d.ts`)), name);
    }
    assert.ok(existsSync(join(root, "examples", "quickstart.mjs")));
    assert.ok(existsSync(join(root, "README.md")));
    assert.deepEqual(readdirSync(root).sort(),
                     ["README.md", "examples", "package.json", "src", "types"]);
  });

  test("its types check a user's code, and catch a misuse", LONG, async () => {
    const options = ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution",
                     "nodenext", "--target", "es2022", "--lib", "es2022,dom"];
    writeFileSync(join(scratch, "good.ts"), USES_THE_TYPES);
    const good = await outcome(TSC, [...options, "good.ts"], { cwd: scratch, ...LONG });
    assert.equal(good.code, 0, good.stdout + good.stderr);
    writeFileSync(join(scratch, "bad.ts"), MISUSES_THE_TYPES);
    const bad = await outcome(TSC, [...options, "bad.ts"], { cwd: scratch, ...LONG });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout, /bad\.ts\(4,.*error TS2339: Property 'nonsense' does not exist/);
    assert.match(bad.stdout, /bad\.ts\(5,.*error TS2345/);
  });

  test("its example runs against a real node", LONG, async () => {
    copyFileSync(join(scratch, "node_modules", "tidings-client", "examples", "quickstart.mjs"),
                 join(scratch, "quickstart.mjs"));
    const example = await outcome(process.execPath,
                                  ["--experimental-websocket", "quickstart.mjs", node.httpUrl],
                                  { cwd: scratch, timeout: 60000 });
    assert.equal(example.code, 0, example.stdout + example.stderr + node.log);
    assert.match(example.stdout, /bob got #\d+ \(sent as #\d+\): hello from node/);
    assert.match(example.stdout, /alice got notice #1/);
    assert.match(example.stdout, /editing: holds the lock true/);
    assert.match(example.stdout, /quickstart: ok\n$/);
  });
});
