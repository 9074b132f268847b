// Package rewrite is an example message interceptor: it enriches the
// payloads clients publish on the configured filters with the publisher's
// client id and the time the broker received them.
//
// A JSON object payload gets two fields (names configurable, by default
// "clientid" and "ts"), replacing any the client sent, so a client cannot
// claim another's id:
//
//	{"temp":21.5}  →  {"clientid":"sensor-7","temp":21.5,"ts":"2026-01-02T15:04:05.123Z"}
//
// Any other payload is wrapped: valid JSON (a number, an array…) as the
// value of "payload", other UTF-8 text as a JSON string, and bytes that
// are not UTF-8 as base64 with "payload_encoding":"base64":
//
//	21.5  →  {"clientid":"sensor-7","payload":21.5,"ts":"…"}
//
// Only messages of clients (their PUBLISHes and wills) are rewritten;
// those from the server pass unchanged. The rewrite is copy-on-write: the
// hook returns a new message and the original payload is untouched. It
// runs on the event loop and costs a JSON decode and encode per matching
// message; keep Filters narrow. The keys of an enriched object come out
// sorted (encoding/json's order).
package rewrite
