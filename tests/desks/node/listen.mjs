// A desk-map client as the seed's Vue app would be: socket.io-client v4, token in
// the handshake's auth, then `join` for rooms. Prints one JSON line per thing seen:
//   node listen.mjs URL TOKEN '{"floor": 1}' [TRANSPORTS]
// TRANSPORTS, e.g. "polling", limits Engine.IO's transports (default: polling, then
// the upgrade to websocket).
// and runs until stdin closes or it is signalled.
import { io } from "socket.io-client";

const [url, token, rooms, transports] = process.argv.slice(2);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const options = { auth: { token }, reconnection: false };
if (transports) options.transports = transports.split(",");
const socket = io(url, options);

// Engine.IO moved from long-polling to WebSocket (through a proxy: the upgrade passed).
socket.io.on("open", () =>
  socket.io.engine.on("upgrade", (t) => print({ event: "upgrade", transport: t.name })));
socket.on("connect", () => {
  print({ event: "connect", transport: socket.io.engine.transport.name });
  socket.emit("join", JSON.parse(rooms || "{}"), (ack) => print({ event: "joined", ack }));
});
socket.on("connect_error", (err) => {
  print({ event: "connect_error", message: err.message, data: err.data ?? null });
  process.exit(2);
});
socket.on("disconnect", (reason) => print({ event: "disconnect", reason }));
socket.onAny((event, payload) => print({ event, payload }));

const stop = () => { socket.close(); process.exit(0); };
process.stdin.on("end", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
