// Package admin is mcutie's management API: JSON over HTTP under
// /api/v1, to see and steer a running broker (clients and sessions,
// subscriptions, retained messages, bans, server-side publishing,
// statistics, listeners and the effective configuration). openapi.yaml in
// this directory is its reference, served at /api/v1/openapi.yaml and
// checked against the handlers by a test; docs/admin.md has curl
// examples.
//
// It is built on the broker's embedding API only (broker.Broker's
// Sessions, Session, DisconnectClient, Subscriptions, RetainedMessages,
// DeleteRetained, Ban, Unban, Bans, PublishMessage, StatsNow) and never
// reaches into the event loops: every query is answered by the loops that
// own the state, one bounded page at a time (see broker/admin.go), so the
// API costs the publish path nothing while nobody asks.
//
// # Security
//
// Requests carry a bearer token (Options.Token), compared in constant
// time; with no token configured the API is open, which Exposed refuses
// for any listener that is not loopback-only. Every request is logged
// (method, path, status, duration, remote address) and counted.
//
// # Contract
//
// Input is JSON (POST bodies, strict: unknown fields are refused) and
// query parameters; output is JSON, errors included:
// {"error": "<what went wrong and what to do>"} with 400 (bad input), 401
// (token), 404 (no such path or object), 405 (method), 409 (the broker
// refused: ban table full, a subscriber's queue full) or 503 (the broker
// is not serving or did not answer in time). Lists are paged (page and
// limit, limit at most Options.MaxPageSize, or the after cursor a page
// returns as next); nothing returns "all". API and Server are safe for
// concurrent use.
package admin
