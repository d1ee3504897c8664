package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/digicert/digicerttest"
	"github.com/credgate/credgate/module/provider/providertest"
)

// protectSim starts a DigiCert simulator of its own for a test: account 1, whose partner key
// is in DC_PROTECT_KEY, owns keys 1..owned.
func protectSim(t *testing.T, owned int) *digicerttest.Simulator {
	t.Helper()
	s := digicerttest.New("")
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	s.AddAccount(1, 0, "k-protect")
	for id := 1; id <= owned; id++ {
		s.AddKey(id, 1, "key-"+strconv.Itoa(id), "active")
	}
	t.Setenv("DC_PROTECT_KEY", "k-protect")
	return s
}

// protectBlock is a DigiCert provider on s with the given extra options.
func protectBlock(name string, s *digicerttest.Simulator, options string) string {
	return fmt.Sprintf(`
		provider %s digicert {
			base_url %s
			api_key {env.DC_PROTECT_KEY}
			retries 0
			%s
		}`, name, s.URL, options)
}

// batchOf is a batch body of the IDs, all asked to be inactive.
func batchOf(dryRun bool, ids ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"dry_run": %t, "items": [`, dryRun)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id": %q, "status": "inactive"}`, id)
	}
	b.WriteString("]}")
	return b.String()
}

func numbers(from, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(from + i)
	}
	return ids
}

// streamBatch posts a batch with an NDJSON answer in the background, and returns a function
// that ends it (the client goes away) and the lines it read.
func streamBatch(t *testing.T, body string) (stop func() []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", gatewayURL+"/credentials/status", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	lines := make(chan []string, 1)
	go func() {
		var got []string
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				got = append(got, sc.Text())
			}
			resp.Body.Close()
		}
		lines <- got
	}()
	return func() []string {
		cancel()
		return <-lines
	}
}

// maxPerSecond is the most requests s received in any one second (a sliding window).
func maxPerSecond(reqs []providertest.Request) int {
	times := make([]time.Time, len(reqs))
	for i, r := range reqs {
		times[i] = r.At
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	most := 0
	for i, j := 0, 0; j < len(times); j++ {
		for times[j].Sub(times[i]) >= time.Second {
			i++
		}
		most = max(most, j-i+1)
	}
	return most
}

// TestRateBudgetBoundsEverySecond: a provider with rate 20/s burst 5 receives at most 25
// calls in any one second of a 10,000-item batch, counted at the simulator; when the client
// goes away, the calls stop.
func TestRateBudgetBoundsEverySecond(t *testing.T) {
	s := protectSim(t, 0)
	tester := load(t, protectBlock("budget", s, "rate 20/s\n burst 5"))
	_ = tester
	stop := streamBatch(t, batchOf(true, numbers(1, 10_000)...))
	time.Sleep(3 * time.Second)
	lines := stop()
	reqs := s.Requests()
	require.Greater(t, len(reqs), 40, "the batch ran")
	assert.LessOrEqual(t, maxPerSecond(reqs), 25, "at most rate x 1 s + burst calls in any second")
	assert.LessOrEqual(t, len(reqs), 5+20*4, "the rate, over the whole run")
	assert.NotEmpty(t, lines, "results streamed as they came")
	time.Sleep(1500 * time.Millisecond)
	n := len(s.Requests())
	time.Sleep(time.Second)
	assert.Equal(t, n, len(s.Requests()), "no call once the client went away")
}

// TestRateBudgetSingleRequest: a single request waits at most a second for its provider's
// rate, then answers 429 rate-limited with Retry-After, and calls nothing.
func TestRateBudgetSingleRequest(t *testing.T) {
	s := protectSim(t, 2)
	tester := load(t, protectBlock("slow", s, "rate 1/m"))
	require.Equal(t, 200, call(t, tester, "GET", "/credentials/1/status", "").status)
	start := time.Now()
	a := call(t, tester, "GET", "/credentials/2/status", "")
	requireProblem(t, a, 429, "rate-limited")
	assert.Less(t, time.Since(start), 2*time.Second)
	ra, err := strconv.Atoi(a.header.Get("Retry-After"))
	require.NoError(t, err)
	assert.Greater(t, ra, 50, "the wait for the next token")
	assert.Equal(t, 1, len(s.Requests()), "the refused request called nothing")
}

// TestLongRetryAfterNeverStalls: a vendor 429 asking for a day (or a date in 2099) is cut to
// max_retry_after in every answer, and a batch does not wait for it: its items fail at once.
func TestLongRetryAfterNeverStalls(t *testing.T) {
	for _, retry := range []string{"86400", "Thu, 01 Jan 2099 00:00:00 GMT"} {
		t.Run(retry, func(t *testing.T) {
			s := protectSim(t, 3)
			tester := load(t, protectBlock("limited", s, "max_retry_after 5s"))
			s.SetFault(providertest.Fault{Status: 429, RetryAfter: retry})
			a := call(t, tester, "GET", "/credentials/1/status", "")
			requireProblem(t, a, 429, "provider-rate-limited")
			assert.Equal(t, "5", a.header.Get("Retry-After"), "cut to max_retry_after")

			seen := len(s.Requests())
			start := time.Now()
			a, b := postBatch(t, tester, batchOf(true, "2", "3"))
			require.Equal(t, 200, a.status, a.raw)
			assert.Less(t, time.Since(start), 2*time.Second, "the batch did not wait a day")
			for _, r := range b.Results {
				assert.Equal(t, "provider-rate-limited", itemProblem(r), "%v", r)
			}
			assert.Equal(t, seen, len(s.Requests()), "the provider asked for a pause: nobody called it")
		})
	}
}

// TestRetryAfterWithinMaxIsWaitedFor: a batch honours a vendor Retry-After within
// max_retry_after, and its items go through after it.
func TestRetryAfterWithinMaxIsWaitedFor(t *testing.T) {
	s := protectSim(t, 2)
	tester := load(t, protectBlock("limited", s, "max_retry_after 5s"))
	s.SetFault(providertest.Fault{Status: 429, RetryAfter: "1", Times: 1})
	start := time.Now()
	a, b := postBatch(t, tester, batchOf(true, "1", "2"))
	require.Equal(t, 200, a.status, a.raw)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "waited as asked")
	for _, r := range b.Results {
		assert.Equal(t, "", itemProblem(r), "%v", r)
	}
}

