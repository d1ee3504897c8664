// Command loadbench is the load benchmark of `make bench`: credgate's gateway, Caddy's stock
// reverse_proxy and a direct call, in front of one fast upstream stub, all in this process.
//
// It starts DigiCert-shaped upstream stubs on loopback (stub.go), runs Caddy in process
// (caddy.Load with a JSON config built here: admin off, logs at ERROR) with one server per
// measurement, drives them with its own closed-loop load client (load.go), and prints a
// table and then a last block of name=value lines:
//
//  1. throughput and latency, in alternating rounds: direct (client -> stub GET), Caddy's
//     reverse_proxy (-> the same GET), the gateway (PUT /credentials/{id}/status of a cached
//     ID whose status is already the one asked: one upstream GET), and the gateway changing
//     the status each time (GET + PUT upstream; reported, not used for the ratio); with
//     -workers W in flight (default 8), and again one request at a time (-latency-workers,
//     default 1) for the latency without queueing;
//  2. resolution: GET of a cached ID, of a fresh single-candidate ID, and of a fresh ID that
//     two DigiCert providers could own (a 2 ms owner and a 6 ms "404"): a probe;
//  3. breaker fast-fail: requests to a provider whose breaker is open, one round one request
//     at a time (breaker_open_p99_us) and one with W workers (breaker_open_loaded_p99_us);
//  4. scale: the cached gateway PUT with 1, 4 and 16 configured providers;
//  5. with -micro FILE: the `go test -bench` lines of FILE (the testing.B benchmarks);
//  6. batch (batch.go): POST /credentials/status of 10,000 items, 2,500 at each of the four
//     vendor simulators of tests/vendors, as one JSON answer, streamed (NDJSON) and as a dry run,
//     and of 2,500 items: time, items per second, upstream calls per item, peak heap and
//     bytes allocated per item;
//  7. protection (protect.go, issues 12 and 13): the Idempotency-Key store's heap over its
//     max_memory (from the -micro file), the memory bound of batches and the peak RSS growth of
//     four concurrent maximal batches, a 10,000-item batch at a rate-limited provider against
//     its floor, and vendor calls per changed item with reads on and off;
//  8. fleet (fleet.go, issue 14): what shared state (`shared_state redis`, a redis-server
//     started on a free port) adds to a cached PUT (p50, Redis commands per request; the
//     allocations from the -micro file), and the throughput of three gateway processes
//     sharing it, driven round robin by the client, against one. Skipped without
//     redis-server.
//
// Every row counts the calls its stubs receive during each round and reports upstream calls
// per client request, so that a row is seen to measure what it says. More than 0.1% of wrong
// answers (status) in any round, or of wrong results in a batch, fails the run (exit 1, the
// reason on stderr).
//
//	go run ./tests/bench/cmd/loadbench [-workers 8] [-rounds 5] [-round 3s] [-warmup 1s]
//	                                   [-latency-workers 1] [-micro go-test-bench-output.txt]
//	                                   [-sections throughput,resolution,breaker,scale,batch,protect,fleet]
//
// -sections runs only the sections named (all by default); the report then holds only theirs.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/credgate/credgate"
)

// The IDs the rows use. Every numeric ID exists at the stubs.
const (
	cachedID       = 12345         // direct, proxy, gateway, resolution (a)
	changingIDBase = 30000         // + worker: each worker of "gateway (changing)" flips its own key
	breakerID      = 777           // at the failing stub
	freshSingle    = 1_000_000     // first fresh ID of resolution (b)
	freshProbe     = 2_000_000_000 // first fresh ID of the probe (c); the slow stub owns only < slowOwnsBelow
	slowOwnsBelow  = 1000
)

// Delays of the probe's two candidates.
const (
	probeFastDelay = 2 * time.Millisecond
	probeSlowDelay = 6 * time.Millisecond
)

