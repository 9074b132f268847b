// Package promtext writes metrics in the Prometheus text exposition format
// (version 0.0.4) with a "# HELP" and a "# TYPE" line for every family,
// and merges what several writers produced into one valid exposition.
//
// mcutie's metric writers (broker.WriteMetrics, the reactor's, the
// store's, the hooks' and the plugins') format their samples at scrape
// time from plain counters, so counting costs the hot path nothing. Each
// declares its families once, next to the code that counts them:
//
//	var connections = promtext.Gauge("mcutie_connections", "Open network connections, including those before CONNECT.")
//	...
//	connections.Write(w, n)                                   // HELP, TYPE and one sample
//	rejected.Header(w)                                        // or: HELP and TYPE once,
//	rejected.Sample(w, promtext.Labels("reason", r), count)  // then one sample per label set
//
// Names follow one rule, documented in docs/observability.md:
// mcutie_<subsystem>_<what>_<unit>, base units (_bytes, _seconds) and
// _total on counters (Counter panics otherwise: a BUG, caught by any test
// that declares the family).
//
// Histogram is a Prometheus histogram with fixed le buckets, lock-free to
// observe (atomics only, no allocation), so histogram_quantile works on it.
//
// Merge takes a whole scrape and groups each family's samples under one
// HELP and TYPE: writers may repeat a family (two webhooks each write
// mcutie_webhook_events_total) or interleave families (one hook's
// counters, then the next hook's), and github.com/VictoriaMetrics/metrics
// writes its runtime metrics with an empty HELP, which Merge fills from
// RuntimeHelp. monitor runs every scrape through it.
//
// Everything here is safe for concurrent use; Family values are
// immutable.
package promtext
