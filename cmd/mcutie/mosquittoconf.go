package main

// Mosquitto configuration files: `mcutie --config mosquitto.conf` runs one,
// `mcutie convert-mosquitto-conf` prints the equivalent mcutie YAML. Both
// go through convertMosquittoConf, which reads the file as Mosquitto 2.0
// does (src/conf.c: one "option value" per line, a '#' in the first column
// a comment, include_dir read from the main file only) and maps each
// option onto mcutie flags. An option that cannot be carried over is
// reported with its file, line and the reason (never dropped silently); an
// option whose loss would let in clients Mosquitto refuses, or expose what
// it isolates (mount_point, crlfile, bind_interface, PSK, listeners with
// different TLS or security settings), refuses the whole file. The mapping
// is tabulated in docs/mosquitto.md.

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/mcutie/mcutie/codec"
)

// mosqFinding is one line of the conversion's report: an option carried
// over with a difference worth knowing (a note) or not carried over (a
// warning).
type mosqFinding struct {
	file   string
	line   int
	option string
	why    string
}

func (f mosqFinding) String() string {
	if f.line == 0 {
		return fmt.Sprintf("%s: %s: %s", f.file, f.option, f.why)
	}
	return fmt.Sprintf("%s:%d: %s: %s", f.file, f.line, f.option, f.why)
}

// mosqSetting is one mcutie flag with its values (several for --listen)
// and the Mosquitto lines they come from.
type mosqSetting struct {
	flag   string
	values []string
	from   []string
}

// mosqConversion is a Mosquitto configuration mapped onto mcutie flags.
type mosqConversion struct {
	file     string
	settings []mosqSetting
	notes    []mosqFinding // carried over, with a difference
	warnings []mosqFinding // not carried over
}

// mosqLine is one option line of a Mosquitto file.
type mosqLine struct {
	file string
	n    int
	key  string
	rest string // everything after the key, blanks trimmed
}

func (l mosqLine) String() string {
	return fmt.Sprintf("%s:%d %s %s", l.file, l.n, l.key, l.rest)
}

// mosqSecurity is what per_listener_settings makes per listener.
type mosqSecurity struct {
	passwordFile, aclFile mosqLine // key empty: not given
	allowAnonymous        *bool
	anonLine              mosqLine
}

// mosqListener is a listener line (or Mosquitto's default listener, made
// by port, bind_address or a listener option before any listener line)
// with its options.
type mosqListener struct {
	at             mosqLine // the listener line; key empty for the default listener
	port           int
	host           string
	unixPath       string
	websockets     bool
	certfile       mosqLine
	keyfile        mosqLine
	cafile         mosqLine
	capath         mosqLine
	requireCert    bool
	useIdentity    bool
	tlsVersion     string
	maxConnections int // -1: none
	maxConnLine    mosqLine
	maxTopicAlias  int // -1: not given (Mosquitto's default is 10)
	aliasLine      mosqLine
	socketDomain   string
	sec            mosqSecurity
	touched        bool // an option that makes Mosquitto create the default listener

	served       bool // mapped onto a --listen URL
	certIdentity bool // TLS, client certificate required, its CN the user name
}

// name says which listener ln is, for messages.
func (ln *mosqListener) name() string {
	if ln.at.key == "" {
		return "the default listener (port, bind_address)"
	}
	return fmt.Sprintf("the listener at line %d", ln.at.n)
}

func newMosqListener() *mosqListener {
	return &mosqListener{maxConnections: -1, maxTopicAlias: -1}
}

// mosqParser holds the state of one conversion while lines are read.
type mosqParser struct {
	conv        *mosqConversion
	def         *mosqListener
	listeners   []*mosqListener
	perListener bool
	secTouched  bool // a security option came before per_listener_settings
	global      mosqSecurity
	localOnly   bool // no listener, port or bind_address: Mosquitto 2 listens on localhost only

	persistence         bool
	persistenceLine     mosqLine
	persistenceLocation mosqLine
	maxInflight         int // Mosquitto's max_inflight_messages (default 20; 0 none)
	maxInflightLine     mosqLine
	maxQueued           mosqLine
	maxQueuedBytes      mosqLine
	maxPacketSize       mosqLine
	messageSizeLimit    mosqLine
	refusals            []string
}

// mosqNotCarried gives, for the options mcutie has no equivalent of, why;
// each is a warning naming the line.
var mosqNotCarried = map[string]string{
	"auth_plugin":                    "mcutie loads no Mosquitto plugins; see --plugins (httpauth) in docs/hooks.md",
	"plugin":                         "mcutie loads no Mosquitto plugins; see --plugins (httpauth) in docs/hooks.md",
	"auth_plugin_deny_special_chars": "mcutie loads no Mosquitto plugins",
	"auto_id_prefix":                 "mcutie names clients without an id itself (no prefix option)",
	"clientid_prefixes":              "no equivalent (deprecated in Mosquitto); --client-id-prefix-user binds client ids to user names instead",
	"ciphers":                        "Go's TLS chooses the cipher suites (only secure ones); no list is configurable",
	"ciphers_tls1.3":                 "Go's TLS chooses the TLS 1.3 cipher suites; no list is configurable",
	"dhparamfile":                    "Go's TLS uses ECDHE only; no DH parameters are read",
	"http_dir":                       "mcutie serves no static files on its WebSocket listeners",
	"log_dest":                       "mcutie logs to standard error (journald under systemd); redirect it, or see --log-level",
	"log_facility":                   "mcutie logs to standard error, not syslog",
	"log_timestamp":                  "mcutie's log lines always carry a time",
	"log_timestamp_format":           "mcutie's log lines carry RFC 3339 times",
	"log_type":                       "mcutie has one level for all its log lines: --log-level debug|info|warn|error",
	"max_inflight_bytes":             "no equivalent: mcutie bounds a connection's unsent bytes (--max-outbound-bytes) and queued bytes (--max-queued-bytes), not inflight bytes",
	"max_qos":                        "no equivalent: mcutie accepts QoS 0, 1 and 2 on every listener",
	"maximum_qos":                    "no equivalent: mcutie accepts QoS 0, 1 and 2 on every listener",
	"persistence_file":               "mcutie's store is a directory of its own (--data-dir); mosquitto.db is neither read nor written",
	"pid_file":                       "mcutie writes no pid file (systemd and containers track the process)",
	"psk_file":                       "no TLS-PSK in mcutie (Go's TLS has none)",
	"queue_qos0_messages":            "mcutie queues only QoS 1 and 2 messages for offline sessions, as MQTT specifies",
	"retain_available":               "mcutie always accepts retained messages (bound them with --max-retained-messages and --max-retained-bytes)",
	"upgrade_outgoing_qos":           "no equivalent: mcutie never raises a message's QoS (MQTT-3.8.4-8)",
	"use_subject_as_username":        "no equivalent; --tls-username-from-cn takes the Common Name only (use_identity_as_username)",
	"use_username_as_clientid":       "no equivalent; --client-id-prefix-user binds client ids to user names (<user> or <user>:<suffix>)",
	"user":                           "mcutie does not switch users: run it as the user it should be (systemd User= or DynamicUser=)",
	"websockets_log_level":           "mcutie's WebSocket listeners log through --log-level",
	"websockets_headers_size":        "mcutie's WebSocket listeners take HTTP headers up to Go's default (1 MiB)",
	"tls_engine":                     "no OpenSSL engines in Go's TLS",
	"tls_engine_kpass_sha1":          "no OpenSSL engines in Go's TLS",
	"retry_interval":                 "removed in Mosquitto 2; mcutie resends unacknowledged messages when the client reconnects, as MQTT specifies",
}

