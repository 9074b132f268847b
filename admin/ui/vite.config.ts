import { defineConfig } from 'vite'

// The dashboard is served by the binary at / of the admin listener
// (admin/ui/ui.go embeds dist/): relative asset paths, no source maps, no
// inlined assets, nothing fetched from outside at run time.
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 600,
    modulePreload: { polyfill: false },
  },
})