// TestUnknownIDsAreRemembered: an ID its only candidate does not know costs one call; repeats
// within negative_ttl cost none, in single requests and in batches.
func TestUnknownIDsAreRemembered(t *testing.T) {
	s := protectSim(t, 1)
	tester := load(t, "negative_ttl 1m\n"+protectBlock("one", s, ""))
	for range 3 {
		requireProblem(t, call(t, tester, "GET", "/credentials/777/status", ""), 404, "credential-not-found")
	}
	assert.Equal(t, 1, len(s.Requests()))
	_, b := postBatch(t, tester, batchOf(true, "777", "778", "778"))
	require.Len(t, b.Results, 3)
	_, b = postBatch(t, tester, batchOf(true, "777", "778"))
	assert.Equal(t, "credential-not-found", itemProblem(b.Results[1]))
	assert.Equal(t, 2, len(s.Requests()), "778 once, 777 never again")
}

// TestProbeEndsWhenItsClientsGo: with a vendor that hangs, probes whose clients gave up are
// canceled: the goroutines go back to what they were.
func TestProbeEndsWhenItsClientsGo(t *testing.T) {
	s := protectSim(t, 0)
	tester := load(t, protectBlock("a", s, "timeout 30s")+protectBlock("b", s, "timeout 30s"))
	call(t, tester, "GET", "/credentials/zz/status", "") // warm up: connections, pools
	runtime.GC()
	baseline := runtime.NumGoroutine()
	s.SetFault(providertest.Fault{Hang: time.Minute})
	client := &http.Client{Timeout: 150 * time.Millisecond}
	for i := range 50 {
		_, err := client.Get(gatewayURL + "/credentials/" + strconv.Itoa(1000+i) + "/status")
		require.Error(t, err, "the client gives up")
	}
	assert.Eventually(t, func() bool {
		return runtime.NumGoroutine() <= baseline+10
	}, 5*time.Second, 50*time.Millisecond, "goroutines back to their baseline (%d)", baseline)
	assert.Eventually(t, func() bool { return s.InFlight() == 0 }, 5*time.Second, 50*time.Millisecond, "the vendor holds no call")
	s.Clear()
}

// TestBatchDuplicatesAfterResolution: items are matched on (provider, ID) whether or not they
// named their provider: conflicting ones are all refused, identical ones done once.
func TestBatchDuplicatesAfterResolution(t *testing.T) {
	s := protectSim(t, 3)
	tester := load(t, protectBlock("dc1", s, ""))
	_, b := postBatch(t, tester, `{"items": [
		{"id": "1", "status": "inactive"},
		{"id": "1", "status": "active", "provider": "dc1"},
		{"id": "2", "status": "inactive"},
		{"id": "2", "status": "inactive", "provider": "dc1"}]}`)
	require.Len(t, b.Results, 4)
	assert.Equal(t, "invalid-request", itemProblem(b.Results[0]))
	assert.Equal(t, "invalid-request", itemProblem(b.Results[1]))
	assert.Equal(t, "", itemProblem(b.Results[2]))
	assert.Equal(t, b.Results[2], b.Results[3], "identical items share one result")
	assert.Equal(t, 1, s.Writes(), "key 2 changed once, key 1 not at all")
	k, _ := s.Key(1)
	assert.Equal(t, "active", k.Status)
}

