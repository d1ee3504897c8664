// Package fleet tests several real gateway processes (tests/gateway's binary) that share
// their state through a real redis-server (module/sharedstate/redistest), in front of one
// simulator that counts what reaches the vendor.
package fleet

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credgate/credgate/module/provider/providertest"
	"github.com/credgate/credgate/module/sharedstate/redistest"
	"github.com/credgate/credgate/tests/gateway"
)

var (
	buildOnce sync.Once
	bins      *gateway.Binaries
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func binaries(t *testing.T) *gateway.Binaries {
	t.Helper()
	buildOnce.Do(func() {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			buildErr = err
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "credgate-fleet-"); buildErr != nil {
			return
		}
		bins, buildErr = gateway.Build(root, buildDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins
}

// fleet is a test's Redis, simulator and gateway config.
type fleet struct {
	t     *testing.T
	bins  *gateway.Binaries
	redis *redistest.Server
	fx    providertest.Fixture
	sim   *providertest.Sim
	env   []string
	extra string // more lines of the provider block
}

func newFleet(t *testing.T, extra string) *fleet {
	fx, ok := providertest.Lookup("digicert")
	if !ok {
		t.Fatal("no digicert fixture")
	}
	f := &fleet{t: t, bins: binaries(t), redis: redistest.Start(t), fx: fx, sim: fx.Start(""), extra: extra}
	t.Cleanup(f.sim.Close)
	for k, v := range fx.Env {
		f.env = append(f.env, k+"="+v)
	}
	return f
}

func (f *fleet) config(site, admin string) string {
	return fmt.Sprintf(`{
	admin localhost:%[2]s
	http_port %[1]s
}

http://:%[1]s {
	bind 127.0.0.1
	credential_status {
		shared_state redis {
			address %[3]s
			key_prefix fleettest
		}
		idempotency_storage shared_state
		idempotency_lease 3s
		provider dc digicert {
			base_url %[4]s
			%[5]s
			timeout 2s
			%[6]s
		}
	}
	respond 404
}
`, site, admin, f.redis.Addr, f.sim.URL, strings.ReplaceAll(f.fx.Block, "\n", "\n\t\t\t"), f.extra)
}

func (f *fleet) start() *gateway.Member {
	return f.bins.StartMember(f.t, f.config, f.env)
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, body string, header ...string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// eventually retries check every 100 ms until it returns "" or within passes.
func eventually(t *testing.T, within time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func breakerState(t *testing.T, m *gateway.Member) string {
	t.Helper()
	a := do(t, http.MethodGet, m.AdminURL()+"/credential-status/providers", "")
	var list []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(a.body), &list); err != nil {
		t.Fatalf("providers listing: %v: %s", err, a.body)
	}
	for _, p := range list {
		if p.Name == "dc" {
			return p.State
		}
	}
	t.Fatalf("no provider dc in %s", a.body)
	return ""
}

// TestFleetBreakerShared: a vendor failing through instance A and B opens the breaker on
// both: failures counted through either are counted together.
func TestFleetBreakerShared(t *testing.T) {
	f := newFleet(t, "retries 0\n\t\t\tbreaker {\n\t\t\t\tfailures 4\n\t\t\t\topen_for 30s\n\t\t\t}")
	a, b := f.start(), f.start()
	path := "/credentials/" + f.fx.ID + "/status"
	if got := do(t, http.MethodGet, a.URL()+path, ""); got.status != http.StatusOK {
		t.Fatalf("healthy GET = %d %s", got.status, got.body)
	}
	f.sim.SetFault(providertest.Fault{Status: http.StatusInternalServerError})
	// Two failures through each: neither instance alone saw the four that open it.
	for i, m := range []*gateway.Member{a, b, a, b} {
		if got := do(t, http.MethodGet, m.URL()+path, ""); got.status != http.StatusBadGateway {
			t.Fatalf("failing GET %d = %d %s; want 502", i, got.status, got.body)
		}
	}
	calls := f.sim.Count("")
	for _, m := range []*gateway.Member{a, b} {
		got := do(t, http.MethodGet, m.URL()+path, "")
		if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "provider-unavailable") {
			t.Fatalf("GET after 4 shared failures = %d %s; want 503 provider-unavailable", got.status, got.body)
		}
		if s := breakerState(t, m); s != "open" {
			t.Errorf("admin API of :%s says %s; want open", m.Site, s)
		}
	}
	if n := f.sim.Count(""); n != calls {
		t.Errorf("the open breaker let %d calls through to the vendor", n-calls)
	}
}

func setHold(t *testing.T, m *gateway.Member, state string) {
	t.Helper()
	method, body := http.MethodPut, `{"state":"`+state+`"}`
	if state == "auto" {
		method, body = http.MethodDelete, ""
	}
	if got := do(t, method, m.AdminURL()+"/credential-status/providers/dc/breaker", body); got.status != http.StatusOK {
		t.Fatalf("%s hold %s through :%s = %d %s", method, state, m.Admin, got.status, got.body)
	}
}

func heldOpen(t *testing.T, m *gateway.Member, path string) string {
	got := do(t, http.MethodGet, m.URL()+path, "")
	if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "held open") {
		return fmt.Sprintf("GET through :%s = %d %s; want 503 held open", m.Site, got.status, got.body)
	}
	return ""
}

func notHeld(t *testing.T, m *gateway.Member, path string) string {
	if got := do(t, http.MethodGet, m.URL()+path, ""); got.status != http.StatusOK {
		return fmt.Sprintf("GET through :%s = %d %s; want 200", m.Site, got.status, got.body)
	}
	return ""
}

// TestFleetHold: a hold set through A's admin API applies on B within a second, survives
// restarting both, and is released through B.
func TestFleetHold(t *testing.T) {
	f := newFleet(t, "")
	a, b := f.start(), f.start()
	path := "/credentials/" + f.fx.ID + "/status"
	setHold(t, a, "open")
	if msg := heldOpen(t, a, path); msg != "" {
		t.Fatal(msg)
	}
	eventually(t, time.Second, func() string { return heldOpen(t, b, path) })

	a.Stop()
	b.Stop()
	a, b = f.start(), f.start()
	eventually(t, time.Second, func() string { return heldOpen(t, a, path) + heldOpen(t, b, path) })

	setHold(t, b, "auto")
	if msg := notHeld(t, b, path); msg != "" {
		t.Fatal(msg)
	}
	eventually(t, time.Second, func() string { return notHeld(t, a, path) })
}

// TestFleetRateBudget: `rate 20/s burst 5` shared by three instances that each run a batch:
// the vendor never sees more than 25 calls in any one second, and the batches finish.
func TestFleetRateBudget(t *testing.T) {
	f := newFleet(t, "rate 20/s\n\t\t\tburst 5")
	members := []*gateway.Member{f.start(), f.start(), f.start()}
	const perBatch = 25
	f.sim.ResetLog()
	var wg sync.WaitGroup
	var failed atomic.Int32
	start := time.Now()
	for i, m := range members {
		var items []string
		for j := range perBatch {
			id := f.fx.BulkID(i*perBatch + j)
			f.sim.Add(id)
			items = append(items, `{"id":"`+id+`","status":"inactive"}`)
		}
		body := `{"dry_run":true,"items":[` + strings.Join(items, ",") + `]}`
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := do(t, http.MethodPost, m.URL()+"/credentials/status", body)
			if got.status != http.StatusOK || !strings.Contains(got.body, `"failed":0`) {
				failed.Add(1)
				t.Errorf("batch through :%s = %d %.300s", m.Site, got.status, got.body)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if failed.Load() > 0 {
		return
	}
	var at []time.Time
	for _, r := range f.sim.Requests() {
		at = append(at, r.At)
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	most, j := 0, 0
	for i := range at {
		for at[i].Sub(at[j]) >= time.Second {
			j++
		}
		most = max(most, i-j+1)
	}
	t.Logf("%d calls in %v, at most %d in one second", len(at), took.Round(time.Millisecond), most)
	if len(at) < 3*perBatch {
		t.Errorf("the vendor saw %d calls, want at least %d", len(at), 3*perBatch)
	}
	if most > 25 {
		t.Errorf("the vendor saw %d calls in one second; the fleet's budget is 25 (20/s, burst 5)", most)
	}
}

// TestFleetIdempotency: a key answered by A is replayed by B without a vendor call; a key in
// flight on A is 409 on B; the reservation of a killed instance ends with its lease.
func TestFleetIdempotency(t *testing.T) {
	f := newFleet(t, "")
	a, b := f.start(), f.start()
	path := "/credentials/" + f.fx.ID + "/status"
	put := func(m *gateway.Member, key string) answer {
		return do(t, http.MethodPut, m.URL()+path, `{"status":"inactive"}`, "Idempotency-Key", key)
	}
	first := put(a, "k-answered")
	if first.status != http.StatusOK {
		t.Fatalf("PUT through A = %d %s", first.status, first.body)
	}
	calls := f.sim.Count("")
	again := put(b, "k-answered")
	if again.status != first.status || again.body != first.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay through B = %d %s %v; want A's answer, replayed", again.status, again.body, again.header)
	}
	if n := f.sim.Count(""); n != calls {
		t.Fatalf("the replay called the vendor %d times", n-calls)
	}

	// In flight on A (the vendor hangs): 409 on B.
	f.sim.SetFault(providertest.Fault{Hang: 1500 * time.Millisecond})
	done := make(chan answer, 1)
	go func() { done <- put(a, "k-flight") }()
	time.Sleep(500 * time.Millisecond)
	if got := put(b, "k-flight"); got.status != http.StatusConflict || !strings.Contains(got.body, "idempotency-key-in-use") {
		t.Fatalf("B while A runs the key = %d %s; want 409", got.status, got.body)
	}
	if got := <-done; got.status != http.StatusOK {
		t.Fatalf("A's PUT = %d %s", got.status, got.body)
	}

	// A third instance killed while it runs a key: the key is in use until its lease (3s)
	// ends, then it runs again.
	c := f.start()
	f.sim.SetFault(providertest.Fault{Hang: 10 * time.Second})
	go func() {
		req, _ := http.NewRequest(http.MethodPut, c.URL()+path, strings.NewReader(`{"status":"inactive"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-killed")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	c.Kill()
	f.sim.Clear()
	if got := put(b, "k-killed"); got.status != http.StatusConflict {
		t.Fatalf("B right after C was killed = %d %s; want 409", got.status, got.body)
	}
	eventually(t, 5*time.Second, func() string {
		if got := put(b, "k-killed"); got.status != http.StatusOK {
			return fmt.Sprintf("B after the lease = %d %s", got.status, got.body)
		}
		return ""
	})
	if since := time.Since(killed); since < 2*time.Second {
		t.Errorf("the killed instance's reservation ended after %v, before its lease", since)
	}
}

func sharedUp(t *testing.T, m *gateway.Member) string {
	a := do(t, http.MethodGet, m.AdminURL()+"/metrics", "")
	for _, line := range strings.Split(a.body, "\n") {
		if v, ok := strings.CutPrefix(line, "caddy_credential_status_shared_state_up "); ok {
			return v
		}
	}
	return "absent"
}

// TestFleetRedisDown: Redis stopped under load: no request without a key fails because of
// it, keyed ones answer 503, the gauge reads 0 within 10 s; after Redis restarts, everything
// is shared again without a gateway restart.
func TestFleetRedisDown(t *testing.T) {
	f := newFleet(t, "rate 200/s\n\t\t\tburst 20")
	a, b := f.start(), f.start()
	path := "/credentials/" + f.fx.ID + "/status"

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var plain, plainFailed atomic.Int32
	for _, m := range []*gateway.Member{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got := do(t, http.MethodGet, m.URL()+path, "")
				plain.Add(1)
				if got.status != http.StatusOK {
					plainFailed.Add(1)
					t.Errorf("GET without a key through :%s = %d %s", m.Site, got.status, got.body)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	f.redis.Stop()
	down := time.Now()
	eventually(t, 10*time.Second, func() string {
		got := do(t, http.MethodPut, a.URL()+path, `{"status":"inactive"}`, "Idempotency-Key", fmt.Sprintf("down-%d", time.Now().UnixNano()))
		if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "idempotency-unavailable") {
			return fmt.Sprintf("keyed PUT with Redis down = %d %s; want 503", got.status, got.body)
		}
		return ""
	})
	eventually(t, 10*time.Second, func() string {
		if v, w := sharedUp(t, a), sharedUp(t, b); v != "0" || w != "0" {
			return "shared_state_up = " + v + ", " + w + "; want 0"
		}
		return ""
	})
	t.Logf("gauge 0 on both %v after Redis stopped", time.Since(down).Round(100*time.Millisecond))
	time.Sleep(time.Second) // more load on the instances' own breakers and budgets

	f.redis.Restart()
	up := time.Now()
	eventually(t, 10*time.Second, func() string {
		if v, w := sharedUp(t, a), sharedUp(t, b); v != "1" || w != "1" {
			return "shared_state_up = " + v + ", " + w + "; want 1"
		}
		got := do(t, http.MethodPut, a.URL()+path, `{"status":"inactive"}`, "Idempotency-Key", "after")
		if got.status != http.StatusOK {
			return fmt.Sprintf("keyed PUT after Redis restarted = %d %s", got.status, got.body)
		}
		return ""
	})
	t.Logf("shared again %v after Redis restarted", time.Since(up).Round(100*time.Millisecond))
	close(stop)
	wg.Wait()
	if again := do(t, http.MethodPut, b.URL()+path, `{"status":"inactive"}`, "Idempotency-Key", "after"); again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("B does not replay A's key after the restart: %d %s", again.status, again.body)
	}
	setHold(t, a, "open")
	eventually(t, time.Second, func() string { return heldOpen(t, b, path) })
	setHold(t, b, "auto")
	if n := strings.Count(a.Log(), "Redis cannot be reached"); n != 1 {
		t.Errorf("A logged the outage %d times; want once", n)
	}
	t.Logf("%d requests without a key during the test, %d failed", plain.Load(), plainFailed.Load())
}
