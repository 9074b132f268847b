package main

import (
	"bytes"
	"strings"
	"testing"
)

// --version names the version, the Go toolchain and the license; a stray
// positional argument is a usage error (exit 2), not an open default
// broker.
func TestVersionAndStrayArguments(t *testing.T) {
	var b bytes.Buffer
	printVersion(&b)
	for _, want := range []string{"mcutie ", "commit ", "go1.", "license Apache-2.0"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("--version:\n%s\nlacks %q", b.String(), want)
		}
	}
	if code := run([]string{"my.yaml"}); code != 2 {
		t.Fatalf("mcutie my.yaml: exit %d, want 2", code)
	}
	if code := run([]string{"version"}); code != 0 {
		t.Fatalf("mcutie version: exit %d", code)
	}
	var m bytes.Buffer
	writeBuildInfo(&m)
	if !strings.Contains(m.String(), "\nmcutie_build_info{version=") || !strings.HasPrefix(m.String(), "# HELP mcutie_build_info ") {
		t.Fatalf("build info metric: %s", m.String())
	}
}
