package providertest

// The simulator base. A vendor simulator (adapters/<vendor>/<vendor>test) is a real HTTP
// server that follows the vendor's API page (paths, methods, authentication, bodies, error
// shapes) and keeps state; NewServer wraps its handler with what every simulator shares:
// switches for the faults a gateway must survive and a log of the requests received. Tests
// start simulators in-process; `make run` starts them as one program (tests/cmd/simulators)
// beside the gateway.

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is a way for a simulator to misbehave. The zero Fault is "behave".
type Fault struct {
	// Status answers every request with this HTTP status and a vendor-shaped error body.
	Status int `json:"status,omitempty"`
	// RetryAfter is sent as Retry-After with Status (use it with 429 or 503).
	RetryAfter string `json:"retry_after,omitempty"`
	// Message is the error message of the vendor's error body with Status; default
	// "simulated fault". Tests plant secrets in it: the gateway must never pass it on.
	Message string `json:"message,omitempty"`
	// Code is the vendor error code of the error body with Status; default simulated_fault.
	Code string `json:"code,omitempty"`
	// Hang holds every request this long before answering normally (or until the client
	// goes away).
	Hang time.Duration `json:"-"`
	// Malformed answers 200 with a body that is not JSON.
	Malformed bool `json:"malformed,omitempty"`
	// WrongContentType answers 200 with an HTML page.
	WrongContentType bool `json:"wrong_content_type,omitempty"`
	// Reset closes the connection without an answer (TCP RST).
	Reset bool `json:"reset,omitempty"`
	// Huge answers 200 with a JSON body of this many bytes.
	Huge int `json:"huge,omitempty"`
	// Times limits the fault to the next Times requests; 0 means until it is cleared.
	Times int `json:"times,omitempty"`
	// Path limits the fault to requests whose path contains this text; empty means all.
	Path string `json:"path,omitempty"`
	// Method limits the fault to requests of this method (a write after its read, say);
	// empty means all.
	Method string `json:"method,omitempty"`
}

// Request is a request a simulator received.
type Request struct {
	Method string
	Path   string // the escaped path
	Header http.Header
	Body   []byte
	At     time.Time // when it arrived
}

// Server is the part every simulator shares: an HTTP server with fault switches and a log
// of the requests it received.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	fault    Fault
	requests []Request
	// inFlight counts the vendor requests being served; maxInFlight is its peak since the
	// log was last reset.
	inFlight, maxInFlight int
	// noRead is the status every GET answers (404 or 405), when not 0: a vendor account
	// without the read endpoint that no seed page documents (see SetReadRoute).
	noRead int
	// errorBody writes the vendor's error shape for a fault's status.
	errorBody func(w http.ResponseWriter, status int, code, message string)
}

// NewServer starts a simulator serving vendor on a free loopback port, or on addr when it is
// not empty; it panics when addr cannot be listened on. errorBody writes the vendor's error
// shape (status, a code, a message) for a fault's Status. Besides vendor's paths, the server
// answers /_sim/fault (POST a Fault as JSON to set it, DELETE to clear it) and /_sim/requests
// (the request log, headers left out).
func NewServer(vendor http.Handler, errorBody func(w http.ResponseWriter, status int, code, message string), addr string) *Server {
	s := &Server{errorBody: errorBody}
	mux := http.NewServeMux()
	mux.HandleFunc("/_sim/fault", s.serveFault)
	mux.HandleFunc("/_sim/requests", s.serveRequests)
	mux.Handle("/", s.wrap(vendor))
	s.Server = httptest.NewUnstartedServer(mux)
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			panic("simulator: listen " + addr + ": " + err.Error())
		}
		s.Server.Listener.Close()
		s.Server.Listener = l
	}
	s.Server.Start()
	return s
}

// SetReadRoute takes the vendor's read route away: with status 404 or 405 every GET answers
// that status (405 with Allow naming the write methods) and a vendor-shaped error body, as an
// account whose vendor has no read endpoint would; 0 serves it again. Every vendor's read is a
// GET and no write is, so one switch serves all simulators.
func (s *Server) SetReadRoute(status int) {
	s.mu.Lock()
	s.noRead = status
	s.mu.Unlock()
}

