package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credgate/credgate/module/credentialstatus"
)

// Section 7, protection (issues 12 and 13), with a Caddy config of its own (caddy.Load
// replaces the others') and simulators of its own, seeded with protectPerVendor credentials
// each:
//
//   - the Idempotency-Key store's real heap over its max_memory: the largest heap/max of the
//     BenchmarkMemoryStoreHeap/... results of module/idempotency in the -micro file;
//   - the memory of batches: the bound the config sets (max_batches x (max_body + max_batch x
//     2 KiB), the most the batch bodies may hold at once), and the growth of the process's
//     RSS while max_batches maximal batches (max_batch items, bodies just under their limit)
//     run at once;
//   - a 10,000-item dry run at a provider with `rate 1000/s burst 10`: its time against the
//     floor (items x calls per item / rate), and the most calls the simulator received in any
//     one second (never more than rate + burst);
//   - vendor calls per changed item of a 10,000-item batch with reads on (a read and a write)
//     and with `reads off` (the write alone), the simulators' read route taken away for the
//     latter.
const (
	// protectPerVendor is how many credentials each simulator holds: the memory run's
	// batches take 4 x 10,000 / 4 vendors of each, without sharing one, and the rate run
	// 10,000 DigiCert ones.
	protectPerVendor = 10_000
	// protectItems is the size of the reads and rate batches.
	protectItems = 10_000
	// The rate run's provider: the adapter of its simulator, its rate (calls per second) and
	// its burst.
	rateVendor = "digicert"
	rateLimit  = 1000
	rateBurst  = 10
	// batchBytesPerItem is what a batch body may hold per item on top of max_body
	// (module/credentialstatus, batch.go: not exported).
	batchBytesPerItem = 2 << 10
	// maximalSlack is how much shorter than its limit a maximal batch body is.
	maximalSlack = 1 << 10
	// rssSampleEvery is how often the RSS sampler reads /proc/self/statm.
	rssSampleEvery = 5 * time.Millisecond
	// simDrainEvery is how often the memory run empties the simulators' request logs, so
	// that the RSS measured is not theirs (they keep every request, headers and body).
	simDrainEvery = 20 * time.Millisecond

	idempotencyPkg     = "github.com/credgate/credgate/module/idempotency"
	idempotencyHeapKey = "BenchmarkMemoryStoreHeap/"
)

// Provider names of the config: the reads-on ones are named after their vendor, as in
// section 6.
func writeOnlyName(vendor string) string { return vendor + "-reads-off" }

const rateProviderName = rateVendor + "-rate"

// protection is what section 7 measured.
type protection struct {
	readsOn, readsOff *batchRun
	readsOffGets      int // GETs the simulators received during the reads-off run (must be 0)

	rate      *batchRun
	rateFloor time.Duration // items x calls per item / rate
	rateMax1s int           // the most calls the simulator received in any one second
	// rateMaxSecond is the most calls in one of the seconds counted from the first call;
	// rateMaxGap the longest time between two calls (a stall of the process).
	rateMaxSecond int
	rateMaxGap    time.Duration

	// The memory run.
	maxBatches, maxBatch int
	maxBody              int64
	bound                uint64 // bytes
	memRuns              []*batchRun
	memBody              int64 // bytes of each batch body
	memElapsed           time.Duration
	rssBefore, rssPeak   uint64
	hwm                  bool   // the peak includes VmHWM (reset before the run), not only the samples
	memPeakHeap          uint64 // max HeapInuse during the run over the value before it
	memGoroutines        int    // the most goroutines of the process during the run
	goroutinesBefore     int
}

// limits reads max_batches, max_body and max_batch of a credential_status handler's JSON
// config, with the handler's defaults for those it leaves out.
func limits(handler obj) (maxBatches, maxBatch int, maxBody int64) {
	num := func(k string, def int64) int64 {
		switch v := handler[k].(type) {
		case int:
			return int64(v)
		case int64:
			return v
		case float64:
			return int64(v)
		}
		return def
	}
	return int(num("max_batches", credentialstatus.DefaultMaxBatches)), int(num("max_batch", credentialstatus.DefaultMaxBatch)),
		num("max_body", credentialstatus.DefaultMaxBody)
}

