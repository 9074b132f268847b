package e2e

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"gopkg.in/yaml.v3"

	"github.com/mcutie/mcutie/internal/redistest"
	"github.com/mcutie/mcutie/monitor/promtext"
)

// /metrics as Prometheus and Grafana see it: a live mcutie binary, with a
// Badger store, the plugins and real traffic, is scraped over HTTP, and
// the exposition is checked against the rules of docs/observability.md,
// the metrics table there, the alerting rules in packaging/prometheus and
// the dashboard in packaging/grafana.

// notExposedHere are documented families the broker of
// TestMetricsExposition cannot show, and why. A new feature's metrics
// should be exposed by that broker (configure the feature in
// startExposition) rather than listed here.
var notExposedHere = map[string]string{
	"mcutie_store_redis_up": "only with --store redis (TestMetricsExpositionRedis)",
}

// legacyRuntimeNames are github.com/VictoriaMetrics/metrics' runtime
// metrics whose names break Prometheus' conventions; mcutie cannot rename
// them, so promtool's complaints about these (and only these) are
// expected.
var legacyRuntimeNames = []string{"go_cgo_calls_count", "go_gc_forced_count", "go_cpu_count"}

// exposition is one scrape of a live broker.
type exposition struct {
	body     string
	families map[string]promtext.Parsed
	series   map[string]bool // sample names: families, and _bucket/_sum/_count
}

