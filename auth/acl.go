package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// ACL is a parsed Mosquitto acl_file. Immutable: safe for concurrent use.
//
// Syntax (one statement per line; '#' starts a comment line):
//
//	topic [read|write|readwrite|deny] <filter>    before any user line: anonymous clients
//	user <name>                                    the topic lines that follow are that user's
//	pattern [read|write|readwrite|deny] <filter>   every client; %c = client id, %u = user name
//
// The access word is optional (readwrite). Evaluation: a deny rule that
// matches (the client's own topic rules, then the patterns) refuses;
// otherwise an allowing rule with the requested access grants; otherwise
// refused. Mosquitto also puts deny rules first, so files behave alike.
//
// %c and %u are substituted in one pass: a user named "%c" gets the
// literal "%c", never the client id. A value that is empty or holds '+',
// '#', '/' or '%' would change the pattern's meaning, so for that client
// an allowing pattern matches nothing and a deny pattern refuses every
// access (fail closed): client "a/b" must not reach "devices/a/b/…"
// through "devices/%c/#", which belongs to client "a". A %u pattern does
// not apply to a client without a user name.
type ACL struct {
	anon     []aclRule
	users    map[string][]aclRule
	patterns []aclRule
}

type aclRule struct {
	access uint8 // aclRead|aclWrite; 0 = deny
	filter string
	subst  bool // has %c or %u (patterns only)
	line   int
}

const (
	aclRead  uint8 = 1
	aclWrite uint8 = 2
)

