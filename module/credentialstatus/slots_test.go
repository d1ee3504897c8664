package credentialstatus

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFairSlotsTakeTurns: with one slot, a big batch's many waiting calls and a small batch's
// one, the small one gets the next freed slot.
func TestFairSlotsTakeTurns(t *testing.T) {
	s := newFairSlots(1)
	big, small := new(batchRun), new(batchRun)
	ctx := context.Background()
	require.NoError(t, s.acquire(ctx, big)) // the big batch holds the slot
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	wait := func(name string, run *batchRun) {
		defer wg.Done()
		require.NoError(t, s.acquire(ctx, run))
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		s.release()
	}
	for range 5 {
		wg.Add(1)
		go wait("big", big)
	}
	waitForWaiters(t, s, 5)
	wg.Add(1)
	go wait("small", small)
	waitForWaiters(t, s, 6)
	s.release()
	wg.Wait()
	require.Len(t, order, 6)
	assert.Equal(t, "big", order[0], "the big batch's first waiter had its turn first")
	assert.Equal(t, "small", order[1], "then the small batch, not the big one's 4 others: %v", order)
	assert.Equal(t, 1, s.free)
}

// TestFairSlotsCancel: a call that gives up leaves the line, and a slot handed to it as it
// gave up goes on to the next.
func TestFairSlotsCancel(t *testing.T) {
	s := newFairSlots(1)
	run := new(batchRun)
	require.NoError(t, s.acquire(context.Background(), run))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- s.acquire(ctx, run) }()
	waitForWaiters(t, s, 1)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	assert.Empty(t, s.waiting)
	s.release()
	assert.Equal(t, 1, s.free)
}

func waitForWaiters(t *testing.T, s *fairSlots, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		c := 0
		for _, w := range s.waiting {
			c += len(w.waiters)
		}
		return c == n
	}, 5*time.Second, time.Millisecond)
}
