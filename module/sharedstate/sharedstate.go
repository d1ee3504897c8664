// Package sharedstate is the connection of several gateway instances to the state they
// share: a Redis server or cluster (github.com/redis/go-redis/v9). It holds the options of
// `shared_state redis { ... }`, the client, its key naming and its health: a loop that pings
// Redis every second, so that callers can tell at once whether to use the shared state or
// fall back to their own, and that recovers by itself when Redis answers again.
//
// Opening a connection makes no network call (Caddy's validate provisions the config); the
// health loop makes the first one.
package sharedstate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Defaults and bounds of a connection.
const (
	DefaultKeyPrefix = "credgate"
	// PingEvery is how often the health loop asks Redis whether it answers: the gauge and
	// the fallback follow Redis within about this (and OpTimeout).
	PingEvery = time.Second
	// OpTimeout bounds one command: a Redis that does not answer within it counts as down.
	OpTimeout = 500 * time.Millisecond
)

// Redis configures the connection to Redis: `shared_state redis { ... }`.
type Redis struct {
	// The addresses (host:port) of the Redis server, or of several nodes of a Redis Cluster
	// (two or more addresses make a cluster client). Default 127.0.0.1:6379.
	Addresses []string `json:"addresses,omitempty"`
	// The ACL user name, if any; placeholders such as {env.REDIS_USER} are resolved at
	// provisioning.
	Username string `json:"username,omitempty"`
	// The password, if any; use a placeholder ({env.REDIS_PASSWORD} or {file./path}).
	Password string `json:"password,omitempty"`
	// The database number (a standalone server only; a cluster has database 0). Default 0.
	DB int `json:"db,omitempty"`
	// What every key begins with, so that several deployments can share one Redis.
	// Default "credgate".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// TLS to Redis, verified against the system's roots or TLSCAFile's.
	TLS bool `json:"tls,omitempty"`
	// A PEM file of the certificate authorities that sign the Redis server's certificate
	// (implies tls).
	TLSCAFile string `json:"tls_ca_file,omitempty"`
}

// UnmarshalCaddyfile parses the block of `shared_state redis`; d is at "redis":
//
//	redis {
//		address    <host:port>    # repeat for a Redis Cluster
//		username   <user>
//		password   <password>
//		db         <n>
//		key_prefix <prefix>
//		tls
//		tls_ca_file <path>
//	}
func (r *Redis) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] && opt != "address" {
			return d.Errf("shared_state redis: duplicate option %q", opt)
		}
		seen[opt] = true
		var args []string
		for d.NextArg() {
			args = append(args, d.Val())
		}
		one := func() (string, error) {
			if len(args) != 1 {
				return "", d.Errf("shared_state redis: %s takes one value", opt)
			}
			return args[0], nil
		}
		var err error
		switch opt {
		case "address":
			var a string
			if a, err = one(); err == nil {
				r.Addresses = append(r.Addresses, a)
			}
		case "username":
			r.Username, err = one()
		case "password":
			r.Password, err = one()
		case "db":
			var v string
			if v, err = one(); err == nil {
				if _, serr := fmt.Sscanf(v, "%d", &r.DB); serr != nil || r.DB < 0 || fmt.Sprint(r.DB) != v {
					err = d.Errf("shared_state redis: db must be a number 0 or more, not %q", v)
				}
			}
		case "key_prefix":
			r.KeyPrefix, err = one()
		case "tls":
			if len(args) != 0 {
				err = d.Errf("shared_state redis: tls takes no value (tls_ca_file names a CA)")
			}
			r.TLS = true
		case "tls_ca_file":
			r.TLSCAFile, err = one()
		default:
			err = d.Errf("shared_state redis: unknown option %q (address, username, password, db, key_prefix, tls, tls_ca_file)", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the options.
func (r *Redis) Validate() error {
	for _, a := range r.Addresses {
		if a == "" || strings.ContainsAny(a, " /") {
			return fmt.Errorf("shared_state redis: address %q: want host:port", a)
		}
	}
	if r.DB < 0 {
		return errors.New("shared_state redis: db must be 0 or more")
	}
	if len(r.Addresses) > 1 && r.DB != 0 {
		return errors.New("shared_state redis: a Redis Cluster (two or more addresses) has only db 0")
	}
	if strings.ContainsAny(r.KeyPrefix, " {}") {
		return fmt.Errorf("shared_state redis: key_prefix %q: no blanks or braces", r.KeyPrefix)
	}
	return nil
}

// Conn is a connection to the shared state: a client, its key prefix, and whether Redis
// answered lately (Up).
type Conn struct {
	Client redis.UniversalClient
	prefix string
	logger *zap.Logger

	up       atomic.Bool
	mu       sync.Mutex // serializes up's transitions and their log lines
	downWhy  string
	cancel   context.CancelFunc
	loopDone chan struct{}
	onUp     []func()
}

// Open makes a connection of r (whose secrets are resolved) and starts its health loop,
// which stops with Close. It makes no network call itself: the loop's first ping comes
// after PingEvery/4, later than a `caddy validate` cleans the config up.
func Open(r Redis, logger *zap.Logger) (*Conn, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	addrs := r.Addresses
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:6379"}
	}
	var tlsConfig *tls.Config
	if r.TLS || r.TLSCAFile != "" {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if r.TLSCAFile != "" {
			pem, err := os.ReadFile(r.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("shared_state redis: tls_ca_file: %v", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("shared_state redis: tls_ca_file %s: no PEM certificate in it", r.TLSCAFile)
			}
			tlsConfig.RootCAs = roots
		}
	}
	prefix := r.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	c := &Conn{
		Client: redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs:           addrs,
			Username:        r.Username,
			Password:        r.Password,
			DB:              r.DB,
			TLSConfig:       tlsConfig,
			DialTimeout:     OpTimeout,
			ReadTimeout:     OpTimeout,
			WriteTimeout:    OpTimeout,
			PoolTimeout:     OpTimeout,
			MaxRetries:      1, // a pooled connection broken by a Redis restart: once more on a new one
			MinRetryBackoff: time.Millisecond,
			MaxRetryBackoff: 10 * time.Millisecond,
			DisableIdentity: true,
		}),
		prefix:   prefix,
		logger:   logger,
		loopDone: make(chan struct{}),
	}
	c.up.Store(true) // until a command or the first ping says otherwise
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.loop(ctx)
	return c, nil
}

