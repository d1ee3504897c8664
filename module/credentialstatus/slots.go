package credentialstatus

import (
	"context"
	"sync"
)

// fairSlots are a provider's max_concurrent slots for batch calls, shared fairly between the
// batches that wait for them: a freed slot goes to the next waiting batch in turn, not to
// whichever call asked first, so a one-item batch waits at most one slot turn behind batches
// of thousands.
type fairSlots struct {
	mu      sync.Mutex
	free    int
	waiting []*runWaiters // the batches with calls waiting, in turn order
	next    int           // whose turn it is in waiting
	byRun   map[*batchRun]*runWaiters
}

// runWaiters are one batch's calls waiting for a slot, first come first served.
type runWaiters struct {
	run     *batchRun
	waiters []chan struct{}
}

func newFairSlots(n int) *fairSlots {
	return &fairSlots{free: n, byRun: map[*batchRun]*runWaiters{}}
}

// acquire takes a slot for a call of run, waiting its batch's turn; it fails only when ctx
// ends first.
func (s *fairSlots) acquire(ctx context.Context, run *batchRun) error {
	s.mu.Lock()
	if s.free > 0 && len(s.waiting) == 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{}, 1)
	w := s.byRun[run]
	if w == nil {
		w = &runWaiters{run: run}
		s.byRun[run] = w
		s.waiting = append(s.waiting, w)
	}
	w.waiters = append(w.waiters, ch)
	s.mu.Unlock()

	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for i, c := range w.waiters {
		if c == ch { // still waiting: leave the line
			w.waiters = append(w.waiters[:i], w.waiters[i+1:]...)
			if len(w.waiters) == 0 {
				s.drop(w)
			}
			s.mu.Unlock()
			return ctx.Err()
		}
	}
	s.mu.Unlock()
	// The slot was handed over as ctx ended: pass it on.
	s.release()
	return ctx.Err()
}

// release frees a slot: it goes to the first waiting call of the batch whose turn it is.
func (s *fairSlots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiting) == 0 {
		s.free++
		return
	}
	if s.next >= len(s.waiting) {
		s.next = 0
	}
	w := s.waiting[s.next]
	ch := w.waiters[0]
	w.waiters = w.waiters[1:]
	if len(w.waiters) == 0 {
		s.drop(w) // the next batch moves into this turn
	} else {
		s.next++
	}
	ch <- struct{}{}
}

// drop takes a batch with no waiting call out of the turns.
func (s *fairSlots) drop(w *runWaiters) {
	delete(s.byRun, w.run)
	for i, x := range s.waiting {
		if x == w {
			s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
			if i < s.next {
				s.next--
			}
			return
		}
	}
}
