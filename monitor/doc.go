// Package monitor is mcutie's operator endpoint: one HTTP server (the
// --metrics-listen address) serving
//
//   - /metrics: the broker's, transport's, store's, hooks' and plugins'
//     metrics in Prometheus text format, with the Go runtime and process
//     metrics (go_*, process_*), every family under one HELP and TYPE line
//     (package promtext; names and meanings in docs/observability.md);
//   - /healthz: liveness, 200 while the process serves HTTP at all;
//   - /readyz: readiness, 200 only when every Check passes within the
//     probe timeout (the listeners take connections, the event loops
//     answer, the store is open and its last commit succeeded), 503 with
//     the failing checks otherwise.
//
// It has its own folder because it is neither protocol (broker) nor
// transport (reactor) nor storage: it only reads them through the checks
// and metric writers cmd/mcutie wires in. Nothing here is on a hot path;
// a scrape costs the loops nothing (they publish counter snapshots on
// their tick, see broker.Stats).
package monitor
