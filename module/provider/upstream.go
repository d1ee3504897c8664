package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"time"
)

// Upstream sends one provider's HTTP calls. The host builds it from the provider's options and
// hands it to the adapter; adapters never build HTTP clients of their own.
type Upstream struct {
	// Transport carries the provider's calls: a keep-alive transport of the provider's own, so
	// that one provider's outage cannot use up another's connections. Calls go to it directly,
	// not through an http.Client: a vendor's redirect is an answer like any other (the
	// gateway's credentials never follow it to another host), and the context is the timeout.
	// When it refuses a call with an *Error (the host's rate budget does), Do returns that
	// error as it is.
	Transport http.RoundTripper
	// MaxResponse bounds the bytes read from one answer; a longer answer is a provider error.
	MaxResponse int64
	// Retries is how many more times a failed call that is safe to repeat is sent.
	Retries int
	// Backoff is the first wait between attempts. It doubles up to MaxBackoff, with jitter.
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// Response is a vendor answer read whole.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Do sends req and reads the answer, within req's context.
//
// It returns an *Error for what no adapter needs to look at: a transport failure (KindTimeout
// when the context's deadline passed, KindCanceled when the caller went away, KindUpstream
// otherwise), an answer over MaxResponse, a 5xx (KindUpstream) and a 429 (KindRateLimited,
// with the vendor's Retry-After). Every other answer comes back for the adapter to classify.
//
// idempotent says the request may be applied twice with the effect of once. Do repeats such a
// request after a connection error, a 502, 503 or 504; it repeats any request after a 429 (the
// vendor did not process it) and after a connection error that happened before the request
// was written. Waits grow exponentially with jitter, honour Retry-After, and never reach past
// the context's deadline: the provider's timeout is the budget of all attempts together.
func (u *Upstream) Do(req *http.Request, idempotent bool) (*Response, error) {
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		if attempt > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, &Error{Kind: KindUpstream, Detail: "cannot resend request", Err: err}
			}
			req.Body = body
		}
		resp, retry, err := u.send(req, idempotent)
		if err == nil {
			return resp, nil
		}
		if !retry || attempt >= u.Retries || (req.GetBody == nil && req.Body != nil && req.Body != http.NoBody) {
			return nil, err
		}
		wait := u.backoff(attempt)
		var pe *Error
		if errors.As(err, &pe) && pe.RetryAfter > wait {
			wait = pe.RetryAfter
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			return nil, err // no budget left for another attempt
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ContextError(ctx, err)
		case <-t.C:
		}
	}
}

// send makes one attempt. retry says whether the failure is one that may be repeated.
func (u *Upstream) send(req *http.Request, idempotent bool) (*Response, bool, error) {
	wrote := false
	if !idempotent {
		trace := &httptrace.ClientTrace{WroteHeaders: func() { wrote = true }}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	}
	resp, err := u.Transport.RoundTrip(req)
	if err != nil {
		var refused *Error
		if errors.As(err, &refused) {
			return nil, false, refused // the host's transport refused the call (a rate budget)
		}
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, false, ContextError(req.Context(), err)
		}
		return nil, idempotent || !wrote, &Error{Kind: KindUpstream, Detail: "connection error", Err: transportCause(err)}
	}
	defer resp.Body.Close()

	body, err := readBounded(resp, u.MaxResponse)
	if err != nil {
		if req.Context().Err() != nil {
			return nil, false, ContextError(req.Context(), err)
		}
		var pe *Error
		if errors.As(err, &pe) {
			return nil, false, pe // oversized: repeating it would not help
		}
		return nil, idempotent, &Error{Kind: KindUpstream, StatusCode: resp.StatusCode, Detail: "answer cut off", Err: transportCause(err)}
	}

	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		return nil, true, &Error{Kind: KindRateLimited, StatusCode: code, RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), Detail: "provider rate limit reached"}
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return nil, idempotent, &Error{Kind: KindUpstream, StatusCode: code, Detail: fmt.Sprintf("provider answered HTTP %d", code)}
	case code >= 500:
		return nil, false, &Error{Kind: KindUpstream, StatusCode: code, Detail: fmt.Sprintf("provider answered HTTP %d", code)}
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}, false, nil
}

// readBounded reads the whole body, or fails with an *Error when it is longer than limit.
func readBounded(resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, &Error{Kind: KindUpstream, StatusCode: resp.StatusCode, Detail: fmt.Sprintf("answer over the %d-byte limit", limit)}
	}
	if resp.ContentLength == 0 {
		return nil, nil
	}
	if resp.ContentLength > 0 {
		buf := make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > limit {
		return nil, &Error{Kind: KindUpstream, StatusCode: resp.StatusCode, Detail: fmt.Sprintf("answer over the %d-byte limit", limit)}
	}
	return buf, nil
}

// backoff returns the wait before attempt+1: exponential from Backoff, capped at MaxBackoff,
// with "equal jitter" (half fixed, half random) so that callers spread out.
func (u *Upstream) backoff(attempt int) time.Duration {
	d := u.Backoff
	for i := 0; i < attempt && d < u.MaxBackoff; i++ {
		d *= 2
	}
	if u.MaxBackoff > 0 && d > u.MaxBackoff {
		d = u.MaxBackoff
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(half+1)
}

// ContextError classifies a failure that happened because ctx is done: KindTimeout when its
// deadline passed, KindCanceled when the caller went away. cause may be nil.
func ContextError(ctx context.Context, cause error) *Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Kind: KindTimeout, Detail: "provider did not answer in time"}
	}
	return &Error{Kind: KindCanceled, Detail: "request canceled", Err: cause}
}

// transportCause strips the URL that *url.Error carries (it holds the credential ID, which
// is not secret but belongs in the log's own field) and keeps the network error.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// ParseRetryAfter reads a Retry-After header: delta-seconds or an HTTP date. It returns 0
// when the header is absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		if secs > 86400 {
			secs = 86400
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