type options struct {
	workers        int
	latencyWorkers int
	rounds         int
	round          time.Duration
	warmup         time.Duration
	micro          string
	cpuprofile     string
	sections       map[string]bool // the sections to run (sectionNames)
}

// sectionNames are the sections -sections can name, in the order they run. The micro
// benchmarks (5.) are not run here: they are read from -micro.
var sectionNames = []string{"throughput", "resolution", "breaker", "scale", "batch", "protect", "fleet"}

// parseSections reads -sections: "all", or names of sectionNames separated by commas.
func parseSections(v string) (map[string]bool, error) {
	out := make(map[string]bool)
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "all":
			for _, a := range sectionNames {
				out[a] = true
			}
		case slices.Contains(sectionNames, n):
			out[n] = true
		default:
			return nil, fmt.Errorf("-sections: unknown section %q (want all or some of %s)", n, strings.Join(sectionNames, ","))
		}
	}
	return out, nil
}

func main() {
	var o options
	flag.IntVar(&o.workers, "workers", 8, "closed-loop workers (concurrent requests) of the throughput, breaker and scale rows")
	flag.IntVar(&o.latencyWorkers, "latency-workers", 1, "workers of the unloaded rows: latency of 1., resolution, breaker (1: one request at a time, no queueing)")
	flag.IntVar(&o.rounds, "rounds", 5, "measured rounds per row")
	flag.DurationVar(&o.round, "round", 3*time.Second, "duration of one round")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "duration of the warm-up round run per row first (discarded)")
	flag.StringVar(&o.micro, "micro", "", "a file of `go test -bench` output to include in the report")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run (client, Caddy and stubs) to this `file`")
	sections := flag.String("sections", "all", "the sections to run, separated by commas: all, or some of "+strings.Join(sectionNames, ","))
	flag.Parse()
	var err error
	if o.sections, err = parseSections(*sections); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(2)
	}
	if o.workers < 1 || o.latencyWorkers < 1 || o.rounds < 1 || o.round <= 0 || o.warmup < 0 || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "loadbench: -workers, -latency-workers and -rounds must be >= 1, -round > 0, -warmup >= 0, and no arguments")
		os.Exit(2)
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench: FAIL:", err)
		_ = caddy.Stop()
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// bench holds everything a run sets up.
type bench struct {
	o   options
	c   *loadClient
	out report

	main, probeFast, probeSlow, failing *stub
	addr                                map[string]string // server name -> 127.0.0.1:port
}

