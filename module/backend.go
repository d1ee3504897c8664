package module

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
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
	metrics   backendMetrics
	// slots bound a batch's calls to the provider to max_concurrent at once.
	slots chan struct{}
}

// acquire waits for one of the provider's batch slots, when ctx is a batch's; release gives
// it back. Other calls pass.
func (b *backend) acquire(ctx context.Context) (release func(), err error) {
	if ctx.Value(batchCtxKey{}) == nil {
		return noRelease, nil
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

// read calls the provider's read endpoint through the breaker, within the provider's timeout.
func (b *backend) read(ctx context.Context, id string) (*provider.Credential, error) {
	release, err := b.acquire(ctx)
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
func (b *backend) change(ctx context.Context, c *provider.Change) (*provider.Result, error) {
	release, err := b.acquire(ctx)
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
