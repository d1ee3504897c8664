package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/credgate/credgate/module/provider/providertest"
	_ "github.com/credgate/credgate/tests/vendors"
)

// Section 6, the batch: POST /credentials/status with batchPerVendor credentials at each of
// the vendor simulators of tests/vendors (real HTTP servers, no artificial latency), all
// active, asked to go inactive in one batch, shuffled across the vendors. It runs after the
// other sections, with a Caddy config of its own (caddy.Load replaces theirs).
const (
	batchPerVendor = 2500 // credentials seeded at each simulator: 4 x 2,500 = 10,000 items
	batchSmall     = 2500 // items of the smaller batch of the linearity check
	batchWarmup    = 400  // items of the warm-up batch (discarded): it opens the connections
	// batchRepeats is how many times the two JSON batches of the linearity check run,
	// alternating; each is reported by its median run. A run lasts about a second at most,
	// short enough for the machine's noise to show in one.
	batchRepeats = 3
	// batchSampleEvery is how often the heap sampler reads the runtime's heap metrics.
	batchSampleEvery = 10 * time.Millisecond
)

// batchSims are the simulators of every vendor of tests/vendors, each started from its
// fixture (seeded for tests, the account its Block configures), and the IDs seeded at each,
// in each vendor's own format (Fixture.BulkID: no ID matches another vendor's id_pattern, so
// that each item has one candidate and resolution makes no call).
type batchSims struct {
	fixtures []providertest.Fixture
	sims     map[string]*providertest.Sim // vendor -> its simulator
	ids      map[string][]string          // vendor -> its IDs
}

// vendors are the batch's providers, named after their adapters.
func (s *batchSims) vendors() []string {
	var out []string
	for _, f := range s.fixtures {
		out = append(out, f.Name)
	}
	return out
}

// startBatchSims starts the simulators, perVendor credentials seeded at each.
func startBatchSims(perVendor int) *batchSims {
	s := &batchSims{fixtures: providertest.Fixtures(), sims: map[string]*providertest.Sim{}, ids: map[string][]string{}}
	for _, f := range s.fixtures {
		s.sims[f.Name] = f.Start("")
		ids := make([]string, perVendor)
		for n := range ids {
			ids[n] = f.BulkID(n)
		}
		s.ids[f.Name] = ids
	}
	s.reset()
	return s
}

func (s *batchSims) close() {
	for _, srv := range s.servers() {
		srv.Close()
	}
}

func (s *batchSims) servers() []*providertest.Server {
	var out []*providertest.Server
	for _, f := range s.fixtures {
		out = append(out, s.sims[f.Name].Server)
	}
	return out
}

// reset makes every credential active again (each add replaces the one of that ID), and
// empties the simulators' request logs, so that every run starts from the same state and
// counts its own calls.
func (s *batchSims) reset() {
	for _, f := range s.fixtures {
		for _, id := range s.ids[f.Name] {
			s.sims[f.Name].Add(id)
		}
	}
	for _, srv := range s.servers() {
		srv.ResetLog()
	}
}

// calls is every request the simulators logged since the last reset.
func (s *batchSims) calls() int64 {
	var n int64
	for _, srv := range s.servers() {
		n += int64(srv.Count(""))
	}
	return n
}

// inactive counts the credentials of ids (ID -> vendor) that the simulators do not hold
// active (Palisade's active flag off, ZStack's expiry passed, Prefactor's token suspended,
// DigiCert's key inactive).
func (s *batchSims) inactive(ids map[string]string) int {
	n := 0
	for id, v := range ids {
		if sim, ok := s.sims[v]; ok && !sim.Active(id) {
			n++
		}
	}
	return n
}

