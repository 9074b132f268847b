// Package httpauth is a plugin that asks an HTTP service who may connect,
// subscribe and publish.
//
// # Connect
//
// A ConnectHook: each CONNECT that passed the broker's own authentication
// is POSTed to Config.URL as
//
//	{"clientid": "…", "username": "…", "password": "…", "remote": "ip:port"}
//
// and allowed only on HTTP 200 with {"result": "allow"}. Anything else
// refuses it: {"result": "deny", "reason": "banned"} chooses the CONNACK
// code (see ReasonCode: banned 0x8A, bad_credentials 0x86,
// client_id_not_valid 0x85, server_busy 0x89, server_unavailable 0x88,
// anything else 0x87 not authorized; 3.x clients get the matching 3.x
// code), and a failed request or another HTTP status refuses with 0x88
// server unavailable. The hook runs on the Registry's worker pool, so it
// may wait: Config.Timeout bounds the request, and the Registry's own
// timeout (hooks.Options.Timeout, default 5 s) bounds the whole decision;
// past either the CONNECT is refused. Keep Config.Timeout below the
// Registry's so the refusal names the HTTP timeout.
//
// # ACL
//
// With Config.ACLURL, a SubscribeHook and a PublishHook ask the service
// about each (client, topic, action) with
//
//	{"clientid": "…", "username": "…", "topic": "…", "action": "subscribe"|"publish"}
//
// (topic is the filter for a subscribe), allowed on 200 with
// {"result": "allow"}. These hooks run on the event loop, which must never
// wait on the network, so they answer from a cache only:
//
//   - a cached verdict younger than Config.CacheTTL is the answer;
//   - on a miss, the answer is Config.Default ("deny" unless set to
//     "allow") and the question is queued for a background lookup, whose
//     verdict fills the cache for the next time. The first SUBSCRIBE or
//     PUBLISH on a topic not cached is therefore refused (v5 SUBACK 0x87 /
//     PUBACK 0x87, 3.x SUBACK 0x80 / the message dropped), and a retry
//     after the lookup (milliseconds) gets the service's verdict.
//
// A client that must not lose its first message should subscribe or
// publish once, wait, and retry, or the deployment sets Default to "allow"
// and accepts that the first use of a topic is not checked. The lookups
// run on Config.Lookups goroutines from a queue of Config.Queue; a full
// queue skips the lookup (counted), a question already being looked up is
// not asked twice, and a failed lookup caches nothing. The cache holds at
// most Config.CacheSize verdicts; when full, expired entries go first,
// then a quarter of the rest. A hit allocates nothing.
//
// Metrics (WriteMetrics): mcutie_httpauth_connect_checks_total{result=…},
// mcutie_httpauth_acl_checks_total{result=hit_allow|hit_deny|miss},
// mcutie_httpauth_lookups_total{result=allow|deny|error|dropped},
// mcutie_httpauth_cache_entries.
package httpauth
