package credentialstatus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/credgate/credgate/module/idempotency"
	"github.com/credgate/credgate/module/internal/flatjson"
	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/resolve"
)

const (
	// batchPath is the batch endpoint's path.
	batchPath = "/credentials/status"
	// DefaultMaxBatch is the default of max_batch, the most items of one batch.
	DefaultMaxBatch = 10_000
	// DefaultMaxBatches is the default of max_batches, the most batches running at once.
	DefaultMaxBatches = 4
	// batchBytesPerItem is what a batch body may hold per item on top of max_body: an item
	// with a 256-byte ID, a provider, a 1 KiB reason and an expiry fits.
	batchBytesPerItem = 2 << 10
	// batchResolvers is how many items are resolved at once; the calls a resolution makes
	// (probes) are bounded by each provider's max_concurrent besides.
	batchResolvers = 16
	// batchRateLimitRetries is how many more times a batch sends an item its provider
	// rate-limited, each after the provider's Retry-After.
	batchRateLimitRetries = 3
)

// batchItem is one item of a batch.
type batchItem struct {
	id  string
	req changeRequest
	// p is the item's problem when it was refused before any call.
	p *Problem
	// first is the index of the item it duplicates, or its own index.
	first int
	// owner is the provider that resolution found, handed from the resolver to the
	// provider's worker.
	owner resolve.Owner
}

// batchRequest is a parsed batch.
type batchRequest struct {
	items  []batchItem
	dryRun bool
	key    string // the batch's Idempotency-Key, for the items' audit entries
}

// itemFields are the members of a batch item, in the order of flatjson.ReadObject's values.
var itemFields = []string{"status", "provider", "reason", "expires_at", "id"}

// parseBatch reads a batch body:
//
//	{"items": [{"id": "...", "status": "...", "provider": "...", "reason": "...", "expires_at": "..."}],
//	 "reason": "...", "dry_run": false}
//
// The envelope's members are exact and given once each; a fault in it refuses the batch. A
// fault in an item refuses that item only: its result is the problem a single PUT would get.
func parseBatch(body []byte, maxItems int) (*batchRequest, *Problem) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	bad := func(detail string) (*batchRequest, *Problem) {
		return nil, newProblem(probInvalid, "malformed batch: "+detail)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return bad("the body must be a JSON object")
	}
	var raws [][]byte
	var reason *string
	b := &batchRequest{}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return bad(jsonError(err))
		}
		key, _ := t.(string)
		if seen[key] {
			return bad(fmt.Sprintf("member %q is given twice", clip(key)))
		}
		seen[key] = true
		switch key {
		case "items":
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return bad("items must be an array of objects")
			}
			for dec.More() {
				if len(raws) == maxItems {
					p := newProblem(probTooLarge, fmt.Sprintf("a batch holds at most %d items (max_batch)", maxItems))
					return nil, p
				}
				// The item's bytes are a slice of the body, not a copy: the decoder only
				// checks them (skipValue), and parseBatch keeps nothing of the body.
				start := dec.InputOffset()
				if err := dec.Decode(new(skipValue)); err != nil {
					return bad(jsonError(err))
				}
				raws = append(raws, bytes.TrimLeft(body[start:dec.InputOffset()], ", \t\r\n"))
			}
			if _, err := dec.Token(); err != nil {
				return bad(jsonError(err))
			}
		case "reason":
			var s string
			if err := dec.Decode(&s); err != nil {
				return bad("reason must be a string")
			}
			if len(s) > MaxReasonLength {
				return nil, newProblem(probInvalid, fmt.Sprintf("reason is longer than %d bytes", MaxReasonLength))
			}
			reason = &s
		case "dry_run":
			if err := dec.Decode(&b.dryRun); err != nil {
				return bad("dry_run must be true or false")
			}
		default:
			return bad(fmt.Sprintf("unknown member %q: a batch has items, reason and dry_run", clip(key)))
		}
	}
	if _, err := dec.Token(); err != nil {
		return bad(jsonError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("unexpected data after the JSON object")
	}
	if len(raws) == 0 {
		return nil, newProblem(probInvalid, "items is required: a list of {\"id\", \"status\"} objects")
	}

	b.items = make([]batchItem, len(raws))
	firsts := make(map[string]int, len(raws))
	for i, raw := range raws {
		it := &b.items[i]
		it.first = i
		var vals [5][]byte
		if _, err := flatjson.ReadObject(raw, itemFields, vals[:]); err != nil {
			it.p = newProblem(probInvalid, "malformed item: "+err.Error())
			continue
		}
		if vals[4] == nil {
			it.p = newProblem(probInvalid, "id is required")
			continue
		}
		it.id = string(vals[4])
		if err := validateID(it.id); err != nil {
			it.p = newProblem(probInvalid, err.Error())
			continue
		}
		if it.req, it.p = changeFromValues(vals[0], vals[1], vals[2], vals[3]); it.p != nil {
			it.p.ID = it.id
			continue
		}
		if vals[2] == nil && reason != nil {
			it.req.reason = *reason
		}
		// An item repeated word for word (the same hint, ID and change) shares the first one's
		// result, without being resolved again; runBatch matches the others once their owners
		// are known.
		key := it.req.hint + "\x00" + it.id + "\x00" + string(it.req.status) + "\x00" + it.req.expiresAt.String()
		if f, ok := firsts[key]; ok {
			it.first = f
			continue
		}
		firsts[key] = i
	}
	return b, nil
}