// ParseACL reads an ACL file; an error names the line.
func ParseACL(r io.Reader) (*ACL, error) {
	a := &ACL{users: map[string][]aclRule{}}
	var cur *[]aclRule = &a.anon
	curUser := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 128<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		kw, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch kw {
		case "user":
			if rest == "" {
				return nil, fmt.Errorf("line %d: user without a name", n)
			}
			curUser = rest
			rules := a.users[curUser]
			a.users[curUser] = rules
			cur = nil
		case "topic", "pattern":
			access := aclRead | aclWrite
			word, filter, _ := strings.Cut(rest, " ")
			switch word {
			case "read":
				access = aclRead
			case "write":
				access = aclWrite
			case "readwrite":
			case "deny":
				access = 0
			default:
				filter = rest
			}
			filter = strings.TrimSpace(filter)
			if filter == "" {
				return nil, fmt.Errorf("line %d: %s without a topic filter", n, kw)
			}
			check := filter
			subst := false
			if kw == "pattern" {
				check = strings.NewReplacer("%c", "c", "%u", "u").Replace(filter)
				subst = check != filter
			}
			if err := codec.ValidateTopicFilter([]byte(check)); err != nil {
				return nil, fmt.Errorf("line %d: bad topic filter %q: %w", n, filter, err)
			}
			r := aclRule{access: access, filter: filter, subst: subst, line: n}
			switch {
			case kw == "pattern":
				a.patterns = addRule(a.patterns, r)
			case cur != nil:
				*cur = addRule(*cur, r)
			default:
				a.users[curUser] = addRule(a.users[curUser], r)
			}
		default:
			return nil, fmt.Errorf("line %d: unknown statement %q (want user, topic or pattern)", n, kw)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return a, nil
}

// addRule keeps deny rules ahead of allowing ones, in file order within
// each kind.
func addRule(rules []aclRule, r aclRule) []aclRule {
	if r.access != 0 {
		return append(rules, r)
	}
	i := 0
	for i < len(rules) && rules[i].access == 0 {
		i++
	}
	rules = append(rules, aclRule{})
	copy(rules[i+1:], rules[i:])
	rules[i] = r
	return rules
}

// LoadACL reads the ACL file at path.
func LoadACL(path string) (*ACL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := ParseACL(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Rules is the number of rules, for logs.
func (a *ACL) Rules() int {
	n := len(a.anon) + len(a.patterns)
	for _, r := range a.users {
		n += len(r)
	}
	return n
}

// NamesUsers reports whether the rules depend on user names (a user
// section or a %u pattern): they protect nothing unless user names are
// authenticated.
func (a *ACL) NamesUsers() bool {
	if len(a.users) > 0 {
		return true
	}
	for _, r := range a.patterns {
		if strings.Contains(r.filter, "%u") {
			return true
		}
	}
	return false
}

// Allow reports whether id may have access acc to topic (a topic name for
// AccessRead/AccessWrite, a topic filter without $share for
// AccessSubscribe, which needs a read rule whose filter covers all of
// it). It allocates only to expand patterns with %c/%u.
func (a *ACL) Allow(id *broker.Identity, topic []byte, acc broker.Access) bool {
	own := a.anon
	if id.HasUsername {
		own = a.users[id.Username]
	}
	want := aclRead
	if acc == broker.AccessWrite {
		want = aclWrite
	}
	// Deny rules first (they lead each list), then allowing ones.
	for pass := 0; pass < 2; pass++ {
		deny := pass == 0
		for i := range own {
			r := &own[i]
			if (r.access == 0) != deny {
				continue
			}
			if matchRule(r.filter, topic, acc) && (deny || r.access&want != 0) {
				return !deny
			}
		}
		for i := range a.patterns {
			r := &a.patterns[i]
			if (r.access == 0) != deny {
				continue
			}
			f := r.filter
			if r.subst {
				var how int
				switch f, how = expand(f, id); how {
				case expandNoUser:
					continue
				case expandUnsafe:
					if deny {
						return false // fail closed: a deny pattern that cannot be applied refuses
					}
					continue
				}
			}
			if matchRule(f, topic, acc) && (deny || r.access&want != 0) {
				return !deny
			}
		}
	}
	return false
}

func matchRule(filter string, topic []byte, acc broker.Access) bool {
	if acc == broker.AccessSubscribe {
		return Covers(filter, topic)
	}
	return Matches(filter, topic)
}

// Outcomes of expand.
const (
	expandOK     = iota
	expandNoUser // %u for a client without a user name: the pattern is not for it
	expandUnsafe // a value would change the pattern's meaning
)

// expand substitutes %c and %u in one pass, so an inserted value is never
// expanded again (user "%c" must not turn into the client id). A value
// that is empty or holds '+', '#', '/' or '%' would change what the
// pattern means: expandUnsafe.
func expand(f string, id *broker.Identity) (string, int) {
	var b strings.Builder
	b.Grow(len(f) + len(id.ClientID) + len(id.Username))
	for {
		i := strings.IndexByte(f, '%')
		if i < 0 || i == len(f)-1 {
			b.WriteString(f)
			return b.String(), expandOK
		}
		var v string
		switch f[i+1] {
		case 'c':
			v = id.ClientID
		case 'u':
			if !id.HasUsername {
				return "", expandNoUser
			}
			v = id.Username
		default: // a lone '%' stays as it is
			b.WriteString(f[:i+1])
			f = f[i+1:]
			continue
		}
		if v == "" || strings.ContainsAny(v, "+#/%") {
			return "", expandUnsafe
		}
		b.WriteString(f[:i])
		b.WriteString(v)
		f = f[i+2:]
	}
}

// level splits the first topic level off s.
func level(s string) (lvl, rest string, last bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], false
	}
	return s, "", true
}

func levelB(b []byte) (lvl, rest []byte, last bool) {
	if i := bytes.IndexByte(b, '/'); i >= 0 {
		return b[:i], b[i+1:], false
	}
	return b, nil, true
}

// Matches reports whether filter matches topic name with MQTT's rules
// (codec.MatchTopic).
func Matches(filter string, topic []byte) bool { return codec.MatchTopic(filter, topic) }

// Covers reports whether every topic sub matches is also matched by
// filter: the test for "may subscribe to sub" (Mosquitto's
// sub_matches_acl).
func Covers(filter string, sub []byte) bool {
	if len(sub) > 0 && sub[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, flast := level(filter)
		if fl == "#" {
			return true
		}
		sl, srest, slast := levelB(sub)
		if len(sl) == 1 && sl[0] == '#' {
			return false // only '#' covers '#'
		}
		if fl != "+" && fl != string(sl) {
			return false // a literal covers only itself, not '+'
		}
		switch {
		case flast && slast:
			return true
		case flast:
			return false
		case slast:
			return frest == "#"
		}
		filter, sub = frest, srest
	}
}
