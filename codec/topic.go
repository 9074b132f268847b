package codec

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

// Word-at-a-time helpers for the ASCII fast paths.
const (
	loBits    = 0x0101010101010101
	hiBits    = 0x8080808080808080
	plusBytes = '+' * loBits
	hashBytes = '#' * loBits
)

// hasZero reports whether any byte of w is 0.
func hasZero(w uint64) bool { return (w-loBits)&^w&hiBits != 0 }

// ValidUTF8 reports whether b is a valid MQTT UTF-8 Encoded String body:
// well-formed UTF-8 with no surrogate code points [MQTT-1.5.4-1] and no
// U+0000 [MQTT-1.5.4-2]. The other code points §1.5.4 lists as undesirable
// (controls, non-characters) are accepted, as the spec allows. ASCII input
// takes a byte-at-a-time fast path. Safe for concurrent use.
func ValidUTF8(b []byte) bool { return validUTF8(b) == nil }

// validUTF8 is ValidUTF8 returning the error that names the broken rule.
func validUTF8(b []byte) error {
	i := 0
	// Fast path: 8 ASCII bytes with no NUL at a time.
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if w&hiBits != 0 || hasZero(w) {
			break
		}
	}
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if c == 0 {
				return errUTF8Null // [MQTT-1.5.4-2]
			}
			i++
			continue
		}
		// Slow path. utf8.DecodeRune rejects surrogates and overlong forms.
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return errUTF8 // [MQTT-1.5.4-1]
		}
		i += size
	}
	return nil
}

// ValidateTopicName checks a topic name as a PUBLISH carries it: at least one
// character [MQTT-4.7.3-1], at most 65535 bytes [MQTT-4.7.3-3], valid UTF-8
// without U+0000 [MQTT-1.5.4-1/-2], and no wildcard '+' or '#'
// [MQTT-3.3.2-2]. It returns a *ReasonError: TopicNameInvalid for the topic
// rules, MalformedPacket for bad UTF-8. Safe for concurrent use.
func ValidateTopicName(b []byte) error {
	if len(b) == 0 {
		return errTopicEmpty // [MQTT-4.7.3-1]
	}
	if len(b) > 0xffff {
		return errTopicTooLong // [MQTT-4.7.3-3]
	}
	return validateTopicChars(b)
}

// validateTopicChars checks UTF-8 and wildcards in one pass.
func validateTopicChars(b []byte) error {
	i := 0
	// Fast path: 8 ASCII bytes with no NUL, '+' or '#' at a time.
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if w&hiBits != 0 || hasZero(w) || hasZero(w^plusBytes) || hasZero(w^hashBytes) {
			break
		}
	}
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			switch c {
			case 0:
				return errUTF8Null // [MQTT-1.5.4-2]
			case '+', '#':
				return errTopicWildcard // [MQTT-3.3.2-2]
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return errUTF8 // [MQTT-1.5.4-1]
		}
		i += size
	}
	return nil
}

// ValidateTopicFilter checks a SUBSCRIBE topic filter: at least one character
// [MQTT-4.7.3-1], at most 65535 bytes, valid UTF-8, '#' only alone as the
// last level [MQTT-4.7.1-1], '+' only alone in its level [MQTT-4.7.1-2], and
// for a "$share/" filter the shared-subscription syntax [MQTT-4.8.2-1/-2]
// with the part after the share name checked as a filter. It returns a
// *ReasonError: TopicFilterInvalid for the filter rules, MalformedPacket for
// bad UTF-8. Safe for concurrent use.
func ValidateTopicFilter(b []byte) error {
	if err := validUTF8(b); err != nil {
		return err
	}
	return validateFilter(b)
}

// validateFilter is ValidateTopicFilter for a string whose UTF-8 has already
// been checked.
func validateFilter(b []byte) error {
	if len(b) == 0 {
		return errFilterEmpty // [MQTT-4.7.3-1]
	}
	if len(b) > 0xffff {
		return errFilterTooLong // [MQTT-4.7.3-3]
	}
	_, f, _, err := SplitShared(b)
	if err != nil {
		return err
	}
	return validateWildcards(f)
}

// validateWildcards checks wildcard placement in a non-empty filter.
func validateWildcards(f []byte) error {
	for i, c := range f {
		switch c {
		case '#':
			// [MQTT-4.7.1-1] alone in the last level.
			if i != len(f)-1 || (i > 0 && f[i-1] != '/') {
				return errFilterHash
			}
		case '+':
			// [MQTT-4.7.1-2] alone in its level.
			if (i > 0 && f[i-1] != '/') || (i+1 < len(f) && f[i+1] != '/') {
				return errFilterPlus
			}
		}
	}
	return nil
}

var sharePrefix = []byte("$share/")

// SplitShared splits a shared-subscription filter "$share/{group}/{filter}"
// into its share name and topic filter: "$share/g/a/b" gives "g", "a/b",
// true. A filter that does not start with "$share/" is returned unchanged
// with shared false. It checks only the shared framing: the share name is
// at least one character [MQTT-4.8.2-1], has no '/', '+' or '#' and is
// followed by '/' and a non-empty filter [MQTT-4.8.2-2]; it does not check
// the inner filter's wildcards (ValidateTopicFilter does). The results alias
// filter. Safe for concurrent use.
func SplitShared(filter []byte) (group, topicFilter []byte, shared bool, err error) {
	if !bytes.HasPrefix(filter, sharePrefix) {
		return nil, filter, false, nil
	}
	rest := filter[len(sharePrefix):]
	slash := bytes.IndexByte(rest, '/')
	switch {
	case slash == 0 || len(rest) == 0:
		return nil, nil, true, errShareName // [MQTT-4.8.2-1]
	case slash < 0:
		return nil, nil, true, errShareSyntax // [MQTT-4.8.2-2] no "/" after the name
	}
	group, topicFilter = rest[:slash], rest[slash+1:]
	if bytes.IndexByte(group, '+') >= 0 || bytes.IndexByte(group, '#') >= 0 || len(topicFilter) == 0 {
		return nil, nil, true, errShareSyntax // [MQTT-4.8.2-2]
	}
	return group, topicFilter, true, nil
}

// MatchTopic reports whether filter matches the topic name with MQTT's
// rules: '+' one level, '#' the rest (and the parent level), and a
// wildcard at the first level never matches a topic starting with '$'
// [MQTT-4.7.2-1]. The filter is taken as valid (ValidateTopicFilter). It
// allocates nothing. The broker routes with its trie (package router);
// this is for checking one filter against one topic (ACL rules, plugins).
func MatchTopic(filter string, topic []byte) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, flast := cutLevel(filter)
		if fl == "#" {
			return true
		}
		tl, trest, tlast := cutLevelB(topic)
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

// cutLevel and cutLevelB split off a topic's first level.
func cutLevel(s string) (lvl, rest string, last bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], false
	}
	return s, "", true
}

func cutLevelB(b []byte) (lvl, rest []byte, last bool) {
	if i := bytes.IndexByte(b, '/'); i >= 0 {
		return b[:i], b[i+1:], false
	}
	return b, nil, true
}
