package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"testing"
)

// discardWriter is the client's end of a recorded answer: its own header map, as a real
// response has, and a body that goes nowhere.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// putAnswer is a single PUT's answer, about 600 bytes, as the handler writes it.
func putAnswer(i int) []byte {
	return fmt.Appendf(nil, `{"id":"%08d-a199-4ce2-85a3-d0d296855384","provider":"custody-eu","adapter":"palisade",`+
		`"status":"inactive","changed":true,"pending_status":"inactive","provider_status":"DISABLED",`+
		`"previous_status":"active","dry_run":false,"reason":"INC-42 leaked in a public repository, rotated by the on-call",`+
		`"details":{"name":"ci-deploy-key","owner":"platform-team@example.com","created_at":"2024-03-01T09:12:44Z",`+
		`"last_used_at":"2026-11-22T23:59:01Z","scopes":["read","write","deploy"],"api_key_last4":"5890"},`+
		`"request_id":"%016x","at":"2026-11-23T12:00:00Z"}`+"\n", i, uint64(i)*0x9e3779b97f4a7c15)
}

// batchItem is one line of a batch's answer, as the handler streams it.
var batchItem = []byte(`{"id":"12345","provider":"digicert-parent","status":"inactive","changed":true,"provider_status":"revoked"},` + "\n")

// fillMemoryStore sends requests with fresh keys through a memory store of maxBytes, as the
// handler does (a Recorder, then Finish), until their answers add up to rounds times
// maxBytes: a single PUT's answer each, or with mix, one in 50 a batch answer of up to
// maxBytes/16 written item by item. It returns the backend, which holds what was kept.
func fillMemoryStore(maxBytes int64, rounds int, mix bool, seed uint64) *MemoryBackend {
	m, err := NewMemoryBackend(DefaultMaxKeys, maxBytes)
	if err != nil {
		panic(err)
	}
	s := NewStore(m, Config{TTL: DefaultTTL, Lease: DefaultLease, MaxKeys: DefaultMaxKeys, MaxMemory: maxBytes})
	rnd := mathrand.New(mathrand.NewPCG(seed, 1))
	bg := context.Background()
	var written int64
	for i := 0; written < int64(rounds)*maxBytes; i++ {
		fp := sha256.Sum256([]byte(strconv.Itoa(i)))
		res, err := s.Begin(bg, "digicert-parent custody-eu alice", "INC-42-"+strconv.Itoa(i), hex.EncodeToString(fp[:]))
		if err != nil || res.Outcome != Run {
			panic(fmt.Sprint(res.Outcome, err))
		}
		w := &discardWriter{h: make(http.Header)}
		rec := s.Recorder(w)
		rec.Header().Set("Content-Type", "application/json")
		rec.Header().Set("Cache-Control", "no-store")
		rec.WriteHeader(http.StatusOK)
		if mix && i%50 == 49 {
			size := 1024 + rnd.Int64N(maxBytes/16-1024)
			_, _ = rec.Write([]byte(`{"items":[` + "\n"))
			n := int64(11)
			for n+int64(len(batchItem)) <= size-3 {
				_, _ = rec.Write(batchItem)
				n += int64(len(batchItem))
			}
			_, _ = rec.Write([]byte("]}\n"))
			written += n + 3
		} else {
			body := putAnswer(i)
			_, _ = rec.Write(body)
			written += int64(len(body))
		}
		if err := s.Finish(bg, res, rec.Answer()); err != nil {
			panic(err)
		}
	}
	return m
}

// liveHeap returns the bytes of the heap's live objects, after a full collection.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryStoreHeap fills a memory store of max_memory M far beyond its bound (answers
// of three times M in all) and measures what it really holds: the live heap after it, less the
// live heap before, in MiB ("heap-MiB"), and that over M ("heap/max", the goal being <= 1).
// "accounted-MiB" is what the store believes it holds. Each iteration fills a new store; the
// figures are the largest of the iterations.
func BenchmarkMemoryStoreHeap(b *testing.B) {
	for _, mib := range []int64{16, 64} {
		for _, mix := range []bool{false, true} {
			name := fmt.Sprintf("max=%dMiB/put", mib)
			if mix {
				name = fmt.Sprintf("max=%dMiB/mix", mib)
			}
			b.Run(name, func(b *testing.B) {
				maxBytes := mib << 20
				var heap, accounted, keys float64
				for i := 0; i < b.N; i++ {
					before := liveHeap()
					m := fillMemoryStore(maxBytes, 3, mix, uint64(i))
					after := liveHeap()
					heap = max(heap, float64(int64(after)-int64(before)))
					m.mu.Lock()
					accounted = max(accounted, float64(m.bytes))
					keys = max(keys, float64(m.lru.Len()))
					m.mu.Unlock()
					runtime.KeepAlive(m)
				}
				b.ReportMetric(heap/(1<<20), "heap-MiB")
				b.ReportMetric(heap/float64(maxBytes), "heap/max")
				b.ReportMetric(accounted/(1<<20), "accounted-MiB")
				b.ReportMetric(keys, "keys")
			})
		}
	}
}