// protectRuns starts the simulators and the config, then runs the reads, rate and memory
// measurements.
func (b *bench) protectRuns() (*protection, error) {
	s := startBatchSims(protectPerVendor)
	defer s.close()

	// Three servers on the same simulators: the vendors' providers as in section 6 (reads on,
	// defaults), the same with reads off, and the rate-limited DigiCert provider.
	var on, off, rated strings.Builder
	for _, f := range s.fixtures {
		for k, v := range f.Env {
			if err := os.Setenv(k, v); err != nil {
				return nil, err
			}
		}
		u := s.sims[f.Name].URL
		fmt.Fprintf(&on, "provider %s %s {\nbase_url %s\n%s\n}\n", f.Name, f.Name, u, f.Block)
		fmt.Fprintf(&off, "provider %s %s {\nbase_url %s\n%s\nreads off\n}\n", writeOnlyName(f.Name), f.Name, u, f.Block)
		if f.Name == rateVendor {
			fmt.Fprintf(&rated, "provider %s %s {\nbase_url %s\n%s\nrate %d/s\nburst %d\n}\n", rateProviderName, f.Name, u, f.Block, rateLimit, rateBurst)
		}
	}
	if rated.Len() == 0 {
		return nil, fmt.Errorf("protection: no %s simulator among the fixtures", rateVendor)
	}
	handlers := make(map[string]obj)
	for name, blocks := range map[string]string{"on": on.String(), "off": off.String(), "rate": rated.String()} {
		providers, err := caddyfileProviders(blocks)
		if err != nil {
			return nil, err
		}
		handlers[name] = credentialStatus(providers)
	}
	addrs, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	cfg, err := caddyConfig(obj{
		"protect-on":   server(addrs[0], handlers["on"], notFound()),
		"protect-off":  server(addrs[1], handlers["off"], notFound()),
		"protect-rate": server(addrs[2], handlers["rate"], notFound()),
	})
	if err != nil {
		return nil, err
	}
	c, err := loadBatchServers("protection", cfg, addrs)
	if err != nil {
		return nil, err
	}
	defer c.CloseIdleConnections()
	url := func(addr string) string { return "http://" + addr + "/credentials/status" }

	p := &protection{}
	seed := uint64(0x7e57)
	check := func(r *batchRun) error {
		if r.wrong*1000 > r.items {
			return fmt.Errorf("batch (%s): %d of %d results wrong (over 0.1%%); first: %s", r.label, r.wrong, r.items, r.firstBad)
		}
		return nil
	}

	// A warm-up batch at each server (discarded), as in section 6: it opens the connections
	// and fetches the tokens of the vendors that issue them (one call per provider, not per
	// item); the last credential of each vendor, which the measured batches change again
	// after a reset.
	for _, w := range []struct {
		addr   string
		name   func(vendor string) string
		vendor string // only this vendor's, when not empty
		dryRun bool
	}{
		{addrs[0], func(v string) string { return v }, "", false},
		{addrs[1], writeOnlyName, "", false},
		{addrs[2], func(string) string { return rateProviderName }, rateVendor, true},
	} {
		var warm []batchItem
		for _, v := range s.vendors() {
			if w.vendor == "" || v == w.vendor {
				warm = append(warm, batchItem{id: s.ids[v][protectPerVendor-1], provider: w.name(v)})
			}
		}
		r := &batchRun{label: "warm-up", items: len(warm), dryRun: w.dryRun, writeOnly: w.name("") == writeOnlyName("")}
		if err := b.protectRun(c, url(w.addr), s, r, warm, batchBody(warm, w.dryRun)); err != nil {
			return nil, fmt.Errorf("batch (warm-up): %v", err)
		}
		if r.wrong > 0 {
			return nil, fmt.Errorf("batch (warm-up): %d of %d results wrong; first: %s", r.wrong, r.items, r.firstBad)
		}
	}
	time.Sleep(100 * time.Millisecond) // the rate provider's bucket fills again (10 tokens: 10 ms)

	// Reads on and off: 10,000 items, a quarter at each vendor, every one a change.
	items := vendorItems(s, protectItems, 0, seed)
	p.readsOn = &batchRun{key: "reads_on", label: fmt.Sprintf("%d items, reads on", len(items)), items: len(items), expectCalls: 2}
	if err := b.protectRun(c, url(addrs[0]), s, p.readsOn, items, batchBody(items, false)); err != nil {
		return nil, fmt.Errorf("batch (reads on): %v", err)
	}
	if err := check(p.readsOn); err != nil {
		return nil, err
	}
	offItems := slices.Clone(items)
	for i := range offItems {
		offItems[i].provider = writeOnlyName(offItems[i].provider)
	}
	p.readsOff = &batchRun{key: "reads_off", label: fmt.Sprintf("%d items, reads off", len(items)), items: len(items), writeOnly: true, expectCalls: 1}
	for _, srv := range s.servers() {
		srv.SetReadRoute(http.StatusMethodNotAllowed) // a vendor without the read: any GET fails
	}
	err = b.protectRun(c, url(addrs[1]), s, p.readsOff, offItems, batchBody(offItems, false))
	for _, srv := range s.servers() {
		p.readsOffGets += srv.Count(http.MethodGet)
		srv.SetReadRoute(0)
	}
	if err != nil {
		return nil, fmt.Errorf("batch (reads off): %v", err)
	}
	if err := check(p.readsOff); err != nil {
		return nil, err
	}

	// The rate-limited dry run: one read per item.
	rateItems := make([]batchItem, protectItems)
	for i := range rateItems {
		rateItems[i] = batchItem{id: s.ids[rateVendor][i], provider: rateProviderName}
	}
	p.rate = &batchRun{key: "rate", label: fmt.Sprintf("%d items, dry run, rate %d/s burst %d", protectItems, rateLimit, rateBurst), items: protectItems, dryRun: true, expectCalls: 1}
	if err := b.protectRun(c, url(addrs[2]), s, p.rate, rateItems, batchBody(rateItems, true)); err != nil {
		return nil, fmt.Errorf("batch (rate-limited): %v", err)
	}
	if err := check(p.rate); err != nil {
		return nil, err
	}
	p.rateFloor = time.Duration(float64(p.rate.items) * p.rate.expectCalls / rateLimit * float64(time.Second))
	var at []time.Time
	for _, q := range s.sims[rateVendor].Requests() {
		at = append(at, q.At)
	}
	p.rateMax1s = maxInWindow(at, time.Second)
	p.rateMaxSecond, p.rateMaxGap = perSecond(at)

	// The memory of batches.
	if err := b.memoryRun(c, url(addrs[0]), s, handlers["on"], p); err != nil {
		return nil, err
	}
	for _, r := range p.memRuns {
		if err := check(r); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// vendorItems takes n/4 IDs of each vendor from the from-th on, named with their vendor
// as provider, shuffled with a fixed seed.
func vendorItems(s *batchSims, n, from int, seed uint64) []batchItem {
	vendors := s.vendors()
	per := n / len(vendors)
	items := make([]batchItem, 0, n)
	for _, v := range vendors {
		for _, id := range s.ids[v][from : from+per] {
			items = append(items, batchItem{id: id, provider: v})
		}
	}
	rand.New(rand.NewPCG(seed, 0xba7c4)).Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	return items
}

// protectRun sends one batch from a reset state (every credential active, logs empty) and
// counts what the simulators received and hold afterwards; the request log is kept (the
// rate run reads its times).
func (b *bench) protectRun(c *http.Client, url string, s *batchSims, r *batchRun, items []batchItem, body []byte) error {
	s.reset()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	start := time.Now()
	err = r.send(c, req, items, start)
	r.elapsed = time.Since(start)
	if err != nil {
		return err
	}
	r.calls = s.calls()
	r.atVendors = s.inactive(owners(items))
	return nil
}

func owners(items []batchItem) map[string]string {
	m := make(map[string]string, len(items))
	for _, it := range items {
		m[it.id] = strings.TrimSuffix(strings.TrimSuffix(it.provider, "-reads-off"), "-rate")
	}
	return m
}

// callsPerChanged is the vendor calls per credential the batch changed at the simulators.
func (r *batchRun) callsPerChanged() float64 {
	if r.atVendors == 0 {
		return math.NaN()
	}
	return float64(r.calls) / float64(r.atVendors)
}

// maxInWindow returns the most times of ts within any window of length w (from a time on).
func maxInWindow(ts []time.Time, w time.Duration) int {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// perSecond counts the times in the seconds from the first one on and returns the most of
// one second, and the longest gap between two times.
func perSecond(ts []time.Time) (most int, gap time.Duration) {
	if len(ts) == 0 {
		return 0, 0
	}
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	count := map[int64]int{}
	for i, t := range ts {
		k := int64(t.Sub(ts[0]) / time.Second)
		count[k]++
		most = max(most, count[k])
		if i > 0 {
			gap = max(gap, t.Sub(ts[i-1]))
		}
	}
	return most, gap
}

// memoryRun sends max_batches maximal batches at once, each of max_batch items (a quarter at
// each vendor, IDs no other batch has, every one a change) in a body just under its limit:
// each item carries a reason of the longest length and is padded with spaces. The bodies are
// generated as they are sent, so that the client holds none of them. The simulators' request
// logs are emptied all along. The RSS of the process is sampled, and VmHWM read at the end
// when it could be reset before.
func (b *bench) memoryRun(c *http.Client, url string, s *batchSims, handler obj, p *protection) error {
	p.maxBatches, p.maxBatch, p.maxBody = limits(handler)
	limit := p.maxBody + int64(p.maxBatch)*batchBytesPerItem
	p.bound = uint64(p.maxBatches) * uint64(limit)
	per := p.maxBatch / len(s.fixtures)
	if need := p.maxBatches * per; need > protectPerVendor || per*len(s.fixtures) != p.maxBatch {
		return fmt.Errorf("memory run: %d batches of %d items need %d credentials at each of %d simulators, which hold %d", p.maxBatches, p.maxBatch, need, len(s.fixtures), protectPerVendor)
	}
	reason := strings.Repeat("r", credentialstatus.MaxReasonLength)
	type batch struct {
		r     *batchRun
		items []batchItem
		gen   *bodyGen
	}
	batches := make([]batch, p.maxBatches)
	for k := range batches {
		items := vendorItems(s, p.maxBatch, k*per, uint64(k)+0x3e3)
		gen, err := newBodyGen(items, reason, limit-maximalSlack)
		if err != nil {
			return err
		}
		batches[k] = batch{
			r:     &batchRun{key: fmt.Sprintf("memory_%d", k), label: fmt.Sprintf("maximal batch %d of %d", k+1, p.maxBatches), items: len(items), expectCalls: 2},
			items: items,
			gen:   gen,
		}
	}
	p.memBody = limit - maximalSlack

	s.reset()
	drain := make(chan struct{})
	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		t := time.NewTicker(simDrainEvery)
		defer t.Stop()
		for {
			select {
			case <-drain:
				return
			case <-t.C:
				for _, srv := range s.servers() {
					srv.ResetLog()
				}
			}
		}
	}()
	runtime.GC()
	debug.FreeOSMemory() // what earlier sections left is given back: the growth is this run's
	p.hwm = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	var err error
	if p.rssBefore, err = rss(); err != nil {
		close(drain)
		drained.Wait()
		return fmt.Errorf("memory run: %v", err)
	}
	heapBefore := readHeap()
	heap := startHeapSampler(batchSampleEvery)
	p.goroutinesBefore = runtime.NumGoroutine()
	sampler := startRSSSampler(rssSampleEvery)
	errs := make([]error, len(batches))
	var wg sync.WaitGroup
	start := time.Now()
	for k := range batches {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			x := batches[k]
			req, err := http.NewRequest(http.MethodPost, url, io.NopCloser(x.gen))
			if err != nil {
				errs[k] = err
				return
			}
			req.ContentLength = p.memBody
			req.Header["Content-Type"] = []string{"application/json"}
			t0 := time.Now()
			errs[k] = x.r.send(c, req, x.items, t0)
			x.r.elapsed = time.Since(t0)
		}(k)
	}
	wg.Wait()
	p.memElapsed = time.Since(start)
	p.rssPeak, p.memGoroutines = sampler.end()
	p.memPeakHeap = sub(heap.end().inuse, heapBefore.inuse)
	if p.hwm {
		if h, err := vmHWM(); err == nil {
			p.rssPeak = max(p.rssPeak, h)
		} else {
			p.hwm = false
		}
	}
	close(drain)
	drained.Wait()
	for k, x := range batches {
		if errs[k] != nil {
			return fmt.Errorf("batch (%s): %v", x.r.label, errs[k])
		}
		if x.gen.sent != p.memBody {
			return fmt.Errorf("batch (%s): the body was %d bytes, want %d", x.r.label, x.gen.sent, p.memBody)
		}
		x.r.atVendors = s.inactive(owners(x.items))
		p.memRuns = append(p.memRuns, x.r)
	}
	return nil
}

// bodyGen writes a batch body as it is read: {"items":[...],"reason":...,"dry_run":false},
// each item {"id":...,"status":"inactive","reason":<reason>} padded with spaces before its
// closing brace so that the body is exactly size bytes.
type bodyGen struct {
	items     []batchItem
	reason    string
	pad, rest int // every item gets pad spaces, the first rest items one more
	next      int // -1: the head; 0..n-1: that item; n: the tail; n+1: the end
	buf, back []byte
	spaces    []byte
	sent      int64
}

const (
	bodyGenHead = `{"items":[`
	bodyGenTail = `],"reason":"loadbench maximal batch","dry_run":false}`
)

func newBodyGen(items []batchItem, reason string, size int64) (*bodyGen, error) {
	g := &bodyGen{items: items, reason: reason, next: -1}
	base := int64(len(bodyGenHead) + len(bodyGenTail)) // item() counts the commas
	for i := range items {
		base += int64(len(g.item(nil, i, 0)))
	}
	extra := size - base
	if extra < 0 {
		return nil, fmt.Errorf("a body of %d items takes %d bytes without padding, over %d", len(items), base, size)
	}
	g.pad, g.rest = int(extra/int64(len(items))), int(extra%int64(len(items)))
	g.spaces = bytes.Repeat([]byte{' '}, g.pad+1)
	return g, nil
}

// item appends item i with pad spaces (a comma before it unless it is the first).
func (g *bodyGen) item(dst []byte, i, pad int) []byte {
	if i > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, `{"id":"`...)
	dst = append(dst, g.items[i].id...)
	dst = append(dst, `","status":"inactive","reason":"`...)
	dst = append(dst, g.reason...)
	dst = append(dst, '"')
	dst = append(dst, g.spaces[:pad]...)
	return append(dst, '}')
}