// mosqBridgeOptions are the options of a bridge (after a connection line).
var mosqBridgeOptions = map[string]bool{
	"connection": true, "address": true, "addresses": true, "bridge_attempt_unsubscribe": true, "bridge_bind_address": true,
	"bridge_max_packet_size": true, "bridge_outgoing_retain": true, "bridge_protocol_version": true, "cleansession": true,
	"local_cleansession": true, "keepalive_interval": true, "idle_timeout": true, "local_clientid": true, "local_password": true,
	"local_username": true, "notifications": true, "notifications_local_only": true, "notification_topic": true,
	"remote_clientid": true, "remote_password": true, "remote_username": true, "clientid": true, "username": true, "password": true,
	"restart_timeout": true, "round_robin": true, "start_type": true, "threshold": true, "topic": true, "try_private": true,
	"bridge_alpn": true, "bridge_cafile": true, "bridge_capath": true, "bridge_certfile": true, "bridge_identity": true,
	"bridge_insecure": true, "bridge_keyfile": true, "bridge_psk": true, "bridge_require_ocsp": true, "bridge_tls_version": true,
}

// mosqKnown are the options mosqParser.option handles itself.
var mosqKnown = map[string]bool{
	"acl_file": true, "allow_anonymous": true, "autosave_interval": true, "autosave_on_changes": true, "bind_address": true,
	"bind_interface": true, "cafile": true, "capath": true, "certfile": true, "crlfile": true, "include_dir": true,
	"keyfile": true, "listener": true, "max_connections": true, "max_inflight_messages": true, "max_keepalive": true,
	"max_packet_size": true, "max_queued_bytes": true, "max_queued_messages": true, "max_topic_alias": true,
	"memory_limit": true, "message_size_limit": true, "mount_point": true, "password_file": true, "per_listener_settings": true,
	"persistence": true, "retained_persistence": true, "persistence_location": true, "persistent_client_expiration": true,
	"port": true, "protocol": true, "psk_hint": true, "require_certificate": true, "set_tcp_nodelay": true,
	"socket_domain": true, "sys_interval": true, "tls_keyform": true, "tls_version": true, "use_identity_as_username": true,
	"allow_duplicate_messages": true, "allow_zero_length_clientid": true, "check_retain_source": true, "connection_messages": true,
}

// isMosquittoOption reports whether key is an option of Mosquitto 2.0's
// configuration file.
func isMosquittoOption(key string) bool {
	if mosqKnown[key] || mosqBridgeOptions[key] {
		return true
	}
	if _, ok := mosqNotCarried[key]; ok {
		return true
	}
	return strings.HasPrefix(key, "auth_opt_") || strings.HasPrefix(key, "plugin_opt_")
}

// isMosquittoConf tells a Mosquitto configuration from mcutie's YAML by
// content: Mosquitto's lines are "option value" with a known option first,
// YAML's are "key: value" or "- item". When the content does not decide
// (no option line at all), a name ending in .conf does.
func isMosquittoConf(path string, raw []byte) bool {
	mosq, yamlish := 0, 0
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") || t == "---" {
			continue
		}
		key, _, _ := strings.Cut(strings.TrimLeft(line, " "), " ")
		switch {
		case strings.HasSuffix(key, ":") || strings.Contains(key, ": ") || strings.HasPrefix(t, "-") || strings.HasPrefix(t, "{"):
			yamlish++
		case isMosquittoOption(key):
			mosq++
		}
	}
	if mosq > 0 && yamlish == 0 {
		return true
	}
	if mosq == 0 && yamlish == 0 {
		return strings.HasSuffix(strings.ToLower(path), ".conf")
	}
	return mosq > yamlish
}

