//go:build linux

package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chartColors by target label; others cycle through extra.
var chartColors = map[string]string{
	"mcutie":          "#1f77b4",
	"mcutie (Badger)": "#7fb3e0",
	"Mosquitto":       "#ff7f0e",
	"mochi-mqtt":      "#2ca02c",
}

var extraColors = []string{"#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// bar is one value in a group.
type bar struct {
	label string
	value float64
}

// group is one scenario's bars.
type group struct {
	name string
	bars []bar
}

// renderChart draws two panels of grouped bars on log scales: delivered
// msg/s per scenario (not the fixed-rate ones, whose rate is the offered
// load) and p99 latency per scenario. An OwnTargets scenario's bars join
// the group of its RefScenario (mcutie on Badger next to the in-memory
// brokers).
func renderChart(ri *runInfo) string {
	var rate, p99 []group
	for _, s := range ri.Scenarios {
		if s.OwnTargets {
			continue
		}
		var rg, lg group
		rg.name, lg.name = s.ID, s.ID
		addFrom := func(sc scenario) {
			for _, t := range ri.Targets {
				r := ri.rep(sc.ID, t.Label)
				if r == nil || (r.Messages == nil && r.Retained == nil) {
					continue
				}
				rg.bars = append(rg.bars, bar{t.Label, r.delivered()})
				lg.bars = append(lg.bars, bar{t.Label, float64(r.p99()) / 1000})
			}
		}
		addFrom(s)
		for _, o := range ri.Scenarios {
			if o.OwnTargets && o.RefScenario == s.ID {
				addFrom(o)
			}
		}
		if len(rg.bars) == 0 {
			continue
		}
		if !s.FixedRate {
			rate = append(rate, rg)
		}
		p99 = append(p99, lg)
	}
	colors := map[string]string{}
	i := 0
	for _, t := range ri.Targets {
		if c, ok := chartColors[t.Label]; ok {
			colors[t.Label] = c
		} else {
			colors[t.Label] = extraColors[i%len(extraColors)]
			i++
		}
	}
	const width, panelH = 960, 330
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, 2*panelH+60, width, 2*panelH+60)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	// Legend.
	x := 70.0
	for _, t := range ri.Targets {
		fmt.Fprintf(&b, `<rect x="%.0f" y="12" width="12" height="12" fill="%s"/><text x="%.0f" y="22">%s</text>`+"\n", x, colors[t.Label], x+16, html.EscapeString(t.Label))
		x += 26 + 7*float64(len(t.Label))
	}
	panel(&b, rate, colors, 40, panelH, width, "delivered messages per second (log scale; higher is better)", func(v float64) string { return compact(v) })
	panel(&b, p99, colors, 40+panelH+10, panelH, width, "p99 latency, ms (log scale; lower is better; as-fast-as-possible scenarios include queueing)", func(v float64) string { return compactMs(v) })
	b.WriteString("</svg>\n")
	return b.String()
}

// panel draws one log-scale grouped bar chart at vertical offset top.
func panel(b *strings.Builder, groups []group, colors map[string]string, top, h, w float64, title string, label func(float64) string) {
	const left, right, bottom, head = 70.0, 20.0, 40.0, 28.0
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="13" font-weight="bold">%s</text>`+"\n", left, top+16, html.EscapeString(title))
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, g := range groups {
		for _, br := range g.bars {
			if br.value > 0 {
				lo, hi = math.Min(lo, br.value), math.Max(hi, br.value)
			}
		}
	}
	if math.IsInf(lo, 1) {
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f">no data</text>`+"\n", left, top+head+20)
		return
	}
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 == d0 {
		d1++
	}
	y0, y1 := top+head, top+h-bottom // plot area, top to bottom
	yOf := func(v float64) float64 {
		return y1 - (math.Log10(v)-d0)/(d1-d0)*(y1-y0)
	}
	for d := d0; d <= d1; d++ {
		y := yOf(math.Pow(10, d))
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left, y, w-right, y, left-6, y+4, label(math.Pow(10, d)))
	}
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#333"/>`+"\n", left, y1, w-right, y1)
	gw := (w - left - right) / float64(max(len(groups), 1))
	for gi, g := range groups {
		gx := left + float64(gi)*gw
		bw := gw * 0.8 / float64(len(g.bars))
		for bi, br := range g.bars {
			if br.value <= 0 {
				continue
			}
			bx := gx + gw*0.1 + float64(bi)*bw
			y := yOf(br.value)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				bx, y, bw-1, y1-y, colors[br.label], html.EscapeString(g.name), html.EscapeString(br.label), label(br.value))
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="8">%s</text>`+"\n", bx+bw/2, y-3, label(br.value))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", gx+gw/2, y1+16, html.EscapeString(g.name))
	}
}

// compact formats a rate: 950, 12k, 1.1M.
func compact(v float64) string {
	switch {
	case v >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case v >= 1e3:
		if v >= 1e5 {
			return fmt.Sprintf("%.0fk", v/1e3)
		}
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case v >= 1:
		return fmt.Sprintf("%.0f", v)
	}
	return trimZero(fmt.Sprintf("%.2f", v))
}

// compactMs formats milliseconds: 0.05, 1.2, 340, 9.9 s.
func compactMs(v float64) string {
	switch {
	case v >= 1000:
		return trimZero(fmt.Sprintf("%.1f", v/1000)) + " s"
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return trimZero(fmt.Sprintf("%.1f", v))
	case v >= 0.01:
		return trimZero(fmt.Sprintf("%.2f", v))
	}
	return trimZero(fmt.Sprintf("%.3f", v))
}

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
