package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// helpGroups sorts the flags into the topics of --help, of the example
// config (packaging/mcutie.example.yaml) and of docs/configuration.md, in
// this order. Every registered flag is in exactly one group
// (TestHelpGroupsEveryFlag): a new flag needs a line here.
var helpGroups = []struct {
	title string
	flags []string
}{
	{"General", []string{"config", "plugins"}},
	{"Listeners & TLS", []string{
		"listen", "tls-cert", "tls-key", "tls-client-ca", "tls-min-version", "tls-username-from-cn",
		"ws-require-subprotocol", "ws-trusted-proxies", "connect-timeout", "packet-timeout",
	}},
	{"Authentication & ACL", []string{
		"password-file", "acl-file", "allow-anonymous", "client-id-prefix-user", "auth-timeout", "auth-workers",
		"auth-queue", "max-pending-auth-per-ip", "acl-cache-size",
		"ban-threshold", "ban-window", "ban-duration", "ban-max-tracked",
	}},
	{"Sessions & QoS", []string{
		"max-packet-size", "max-topic-length", "max-topic-levels", "max-keepalive", "min-keepalive",
		"max-inflight", "topic-alias-maximum", "outbound-topic-aliases", "max-session-expiry", "response-information",
	}},
	{"Delivery", []string{"auto-subscribe", "p2p", "delayed-publish", "max-delayed-messages", "max-delay", "bridges"}},
	{"Limits per session and connection", []string{
		"max-queued-messages", "max-queued-bytes", "max-subscriptions", "max-subscription-bytes",
		"max-wildcard-levels", "max-user-properties", "max-outbound-bytes", "max-retained-owed",
		"max-client-id-length", "publish-rate", "publish-burst", "publish-byte-rate", "publish-byte-burst",
	}},
	{"Limits, broker-wide", []string{
		"max-connections", "max-connections-per-ip", "connection-rate-per-ip", "connection-burst-per-ip",
		"max-sessions", "max-queued-bytes-total", "max-retained-messages", "max-retained-bytes", "inbox-size",
	}},
	{"Store & durability", []string{
		"store", "data-dir", "durability", "commit-max-batch", "commit-max-delay", "commit-queue-size", "commit-backlog",
		"redis-addr", "redis-username", "redis-password", "redis-password-file", "redis-db", "redis-tls", "redis-prefix",
	}},
	{"Observability", []string{
		"log-level", "log-format", "log-connections-rate", "metrics-listen", "pprof",
		"sys-interval", "sys-prefix", "sys-client-events", "node-id",
	}},
	{"Management API", []string{"admin", "admin-listen", "admin-token", "admin-token-file", "admin-max-page-size"}},
	{"Cluster", []string{
		"cluster-listen", "cluster-join", "cluster-name", "cluster-secret", "cluster-secret-file", "cluster-queue", "cluster-credit", "cluster-confirm-acks",
		"cluster-hold", "cluster-hold-queue", "cluster-hold-bytes", "cluster-tls-cert", "cluster-tls-key", "cluster-tls-ca",
		"cluster-retained-tombstone-ttl", "cluster-retained-tombstones",
		"cluster-sessions", "cluster-replicas", "cluster-claim-timeout", "cluster-move-timeout", "cluster-max-session-bytes", "cluster-will-after",
	}},
	{"Tuning", []string{
		"loops", "read-buffer-cap", "write-buffer-cap", "socket-recv-buffer", "socket-send-buffer",
		"lock-os-thread", "coalesce-window", "gomaxprocs", "gogc", "memory-limit", "profile",
	}},
}

// otherGroup holds the flags no group names (a test fails on them; --help
// still shows them).
const otherGroup = "Other"

// groupedFlags returns fs's flags by group, in helpGroups order; flags
// in no group come last under otherGroup.
func groupedFlags(fs *flag.FlagSet) []flagGroup {
	placed := map[string]bool{}
	var out []flagGroup
	for _, g := range helpGroups {
		fg := flagGroup{title: g.title}
		for _, name := range g.flags {
			if f := fs.Lookup(name); f != nil && !placed[name] {
				fg.flags = append(fg.flags, f)
				placed[name] = true
			}
		}
		if len(fg.flags) > 0 {
			out = append(out, fg)
		}
	}
	other := flagGroup{title: otherGroup}
	fs.VisitAll(func(f *flag.Flag) {
		if !placed[f.Name] {
			other.flags = append(other.flags, f)
		}
	})
	if len(other.flags) > 0 {
		out = append(out, other)
	}
	return out
}

type flagGroup struct {
	title string
	flags []*flag.Flag
}

// printHelp writes --help: the usage, the sources of settings, then every
// flag by group with its default and its environment variable.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `mcutie %s — MQTT 3.1 / 3.1.1 / 5.0 broker

Usage: mcutie [flags]
       mcutie passwd [-c | -D] [-b] FILE USER [PASSWORD]   (see mcutie passwd -h)
       mcutie convert-mosquitto-conf [-o out.yaml] mosquitto.conf
       mcutie version

Every flag can also be set in the environment as MCUTIE_<NAME> (dashes
become underscores: MCUTIE_MAX_INFLIGHT=100) or as a key of the --config
YAML file (max-inflight: 100). The command line wins over the environment,
which wins over the file. Sizes take units (64KiB, 1MiB, 1GB), durations
need one (10s, 500ms, 5m). Reference: docs/configuration.md.
`, version)
	for _, g := range groupedFlags(fs) {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, f := range g.flags {
			typ, usage := flag.UnquoteUsage(f)
			typ = typeName(f.Value, typ)
			line := "  --" + f.Name
			if typ != "" {
				line += " " + typ
			}
			fmt.Fprintln(w, line)
			for _, l := range wrap(usage, 72) {
				fmt.Fprintln(w, "      "+l)
			}
			def := f.DefValue
			if f.Name == "listen" {
				def = defaultListen
			}
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(w, "      default %s, env %s\n", def, envName(f.Name))
		}
	}
}

// wrap breaks s into lines of at most width characters, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// typeName is what --help shows after a flag's name: its kind of value
// ("" for a switch).
func typeName(v flag.Value, def string) string {
	switch v := v.(type) {
	case checkedBool:
		return ""
	case checkedValue:
		return map[string]string{"int": "int", "uint": "uint", "float": "number", "duration": "duration"}[v.kind]
	case byteSize[int], byteSize[int64], byteSize[float64]:
		return "size"
	case *listFlag:
		return "list"
	}
	if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	return def
}
