// Command dashbench measures the admin API and the web dashboard with
// many real MQTT connections (make bench-dashboard, docs/admin.md):
// it starts the mcutie binary with a TCP and a WebSocket listener and the
// admin listener, opens --clients MQTT 3.1.1 connections (each
// subscribed to a topic of its own and reading what it is sent) while
// one publisher sends --rate messages a second to them, then times
// --requests sequential calls to each API endpoint the dashboard uses
// (p50/p95/p99/max) and --loads page loads of the dashboard in headless
// Chromium (the first with an empty cache, then warm): until the overview
// shows its tiles and until the clients table holds its first page.
//
// It is a bounded tool, not a test: it prints a Markdown table and exits.
package main
