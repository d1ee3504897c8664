package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// report is everything measured, printed as a table and then as name=value lines.
type report struct {
	opts                        options
	direct, proxy, gw, changing *row
	unloaded                    []*row // direct, reverse_proxy, gateway, one request at a time
	cached, single, probe       *row
	probeFast, probeSlow        map[uint64][2]time.Time
	breaker, breakerLoaded      *row
	tripCalls                   int64
	scale                       []*row
	micro                       *microInfo
	batch                       []*batchRun // 2,500 items, 10,000, 10,000 streamed, 10,000 dry run
	protect                     *protection
	fleet                       *fleet
	elapsed                     time.Duration
	kv                          []string
	problems                    []string
}

const (
	rowFmt  = "  %-34s %9.0f %9.1f %9.1f %9.2f %6s %9d %6d  %s\n"
	headFmt = "  %-34s %9s %9s %9s %9s %6s %9s %6s  %s\n"
)

func (r *report) add(name string, v any) {
	var s string
	switch x := v.(type) {
	case float64:
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			s = "NaN"
		case x == math.Trunc(x) && math.Abs(x) < 1e15:
			s = strconv.FormatFloat(x, 'f', 0, 64)
		default:
			s = strconv.FormatFloat(x, 'f', 3, 64)
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
	default:
		s = fmt.Sprint(x)
	}
	r.kv = append(r.kv, name+"="+s)
}

func (r *report) head(w io.Writer, title string) {
	fmt.Fprintf(w, "\n%s\n", title)
	fmt.Fprintf(w, headFmt, "row", "rps", "p50 us", "p99 us", "calls/req", "expect", "answers", "wrong", "rps by round")
}

// line prints a row: medians across its rounds, upstream calls per request over all of them.
func (r *report) line(w io.Writer, x *row) {
	n, wrong := x.totals()
	var by []string
	for _, rr := range x.rounds {
		by = append(by, strconv.FormatFloat(rr.rps, 'f', 0, 64))
	}
	calls := x.callsPerReq()
	expect := strconv.FormatFloat(x.expectCalls, 'f', 0, 64)
	if calls != x.expectCalls {
		expect += "!"
		r.problems = append(r.problems, fmt.Sprintf("%s: %.4f upstream calls per request, expected %s", x.label, calls, strconv.FormatFloat(x.expectCalls, 'f', 0, 64)))
	}
	fmt.Fprintf(w, rowFmt, x.label, x.medRPS(), x.medP50(), x.medP99(), calls, expect, n, wrong, strings.Join(by, " "))
}

