/// <reference types="vitest/config" />
// Build and dev-server settings. `npm run dev` serves the app on http://localhost:5173 and
// relays the API, the Subsonic API and the events WebSocket to a local gateway
// (`dspot-spotify up`, https://localhost:8443 by default, self-signed dev certificate).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const gateway = process.env.DSPOT_GATEWAY ?? "https://localhost:8443";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": { target: gateway, secure: false, changeOrigin: true, ws: true },
      "/rest": { target: gateway, secure: false, changeOrigin: true },
    },
  },
  build: { outDir: "dist", sourcemap: true },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
