package promtext

import (
	"bytes"
	"io"
	"strings"
)

// Merge writes the exposition src to w with each family's samples grouped
// under one "# HELP" and one "# TYPE" line, in the order the families
// first appear. It keeps the first non-empty HELP text and the first TYPE
// of each family, fills an empty HELP from RuntimeHelp (and corrects the
// runtime metrics' types that are known wrong), drops other
// comments and blank lines, and keeps the samples (and their order within
// a family) as they are. A histogram's or summary's _bucket, _sum and
// _count series go with their family when it has a TYPE line.
func Merge(w io.Writer, src []byte) error {
	type family struct {
		help, typ string
		hasHelp   bool
		samples   [][]byte
	}
	fams := map[string]*family{}
	var order []string
	get := func(name string) *family {
		f := fams[name]
		if f == nil {
			f = &family{}
			fams[name] = f
			order = append(order, name)
		}
		return f
	}
	lines := bytes.Split(src, []byte("\n"))
	// Metadata first: a family's TYPE decides where its _bucket/_sum/_count
	// samples go, wherever in src it is.
	for _, l := range lines {
		kind, name, rest, ok := metaLine(l)
		if !ok {
			continue
		}
		f := get(name)
		switch kind {
		case "HELP":
			if !f.hasHelp && rest != "" {
				f.help, f.hasHelp = rest, true
			}
		case "TYPE":
			if f.typ == "" {
				f.typ = rest
			}
		}
	}
	for _, l := range lines {
		if len(bytes.TrimSpace(l)) == 0 || l[0] == '#' {
			continue
		}
		name := sampleName(l)
		fam := name
		if f := fams[name]; f == nil || f.typ == "" {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				base, ok := strings.CutSuffix(name, suf)
				if b := fams[base]; ok && b != nil && (b.typ == "histogram" || b.typ == "summary") {
					fam = base
					break
				}
			}
		}
		f := get(fam)
		f.samples = append(f.samples, l)
	}
	var out bytes.Buffer
	for _, name := range order {
		f := fams[name]
		if len(f.samples) == 0 {
			continue
		}
		help := f.help
		if !f.hasHelp {
			help = escapeHelp(RuntimeHelp[name])
		}
		if help != "" {
			out.WriteString("# HELP " + name + " " + help + "\n")
		}
		if t, ok := runtimeTypes[name]; ok {
			f.typ = t
		}
		if f.typ != "" {
			out.WriteString("# TYPE " + name + " " + f.typ + "\n")
		}
		for _, s := range f.samples {
			out.Write(s)
			out.WriteByte('\n')
		}
	}
	_, err := w.Write(out.Bytes())
	return err
}

// metaLine splits "# HELP name text" and "# TYPE name type".
func metaLine(l []byte) (kind, name, rest string, ok bool) {
	s, found := strings.CutPrefix(string(l), "# ")
	if !found {
		return "", "", "", false
	}
	kind, s, _ = strings.Cut(s, " ")
	if kind != "HELP" && kind != "TYPE" {
		return "", "", "", false
	}
	name, rest, _ = strings.Cut(s, " ")
	return kind, name, strings.TrimSpace(rest), name != ""
}

// sampleName is a sample line's metric name (up to '{' or a space).
func sampleName(l []byte) string {
	i := bytes.IndexAny(l, "{ \t")
	if i < 0 {
		return string(l)
	}
	return string(l[:i])
}