func (g *bodyGen) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		n := len(g.items)
		switch {
		case g.next < 0:
			g.buf = append(g.back[:0], bodyGenHead...)
		case g.next < n:
			pad := g.pad
			if g.next < g.rest {
				pad++
			}
			g.buf = g.item(g.back[:0], g.next, pad)
		case g.next == n:
			g.buf = append(g.back[:0], bodyGenTail...)
		default:
			return 0, io.EOF
		}
		g.back = g.buf
		g.next++
	}
	k := copy(p, g.buf)
	g.buf = g.buf[k:]
	g.sent += int64(k)
	return k, nil
}

// rss is the process's resident set size now (/proc/self/statm).
func rss() (uint64, error) {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/self/statm: %q", raw)
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * uint64(os.Getpagesize()), nil
}

// vmHWM is the process's peak RSS since it started or since it was reset
// (/proc/self/clear_refs), from /proc/self/status.
func vmHWM() (uint64, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// rssSampler reads the RSS every so often in a goroutine and keeps the highest.
type rssSampler struct {
	stop       chan struct{}
	wg         sync.WaitGroup
	peak       uint64
	goroutines int // the most goroutines seen
}

func startRSSSampler(every time.Duration) *rssSampler {
	h := &rssSampler{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v, err := rss(); err == nil {
				h.peak = max(h.peak, v)
			}
			h.goroutines = max(h.goroutines, runtime.NumGoroutine())
			select {
			case <-h.stop:
				if v, err := rss(); err == nil {
					h.peak = max(h.peak, v)
				}
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *rssSampler) end() (peak uint64, goroutines int) {
	close(h.stop)
	h.wg.Wait()
	return h.peak, h.goroutines
}

// idempotencyHeap returns the largest heap/max of the BenchmarkMemoryStoreHeap/... results
// of module/idempotency, the name of that benchmark, and how many there were.
func (m *microInfo) idempotencyHeap() (worst float64, name string, n int) {
	if m == nil {
		return 0, "", 0
	}
	for _, b := range m.benches {
		if b.pkg != idempotencyPkg || !strings.HasPrefix(b.name, idempotencyHeapKey) {
			continue
		}
		v, ok := b.value("heap/max")
		if !ok {
			continue
		}
		if n++; n == 1 || v > worst {
			worst, name = v, b.name
		}
	}
	return worst, name, n
}

const (
	protectFmt     = "  %-38s %10s  %-8s  %s\n"
	protectHeadFmt = "  %-38s %10s  %-8s  %s\n"
)

// kvName is the name of the memory run's growth figure: batch_peak_rss_growth_mib_4x10000.
func (p *protection) kvName() string {
	return fmt.Sprintf("batch_peak_rss_growth_mib_%dx%d", p.maxBatches, p.maxBatch)
}

// printProtect prints section 7 and notes what did not go as it must.
func (r *report) printProtect(w io.Writer) {
	p := r.protect
	if p == nil && r.micro == nil {
		return
	}
	fmt.Fprintln(w, "\n7. Protection (issues 12 and 13): the Idempotency-Key store's heap, the memory of batches, a rate-limited batch, reads on/off")
	fmt.Fprintf(w, protectHeadFmt, "figure", "value", "goal", "what")
	num := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	if worst, name, n := r.micro.idempotencyHeap(); n > 0 {
		verdict := "met"
		if worst > 1 {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, protectFmt, "idem_heap_over_max_memory", num(worst, 3), "<= 1.0", fmt.Sprintf("%s: the largest heap/max of %d BenchmarkMemoryStoreHeap runs (%s; module/idempotency: live heap after filling a store to 3x its max_memory, over max_memory)", verdict, n, strings.TrimPrefix(name, "BenchmarkMemoryStoreHeap/")))
	} else if r.micro != nil {
		fmt.Fprintln(w, "  idem_heap_over_max_memory: no BenchmarkMemoryStoreHeap results of module/idempotency in the micro benchmarks")
	}
	if p == nil {
		return
	}
	fmt.Fprintf(w, protectFmt, "batch_memory_bound_mib", num(mib(p.bound), 1), "", fmt.Sprintf("max_batches %d x (max_body %d + max_batch %d x %d) bytes, as the config sets them: the most the batch bodies may hold at once", p.maxBatches, p.maxBody, p.maxBatch, batchBytesPerItem))
	growth := mib(sub(p.rssPeak, p.rssBefore))
	peakHow := "VmRSS sampled every " + rssSampleEvery.String() + " and VmHWM (reset before)"
	if !p.hwm {
		peakHow = "VmRSS sampled every " + rssSampleEvery.String() + " (VmHWM could not be reset)"
	}
	fmt.Fprintf(w, protectFmt, p.kvName(), num(growth, 1), "", fmt.Sprintf("%.2fx the bound: peak RSS of the whole process (%s) - RSS before (%.1f MiB, after a GC and FreeOSMemory)", growth/mib(p.bound), peakHow, mib(p.rssBefore)))
	fmt.Fprintf(w, "  %-38s %10s  %-8s  %d batches at once, %d items each (a quarter at each vendor, every item a change), bodies of %d bytes (limit - %d; a %d-byte reason\n", "", "", "", p.maxBatches, p.maxBatch, p.memBody, maximalSlack, credentialstatus.MaxReasonLength)
	fmt.Fprintf(w, "  %-38s %10s  %-8s  per item, padded with spaces), generated as sent; %.2f s for all; peak HeapInuse over before %.1f MiB; the simulators' logs emptied every %v;\n", "", "", "", p.memElapsed.Seconds(), mib(p.memPeakHeap), simDrainEvery)
	fmt.Fprintf(w, "  %-38s %10s  %-8s  the RSS is the process's: Caddy with the gateway, the simulators and this client (which holds no body)\n", "", "", "")
	var secs []string
	for _, x := range p.memRuns {
		secs = append(secs, num(x.elapsed.Seconds(), 2))
	}
	fmt.Fprintf(w, "  %-38s %10s  %-8s  each batch's seconds: %s; goroutines of the process: %d before, at most %d during the run\n", "", "", "", strings.Join(secs, " "), p.goroutinesBefore, p.memGoroutines)
	over := p.rate.elapsed.Seconds() / p.rateFloor.Seconds()
	verdict := "met"
	if over > 1.1 {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, protectFmt, "rate_batch_seconds", num(p.rate.elapsed.Seconds(), 2), "", fmt.Sprintf("%s at the %s simulator (%.4f calls/item)", p.rate.label, rateVendor, p.rate.callsPerItem()))
	fmt.Fprintf(w, protectFmt, "rate_batch_floor_seconds", num(p.rateFloor.Seconds(), 2), "", fmt.Sprintf("%d items x %s call per item / %d per second", p.rate.items, num(p.rate.expectCalls, 0), rateLimit))
	fmt.Fprintf(w, protectFmt, "rate_batch_over_floor", num(over, 3), "<= 1.1", verdict)
	limitVerdict := "held"
	if p.rateMax1s > rateLimit+rateBurst {
		limitVerdict = "EXCEEDED"
	}
	fmt.Fprintf(w, protectFmt, "rate_batch_max_calls_in_1s", strconv.Itoa(p.rateMax1s), "<= "+strconv.Itoa(rateLimit+rateBurst), fmt.Sprintf("%s: the most calls the simulator received in any one-second window (rate + burst = %d)", limitVerdict, rateLimit+rateBurst))
	secondVerdict := "held"
	if p.rateMaxSecond > rateLimit+rateBurst {
		secondVerdict = "EXCEEDED"
	}
	fmt.Fprintf(w, protectFmt, "rate_batch_max_calls_per_second", strconv.Itoa(p.rateMaxSecond), "<= "+strconv.Itoa(rateLimit+rateBurst), fmt.Sprintf("%s: the most calls in one of the seconds counted from the batch's first call; the longest pause between two calls %.1f ms", secondVerdict, ms(p.rateMaxGap)))
	fmt.Fprintf(w, "  %-38s %10s  %-8s  (a window can hold more than rate + burst after a pause of the process: the calls whose turn came during it go out\n", "", "", "")
	fmt.Fprintf(w, "  %-38s %10s  %-8s  together, up to max_concurrent of them, and the bucket has refilled meanwhile)\n", "", "", "")
	fmt.Fprintf(w, protectFmt, "calls_per_changed_item_reads_on", num(p.readsOn.callsPerChanged(), 4), "2", fmt.Sprintf("%s: %d vendor calls, %d credentials changed at the simulators; summary %s", p.readsOn.label, p.readsOn.calls, p.readsOn.atVendors, p.readsOn.summaryText()))
	fmt.Fprintf(w, protectFmt, "calls_per_changed_item_reads_off", num(p.readsOff.callsPerChanged(), 4), "1.0", fmt.Sprintf("%s (read route gone: GET 405): %d vendor calls (%d GETs), %d changed; summary %s", p.readsOff.label, p.readsOff.calls, p.readsOffGets, p.readsOff.atVendors, p.readsOff.summaryText()))

	// What must hold for the rows to measure what they say.
	for _, x := range append([]*batchRun{p.readsOn, p.readsOff, p.rate}, p.memRuns...) {
		if x.wrong > 0 {
			r.problems = append(r.problems, fmt.Sprintf("protection, %s: %d results wrong; first: %s", x.label, x.wrong, x.firstBad))
		}
		want := x.items
		if x.dryRun {
			want = 0
		}
		if x.atVendors != want {
			r.problems = append(r.problems, fmt.Sprintf("protection, %s: the simulators hold %d of the %d credentials inactive afterwards, want %d", x.label, x.atVendors, x.items, want))
		}
		if x.summary == nil || x.summary["failed"] != 0 {
			r.problems = append(r.problems, fmt.Sprintf("protection, %s: summary %s", x.label, x.summaryText()))
		}
	}
	for _, x := range []*batchRun{p.readsOn, p.readsOff, p.rate} {
		if x.callsPerItem() != x.expectCalls {
			r.problems = append(r.problems, fmt.Sprintf("protection, %s: %.4f upstream calls per item, expected %s", x.label, x.callsPerItem(), num(x.expectCalls, 0)))
		}
	}
	if p.readsOffGets != 0 {
		r.problems = append(r.problems, fmt.Sprintf("protection, reads off: the simulators received %d GETs", p.readsOffGets))
	}
}

// addProtect adds section 7's name=value lines.
func (r *report) addProtect() {
	if worst, _, n := r.micro.idempotencyHeap(); n > 0 {
		r.add("idem_heap_over_max_memory", worst)
	}
	p := r.protect
	if p == nil {
		return
	}
	r.add("batch_memory_bound_mib", mib(p.bound))
	r.add(p.kvName(), mib(sub(p.rssPeak, p.rssBefore)))
	r.add("rate_batch_seconds", p.rate.elapsed.Seconds())
	r.add("rate_batch_floor_seconds", p.rateFloor.Seconds())
	r.add("rate_batch_over_floor", p.rate.elapsed.Seconds()/p.rateFloor.Seconds())
	r.add("rate_batch_max_calls_in_1s", float64(p.rateMax1s))
	r.add("rate_batch_max_calls_per_second", float64(p.rateMaxSecond))
	r.add("calls_per_changed_item_reads_on", math.Round(p.readsOn.callsPerChanged()*10000)/10000)
	r.add("calls_per_changed_item_reads_off", math.Round(p.readsOff.callsPerChanged()*10000)/10000)
}
