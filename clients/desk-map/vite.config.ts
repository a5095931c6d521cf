// Vite builds the app into the Python package (src/tidings/web/desk_map/), which Tidings
// serves at /desks/. `npm run dev` serves it on :5173 and proxies the API and Socket.IO to
// a running node (TIDINGS_URL, default http://127.0.0.1:8443): same origin for the
// browser, so no CORS setting is needed.
import { fileURLToPath, URL } from "node:url";
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

const target = process.env.TIDINGS_URL ?? "http://127.0.0.1:8443";

export default defineConfig({
  base: "/desks/",
  plugins: [vue()],
  resolve: { alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) } },
  build: {
    outDir: fileURLToPath(new URL("../../src/tidings/web/desk_map", import.meta.url)),
    emptyOutDir: true,
    // The polyfill is code in the entry chunk, harmless under CSP, but no browser we
    // support needs it.
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target, changeOrigin: false },
      "/socket.io": { target, ws: true, changeOrigin: false },
    },
  },
});