// skipValue is a JSON value the decoder checks and drops.
type skipValue struct{}

// UnmarshalJSON implements json.Unmarshaler.
func (*skipValue) UnmarshalJSON([]byte) error { return nil }

// jsonError words a decoder's error without Go's type names.
func jsonError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "the JSON ends too soon"
	}
	return "not valid JSON"
}

// itemResult is what became of one item: the single PUT's body, or its problem.
type itemResult struct {
	body *statusBody
	p    *Problem
}

// batchSummary counts the results by outcome, a credential listed twice once.
type batchSummary struct {
	changed, unchanged, pending, failed, wouldChange int
	dryRun                                           bool
	// transient says an item failed for a while only (see serveBatch).
	transient bool
}

func (s *batchSummary) add(r itemResult) {
	switch {
	case r.p != nil:
		s.failed++
		if !idempotency.Keeps(r.p.Status) {
			s.transient = true
		}
	case s.dryRun:
		if *r.body.WouldChange {
			s.wouldChange++
		} else {
			s.unchanged++
		}
	case r.body.PendingStatus != "":
		s.pending++
	case r.body.Changed != nil && *r.body.Changed:
		s.changed++
	default:
		s.unchanged++
	}
}

// appendJSON appends the summary: changed, unchanged, pending and failed, or for a dry run
// would_change, unchanged and failed.
func (s *batchSummary) appendJSON(dst []byte) []byte {
	num := func(dst []byte, name string, n int) []byte {
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
		return strconv.AppendInt(dst, int64(n), 10)
	}
	dst = append(dst, '{')
	if s.dryRun {
		dst = num(dst, "would_change", s.wouldChange)
	} else {
		dst = num(dst, "changed", s.changed)
	}
	dst = num(append(dst, ','), "unchanged", s.unchanged)
	if !s.dryRun {
		dst = num(append(dst, ','), "pending", s.pending)
	}
	dst = num(append(dst, ','), "failed", s.failed)
	return append(dst, '}')
}

