// Package monitoring tests deploy/: the Prometheus alerting rules (promtool check rules and
// promtool test rules with deploy/prometheus/alerts_test.yml), the Grafana dashboard's queries
// (promtool parses them), and that every metric either names is one the gateway exports: the
// names come from a live gateway's /metrics (tests/gateway), not from a list kept by hand.
package monitoring

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/credgate/credgate/tests/gateway"
)

var root = filepath.Join("..", "..")

// expectedLater are the metrics that alerts.yml may name before the gateway exports them
// (none now: caddy_credential_status_shared_state_up came with the shared state of issue 14).
// The dashboard gets no such leave. Named here one by one, so that the list cannot grow unseen.
var expectedLater = []string{}

// promtool returns promtool's path, or fails the test with how to install it (make test
// installs it).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: apt-get install -y prometheus (Debian's package; `make test` installs it when run as root)")
	}
	return p
}

func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	dir := filepath.Join(root, "deploy", "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(pt, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertIsTested: each alert of alerts.yml has a case in alerts_test.yml that expects it
// to fire.
func TestEveryAlertIsTested(t *testing.T) {
	tests, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(tests, &doc); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range doc.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	for _, r := range alertRules(t) {
		if !fires[r.Alert] {
			t.Errorf("alert %s: no case of alerts_test.yml expects it to fire", r.Alert)
		}
	}
}

type rule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func alertRules(t *testing.T) []rule {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	var out []rule
	for _, g := range doc.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("alerts.yml: no rule")
	}
	return out
}

// dashboardQueries returns the PromQL of every panel target and of every query variable of the
// dashboard, with Grafana's variables replaced so that Prometheus can parse it.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "credgate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(src, &dash); err != nil {
		t.Fatal(err)
	}
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$provider", ".*")
	var out []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, grafana.Replace(tg.Expr))
		}
	}
	// label_values(<metric>, <label>): the metric is a selector Prometheus can parse.
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)["query"].(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable query %q: want label_values(<metric>, <label>)", q)
			continue
		}
		out = append(out, grafana.Replace(m[1]))
	}
	return out
}

// TestDashboardQueriesParse has promtool parse the dashboard's queries, as recording rules.
func TestDashboardQueriesParse(t *testing.T) {
	pt := promtool(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range dashboardQueries(t) {
		qj, _ := json.Marshal(q) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: dashboard:query%d\n        expr: %s\n", i, qj)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pt, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules (the dashboard's queries): %v\n%s\n%s", err, out, b.String())
	}
}

// metricNames returns the metric names a PromQL expression selects: the identifiers left once
// strings, label matchers, ranges and label lists are cut, that are not a function,
// aggregation or keyword.
func metricNames(expr string) []string {
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`"(\\.|[^"\\])*"|'(\\.|[^'\\])*'`),                               // strings
		regexp.MustCompile(`\{[^}]*\}`),                                                     // label matchers
		regexp.MustCompile(`\[[^\]]*\]`),                                                    // ranges
		regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`), // label lists
	} {
		expr = re.ReplaceAllString(expr, " ")
	}
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true}
	var names []string
	ident := regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	number := regexp.MustCompile(`[0-9.]$`)
	for _, loc := range ident.FindAllStringIndex(expr, -1) {
		tok := expr[loc[0]:loc[1]]
		if strings.HasSuffix(tok, "(") || keywords[strings.ToLower(tok)] {
			continue // a function or an aggregation, or a keyword
		}
		if loc[0] > 0 && number.MatchString(expr[:loc[0]]) {
			continue // the exponent of a number such as 1e3
		}
		names = append(names, tok)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.99, sum by (le, provider) (rate(a_bucket{x="}", y=~"b|c"}[5m]))) / on (provider) group_left (z) b offset 5m > 1e3 and bool c`)
	if want := []string{"a_bucket", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("metricNames: %q, want %q", got, want)
	}
}

// TestMetricsExist checks that every metric the alerts and the dashboard name is one the
// gateway exports: it starts the gateway with make run's config, sends requests that touch
// every collector, and reads the families off its /metrics (# TYPE lines).
func TestMetricsExist(t *testing.T) {
	dir := t.TempDir()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	bins, err := gateway.Build(abs, dir)
	if err != nil {
		t.Fatal(err)
	}
	in := bins.Start(t, "")
	for _, path := range []string{
		"/credentials/12345/status", "/credentials/12345/status", // a probe, then the cache
		"/credentials/abc/status", // no owner
	} {
		resp, err := http.Get(in.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get("http://localhost:" + in.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exported := exportedNames(t, resp.Body)

	later := map[string]bool{}
	for _, n := range expectedLater {
		later[n] = true
	}
	usedLater := map[string]bool{}
	check := func(where, expr string, allowLater bool) {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", where, expr)
		}
		for _, n := range names {
			switch {
			case exported[n]:
			case allowLater && later[n]:
				usedLater[n] = true
			default:
				t.Errorf("%s: %s is not a metric the gateway exports (%q)", where, n, expr)
			}
		}
	}
	for _, r := range alertRules(t) {
		check("alerts.yml "+r.Alert, r.Expr, true)
	}
	for _, q := range dashboardQueries(t) {
		check("grafana/credgate.json", q, false)
	}
	for _, n := range expectedLater {
		if exported[n] {
			t.Errorf("%s is exported now: take it off expectedLater", n)
		} else if !usedLater[n] {
			t.Errorf("%s is on expectedLater but alerts.yml does not name it", n)
		}
	}
	var credgate []string
	for n := range exported {
		if strings.HasPrefix(n, "caddy_credential_status_") {
			credgate = append(credgate, n)
		}
	}
	sort.Strings(credgate)
	t.Logf("credgate's exported series names: %s", strings.Join(credgate, " "))
}

// exportedNames reads the # TYPE lines of a Prometheus text exposition: the names of the
// families, with the series names of histograms and summaries (_bucket, _sum, _count).
func exportedNames(t *testing.T, r io.Reader) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		switch f[3] {
		case "histogram":
			names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
		case "summary":
			names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("/metrics: no # TYPE line")
	}
	return names
}
