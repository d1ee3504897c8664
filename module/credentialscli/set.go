package credentialscli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// setOptions are the flags of `credentials set`.
type setOptions struct {
	common
	status, file, provider, reason, expiresAt string
	dryRun                                    bool
	output, idempotencyKey                    string
	chunk                                     int
}

// The patience of a run: how often a chunk is sent again after a transient failure (about a
// minute of waiting in all), and the longest Retry-After it waits for.
const (
	maxAttempts   = 10
	maxRetryAfter = 30 * time.Second
)

func runSet(c *cobra.Command, args []string, o *setOptions) int {
	std := osStdio()
	std.out, std.err = c.OutOrStdout(), c.ErrOrStderr()
	usage := func(msg string) int {
		fmt.Fprintf(std.err, "%s: %s\nRun '%s --help' for usage.\n", commandPath(c), msg, commandPath(c))
		return exitNotStart
	}
	items, err := o.items(args, std.in)
	if err != nil {
		return usage(err.Error())
	}
	if o.chunk < 1 {
		return usage("--chunk must be at least 1")
	}
	base, headers, err := o.target()
	if err != nil {
		return usage(err.Error())
	}
	r := &runner{
		items:    items,
		endpoint: base + "/credentials/status",
		headers:  headers,
		dryRun:   o.dryRun,
		chunk:    o.chunk,
		runKey:   o.idempotencyKey,
		std:      std,
		client:   &http.Client{Transport: transport()},
		wait:     sleep,
		name:     commandPath(c),
	}
	if r.runKey == "" {
		r.runKey = runKey(items, o.dryRun)
	}
	if o.output != "" {
		f, err := os.Create(o.output)
		if err != nil {
			return usage(err.Error())
		}
		defer f.Close()
		r.output, r.outputName = f, o.output
	}
	ctx, stop := signalContext()
	defer stop()
	return r.run(ctx)
}

// items reads the list from --file, stdin (- or --file -) or the arguments, and fills in the
// flags' defaults.
func (o *setOptions) items(args []string, stdin io.Reader) ([]item, error) {
	var items []item
	var err error
	stdinArg := len(args) == 1 && args[0] == "-"
	switch {
	case o.file != "" && len(args) > 0:
		return nil, fmt.Errorf("give the list either with --file or as arguments, not both")
	case o.file == "-" || stdinArg:
		items, err = parseList(stdin)
	case o.file != "":
		f, ferr := os.Open(o.file)
		if ferr != nil {
			return nil, ferr
		}
		defer f.Close()
		items, err = parseList(f)
		if err != nil {
			err = fmt.Errorf("%s: %w", o.file, err)
		}
	default:
		var errs errorList
		for _, id := range args {
			if id == "-" {
				return nil, fmt.Errorf("- (stdin) cannot be given with IDs")
			}
			if msg := checkID(id); msg != "" {
				errs.add(errors.New(msg))
			}
			items = append(items, item{ID: id})
		}
		err = errs.err()
	}
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("no IDs: give them as arguments, with --file FILE, or - for stdin")
	}
	return items, defaults(items, o.status, o.provider, o.reason, o.expiresAt)
}