// startExposition runs the binary with a Badger store, the plugins
// (httpauth with its ACL cache, webhook, aggregate) against httptest
// endpoints, a bridge, the management API and a cluster of one node (every
// feature whose families appear only when it is on), drives traffic that makes every family appear (a refused
// CONNECT, QoS 1 to a persistent session, an aggregate rule's input), and
// scrapes /metrics once the store has committed and the refusal is
// counted.
func startExposition(t *testing.T) *exposition {
	t.Helper()
	auth := httptest.NewServer(&authService{})
	t.Cleanup(auth.Close)
	hook := httptest.NewServer(&eventSink{})
	t.Cleanup(hook.Close)
	dir := t.TempDir()
	file := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(`plugins:
  - type: httpauth
    url: %[1]s/connect
    acl_url: %[1]s/acl
    default: allow
  - type: aggregate
    rules:
      - {filter: ann/+/temp, output: ann/avg, count: 2}
  - type: webhook
    url: %[2]s
    events: [connected, published]
    batch_size: 1
`, auth.URL, hook.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	// A bridge whose remote is down: its families are there (up 0,
	// connect errors counting).
	bridges := filepath.Join(dir, "bridges.yaml")
	if err := os.WriteFile(bridges, []byte(fmt.Sprintf(`bridges:
  - name: expo
    address: tcp://127.0.0.1:%d
    reconnect: {min: 50ms, max: 200ms}
    topics: [{pattern: "expo/#", direction: both, qos: 1}]
`, freePort(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := durStartProc(t, dir, freePort(t), "--plugins", file, "--bridges", bridges, "--metrics-listen", metricsAddr, "--sys-interval", "200ms", "--admin",
		"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--cluster-sessions") // a cluster of one: its families are exposed
	t.Cleanup(func() { p.term(t) })

	if _, ack, err := v5TryConnect(t, p.Addr, &paho.Connect{ClientID: "expo-bad", CleanStart: true, Username: "banned", UsernameFlag: true}); err == nil || ack == nil || ack.ReasonCode != 0x8A {
		t.Fatalf("banned: %v %+v; want CONNACK 0x8A from httpauth", err, ack)
	}
	cp := func(id string, clean bool) *paho.Connect {
		return &paho.Connect{ClientID: id, CleanStart: clean, Username: "ann", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: paho.Uint32(300)}}
	}
	sub, _ := v5Connect(t, p.Addr, cp("expo-sub", false)) // persistent: its QoS 1 messages go to the store
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ann/#", QoS: 1}}})
	pub, _ := v5Connect(t, p.Addr, cp("expo-pub", true))
	for _, v := range []string{"20", "22"} {
		pub.publish(t, &paho.Publish{Topic: "ann/s1/temp", QoS: 1, Payload: []byte(v)})
	}
	for range 3 { // two readings and their average
		sub.recv(t)
	}

	url := "http://" + metricsAddr + "/metrics"
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := httpGet(t, url)
		fams, err := promtext.Parse([]byte(body))
		if err != nil {
			t.Fatalf("/metrics is not a valid exposition (declare each family with monitor/promtext, which writes HELP and TYPE; see docs/observability.md#naming): %v\n%s", err, body)
		}
		e := &exposition{body: body, families: map[string]promtext.Parsed{}, series: map[string]bool{}}
		for _, f := range fams {
			e.families[f.Name] = f
			for _, s := range f.Samples {
				e.series[s.Name] = true
			}
		}
		if e.has(`mcutie_connects_refused_total`) && e.value("mcutie_store_commit_seconds_count") > 0 && e.value("mcutie_sys_messages_published_total") > 0 {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 20s, /metrics never showed the refused CONNECT, a store commit and a $SYS round:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *exposition) has(family string) bool { _, ok := e.families[family]; return ok }

// value is the sum of the samples named name.
func (e *exposition) value(name string) float64 {
	var v float64
	for _, f := range e.families {
		for _, s := range f.Samples {
			if s.Name == name {
				v += s.Value
			}
		}
	}
	return v
}

// TestMetricsExposition checks a live /metrics: it parses strictly
// (promtext.Parse: one HELP with text and one TYPE before each family's
// samples, families together, no repeated series, cumulative histogram
// buckets); every mcutie family is named by the rule (counters end in
// _total, histograms have le buckets); docs/observability.md's table lists
// exactly the families exposed, with their types and labels; every metric
// the alerting rules and the dashboard use is one the broker exposes; and
// promtool (Debian's prometheus package) finds nothing to say about it but
// the runtime metrics mcutie cannot rename.
func TestMetricsExposition(t *testing.T) {
	e := startExposition(t)

	t.Run("naming", func(t *testing.T) {
		for name, f := range e.families {
			if !strings.HasPrefix(name, "mcutie_") {
				continue
			}
			if (f.Type == "counter") != strings.HasSuffix(name, "_total") {
				t.Errorf("%s is a %s: counters, and only counters, end in _total", name, f.Type)
			}
			for _, bad := range []string{"_ms", "_milliseconds", "_kb", "_kib", "_mb", "_len", "_bytes_received", "_bytes_sent"} {
				if strings.Contains(name, bad+"_") || strings.HasSuffix(name, bad) {
					t.Errorf("%s: use base units and full words (_seconds, _bytes, _length; received_bytes, not bytes_received)", name)
				}
			}
			if f.Type == "histogram" && (!e.series[name+"_bucket"] || !e.series[name+"_sum"] || !e.series[name+"_count"]) {
				t.Errorf("histogram %s lacks its _bucket, _sum or _count series", name)
			}
		}
		for _, s := range e.families["mcutie_store_commit_seconds"].Samples {
			if _, ok := s.Labels["vmrange"]; ok {
				t.Fatalf("mcutie_store_commit_seconds has vmrange buckets: %v", s.Labels)
			}
		}
	})

	t.Run("documented", func(t *testing.T) {
		doc := readMetricsTable(t)
		var missing, stale []string
		for name, f := range e.families {
			if !strings.HasPrefix(name, "mcutie_") {
				continue
			}
			row, ok := doc[name]
			if !ok {
				missing = append(missing, name)
				continue
			}
			if row.typ != f.Type {
				t.Errorf("docs/observability.md: %s is a %s, the table says %s", name, f.Type, row.typ)
			}
			if got := labelNames(f); got != row.labels {
				t.Errorf("docs/observability.md: %s has labels [%s], the table says [%s]", name, got, row.labels)
			}
		}
		for name := range doc {
			if _, ok := e.families[name]; !ok && notExposedHere[name] == "" {
				stale = append(stale, name)
			}
		}
		sort.Strings(missing)
		sort.Strings(stale)
		if len(missing) > 0 {
			t.Errorf("exposed but not in docs/observability.md's metrics table (add a row: name, type, labels, meaning):\n  %s", strings.Join(missing, "\n  "))
		}
		if len(stale) > 0 {
			t.Errorf("in docs/observability.md's metrics table but not exposed (remove the row, or make this test's broker expose it):\n  %s", strings.Join(stale, "\n  "))
		}
	})

	t.Run("alerts_and_dashboard_use_exposed_metrics", func(t *testing.T) {
		exprs := alertExprs(t)
		exprs = append(exprs, dashboardExprs(t)...)
		if len(exprs) < 20 {
			t.Fatalf("only %d expressions found in the alerts and the dashboard", len(exprs))
		}
		used := 0
		for _, ex := range exprs {
			for _, name := range metricNamesIn(ex) {
				used++
				if !e.series[name] {
					hint := ""
					if f, ok := e.families[name]; ok && f.Type == "histogram" {
						hint = " (a histogram: use " + name + "_bucket, _sum or _count)"
					}
					t.Errorf("%s is not a series of a live /metrics%s, in: %s", name, hint, ex)
				}
			}
		}
		if used == 0 {
			t.Fatal("no metric names found in the expressions")
		}
	})

	t.Run("promtool_check_metrics", func(t *testing.T) {
		promtool := lookPromtool(t)
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(e.body)
		out, _ := cmd.CombinedOutput() // exit status 3 for lint findings: judged by the lines
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line == "" || legacyRuntimeLine(line) {
				continue
			}
			t.Errorf("promtool check metrics: %s", line)
		}
	})
}

func legacyRuntimeLine(line string) bool {
	for _, n := range legacyRuntimeNames {
		if strings.HasPrefix(line, n+" ") {
			return true
		}
	}
	return false
}

func lookPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
	}
	return p
}

// docRow is one row of the metrics table.
type docRow struct{ typ, labels string }

// readMetricsTable reads docs/observability.md's metrics table: rows
// "| `name` | type | `label`, … | meaning |", one family each.
func readMetricsTable(t *testing.T) map[string]docRow {
	t.Helper()
	b, err := os.ReadFile("../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]docRow{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `mcutie_") {
			continue
		}
		cells := strings.Split(line, "|") // "", name, type, labels, meaning…
		if len(cells) < 5 {
			t.Fatalf("metrics table row with fewer than 4 cells: %s", line)
		}
		cells = cells[1:]
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		name := strings.Trim(cells[0], "`")
		if strings.ContainsAny(name, "{, ") {
			t.Fatalf("metrics table: one family per row, without labels in the name: %s", line)
		}
		if _, dup := rows[name]; dup {
			t.Fatalf("metrics table lists %s twice", name)
		}
		var labels []string
		for _, l := range strings.Split(cells[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		sort.Strings(labels)
		rows[name] = docRow{typ: cells[1], labels: strings.Join(labels, ",")}
	}
	if len(rows) < 50 {
		t.Fatalf("docs/observability.md: only %d metrics table rows found", len(rows))
	}
	return rows
}

// labelNames are the label names a family's samples carry (le aside),
// sorted and joined.
func labelNames(f promtext.Parsed) string {
	set := map[string]bool{}
	for _, s := range f.Samples {
		for k := range s.Labels {
			if k != "le" {
				set[k] = true
			}
		}
	}
	var names []string
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// metricNameRE finds metric names in PromQL, crudely: identifiers of the
// families mcutie serves, not preceded by an identifier character (nor $,
// as in $__rate_interval). Label values are quoted and never start so.
var metricNameRE = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:$])((?:mcutie|process|go)_[a-zA-Z0-9_:]*)`)

func metricNamesIn(expr string) []string {
	var names []string
	for _, m := range metricNameRE.FindAllStringSubmatch(expr, -1) {
		names = append(names, m[1])
	}
	return names
}

const (
	alertsFile    = "../packaging/prometheus/mcutie-alerts.yaml"
	dashboardFile = "../packaging/grafana/mcutie-dashboard.json"
)

// alertExprs are the expressions of every rule in the alerts file.
func alertExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Expr == "" {
				t.Fatalf("alert %s has no expr", r.Alert)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// dashboardExprs are the PromQL queries of every panel target and
// template variable in the dashboard, which must be a well-formed Grafana
// dashboard: unique panel ids, every panel on the 24-column grid, with
// targets that have a refId and the dashboard's data source variable.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource map[string]any `json:"datasource"`
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int      `json:"id"`
			Type    string   `json:"type"`
			Title   string   `json:"title"`
			Targets []target `json:"targets"`
			GridPos struct {
				H, W, X, Y int
			} `json:"gridPos"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Fatalf("%s: no uid or title", dashboardFile)
	}
	var exprs []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q is off the grid: %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || tg.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q: target %+v needs expr, refId and the ${datasource} variable", p.Title, tg)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok && v.Type == "query" {
			exprs = append(exprs, fmt.Sprint(q["query"]))
		}
	}
	return exprs
}

