package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrefixListFlag(t *testing.T) {
	f := func(in []string, want string, wantErr bool) {
		t.Helper()
		var l prefixList
		var err error
		for _, v := range in {
			if err = l.Set(v); err != nil {
				break
			}
		}
		if (err != nil) != wantErr || (!wantErr && l.String() != want) {
			t.Fatalf("%q: got %q, %v; want %q (error %v)", in, l.String(), err, want, wantErr)
		}
	}
	f([]string{"10.0.0.0/8"}, "10.0.0.0/8", false)
	f([]string{"10.1.2.3/8, 192.0.2.1", "::ffff:10.0.0.0/104", "2001:db8::/32"}, "10.0.0.0/8,192.0.2.1/32,10.0.0.0/8,2001:db8::/32", false)
	f([]string{"10.0.0.0/33"}, "", true)
	f([]string{"proxy.example"}, "", true)
}

// A bad auto-subscribe rule stops the start with the file and line of
// the rule.
func TestLoadAutoSubscribe(t *testing.T) {
	f := func(body, wantErr string, wantRules int) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "autosub.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		rules, err := loadAutoSubscribe(path)
		if wantErr == "" {
			if err != nil || len(rules) != wantRules {
				t.Fatalf("%q: %d rules, %v", body, len(rules), err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), path+wantErr) {
			t.Fatalf("%q: error %v, want one naming %s%s", body, err, path, wantErr)
		}
	}
	good := "- client_id: '^sensor-'\n  filter: devices/%c/cmd/#\n  qos: 1\n- username: '^ops$'\n  filter: ops/%u/#\n  retain_handling: 2\n"
	f(good, "", 2)
	f("", "", 0)
	f(good+"- filter: a/#/b\n", ":7: filter", 0)
	f(good+"- filter: x\n  qos: 3\n", ":7: qos 3", 0)
	f("- filter: x\n- client_id: '('\n  filter: y\n", ":2: client_id", 0)
	f("- filter: x\n  colour: red\n", ":1:", 0)
	f("- filter: a/%x\n", ":1: filter", 0)
	f("- filter: $share/g/a\n  no_local: true\n", ":1: no_local", 0)
	f("filter: x\n", ":1: want a list", 0)
}

// The rewrite plugin's topic rules in the --plugins file: a bad rule
// stops the start with the line of the field that is wrong.
func TestPluginsTopicRules(t *testing.T) {
	f := func(body, wantErr string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "plugins.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		ps, err := readPlugins(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if wantErr == "" {
			if err != nil {
				t.Fatalf("%v", err)
			}
			_ = ps.reg.Stop()
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want %q", err, wantErr)
		}
	}
	head := "plugins:\n  - type: rewrite\n    topics:\n      - filter: x/#\n        re: '^x/(.+)$'\n        dest: y/$1\n"
	f(head, "")
	f(head+"      - filter: a/#\n        re: '(unclosed'\n        dest: b\n", "line 8")
	f(head+"      - filter: a/#\n        re: a\n        dest: b/%z\n", "line 9")
	f(head+"      - action: sometimes\n        filter: a\n        re: a\n        dest: b\n", "line 7")
}
