package auth

import (
	"os"
	"strings"
	"testing"
	"unicode"
)

// aclBlocks returns the ACL examples of a Markdown document: its ```acl
// blocks and the bodies of its <<'ACL' here-documents.
func aclBlocks(doc string) []string {
	var out []string
	rest := doc
	for {
		_, after, ok := strings.Cut(rest, "```acl\n")
		if !ok {
			break
		}
		block, tail, _ := strings.Cut(after, "```")
		out = append(out, block)
		rest = tail
	}
	rest = doc
	for {
		_, after, ok := strings.Cut(rest, "<<'ACL'\n")
		if !ok {
			break
		}
		block, tail, _ := strings.Cut(after, "\nACL\n")
		out = append(out, block)
		rest = tail
	}
	return out
}

// The ACL examples of the README and docs/security.md parse, and mean what
// they show: no user name or filter swallowed an inline "# comment"
// (which neither mcutie nor Mosquitto reads as a comment).
func TestDocsACLExamplesParse(t *testing.T) {
	n := 0
	for _, path := range []string{"../README.md", "../docs/security.md"} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, block := range aclBlocks(string(raw)) {
			n++
			a, err := ParseACL(strings.NewReader(block))
			if err != nil {
				t.Errorf("%s, ACL example %d: %v\n%s", path, i+1, err, block)
				continue
			}
			var rules []aclRule
			rules = append(append(rules, a.anon...), a.patterns...)
			for user, rs := range a.users {
				if strings.ContainsFunc(user, unicode.IsSpace) || strings.Contains(user, "#") {
					t.Errorf("%s, ACL example %d: user name %q holds a comment", path, i+1, user)
				}
				rules = append(rules, rs...)
			}
			for _, r := range rules {
				if strings.ContainsFunc(r.filter, unicode.IsSpace) {
					t.Errorf("%s, ACL example %d, line %d: filter %q holds a comment", path, i+1, r.line, r.filter)
				}
			}
		}
	}
	if n < 2 {
		t.Fatalf("found %d ACL examples in README.md and docs/security.md, want at least 2 (```acl blocks, <<'ACL' here-documents)", n)
	}
}
