package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// exampleConfig is packaging/mcutie.example.yaml: every flag as a config
// key with its default and its help as a comment, so an operator sees all
// there is in one file. Regenerate with
// go test ./cmd/mcutie -run TestExampleConfig -update-example.
const exampleConfig = "../../packaging/mcutie.example.yaml"

var updateExample = flag.Bool("update-example", false, "rewrite packaging/mcutie.example.yaml")

// renderExample writes the example config from the flag set: the keys in
// --help order, each commented with its help, set to its default.
func renderExample() string {
	var cfg config
	fs := newFlagSet(&cfg)
	var b strings.Builder
	b.WriteString("# mcutie configuration: every key is a flag name (mcutie --help), set here\n")
	b.WriteString("# to its default. Use it with --config FILE; flags given on the command\n")
	b.WriteString("# line win. Delete what you keep at the default.\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		b.WriteString("\n")
		for _, line := range wrap(f.Usage, 76) {
			b.WriteString("# " + line + "\n")
		}
		def := f.DefValue
		switch f.Name {
		case "listen":
			def = "[tcp://127.0.0.1:1883]" // a repeatable flag: a list
		}
		if _, err := strconv.ParseFloat(def, 64); err != nil && def != "true" && def != "false" && !strings.HasPrefix(def, "[") {
			def = strconv.Quote(def) // strings and durations quoted: "" and values with ':' or '$' stay strings
		}
		if f.Name == "allow-anonymous" {
			// Giving it at all, even as false, overrides the loopback
			// default: left commented out.
			fmt.Fprintf(&b, "# %s: %s\n", f.Name, def)
			return
		}
		fmt.Fprintf(&b, "%s: %s\n", f.Name, def)
	})
	return b.String()
}

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

// The example config names every flag with its default (it is generated
// from the flag set, so it cannot drift), and the broker accepts it as it
// is: loading it changes no flag from its default (and gives none of the
// flags whose mere presence matters).
func TestExampleConfig(t *testing.T) {
	want := renderExample()
	if *updateExample {
		if err := os.WriteFile(exampleConfig, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date with the flags: go test ./cmd/mcutie -run TestExampleConfig -update-example", exampleConfig)
	}
	var cfg config
	fs := newFlagSet(&cfg)
	if err := applyConfigFile(fs, exampleConfig); err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Value.String() != f.DefValue && f.Name != "listen" {
			t.Errorf("--%s is %q after loading the example, want the default %q", f.Name, f.Value.String(), f.DefValue)
		}
	})
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "allow-anonymous" {
			t.Error("the example gives --allow-anonymous, which overrides the loopback default")
		}
	})
}