// runKey is the default key of a run: a hash of every item after the flags filled them in
// (ID, status, provider, reason, expiry) and of the dry run, so that the same command on the
// same input derives the same chunk keys, and any change that alters the outcome derives others.
func runKey(items []item, dryRun bool) string {
	h := sha256.New()
	fmt.Fprintf(h, "credgate credentials set\ndry_run=%t\n", dryRun)
	enc := json.NewEncoder(h)
	for _, it := range items {
		_ = enc.Encode(it)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// chunkKey is a chunk's Idempotency-Key: the run's key and the chunk's own items, so that a
// chunk of other items (another --chunk, a 413's halving) never gets another chunk's answer.
func chunkKey(runKey string, items []item, dryRun bool) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\ndry_run=%t\n", runKey, dryRun)
	enc := json.NewEncoder(h)
	for _, it := range items {
		_ = enc.Encode(it)
	}
	return "credgate-" + hex.EncodeToString(h.Sum(nil))[:48]
}

// transport is the client's: keep-alive, bounded connecting, no overall timeout (a batch
// streams as long as its vendors take).
func transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runner runs one `set`.
type runner struct {
	items      []item
	endpoint   string
	headers    [][2]string
	dryRun     bool
	chunk      int
	runKey     string
	std        stdio
	client     *http.Client
	wait       func(context.Context, time.Duration) error
	name       string // the command's path, for messages
	output     io.Writer
	outputName string

	have     []bool // which items have their result
	tally    tally
	progress progress
}

// run sends every chunk in turn and reports; it returns the exit status.
func (r *runner) run(ctx context.Context) int {
	r.progress = newProgress(r.std, len(r.items), r.dryRun)
	r.have = make([]bool, len(r.items))
	size := r.chunk
	next := 0
	for next < len(r.items) {
		n := min(size, len(r.items)-next)
		out := r.send(ctx, next, r.items[next:next+n])
		if ctx.Err() != nil {
			break // interrupted: the summary says what is left
		}
		first := next == 0 && r.tally.done == 0
		switch {
		case out.tooLarge && n > 1:
			size = n / 2
			r.progress.note(fmt.Sprintf("the gateway refused %d items in one batch (413); sending %d at a time", n, size))
			continue
		case out.refused != nil && first:
			r.progress.finish()
			fmt.Fprintf(r.std.err, "%s: the gateway refused the first batch: %s\n", r.name, out.refused.message())
			return exitNotStart
		case out.unreachable != nil && first:
			r.progress.finish()
			fmt.Fprintf(r.std.err, "%s: no gateway at %s: %v\n", r.name, strings.TrimSuffix(r.endpoint, "/credentials/status"), bare(out.unreachable))
			return exitNotStart
		case out.refused != nil:
			r.failRest(next, n, *out.refused)
		case out.unreachable != nil:
			// The gateway went away and did not come back: every item left fails with why.
			r.failRest(next, len(r.items)-next, problem{Type: "urn:credgate:cli:gateway-unreachable",
				Title: "Gateway unreachable", Detail: out.unreachable.Error()})
			n = len(r.items) - next
		}
		r.failRest(next, n, problem{Title: "No result", Detail: "the gateway's answer had no result for this item"})
		next += n
	}
	r.progress.finish()
	r.summary(len(r.items) - r.tally.done)
	if r.tally.done < len(r.items) || r.tally.failed > 0 {
		return exitFailed
	}
	return exitOK
}

// An outcome is how sending a chunk ended, when not with every item's result.
type outcome struct {
	tooLarge    bool     // 413: the chunk is too large for the gateway
	refused     *problem // the gateway refused the whole chunk (after any retries)
	unreachable error    // no answer from the gateway (after any retries)
}

// send posts one chunk (items from index offset of the list) until each of its items has a
// result or the chunk failed as a whole.
func (r *runner) send(ctx context.Context, offset int, items []item) outcome {
	body, err := json.Marshal(struct {
		Items  []item `json:"items"`
		DryRun bool   `json:"dry_run,omitempty"`
	}{items, r.dryRun})
	if err != nil {
		return outcome{refused: &problem{Title: "Cannot encode the batch", Detail: err.Error()}}
	}
	key := chunkKey(r.runKey, items, r.dryRun)
	seen := r.have[offset : offset+len(items)]
	for attempt := 1; ; attempt++ {
		retryAfter, final := r.post(ctx, attempt, body, key, offset, seen)
		if final.tooLarge || final.refused != nil {
			return final
		}
		if retryAfter < 0 { // done
			return outcome{}
		}
		if final.unreachable != nil && isRefused(final.unreachable) && offset == 0 && r.tally.done == 0 {
			return final // nothing listens there: say so at once
		}
		if attempt == maxAttempts || ctx.Err() != nil {
			if final.unreachable == nil {
				final.unreachable = errors.New("the gateway kept answering that it is busy")
			}
			return final
		}
		if r.wait(ctx, retryAfter) != nil {
			return outcome{}
		}
	}
}

// post sends the chunk once and reads its answer. It returns a negative wait when every item
// has its result; else how long to wait before sending it again, with what went wrong (or a
// final outcome: tooLarge, refused).
func (r *runner) post(ctx context.Context, attempt int, body []byte, key string, offset int, seen []bool) (time.Duration, outcome) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, outcome{refused: &problem{Title: "Bad request", Detail: err.Error()}}
	}
	for _, h := range r.headers {
		req.Header.Add(h[0], h[1])
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("Idempotency-Key", key)
	resp, err := r.client.Do(req)
	if err != nil {
		return backoff(attempt), outcome{unreachable: err}
	}
	defer resp.Body.Close()
	replayed := resp.Header.Get("Idempotent-Replayed") == "true"
	switch {
	case resp.StatusCode == http.StatusOK:
		complete, err := r.read(resp, offset, seen, replayed)
		if complete {
			return -1, outcome{}
		}
		if err == nil {
			err = errors.New("the answer ended before the summary")
		}
		return backoff(attempt), outcome{unreachable: fmt.Errorf("reading the answer: %w", err)}
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		return 0, outcome{tooLarge: true, refused: readProblem(resp)}
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusServiceUnavailable,
		resp.StatusCode == http.StatusConflict: // too-many-batches, idempotency-key-in-use, ...
		p := readProblem(resp)
		return retryAfter(resp), outcome{unreachable: errors.New(p.message())}
	case resp.StatusCode >= 500:
		p := readProblem(resp)
		return backoff(attempt), outcome{unreachable: errors.New(p.message())}
	default:
		return 0, outcome{refused: readProblem(resp)}
	}
}