func run(o options) error {
	began := time.Now()
	b := &bench{o: o, addr: make(map[string]string)}
	var micro *microInfo
	if o.micro != "" {
		var err error
		if micro, err = readMicro(o.micro); err != nil {
			return fmt.Errorf("-micro: %v", err)
		}
	}

	// The upstream stubs.
	var err error
	if b.main, err = newStub("main", 0, nil, false); err != nil {
		return err
	}
	defer b.main.close()
	if b.probeFast, err = newStub("probe-owner", probeFastDelay, nil, true); err != nil {
		return err
	}
	defer b.probeFast.close()
	if b.probeSlow, err = newStub("probe-other", probeSlowDelay, func(id uint64) bool { return id < slowOwnsBelow }, true); err != nil {
		return err
	}
	defer b.probeSlow.close()
	if b.failing, err = newStub("failing", 0, nil, false); err != nil {
		return err
	}
	defer b.failing.close()
	b.failing.fail.Store(true)

	// Caddy: one server per measurement.
	names := []string{"proxy", "gateway", "resolve", "probe", "breaker", "scale1", "scale4", "scale16"}
	addrs, err := freePorts(len(names))
	if err != nil {
		return err
	}
	for i, n := range names {
		b.addr[n] = addrs[i]
	}
	servers := obj{
		"proxy":   server(b.addr["proxy"], reverseProxy(b.main.addr)),
		"gateway": server(b.addr["gateway"], credentialStatus(obj{"gw-dc": digicertProvider(b.main, nil)}), notFound()),
		"resolve": server(b.addr["resolve"], credentialStatus(obj{"res-dc": digicertProvider(b.main, nil)}), notFound()),
		"probe": server(b.addr["probe"], credentialStatus(obj{
			"probe-owner": digicertProvider(b.probeFast, nil),
			"probe-other": digicertProvider(b.probeSlow, nil),
		}), notFound()),
		"breaker": server(b.addr["breaker"], credentialStatus(obj{"brk-dc": digicertProvider(b.failing, obj{
			"retries": 0,
			"breaker": obj{"failures": 1, "open_for": "1h", "half_open_requests": 1},
		})}), notFound()),
	}
	for _, n := range []int{1, 4, 16} {
		servers[fmt.Sprintf("scale%d", n)] = server(b.addr[fmt.Sprintf("scale%d", n)], credentialStatus(scaleProviders(b.main, n)), notFound())
	}
	cfg, err := caddyConfig(servers)
	if err != nil {
		return err
	}
	if err := caddy.Load(cfg, true); err != nil {
		return fmt.Errorf("caddy.Load: %v", err)
	}
	if err := waitListening(addrs, 10*time.Second); err != nil {
		return err
	}

	maxW := max(o.workers, o.latencyWorkers)
	b.c = newLoadClient(maxW, o.round)
	if err := b.sanity(); err != nil {
		return fmt.Errorf("sanity check before measuring: %v", err)
	}

	run := o.sections
	var direct, proxy, gw, changing *row
	var unloaded []*row
	if run["throughput"] {
		// 1. Throughput and latency.
		direct, proxy, gw, changing = b.throughputRows(o.workers, "")
		if err := b.runGroup([]*row{direct, proxy, gw, changing}); err != nil {
			return err
		}
		// ... and the same three without load: one request at a time.
		uDirect, uProxy, uGw, _ := b.throughputRows(o.latencyWorkers, "_unloaded")
		unloaded = []*row{uDirect, uProxy, uGw}
		if err := b.runGroup(unloaded); err != nil {
			return err
		}
	}
	var cached, single, probe *row
	if run["resolution"] {
		// 2. Resolution.
		cached, single, probe = b.resolutionRows()
		if err := b.runGroup([]*row{cached, single, probe}); err != nil {
			return err
		}
	}
	var brk, brkLoaded *row
	var tripCalls int64
	if run["breaker"] {
		// 3. Breaker fast-fail.
		if brk, brkLoaded, tripCalls, err = b.breakerRows(); err != nil {
			return err
		}
	}
	var scale []*row
	if run["scale"] {
		// 4. Scale.
		scale = []*row{b.scaleRow(1), b.scaleRow(4), b.scaleRow(16)}
		if err := b.runGroup(scale); err != nil {
			return err
		}
	}
	var batch []*batchRun
	if run["batch"] {
		// 6. Batch, with a config of its own.
		if batch, err = b.batchRuns(); err != nil {
			return err
		}
	}
	var prot *protection
	if run["protect"] {
		// 7. Protection, with a config of its own.
		if prot, err = b.protectRuns(); err != nil {
			return err
		}
	}
	var fl *fleet
	if run["fleet"] {
		// 8. Fleet: a config of its own, Redis and gateway processes.
		if fl, err = b.fleetRuns(); err != nil {
			return err
		}
	}

	if err := caddy.Stop(); err != nil {
		return fmt.Errorf("caddy.Stop: %v", err)
	}
	b.c.http.CloseIdleConnections()

	r := &b.out
	r.opts = o
	r.direct, r.proxy, r.gw, r.changing = direct, proxy, gw, changing
	r.unloaded = unloaded
	r.cached, r.single, r.probe = cached, single, probe
	r.probeFast = b.probeFast.tracked(freshProbe)
	r.probeSlow = b.probeSlow.tracked(freshProbe)
	r.breaker, r.breakerLoaded, r.tripCalls = brk, brkLoaded, tripCalls
	r.scale = scale
	r.micro = micro
	r.batch = batch
	r.protect = prot
	r.fleet = fl
	r.elapsed = time.Since(began)
	r.print(os.Stdout)
	return nil
}