// runBatch resolves and changes (or, in a dry run, reads) every item, and calls done for each
// as it completes, from several goroutines at once but never two at a time.
//
// First a few resolvers find every item's owner. Then items are matched on (owner, ID),
// whether or not they named their provider: identical ones are done once and share the
// result, ones asking for different changes are all refused. Then each provider's
// max_concurrent workers take its items: a provider that is slow or rate-limited holds back
// only its own items, and its slots are shared fairly with other batches. When ctx ends (the
// client went away), items not yet started are not started; they end as canceled.
func (h *Handler) runBatch(ctx context.Context, r *http.Request, b *batchRequest, done func(i int, res itemResult)) {
	var mu sync.Mutex
	waiting := map[int][]int{} // first item -> the items that share its result
	for i := range b.items {
		if f := b.items[i].first; f != i {
			waiting[f] = append(waiting[f], i)
		}
	}
	finish := func(i int, res itemResult) {
		mu.Lock()
		defer mu.Unlock()
		done(i, res)
		for _, d := range waiting[i] {
			done(d, res)
		}
	}

	run := &batchRun{items: len(b.items)}
	read := h.reader(run)
	who := h.requestOrigin(r) // once: the replacer makes the request ID on first use
	feed := make(chan int)
	resolved := make([]bool, len(b.items))
	var resolvers sync.WaitGroup
	for range min(batchResolvers, len(b.items)) {
		resolvers.Add(1)
		go func() {
			defer resolvers.Done()
			for i := range feed {
				it := &b.items[i]
				if ctx.Err() != nil {
					finish(i, itemResult{p: canceledItem(it.id)})
					continue
				}
				acc := access{who: who.who, action: actionOf(it.req.status, b.dryRun)}
				if p := h.precheck(it.id, it.req.hint, acc); p != nil {
					finish(i, h.endItem(r, who, it, b, itemResult{p: p}, time.Now(), nil))
					continue
				}
				start := time.Now()
				o, err := h.resolver.Resolve(ctx, it.id, it.req.hint, read)
				countResolution(o)
				if err != nil {
					finish(i, h.endItem(r, who, it, b, itemResult{p: resolutionProblem(err, it.id)}, start, nil))
					continue
				}
				it.owner = o
				resolved[i] = true
			}
		}()
	}
	for i := range b.items {
		it := &b.items[i]
		switch {
		case it.first != i:
			// done with its first
		case it.p != nil:
			finish(i, itemResult{p: it.p})
		default:
			feed <- i
		}
	}
	close(feed)
	resolvers.Wait()

	// One credential is changed once: match the resolved items on (owner, ID).
	queues := make([]chan int, len(h.ordered))
	for i := range queues {
		queues[i] = make(chan int, len(b.items))
	}
	type target struct {
		owner int
		id    string
	}
	groups := map[target][]int{}
	var order []target
	for i, ok := range resolved {
		if !ok {
			continue
		}
		k := target{b.items[i].owner.Index, b.items[i].id}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		g := groups[k]
		first := &b.items[g[0]]
		conflict := false
		for _, i := range g[1:] {
			if it := &b.items[i]; it.req.status != first.req.status || !it.req.expiresAt.Equal(first.req.expiresAt) {
				conflict = true
			}
		}
		// The group shares its first item's result, and counts once in the summary.
		mu.Lock()
		for _, i := range g[1:] {
			b.items[i].first = g[0]
			waiting[g[0]] = append(waiting[g[0]], i)
			waiting[g[0]] = append(waiting[g[0]], waiting[i]...)
			delete(waiting, i)
		}
		mu.Unlock()
		if conflict { // none is done
			p := newProblem(probInvalid, "credential "+clip(k.id)+" is listed more than once with different changes at provider "+h.ordered[k.owner].name)
			p.ID, p.Provider = k.id, h.ordered[k.owner].name
			res := itemResult{p: p}
			h.countItem(res, b.dryRun)
			finish(g[0], res)
			continue
		}
		queues[k.owner] <- g[0]
	}
	for _, q := range queues {
		close(q)
	}

	var workers sync.WaitGroup
	for _, bk := range h.ordered {
		if len(queues[bk.index]) == 0 {
			continue
		}
		for range min(bk.s.maxConcurrent, len(queues[bk.index])) {
			workers.Add(1)
			go func(q chan int) {
				defer workers.Done()
				for i := range q {
					it := &b.items[i]
					if ctx.Err() != nil {
						finish(i, itemResult{p: canceledItem(it.id)})
						continue
					}
					finish(i, h.runItem(ctx, r, who, run, it, b))
				}
			}(queues[bk.index])
		}
	}
	workers.Wait()
}

