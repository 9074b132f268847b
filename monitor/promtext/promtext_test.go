package promtext

import (
	"bytes"
	"strings"
	"testing"
)

func TestHistogramBucketsAreCumulative(t *testing.T) {
	h := NewHistogram(0.001, 0.01, 0.1)
	for _, v := range []float64{0.0005, 0.001, 0.002, 0.05, 0.5, 3} {
		h.Observe(v)
	}
	f := HistogramFamily("x_seconds", "A latency.")
	var b bytes.Buffer
	f.Header(&b)
	f.Histogram(&b, Labels("hook", "a"), h)
	want := `# HELP x_seconds A latency.
# TYPE x_seconds histogram
x_seconds_bucket{hook="a",le="0.001"} 2
x_seconds_bucket{hook="a",le="0.01"} 3
x_seconds_bucket{hook="a",le="0.1"} 4
x_seconds_bucket{hook="a",le="+Inf"} 6
x_seconds_sum{hook="a"} 3.5535
x_seconds_count{hook="a"} 6
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	if _, err := Parse(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func TestLabelsEscape(t *testing.T) {
	f := func(v, want string) {
		t.Helper()
		if got := Labels("l", v); got != want {
			t.Fatalf("Labels(%q) = %s, want %s", v, got, want)
		}
		var b bytes.Buffer
		c := Counter("c_total", "C.")
		c.Header(&b)
		c.Sample(&b, Labels("l", v), 1)
		p, err := Parse(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if got := p[0].Samples[0].Labels["l"]; got != v {
			t.Fatalf("round trip of %q gave %q", v, got)
		}
	}
	f("plain", `{l="plain"}`)
	f(`a"b`, `{l="a\"b"}`)
	f(`a\b`, `{l="a\\b"}`)
	f("a\nb", `{l="a\nb"}`)
	f("sensor/温度", `{l="sensor/温度"}`)
}

func TestCounterNeedsTotal(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Counter accepted a name without _total")
		}
	}()
	Counter("mcutie_things", "Things.")
}

// TestMergeGroupsFamilies: samples of one family written by two writers,
// interleaved with another family, end up under one HELP and TYPE; an
// empty HELP from VictoriaMetrics/metrics is filled in for a runtime
// metric; a header without samples disappears.
func TestMergeGroupsFamilies(t *testing.T) {
	src := `# HELP a_total A.
# TYPE a_total counter
a_total{hook="1"} 1
# HELP b B.
# TYPE b gauge
b 2
# HELP empty_total E.
# TYPE empty_total counter
# HELP a_total A.
# TYPE a_total counter
a_total{hook="2"} 3
# HELP go_goroutines
# TYPE go_goroutines gauge
go_goroutines 7
# HELP h H.
# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 1
h_sum 0.5
h_count 1
# HELP process_io_read_bytes_total
# TYPE process_io_read_bytes_total gauge
process_io_read_bytes_total 10
`
	var out bytes.Buffer
	if err := Merge(&out, []byte(src)); err != nil {
		t.Fatal(err)
	}
	want := `# HELP a_total A.
# TYPE a_total counter
a_total{hook="1"} 1
a_total{hook="2"} 3
# HELP b B.
# TYPE b gauge
b 2
# HELP go_goroutines Goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 7
# HELP h H.
# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 1
h_sum 0.5
h_count 1
# HELP process_io_read_bytes_total Bytes the process read (read(2) and similar), page cache included.
# TYPE process_io_read_bytes_total counter
process_io_read_bytes_total 10
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	if _, err := Parse(out.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// TestParseRefuses: each exposition breaks one rule Parse enforces.
func TestParseRefuses(t *testing.T) {
	f := func(src, wantErr string) {
		t.Helper()
		_, err := Parse([]byte(src))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("Parse(%q) = %v, want an error containing %q", src, err, wantErr)
		}
	}
	f("x 1\n", "has no HELP and TYPE")
	f("# HELP x\n# TYPE x gauge\nx 1\n", "has no text")
	f("# HELP x X.\nx 1\n", "has no HELP and TYPE")
	f("# HELP x X.\n# TYPE x counter\nx 1\n", "does not end in _total")
	f("# HELP x X.\n# TYPE x gauge\nx 1\n# HELP y Y.\n# TYPE y gauge\ny 1\n# HELP x X.\n# TYPE x gauge\n", "second HELP")
	f("# HELP x X.\n# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n", "repeats")
	f("# HELP x X.\n# TYPE x gauge\nx{a=1} 1\n", "not quoted")
	f("# HELP x X.\n# TYPE x gauge\n", "no samples")
	f("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "cumulative")
	f("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "+Inf")
	f("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n", "!= _count")
}

// Observe runs once per store commit and per Connect hook call: it must
// not allocate.
func TestObserveAllocatesNothing(t *testing.T) {
	h := NewHistogram(ExponentialBounds(0.0001, 2, 16)...)
	if n := testing.AllocsPerRun(1000, func() { h.Observe(0.003) }); n != 0 {
		t.Fatalf("Observe allocates %v times", n)
	}
	if h.Count() != 1001 {
		t.Fatalf("count %d", h.Count())
	}
}