// scaleProviders returns n digicert providers on one stub with disjoint id_patterns
// 10[0-9]{3}, 11[0-9]{3}, ...: the last one owns the ID its row sends (scaleID).
func scaleProviders(s *stub, n int) obj {
	ps := obj{}
	for i := 0; i < n; i++ {
		ps[fmt.Sprintf("s%d-p%02d", n, i)] = digicertProvider(s, obj{"id_pattern": fmt.Sprintf("%d[0-9]{3}", 10+i)})
	}
	return ps
}

func scaleID(n int) int { return (10+n-1)*1000 + 345 }

// The rows.

// throughputRows returns the rows of 1. with w workers; suffix ends their keys.
func (b *bench) throughputRows(w int, suffix string) (direct, proxy, gw, changing *row) {
	directURL := b.main.url + stubKeyPath + strconv.Itoa(cachedID)
	proxyURL := "http://" + b.addr["proxy"] + stubKeyPath + strconv.Itoa(cachedID)
	gwURL := "http://" + b.addr["gateway"] + "/credentials/" + strconv.Itoa(cachedID) + "/status"
	active := []byte(`{"status":"active"}`)
	inactive := []byte(`{"status":"inactive"}`)
	stubs := []*stub{b.main}
	label := func(s string) string {
		if suffix != "" {
			return s + ", unloaded"
		}
		return s
	}
	direct = &row{key: "direct" + suffix, label: label("direct (GET stub)"), workers: w, want: 200, stubs: stubs, expectCalls: 1,
		build: func(int, int) (*http.Request, error) { return getReq(directURL, true) }}
	proxy = &row{key: "reverse_proxy" + suffix, label: label("reverse_proxy (GET)"), workers: w, want: 200, stubs: stubs, expectCalls: 1,
		build: func(int, int) (*http.Request, error) { return getReq(proxyURL, true) }}
	gw = &row{key: "gateway" + suffix, label: label("gateway (PUT cached ID)"), workers: w, want: 200, stubs: stubs, expectCalls: 1,
		build: func(int, int) (*http.Request, error) { return putReq(gwURL, active) }}
	// Each worker flips its own key, so that every PUT is a change: GET + PUT upstream.
	last := make([]bool, w) // true: the worker's key was last set inactive
	changing = &row{key: "gateway_changing" + suffix, label: label("gateway (changing)"), workers: w, want: 200, stubs: stubs, expectCalls: 2,
		build: func(worker, _ int) (*http.Request, error) {
			u := "http://" + b.addr["gateway"] + "/credentials/" + strconv.Itoa(changingIDBase+worker) + "/status"
			last[worker] = !last[worker]
			if last[worker] {
				return putReq(u, inactive)
			}
			return putReq(u, active)
		}}
	return direct, proxy, gw, changing
}

var (
	nextSingle atomic.Uint64
	nextProbe  atomic.Uint64
)

func (b *bench) resolutionRows() (cached, single, probe *row) {
	w := b.o.latencyWorkers
	res := "http://" + b.addr["resolve"] + "/credentials/"
	cachedURL := res + strconv.Itoa(cachedID) + "/status"
	cached = &row{key: "resolve_cached", label: "cached ID", workers: w, want: 200, stubs: []*stub{b.main}, expectCalls: 1,
		build: func(int, int) (*http.Request, error) { return getReq(cachedURL, false) }}
	nextSingle.Store(freshSingle)
	single = &row{key: "resolve_single", label: "single candidate (fresh ID)", workers: w, want: 200, stubs: []*stub{b.main}, expectCalls: 1,
		build: func(int, int) (*http.Request, error) {
			return getReq(res+strconv.FormatUint(nextSingle.Add(1), 10)+"/status", false)
		}}
	nextProbe.Store(freshProbe)
	pr := "http://" + b.addr["probe"] + "/credentials/"
	probe = &row{key: "probe", label: "two-candidate probe (fresh ID)", workers: w, want: 200, stubs: []*stub{b.probeFast, b.probeSlow}, expectCalls: 2,
		build: func(int, int) (*http.Request, error) {
			return getReq(pr+strconv.FormatUint(nextProbe.Add(1), 10)+"/status", false)
		}}
	return cached, single, probe
}

