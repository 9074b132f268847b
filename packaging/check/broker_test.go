package check

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// repoRoot is the broker's module, two levels up.
const repoRoot = "../.."

var broker struct {
	once  sync.Once
	dir   string
	path  string
	flags map[string]bool // the flag names `mcutie --help` lists
	err   error
}

// helpFlag matches a flag at the start of a --help line: "  -name type" or
// "  --name ...".
var helpFlag = regexp.MustCompile(`(?m)^\s{1,8}--?([a-z][a-z0-9-]*)\b`)

// mcutieBinary builds cmd/mcutie once per test run (the go build cache
// makes it cheap after the broker's own tests) and reads the flags its
// --help lists.
func mcutieBinary(t *testing.T) (path string, flags map[string]bool) {
	t.Helper()
	broker.once.Do(func() {
		broker.dir, broker.err = os.MkdirTemp("", "mcutie-k8s-check-")
		if broker.err != nil {
			return
		}
		broker.path = filepath.Join(broker.dir, "mcutie")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, "go", "build", "-o", broker.path, "./cmd/mcutie")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			broker.err = fmt.Errorf("go build ./cmd/mcutie: %v\n%s", err, out)
			return
		}
		help, err := exec.CommandContext(ctx, broker.path, "--help").Output()
		if err != nil {
			broker.err = fmt.Errorf("mcutie --help: %v", err)
			return
		}
		broker.flags = map[string]bool{}
		for _, m := range helpFlag.FindAllStringSubmatch(string(help), -1) {
			broker.flags[m[1]] = true
		}
		// A sanity check of the parsing itself: these have been there
		// from the start.
		for _, f := range []string{"listen", "metrics-listen", "data-dir", "config", "password-file"} {
			if !broker.flags[f] {
				broker.err = fmt.Errorf("mcutie --help: no --%s found; the help format changed? got %v\n%s", f, sortedKeys(broker.flags), help)
				return
			}
		}
	})
	if broker.err != nil {
		t.Fatal(broker.err)
	}
	return broker.path, broker.flags
}

func TestMain(m *testing.M) {
	code := m.Run()
	if broker.dir != "" {
		os.RemoveAll(broker.dir)
	}
	os.Exit(code)
}
