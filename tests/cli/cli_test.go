// Package cli tests `credgate credentials` (module/credentialscli) the way an operator runs it:
// the real binary, against a gateway and the vendor simulators in their own processes
// (tests/gateway), counting what reached the simulators through their GET /_sim/requests.
package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/tests/gateway"
)

var bins *gateway.Binaries

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int { return gateway.Main(m, &bins) }

// The simulators' demo credentials (tests/sim's SeedDemo), all active: every one can be
// switched off once; Settlement's change awaits approval (202, "pending").
var demo = []string{
	"12345", "12346", "67890", // digicert, two accounts
	"ce4918bf-a199-4ce2-85a3-d0d296855384",      // palisade Treasury
	"5b0f2a8e-3c41-4d7a-9e65-0c2f4a9b7d13",      // palisade Settlement (approval)
	"cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890", // zstack
	"013xrzp12g3nqk8n7f8f9jbg8d18q7tm",          // prefactor
}

// cli is one run of the binary.
type cli struct {
	code           int
	stdout, stderr string
}

// credentials runs `credgate credentials args...` with env added, stdin from stdin.
func credentials(t *testing.T, dir string, env []string, stdin string, args ...string) cli {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Gateway, append([]string{"credentials"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("credentials %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return cli{code, out.String(), errs.String()}
}

// simRequest is one entry of a simulator's GET /_sim/requests.
type simRequest struct{ Method, Path string }

// requests returns what each simulator received so far, by vendor.
func requests(t *testing.T, in *gateway.Instance) map[string][]simRequest {
	t.Helper()
	all := map[string][]simRequest{}
	for _, s := range gateway.DocSims {
		resp, err := http.Get("http://127.0.0.1:" + in.Sims[s.Vendor] + "/_sim/requests")
		if err != nil {
			t.Fatal(err)
		}
		var rs []simRequest
		err = json.NewDecoder(resp.Body).Decode(&rs)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		all[s.Vendor] = rs
	}
	return all
}

// since returns the requests of now that came after those of before.
func since(before, now map[string][]simRequest) map[string][]simRequest {
	d := map[string][]simRequest{}
	for v, rs := range now {
		if n := len(before[v]); len(rs) > n {
			d[v] = rs[n:]
		}
	}
	return d
}

// writes counts the requests that could change a credential, by the demo ID in their path
// (Palisade's OAuth token exchange is not one).
func writes(all map[string][]simRequest) map[string]int {
	n := map[string]int{}
	for _, rs := range all {
		for _, r := range rs {
			if r.Method == http.MethodGet || strings.Contains(r.Path, "/oauth/") {
				continue
			}
			for _, seg := range strings.Split(r.Path, "/") {
				for _, id := range demo {
					if seg == id {
						n[id]++
					}
				}
			}
		}
	}
	return n
}

// line is what the tests read of a line of --output.
type line struct {
	Index         int
	ID            string
	Changed       *bool
	PendingStatus string `json:"pending_status"`
	WouldChange   *bool  `json:"would_change"`
	Error         *struct {
		Type   string
		Status int
	}
}

// readResults reads --output: one JSON object per line, each index once.
func readResults(t *testing.T, path string, n int) []line {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]line, n)
	seen := make([]bool, n)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	count := 0
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %q: %v", path, sc.Text(), err)
		}
		if l.Index < 0 || l.Index >= n || seen[l.Index] {
			t.Fatalf("%s: index %d out of range or twice", path, l.Index)
		}
		seen[l.Index] = true
		got[l.Index] = l
		count++
	}
	if count != n {
		t.Fatalf("%s: %d results, want %d", path, count, n)
	}
	return got
}

// controls matches a control character other than a newline: a terminal's cursor control.
var controls = regexp.MustCompile(`[\x00-\x09\x0b-\x1f\x7f]`)

func noControls(t *testing.T, what string, r cli) {
	t.Helper()
	for name, s := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
		if loc := controls.FindStringIndex(s); loc != nil {
			t.Errorf("%s: %s has a control character at %d: %q", what, name, loc[0], s[max(0, loc[0]-40):min(len(s), loc[1]+40)])
		}
	}
}

