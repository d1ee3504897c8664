package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"
)

// clientDoc describes the load client; the report prints it.
const clientDoc = "its own closed-loop client (loadbench/load.go, no load library): W workers share one " +
	"net/http Client with keep-alive (MaxIdleConnsPerHost = 2W, HTTP/1.1); each worker sends " +
	"its next request as soon as the previous answer is read whole; every latency goes into a " +
	"preallocated per-worker slice; throughput = answers / round time, p50/p99 from all the " +
	"round's latencies merged; every answer's status is checked"

// loadClient is the benchmark's own closed-loop load generator. A round runs W workers for a
// fixed time; each worker loops: build the request, send it, read the answer's body to its end,
// record the latency (send to end of body), check the status. No worker has more than one
// request in flight, so the offered load is whatever the server can take (closed loop), and
// keep-alive means no round pays for connection setup after its first requests (warm-up rounds
// open the connections first).
type loadClient struct {
	http   *http.Client
	lat    [][]time.Duration // one preallocated slice per worker, reused by every round
	merged []time.Duration
}

func newLoadClient(maxWorkers int, round time.Duration) *loadClient {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, whatever the environment says
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no overall limit
		MaxIdleConnsPerHost: 2 * maxWorkers,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	c := &loadClient{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	// Room for 100,000 answers a second over the round, split among the workers; a faster
	// round grows its slices (once) rather than dropping samples.
	per := int(round.Seconds()*100000)/maxWorkers + 1024
	c.lat = make([][]time.Duration, maxWorkers)
	for i := range c.lat {
		c.lat[i] = make([]time.Duration, 0, per)
	}
	c.merged = make([]time.Duration, 0, per*maxWorkers)
	return c
}

// row is one line of a table: what the client sends, what it expects back, and which stubs'
// calls count as this row's upstream calls.
type row struct {
	key     string // prefix of its name=value lines
	label   string
	workers int
	want    int // the status every answer must have
	build   func(worker, seq int) (*http.Request, error)
	stubs   []*stub
	// expectCalls is the number of upstream calls one client request must cause; the report
	// flags a row whose measured calls differ.
	expectCalls float64
	rounds      []roundResult
}

type roundResult struct {
	n, wrong int
	firstBad string
	elapsed  time.Duration
	rps      float64
	p50, p99 time.Duration
	calls    int64 // upstream calls received by the row's stubs during the round
}

func (r roundResult) callsPerReq() float64 {
	if r.n == 0 {
		return 0
	}
	return float64(r.calls) / float64(r.n)
}

type workerResult struct {
	n, wrong int
	firstBad string
}

// run runs one round of r for d and returns its result. The caller checks it.
func (c *loadClient) run(r *row, d time.Duration) roundResult {
	runtime.GC() // the previous round's garbage is not this round's cost
	before := stubCalls(r.stubs)
	res := make([]workerResult, r.workers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < r.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			lat := c.lat[w][:0]
			wr := &res[w]
			for seq := 0; time.Now().Before(deadline); seq++ {
				req, err := r.build(w, seq)
				if err != nil {
					panic(err) // a bug in the benchmark itself
				}
				t0 := time.Now()
				resp, err := c.http.Do(req)
				status := 0
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				lat = append(lat, time.Since(t0))
				wr.n++
				if err != nil || status != r.want {
					wr.wrong++
					if wr.firstBad == "" {
						if err != nil {
							wr.firstBad = err.Error()
						} else {
							wr.firstBad = fmt.Sprintf("%s %s: status %d, want %d", req.Method, req.URL.Path, status, r.want)
						}
					}
					if err != nil {
						time.Sleep(time.Millisecond) // no hot loop against a dead server
					}
				}
			}
			c.lat[w] = lat
		}(w)
	}
	wg.Wait()
	out := roundResult{elapsed: time.Since(start), calls: stubCalls(r.stubs) - before}
	all := c.merged[:0]
	for w := 0; w < r.workers; w++ {
		out.n += res[w].n
		out.wrong += res[w].wrong
		if out.firstBad == "" {
			out.firstBad = res[w].firstBad
		}
		all = append(all, c.lat[w]...)
	}
	c.merged = all
	slices.Sort(all)
	out.p50, out.p99 = percentile(all, 0.50), percentile(all, 0.99)
	out.rps = float64(out.n) / out.elapsed.Seconds()
	return out
}

// percentile is the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func stubCalls(stubs []*stub) int64 {
	var n int64
	for _, s := range stubs {
		n += s.calls.Load()
	}
	return n
}

// getReq and putReq build the two kinds of request the rows send.
func getReq(url string, withKey bool) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if withKey {
		req.Header["X-Partner-Apikey"] = []string{stubAPIKey}
	}
	return req, nil
}

func putReq(url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	return req, nil
}

// median of a round statistic.
func median(rounds []roundResult, f func(roundResult) float64) float64 {
	if len(rounds) == 0 {
		return 0
	}
	v := make([]float64, len(rounds))
	for i, r := range rounds {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (r *row) medRPS() float64 { return median(r.rounds, func(x roundResult) float64 { return x.rps }) }
func (r *row) medP50() float64 {
	return median(r.rounds, func(x roundResult) float64 { return us(x.p50) })
}
func (r *row) medP99() float64 {
	return median(r.rounds, func(x roundResult) float64 { return us(x.p99) })
}
func (r *row) callsPerReq() float64 {
	var n, calls int64
	for _, x := range r.rounds {
		n += int64(x.n)
		calls += x.calls
	}
	if n == 0 {
		return 0
	}
	return float64(calls) / float64(n)
}
func (r *row) totals() (n, wrong int) {
	for _, x := range r.rounds {
		n += x.n
		wrong += x.wrong
	}
	return n, wrong
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
