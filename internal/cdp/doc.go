// Package cdp drives a headless Chromium over the Chrome DevTools
// Protocol, for tests and benchmarks that need a real browser (the
// dashboard's e2e test, bench/dashbench): start the browser, open a page,
// navigate, evaluate JavaScript, wait for a condition, take a screenshot.
// It is a small client of the protocol's flat session mode over one
// WebSocket (gorilla/websocket), not a general automation library.
//
// Chromium runs in a process group of its own with a fresh profile, and
// Close kills the whole group, so a failed test leaves no browser behind.
// A Browser and its Pages are safe for concurrent use; events other than
// console messages and uncaught exceptions (kept in a bounded log) are
// dropped.
package cdp