// SetFault makes the simulator misbehave until Clear, or for f.Times requests.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Clear makes the simulator behave again.
func (s *Server) Clear() { s.SetFault(Fault{}) }

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests had the method (any method when empty).
func (s *Server) Count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if method == "" || r.Method == method {
			n++
		}
	}
	return n
}

// Writes returns how many requests could have changed something (any method but GET/HEAD).
func (s *Server) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			n++
		}
	}
	return n
}

// ResetLog forgets the requests received so far, and the peak of requests in flight.
func (s *Server) ResetLog() {
	s.mu.Lock()
	s.requests = nil
	s.maxInFlight = s.inFlight
	s.mu.Unlock()
}

// MaxInFlight returns the most vendor requests the simulator served at once since the log
// was last reset.
// InFlight returns how many vendor requests the simulator is serving now.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// takeFault returns the fault that applies to a request, and counts it down.
func (s *Server) takeFault(r *http.Request) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	if f == (Fault{}) || (f.Path != "" && !strings.Contains(r.URL.Path, f.Path)) || (f.Method != "" && f.Method != r.Method) {
		return Fault{}
	}
	if f.Times > 0 {
		s.fault.Times--
		if s.fault.Times == 0 {
			s.fault = Fault{}
		}
	}
	return f
}

func (s *Server) wrap(vendor http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: body, At: time.Now()})
		s.inFlight++
		s.maxInFlight = max(s.maxInFlight, s.inFlight)
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.inFlight--
			s.mu.Unlock()
		}()

		s.mu.Lock()
		noRead := s.noRead
		s.mu.Unlock()
		if noRead != 0 && r.Method == http.MethodGet {
			if noRead == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", "PUT, POST")
			}
			s.errorBody(w, noRead, "no_read_route", "no such route")
			return
		}
		f := s.takeFault(r)
		if f.Hang > 0 {
			select {
			case <-time.After(f.Hang):
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case f.Reset:
			resetConnection(w)
		case f.Status != 0:
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			msg := f.Message
			if msg == "" {
				msg = "simulated fault"
			}
			code := f.Code
			if code == "" {
				code = "simulated_fault"
			}
			s.errorBody(w, f.Status, code, msg)
		case f.Malformed:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id": 12345, "status": "act`)
		case f.WrongContentType:
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html><body>Service temporarily moved</body></html>")
		case f.Huge > 0:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(f.Huge))
			pad := f.Huge - len(`{"pad":""}`)
			_, _ = io.WriteString(w, `{"pad":"`+strings.Repeat("x", max(pad, 0))+`"}`)
		default:
			vendor.ServeHTTP(w, r)
		}
	})
}

// resetConnection closes the client's connection with a TCP RST and no answer.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// serveFault is the control endpoint of `make run`: POST a Fault as JSON to set it, DELETE to
// clear it.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost, http.MethodPut:
		// The same fields as Fault, with "hang" as a duration text such as "30s".
		var in struct {
			Fault
			Hang string `json:"hang,omitempty"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f := in.Fault
		if in.Hang != "" {
			d, err := time.ParseDuration(in.Hang)
			if err != nil {
				http.Error(w, "hang: "+err.Error(), http.StatusBadRequest)
				return
			}
			f.Hang = d
		}
		s.SetFault(f)
	case http.MethodDelete:
		s.Clear()
	default:
		w.Header().Set("Allow", "POST, PUT, DELETE")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveRequests lists the requests received, without their headers (they hold secrets).
func (s *Server) serveRequests(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		Method string `json:"method"`
		Path   string `json:"path"`
		Body   string `json:"body,omitempty"`
	}
	var out []entry
	for _, req := range s.Requests() {
		out = append(out, entry{req.Method, req.Path, string(req.Body)})
	}
	WriteJSON(w, http.StatusOK, out)
}

// WriteJSON writes v as a JSON answer with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Bearer returns the token of the request's "Authorization: Bearer <token>" header, or "".
func Bearer(r *http.Request) string {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		return h[len(prefix):]
	}
	return ""
}

// IsJSON reports whether the request declares a JSON body.
func IsJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
}
