import { defineConfig } from "vitest/config";

// Built into the Python package so `kefu serve` can serve it at /app/ (never committed: see .gitignore).
export default defineConfig({
  base: "/app/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../kefu/ui_dist", // relative to this folder (the Vite root)
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
  },
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:8000", ws: true },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