// bigList writes a 10,000-line incident file: the demo credentials spread over it, among IDs in
// every vendor's format that no simulator holds (each one resolved, probed and found unknown:
// digicert's numeric IDs at both accounts), and some that no provider's pattern matches.
func bigList(t *testing.T, dir string) (string, map[int]string) {
	var b strings.Builder
	b.WriteString("# INC-42: every key of the leaked dump, one per line\n\n")
	at := map[int]string{}
	for i := range 10000 {
		if i%1400 == 7 && len(at) < len(demo) {
			at[i] = demo[len(at)]
			b.WriteString(at[i] + "\n")
			continue
		}
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "%d\n", 500000+i)
		case 1:
			fmt.Fprintf(&b, "%08x-0000-4000-8000-%012x\n", i, i)
		case 2:
			fmt.Fprintf(&b, "cred-%08x-0000-4000-8000-%012x\n", i, i)
		case 3:
			fmt.Fprintf(&b, "01%030d\n", i)
		default:
			fmt.Fprintf(&b, "not-a-vendor-id-%d\n", i)
		}
	}
	if len(at) != len(demo) {
		t.Fatalf("placed %d demo IDs", len(at))
	}
	path := filepath.Join(dir, "leaked.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, at
}

// A 10,000-line file: a dry run writes nothing, the run writes each credential once and says
// what failed, the same command again is replayed by the gateway without a vendor call, and on
// a terminal the same run draws a progress bar. Off a terminal, no control character.
func TestTenThousand(t *testing.T) {
	in := bins.Start(t, "")
	dir := t.TempDir()
	env := []string{"CREDGATE_URL=" + in.URL()}
	file, at := bigList(t, dir)
	out := filepath.Join(dir, "results.jsonl")

	start := time.Now()
	dry := credentials(t, dir, env, "", "set", "--status", "inactive", "--file", file, "--reason", "INC-42", "--dry-run", "--output", out)
	t.Logf("dry run: %v\n%s%s", time.Since(start), dry.stdout, dry.stderr)
	if dry.code != 1 {
		t.Errorf("dry run: exit %d, want 1 (unknown IDs fail)", dry.code)
	}
	noControls(t, "dry run", dry)
	if w := writes(requests(t, in)); len(w) != 0 {
		t.Errorf("the dry run wrote: %v", w)
	}
	for i, l := range readResults(t, out, 10000) {
		if id, ok := at[i]; ok {
			if l.ID != id || l.WouldChange == nil || !*l.WouldChange {
				t.Errorf("dry run: line %d: %+v, want %s would change", i, l, id)
			}
		} else if l.Error == nil || !strings.HasSuffix(l.Error.Type, ":credential-not-found") {
			t.Errorf("dry run: line %d (%s): want credential-not-found, got %+v", i, l.ID, l)
		}
	}
	if want := "10000 items (dry run, nothing written): 7 would change, 0 unchanged, 9993 failed\nfailed: 9993 credential-not-found (404)"; !strings.HasPrefix(dry.stdout, want) {
		t.Errorf("dry run: stdout %q, want it to begin with %q", dry.stdout, want)
	}

	start = time.Now()
	args := []string{"set", "--file", file, "--status", "inactive", "--reason", "INC-42", "--output", out}
	real := credentials(t, dir, env, "", args...)
	t.Logf("run: %v\n%s%s", time.Since(start), real.stdout, real.stderr)
	if real.code != 1 {
		t.Errorf("run: exit %d, want 1", real.code)
	}
	noControls(t, "run", real)
	for i, l := range readResults(t, out, 10000) {
		if id, ok := at[i]; ok && (l.ID != id || l.Error != nil || l.Changed == nil || !*l.Changed) {
			t.Errorf("run: line %d: %+v, want %s changed", i, l, id)
		}
	}
	if want := "10000 items: 6 changed, 0 unchanged, 1 pending approval, 9993 failed\n"; !strings.HasPrefix(real.stdout, want) {
		t.Errorf("run: stdout %q, want it to begin with %q", real.stdout, want)
	}
	before := requests(t, in)
	for _, id := range demo {
		if n := writes(before)[id]; n != 1 {
			t.Errorf("%s written %d times, want once", id, n)
		}
	}

	again := credentials(t, dir, env, "", args...)
	if again.code != 1 || !strings.Contains(again.stdout, "10000 of them done by an earlier run") {
		t.Errorf("the same run again: exit %d\n%s%s", again.code, again.stdout, again.stderr)
	}
	if d := since(before, requests(t, in)); len(d) != 0 {
		t.Errorf("the same run again reached the simulators, want no call (replayed): %v", d)
	}
	readResults(t, out, 10000)

	// On a terminal (util-linux script's pseudo-terminal), a progress bar on stderr.
	if v, err := exec.Command("script", "--version").CombinedOutput(); err != nil || !strings.Contains(string(v), "util-linux") {
		t.Skip("no util-linux script to run the command on a pseudo-terminal")
	}
	cmd := exec.Command("script", "-q", "-e", "-c", bins.Gateway+" credentials set --status inactive --dry-run --chunk 2500 --file "+file, "/dev/null")
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	tty, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("on a terminal: exit %d (%v), want 1\n%q", code, err, tty)
	}
	for _, want := range []string{"\r", "(10000/10000, ", "items/s", "% |", "1 would change, ", "10000 items (dry run, nothing written)"} {
		if !strings.Contains(string(tty), want) {
			t.Errorf("on a terminal: no %q in\n%q", want, tty)
		}
	}
}

