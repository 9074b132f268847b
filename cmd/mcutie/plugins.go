package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/hooks/aggregate"
	"github.com/mcutie/mcutie/hooks/httpauth"
	"github.com/mcutie/mcutie/hooks/rewrite"
	"github.com/mcutie/mcutie/hooks/webhook"
)

// The --plugins file: the hook registry's settings and the plugins, in
// the order their hooks run (docs/hooks.md):
//
//	hooks:
//	  workers: 4     # Connect hooks at once
//	  queue: 1024    # CONNECTs waiting for a worker
//	  timeout: 5s    # a Connect decision past it refuses the CONNECT
//	plugins:
//	  - type: httpauth
//	    url: http://auth.local/connect
//	  - type: aggregate
//	    rules:
//	      - {filter: sensors/+/temp, output: stats/temp, count: 10}
//
// Every key is checked: an unknown key, a value of the wrong type or a
// setting a plugin refuses stops the start with the file's line.

// hookSettings is the file's hooks: section.
type hookSettings struct {
	Workers int           `yaml:"workers"`
	Queue   int           `yaml:"queue"`
	Timeout time.Duration `yaml:"timeout"`
}

// pluginKinds make a plugin from its YAML node; each decodes into its
// package's Config.
var pluginKinds = map[string]func(n *yaml.Node, log *slog.Logger) (hooks.Hook, error){
	"httpauth": func(n *yaml.Node, log *slog.Logger) (hooks.Hook, error) {
		var c httpauth.Config
		if err := decodeStrict(n, &c); err != nil {
			return nil, err
		}
		c.Logger = log
		return httpauth.New(c)
	},
	"webhook": func(n *yaml.Node, log *slog.Logger) (hooks.Hook, error) {
		var c webhook.Config
		if err := decodeStrict(n, &c); err != nil {
			return nil, err
		}
		c.Logger = log
		return webhook.New(c)
	},
	"aggregate": func(n *yaml.Node, log *slog.Logger) (hooks.Hook, error) {
		var c aggregate.Config
		if err := decodeStrict(n, &c); err != nil {
			return nil, err
		}
		c.Logger = log
		return aggregate.New(c)
	},
	"rewrite": func(n *yaml.Node, _ *slog.Logger) (hooks.Hook, error) {
		var c rewrite.Config
		if err := decodeStrict(n, &c); err != nil {
			return nil, err
		}
		return rewrite.New(c)
	},
}

// plugins are the hooks loaded from --plugins (none without it).
type plugins struct {
	reg     *hooks.Registry
	writers []func(io.Writer)
	names   []string
	// needBroker are the plugins that publish (aggregate): they get the
	// broker once it is made.
	needBroker []interface{ SetPublisher(aggregate.Publisher) }
}

// loadPlugins reads --plugins and sets the broker options' Hooks and the
// metrics writers; code is the exit code when it ends the run (-1: go
// on). The caller stops the plugins after the broker (plugins.stop).
func loadPlugins(cfg *config, log *slog.Logger) (*plugins, int) {
	if cfg.pluginsFile == "" {
		return &plugins{}, -1
	}
	ps, err := readPlugins(cfg.pluginsFile, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcutie:", err)
		return nil, 2
	}
	cfg.opts.Hooks = ps.reg
	cfg.hookMetrics = ps.writers
	log.Info("plugins loaded", "file", cfg.pluginsFile, "plugins", strings.Join(ps.names, ","))
	return ps, -1
}

// attach hands the broker to the plugins that publish.
func (ps *plugins) attach(b *broker.Broker) {
	for _, p := range ps.needBroker {
		p.SetPublisher(b)
	}
}

// stop stops the registry and the plugins (after the broker).
func (ps *plugins) stop(log *slog.Logger) {
	if ps == nil || ps.reg == nil {
		return
	}
	if err := ps.reg.Stop(); err != nil {
		log.Warn("stopping the plugins", "err", err)
	}
}

// readPlugins parses and checks the file at path and starts its plugins
// in a new Registry.
func readPlugins(path string, log *slog.Logger) (*plugins, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the plugins file: %w", err)
	}
	ps, err := parsePlugins(raw, log)
	if err != nil {
		return nil, fmt.Errorf("plugins file %s: %w", path, err)
	}
	return ps, nil
}