// batchConfig is the gateway with one provider per simulator, named after its vendor and
// configured as the vendor's fixture says (its secrets set in the environment for the
// {env.X} placeholders), each with its default max_concurrent (8).
func batchConfig(addr string, s *batchSims) ([]byte, error) {
	var block strings.Builder
	for _, f := range s.fixtures {
		for k, v := range f.Env {
			if err := os.Setenv(k, v); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(&block, "provider %s %s {\nbase_url %s\n%s\n}\n", f.Name, f.Name, s.sims[f.Name].URL, f.Block)
	}
	providers, err := caddyfileProviders(block.String())
	if err != nil {
		return nil, err
	}
	return caddyConfig(obj{"batch": server(addr, credentialStatus(providers), notFound())})
}

// caddyfileProviders adapts the provider blocks of a credential_status Caddyfile block to
// the handler's JSON "providers", as `caddy adapt` would.
func caddyfileProviders(blocks string) (obj, error) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		return nil, fmt.Errorf("no caddyfile adapter")
	}
	site := "http://localhost {\ncredential_status {\n" + blocks + "}\n}\n"
	raw, warnings, err := adapter.Adapt(caddyfile.Format([]byte(site)), nil)
	if err != nil {
		return nil, fmt.Errorf("adapting the fixtures' provider blocks: %v", err)
	}
	if len(warnings) > 0 {
		return nil, fmt.Errorf("adapting the fixtures' provider blocks: %v", warnings)
	}
	var cfg any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	if p := findProviders(cfg); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("no credential_status handler in the adapted config: %s", raw)
}

// findProviders returns the "providers" of the first credential_status handler in v.
func findProviders(v any) obj {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "credential_status" {
			if p, ok := v["providers"].(map[string]any); ok {
				return p
			}
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if p := findProviders(v[k]); p != nil {
				return p
			}
		}
	case []any:
		for _, e := range v {
			if p := findProviders(e); p != nil {
				return p
			}
		}
	}
	return nil
}

// batchRun is one batch: what was sent, and what it measured.
type batchRun struct {
	key, label string
	items      int
	stream     bool // Accept: application/x-ndjson, the lines read as they come
	dryRun     bool
	// writeOnly: the items' provider has reads off, so a result says "changed": null
	// (nothing was read) with the status asked (section 7).
	writeOnly bool
	// expectCalls is the upstream calls one item must cause: a read and a write, or a read.
	expectCalls float64

	elapsed   time.Duration // from sending the request to the end of the answer, parsed
	firstLine time.Duration // stream: from sending to the first result line
	calls     int64         // requests the simulators received
	summary   map[string]int
	wrong     int // results that are not what the item asked, or missing
	firstBad  string
	atVendors int // credentials the simulators hold inactive afterwards

	seq uint64 // the order it ran in
	// others are the other runs of a repeated batch, when this is their median one.
	others []*batchRun

	peakHeap  uint64  // max HeapInuse during the run, over the value before it
	peakLive  uint64  // max live heap (as of each GC) during the run, over the value before it
	alloc     uint64  // bytes allocated during the run (TotalAlloc delta)
	gcs       uint32  // garbage collections during the run
	simLogMiB float64 // what the simulators' request logs held at the end (heap freed by emptying them)
}

func (r *batchRun) itemsPerSecond() float64 { return float64(r.items) / r.elapsed.Seconds() }
func (r *batchRun) usPerItem() float64      { return us(r.elapsed) / float64(r.items) }
func (r *batchRun) callsPerItem() float64   { return float64(r.calls) / float64(r.items) }
func (r *batchRun) allocPerItem() float64   { return float64(r.alloc) / float64(r.items) }

// wantSummary is the only right summary: every item changed, or would change.
func (r *batchRun) wantSummary() map[string]int {
	if r.dryRun {
		return map[string]int{"would_change": r.items, "unchanged": 0, "failed": 0}
	}
	return map[string]int{"changed": r.items, "unchanged": 0, "pending": 0, "failed": 0}
}

