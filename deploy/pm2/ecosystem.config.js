// PM2 runs Tidings nodes: `npm ci && npx pm2 start ecosystem.config.js` in this folder.
// Each instance is a whole node (`tidings serve`, a Python program: interpreter "none")
// on its own port: TIDINGS_PORT, TIDINGS_PORT + 1, ... (increment_var). Several nodes
// need a shared bus and store: set TIDINGS_BUS_URL and TIDINGS_DATABASE_URL in the
// environment PM2 starts from (or below), and put deploy/nginx/tidings.conf in front.
// docs/deployment.md, "PM2".
const env = process.env;
const instances = Number(env.TIDINGS_INSTANCES || 3);
const shutdown = Number(env.TIDINGS_SHUTDOWN_TIMEOUT || 30);

module.exports = {
  apps: [
    {
      name: "tidings",
      script: env.TIDINGS_BIN || "tidings", // the venv's bin/tidings if not on PATH
      args: "serve",
      interpreter: "none",
      exec_mode: "fork", // PM2's cluster mode is for Node programs only
      instances,
      increment_var: "TIDINGS_PORT",
      env: {
        TIDINGS_HOST: env.TIDINGS_HOST || "127.0.0.1",
        TIDINGS_PORT: Number(env.TIDINGS_PORT || 8441),
        TIDINGS_SHUTDOWN_TIMEOUT: shutdown,
        PYTHONUNBUFFERED: "1",
      },
      // PM2 stops with SIGINT, then SIGKILL after kill_timeout: Tidings drains on
      // SIGINT as on SIGTERM, within TIDINGS_SHUTDOWN_TIMEOUT.
      kill_timeout: (shutdown + 5) * 1000,
      autorestart: true,
      min_uptime: 5000, // an instance that dies sooner counts as unstable...
      max_restarts: 10, // ...and after this many such restarts PM2 gives up on it
      restart_delay: 1000,
      merge_logs: true,
      time: true,
    },
  ],
};
