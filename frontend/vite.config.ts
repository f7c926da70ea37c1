import { defineConfig } from 'vite';

// `anycode serve` embeds dist/ and serves it at `/`.
// In dev (`npm run dev`), API and terminal WebSockets are proxied to a running server.
declare const process: { env: Record<string, string | undefined> };
const target = process.env.ANYCODE_DEV_TARGET ?? 'http://127.0.0.1:7878';

export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: {
      // The one-time login link: the server sets the session cookie and redirects to `/`.
      '/login': { target, changeOrigin: false },
      '/api': { target, changeOrigin: false },
      '/ws': { target, ws: true, changeOrigin: false },
    },
  },
});