// batchRuns starts the simulators, loads the batch's Caddy config, and runs a warm-up batch
// (discarded) and then the measured ones: 2,500 items and 10,000 items as one JSON answer
// (batchRepeats times each, alternating: their median runs), 10,000 streamed, and 10,000 as a
// dry run. The simulators are reset (all active, logs emptied) before each, so that every run
// changes every item.
func (b *bench) batchRuns() ([]*batchRun, error) {
	s := startBatchSims(batchPerVendor)
	defer s.close()
	addrs, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	cfg, err := batchConfig(addrs[0], s)
	if err != nil {
		return nil, err
	}
	c, err := loadBatchServers("batch", cfg, addrs)
	if err != nil {
		return nil, err
	}
	defer c.CloseIdleConnections()
	url := "http://" + addrs[0] + "/credentials/status"

	seed := uint64(0)
	one := func(r *batchRun, warmup bool) error {
		// The warm-up takes the last IDs of each vendor, the runs the first ones; each run
		// has a shuffle of its own.
		seed++
		r.seq = seed
		if err := b.batchRun(c, url, s, r, batchItems(s, r.items, warmup, seed)); err != nil {
			return fmt.Errorf("batch (%s): %v", r.label, err)
		}
		if r.wrong*1000 > r.items {
			return fmt.Errorf("batch (%s): %d of %d results wrong (over 0.1%%); first: %s", r.label, r.wrong, r.items, r.firstBad)
		}
		return nil
	}
	if err := one(&batchRun{label: "warm-up", items: batchWarmup, expectCalls: 2}, true); err != nil {
		return nil, err
	}

	all := len(s.fixtures) * batchPerVendor
	linear := []batchRun{
		{key: "batch_2500", label: fmt.Sprintf("%d items, JSON answer", batchSmall), items: batchSmall, expectCalls: 2},
		{key: "batch", label: fmt.Sprintf("%d items, JSON answer", all), items: all, expectCalls: 2},
	}
	reps := make([][]*batchRun, len(linear))
	for range batchRepeats {
		for k := range linear {
			r := linear[k] // a copy: a run of its own
			if err := one(&r, false); err != nil {
				return nil, err
			}
			reps[k] = append(reps[k], &r)
		}
	}
	runs := []*batchRun{medianRun(reps[0]), medianRun(reps[1])}
	for _, r := range []*batchRun{
		{key: "batch_stream", label: fmt.Sprintf("%d items, NDJSON stream", all), items: all, stream: true, expectCalls: 2},
		{key: "batch_dry_run", label: fmt.Sprintf("%d items, dry run (JSON)", all), items: all, dryRun: true, expectCalls: 1},
	} {
		if err := one(r, false); err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// medianRun returns the run of median time, with the others in its others.
func medianRun(rs []*batchRun) *batchRun {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b *batchRun) int { return cmp.Compare(a.elapsed, b.elapsed) })
	m := sorted[len(sorted)/2]
	for _, r := range rs {
		if r != m {
			m.others = append(m.others, r)
		}
	}
	return m
}

// seconds lists the times of a run and its others, in the order they ran.
func (r *batchRun) seconds() string {
	all := append([]*batchRun{r}, r.others...)
	slices.SortFunc(all, func(a, b *batchRun) int { return cmp.Compare(a.seq, b.seq) })
	var out []string
	for _, x := range all {
		out = append(out, strconv.FormatFloat(x.elapsed.Seconds(), 'f', 2, 64))
	}
	return strings.Join(out, " ")
}

// batchItem is one item sent: its ID and the provider that owns it.
type batchItem struct{ id, provider string }

// batchItems takes n/4 IDs of each vendor (the first ones, or the last when last is set) and
// shuffles them with a fixed seed.
func batchItems(s *batchSims, n int, last bool, seed uint64) []batchItem {
	vendors := s.vendors()
	per := n / len(vendors)
	items := make([]batchItem, 0, n)
	for _, v := range vendors {
		ids := s.ids[v][:per]
		if last {
			ids = s.ids[v][len(s.ids[v])-per:]
		}
		for _, id := range ids {
			items = append(items, batchItem{id: id, provider: v})
		}
	}
	rand.New(rand.NewPCG(seed, 0xba7c4)).Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	return items
}

// batchBody is the request: every item to inactive, the batch's reason, and dry_run.
func batchBody(items []batchItem, dryRun bool) []byte {
	out := make([]byte, 0, 64*len(items)+64)
	out = append(out, `{"items":[`...)
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"id":"`...)
		out = append(out, it.id...)
		out = append(out, `","status":"inactive"}`...)
	}
	out = append(out, `],"reason":"loadbench batch","dry_run":`...)
	out = strconv.AppendBool(out, dryRun)
	return append(out, '}')
}

// batchResult is one item's result, or (streamed) the last line's summary: only the members
// the checks read.
type batchResult struct {
	Index       *int   `json:"index"`
	ID          string `json:"id"`
	Provider    string `json:"provider"`
	Status      string `json:"status"`
	Changed     *bool  `json:"changed"`
	WouldChange *bool  `json:"would_change"`
	Current     string `json:"current"`
	Error       *struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
	} `json:"error"`
	Summary map[string]int `json:"summary"`
}