// Key returns the key of parts under the connection's prefix: prefix:part:part...
func (c *Conn) Key(parts ...string) string {
	return c.prefix + ":" + strings.Join(parts, ":")
}

// Up says whether Redis answered its last command or ping. Callers that find it down use
// their own state instead of waiting for a Redis that does not answer.
func (c *Conn) Up() bool { return c.up.Load() }

// OnUp registers f to run (in the health loop) each time Redis answers again after it did
// not. Call it before the connection is shared.
func (c *Conn) OnUp(f func()) { c.onUp = append(c.onUp, f) }

// Failed notes the error of a command: any error but redis.Nil (no such key) and the
// caller's own cancellation means that Redis cannot be used now, until the health loop finds
// it answering again. It returns err.
func (c *Conn) Failed(err error) error {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return err
	}
	c.setUp(false, err)
	return err
}

// setUp records a transition, logging it once: a warning when Redis stops answering, an info
// line when it answers again.
func (c *Conn) setUp(up bool, err error) {
	if c.up.Load() == up {
		return
	}
	c.mu.Lock()
	if c.up.Load() == up {
		c.mu.Unlock()
		return
	}
	c.up.Store(up)
	var onUp []func()
	if up {
		c.logger.Info("shared state: Redis answers again; breakers, rate budgets and Idempotency-Keys are shared again")
		onUp = c.onUp
	} else {
		c.downWhy = err.Error()
		c.logger.Warn("shared state: Redis cannot be reached; breakers and rate budgets fall back to this instance's own, requests with an Idempotency-Key answer 503 until it answers again",
			zap.Error(err))
	}
	c.mu.Unlock()
	for _, f := range onUp {
		f()
	}
}

// loop pings Redis every PingEvery until Close.
func (c *Conn) loop(ctx context.Context) {
	defer close(c.loopDone)
	t := time.NewTimer(PingEvery / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, OpTimeout)
		err := c.Client.Ping(pctx).Err()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.setUp(false, err)
		} else {
			c.setUp(true, nil)
		}
		t.Reset(PingEvery)
	}
}

// Close stops the health loop and closes the client. It is safe to call more than once.
func (c *Conn) Close() error {
	c.cancel()
	<-c.loopDone
	if c.Client == nil {
		return nil
	}
	err := c.Client.Close()
	if errors.Is(err, redis.ErrClosed) {
		return nil
	}
	return err
}

// Ctx returns a context for one command: ctx's values without its cancellation (a caller
// that goes away must not make Redis look down), within OpTimeout.
func Ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), OpTimeout)
}
