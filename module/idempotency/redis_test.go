package idempotency

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/credgate/credgate/module/sharedstate"
	"github.com/credgate/credgate/module/sharedstate/redistest"
)

func openShared(t *testing.T, addr string) *sharedstate.Conn {
	t.Helper()
	c, err := sharedstate.Open(sharedstate.Redis{Addresses: []string{addr}, KeyPrefix: "t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedisStoreShared runs two stores (two instances) on one real Redis: a key answered
// through one is replayed by the other, a key in flight on one is in flight on the other, a
// reservation that is never finished ends with its lease, and a Redis that is down fails
// Begin at once.
func TestRedisStoreShared(t *testing.T) {
	srv := redistest.Start(t)
	cfg := Config{TTL: time.Hour, Lease: 300 * time.Millisecond}
	a := NewRedisStore(openShared(t, srv.Addr), cfg)
	b := NewRedisStore(openShared(t, srv.Addr), cfg)
	ctx := context.Background()

	res, err := a.Begin(ctx, "c", "k1", "fp")
	if err != nil || res.Outcome != Run {
		t.Fatalf("a.Begin = %v, %v; want run", res.Outcome, err)
	}
	if got, err := b.Begin(ctx, "c", "k1", "fp"); err != nil || got.Outcome != InFlight {
		t.Fatalf("b.Begin while a runs = %v, %v; want in-flight", got.Outcome, err)
	}
	ans := &Answer{Status: http.StatusOK, Header: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"ok":true}`)}
	if err := a.Finish(ctx, res, ans); err != nil {
		t.Fatal(err)
	}
	got, err := b.Begin(ctx, "c", "k1", "fp")
	if err != nil || got.Outcome != Replay || string(got.Answer.Body) != `{"ok":true}` {
		t.Fatalf("b.Begin after a finished = %v, %v; want replay", got.Outcome, err)
	}
	if got, _ := b.Begin(ctx, "c", "k1", "other"); got.Outcome != Mismatch {
		t.Fatalf("another fingerprint = %v; want mismatch", got.Outcome)
	}

	// A reservation never finished (its instance killed) ends with its lease.
	if got, _ := a.Begin(ctx, "c", "k2", "fp"); got.Outcome != Run {
		t.Fatalf("k2 = %v", got.Outcome)
	}
	time.Sleep(400 * time.Millisecond)
	late, err := b.Begin(ctx, "c", "k2", "fp")
	if err != nil || late.Outcome != Run {
		t.Fatalf("k2 after its lease = %v, %v; want run", late.Outcome, err)
	}

	// Released: the next request runs.
	if err := b.Release(ctx, late); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Begin(ctx, "c", "k2", "fp"); got.Outcome != Run {
		t.Fatalf("k2 after release = %v; want run", got.Outcome)
	}

	srv.Stop()
	start := time.Now()
	if _, err := a.Begin(ctx, "c", "k3", "fp"); err == nil {
		t.Fatal("Begin with Redis down: no error")
	}
	if _, err := a.Begin(ctx, "c", "k3", "fp"); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("second Begin with Redis down: %v after %v; want a fast error", err, time.Since(start))
	}
}
