// Package hooks is mcutie's extension API: typed events the broker calls
// registered hooks at, interceptors that may change or drop a message, and
// the lifecycle of the plugins that provide them. The broker calls it; it
// imports nothing above the codec.
//
// # Cost
//
// A hook declares the events it implements (Provides); the broker asks
// Registry.Has before it builds anything for an event, so an event nobody
// listens to costs one load and a branch, and a broker without a Registry
// pays nothing more. Hooks that implement an event are called in
// registration order.
//
// # Concurrency
//
// Every event but Connect is called on the event loop that owns the
// connection, synchronously: such hooks must be cheap (microseconds, no
// I/O), and may be called concurrently from several loops, so they must be
// safe for concurrent use. The values they are handed (Client, Message,
// Subscription) are valid only during the call; a hook that keeps one
// copies it. Connect hooks may wait (an HTTP call, a database): they run on
// the registry's bounded worker pool with a timeout, off the loops; a
// timeout or a full pool denies the CONNECT.
//
// A hook that panics is recovered, logged and counted
// (mcutie_hook_panics_total), and its call counts as a refusal: the
// CONNECT or SUBSCRIBE is denied, the message dropped. The broker lives on.
package hooks