// check records a result that is not what item i asked: changed to inactive by its owner, or
// in a dry run, active and would change.
func (r *batchRun) check(items []batchItem, i int, res *batchResult) {
	bad := ""
	switch it := items[i]; {
	case res.Error != nil:
		bad = fmt.Sprintf("item %d (%s): error %s: %s", i, it.id, res.Error.Type, res.Error.Detail)
	case res.ID != it.id || res.Provider != it.provider:
		bad = fmt.Sprintf("item %d: id %q provider %q, want %q at %s", i, res.ID, res.Provider, it.id, it.provider)
	case r.dryRun && (res.WouldChange == nil || !*res.WouldChange || res.Current != "active"):
		bad = fmt.Sprintf("item %d (%s): dry run: current %q, would_change %v, want active and true", i, it.id, res.Current, ptrText(res.WouldChange))
	case r.writeOnly && (res.Changed != nil || res.Status != "inactive"):
		bad = fmt.Sprintf("item %d (%s): reads off: status %q, changed %v, want inactive and null", i, it.id, res.Status, ptrText(res.Changed))
	case !r.dryRun && !r.writeOnly && (res.Changed == nil || !*res.Changed || res.Status != "inactive"):
		bad = fmt.Sprintf("item %d (%s): status %q, changed %v, want inactive and true", i, it.id, res.Status, ptrText(res.Changed))
	}
	if bad != "" {
		r.wrong++
		if r.firstBad == "" {
			r.firstBad = bad
		}
	}
}

func ptrText(b *bool) string {
	if b == nil {
		return "absent"
	}
	return strconv.FormatBool(*b)
}

// batchRun sends one batch and reads its answer while a sampler follows the heap, then
// counts the simulators' calls and checks what they hold.
func (b *bench) batchRun(c *http.Client, url string, s *batchSims, r *batchRun, items []batchItem) error {
	s.reset()
	body := batchBody(items, r.dryRun)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	if r.stream {
		req.Header["Accept"] = []string{"application/x-ndjson"}
	}

	runtime.GC() // the previous run's garbage is not this run's cost
	before := readHeap()
	sampler := startHeapSampler(batchSampleEvery)
	start := time.Now()
	err = r.send(c, req, items, start)
	r.elapsed = time.Since(start)
	peak := sampler.end()
	after := readHeap()
	if err != nil {
		return err
	}
	r.peakHeap = sub(peak.inuse, before.inuse)
	r.peakLive = sub(peak.live, before.live)
	r.alloc = after.allocs - before.allocs
	r.gcs = after.gcs - before.gcs
	r.calls = s.calls()

	// The simulators keep every request they received (headers and body) until their log is
	// reset: that part of the heap is theirs, not the gateway's.
	runtime.GC()
	kept := readHeap().live
	for _, srv := range s.servers() {
		srv.ResetLog()
	}
	runtime.GC()
	r.simLogMiB = mib(sub(kept, readHeap().live))

	owners := make(map[string]string, len(items))
	for _, it := range items {
		owners[it.id] = it.provider
	}
	r.atVendors = s.inactive(owners)
	return nil
}

// send posts the batch and reads the answer: the JSON one decoded result by result, the
// stream line by line as it comes.
func (r *batchRun) send(c *http.Client, req *http.Request, items []batchItem, start time.Time) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("status %d, want 200: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	if r.stream {
		return r.readStream(resp.Body, items, start)
	}
	return r.readJSON(resp.Body, items)
}

// readJSON reads {"results": [...], "summary": {...}}: results in request order.
func (r *batchRun) readJSON(body io.Reader, items []batchItem) error {
	dec := json.NewDecoder(body)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("the answer is not a JSON object: %v", err)
	}
	n := 0
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case "results":
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return fmt.Errorf("results is not an array: %v", err)
			}
			for ; dec.More(); n++ {
				if n == len(items) {
					return fmt.Errorf("more than %d results", len(items))
				}
				var res batchResult
				if err := dec.Decode(&res); err != nil {
					return fmt.Errorf("result %d: %v", n, err)
				}
				r.check(items, n, &res)
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
		case "summary":
			if err := dec.Decode(&r.summary); err != nil {
				return fmt.Errorf("summary: %v", err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
		}
	}
	if n < len(items) {
		r.wrong += len(items) - n
		r.firstBad = cmpOr(r.firstBad, fmt.Sprintf("%d results for %d items", n, len(items)))
	}
	return nil
}