// convertMosquittoConf reads the Mosquitto configuration at path (and the
// files of its include_dir lines) and maps it onto mcutie flags. An error
// refuses the file: it does not parse as Mosquitto would take it, or
// running it would let in or expose what Mosquitto keeps out.
func convertMosquittoConf(path string) (*mosqConversion, error) {
	p := &mosqParser{conv: &mosqConversion{file: path}, def: newMosqListener(), localOnly: true, maxInflight: 20}
	if err := p.readFile(path, 0); err != nil {
		return nil, err
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	if len(p.refusals) > 0 {
		return nil, fmt.Errorf("cannot run the Mosquitto config %s as it stands:\n  %s", path, strings.Join(p.refusals, "\n  "))
	}
	return p.conv, nil
}

func (p *mosqParser) warn(l mosqLine, why string) {
	p.conv.warnings = append(p.conv.warnings, mosqFinding{l.file, l.n, l.key, why})
}

func (p *mosqParser) note(l mosqLine, why string) {
	p.conv.notes = append(p.conv.notes, mosqFinding{l.file, l.n, l.key, why})
}

func (p *mosqParser) refuse(l mosqLine, why string) {
	p.refusals = append(p.refusals, fmt.Sprintf("%s:%d: %s: %s", l.file, l.n, l.key, why))
}

// set records a flag's value; a later set of the same flag replaces it
// (as a later Mosquitto line replaces an earlier one).
func (p *mosqParser) set(flag string, value string, from ...mosqLine) {
	var why []string
	for _, l := range from {
		if l.key != "" {
			why = append(why, l.String())
		}
	}
	p.setBecause(flag, value, why...)
}

// setBecause is set with the reason given as text.
func (p *mosqParser) setBecause(flag, value string, why ...string) {
	s := mosqSetting{flag: flag, values: []string{value}, from: why}
	for i := range p.conv.settings {
		if p.conv.settings[i].flag == flag {
			p.conv.settings[i] = s
			return
		}
	}
	p.conv.settings = append(p.conv.settings, s)
}

// readFile reads one file; level 0 is the main file (include_dir is only
// followed from it, as Mosquitto does). Each file starts with the default
// listener current, as in Mosquitto's config__read_file_core.
func (p *mosqParser) readFile(path string, level int) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read Mosquitto config: %w", err)
	}
	cur := p.def
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" || text[0] == '#' {
			continue
		}
		// Mosquitto splits on spaces only (a tab is part of a word).
		fields := strings.Fields(strings.ReplaceAll(text, "\t", "\x00"))
		if len(fields) == 0 {
			continue
		}
		key := strings.ReplaceAll(fields[0], "\x00", "\t")
		if strings.HasPrefix(key, "#") {
			// An indented comment (Mosquitto 2.0 refuses it as an
			// unknown option "#").
			continue
		}
		_, rest, _ := strings.Cut(strings.TrimLeft(text, " "), " ")
		l := mosqLine{file: path, n: n, key: key, rest: strings.TrimFunc(rest, unicode.IsSpace)}
		if key == "include_dir" {
			if err := p.includeDir(l, level); err != nil {
				return err
			}
			continue
		}
		var err error
		if cur, err = p.option(l, cur); err != nil {
			return err
		}
	}
	return sc.Err()
}

