/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// `choir serve` serves the built files at `/`; the API is same-origin at /api/v1 (docs/api.md).
// In development, `npm run dev` forwards the API to a `choir serve` on 127.0.0.1:8080. choir
// refuses requests whose Origin is not its own, so the proxy presents choir's own origin.
const CHOIR = process.env.CHOIR_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: './',
  plugins: [react()],
  server: {
    proxy: {
      '/api': {
        target: CHOIR,
        ws: true,
        changeOrigin: true,
        headers: { origin: CHOIR },
      },
      '/healthz': { target: CHOIR, changeOrigin: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
  },
});
