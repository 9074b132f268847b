// Package rewrite rewrites what clients send: the topics of their
// PUBLISHes and the filters of their SUBSCRIBEs (topic rules, topics.go),
// and the payloads they publish on the configured filters (enrichment,
// below).
//
// Topic rules are EMQX's rewrite module: ordered rules of a topic filter,
// an RE2 regular expression and a destination with $1…$9 groups and %c /
// %u (client id, user name). The first rule whose filter matches decides;
// if its expression does not match, the topic is left as it is. They run
// as a PublishTopic hook (a client's PUBLISH, before the ACL check, the
// $delayed / $p2p prefixes and the Publish hooks) and a Subscribe hook
// (before the ACL check; a $share/{group}/ prefix is kept). A bad rule is
// refused by New with the field that is wrong (conf.FieldError), which
// the binary turns into the line of the --plugins file.
//
// Payload enrichment adds the publisher's client id and the time the
// broker received the message to the payloads of the configured filters.
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