// TestAlertRulesPromtool runs promtool over the shipped Prometheus files:
// `check rules` on the alerting rules, `test rules` on their unit tests
// (each alert fires on the series it is for, and not on others), and
// `check rules` on the dashboard's queries written as recording rules,
// so a typo in a panel's PromQL fails here rather than in Grafana.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := lookPromtool(t)
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("../packaging/prometheus", "check", "rules", "mcutie-alerts.yaml")
	run("../packaging/prometheus", "test", "rules", "mcutie-alerts.test.yaml")

	// Grafana's variables, given values, make the queries plain PromQL.
	r := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, ex := range dashboardExprs(t) {
		if strings.HasPrefix(ex, "label_values(") {
			continue // a Grafana function, not PromQL
		}
		q, err := json.Marshal(r.Replace(ex))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-rules.yaml"), []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run(dir, "check", "rules", "dashboard-rules.yaml")
}

// TestMetricsExpositionRedis: on the Redis store the exposition is as
// strict, every mcutie family it has is in docs/observability.md's table
// with its type, and it has the families TestMetricsExposition cannot
// show (mcutie_store_redis_up, 1 while Redis answers).
func TestMetricsExpositionRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := durStartProc(t, t.TempDir(), freePort(t), append(redisArgs(srv, "commit"), "--metrics-listen", metricsAddr)...)
	defer p.term(t)
	sub, _ := v5Connect(t, p.Addr, &paho.Connect{ClientID: "expo-redis", CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: paho.Uint32(300)}}) // a session to store
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "r/#", QoS: 1}}})

	var fams []promtext.Parsed
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := httpGet(t, "http://"+metricsAddr+"/metrics")
		var err error
		if fams, err = promtext.Parse([]byte(body)); err != nil {
			t.Fatalf("/metrics is not a valid exposition: %v\n%s", err, body)
		}
		if strings.Contains(body, "\nmcutie_store_redis_up 1\n") && !strings.Contains(body, "\nmcutie_store_commit_seconds_count 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 20s, /metrics never showed Redis up and a commit:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	doc := readMetricsTable(t)
	got := map[string]bool{}
	for _, f := range fams {
		got[f.Name] = true
		if !strings.HasPrefix(f.Name, "mcutie_") {
			continue
		}
		if row, ok := doc[f.Name]; !ok || row.typ != f.Type {
			t.Errorf("%s (%s) is not in docs/observability.md's table with that type", f.Name, f.Type)
		}
	}
	for name, why := range notExposedHere {
		if strings.Contains(why, "--store redis") && !got[name] {
			t.Errorf("%s: not exposed on the Redis store", name)
		}
	}
}
