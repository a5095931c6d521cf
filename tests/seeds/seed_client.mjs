// A Socket.IO client as seed 000's Vue app would write it: the real npm
// socket.io-client v4 (the one tests/desks/node pins), driven line by line:
//   node seed_client.mjs URL '{"auth": {"token": "..."}, "transports": ["websocket"]}'
// stdin, one JSON command a line: {"id": 1, "event": "workstation_occupy", "args": [...],
// "ack": true} emits args exactly as given (with an ack callback when "ack").
// stdout, one JSON line per thing seen: {"event": "connect"}, {"id": 1, "ack": ...},
// and {"event": NAME, "payload": ...} for every event the server sends.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import readline from "node:readline";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "desks", "node", "package.json"));
const { io } = require("socket.io-client");

const [url, options] = process.argv.slice(2);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const socket = io(url, { reconnection: false, ...JSON.parse(options || "{}") });

socket.on("connect", () => print({ event: "connect", transport: socket.io.engine.transport.name }));
socket.on("connect_error", (err) => print({ event: "connect_error", message: err.message,
                                             data: err.data ?? null }));
socket.on("disconnect", (reason) => print({ event: "disconnect", reason }));
socket.onAny((event, payload) => print({ event, payload }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.ack) {
    socket.emit(command.event, ...command.args, (ack) => print({ id: command.id, ack }));
  } else {
    socket.emit(command.event, ...command.args);
  }
}).on("close", () => { socket.close(); process.exit(0); });
process.on("SIGTERM", () => { socket.close(); process.exit(0); });
