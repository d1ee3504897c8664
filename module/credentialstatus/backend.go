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
)

// backend is a configured provider at run time: its adapter's client behind its breaker.
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
	// observer is the RoundTripper the adapter's calls go through: it notes each answer.
	observer *observingTransport
	metrics  backendMetrics
	// slots bound a batch's calls to the provider to max_concurrent at once.
	slots chan struct{}
	// pausedUntil is when the provider's last 429 asked the gateway to wait until (unix
	// nanoseconds). A batch's calls wait for it, so that one rate limit slows all of them
	// down rather than each finding it out; a single request finds out for itself.
	pausedUntil atomic.Int64
}

// DefaultRateLimitPause is how long calls wait after a 429 that gave no Retry-After.
const DefaultRateLimitPause = time.Second

// enter readies a call to the provider. A batch's call (batch true) waits while the
// provider's last 429 lasts and for one of its max_concurrent slots; release gives the slot
// back. Other calls pass at once.
func (b *backend) enter(ctx context.Context, batch bool) (release func(), err error) {
	if !batch {
		return noRelease, nil
	}
	if err := b.waitPause(ctx); err != nil {
		return nil, err
	}
	select {
	case b.slots <- struct{}{}:
		return b.release, nil
	case <-ctx.Done():
		return nil, provider.ContextError(ctx, ctx.Err())
	}
}

func (b *backend) release() { <-b.slots }

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

// waitPause waits while the provider's rate limit lasts. When it lasts past ctx's deadline,
// it does not wait: the call fails at once as rate-limited, with the time left.
func (b *backend) waitPause(ctx context.Context) error {
	until := b.pausedUntil.Load()
	if until == 0 {
		return nil
	}
	wait := time.Until(time.Unix(0, until))
	if wait <= 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
		return &provider.Error{Kind: provider.KindRateLimited, RetryAfter: wait, Detail: "provider rate limit reached: the gateway waits as the provider asked"}
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

// observingTransport passes the provider's calls on to its transport and notes each answer: a 429
// pauses the provider's batch calls (see pause), and the status goes to the change's audit
// record when the call's context carries one (withStatusRecord).
type observingTransport struct {
	next http.RoundTripper
	b    *backend
}

// RoundTrip implements http.RoundTripper.
func (o *observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		o.b.pause(provider.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	if rec, ok := req.Context().Value(statusRecordKey{}).(*atomic.Int32); ok {
		rec.Store(int32(resp.StatusCode))
	}
	return resp, nil
}

type statusRecordKey struct{}

// withStatusRecord returns a context whose provider calls store the HTTP status of each answer
// in rec, the last one winning: a change's audit entry gives the status of the provider's last
// answer. The key is the handler's own: it goes through the adapter's calls untouched.
func withStatusRecord(ctx context.Context, rec *atomic.Int32) context.Context {
	return context.WithValue(ctx, statusRecordKey{}, rec)
}

// read calls the provider's read endpoint through the breaker, within the provider's timeout.
func (b *backend) read(ctx context.Context, id string, batch bool) (*provider.Credential, error) {
	if b.s.readsOff {
		return nil, readsDisabled(b, id)
	}
	release, err := b.enter(ctx, batch)
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
	cred, err := b.client.Read(ctx, id)
	b.metrics.readTime.Observe(time.Since(start).Seconds())
	if err == nil && cred == nil {
		err = errors.New("adapter returned no credential")
	}
	err = settle(ctx, err)
	b.breaker.finish(done, err)
	return cred, err
}

// change calls the provider's change through the breaker, within the provider's timeout.
func (b *backend) change(ctx context.Context, c *provider.Change, batch bool) (*provider.Result, error) {
	c = b.changeFor(c)
	release, err := b.enter(ctx, batch)
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
	res, err := b.client.Change(ctx, c)
	b.metrics.changeTime.Observe(time.Since(start).Seconds())
	if err == nil && res == nil {
		err = errors.New("adapter returned no result")
	}
	err = settle(ctx, err)
	b.breaker.finish(done, err)
	return res, err
}

// settle turns what an adapter returned into a classified error. When the context is done,
// the error is its doing (a timeout, or the caller gone), unless the vendor did answer: an
// error that carries the vendor's status stays as it is. An unclassified error is a provider
// error.
func settle(ctx context.Context, err error) error {
	if err == nil {
		return nil
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
