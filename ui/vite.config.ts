import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

const root = fileURLToPath(new URL('.', import.meta.url))

// The app's front end. `npm run build` writes ui/dist, which the Tauri shell embeds.
export default defineConfig({
  root,
  plugins: [vue()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Tauri's webview on Linux is WebKitGTK 2.40+ (Debian 12).
    target: 'safari15',
    chunkSizeWarningLimit: 2000,
  },
  test: {
    root,
    environment: 'happy-dom',
    include: ['tests/**/*.test.ts'],
  },
})
