package integration

// The vendor tables of docs/vendors.md, row by row, through Caddy and the simulators: the test
// reads the page's tables, so that the page cannot say what the gateway does not do.

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/palisade/palisadetest"
	"github.com/credgate/credgate/adapters/prefactor/prefactortest"
	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider/providertest"
)

// vendorsDoc is the page the tables are read from.
const vendorsDoc = "../../docs/vendors.md"

// palisadeWords is the status enum of Palisade's page (seed 000): the page's table must cover
// every one of them.
var palisadeWords = []string{
	"CREATED", "ENABLED", "DISABLED", "REJECTED", "DELETED", "ERROR",
	"CREATION_APPROVAL_PENDING", "CREATION_APPROVAL_COMPLETE",
	"DELETION_APPROVAL_PENDING", "DELETION_APPROVAL_COMPLETE",
	"ENABLE_APPROVAL_PENDING", "ENABLE_APPROVAL_COMPLETE",
	"DISABLE_APPROVAL_PENDING", "DISABLE_APPROVAL_COMPLETE",
	"MODIFICATION_APPROVAL_PENDING", "MODIFICATION_APPROVAL_COMPLETE",
}

// A mdTable is one Markdown table of the page, under its ## and ### headings.
type mdTable struct {
	section, sub string // the first code span of the ## heading (or its text); the ### text
	header       []string
	rows         []mdRow
}

// A mdRow is one row of a table, by the table's normalized header names.
type mdRow struct {
	line  int
	cells map[string]string
}

var codeSpanRE = regexp.MustCompile("`([^`]*)`")