// TestBatchSlotsAreShared: a one-item batch behind four 1,000-item batches at a vendor that
// answers in 200 ms waits about one slot turn, not behind their queues.
func TestBatchSlotsAreShared(t *testing.T) {
	s := protectSim(t, 4001)
	tester := load(t, "max_batches 5\n"+protectBlock("slow", s, "max_concurrent 2\n timeout 5s"))
	_ = tester
	s.SetFault(providertest.Fault{Hang: 200 * time.Millisecond})
	var stops []func() []string
	for i := range 4 {
		stops = append(stops, streamBatch(t, batchOf(true, numbers(1+i*1000, 1000)...)))
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	time.Sleep(500 * time.Millisecond) // the big batches fill the slots and their queues
	start := time.Now()
	a, b := postBatch(t, tester, batchOf(true, "4001"))
	took := time.Since(start)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "", itemProblem(b.Results[0]))
	assert.Less(t, took, 3*200*time.Millisecond, "under 3 slot turns (one wait, its own call)")
}

// TestMaxBatches: more batches at once than max_batches are answered 429 too-many-batches.
func TestMaxBatches(t *testing.T) {
	s := protectSim(t, 2)
	tester := load(t, "max_batches 1\n"+protectBlock("slow", s, "timeout 5s"))
	s.SetFault(providertest.Fault{Hang: time.Second, Times: 1})
	stop := streamBatch(t, batchOf(true, "1"))
	defer stop()
	require.Eventually(t, func() bool { return s.InFlight() == 1 }, 5*time.Second, 10*time.Millisecond)
	a, _ := postBatch(t, tester, batchOf(true, "2"))
	requireProblem(t, a, 429, "too-many-batches")
	assert.NotEmpty(t, a.header.Get("Retry-After"))
	assert.Equal(t, 200, call(t, tester, "GET", "/credentials/2/status", "").status, "single requests still go")
}

// TestMalformedRequestsAreNotAudited: only requests that passed validation have an audit
// entry; malformed ones are in the access log only.
func TestMalformedRequestsAreNotAudited(t *testing.T) {
	s := protectSim(t, 1)
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	tester := loadWith(t, fmt.Sprintf(`
	log audit {
		output file %s
		format json
		include http.handlers.credential_status.audit
	}`, auditFile), "credential_status {\n"+protectBlock("dc1", s, "")+"\n}")
	for _, c := range []struct{ path, body string }{
		{"/credentials/1/status", `{"status": "inactive"`},
		{"/credentials/1/status", `{"status": "sleeping"}`},
		{"/credentials/1/status", `{"status": "inactive", "extra": 1}`},
		{"/credentials/%2e%2e/status", `{"status": "inactive"}`},
		{"/credentials/1/status?dry_run=maybe", `{"status": "inactive"}`},
	} {
		a := call(t, tester, "PUT", c.path, c.body)
		requireProblem(t, a, 400, "invalid-request")
	}
	a := call(t, tester, "PUT", "/credentials/1/status", `{"status": "inactive"}`)
	require.Equal(t, 200, a.status, a.raw)
	entries := readAudit(t, auditFile, 1)
	time.Sleep(200 * time.Millisecond)
	entries = readAudit(t, auditFile, 1)
	require.Len(t, entries, 1, "the valid change only")
	assert.Equal(t, "changed", entries[0]["outcome"])
}

// TestNoLongEcho: no answer repeats more than 256 bytes of a client string.
func TestNoLongEcho(t *testing.T) {
	s := protectSim(t, 1)
	tester := load(t, protectBlock("dc1", s, ""))
	long := strings.Repeat("p", 60_000)
	a := call(t, tester, "PUT", "/credentials/1/status", `{"status": "inactive", "provider": "`+long+`"}`)
	requireProblem(t, a, 400, "unknown-provider")
	assert.Less(t, len(a.raw), 1024, "the name is cut: %d bytes", len(a.raw))
	assert.Contains(t, a.raw, "(60000 bytes)")
	_, b := postBatch(t, tester, `{"items": [{"id": "`+strings.Repeat("9", 5000)+`", "status": "inactive"}]}`)
	require.Len(t, b.Results, 1)
	assert.LessOrEqual(t, len(b.Results[0]["id"].(string)), 300)
	a = call(t, tester, "POST", "/credentials/status", `{"`+strings.Repeat("k", 5000)+`": 1}`)
	requireProblem(t, a, 400, "invalid-request")
	assert.Less(t, len(a.raw), 1024)
}