func (r *report) print(w io.Writer) {
	o := r.opts
	caddyVersion, _ := caddy.Version()
	fmt.Fprintln(w, "credgate load benchmark (tests/bench/cmd/loadbench)")
	fmt.Fprintf(w, "  go/runtime     %s\n", runtimeLine())
	fmt.Fprintf(w, "  cpu            %s\n", cpuModel(r.micro))
	fmt.Fprintf(w, "  caddy          %s (in process: caddy.Load, admin off, logs at ERROR)\n", caddyVersion)
	fmt.Fprintf(w, "  rounds         %d x %v per row, rows alternating (order rotated each round), after a %v warm-up round per row (discarded); figures are medians across rounds\n", o.rounds, o.round, o.warmup)
	fmt.Fprintf(w, "  load client    %s\n", wrap(clientDoc, 100, "                 "))
	fmt.Fprintf(w, "  upstream       in-process net/http stubs on 127.0.0.1 answering DigiCert's API (GET 200 with an API key, PUT 204); stub, Caddy and client share this process and its %d cores\n", runtime.NumCPU())
	fmt.Fprintln(w, "  columns        calls/req: upstream calls the stubs received per client request (expect: what the row must cause; ! = it did not)")
	fmt.Fprintln(w, "  note           a shared machine: figures are noisy; compare rows of one run, not runs")

	// Each section is printed when it ran (-sections).
	var ratio, loadedOverhead, loadedProxyOverhead, uOverhead, uProxyOverhead float64
	if r.direct != nil {
		// 1.
		r.head(w, fmt.Sprintf("1. Throughput and latency: %d workers, one upstream GET per request (changing: GET + PUT)", o.workers))
		for _, x := range []*row{r.direct, r.proxy, r.gw, r.changing} {
			r.line(w, x)
		}
		ratio = r.gw.medRPS() / r.proxy.medRPS()
		loadedOverhead = r.gw.medP50() - r.direct.medP50()
		loadedProxyOverhead = r.proxy.medP50() - r.direct.medP50()
		fmt.Fprintf(w, "  gateway / reverse_proxy throughput: %.3f (target >= 0.9, aiming >= 1.0)\n", ratio)
		fmt.Fprintf(w, "  loaded: gateway p50 - direct p50 %.1f us; reverse_proxy p50 - direct p50 %.1f us\n", loadedOverhead, loadedProxyOverhead)
		fmt.Fprintf(w, "  (with %d workers in flight a p50 is mostly queueing, about workers / rps, so the gateway's own\n", o.workers)
		fmt.Fprintln(w, "  cost is read without load: gateway_p50_overhead_us is the unloaded difference below)")
		fmt.Fprintf(w, "  the same without load (%d worker(s), one request at a time, same rounds logic):\n", o.latencyWorkers)
		for _, x := range r.unloaded {
			r.line(w, x)
		}
		uOverhead = r.unloaded[2].medP50() - r.unloaded[0].medP50()
		uProxyOverhead = r.unloaded[1].medP50() - r.unloaded[0].medP50()
		fmt.Fprintf(w, "  unloaded: gateway p50 - direct p50 %.1f us (gateway_p50_overhead_us, target <= 100); reverse_proxy p50 - direct p50 %.1f us\n", uOverhead, uProxyOverhead)
	}

	var probeMS, slower, sum, gapMS, slowerReal, sumReal float64
	verdictKV := ""
	if r.cached != nil {
		// 2.
		r.head(w, fmt.Sprintf("2. Resolution: GET /credentials/{id}/status, %d worker(s) (one request at a time: latency without queueing)", o.latencyWorkers))
		for _, x := range []*row{r.cached, r.single, r.probe} {
			r.line(w, x)
		}
		slower = float64(max(probeFastDelay, probeSlowDelay)) / float64(time.Millisecond)
		sum = float64(probeFastDelay+probeSlowDelay) / float64(time.Millisecond)
		probeMS = r.probe.medP50() / 1000
		var slowMS, fastMS float64
		var pairs int
		gapMS, slowMS, fastMS, pairs = probeTiming(r.probeFast, r.probeSlow)
		// The stubs sleep their delay, and a sleep overshoots (Go's timers on Linux: up to about
		// a millisecond), so the verdict compares the probe with what the candidates really took,
		// and checks that the two calls of a probe started together.
		slowerReal, sumReal = max(slowMS, fastMS), slowMS+fastMS
		verdictKV = "max"
		if math.Abs(probeMS-sumReal) < math.Abs(probeMS-slowerReal) || !(gapMS < float64(probeFastDelay)/float64(time.Millisecond)/2) {
			verdictKV = "sum"
		}
		fmt.Fprintf(w, "  cached: an LRU hit; single: a fresh ID each request, one provider's pattern matches, read, remembered (cache_size default)\n")
		fmt.Fprintf(w, "  probe: two digicert providers match every ID: one (2 ms stub) owns it, the other (6 ms stub) answers 404\n")
		fmt.Fprintf(w, "  probe p50 %.2f ms; slower candidate %.0f ms, sum %.0f ms as configured; as the stubs measured their own answers\n", probeMS, slower, sum)
		fmt.Fprintf(w, "  (sleep overshoot included): 2 ms stub %.2f ms, 6 ms stub %.2f ms, so slower %.2f ms, sum %.2f ms\n", fastMS, slowMS, slowerReal, sumReal)
		fmt.Fprintf(w, "  the two calls of a probe started a median %.3f ms apart (%d probes; one after the other would be >= 2 ms)\n", gapMS, pairs)
		if verdictKV == "max" {
			fmt.Fprintf(w, "  -> probe latency is the MAX of the candidates' (the slower one's + %.2f ms), not the sum\n", probeMS-slowerReal)
		} else {
			fmt.Fprintf(w, "  -> probe latency looks like the SUM of the candidates': they are not asked at once\n")
		}
	}

	var brkCalls int64
	if r.breaker != nil {
		// 3.
		r.head(w, fmt.Sprintf("3. Breaker fast-fail: GET to a provider whose breaker is open (failures 1, open_for 1h): one round unloaded (%d worker(s)), one with %d workers", o.latencyWorkers, o.workers))
		r.line(w, r.breaker)
		r.line(w, r.breakerLoaded)
		brkCalls = r.breaker.rounds[0].calls + r.breakerLoaded.rounds[0].calls
		fmt.Fprintf(w, "  the breaker opened after %d upstream call(s) (a 500); upstream calls during the two rounds: %d (must be 0)\n", r.tripCalls, brkCalls)
		fmt.Fprintf(w, "  breaker_open_p99_us is the unloaded round's p99 (target <= 1 ms); breaker_open_loaded_p99_us the loaded one's\n")
	}

	if r.scale != nil {
		// 4.
		r.head(w, fmt.Sprintf("4. Scale: gateway PUT of a cached ID, %d workers, N digicert providers on one stub with disjoint id_patterns", o.workers))
		for _, x := range r.scale {
			r.line(w, x)
		}
		s1, s16 := r.scale[0].medRPS(), r.scale[2].medRPS()
		fmt.Fprintf(w, "  16 providers / 1 provider throughput: %.3f (must not fall as providers grow)\n", s16/s1)
		if b := r.micro.find("BenchmarkCacheEntryMemory"); b != nil {
			if v, ok := b.value("B/entry"); ok {
				fmt.Fprintf(w, "  bytes per cached ID-to-provider entry (BenchmarkCacheEntryMemory): %.1f (target <= 200)\n", v)
			}
		} else {
			fmt.Fprintln(w, "  bytes per cached entry: BenchmarkCacheEntryMemory not in the micro benchmarks")
		}
	}

	// 5.
	if r.micro == nil {
		fmt.Fprintln(w, "\n5. Micro benchmarks: none (no -micro file)")
	} else {
		fmt.Fprintf(w, "\n5. Micro benchmarks (go test -bench output of -micro %s): %d\n", o.micro, len(r.micro.benches))
		fmt.Fprintf(w, "  %-28s %-44s %10s  %s\n", "package", "benchmark", "iterations", "values")
		for _, b := range r.micro.benches {
			var vs []string
			for _, u := range b.units {
				v, _ := b.value(u)
				vs = append(vs, strconv.FormatFloat(v, 'f', -1, 64)+" "+u)
			}
			pkg := strings.TrimPrefix(b.pkg, "github.com/credgate/credgate/")
			fmt.Fprintf(w, "  %-28s %-44s %10d  %s\n", pkg, b.name, b.iters, strings.Join(vs, ", "))
		}
		if b := r.micro.find("BenchmarkCachedRequest"); b != nil {
			if v, ok := b.value("allocs/op"); ok {
				fmt.Fprintf(w, "  allocations per cached-path request (BenchmarkCachedRequest): %.0f (target <= 30)\n", v)
			}
		}
	}

	// 6.
	r.printBatch(w)
	// 7.
	r.printProtect(w)
	// 8.
	r.printFleet(w)

	if len(r.problems) > 0 {
		fmt.Fprintln(w, "\nWARNING: rows that did not measure what they say:")
		for _, p := range r.problems {
			fmt.Fprintln(w, "  "+p)
		}
	}
	fmt.Fprintf(w, "\nload benchmark time: %v\n", r.elapsed.Round(time.Second))

	// The name=value block.
	if r.direct != nil {
		for _, x := range append([]*row{r.direct, r.proxy, r.gw}, r.unloaded...) {
			r.add(x.key+"_rps", x.medRPS())
			r.add(x.key+"_p50_us", x.medP50())
			r.add(x.key+"_p99_us", x.medP99())
		}
		r.add("gateway_changing_rps", r.changing.medRPS())
		r.add("gateway_changing_p50_us", r.changing.medP50())
		r.add("gateway_changing_p99_us", r.changing.medP99())
		r.add("ratio_gateway_over_reverse_proxy", ratio)
		r.add("gateway_p50_overhead_us", uOverhead)
		r.add("reverse_proxy_p50_overhead_us", uProxyOverhead)
		r.add("gateway_p50_overhead_loaded_us", loadedOverhead)
		r.add("reverse_proxy_p50_overhead_loaded_us", loadedProxyOverhead)
	}
	if r.cached != nil {
		r.add("resolve_cached_p50_us", r.cached.medP50())
		r.add("resolve_cached_p99_us", r.cached.medP99())
		r.add("resolve_single_p50_us", r.single.medP50())
		r.add("resolve_single_p99_us", r.single.medP99())
		r.add("probe_p50_ms", probeMS)
		r.add("probe_p99_ms", r.probe.medP99()/1000)
		r.add("probe_slower_candidate_ms", slower)
		r.add("probe_sum_ms", sum)
		r.add("probe_latency_is", verdictKV)
		r.add("probe_start_gap_ms", gapMS)
		r.add("probe_slower_candidate_measured_ms", slowerReal)
		r.add("probe_sum_measured_ms", sumReal)
	}
	if r.breaker != nil {
		r.add("breaker_open_p50_us", r.breaker.medP50())
		r.add("breaker_open_p99_us", r.breaker.medP99())
		r.add("breaker_open_loaded_rps", r.breakerLoaded.medRPS())
		r.add("breaker_open_loaded_p50_us", r.breakerLoaded.medP50())
		r.add("breaker_open_loaded_p99_us", r.breakerLoaded.medP99())
		r.add("breaker_open_upstream_calls", float64(brkCalls))
	}
	for _, x := range r.scale {
		r.add(x.key, x.medRPS())
	}
	var callRows []*row
	if r.direct != nil {
		callRows = append(callRows, r.direct, r.proxy, r.gw, r.changing, r.unloaded[0], r.unloaded[1], r.unloaded[2])
	}
	if r.cached != nil {
		callRows = append(callRows, r.cached, r.single, r.probe)
	}
	callRows = append(callRows, r.scale...)
	for _, x := range callRows {
		k := x.key
		if strings.HasPrefix(k, "gateway_rps_") {
			k = "scale_" + strings.TrimPrefix(k, "gateway_rps_")
		}
		r.add(k+"_upstream_calls_per_request", math.Round(x.callsPerReq()*10000)/10000)
	}
	if b := r.micro.find("BenchmarkCacheEntryMemory"); b != nil {
		if v, ok := b.value("B/entry"); ok {
			r.add("bytes_per_cache_entry", v)
		}
	}
	if b := r.micro.find("BenchmarkCachedRequest"); b != nil {
		if v, ok := b.value("allocs/op"); ok {
			r.add("allocs_per_cached_request", v)
		}
	}
	if r.micro != nil {
		for _, b := range r.micro.benches {
			for _, u := range b.units {
				v, _ := b.value(u)
				r.add("bench_"+b.key+"_"+sanitize(u), v)
			}
		}
	}
	r.addBatch()
	r.addProtect()
	r.addFleet()
	r.add("workers", float64(o.workers))
	r.add("latency_workers", float64(o.latencyWorkers))
	r.add("rounds", float64(o.rounds))
	r.add("round_s", o.round.Seconds())
	r.add("gomaxprocs", float64(runtime.GOMAXPROCS(0)))
	r.add("problems", float64(len(r.problems)))

	fmt.Fprintln(w)
	for _, kv := range r.kv {
		fmt.Fprintln(w, kv)
	}
}

// cpuModel is the CPU's name: the micro benchmarks' "cpu:" line, or /proc/cpuinfo's.
func cpuModel(m *microInfo) string {
	if m != nil && m.cpu != "" {
		return m.cpu
	}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// wrap breaks s into lines of at most width, the lines after the first indented.
func wrap(s string, width int, indent string) string {
	var out []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			out = append(out, line)
			line = word
			continue
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		out = append(out, line)
	}
	return strings.Join(out, "\n"+indent)
}

// probeTiming reads the probe stubs' records: for the IDs both got, the median gap between
// the two calls' arrivals, and each stub's median time from arrival to answer.
func probeTiming(fast, slow map[uint64][2]time.Time) (gapMS, slowMS, fastMS float64, pairs int) {
	var gaps, slows, fasts []float64
	for id, s := range slow {
		f, ok := fast[id]
		if !ok {
			continue
		}
		gap := s[0].Sub(f[0])
		if gap < 0 {
			gap = -gap
		}
		gaps = append(gaps, ms(gap))
		slows = append(slows, ms(s[1].Sub(s[0])))
		fasts = append(fasts, ms(f[1].Sub(f[0])))
	}
	return medianOf(gaps), medianOf(slows), medianOf(fasts), len(gaps)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