// read takes the items' results from a 200 answer, streamed (NDJSON) or whole (JSON), and
// reports whether it ended with the summary.
func (r *runner) read(resp *http.Response, offset int, seen []bool, replayed bool) (bool, error) {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		var whole struct {
			Results []json.RawMessage `json:"results"`
			Summary json.RawMessage   `json:"summary"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&whole); err != nil {
			return false, err
		}
		for i, raw := range whole.Results {
			if i < len(seen) {
				r.record(offset+i, raw, replayed)
			}
		}
		return whole.Summary != nil, nil
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var head struct {
				Index   *int            `json:"index"`
				Summary json.RawMessage `json:"summary"`
			}
			if jerr := json.Unmarshal(line, &head); jerr != nil {
				return false, fmt.Errorf("a line that is not JSON: %w", jerr)
			}
			if head.Summary != nil {
				return true, nil
			}
			if head.Index != nil && *head.Index >= 0 && *head.Index < len(seen) {
				r.record(offset+*head.Index, bytes.TrimSpace(line), replayed)
			}
		}
		if err != nil {
			if err == io.EOF {
				return false, nil
			}
			return false, err
		}
	}
}

// record counts one item's result (the gateway's JSON object for it) and writes it to
// --output with its index in the whole list; an item's first result is its result (a chunk
// sent again after a cut answer gets the items it had already again).
func (r *runner) record(index int, raw []byte, replayed bool) {
	if r.have[index] {
		return
	}
	r.have[index] = true
	var res result
	_ = json.Unmarshal(raw, &res)
	line := withIndex(raw, index)
	if res.Error == nil && res.ID == "" {
		res.Error = &problem{Title: "Malformed result", Detail: string(cut(string(raw)))}
	}
	r.tally.add(r.items[index].ID, res, replayed)
	if r.output != nil {
		line = append(line, '\n')
		if _, err := r.output.Write(line); err != nil && r.tally.outputErr == nil {
			r.tally.outputErr = err
		}
	}
	r.progress.update(&r.tally)
}

// failRest gives the problem to each of n items from offset that has no result.
func (r *runner) failRest(offset, n int, p problem) {
	for i := offset; i < offset+n; i++ {
		if r.have[i] {
			continue
		}
		it := r.items[i]
		raw, _ := json.Marshal(struct {
			ID    string  `json:"id"`
			Error problem `json:"error"`
		}{it.ID, p})
		r.record(i, raw, false)
	}
}

// withIndex returns the object raw with its "index" member set to index, first.
func withIndex(raw []byte, index int) []byte {
	out := []byte(`{"index":` + strconv.Itoa(index))
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return append(out, `}`...)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		if name == "index" {
			continue
		}
		k, _ := json.Marshal(name)
		out = append(append(append(append(out, ','), k...), ':'), v...)
	}
	return append(out, '}')
}

// result is what the client reads of an item's result.
type result struct {
	ID            string   `json:"id"`
	Changed       *bool    `json:"changed"`
	PendingStatus string   `json:"pending_status"`
	DryRun        bool     `json:"dry_run"`
	WouldChange   *bool    `json:"would_change"`
	Error         *problem `json:"error"`
}

// problem is an RFC 9457 problem, as the gateway answers them.
type problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title,omitempty"`
	Status int    `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// short is the problem type without the URN prefix.
func (p problem) short() string {
	s := p.Type
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		s = strings.ToLower(strings.ReplaceAll(p.Title, " ", "-"))
	}
	return s
}

func (p problem) message() string {
	var b strings.Builder
	if p.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d ", p.Status)
	}
	b.WriteString(p.short())
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	return b.String()
}

// readProblem reads an error answer: a problem, or whatever else the server said.
func readProblem(resp *http.Response) *problem {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	p := &problem{}
	if json.Unmarshal(data, p) != nil || (p.Type == "" && p.Title == "") {
		p = &problem{Title: http.StatusText(resp.StatusCode), Detail: cut(strings.TrimSpace(string(data)))}
	}
	p.Status = resp.StatusCode
	return p
}

// retryAfter is an answer's Retry-After in seconds (1 s when absent), at most maxRetryAfter.
func retryAfter(resp *http.Response) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	return time.Second
}

// backoff is the wait before the next attempt after a failure without Retry-After: 1 s, 2 s,
// 4 s, up to 10 s.
func backoff(attempt int) time.Duration {
	return min(time.Second<<min(attempt-1, 4), 10*time.Second)
}

// bare is a transport error without the method and URL that net/http wraps it in.
func bare(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// isRefused reports a connection refused: nothing listens at the URL.
func isRefused(err error) bool {
	var dns *net.DNSError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dns)
}
