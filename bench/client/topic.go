package client

import "strings"

// Match reports whether topic name t matches topic filter f under the MQTT
// rules (§4.7): '+' matches one level, a trailing '#' the parent level and
// everything below it, and a filter starting with a wildcard does not match
// a topic starting with '$' [MQTT-4.7.2-1]. A shared-subscription prefix
// ($share/group/) must be stripped first (FilterOf does it). Safe for
// concurrent use.
func Match(f, t string) bool {
	if strings.HasPrefix(t, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" && !fmore {
			return true
		}
		tl, trest, tmore := strings.Cut(t, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// "a/#" matches "a": the filter's remainder must be exactly "#".
			return frest == "#"
		case !fmore:
			return false
		}
		f, t = frest, trest
	}
}

// FilterOf returns the topic filter of a subscription filter, without a
// "$share/{group}/" prefix.
func FilterOf(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			return f
		}
	}
	return filter
}
