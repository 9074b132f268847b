// Package topic matches topic names against MQTT filters for the plugins
// under hooks/ (package auth has the same rules but imports the broker).
package topic

import (
	"bytes"
	"strings"
)

// Match reports whether filter matches topic with MQTT's rules: '+' one
// level, '#' the rest (and the parent level), and a wildcard at the first
// level never matches a topic starting with '$' [MQTT-4.7.2-1]. It
// allocates nothing.
func Match(filter string, topic []byte) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, flast := cut(filter)
		if fl == "#" {
			return true
		}
		tl, trest, tlast := cutB(topic)
		if fl != "+" && fl != string(tl) {
			return false
		}
		switch {
		case flast && tlast:
			return true
		case flast:
			return false
		case tlast:
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

func cut(s string) (lvl, rest string, last bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], false
	}
	return s, "", true
}

func cutB(b []byte) (lvl, rest []byte, last bool) {
	if i := bytes.IndexByte(b, '/'); i >= 0 {
		return b[:i], b[i+1:], false
	}
	return b, nil, true
}

// ValidFilter reports whether f is a non-empty filter whose wildcards are
// where MQTT allows them ('#' last and alone in its level, '+' alone in
// its level).
func ValidFilter(f string) bool {
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '#':
			if i != len(f)-1 || (i > 0 && f[i-1] != '/') {
				return false
			}
		case '+':
			if (i > 0 && f[i-1] != '/') || (i < len(f)-1 && f[i+1] != '/') {
				return false
			}
		}
	}
	return true
}