// canceledItem is the result of an item the batch did not start because its client left.
func canceledItem(id string) *Problem {
	p := newProblem(probClientClosed, "the batch ended before this item started: the client went away")
	p.ID = id
	return p
}

// runItem changes (or previews) one resolved item, exactly as a single PUT would, and writes
// its one audit entry. An item its provider rate-limited is sent again after the provider's
// Retry-After, a few times: the entry tells the last attempt's outcome.
func (h *Handler) runItem(ctx context.Context, r *http.Request, who *origin, run *batchRun, it *batchItem, b *batchRequest) itemResult {
	var rec *changeRecord // a change's audit record; a dry run has none
	if !b.dryRun {
		rec = &changeRecord{start: time.Now(), id: it.id, origin: who, req: it.req, batchKey: b.key}
	}
	acc := access{who: who.who, action: actionOf(it.req.status, b.dryRun)}
	var res itemResult
	for attempt := 0; ; attempt++ {
		res = h.tryItem(ctx, run, it, b.dryRun, acc, rec)
		if res.p == nil || res.p.kind != provider.KindRateLimited || attempt == batchRateLimitRetries {
			break
		}
		if bk := h.backends[res.p.Provider]; bk == nil || res.p.Type == ProblemTypePrefix+probBudget.Suffix || bk.pauseLeft() > bk.s.maxRetryAfter {
			break // the gateway's own budget said no, or the provider asks for longer than max_retry_after
		}
		t := time.NewTimer(max(res.p.retryAfter, DefaultRateLimitPause))
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
			continue
		}
		break
	}
	return h.endItem(r, who, it, b, res, time.Time{}, rec)
}

// endItem writes the audit entry of an item that ran, or that resolution or the policy
// refused (a change's, and any denial), and counts its outcome; rec is the change's record
// when it ran, else one is made from start. It returns res.
func (h *Handler) endItem(r *http.Request, who *origin, it *batchItem, b *batchRequest, res itemResult, start time.Time, rec *changeRecord) itemResult {
	if rec == nil && (!b.dryRun || isDenied(res.p)) {
		rec = &changeRecord{start: start, id: it.id, origin: who, req: it.req, batchKey: b.key, dryRun: b.dryRun}
	}
	if rec != nil {
		h.audit(r, rec, res.p)
	}
	h.countItem(res, b.dryRun)
	return res
}

// tryItem makes one attempt at an item, at the owner its resolver found; rec, the change's
// audit record, takes the provider and result of the attempt.
func (h *Handler) tryItem(ctx context.Context, run *batchRun, it *batchItem, dryRun bool, acc access, rec *changeRecord) itemResult {
	if dryRun {
		cred, b, p := runAtOwner(h, ctx, it.id, it.owner, run, acc, h.previewOp(ctx, it.id, &it.req, run))
		if p != nil {
			return itemResult{p: p}
		}
		return itemResult{body: previewBody(it.id, b, &it.req, cred)}
	}
	res, b, p := runAtOwner(h, ctx, it.id, it.owner, run, acc, h.changeOp(ctx, rec, run))
	rec.b, rec.res = b, res
	if p != nil {
		return itemResult{p: p}
	}
	return itemResult{body: changedBody(it.id, b, res)}
}

// countItem counts an item's outcome in requests_total, as a single PUT's.
func (h *Handler) countItem(res itemResult, dryRun bool) {
	if res.p != nil {
		metricRequests.WithLabelValues(res.p.Provider, res.p.outcome()).Inc()
		return
	}
	m := &h.backends[res.body.Provider].metrics
	switch {
	case dryRun:
		m.dryRun.Inc()
	case res.body.PendingStatus != "":
		m.pending.Inc()
	case *res.body.Changed:
		m.changed.Inc()
	default:
		m.unchanged.Inc()
	}
}

