import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The service the dev server and `vite preview` forward /graphql to, WebSocket included (`npm start`'s by default).
const proxy = { "/graphql": { target: process.env.SCS_URL || "http://localhost:4000", ws: true } };

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  // React's automatic JSX runtime, compiled by Vite's own transformer: building needs no React plugin.
  oxc: { jsx: { runtime: "automatic" } },
  server: { proxy },
  preview: { proxy },
});
