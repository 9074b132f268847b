// Package auth holds mcutie's built-in authentication and authorization:
// Mosquitto-compatible password files (PBKDF2-SHA512 "$7$" entries and
// legacy SHA-512 "$6$" ones), credentials from environment variables, and
// Mosquitto-compatible ACL files. Its types plug into package broker
// through broker.Authenticator and broker.Authorizer.
//
// # Concurrency
//
// Passwords and ACL values are immutable once parsed: any number of
// goroutines may check against them at once. Reloading builds a new value
// and swaps it atomically (PasswordAuthenticator.Swap, ACLAuthorizer.Swap);
// a check already running finishes against the old one. ACLAuthorizer
// bumps its generation on every swap so the broker's per-session caches
// forget verdicts made under the old rules.
//
// # Cost
//
// A $7$ check is a PBKDF2-SHA512 derivation (101 iterations by default,
// ~0.15 ms on the development machine, BenchmarkPasswordCheck): far too
// slow to run on an event loop when connections arrive in bursts, so PasswordAuthenticator runs it on a small bounded
// worker pool and posts the verdict back (broker.Authenticator's async
// path). ACL checks are pure string matching; the broker caches them per
// session and topic, so the publish path pays one map lookup.
package auth
