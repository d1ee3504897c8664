package credentialstatus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/credgate/credgate/module/provider"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// backend is a configured provider at run time: its adapter's client behind its breaker, its
// rate budget and its batch slots.
type backend struct {
	name      string
	index     int // in the handler's providers sorted by name
	adapter   string
	s         settings
	caps      provider.Capabilities
	client    provider.Client
	breaker   *breaker
	up        *provider.Upstream
	transport *http.Transport
	// observer is the RoundTripper the adapter's calls go through: it takes each call's rate
	// token and notes each answer.
	observer *observingTransport
	metrics  backendMetrics
	// limiter is the provider's rate budget (rate, burst): every call takes a token. Nil when
	// the provider has no rate.
	limiter *rate.Limiter
	// shared is the provider's budget shared by a fleet (shared_state), which limiter stands
	// in for while Redis cannot be reached. Nil without shared_state or rate.
	shared *sharedBudget
	// slots bound the batches' calls to the provider to max_concurrent at once, shared fairly
	// between the batches that wait for them.
	slots *fairSlots
	// pausedUntil is when the provider's last 429 asked the gateway to wait until (unix
	// nanoseconds). A batch's calls wait for it, so that one rate limit slows all of them
	// down rather than each finding it out; a single request finds out for itself.
	pausedUntil atomic.Int64
}

// DefaultRateLimitPause is how long calls wait after a 429 that gave no Retry-After.
const DefaultRateLimitPause = time.Second

// maxBudgetWait is the longest a single request waits for a token of its provider's rate.
const maxBudgetWait = time.Second

// errBudget marks a call refused because the provider's rate budget had no room in time: the
// gateway's own 429 rate-limited, not the provider's.
var errBudget = errors.New("the provider's rate budget has no room")

// batchRun is one batch as its provider calls see it: the identity its calls wait for slots
// under. A nil *batchRun is a single request.
type batchRun struct {
	// items is the batch's size. (Not a zero-size struct: new would give every batch the
	// same address, and the slots could not tell batches apart.)
	items int
}

// callState travels in the context of one operation (a read or a change) from the backend to
// its transport: the rate tokens the backend took for it, which its first calls use, and
// where the change's audit record wants the provider's last HTTP status.
type callState struct {
	prepaid atomic.Int32
	status  atomic.Int32
}

type callStateKey struct{}

// enter readies an operation at the provider. A batch's (run not nil) waits while the
// provider's last 429 lasts and for one of its slots; release gives the slot back. Then, when
// the provider has a rate, it takes the operation's first token: a batch waits its turn, a
// single request at most a second (less when its timeout is nearer), else it fails with the
// gateway's 429 rate-limited and calls nothing. The token is put in st for the first call.
func (b *backend) enter(ctx context.Context, run *batchRun, st *callState) (release func(), err error) {
	release = noRelease
	if run != nil {
		if err := b.waitPause(ctx); err != nil {
			return nil, err
		}
		if err := b.slots.acquire(ctx, run); err != nil {
			return nil, provider.ContextError(ctx, err)
		}
		release = b.slots.release
	}
	if b.limiter == nil {
		return release, nil
	}
	if handled, err := b.sharedTake(ctx, run != nil, min(maxBudgetWait, b.s.timeout)); handled {
		if err != nil {
			release()
			return nil, err
		}
		st.prepaid.Add(1)
		return release, nil
	}
	if run != nil {
		if err := b.limiter.Wait(ctx); err != nil {
			release()
			return nil, provider.ContextError(ctx, err)
		}
	} else {
		r := b.limiter.Reserve()
		wait := r.Delay()
		if bound := min(maxBudgetWait, b.s.timeout); wait > bound {
			r.Cancel()
			return nil, &provider.Error{Kind: provider.KindRateLimited, RetryAfter: wait, Detail: "the provider's rate budget has no room within " + bound.String(), Err: errBudget}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return nil, provider.ContextError(ctx, ctx.Err())
			case <-t.C:
			}
		}
	}
	st.prepaid.Add(1)
	return release, nil
}

func noRelease() {}