// readStream reads the NDJSON lines: one per item, with its index, in any order, then the
// summary.
func (r *batchRun) readStream(body io.Reader, items []batchItem, start time.Time) error {
	seen := make([]bool, len(items))
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		if r.firstLine == 0 {
			r.firstLine = time.Since(start)
		}
		var res batchResult
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			return fmt.Errorf("line %d: %v", n+1, err)
		}
		if res.Summary != nil {
			r.summary = res.Summary
			continue
		}
		switch {
		case res.Index == nil || *res.Index < 0 || *res.Index >= len(items):
			r.wrong++
			r.firstBad = cmpOr(r.firstBad, fmt.Sprintf("line %d: no index in 0..%d", n+1, len(items)-1))
		case seen[*res.Index]:
			r.wrong++
			r.firstBad = cmpOr(r.firstBad, fmt.Sprintf("line %d: index %d again", n+1, *res.Index))
		default:
			seen[*res.Index] = true
			r.check(items, *res.Index, &res)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for i, ok := range seen {
		if !ok {
			r.wrong++
			r.firstBad = cmpOr(r.firstBad, fmt.Sprintf("no line for item %d", i))
		}
	}
	if r.summary == nil {
		return fmt.Errorf("the stream ended without its summary line")
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// heapState is what the runtime says of its heap at one moment (runtime/metrics, which
// reads without stopping the world, unlike runtime.ReadMemStats).
type heapState struct {
	inuse  uint64 // HeapInuse: heap spans in use (objects + unused space in their spans)
	live   uint64 // the live heap as marked by the last GC
	allocs uint64 // TotalAlloc: bytes allocated since the start
	gcs    uint32
}

var heapMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/gc/heap/live:bytes",
	"/gc/heap/allocs:bytes",
	"/gc/cycles/total:gc-cycles",
}

func readHeap() heapState {
	s := make([]metrics.Sample, len(heapMetrics))
	return readHeapInto(s)
}

func readHeapInto(s []metrics.Sample) heapState {
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return heapState{inuse: v(0) + v(1), live: v(2), allocs: v(3), gcs: uint32(v(4))}
}

// heapSampler reads the heap every so often in a goroutine and keeps the highest values:
// the peak of a run that allocates and collects all along.
type heapSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak heapState
}

func startHeapSampler(every time.Duration) *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		s := make([]metrics.Sample, len(heapMetrics))
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			h.observe(readHeapInto(s))
			select {
			case <-h.stop:
				h.observe(readHeapInto(s))
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) observe(x heapState) {
	h.peak.inuse = max(h.peak.inuse, x.inuse)
	h.peak.live = max(h.peak.live, x.live)
}