func (b *bench) scaleRow(n int) *row {
	u := "http://" + b.addr[fmt.Sprintf("scale%d", n)] + "/credentials/" + strconv.Itoa(scaleID(n)) + "/status"
	body := []byte(`{"status":"active"}`)
	label := fmt.Sprintf("%d providers", n)
	key := fmt.Sprintf("gateway_rps_%d_providers", n)
	if n == 1 {
		label, key = "1 provider", "gateway_rps_1_provider"
	}
	return &row{key: key, label: label, workers: b.o.workers, want: 200, stubs: []*stub{b.main}, expectCalls: 1,
		build: func(int, int) (*http.Request, error) { return putReq(u, body) }}
}

// breakerRows opens the breaker of the failing stub's provider (failures 1: the first 500
// opens it) and then measures one round of requests to it without load (latencyWorkers) and
// one with load (workers); the stub must get none of them.
func (b *bench) breakerRows() (unloaded, loaded *row, trip int64, err error) {
	u := "http://" + b.addr["breaker"] + "/credentials/" + strconv.Itoa(breakerID) + "/status"
	before := b.failing.calls.Load()
	if err := b.expect(getReq(u, false))(502, "provider-error"); err != nil {
		return nil, nil, 0, fmt.Errorf("tripping the breaker: %v", err)
	}
	if err := b.expect(getReq(u, false))(503, "provider-unavailable"); err != nil {
		return nil, nil, 0, fmt.Errorf("breaker not open after one failure: %v", err)
	}
	trip = b.failing.calls.Load() - before
	mk := func(key, label string, workers int) *row {
		return &row{key: key, label: label, workers: workers, want: 503, stubs: []*stub{b.failing}, expectCalls: 0,
			build: func(int, int) (*http.Request, error) { return getReq(u, false) }}
	}
	unloaded = mk("breaker_open", "breaker open (503), unloaded", b.o.latencyWorkers)
	loaded = mk("breaker_open_loaded", fmt.Sprintf("breaker open (503), %d workers", b.o.workers), b.o.workers)
	for _, r := range []*row{unloaded, loaded} {
		if b.o.warmup > 0 {
			if err := b.check(r, b.c.run(r, b.o.warmup)); err != nil {
				return nil, nil, 0, err
			}
		}
		res := b.c.run(r, b.o.round)
		if err := b.check(r, res); err != nil {
			return nil, nil, 0, err
		}
		r.rounds = append(r.rounds, res)
	}
	return unloaded, loaded, trip, nil
}

// runGroup runs a warm-up round of each row (discarded), then o.rounds rounds of each,
// alternating: round i runs the rows in an order rotated by i.
func (b *bench) runGroup(rows []*row) error {
	if b.o.warmup > 0 {
		for _, r := range rows {
			if err := b.check(r, b.c.run(r, b.o.warmup)); err != nil {
				return err
			}
		}
	}
	for i := 0; i < b.o.rounds; i++ {
		for j := range rows {
			r := rows[(i+j)%len(rows)]
			res := b.c.run(r, b.o.round)
			if err := b.check(r, res); err != nil {
				return err
			}
			r.rounds = append(r.rounds, res)
		}
	}
	return nil
}

