package promtext

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Parsed is one family read by Parse.
type Parsed struct {
	Name, Type, Help string
	Samples          []Sample
}

// Sample is one sample line.
type Sample struct {
	Name   string            // the series name: the family's, or with _bucket, _sum, _count
	Labels map[string]string // nil when none
	Value  float64
}

// Parse reads an exposition strictly, as tests and tools check one: every
// family opens with exactly one "# HELP" (with text) and one "# TYPE" line
// before its samples, its samples are contiguous, no series repeats, label
// values are quoted and escaped, counters end in _total, and a histogram's
// buckets are cumulative with a +Inf bucket equal to its _count (when it
// has one). The
// first problem is returned with its line number.
func Parse(body []byte) ([]Parsed, error) {
	var fams []Parsed
	seenFam := map[string]bool{}
	seenSeries := map[string]bool{}
	var cur *Parsed
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	var pendingHelp string
	var pendingHelpName string
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		if kind, name, rest, ok := metaLine([]byte(line)); ok {
			switch kind {
			case "HELP":
				if pendingHelpName != "" {
					return nil, fmt.Errorf("line %d: HELP for %s follows HELP for %s without a TYPE", n, name, pendingHelpName)
				}
				if seenFam[name] {
					return nil, fmt.Errorf("line %d: second HELP for %s (its samples must be together)", n, name)
				}
				if rest == "" {
					return nil, fmt.Errorf("line %d: HELP for %s has no text", n, name)
				}
				pendingHelp, pendingHelpName = rest, name
			case "TYPE":
				if pendingHelpName != name {
					return nil, fmt.Errorf("line %d: TYPE for %s without a HELP line just before it", n, name)
				}
				switch rest {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					return nil, fmt.Errorf("line %d: unknown type %q for %s", n, rest, name)
				}
				if rest == "counter" && !strings.HasSuffix(name, "_total") && !legacyCounters[name] {
					return nil, fmt.Errorf("line %d: counter %s does not end in _total", n, name)
				}
				if err := closeFamily(cur); err != nil {
					return nil, err
				}
				seenFam[name] = true
				fams = append(fams, Parsed{Name: name, Type: rest, Help: pendingHelp})
				cur = &fams[len(fams)-1]
				pendingHelpName = ""
			}
			continue
		}
		if line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		if cur == nil || pendingHelpName != "" || !belongs(cur, s.Name) {
			return nil, fmt.Errorf("line %d: sample %s has no HELP and TYPE of its own (family %s)", n, s.Name, familyName(cur))
		}
		key := seriesKey(s)
		if seenSeries[key] {
			return nil, fmt.Errorf("line %d: series %s repeats", n, key)
		}
		seenSeries[key] = true
		cur.Samples = append(cur.Samples, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if pendingHelpName != "" {
		return nil, fmt.Errorf("HELP for %s without a TYPE", pendingHelpName)
	}
	return fams, closeFamily(cur)
}

// legacyCounters are counters of github.com/VictoriaMetrics/metrics' Go
// runtime metrics whose names predate the _total rule; mcutie cannot
// rename them.
var legacyCounters = map[string]bool{"go_cgo_calls_count": true, "go_gc_forced_count": true}

func familyName(p *Parsed) string {
	if p == nil {
		return "none"
	}
	return p.Name
}

func belongs(p *Parsed, name string) bool {
	if name == p.Name {
		return p.Type != "histogram"
	}
	switch p.Type {
	case "histogram":
		return name == p.Name+"_bucket" || name == p.Name+"_sum" || name == p.Name+"_count"
	case "summary":
		return name == p.Name+"_sum" || name == p.Name+"_count"
	}
	return false
}

// closeFamily checks a finished family: it has samples, and a histogram's
// buckets are cumulative and end with +Inf equal to _count, per label set.
func closeFamily(p *Parsed) error {
	if p == nil {
		return nil
	}
	if len(p.Samples) == 0 {
		return fmt.Errorf("family %s has HELP and TYPE but no samples", p.Name)
	}
	if p.Type != "histogram" {
		return nil
	}
	type series struct {
		les          []float64
		counts       []float64
		count        float64
		hasCount     bool
		hasSum, hasI bool
	}
	by := map[string]*series{}
	get := func(s Sample) *series {
		l := make(map[string]string, len(s.Labels))
		for k, v := range s.Labels {
			if k != "le" {
				l[k] = v
			}
		}
		k := seriesKey(Sample{Labels: l})
		if by[k] == nil {
			by[k] = &series{}
		}
		return by[k]
	}
	for _, s := range p.Samples {
		h := get(s)
		switch s.Name {
		case p.Name + "_bucket":
			le, ok := s.Labels["le"]
			if !ok {
				return fmt.Errorf("%s: a bucket without le", p.Name)
			}
			v, err := parseFloat(le)
			if err != nil {
				return fmt.Errorf("%s: bad le %q", p.Name, le)
			}
			if math.IsInf(v, 1) {
				h.hasI = true
			}
			h.les = append(h.les, v)
			h.counts = append(h.counts, s.Value)
		case p.Name + "_sum":
			h.hasSum = true
		case p.Name + "_count":
			h.count, h.hasCount = s.Value, true
		}
	}
	for k, h := range by {
		// _sum and _count may be missing: VictoriaMetrics/metrics leaves
		// them out of the Go runtime's histograms, whose sum is unknown.
		if !h.hasI {
			return fmt.Errorf("%s%s: needs a +Inf bucket", p.Name, k)
		}
		idx := make([]int, len(h.les))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return h.les[idx[a]] < h.les[idx[b]] })
		prev := 0.0
		for _, i := range idx {
			if h.counts[i] < prev {
				return fmt.Errorf("%s%s: bucket le=%g (%g) below the one before (%g): buckets must be cumulative", p.Name, k, h.les[i], h.counts[i], prev)
			}
			prev = h.counts[i]
		}
		if h.hasCount && prev != h.count {
			return fmt.Errorf("%s%s: +Inf bucket %g != _count %g", p.Name, k, prev, h.count)
		}
	}
	return nil
}

