// The Node socket.io peer (what seed 000 uses): every client joins room "bench";
// a "pub" event is emitted to the room as "msg", except to its sender.
// WebSocket transport only, as the load generator speaks raw Engine.IO v4.
// Usage: node sio_server.js PORT
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 9102);
const io = new Server({ transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.on('connection', (socket) => {
  socket.join('bench');
  socket.on('pub', (data) => socket.to('bench').emit('msg', data));
});
const server = http.createServer();
io.attach(server);
server.listen(port, '127.0.0.1', () => console.log(`socket.io peer listening on ${port}`));
