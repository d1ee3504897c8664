package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stubKeyPath is DigiCert's API key path (shared/PROVIDERS.md, digicert).
const stubKeyPath = "/partner-subscription/api/v1/api-key/"

// stubAPIKey is the partner key every stub requires in X-PARTNER-APIKEY, and the literal
// api_key of every digicert provider the benchmark configures.
const stubAPIKey = "bench-partner-key"

// stub is a fast upstream that speaks the part of DigiCert's Partner Subscriptions API that the
// digicert adapter uses:
//
//	GET /partner-subscription/api/v1/api-key/{id}         200, a DigiCert-shaped API key
//	PUT /partner-subscription/api/v1/api-key/{id}/status  {"status":...}: 204, stored
//
// Every numeric ID exists (status from a per-ID map, default active), unless owns says
// otherwise: then the IDs it does not own answer 404, DigiCert's "unknown ID". Every request
// needs the partner key; without it the answer is 401. A stub counts every request it gets,
// whatever its answer, so that a round can tell how many upstream calls each client request
// caused.
type stub struct {
	name  string
	url   string // http://127.0.0.1:port, the providers' base_url
	addr  string // 127.0.0.1:port
	delay time.Duration
	owns  func(id uint64) bool // nil: every ID

	// track records when each ID's request arrived and was answered (the probe's stubs: to
	// tell whether the gateway asked its candidates at once or one after another).
	track bool
	tmu   sync.Mutex
	times map[uint64][2]time.Time

	fail  atomic.Bool  // answer 500 to everything (to open a breaker)
	calls atomic.Int64 // every request received
	gets  atomic.Int64
	puts  atomic.Int64

	mu     sync.RWMutex
	status map[uint64]string

	srv *http.Server
}

var (
	hdrJSON   = []string{"application/json"}
	bodyKeyA  = []byte(`{"id":`)
	bodyKeyB  = []byte(`,"name":"build-server","account_id":1001,"status":"`)
	bodyKeyC  = []byte(`","created_at":"2024-05-01T09:30:00Z","last_used_date":"2026-11-20T17:02:11Z","api_key_last4":"4345"}`)
	body401   = []byte(`{"errors":[{"code":"access_denied","message":"missing or wrong partner key"}]}`)
	body404   = []byte(`{"errors":[{"code":"not_found","message":"no such API key"}]}`)
	body500   = []byte(`{"errors":[{"code":"internal_error","message":"stub failure"}]}`)
	body400   = []byte(`{"errors":[{"code":"invalid_input","message":"bad request"}]}`)
	bodyCache sync.Pool
)

// newStub starts a stub on a free loopback port.
func newStub(name string, delay time.Duration, owns func(uint64) bool, track bool) (*stub, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &stub{
		name:   name,
		addr:   ln.Addr().String(),
		url:    "http://" + ln.Addr().String(),
		delay:  delay,
		owns:   owns,
		track:  track,
		status: make(map[uint64]string),
		times:  make(map[uint64][2]time.Time),
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *stub) close() { _ = s.srv.Close() }

// tracked returns the arrival and answer times of the IDs from first on.
func (s *stub) tracked(first uint64) map[uint64][2]time.Time {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	out := make(map[uint64][2]time.Time)
	for id, t := range s.times {
		if id >= first {
			out[id] = t
		}
	}
	return out
}

func (s *stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if s.track {
		arrived := time.Now()
		defer func() {
			if id, err := strconv.ParseUint(strings.TrimPrefix(r.URL.Path, stubKeyPath), 10, 64); err == nil {
				s.tmu.Lock()
				s.times[id] = [2]time.Time{arrived, time.Now()}
				s.tmu.Unlock()
			}
		}()
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if k := r.Header["X-Partner-Apikey"]; len(k) != 1 || k[0] != stubAPIKey {
		writeStub(w, http.StatusUnauthorized, body401)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, stubKeyPath)
	if !ok {
		writeStub(w, http.StatusNotFound, body404)
		return
	}
	idText, sub, _ := strings.Cut(rest, "/")
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		writeStub(w, http.StatusNotFound, body404)
		return
	}
	if s.fail.Load() {
		writeStub(w, http.StatusInternalServerError, body500)
		return
	}
	if s.owns != nil && !s.owns(id) {
		writeStub(w, http.StatusNotFound, body404)
		return
	}
	switch {
	case sub == "" && r.Method == http.MethodGet:
		s.gets.Add(1)
		s.mu.RLock()
		st, ok := s.status[id]
		s.mu.RUnlock()
		if !ok {
			st = "active"
		}
		bp, _ := bodyCache.Get().(*[]byte)
		if bp == nil {
			b := make([]byte, 0, 256)
			bp = &b
		}
		b := append((*bp)[:0], bodyKeyA...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, bodyKeyB...)
		b = append(b, st...)
		b = append(b, bodyKeyC...)
		writeStub(w, http.StatusOK, b)
		*bp = b
		bodyCache.Put(bp)
	case sub == "status" && r.Method == http.MethodPut:
		s.puts.Add(1)
		var req struct {
			Status string `json:"status"`
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err != nil || json.Unmarshal(raw, &req) != nil || (req.Status != "active" && req.Status != "inactive") {
			writeStub(w, http.StatusBadRequest, body400)
			return
		}
		s.mu.Lock()
		s.status[id] = req.Status
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header()["Allow"] = []string{"GET, PUT"}
		writeStub(w, http.StatusMethodNotAllowed, body400)
	}
}

func writeStub(w http.ResponseWriter, code int, body []byte) {
	w.Header()["Content-Type"] = hdrJSON // net/http adds Content-Length: the body is small
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