// parseSample reads `name{l="v",…} value [timestamp]`.
func parseSample(line string) (Sample, error) {
	var s Sample
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("bad sample %q", line)
	}
	s.Name = line[:i]
	if !validName(s.Name) {
		return s, fmt.Errorf("bad metric name %q", s.Name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		s.Labels = map[string]string{}
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || !validLabelName(rest[:eq]) {
				return s, fmt.Errorf("bad label in %q", line)
			}
			name := rest[:eq]
			rest = rest[eq+1:]
			if !strings.HasPrefix(rest, `"`) {
				return s, fmt.Errorf("label %s not quoted in %q", name, line)
			}
			v, after, err := unquoteLabel(rest[1:])
			if err != nil {
				return s, fmt.Errorf("label %s in %q: %v", name, line, err)
			}
			if _, dup := s.Labels[name]; dup {
				return s, fmt.Errorf("label %s twice in %q", name, line)
			}
			s.Labels[name] = v
			rest = after
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				return s, fmt.Errorf("bad label set in %q", line)
			}
		}
	}
	if !strings.HasPrefix(rest, " ") {
		return s, fmt.Errorf("no space before the value in %q", line)
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return s, fmt.Errorf("bad value in %q", line)
	}
	v, err := parseFloat(fields[0])
	if err != nil {
		return s, fmt.Errorf("bad value in %q", line)
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return s, fmt.Errorf("bad timestamp in %q", line)
		}
	}
	s.Value = v
	return s, nil
}

func parseFloat(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// unquoteLabel reads a label value after its opening quote: the value and
// what follows the closing quote.
func unquoteLabel(s string) (string, string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 == len(s) {
				return "", "", fmt.Errorf("unterminated escape")
			}
			i++
			switch s[i] {
			case '\\':
				b.WriteByte('\\')
			case '"':
				b.WriteByte('"')
			case 'n':
				b.WriteByte('\n')
			default:
				return "", "", fmt.Errorf(`bad escape \%c`, s[i])
			}
		case '\n':
			return "", "", fmt.Errorf("newline in a label value")
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated label value")
}

func validLabelName(s string) bool { return validName(s) && !strings.Contains(s, ":") }

// seriesKey identifies a series: its name and sorted labels.
func seriesKey(s Sample) string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.Name)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + strconv.Quote(s.Labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}
