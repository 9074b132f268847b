// Package testpki makes throw-away certificates for tests: a CA, server
// and client certificates signed by it, and a client certificate from a
// rogue CA, with fresh ECDSA P-256 keys written to a temporary directory.
// Nothing it makes is committed. Only tests import it.
package testpki