// spans returns the code spans of a cell.
func spans(cell string) []string {
	var out []string
	for _, m := range codeSpanRE.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// value is a cell's value: its first code span, else its plain text; "—" is empty.
func value(cell string) string {
	if s := spans(cell); len(s) > 0 {
		return s[0]
	}
	if c := strings.TrimSpace(cell); c != "—" {
		return c
	}
	return ""
}

// readTables reads every table of docs/vendors.md.
func readTables(t *testing.T) []mdTable {
	t.Helper()
	src, err := os.ReadFile(vendorsDoc)
	require.NoError(t, err)
	var out []mdTable
	var section, sub string
	var cur *mdTable
	for i, line := range strings.Split(string(src), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			section, sub = value(line[3:]), ""
		case strings.HasPrefix(line, "### "):
			sub = strings.TrimSpace(line[4:])
		}
		if !strings.HasPrefix(line, "|") {
			cur = nil
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		switch {
		case cur == nil:
			out = append(out, mdTable{section: section, sub: sub})
			cur = &out[len(out)-1]
			for _, c := range cells {
				cur.header = append(cur.header, strings.ToLower(strings.ReplaceAll(c, "`", "")))
			}
		case strings.HasPrefix(cells[0], "---"):
		default:
			require.Len(t, cells, len(cur.header), "%s:%d: a row of %d cells under a header of %d", vendorsDoc, i+1, len(cells), len(cur.header))
			r := mdRow{line: i + 1, cells: map[string]string{}}
			for k, c := range cells {
				r.cells[cur.header[k]] = c
			}
			cur.rows = append(cur.rows, r)
		}
	}
	return out
}

// table returns the table of a section and subsection.
func table(t *testing.T, tables []mdTable, section, sub string) mdTable {
	t.Helper()
	for _, tb := range tables {
		if tb.section == section && tb.sub == sub {
			return tb
		}
	}
	t.Fatalf("%s: no table %q under %q", vendorsDoc, sub, section)
	return mdTable{}
}

// vtSecret is planted in every simulated error message: the gateway must never pass it on.
const vtSecret = "vt-planted-message-7f3a"

// The second Prefactor account of the probing providers.
const (
	vtPFOtherToken   = "vt-pf-other-token"
	vtPFOtherAccount = "013xrzp12g3nqk8nvtz0therzacc0000"
)

// vtOtherBlock is the second provider of each vendor while probing: another account or
// organisation on the same simulator (ZStack has one namespace: the same token).
var vtOtherBlock = map[string]string{
	"palisade":  "token {env.PALISADE_TOKEN}",
	"digicert":  "api_key {env.DC_OTHER_KEY}",
	"prefactor": "token {env.VT_PF_OTHER_TOKEN}",
	"zstack":    "token {env.ZSTACK_TOKEN}",
}

// vtBlock configures, for every vendor: one provider vt-<vendor> (mode single), two
// providers vta-<vendor> and vtb-<vendor> of different accounts (probe), or one provider
// vtoff-<vendor> with reads off and two reads-off DigiCert providers sharing an ID pattern
// (off).
func vtBlock(mode string) string {
	var b strings.Builder
	provider := func(name, adapter, url, block, extra string) {
		fmt.Fprintf(&b, `
		provider %s %s {
			base_url %s
			%s
			retries 0
			breaker {
				failures 100000
			}
			%s
		}`, name, adapter, url, block, extra)
	}
	for _, f := range providertest.Fixtures() {
		url := sims[f.Name].URL
		switch mode {
		case "single":
			provider("vt-"+f.Name, f.Name, url, f.Block, "")
		case "probe":
			provider("vta-"+f.Name, f.Name, url, f.Block, "")
			provider("vtb-"+f.Name, f.Name, url, vtOtherBlock[f.Name], "")
		case "off":
			provider("vtoff-"+f.Name, f.Name, url, f.Block, "reads off")
		}
	}
	if mode == "off" {
		for _, name := range []string{"vtoff2-digicert", "vtoff3-digicert"} {
			provider(name, "digicert", sims["digicert"].URL, "api_key {env.DC_PARENT_KEY}", "reads off\nid_pattern 8[0-9]{6}")
		}
	}
	return b.String()
}

// vtNext numbers the IDs of the rows: every run of a row has a credential of its own, so that
// no cache (owners, "none owns it") carries from one row to another.
var vtNext = 7_000_000

func vtID(f providertest.Fixture) string {
	vtNext++
	return f.BulkID(vtNext)
}

// vtRow is an error row, parsed.
type vtRow struct {
	line             int
	vendor           string
	call             string // read or write
	http             int    // 0: no vendor answer
	code             string
	status           int
	problem          string
	probe            string // "", "200", or the probe's problem status
	probeProblem     string
	setup            string
	writes, noWrites bool
}

func (r vtRow) String() string {
	return fmt.Sprintf("%s:%d %s %s %d %s (%s)", r.vendor, r.line, r.vendor, r.call, r.http, r.code, r.setup)
}

func parseErrorRow(t *testing.T, vendor string, r mdRow) vtRow {
	t.Helper()
	row := vtRow{line: r.line, vendor: vendor, call: value(r.cells["call"]), code: value(r.cells["code"]), setup: value(r.cells["simulator"])}
	if h := value(r.cells["http"]); h != "none" {
		n, err := strconv.Atoi(h)
		require.NoError(t, err, "%s:%d: http", vendorsDoc, r.line)
		row.http = n
	}
	p := spans(r.cells["problem"])
	require.Len(t, p, 2, "%s:%d: problem is `status` `type`", vendorsDoc, r.line)
	row.status, _ = strconv.Atoi(p[0])
	row.problem = p[1]
	if pr := spans(r.cells["while probing"]); len(pr) > 0 {
		row.probe = pr[0]
		if len(pr) > 1 {
			row.probeProblem = pr[1]
		}
	}
	require.Contains(t, []string{"read", "write"}, row.call, "%s:%d", vendorsDoc, r.line)
	return row
}

// setUp puts the simulator of f in the row's state for a fresh credential, and returns its ID
// and what undoes the state. probing says the probe's providers are configured (both DigiCert
// accounts must refuse for permission).
func setUp(t *testing.T, f providertest.Fixture, row vtRow, probing bool) (string, func()) {
	t.Helper()
	sim := sims[f.Name]
	id := vtID(f)
	none := func() {}
	switch row.setup {
	case "fault":
		sim.Add(id)
		method := http.MethodGet
		if row.call == "write" {
			method = f.WriteMethod
		}
		fault := providertest.Fault{Status: row.http, Code: row.code, Message: vtSecret + " " + id, Method: method}
		if row.http == http.StatusTooManyRequests {
			fault.RetryAfter = "3"
		}
		sim.SetFault(fault)
		return id, sim.Clear
	case "no-read-404", "no-read-405":
		sim.Add(id)
		sim.SetReadRoute(row.http)
		return id, func() { sim.SetReadRoute(0) }
	case "other-org-404", "other-org-403":
		pal.AddCredential("org-us", id, "Elsewhere", "WALLETS", "ENABLED", true, false)
		if row.setup == "other-org-403" {
			pal.SetForeignForbidden(true)
			return id, func() { pal.SetForeignForbidden(false) }
		}
		return id, none
	case "deleted":
		sim.Add(id)
		pal.Update(id, func(c *palisadetest.Credential) { c.Status, c.Active = "DELETED", false })
		return id, none
	case "other-account-404", "other-account-403":
		pf.AddAPIToken(id, vtPFOtherAccount, "", "active")
		if row.setup == "other-account-403" {
			pf.ForbidForeign = true
			return id, func() { pf.ForbidForeign = false }
		}
		return id, none
	case "revoked":
		pf.AddAPIToken(id, prefactortest.FixtureAccount, "", "revoked")
		return id, none
	case "unrelated-account":
		n, _ := strconv.Atoi(id)
		dc.AddKey(n, 2, "unrelated", "active")
		return id, none
	case "permission":
		sim.Add(id)
		dc.SetPermissionDenied("k-parent", true)
		if probing {
			dc.SetPermissionDenied("k-other", true)
		}
		return id, func() {
			dc.SetPermissionDenied("k-parent", false)
			dc.SetPermissionDenied("k-other", false)
		}
	}
	t.Fatalf("%s:%d: the simulator cannot produce %q: add a setup to vendortables_test.go", vendorsDoc, row.line, row.setup)
	return "", none
}

// doCall sends the row's call for id, at provider (empty: let the gateway resolve).
func doCall(t *testing.T, tester *caddytest.Tester, row vtRow, id string) answer {
	t.Helper()
	path := "/credentials/" + id + "/status"
	if row.call == "read" {
		return call(t, tester, "GET", path, "")
	}
	return call(t, tester, "PUT", path, `{"status": "inactive"}`)
}

// checkProblem checks a is the row's problem, from the vendor's answer.
func checkProblem(t *testing.T, a answer, row vtRow) {
	t.Helper()
	requireProblem(t, a, row.status, row.problem)
	assert.NotContains(t, a.raw, vtSecret, "the vendor's message is never passed on")
	if row.http != 0 {
		assert.EqualValues(t, row.http, a.body["upstream_status"], a.raw)
	}
	if row.http == http.StatusTooManyRequests {
		assert.NotEmpty(t, a.header.Get("Retry-After"), "a 429's Retry-After is passed on")
	}
}

// TestVendorTables drives every row of docs/vendors.md through Caddy: the status words, the
// errors with one provider and while probing, and what reads off changes.
func TestVendorTables(t *testing.T) {
	tables := readTables(t)
	fixtures := providertest.Fixtures()
	pf.AddToken(vtPFOtherToken, vtPFOtherAccount)
	t.Setenv("VT_PF_OTHER_TOKEN", vtPFOtherToken)

	errorRows := map[string][]vtRow{}
	for _, f := range fixtures {
		for _, r := range table(t, tables, f.Name, "Errors").rows {
			errorRows[f.Name] = append(errorRows[f.Name], parseErrorRow(t, f.Name, r))
		}
	}

	t.Run("palisade covers its enum", func(t *testing.T) {
		seen := map[string]bool{}
		for _, r := range table(t, tables, "palisade", "Status words").rows {
			seen[value(r.cells["status"])] = true
		}
		for _, w := range palisadeWords {
			assert.True(t, seen[w], "%s: Palisade's %s has no row", vendorsDoc, w)
		}
	})

	// Each configuration in a subtest of its own: load gives up once its test failed.
	t.Run("one provider each", func(t *testing.T) {
		tester := load(t, vtBlock("single"))
		for _, f := range fixtures {
			t.Run(f.Name+" status words", func(t *testing.T) {
				for _, r := range table(t, tables, f.Name, "Status words").rows {
					vendorStatusRow(t, tester, f, r)
				}
			})
			t.Run(f.Name+" errors", func(t *testing.T) {
				for _, row := range errorRows[f.Name] {
					t.Run(row.String(), func(t *testing.T) {
						fresh(sims[f.Name].Server)
						id, undo := setUp(t, f, row, false)
						defer undo()
						a := doCall(t, tester, row, id)
						checkProblem(t, a, row)
						if row.http == 0 {
							assert.Equal(t, 0, sims[f.Name].Count(f.WriteMethod), "refused without a write")
						}
					})
				}
			})
		}
	})

	t.Run("while probing", func(t *testing.T) {
		tester := load(t, vtBlock("probe"))
		for _, f := range fixtures {
			for _, row := range errorRows[f.Name] {
				if row.probe == "" {
					continue
				}
				t.Run(row.String(), func(t *testing.T) {
					fresh(sims[f.Name].Server)
					id, undo := setUp(t, f, row, true)
					defer undo()
					a := doCall(t, tester, row, id)
					if row.probe == "200" {
						require.Equal(t, 200, a.status, a.raw)
						assert.Equal(t, "vtb-"+f.Name, a.body["provider"], "the other account owns it")
						return
					}
					want, _ := strconv.Atoi(row.probe)
					requireProblem(t, a, want, row.probeProblem)
					assert.NotContains(t, a.raw, vtSecret)
				})
			}
		}
	})

	t.Run("reads off", func(t *testing.T) {
		tester := load(t, vtBlock("off"))
		for _, r := range table(t, tables, "reads off", "").rows {
			readsOffRow(t, tester, fixtures, errorRows, r)
		}
	})
}

// vendorStatusRow seeds a credential with the row's vendor words and checks what the gateway
// reads. A Palisade `active` of "any" runs with both flags.
func vendorStatusRow(t *testing.T, tester *caddytest.Tester, f providertest.Fixture, r mdRow) {
	t.Helper()
	want := map[string]string{
		"status":          value(r.cells["gateway status"]),
		"pending_status":  value(r.cells["pending_status"]), // a GET reports it too (API.md)
		"provider_status": value(r.cells["provider_status"]),
	}
	pending := want["pending_status"]
	var seeds []func(id string) func()
	switch f.Name {
	case "palisade":
		word, flag := value(r.cells["status"]), value(r.cells["active"])
		flags := []bool{flag == "true"}
		if flag == "any" {
			flags = []bool{true, false}
		}
		for _, active := range flags {
			seeds = append(seeds, func(id string) func() {
				sims[f.Name].Add(id)
				pal.Update(id, func(c *palisadetest.Credential) { c.Status, c.Active = word, active })
				return func() {}
			})
		}
	case "zstack":
		exp, health := vtTime(value(r.cells["expiresat"])), value(r.cells["healthstatus"])
		seeds = append(seeds, func(id string) func() {
			undo := func() {}
			if health == "{}" {
				zs.ObjectEnums, health = true, "CREDENTIAL_HEALTH_STATUS_HEALTHY"
				undo = func() { zs.ObjectEnums = false }
			}
			if t, err := time.Parse(time.RFC3339, exp); err == nil && t.Before(time.Now()) && !strings.Contains(health, "EXPIRED") {
				zs.SetStaleHealth(true) // a health word that lags the expiry
				undo = func() { zs.SetStaleHealth(false) }
			}
			zs.AddCredential(zstacktest.Credential{UUID: id, Name: "vt", ExpiresAt: exp, HealthStatus: health, Value: zsSecret})
			return undo
		})
	case "prefactor":
		word, exp := value(r.cells["details.status"]), vtTime(value(r.cells["expires_at"]))
		seeds = append(seeds, func(id string) func() {
			pf.AddAPIToken(id, prefactortest.FixtureAccount, "", word)
			pf.SetExpiresAt(id, exp)
			return func() {}
		})
	case "digicert":
		word := value(r.cells["status"])
		seeds = append(seeds, func(id string) func() {
			n, _ := strconv.Atoi(id)
			dc.AddKey(n, 1, "vt", word)
			return func() {}
		})
	default:
		t.Fatalf("%s:%d: no seeding for vendor %s: add it to vendortables_test.go", vendorsDoc, r.line, f.Name)
	}
	for k, seed := range seeds {
		t.Run(fmt.Sprintf("line %d/%d", r.line, k), func(t *testing.T) {
			id := vtID(f)
			undo := seed(id)
			defer undo()
			a := call(t, tester, "GET", "/credentials/"+id+"/status", "")
			require.Equal(t, 200, a.status, a.raw)
			for field, w := range want {
				got, _ := a.body[field].(string)
				assert.Equal(t, w, got, "%s:%d: %s", vendorsDoc, r.line, field)
			}
			if pending == "" {
				return
			}
			// The change awaits approval: asking for it again answers 202, and writes nothing.
			sims[f.Name].ResetLog()
			a = call(t, tester, "PUT", "/credentials/"+id+"/status", `{"status": "`+pending+`"}`)
			require.Equal(t, 202, a.status, a.raw)
			assert.Equal(t, pending, a.body["pending_status"], "%s:%d", vendorsDoc, r.line)
			assert.Equal(t, want["status"], a.body["status"], "%s:%d", vendorsDoc, r.line)
			assert.Equal(t, 0, sims[f.Name].Count(f.WriteMethod), "nothing written")
		})
	}
}

// vtTime is an expiry cell as the vendor's JSON: past and future an hour away, absent empty,
// anything else as written.
func vtTime(cell string) string {
	switch cell {
	case "past":
		return time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	case "future":
		return time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	case "absent":
		return ""
	}
	return cell
}

// readsOffRow drives one row of the reads-off table, for every vendor, at the vtoff-
// providers.
func readsOffRow(t *testing.T, tester *caddytest.Tester, fixtures []providertest.Fixture, errorRows map[string][]vtRow, r mdRow) {
	req := value(r.cells["request"])
	if req == "" {
		req = r.cells["request"]
	}
	off := spans(r.cells["reads off"])
	t.Run(fmt.Sprintf("reads off line %d", r.line), func(t *testing.T) {
		switch {
		case req == "GET /credentials/{id}/status" || req == "PUT /credentials/{id}/status?dry_run=true":
			require.Len(t, off, 2)
			status, _ := strconv.Atoi(off[0])
			for _, f := range fixtures {
				sim := sims[f.Name]
				fresh(sim.Server)
				id := vtID(f)
				sim.Add(id)
				path := "/credentials/" + id + "/status"
				var a answer
				if strings.HasPrefix(req, "GET") {
					a = call(t, tester, "GET", path, "")
				} else {
					a = call(t, tester, "PUT", path+"?dry_run=true", `{"status": "inactive"}`)
				}
				requireProblem(t, a, status, off[1])
				assert.Equal(t, 0, sim.Count(http.MethodGet)+sim.Count(f.WriteMethod), "%s: no vendor call", f.Name)
			}
		case req == "PUT /credentials/{id}/status":
			for _, f := range fixtures {
				sim := sims[f.Name]
				fresh(sim.Server)
				id := vtID(f)
				sim.Add(id)
				a := call(t, tester, "PUT", "/credentials/"+id+"/status", `{"status": "inactive"}`)
				require.Equal(t, 200, a.status, a.raw)
				assert.Equal(t, "inactive", a.body["status"], a.raw)
				assert.Contains(t, a.raw, `"changed":null`)
				assert.Equal(t, 0, sim.Count(http.MethodGet), "%s: never read", f.Name)
				assert.Equal(t, 1, sim.Count(f.WriteMethod), "%s: one vendor call", f.Name)
			}
		case strings.Contains(req, "write's error"), strings.Contains(req, "refused change"):
			refused := strings.Contains(req, "refused change")
			n := 0
			for _, f := range fixtures {
				for _, row := range errorRows[f.Name] {
					if row.call != "write" || (row.setup != "fault") != refused {
						continue
					}
					n++
					t.Run(row.String(), func(t *testing.T) {
						sim := sims[f.Name]
						fresh(sim.Server)
						id, undo := setUp(t, f, row, false)
						defer undo()
						a := doCall(t, tester, row, id)
						requireProblem(t, a, row.status, row.problem)
						assert.NotContains(t, a.raw, vtSecret)
						assert.Equal(t, 0, sim.Count(http.MethodGet), "never read")
						writes := 1
						if f.Name == "palisade" && row.http == http.StatusUnauthorized {
							writes = 2 // once more with a new access token (the page's bullet)
						}
						assert.Equal(t, writes, sim.Count(f.WriteMethod), "the write alone")
					})
				}
			}
			assert.NotZero(t, n, "%s:%d: no row to drive", vendorsDoc, r.line)
		case strings.Contains(req, "several candidates"):
			require.GreaterOrEqual(t, len(off), 2)
			status, _ := strconv.Atoi(off[0])
			fresh(dc.Server)
			a := call(t, tester, "PUT", "/credentials/8000001/status", `{"status": "inactive"}`)
			requireProblem(t, a, status, off[1])
			assert.Equal(t, 0, dc.Count(""), "never probed")
		default:
			t.Fatalf("%s:%d: no test drives the reads-off row %q: add it to vendortables_test.go", vendorsDoc, r.line, req)
		}
	})
}