// check fails the run when more than 0.1% of a round's answers were wrong.
func (b *bench) check(r *row, res roundResult) error {
	if res.n == 0 {
		return fmt.Errorf("%s: no answer in a round of %v", r.label, res.elapsed.Round(time.Millisecond))
	}
	if res.wrong*1000 > res.n {
		return fmt.Errorf("%s: %d of %d answers wrong (over 0.1%%); first: %s", r.label, res.wrong, res.n, res.firstBad)
	}
	return nil
}

// sanity checks, before any round, that each server answers what its row assumes.
func (b *bench) sanity() error {
	key := strconv.Itoa(cachedID)
	if err := b.expect(getReq(b.main.url+stubKeyPath+key, true))(200, `"status":"active"`); err != nil {
		return fmt.Errorf("direct: %v", err)
	}
	if err := b.expect(getReq(b.main.url+stubKeyPath+key, false))(401, "access_denied"); err != nil {
		return fmt.Errorf("direct without the partner key: %v", err)
	}
	if err := b.expect(getReq("http://"+b.addr["proxy"]+stubKeyPath+key, true))(200, `"api_key_last4":"4345"`); err != nil {
		return fmt.Errorf("reverse_proxy: %v", err)
	}
	gw := "http://" + b.addr["gateway"] + "/credentials/"
	if err := b.expect(putReq(gw+key+"/status", []byte(`{"status":"active"}`)))(200, `"provider":"gw-dc"`, `"changed":false`, `"status":"active"`); err != nil {
		return fmt.Errorf("gateway: %v", err)
	}
	// A key that no worker of the changing row uses: the flip is a change both ways.
	flip := gw + strconv.Itoa(changingIDBase-1) + "/status"
	if err := b.expect(putReq(flip, []byte(`{"status":"inactive"}`)))(200, `"changed":true`, `"status":"inactive"`); err != nil {
		return fmt.Errorf("gateway (changing): %v", err)
	}
	if err := b.expect(putReq(flip, []byte(`{"status":"active"}`)))(200, `"changed":true`, `"status":"active"`); err != nil {
		return fmt.Errorf("gateway (changing): %v", err)
	}
	before := b.probeFast.calls.Load() + b.probeSlow.calls.Load()
	if err := b.expect(getReq("http://"+b.addr["probe"]+"/credentials/"+strconv.Itoa(freshProbe-1)+"/status", false))(200, `"provider":"probe-owner"`); err != nil {
		return fmt.Errorf("probe: %v", err)
	}
	if n := b.probeFast.calls.Load() + b.probeSlow.calls.Load() - before; n != 2 {
		return fmt.Errorf("probe: %d upstream calls, want 2 (one per candidate)", n)
	}
	for _, n := range []int{1, 4, 16} {
		u := "http://" + b.addr[fmt.Sprintf("scale%d", n)] + "/credentials/" + strconv.Itoa(scaleID(n)) + "/status"
		if err := b.expect(putReq(u, []byte(`{"status":"active"}`)))(200, fmt.Sprintf(`"provider":"s%d-p%02d"`, n, n-1)); err != nil {
			return fmt.Errorf("%d providers: %v", n, err)
		}
	}
	return nil
}

// expect sends a request and checks the answer's status and that its body holds every one of
// the strings given.
func (b *bench) expect(req *http.Request, err error) func(status int, has ...string) error {
	return func(status int, has ...string) error {
		if err != nil {
			return err
		}
		resp, err := b.c.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != status {
			return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL, resp.StatusCode, status, bytes.TrimSpace(body))
		}
		for _, h := range has {
			if !strings.Contains(string(body), h) {
				return fmt.Errorf("%s %s: the answer lacks %s: %s", req.Method, req.URL, h, bytes.TrimSpace(body))
			}
		}
		return nil
	}
}

// runtimeLine describes the machine the numbers came from.
func runtimeLine() string {
	return fmt.Sprintf("%s %s/%s, GOMAXPROCS=%d, NumCPU=%d", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
}
