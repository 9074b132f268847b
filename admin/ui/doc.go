// Package ui is mcutie's web dashboard: a single page application built
// from src/ by `make dashboard` (Vite, npm packages pinned in
// package-lock.json) into dist/, which is committed and embedded here, so
// building the binary needs no Node.js and the page needs no network
// beyond the broker (no CDN).
//
// Handler serves dist/ at the root of the admin listener; package admin
// serves the JSON API under /api/v1/ on the same mux, which is what the
// page calls (relative URLs, so a reverse proxy may mount both under a
// prefix). Views: overview with live charts, clients (search, paging,
// kick), one client's session, retained topics as a tree, publish and a
// live subscription over the broker's WebSocket listener (MQTT.js), bans.
// docs/admin.md describes them; e2e/dashboard_test.go drives them in
// headless Chromium.
//
// Handler is safe for concurrent use; its files are read-only.
package ui