// includeDir reads the *.conf files of dir in Mosquitto's order.
func (p *mosqParser) includeDir(l mosqLine, level int) error {
	if level > 0 {
		p.warn(l, "ignored, as Mosquitto does: include_dir is only read from the main config file")
		return nil
	}
	if l.rest == "" {
		return fmt.Errorf("%s:%d: empty include_dir", l.file, l.n)
	}
	ents, err := os.ReadDir(l.rest)
	if err != nil {
		return fmt.Errorf("%s:%d: include_dir: %w", l.file, l.n, err)
	}
	var names []string
	for _, e := range ents {
		if len(e.Name()) > 5 && strings.HasSuffix(e.Name(), ".conf") && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Slice(names, func(i, j int) bool { return mosqIncludeLess(names[i], names[j]) })
	for _, name := range names {
		if err := p.readFile(filepath.Join(l.rest, name), level+1); err != nil {
			return err
		}
	}
	return nil
}

// mosqIncludeLess is Mosquitto's include_dir order (scmp_p in
// src/conf_includedir.c): case-insensitive first, then upper case before
// lower case of the same letter: 00.conf, A.conf, a.conf, B.conf, b.conf.
func mosqIncludeLess(a, b string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		ua, ub := unicode.ToUpper(rune(a[i])), unicode.ToUpper(rune(b[i]))
		if ua != ub {
			return ua < ub
		}
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// word is the first word of l's value, as Mosquitto's strtok reads it.
func (l mosqLine) word() string {
	w, _, _ := strings.Cut(l.rest, " ")
	return w
}

func (l mosqLine) errorf(format string, a ...any) error {
	return fmt.Errorf("%s:%d: %s: %s", l.file, l.n, l.key, fmt.Sprintf(format, a...))
}

// boolValue parses a Mosquitto boolean: true, false, 1 or 0.
func (l mosqLine) boolValue() (bool, error) {
	switch l.word() {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, l.errorf("%q is not a boolean (want true or false)", l.word())
}

// intValue parses an integer; unlike Mosquitto's atoi, trailing garbage
// is an error, not ignored.
func (l mosqLine) intValue() (int, error) {
	n, err := strconv.Atoi(l.word())
	if err != nil {
		return 0, l.errorf("%q is not an integer", l.word())
	}
	return n, nil
}

// stringValue is a path or name option's value; a second one for the same
// scope is an error, as in Mosquitto (conf__parse_string).
func (l mosqLine) stringValue(prev mosqLine) (mosqLine, error) {
	if l.rest == "" {
		return l, l.errorf("empty value")
	}
	if prev.key != "" {
		return l, l.errorf("given twice (also at %s:%d); Mosquitto refuses this too", prev.file, prev.n)
	}
	return l, nil
}

// security returns the security options l sets: the current listener's
// with per_listener_settings true, else the global ones.
func (p *mosqParser) security(cur *mosqListener) *mosqSecurity {
	p.secTouched = true
	if p.perListener {
		return &cur.sec
	}
	return &p.global
}

// option handles one line and returns the current listener after it.
func (p *mosqParser) option(l mosqLine, cur *mosqListener) (*mosqListener, error) {
	var err error
	switch l.key {
	case "listener":
		p.localOnly = false
		port, err := strconv.Atoi(l.word())
		if err != nil || port < 0 || port > 65535 {
			return cur, l.errorf("bad port %q", l.word())
		}
		ln := newMosqListener()
		ln.at, ln.port = l, port
		if _, host, ok := strings.Cut(l.rest, " "); ok {
			host = strings.TrimSpace(host)
			if w, _, _ := strings.Cut(host, " "); !strings.HasPrefix(w, "#") {
				host = w
			} else {
				host = ""
			}
			if port == 0 {
				ln.unixPath = host
			} else {
				ln.host = host
			}
		}
		if port == 0 && ln.unixPath == "" {
			return cur, l.errorf("a listener on port 0 must give a Unix socket path")
		}
		p.listeners = append(p.listeners, ln)
		return ln, nil
	case "port":
		p.localOnly = false
		port, err := l.intValue()
		if err != nil {
			return cur, err
		}
		if port < 1 || port > 65535 {
			return cur, l.errorf("bad port %d", port)
		}
		p.def.port, p.def.touched = port, true
	case "bind_address":
		p.localOnly = false
		if p.def.host != "" {
			return cur, l.errorf("given twice; Mosquitto refuses this too")
		}
		if l.rest == "" {
			return cur, l.errorf("empty value")
		}
		p.def.host, p.def.touched = l.rest, true
	case "protocol":
		switch l.word() {
		case "mqtt":
			cur.websockets = false
		case "websockets":
			cur.websockets, cur.touched = true, true
		default:
			return cur, l.errorf("%q: want mqtt or websockets", l.word())
		}
	case "certfile":
		cur.certfile, err = l.stringValue(cur.certfile)
		cur.touched = true
	case "keyfile":
		cur.keyfile, err = l.stringValue(cur.keyfile)
		cur.touched = true
	case "cafile":
		cur.cafile, err = l.stringValue(cur.cafile)
		cur.touched = true
	case "capath":
		cur.capath, err = l.stringValue(cur.capath)
		cur.touched = true
	case "require_certificate":
		cur.requireCert, err = l.boolValue()
		cur.touched = cur.touched || cur.requireCert
	case "use_identity_as_username":
		cur.useIdentity, err = l.boolValue()
		cur.touched = cur.touched || cur.useIdentity
	case "tls_version":
		switch l.word() {
		case "tlsv1.3", "tlsv1.2", "tlsv1.1":
			cur.tlsVersion = l.word()
		default:
			return cur, l.errorf("%q: want tlsv1.3, tlsv1.2 or tlsv1.1", l.word())
		}
		cur.touched = true
	case "tls_keyform":
		if l.word() == "engine" {
			p.refuse(l, "the private key is held by an OpenSSL engine; mcutie reads keys from PEM files only (--tls-key)")
		} else if l.word() != "pem" {
			return cur, l.errorf("%q: want pem or engine", l.word())
		}
	case "crlfile":
		cur.touched = true
		p.refuse(l, "mcutie checks no certificate revocation list: clients whose certificates the list revokes would be let in")
	case "psk_hint":
		cur.touched = true
		p.refuse(l, "a TLS-PSK listener: Go's TLS has no pre-shared keys, and without them this listener would be neither encrypted nor authenticated as configured")
	case "mount_point":
		if len(p.listeners) == 0 {
			return cur, l.errorf("needs a listener line first (Mosquitto refuses this too)")
		}
		p.refuse(l, "mcutie has no mount points: the listener's clients would see and publish to the whole topic tree instead of their own part of it")
	case "bind_interface":
		cur.touched = true
		p.refuse(l, "mcutie binds to addresses, not interfaces: give the interface's address in the listener line instead (the listener would otherwise take clients from every interface)")
	case "socket_domain":
		switch l.word() {
		case "ipv4", "ipv6":
			cur.socketDomain, cur.touched = l.word(), true
		default:
			return cur, l.errorf("%q: want ipv4 or ipv6", l.word())
		}
	case "max_connections":
		n, err := l.intValue()
		if err != nil {
			return cur, err
		}
		cur.maxConnections, cur.maxConnLine = max(n, -1), l
		cur.touched = cur.touched || n >= 0
	case "max_topic_alias":
		n, err := l.intValue()
		if err != nil {
			return cur, err
		}
		if n < 0 || n > 65535 {
			return cur, l.errorf("%d: want 0 to 65535", n)
		}
		cur.maxTopicAlias, cur.aliasLine = n, l
	case "per_listener_settings":
		v, err := l.boolValue()
		if err != nil {
			return cur, err
		}
		if v && p.secTouched {
			return cur, l.errorf("must come before any other security option (Mosquitto refuses this too)")
		}
		p.perListener = v
	case "password_file":
		s := p.security(cur)
		s.passwordFile, err = l.stringValue(s.passwordFile)
		if p.perListener {
			cur.touched = true
		}
	case "acl_file":
		s := p.security(cur)
		s.aclFile, err = l.stringValue(s.aclFile)
	case "allow_anonymous":
		s := p.security(cur)
		v, err := l.boolValue()
		if err != nil {
			return cur, err
		}
		s.allowAnonymous, s.anonLine = &v, l
	case "persistence", "retained_persistence":
		p.persistence, err = l.boolValue()
		p.persistenceLine = l
	case "persistence_location":
		p.persistenceLocation, err = l.stringValue(p.persistenceLocation)
	case "autosave_interval", "autosave_on_changes":
		p.note(l, "not needed: mcutie's store writes every change as it happens (--durability), not a snapshot every autosave_interval")
	case "allow_duplicate_messages":
		if _, err := l.boolValue(); err != nil {
			return cur, err
		}
		p.note(l, "deprecated in Mosquitto 2; mcutie sends a client one copy of a message however many of its subscriptions match (MQTT-3.3.4-2), which either value allows")
	case "connection_messages":
		v, err := l.boolValue()
		if err != nil {
			return cur, err
		}
		if v {
			p.setBecause("log-connections-rate", "100", l.String()+" (mcutie's default)")
			p.note(l, "mcutie logs connects and disconnects at info, at most --log-connections-rate lines a second (beyond it, one summing line a second)")
		} else {
			p.set("log-connections-rate", "0", l)
		}
	case "allow_zero_length_clientid", "check_retain_source":
		v, err := l.boolValue()
		if err != nil {
			return cur, err
		}
		// mcutie's fixed behaviour matches one of the two values.
		same := map[string]bool{"allow_zero_length_clientid": true, "check_retain_source": false}[l.key]
		why := map[string]string{
			"allow_zero_length_clientid": "no equivalent: mcutie always lets a client without a client id in and names it (3.1.1 with clean session, 5)",
			"check_retain_source":        "no equivalent: mcutie checks the subscriber's read right on a retained message, not whether its publisher may still write it",
		}[l.key]
		if v != same {
			p.warn(l, why)
		} else {
			p.note(l, "mcutie behaves so without an option")
		}
	case "set_tcp_nodelay":
		p.note(l, "mcutie always sets TCP_NODELAY")
	case "max_inflight_messages":
		n, err := l.intValue()
		if err != nil {
			return cur, err
		}
		if n > 65535 {
			return cur, l.errorf("%d: want at most 65535 (Mosquitto refuses more too)", n)
		}
		p.maxInflight, p.maxInflightLine = n, l
		if n <= 0 || n == 65535 {
			p.maxInflight = 65535
			p.set("max-inflight", "65535", l)
			p.note(l, "no limit in Mosquitto; mcutie's largest is 65535 (a v5 Receive Maximum)")
		} else {
			p.set("max-inflight", strconv.Itoa(n), l)
		}
		p.note(l, "mcutie applies --max-inflight to both directions: it is also the Receive Maximum it tells v5 clients (Mosquitto's max_inflight_messages is outgoing only)")
	case "max_queued_messages":
		if _, err := l.intValue(); err != nil {
			return cur, err
		}
		p.maxQueued = l
	case "max_queued_bytes":
		if _, err := l.intValue(); err != nil {
			return cur, err
		}
		p.maxQueuedBytes = l
	case "max_packet_size":
		n, err := l.intValue()
		if err != nil {
			return cur, err
		}
		if n < 20 {
			return cur, l.errorf("%d: Mosquitto refuses less than 20 too", n)
		}
		p.maxPacketSize = l
	case "message_size_limit":
		n, err := l.intValue()
		if err != nil {
			return cur, err
		}
		if n < 0 || n > codec.MaxPacketSize {
			return cur, l.errorf("%d: want 0 to 268435455", n)
		}
		p.messageSizeLimit = l
	case "max_keepalive":
		n, err := l.intValue()
		if err != nil {
			return cur, err
		}
		if n < 10 || n > 65535 {
			return cur, l.errorf("%d: want 10 to 65535 (Mosquitto refuses others too)", n)
		}
		p.set("max-keepalive", strconv.Itoa(n), l)
		p.note(l, "a v5 client asking for more (or for none) is told the Server Keep Alive, as in Mosquitto; a 3.1.1 client asking for more is refused (CONNACK 0x02, as Mosquitto 2.0.12 and later do), one asking for none is let in and closed when silent for 1.5 × max_keepalive")
	case "sys_interval":
		n, err := l.intValue()
		if err != nil {
			return cur, err
		}
		p.set("sys-interval", strconv.Itoa(max(n, 0))+"s", l)
		p.note(l, "mcutie publishes its own $SYS/broker/... topics (docs/observability.md): most of Mosquitto's names, not all")
	case "persistent_client_expiration":
		secs, err := mosqExpiration(l)
		if err != nil {
			return cur, err
		}
		p.set("max-session-expiry", strconv.FormatInt(secs, 10), l)
		p.note(l, "--max-session-expiry caps every session's expiry, v5 ones included (Mosquitto's option applies to sessions that ask for no expiry)")
	case "memory_limit":
		n, err := strconv.ParseInt(l.word(), 10, 64)
		if err != nil || n < 0 {
			return cur, l.errorf("%q: want bytes", l.word())
		}
		if n > 0 {
			p.set("memory-limit", strconv.FormatInt(n, 10), l)
			p.note(l, "a soft limit in mcutie (GOMEMLIMIT: the garbage collector works harder near it), where Mosquitto refuses allocations beyond it; bound the queues (--max-queued-bytes-total, --max-retained-bytes) for a hard bound")
		}
	default:
		switch {
		case mosqBridgeOptions[l.key]:
			why := "bridge options are not converted: write the bridge in a --bridges file (docs/bridges.md maps each option); until then its messages are not forwarded"
			if l.key == "connection" {
				why = fmt.Sprintf("bridge %q not carried over: mcutie's bridges live in a --bridges YAML file (docs/bridges.md maps Mosquitto's options; the bridge's lines below are listed too)", l.rest)
			}
			p.warn(l, why)
		case strings.HasPrefix(l.key, "auth_opt_") || strings.HasPrefix(l.key, "plugin_opt_"):
			p.warn(l, "mcutie loads no Mosquitto plugins; see --plugins (httpauth) in docs/hooks.md")
		default:
			if why, ok := mosqNotCarried[l.key]; ok {
				p.warn(l, why)
			} else {
				p.warn(l, "unknown option (Mosquitto 2.0 refuses to start with it)")
			}
		}
	}
	return cur, err
}

// mosqExpiration parses persistent_client_expiration (e.g. 14d) into
// seconds: h, d, w, m (30 days) and y (365 days), as Mosquitto does.
func mosqExpiration(l mosqLine) (int64, error) {
	w := l.word()
	if len(w) < 2 {
		return 0, l.errorf("%q: want a number and h, d, w, m or y", w)
	}
	mult := map[byte]int64{'h': 3600, 'd': 86400, 'w': 7 * 86400, 'm': 30 * 86400, 'y': 365 * 86400}[w[len(w)-1]]
	n, err := strconv.ParseInt(w[:len(w)-1], 10, 64)
	if mult == 0 || err != nil || n <= 0 {
		return 0, l.errorf("%q: want a number and h, d, w, m or y", w)
	}
	return min(n*mult, 1<<32-2), nil
}

// finish maps what the lines set as a whole: listeners, TLS, security,
// persistence and the queue and size limits.
func (p *mosqParser) finish() error {
	listeners := p.listeners
	if p.def.touched {
		// Mosquitto makes the default listener when port, bind_address
		// or a listener option came before any listener line.
		if p.def.port == 0 {
			p.def.port = 1883
		}
		listeners = append([]*mosqListener{p.def}, listeners...)
	}
	if err := p.mapListeners(listeners); err != nil {
		return err
	}
	p.mapSecurity(listeners)
	p.mapStore()
	p.mapLimits(listeners)
	return nil
}

// mapListeners turns the listeners into --listen and the TLS flags.
func (p *mosqParser) mapListeners(listeners []*mosqListener) error {
	var urls, from []string
	if len(listeners) == 0 {
		from = append(from, "no listener, port or bind_address: Mosquitto 2 listens on localhost only (127.0.0.1:1883 and [::1]:1883)")
		urls = append(urls, "tcp://127.0.0.1:1883")
		p.conv.notes = append(p.conv.notes, mosqFinding{p.conv.file, 0, "listener", "none given: Mosquitto 2 listens on 127.0.0.1:1883 and [::1]:1883; mcutie on 127.0.0.1:1883 (add tcp://[::1]:1883 to listen for IPv6 too)"})
	}
	var tlsRef *mosqListener
	for _, ln := range listeners {
		at := ln.at
		if at.key == "" {
			at = mosqLine{file: p.conv.file, key: "port", rest: strconv.Itoa(ln.port)}
		}
		if ln.unixPath != "" {
			p.warn(at, "a Unix socket listener: mcutie listens on TCP only; this listener is not carried over")
			continue
		}
		if (ln.certfile.key != "") != (ln.keyfile.key != "") {
			return at.errorf("certfile and keyfile must both be given for TLS (Mosquitto refuses this too)")
		}
		tlsOn := ln.certfile.key != ""
		ln.served = true
		ln.certIdentity = tlsOn && ln.requireCert && ln.useIdentity && ln.cafile.key != ""
		scheme := map[[2]bool]string{{false, false}: "tcp", {true, false}: "tls", {false, true}: "ws", {true, true}: "wss"}[[2]bool{tlsOn, ln.websockets}]
		host := ln.host
		switch ln.socketDomain {
		case "ipv4":
			if host == "" {
				host = "0.0.0.0"
			}
			if scheme == "tcp" {
				scheme = "tcp4"
			}
		case "ipv6":
			if scheme == "tcp" {
				scheme = "tcp6"
			} else if host == "" {
				host = "::"
				p.note(at, "socket_domain ipv6: mcutie's "+scheme+":// listener on [::] also takes IPv4 clients")
			}
		}
		u := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(ln.port))
		if ln.websockets {
			// Mosquitto takes the WebSocket upgrade on any path.
			u += "/"
		}
		urls = append(urls, u)
		from = append(from, at.String())
		if !tlsOn {
			if ln.requireCert || ln.cafile.key != "" || ln.useIdentity || ln.tlsVersion != "" {
				p.warn(at, "TLS options without certfile and keyfile: the listener is not TLS (as in Mosquitto), so they do nothing")
			}
			continue
		}
		if ln.requireCert && ln.cafile.key == "" {
			p.refuse(at, "require_certificate without cafile (capath only): mcutie takes client CA certificates from one PEM file (--tls-client-ca); concatenate the capath certificates into one and give it as cafile")
		}
		if tlsRef == nil {
			tlsRef = ln
			continue
		}
		if d := tlsDifference(tlsRef, ln); d != "" {
			p.refuse(at, fmt.Sprintf("this TLS listener's %s differs from %s's: mcutie has one TLS configuration (--tls-cert, --tls-key, --tls-client-ca) for all its tls:// and wss:// listeners; run two mcutie processes, or make them equal", d, tlsRef.name()))
		}
	}
	if len(urls) == 0 {
		return fmt.Errorf("the Mosquitto config %s has no listener mcutie can serve", p.conv.file)
	}
	p.conv.settings = append(p.conv.settings, mosqSetting{flag: "listen", values: urls, from: from})
	if tlsRef != nil {
		ln := tlsRef
		p.set("tls-cert", ln.certfile.rest, ln.certfile)
		p.set("tls-key", ln.keyfile.rest, ln.keyfile)
		if ln.requireCert && ln.cafile.key != "" {
			p.set("tls-client-ca", ln.cafile.rest, ln.cafile)
		} else if ln.cafile.key != "" {
			p.note(ln.cafile, "not needed without require_certificate true: Mosquitto asks no client certificate then either")
		}
		switch {
		case ln.capath.key != "" && !ln.requireCert:
			p.note(ln.capath, "not needed without require_certificate true")
		case ln.capath.key != "" && ln.cafile.key != "":
			p.warn(ln.capath, "mcutie trusts the CA certificates of one file (--tls-client-ca, from cafile): clients whose CA is only in this directory are refused; append its certificates to the cafile")
		}
		if ln.useIdentity {
			if ln.requireCert {
				p.set("tls-username-from-cn", "true", ln.at)
			} else {
				p.warn(ln.at, "use_identity_as_username without require_certificate true does nothing in Mosquitto either")
			}
		}
		switch ln.tlsVersion {
		case "tlsv1.3":
			p.set("tls-min-version", "1.3", ln.at)
		case "tlsv1.1":
			p.set("tls-min-version", "1.2", ln.at)
			p.note(ln.at, "tls_version tlsv1.1: mcutie's lowest TLS version is 1.2 (TLS 1.1 clients are refused)")
		case "tlsv1.2", "":
			p.set("tls-min-version", "1.2", ln.at)
		}
	}
	return nil
}

// tlsDifference names what makes two TLS listeners' settings differ ("" if
// nothing does).
func tlsDifference(a, b *mosqListener) string {
	ca := func(l *mosqListener) string {
		if l.requireCert {
			return l.cafile.rest
		}
		return ""
	}
	switch {
	case a.certfile.rest != b.certfile.rest || a.keyfile.rest != b.keyfile.rest:
		return "certfile/keyfile"
	case a.requireCert != b.requireCert:
		return "require_certificate"
	case ca(a) != ca(b):
		return "cafile"
	case a.useIdentity != b.useIdentity:
		return "use_identity_as_username"
	case (a.tlsVersion == "tlsv1.3") != (b.tlsVersion == "tlsv1.3"):
		return "tls_version"
	}
	return ""
}

// mapSecurity sets --password-file, --acl-file and --allow-anonymous,
// always explicitly: mcutie's default (anonymous on for loopback-only
// listeners without users) is not Mosquitto's.
func (p *mosqParser) mapSecurity(listeners []*mosqListener) {
	sec := p.global
	if p.perListener {
		// One set of settings for all listeners is all mcutie has: the
		// listeners must agree.
		var ref *mosqListener
		for _, ln := range listeners {
			if ln.unixPath != "" {
				continue
			}
			if ref == nil {
				ref = ln
				continue
			}
			if d := secDifference(ref.sec, ln.sec); d != "" {
				at := ln.at
				if at.key == "" {
					at = mosqLine{file: p.conv.file, key: "port"}
				}
				p.refuse(at, fmt.Sprintf("per_listener_settings true and this listener's %s differs from %s's: mcutie has one password file, ACL and anonymous setting for all listeners", d, ref.name()))
			}
		}
		if ref == nil {
			p.refusals = append(p.refusals, p.conv.file+": per_listener_settings true without a listener line: there is no listener the security settings are for")
			return
		}
		sec = ref.sec
		p.conv.notes = append(p.conv.notes, mosqFinding{p.conv.file, 0, "per_listener_settings", "true, and every listener has the same security settings: carried over as mcutie's global ones"})
	}
	// use_identity_as_username: Mosquitto checks no password on such a
	// listener (handle_connect.c: "authentication assumed to be
	// cleared"); mcutie checks the certificate's user like any other.
	served, certOnly := 0, 0
	for _, ln := range listeners {
		if ln.served {
			served++
			if ln.certIdentity {
				certOnly++
			}
		}
	}
	allCert := served > 0 && certOnly == served
	if sec.passwordFile.key != "" {
		if allCert {
			p.note(sec.passwordFile, "not used, as by Mosquitto: every listener takes the user name from a verified client certificate (use_identity_as_username) and checks no password")
		} else {
			p.set("password-file", sec.passwordFile.rest, sec.passwordFile)
		}
	}
	if certOnly > 0 && !allCert {
		for _, ln := range listeners {
			if ln.certIdentity {
				p.warn(ln.at, "use_identity_as_username on some listeners only: mcutie checks the certificate's user against --password-file and --allow-anonymous like any user, so this listener's clients must also send that user's password (Mosquitto asks none)")
			}
		}
	}
	if sec.aclFile.key != "" {
		p.set("acl-file", sec.aclFile.rest, sec.aclFile)
	}
	switch {
	case allCert && !p.localOnly:
		// Every client has a verified certificate whose Common Name is
		// its user name (one without is refused): no anonymous client
		// can reach mcutie, and with anonymous access on, no password is
		// asked, as in Mosquitto.
		p.setBecause("allow-anonymous", "true", "every listener takes the user name from a verified client certificate (use_identity_as_username): no password is checked, as in Mosquitto; a client without a certificate is refused at the TLS handshake")
	case p.localOnly:
		// Mosquitto 2 (config__read): without listener, port or
		// bind_address, anonymous clients are let in whatever the file
		// says; only local ones can reach it.
		p.setBecause("allow-anonymous", "true", "no listener: Mosquitto 2 lets anonymous clients in (local ones only)")
		if sec.allowAnonymous != nil && !*sec.allowAnonymous {
			p.note(sec.anonLine, "Mosquitto 2 ignores allow_anonymous false when no listener is given (local-only mode lets local clients in without a user name); so does mcutie here")
		}
	case sec.allowAnonymous != nil:
		p.set("allow-anonymous", strconv.FormatBool(*sec.allowAnonymous), sec.anonLine)
	default:
		p.setBecause("allow-anonymous", "false", "Mosquitto 2's default with a listener (mcutie's own default differs)")
	}
}

// secDifference names what differs between two listeners' security
// options ("" if nothing does).
func secDifference(a, b mosqSecurity) string {
	anon := func(s mosqSecurity) bool { return s.allowAnonymous != nil && *s.allowAnonymous }
	switch {
	case a.passwordFile.rest != b.passwordFile.rest:
		return "password_file"
	case a.aclFile.rest != b.aclFile.rest:
		return "acl_file"
	case anon(a) != anon(b):
		return "allow_anonymous"
	}
	return ""
}

// mapStore sets --store and --data-dir from persistence.
func (p *mosqParser) mapStore() {
	if !p.persistence {
		var from []mosqLine
		if p.persistenceLine.key != "" {
			from = append(from, p.persistenceLine)
		}
		if len(from) == 0 {
			p.setBecause("store", "memory", "Mosquitto's default: persistence false")
		} else {
			p.set("store", "memory", from...)
		}
		if p.persistenceLocation.key != "" {
			p.note(p.persistenceLocation, "not used: persistence is false")
		}
		return
	}
	p.set("store", "badger", p.persistenceLine)
	if p.persistenceLocation.key != "" {
		p.set("data-dir", p.persistenceLocation.rest, p.persistenceLocation)
		p.note(p.persistenceLocation, "mcutie keeps its own store (Badger files and node-id) in this directory; Mosquitto's mosquitto.db is not read, so retained messages and sessions start empty")
	} else {
		p.note(p.persistenceLine, "no persistence_location: Mosquitto writes mosquitto.db in its working directory; mcutie keeps its store in --data-dir ./data")
	}
}

// mapLimits sets the queue, packet size and connection limits.
func (p *mosqParser) mapLimits(listeners []*mosqListener) {
	if l := p.maxQueued; l.key != "" {
		n, _ := l.intValue()
		if n <= 0 {
			p.warn(l, "no limit is not an option in mcutie: every queue is bounded; --max-queued-messages keeps its default")
		} else {
			// Mosquitto counts the messages queued beyond the inflight
			// window; mcutie the ones held in all.
			held := n + p.maxInflight
			p.set("max-queued-messages", strconv.Itoa(held), l, p.maxInflightLine)
			p.note(l, fmt.Sprintf("mcutie counts inflight and queued messages together: %d queued + %d inflight = %d", n, p.maxInflight, held))
		}
	}
	if l := p.maxQueuedBytes; l.key != "" {
		n, _ := l.intValue()
		if n <= 0 {
			p.warn(l, "no limit is not an option in mcutie: every queue is bounded; --max-queued-bytes keeps its default")
		} else {
			p.set("max-queued-bytes", strconv.Itoa(n), l)
			p.note(l, "mcutie counts the topic and payload bytes of all the session's held QoS 1/2 messages, inflight ones included")
		}
	}
	switch {
	case p.maxPacketSize.key != "":
		n, _ := p.maxPacketSize.intValue()
		p.set("max-packet-size", strconv.Itoa(min(n, codec.MaxPacketSize)), p.maxPacketSize)
		if p.messageSizeLimit.key != "" {
			p.note(p.messageSizeLimit, "covered by max_packet_size, which mcutie enforces on every packet")
		}
	case p.messageSizeLimit.key != "":
		n, _ := p.messageSizeLimit.intValue()
		if n == 0 {
			p.note(p.messageSizeLimit, "0 (no limit): mcutie keeps its --max-packet-size default (1 MiB); raise it for larger messages (at most 268435460)")
			break
		}
		// The whole packet, not the payload: room for the fixed header,
		// a topic and v5 properties.
		size := min(n+mosqPacketOverhead, codec.MaxPacketSize)
		p.set("max-packet-size", strconv.Itoa(size), p.messageSizeLimit)
		p.note(p.messageSizeLimit, fmt.Sprintf("mcutie bounds whole packets: payload %d + %d bytes for the header, topic and properties; a larger PUBLISH closes the connection (v5: DISCONNECT 0x95), where Mosquitto drops the message and keeps the client", n, mosqPacketOverhead))
	}
	// max_connections is per listener in Mosquitto, one total in mcutie.
	total, limited, unlimited := 0, 0, 0
	var lines []mosqLine
	for _, ln := range listeners {
		if ln.unixPath != "" {
			continue
		}
		if ln.maxConnections > 0 { // 0 and -1: no limit (net.c)
			total += ln.maxConnections
			limited++
			lines = append(lines, ln.maxConnLine)
		} else {
			unlimited++
		}
	}
	switch {
	case limited > 0 && unlimited == 0:
		p.set("max-connections", strconv.Itoa(total), lines...)
		if limited > 1 {
			p.note(lines[len(lines)-1], fmt.Sprintf("mcutie has one limit for all listeners together: the sum, %d", total))
		}
	case limited > 0:
		for _, l := range lines {
			p.warn(l, "set on some listeners only: mcutie has one limit for all listeners together, so none is set (see --max-connections, --max-connections-per-ip)")
		}
	}
	aliases := -1
	var aliasLines []mosqLine
	for _, ln := range listeners {
		if ln.maxTopicAlias >= 0 {
			if aliases >= 0 && aliases != ln.maxTopicAlias {
				p.note(ln.aliasLine, "differs between listeners: mcutie has one --topic-alias-maximum; the smallest is taken")
			}
			if aliases < 0 || ln.maxTopicAlias < aliases {
				aliases = ln.maxTopicAlias
			}
			aliasLines = append(aliasLines, ln.aliasLine)
		}
	}
	if aliases >= 0 {
		p.set("topic-alias-maximum", strconv.Itoa(aliases), aliasLines...)
	}
}

// mosqPacketOverhead is the room given beyond message_size_limit's payload
// when it becomes --max-packet-size.
const mosqPacketOverhead = 1024

// applyMosquittoConf sets the flags a Mosquitto config maps onto, except
// those given on the command line, and reports (to w, as log lines) every
// option not carried over and every difference.
func applyMosquittoConf(fs *flag.FlagSet, path string, w io.Writer) error {
	conv, err := convertMosquittoConf(path)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range conv.settings {
		if given[s.flag] {
			continue
		}
		for _, v := range s.values {
			if err := fs.Set(s.flag, v); err != nil {
				return fmt.Errorf("the Mosquitto config %s: %s (from %s): %w", path, s.flag, strings.Join(s.from, ", "), err)
			}
		}
	}
	// The process's logger is not made yet: these lines follow
	// --log-level and --log-format as the command line and the
	// environment give them.
	var level slog.LevelVar
	if f := fs.Lookup("log-level"); f != nil {
		if l, err := parseLevel(f.Value.String()); err == nil {
			level.Set(l)
		}
	}
	format := "text"
	if f := fs.Lookup("log-format"); f != nil {
		format = f.Value.String()
	}
	log, err := newLogger(w, format, &level)
	if err != nil {
		log, _ = newLogger(w, "text", &level) // the bad format is refused later, by setupProcess
	}
	conv.report(log)
	return nil
}

// report logs the conversion: a warning per option not carried over, a
// line per difference.
func (c *mosqConversion) report(log *slog.Logger) {
	log.Info("Mosquitto config file read", "file", c.file, "settings", len(c.settings), "differences", len(c.notes), "not_carried_over", len(c.warnings))
	for _, f := range c.notes {
		log.Info("Mosquitto option carried over with a difference", "file", f.file, "line", f.line, "option", f.option, "detail", f.why)
	}
	for _, f := range c.warnings {
		log.Warn("Mosquitto option not carried over", "file", f.file, "line", f.line, "option", f.option, "why", f.why)
	}
}

// yaml renders the conversion as an mcutie config file: each key with the
// Mosquitto lines it comes from, then a comment line per difference and
// per option not carried over.
func (c *mosqConversion) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# mcutie configuration converted from the Mosquitto config %s\n", c.file)
	b.WriteString("# by mcutie convert-mosquitto-conf. Keys are mcutie flag names (mcutie --help);\n")
	b.WriteString("# run it with mcutie --config FILE. See docs/mosquitto.md.\n")
	for _, s := range c.settings {
		b.WriteString("\n")
		for _, f := range s.from {
			fmt.Fprintf(&b, "# from %s\n", f)
		}
		if s.flag == "listen" {
			b.WriteString("listen:\n")
			for _, v := range s.values {
				fmt.Fprintf(&b, "  - %s\n", yamlScalar(v))
			}
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", s.flag, yamlScalar(s.values[0]))
	}
	if len(c.notes) > 0 {
		b.WriteString("\n# Carried over with a difference:\n")
		for _, f := range c.notes {
			fmt.Fprintf(&b, "# - %s\n", oneLine(f.String()))
		}
	}
	if len(c.warnings) > 0 {
		b.WriteString("\n# Not carried over:\n")
		for _, f := range c.warnings {
			fmt.Fprintf(&b, "# - %s\n", oneLine(f.String()))
		}
	}
	return b.String()
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

// yamlScalar writes v as YAML: numbers and booleans bare, anything else
// double-quoted (a YAML double-quoted string takes Go's escapes).
func yamlScalar(v string) string {
	if v == "true" || v == "false" {
		return v
	}
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return v
	}
	return strconv.Quote(v)
}

// runConvertMosquittoConf is `mcutie convert-mosquitto-conf [-o FILE]
// mosquitto.conf`.
func runConvertMosquittoConf(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcutie convert-mosquitto-conf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the YAML to this file (default: standard output)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: mcutie convert-mosquitto-conf [-o out.yaml] mosquitto.conf\n\n"+
			"Prints the mcutie YAML config equivalent to a Mosquitto config file, with a\n"+
			"comment line per option it could not carry over (see docs/mosquitto.md).\n"+
			"mcutie --config mosquitto.conf runs the Mosquitto file directly.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	conv, err := convertMosquittoConf(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "mcutie convert-mosquitto-conf:", err)
		return 1
	}
	text := conv.yaml()
	if *out == "" {
		_, _ = io.WriteString(stdout, text)
	} else if err := os.WriteFile(*out, []byte(text), 0o644); err != nil {
		fmt.Fprintln(stderr, "mcutie convert-mosquitto-conf:", err)
		return 1
	}
	if n := len(conv.warnings); n > 0 {
		fmt.Fprintf(stderr, "mcutie convert-mosquitto-conf: %d option(s) not carried over, listed at the end of the output\n", n)
	}
	return 0
}
