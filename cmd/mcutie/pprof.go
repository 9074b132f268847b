package main

import (
	"net/http"
	"net/http/pprof"
)

// registerPprof serves Go's runtime profiles under /debug/pprof/ on mux
// (the --metrics-listen endpoint) when --pprof is given: CPU
// (/debug/pprof/profile?seconds=N), heap, goroutine, mutex, block and
// execution trace, for `go tool pprof http://ADDR/debug/pprof/profile`.
// Off by default: the profiles expose internals (command line, code
// paths) and a running CPU profile or trace costs CPU, so an operator
// turns it on where the metrics address is private.
func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves heap, goroutine, allocs, block, mutex, threadcreate
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
