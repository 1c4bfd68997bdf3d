// Vite builds the agent app into dist/, which the gateway serves at /.
// `npm run dev` serves it with hot reload and sends the grpc-web calls to a
// gateway on CALLPILOT_GATEWAY (default http://127.0.0.1:8080).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The SDK of this same checkout (clients/typescript, built with tsc), whatever
// node_modules/@callpilot/sdk links to (a shared node_modules may point elsewhere).
const sdk = fileURLToPath(new URL("../typescript/dist/index.js", import.meta.url));

const gateway = process.env["CALLPILOT_GATEWAY"] ?? "http://127.0.0.1:8080";

export default defineConfig({
  resolve: {
    alias: [{ find: /^@callpilot\/sdk$/, replacement: sdk }],
  },
  esbuild: {
    jsx: "automatic",
    jsxImportSource: "preact",
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    target: "es2022",
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      "^/callpilot\\.v1\\.": { target: gateway, changeOrigin: false },
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