// serveBatch serves POST /credentials/status. keep says whether its answer may be kept for an
// Idempotency-Key: not when an item failed for a while only (a provider's 5xx, timeout, rate
// limit or open breaker, the client gone), so that a retry of the batch retries it. The answer is 200 with every item's result in
// request order and a summary, or, when the client accepts application/x-ndjson, one line per
// item as it completes ({"index": i, ...result}) and a last line with the summary.
func (h *Handler) serveBatch(w http.ResponseWriter, r *http.Request) (p *Problem, keep bool) {
	if p := checkJSONContentType(r); p != nil {
		return p, false
	}
	body, p := readBody(r, h.MaxBody+int64(h.MaxBatch)*batchBytesPerItem)
	if p != nil {
		return p, false
	}
	b, p := parseBatch(*body, h.MaxBatch) // copies what it keeps
	putBody(body)
	if p != nil {
		return p, true
	}
	key, p := idempotencyKey(r)
	if p != nil {
		return p, false
	}
	b.key = key
	sum := batchSummary{dryRun: b.dryRun}
	if acceptsNDJSON(r) {
		h.streamBatch(w, r, b, &sum)
		return nil, !sum.transient
	}
	results := make([]itemResult, len(b.items))
	h.runBatch(r.Context(), r, b, func(i int, res itemResult) {
		results[i] = res
		if b.items[i].first == i {
			sum.add(res)
		}
	})
	out := make([]byte, 0, 256*len(results))
	out = append(out, `{"results":[`...)
	for i, res := range results {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendItemResult(out, -1, b.items[i].id, res)
	}
	out = append(out, `],"summary":`...)
	out = sum.appendJSON(out)
	out = append(out, '}', '\n')
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil, !sum.transient
}

// streamBatch writes the batch's results as NDJSON, each line flushed as its item completes.
func (h *Handler) streamBatch(w http.ResponseWriter, r *http.Request, b *batchRequest, sum *batchSummary) {
	hd := w.Header()
	hd.Set("Content-Type", "application/x-ndjson")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	line := make([]byte, 0, 1024)
	h.runBatch(r.Context(), r, b, func(i int, res itemResult) {
		if b.items[i].first == i {
			sum.add(res)
		}
		line = appendItemResult(line[:0], i, b.items[i].id, res)
		line = append(line, '\n')
		if _, err := w.Write(line); err == nil {
			_ = rc.Flush()
		}
	})
	line = append(sum.appendJSON(append(line[:0], `{"summary":`...)), '}', '\n')
	_, _ = w.Write(line)
	_ = rc.Flush()
}

// appendItemResult appends one item's result: the single PUT's body, or {"id", "error"}.
// index, when not negative, comes first (the NDJSON lines, which arrive out of order).
func appendItemResult(dst []byte, index int, id string, res itemResult) []byte {
	start := len(dst)
	if index >= 0 {
		dst = append(dst, `{"index":`...)
		dst = strconv.AppendInt(dst, int64(index), 10)
		dst = append(dst, ',')
	}
	obj := len(dst)
	if res.body != nil {
		var err error
		if dst, err = appendStatusBody(dst, res.body); err != nil {
			p := newProblem(probProviderErr, "the provider's answer could not be encoded")
			p.ID = id
			return appendItemResult(dst[:start], index, id, itemResult{p: p})
		}
	} else {
		dst = append(dst, `{"id":`...)
		dst = flatjson.AppendString(dst, clip(id))
		dst = append(dst, `,"error":`...)
		pb, _ := json.Marshal(res.p)
		dst = append(dst, pb...)
		dst = append(dst, '}')
	}
	if index >= 0 { // drop the object's own '{': the index opened it
		dst = append(dst[:obj], dst[obj+1:]...)
	}
	return dst
}

// acceptsNDJSON says the client asked for the streamed answer.
func acceptsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if bytes.Contains([]byte(v), []byte("application/x-ndjson")) {
			return true
		}
	}
	return false
}