// end stops the sampler and returns the peaks.
func (h *heapSampler) end() heapState {
	close(h.stop)
	h.wg.Wait()
	return h.peak
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// summaryText is a summary as name=count, in the order of the right one, anything else after.
func (r *batchRun) summaryText() string {
	want := r.wantSummary()
	var out []string
	order := []string{"changed", "would_change", "unchanged", "pending", "failed"}
	for _, k := range order {
		if _, ok := want[k]; !ok {
			if _, got := r.summary[k]; !got {
				continue
			}
		}
		out = append(out, k+"="+strconv.Itoa(r.summary[k]))
	}
	var extra []string
	for k, v := range r.summary {
		if !slices.Contains(order, k) {
			extra = append(extra, k+"="+strconv.Itoa(v))
		}
	}
	slices.Sort(extra)
	return strings.Join(append(out, extra...), " ")
}

// batchByKey returns the run of that key.
func (r *report) batchByKey(key string) *batchRun {
	for _, x := range r.batch {
		if x.key == key {
			return x
		}
	}
	return nil
}

const (
	batchRowFmt  = "  %-30s %6d %8.2f %8.0f %8.1f %10.4f %6s %9.1f %9.1f %9.0f %4d  %s\n"
	batchHeadFmt = "  %-30s %6s %8s %8s %8s %10s %6s %9s %9s %9s %4s  %s\n"
)

// printBatch prints section 6 and notes what did not go as it must: the upstream calls per
// item, the summary, and the credentials the simulators hold afterwards.
func (r *report) printBatch(w io.Writer) {
	if len(r.batch) == 0 {
		return
	}
	all, stream, small := r.batchByKey("batch"), r.batchByKey("batch_stream"), r.batchByKey("batch_2500")
	fmt.Fprintf(w, "\n6. Batch: POST /credentials/status, every item active -> inactive, shuffled across the vendors: %d credentials at each of\n", batchPerVendor)
	fmt.Fprintf(w, "   the %s simulators of tests/vendors (in process, no added latency); one provider per\n", strings.Join((&batchSims{fixtures: providertest.Fixtures()}).vendors(), ", "))
	fmt.Fprintf(w, "   vendor, max_concurrent 8 (default), items without provider (resolved by id_pattern); simulators reset before each run;\n")
	fmt.Fprintf(w, "   after a warm-up batch of %d items (discarded)\n", batchWarmup)
	fmt.Fprintf(w, batchHeadFmt, "run", "items", "seconds", "items/s", "us/item", "calls/item", "expect", "peak MiB", "live MiB", "B/item", "GCs", "summary")
	for _, x := range r.batch {
		expect := strconv.FormatFloat(x.expectCalls, 'f', 0, 64)
		if x.callsPerItem() != x.expectCalls {
			expect += "!"
			r.problems = append(r.problems, fmt.Sprintf("batch, %s: %.4f upstream calls per item, expected %s", x.label, x.callsPerItem(), strconv.FormatFloat(x.expectCalls, 'f', 0, 64)))
		}
		fmt.Fprintf(w, batchRowFmt, x.label, x.items, x.elapsed.Seconds(), x.itemsPerSecond(), x.usPerItem(), x.callsPerItem(), expect,
			mib(x.peakHeap), mib(x.peakLive), x.allocPerItem(), x.gcs, x.summaryText())
		for _, y := range append([]*batchRun{x}, x.others...) {
			if y != x && y.callsPerItem() != y.expectCalls {
				r.problems = append(r.problems, fmt.Sprintf("batch, %s (another run): %.4f upstream calls per item, expected %s", y.label, y.callsPerItem(), strconv.FormatFloat(y.expectCalls, 'f', 0, 64)))
			}
			if !maps.Equal(y.summary, y.wantSummary()) {
				r.problems = append(r.problems, fmt.Sprintf("batch, %s: summary %s", y.label, y.summaryText()))
			}
			if y.wrong > 0 {
				r.problems = append(r.problems, fmt.Sprintf("batch, %s: %d results wrong; first: %s", y.label, y.wrong, y.firstBad))
			}
			want := y.items
			if y.dryRun {
				want = 0
			}
			if y.atVendors != want {
				r.problems = append(r.problems, fmt.Sprintf("batch, %s: the simulators hold %d of the %d credentials inactive afterwards, want %d", y.label, y.atVendors, y.items, want))
			}
		}
	}
	fmt.Fprintln(w, "  calls/item: requests the four simulators received per item (expect: a read and a write; a dry run reads)")
	fmt.Fprintf(w, "  checked: every result (its ID, owner, changed/would_change), the summary, and at the simulators afterwards: %d of %d inactive\n", all.atVendors, all.items)
	fmt.Fprintf(w, "  streamed: the first line came %.1f ms after the request was sent, the last %.0f ms after (%d lines, then the summary)\n", ms(stream.firstLine), ms(stream.elapsed), stream.items)
	ratio := all.usPerItem() / small.usPerItem()
	fmt.Fprintf(w, "  the JSON answers ran %d times each, alternating; their rows are the median runs: %d items %s s, %d items %s s\n", len(all.others)+1, small.items, small.seconds(), all.items, all.seconds())
	fmt.Fprintf(w, "  linearity: %d items %.1f us/item, %d items %.1f us/item: ratio %.3f (1: total work grows linearly with items);\n", small.items, small.usPerItem(), all.items, all.usPerItem(), ratio)
	fmt.Fprintf(w, "    bytes allocated per item, which noise does not move: %.0f and %.0f (ratio %.3f)\n", small.allocPerItem(), all.allocPerItem(), all.allocPerItem()/small.allocPerItem())
	fmt.Fprintln(w, "  memory: the heap of the whole process, which the simulators, Caddy with the gateway, and this client share.")
	fmt.Fprintf(w, "    peak MiB = max HeapInuse (runtime/metrics, every %v) - HeapInuse before the run (after a GC): it holds garbage\n", batchSampleEvery)
	fmt.Fprintln(w, "    not yet collected too, so it follows the GC's pacing (GOGC) as much as what is kept; live MiB = the most the heap")
	fmt.Fprintln(w, "    held live at the end of a GC during the run, over the live heap before it. Both include the simulators' request")
	fmt.Fprintf(w, "    logs (providertest.Server keeps every request, headers and body): %.1f MiB at the end of the %d-item JSON run, %.1f streamed.\n", all.simLogMiB, all.items, stream.simLogMiB)
	fmt.Fprintln(w, "    B/item = bytes the process allocated during the run (TotalAlloc delta) / items: client, Caddy, gateway, simulators.")
	fmt.Fprintf(w, "  streamed vs JSON answer: live MiB %.1f vs %.1f; less the simulators' logs (their size at the end) %.1f vs %.1f\n",
		mib(stream.peakLive), mib(all.peakLive), max(mib(stream.peakLive)-stream.simLogMiB, 0), max(mib(all.peakLive)-all.simLogMiB, 0))
}

// addBatch adds section 6's name=value lines.
func (r *report) addBatch() {
	if len(r.batch) == 0 {
		return
	}
	all, stream, dry, small := r.batchByKey("batch"), r.batchByKey("batch_stream"), r.batchByKey("batch_dry_run"), r.batchByKey("batch_2500")
	round := func(v float64) float64 { return math.Round(v*10000) / 10000 }
	r.add("batch_items", float64(all.items))
	r.add("batch_seconds", all.elapsed.Seconds())
	r.add("batch_items_per_second", all.itemsPerSecond())
	r.add("batch_stream_seconds", stream.elapsed.Seconds())
	r.add("batch_stream_items_per_second", stream.itemsPerSecond())
	r.add("batch_stream_first_line_ms", ms(stream.firstLine))
	r.add("batch_dry_run_seconds", dry.elapsed.Seconds())
	r.add("batch_dry_run_items_per_second", dry.itemsPerSecond())
	r.add("batch_peak_heap_mib", mib(all.peakHeap))
	r.add("batch_stream_peak_heap_mib", mib(stream.peakHeap))
	r.add("batch_dry_run_peak_heap_mib", mib(dry.peakHeap))
	r.add("batch_peak_live_mib", mib(all.peakLive))
	r.add("batch_stream_peak_live_mib", mib(stream.peakLive))
	r.add("batch_sim_log_mib", all.simLogMiB)
	r.add("batch_alloc_bytes_per_item", math.Round(all.allocPerItem()))
	r.add("batch_stream_alloc_bytes_per_item", math.Round(stream.allocPerItem()))
	r.add("batch_dry_run_alloc_bytes_per_item", math.Round(dry.allocPerItem()))
	r.add("batch_upstream_calls_per_item", round(all.callsPerItem()))
	r.add("batch_stream_upstream_calls_per_item", round(stream.callsPerItem()))
	r.add("batch_dry_run_upstream_calls_per_item", round(dry.callsPerItem()))
	r.add("batch_2500_us_per_item", small.usPerItem())
	r.add("batch_10000_us_per_item", all.usPerItem())
	r.add("batch_linearity_ratio", all.usPerItem()/small.usPerItem())
	r.add("batch_2500_alloc_bytes_per_item", math.Round(small.allocPerItem()))
	wrong := 0
	for _, x := range r.batch {
		wrong += x.wrong
	}
	r.add("batch_wrong_results", float64(wrong))
}

// loadBatchServers loads cfg into the in-process Caddy, waits until addrs listen, and returns a
// client of its own for batches: one batch takes seconds, and the load client's timeout is for
// single requests. what names the section in errors.
func loadBatchServers(what string, cfg []byte, addrs []string) (*http.Client, error) {
	if err := caddy.Load(cfg, true); err != nil {
		return nil, fmt.Errorf("caddy.Load (%s): %v", what, err)
	}
	if err := waitListening(addrs, 10*time.Second); err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:              nil,
		DialContext:        (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression: true,
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}, nil
}