// parsePlugins is readPlugins on the file's bytes. Its errors start with
// "line N:".
func parsePlugins(raw []byte, log *slog.Logger) (*plugins, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty: want a plugins: list")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, lineErr(root, "want a mapping with hooks: and plugins:")
	}
	var hs hookSettings
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "hooks":
			if err := decodeStrict(v, &hs); err != nil {
				return nil, withKind("hooks", err)
			}
			if hs.Workers < 0 || hs.Queue < 0 || hs.Timeout < 0 {
				return nil, lineErr(v, "hooks: workers, queue and timeout must not be negative")
			}
		case "plugins":
			if v.Kind != yaml.SequenceNode {
				return nil, lineErr(v, "plugins: want a list")
			}
			list = v
		default:
			return nil, lineErr(k, "unknown key %q (want hooks or plugins)", k.Value)
		}
	}
	if list == nil || len(list.Content) == 0 {
		return nil, lineErr(root, "no plugins: list")
	}
	ps := &plugins{reg: hooks.New(hooks.Options{Workers: hs.Workers, Queue: hs.Queue, Timeout: hs.Timeout, Logger: log})}
	// The registry's own metrics are the broker's to write
	// (broker.WriteMetrics); writers are the plugins'.
	fail := func(err error) (*plugins, error) {
		_ = ps.reg.Stop()
		return nil, err
	}
	for _, n := range list.Content {
		if n.Kind != yaml.MappingNode {
			return fail(lineErr(n, "a plugin is a mapping with a type: key"))
		}
		kind := ""
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "type" {
				kind = n.Content[i+1].Value
			}
		}
		mk, ok := pluginKinds[kind]
		if !ok {
			return fail(lineErr(n, "plugin type %q: want one of %s", kind, strings.Join(kindNames(), ", ")))
		}
		h, err := mk(withoutType(n), log)
		if err != nil {
			var fe interface{ FieldPath() string }
			if errors.As(err, &fe) {
				return fail(lineErr(find(n, fe.FieldPath()), "%s: %v", kind, err))
			}
			var te *yaml.TypeError
			if errors.As(err, &te) || strings.HasPrefix(err.Error(), "line ") {
				return fail(withKind(kind, err))
			}
			return fail(lineErr(n, "%s: %v", kind, err))
		}
		if err := ps.reg.Add(h); err != nil {
			return fail(lineErr(n, "%v", err))
		}
		ps.names = append(ps.names, h.Name())
		if w, ok := h.(interface{ WriteMetrics(io.Writer) }); ok {
			ps.writers = append(ps.writers, w.WriteMetrics)
		}
		if p, ok := h.(interface{ SetPublisher(aggregate.Publisher) }); ok {
			ps.needBroker = append(ps.needBroker, p)
		}
	}
	return ps, nil
}

func kindNames() []string {
	var ns []string
	for k := range pluginKinds {
		ns = append(ns, k)
	}
	sort.Strings(ns)
	return ns
}

// withoutType is the plugin's mapping without its type: key.
func withoutType(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "type" {
			c.Content = append(c.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &c
}

// withKind puts what (a plugin type, "hooks") after the line number of
// err's first line ("line 7: what: …"); yaml.v3's type errors are made
// to read the same.
func withKind(what string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			line, rest, _ := strings.Cut(e, ": ")
			msgs[i] = line + ": " + what + ": " + rest
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	line, rest, ok := strings.Cut(err.Error(), ": ")
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	return errors.New(line + ": " + what + ": " + rest)
}

func lineErr(n *yaml.Node, format string, a ...any) error {
	return fmt.Errorf("line %d: %s", n.Line, fmt.Sprintf(format, a...))
}

// decodeStrict decodes n into v, first refusing any key v has no field
// for (yaml.v3 checks unknown fields only when decoding bytes, and its
// Node.Decode would lose the line numbers).
func decodeStrict(n *yaml.Node, v any) error {
	if err := checkKeys(n, reflect.TypeOf(v)); err != nil {
		return err
	}
	return n.Decode(v)
}

// checkKeys checks the mappings under n against the yaml fields of t,
// recursively through structs and slices.
func checkKeys(n *yaml.Node, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeOf(time.Time{}) {
			return nil // Decode reports a wrong type
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "-" || !f.IsExported() {
				continue
			}
			if tag == "" {
				tag = strings.ToLower(f.Name)
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				return lineErr(k, "unknown key %q (want one of %s)", k.Value, strings.Join(names, ", "))
			}
			if err := checkKeys(n.Content[i+1], ft); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				if err := checkKeys(c, t.Elem()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// find returns the node at path ("rules[1].functions[0]") under the
// mapping n, or the deepest node found on the way.
func find(n *yaml.Node, path string) *yaml.Node {
	cur := n
	for _, part := range strings.Split(path, ".") {
		name, idx, _ := strings.Cut(part, "[")
		next := value(cur, name)
		if next == nil {
			return cur
		}
		cur = next
		for idx != "" {
			var num string
			num, idx, _ = strings.Cut(idx, "]")
			idx = strings.TrimPrefix(idx, "[")
			i, err := strconv.Atoi(num)
			if err != nil || cur.Kind != yaml.SequenceNode || i >= len(cur.Content) {
				return cur
			}
			cur = cur.Content[i]
		}
	}
	return cur
}

func value(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