// A run killed in the middle, then run again: the finished chunks are replayed (no vendor
// call), the rest is done, and no credential is written twice.
func TestKillAndRerun(t *testing.T) {
	in := bins.Start(t, "")
	dir := t.TempDir()
	env := []string{"CREDGATE_URL=" + in.URL()}
	// Chunks of 2: the Palisade credentials come last, and Palisade hangs.
	list := "12345\n12346\n67890\ncred-a1b2c3d4-e5f6-7890-abcd-ef1234567890\n013xrzp12g3nqk8n7f8f9jbg8d18q7tm\n" +
		"ce4918bf-a199-4ce2-85a3-d0d296855384\n5b0f2a8e-3c41-4d7a-9e65-0c2f4a9b7d13\n"
	file := filepath.Join(dir, "leaked.txt")
	if err := os.WriteFile(file, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	palisade := "http://127.0.0.1:" + in.Sims["palisade"] + "/_sim/fault"
	resp, err := http.Post(palisade, "application/json", strings.NewReader(`{"hang":"30s"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	out := filepath.Join(dir, "results.jsonl")
	args := []string{"credentials", "set", "--status", "inactive", "--chunk", "2", "--file", file, "--output", out}
	cmd := exec.Command(bins.Gateway, args...)
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the chunks before Palisade's are done and Prefactor's item is in.
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(out)
		if bytes.Count(data, []byte("\n")) >= 5 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no 5 results within 30 s: %q", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	req, _ := http.NewRequest(http.MethodDelete, palisade, nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	before := requests(t, in)

	again := credentials(t, dir, env, "", args[1:]...)
	t.Logf("re-run:\n%s%s", again.stdout, again.stderr)
	if again.code != 0 {
		t.Errorf("re-run: exit %d, want 0", again.code)
	}
	// The first four were replayed; the Prefactor token was switched off by the killed run in
	// the chunk that did not finish (Palisade timed out, so the gateway kept no answer): read
	// again, unchanged, not written again.
	if want := "7 items: 5 changed, 1 unchanged, 1 pending approval, 0 failed\n4 of them done by an earlier run"; !strings.HasPrefix(again.stdout, want) {
		t.Errorf("re-run: stdout %q, want it to begin with %q", again.stdout, want)
	}
	after := requests(t, in)
	for _, vendor := range []string{"digicert", "zstack"} { // their chunks were done: replayed
		if d := since(before, after)[vendor]; len(d) != 0 {
			t.Errorf("re-run: the replayed chunks reached the %s simulator: %v", vendor, d)
		}
	}
	for _, id := range demo {
		if n := writes(after)[id]; n != 1 {
			t.Errorf("%s written %d times in the two runs, want once", id, n)
		}
	}
	readResults(t, out, 7)
}

// A gateway with max_batch 3: a 413 halves the chunk until it is taken; CSV cells with commas;
// flags after the IDs; exit statuses.
func TestSmallBatches(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(bins.Root, "caddyfile-examples", "local.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	config := strings.Replace(string(src), "\tcredential_status {\n", "\tcredential_status {\n\t\tmax_batch 3\n", 1)
	if config == string(src) {
		t.Fatal("local.Caddyfile has no credential_status block to add max_batch to")
	}
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	in := bins.Start(t, caddyfile)
	dir := t.TempDir()
	env := []string{"CREDGATE_URL=" + in.URL()}

	csv := "# INC-43\nid,status,reason\n" +
		"12345,,\"leaked, in paste #1\"\n" +
		"\"67890\",inactive,\"said \"\"oops\"\", twice\"\n" +
		"cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890,,\n" +
		"ce4918bf-a199-4ce2-85a3-d0d296855384,,\n" +
		"013xrzp12g3nqk8n7f8f9jbg8d18q7tm,revoked,\n"
	r := credentials(t, dir, env, csv, "set", "-", "--chunk", "10", "--status", "inactive", "--reason", "INC-43", "--output", "out.jsonl")
	if r.code != 0 {
		t.Errorf("csv: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := "note: the gateway refused 5 items in one batch (413); sending 2 at a time\n"; r.stderr != want {
		t.Errorf("csv: stderr %q, want %q", r.stderr, want)
	}
	if want := "5 items: 5 changed, 0 unchanged, 0 pending approval, 0 failed\nresults: out.jsonl\n"; r.stdout != want {
		t.Errorf("csv: stdout %q, want %q", r.stdout, want)
	}
	noControls(t, "csv", r)
	readResults(t, filepath.Join(dir, "out.jsonl"), 5)
	log := in.GatewayLog()
	for _, want := range []string{`"reason":"leaked, in paste #1"`, `"reason":"said \"oops\", twice"`, `"reason":"INC-43"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the audit trail has no %s", want)
		}
	}

	// Flags after the IDs; every item would succeed: 0.
	if r := credentials(t, dir, env, "", "set", "12346", "5b0f2a8e-3c41-4d7a-9e65-0c2f4a9b7d13", "--status", "inactive", "--dry-run"); r.code != 0 ||
		r.stdout != "2 items (dry run, nothing written): 2 would change, 0 unchanged, 0 failed\n" {
		t.Errorf("flags after IDs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := credentials(t, dir, env, "", "get", "12345", "--provider", "digicert-parent"); r.code != 0 || !strings.HasPrefix(r.stdout, `{"id":"12345","provider":"digicert-parent"`) {
		t.Errorf("get: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// An item fails: 1.
	if r := credentials(t, dir, env, "", "get", "12345", "99999"); r.code != 1 || !strings.Contains(r.stdout, `{"id":"99999","error":{"type":"urn:credgate:problem:credential-not-found"`) {
		t.Errorf("get, not found: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := credentials(t, dir, env, "", "set", "--status", "active", "99999"); r.code != 1 {
		t.Errorf("set, not found: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// Runs that cannot start exit 2 and say why, on stderr.
func TestCannotStart(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	env := []string{"CREDGATE_URL=" + closed}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set", "--status", "inactive", "--bogus", "12345"}, "unknown flag: --bogus"},
		{[]string{"get", "12345", "--status", "inactive"}, "unknown flag: --status"},
		{[]string{"set", "12345"}, "ID 12345: no status"},
		{[]string{"set", "--status", "off", "12345"}, `status "off": want active, inactive or revoked`},
		{[]string{"set", "--status", "inactive"}, "no IDs"},
		{[]string{"set", "--status", "inactive", "--file", "missing.csv"}, "missing.csv: no such file"},
		{[]string{"set", "--status", "inactive", "--file", "x", "12345"}, "either with --file or as arguments"},
		{[]string{"set", "--status", "inactive", "--header", "nocolon", "12345"}, "want 'Name: value'"},
		{[]string{"set", "--status", "inactive", "--url", "localhost:8080", "12345"}, "want http(s)://"},
		{[]string{"get"}, "no IDs"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"set", "--status", "inactive", "12345"}, "no gateway at " + closed},
		{[]string{"get", "12345", "67890"}, "no gateway at " + closed},
	} {
		r := credentials(t, dir, env, "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
		noControls(t, strings.Join(tc.args, " "), r)
	}
}