// pause makes the provider's batch calls wait d (DefaultRateLimitPause when 0) from now,
// unless they wait longer already.
func (b *backend) pause(d time.Duration) {
	if d <= 0 {
		d = DefaultRateLimitPause
	}
	until := time.Now().Add(d).UnixNano()
	for {
		cur := b.pausedUntil.Load()
		if cur >= until || b.pausedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// pauseLeft is how long the provider's last 429 still asks the gateway to wait.
func (b *backend) pauseLeft() time.Duration {
	until := b.pausedUntil.Load()
	if until == 0 {
		return 0
	}
	return max(0, time.Until(time.Unix(0, until)))
}

// waitPause waits while the provider's rate limit lasts. When it lasts longer than
// max_retry_after, or past ctx's deadline, it does not wait: the call fails at once as
// rate-limited, with the time left (cut to max_retry_after).
func (b *backend) waitPause(ctx context.Context) error {
	wait := b.pauseLeft()
	if wait <= 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); wait > b.s.maxRetryAfter || (ok && time.Until(deadline) <= wait) {
		return &provider.Error{Kind: provider.KindRateLimited, RetryAfter: min(wait, b.s.maxRetryAfter), Detail: "provider rate limit reached: the provider asked the gateway to wait"}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return provider.ContextError(ctx, ctx.Err())
	case <-t.C:
		return nil
	}
}

// observingTransport passes the provider's calls on to its transport. Each call first takes a
// token of the provider's rate (the operation's own from enter, or one it waits for within
// the operation's deadline); each answer is noted: a 429 pauses the provider's batch calls
// (see pause), and the status goes to the operation's call state when it has one.
type observingTransport struct {
	next http.RoundTripper
	b    *backend
}

// RoundTrip implements http.RoundTripper.
func (o *observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(callStateKey{}).(*callState)
	if lim := o.b.limiter; lim != nil && (st == nil || st.prepaid.Add(-1) < 0) {
		if handled, err := o.b.sharedTake(req.Context(), true, 0); handled {
			if err != nil {
				return nil, err
			}
		} else if err := lim.Wait(req.Context()); err != nil {
			if req.Context().Err() != nil {
				return nil, err
			}
			return nil, &provider.Error{Kind: provider.KindRateLimited, RetryAfter: time.Second, Detail: "the provider's rate budget has no room before the provider's timeout", Err: errBudget}
		}
	}
	resp, err := o.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		o.b.pause(provider.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	if st != nil {
		st.status.Store(int32(resp.StatusCode))
	}
	return resp, nil
}

// read calls the provider's read endpoint (see do). run is the batch it is an item of, nil
// for a single request.
func (b *backend) read(ctx context.Context, id string, run *batchRun) (*provider.Credential, error) {
	if b.s.readsOff {
		return nil, readsDisabled(b, id)
	}
	var st *callState
	if b.limiter != nil {
		st = new(callState)
	}
	return do(b, ctx, run, st, b.metrics.readTime, "credential", func(ctx context.Context) (*provider.Credential, error) {
		return b.client.Read(ctx, id)
	})
}

// change calls the provider's change (see do). st, the change's call state (its audit
// record's), takes the provider's last HTTP status.
func (b *backend) change(ctx context.Context, c *provider.Change, run *batchRun, st *callState) (*provider.Result, error) {
	c = b.changeFor(c)
	return do(b, ctx, run, st, b.metrics.changeTime, "result", func(ctx context.Context) (*provider.Result, error) {
		return b.client.Change(ctx, c)
	})
}

// do runs one operation of the adapter at the provider: in its turn (enter: a batch's slot,
// the rate budget), through its breaker, within its timeout, timed in took. st, when not nil,
// travels with the operation's calls to the transport. An adapter that returns neither a
// value nor an error has failed; what names the missing value.
func do[T any](b *backend, ctx context.Context, run *batchRun, st *callState, took prometheus.Observer, what string, op func(context.Context) (*T, error)) (*T, error) {
	release, err := b.enter(ctx, run, st)
	if err != nil {
		return nil, err
	}
	defer release()
	done, err := b.breaker.allow()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, b.s.timeout)
	defer cancel()
	if st != nil {
		ctx = context.WithValue(ctx, callStateKey{}, st)
	}
	v, err := op(ctx)
	took.Observe(time.Since(start).Seconds())
	if err == nil && v == nil {
		err = errors.New("adapter returned no " + what)
	}
	err = b.settle(ctx, err)
	b.breaker.finish(done, err)
	return v, err
}

// settle turns what an adapter returned into a classified error. When the context is done,
// the error is its doing (a timeout, or the caller gone), unless the vendor did answer: an
// error that carries the vendor's status stays as it is. An unclassified error is a provider
// error.
func (b *backend) settle(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var rl *provider.Error
	if errors.As(err, &rl) && rl.Kind == provider.KindRateLimited && rl.RetryAfter > b.s.maxRetryAfter {
		capped := *rl // the vendor's Retry-After, cut to max_retry_after for the client
		capped.RetryAfter = b.s.maxRetryAfter
		err = &capped
	}
	var pe *provider.Error
	classified := errors.As(err, &pe)
	if ctxErr := ctx.Err(); ctxErr != nil && !(classified && pe.StatusCode != 0) {
		if k := provider.KindOf(err); k == provider.KindTimeout || k == provider.KindCanceled {
			return err
		}
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return &provider.Error{Kind: provider.KindTimeout, Detail: "provider did not answer in time"}
		}
		return &provider.Error{Kind: provider.KindCanceled, Detail: "request canceled"}
	}
	if !classified {
		return &provider.Error{Kind: provider.KindUpstream, Detail: "provider error", Err: err}
	}
	return err
}

// newTransport returns a provider's own keep-alive transport. TLS is always verified; caFile,
// when set, replaces the system roots with the PEM certificates it holds.
func newTransport(s settings, caFile string) (*http.Transport, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %v", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_file %s: no PEM certificate in it", caFile)
		}
		tlsConfig.RootCAs = roots
	}
	dialer := &net.Dialer{Timeout: s.timeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          s.maxConnections,
		MaxIdleConnsPerHost:   s.maxConnections,
		MaxConnsPerHost:       s.maxConnections,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}, nil
}
