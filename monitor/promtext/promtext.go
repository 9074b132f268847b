package promtext

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Family is one metric family: name, type and help text. It is a value
// declared once (usually in a package-level var) and shared by every
// scrape.
type Family struct {
	name, typ, help string
}

// Counter declares a counter family. name must end in _total.
func Counter(name, help string) Family {
	if !strings.HasSuffix(name, "_total") {
		panic("BUG: promtext: counter " + name + " does not end in _total")
	}
	return newFamily(name, "counter", help)
}

// Gauge declares a gauge family.
func Gauge(name, help string) Family { return newFamily(name, "gauge", help) }

// HistogramFamily declares a histogram family; write it with
// Family.Histogram.
func HistogramFamily(name, help string) Family { return newFamily(name, "histogram", help) }

func newFamily(name, typ, help string) Family {
	if !validName(name) {
		panic("BUG: promtext: invalid metric name " + strconv.Quote(name))
	}
	if help == "" {
		panic("BUG: promtext: " + name + " has no help text")
	}
	return Family{name: name, typ: typ, help: help}
}

// Name is the family's name.
func (f Family) Name() string { return f.name }

// Type is "counter", "gauge" or "histogram".
func (f Family) Type() string { return f.typ }

// Help is the help text.
func (f Family) Help() string { return f.help }

// Header writes the family's "# HELP" and "# TYPE" lines. Write it before
// the family's samples (Merge drops repeats).
func (f Family) Header(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
}

// Write writes the header and one sample without labels.
func (f Family) Write(w io.Writer, v uint64) {
	f.Header(w)
	f.Sample(w, "", v)
}

// WriteFloat writes the header and one sample without labels.
func (f Family) WriteFloat(w io.Writer, v float64) {
	f.Header(w)
	f.SampleFloat(w, "", v)
}

// Sample writes one sample; labels is "" or a label set from Labels.
func (f Family) Sample(w io.Writer, labels string, v uint64) {
	fmt.Fprintf(w, "%s%s %d\n", f.name, labels, v)
}

// SampleFloat writes one sample with a float value.
func (f Family) SampleFloat(w io.Writer, labels string, v float64) {
	fmt.Fprintf(w, "%s%s %s\n", f.name, labels, formatFloat(v))
}

// Histogram writes h's buckets, sum and count under the family's name,
// with labels (from Labels, or "") on every series. It writes no header:
// call Header once before the family's first Histogram.
func (f Family) Histogram(w io.Writer, labels string, h *Histogram) {
	counts, sum := h.snapshot()
	var cum uint64
	for i, b := range h.bounds {
		cum += counts[i]
		fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, withLabel(labels, "le", formatFloat(b)), cum)
	}
	cum += counts[len(h.bounds)]
	fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, withLabel(labels, "le", "+Inf"), cum)
	fmt.Fprintf(w, "%s_sum%s %s\n", f.name, labels, formatFloat(sum))
	fmt.Fprintf(w, "%s_count%s %d\n", f.name, labels, cum)
}

// Labels formats label pairs (name, value, name, value, …) as a label set,
// `{name="value",…}`, escaping the values as the text format requires.
// Names must be valid label names; an odd count is a BUG.
func Labels(kv ...string) string {
	if len(kv)%2 != 0 {
		panic("BUG: promtext: Labels takes name, value pairs")
	}
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// withLabel adds one pair to a label set from Labels (or "").
func withLabel(labels, name, value string) string {
	pair := name + `="` + escapeLabel(value) + `"`
	if labels == "" {
		return "{" + pair + "}"
	}
	return labels[:len(labels)-1] + "," + pair + "}"
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

// formatFloat formats a value as the text format reads it.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// validName reports whether s is a valid metric name,
// [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
