package credentialstatus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/credgate/credgate/module/resolve"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(new(adminAPI))
}

// adminPrefix is the path under which the admin API's routes live.
const adminPrefix = "/credential-status/"

// adminAPI is the admin module admin.api.credential_status: it adds to Caddy's admin
// endpoint, in the manner of reverse_proxy's /reverse_proxy/upstreams, a view of every
// provider's circuit breaker, a switch that holds a breaker open or closed, and a way to
// empty the ID cache:
//
//	GET    /credential-status/providers                 every provider: breaker state, counts
//	GET    /credential-status/providers/{name}          one provider
//	PUT    /credential-status/providers/{name}/breaker  {"state": "open" | "closed" | "auto"}
//	DELETE /credential-status/providers/{name}/breaker  back to automatic, as "auto" does
//	DELETE /credential-status/cache                     every cached ID; ?id=X: that ID only
//
// It sees what lives in the pool, that is what the running config (and, during a reload, the
// one it replaces) provisioned; it has no config of its own. Errors are caddy.APIError, which
// the admin endpoint writes as {"error": "..."}.
//
// A forced state is kept outside gobreaker, by provider name (see forceCell): it outlives a
// reload, even one that changes the provider's breaker settings, and lasts until it is
// released or Caddy stops. Held open, every call to the provider fails at once with 503
// provider-unavailable and a Retry-After of the provider's open_for; held closed, every call
// goes through, whatever gobreaker says. gobreaker's own state and counts stay as they were,
// and take over again on release.
type adminAPI struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.credential_status",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision takes the logger of the config that (re)started the admin endpoint.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	// Passing the module is how Caddy's own admin modules get a logger of their name (the
	// admin endpoint provisions its routers with the config's root context, which names no
	// module; see caddypki's adminAPI).
	a.logger = ctx.Logger(a)
	return nil
}

// Routes returns the admin API's one route: every path under /credential-status/, which
// serve dispatches by itself so that an unknown path is a JSON 404 like every other error.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func (a *adminAPI) log() *zap.Logger {
	if a.logger == nil {
		return caddy.Log().Named("admin.api.credential_status")
	}
	return a.logger
}

// serve dispatches a request under /credential-status/.
func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, adminPrefix), "/")
	switch {
	case len(parts) == 1 && parts[0] == "providers":
		if r.Method != http.MethodGet {
			return methodNotAllowed(w, "GET")
		}
		return writeAdminJSON(w, listProviders())
	case len(parts) == 2 && parts[0] == "providers" && parts[1] != "":
		if r.Method != http.MethodGet {
			return methodNotAllowed(w, "GET")
		}
		st, ok := providerListing(parts[1])
		if !ok {
			return unknownProvider(parts[1])
		}
		return writeAdminJSON(w, st)
	case len(parts) == 3 && parts[0] == "providers" && parts[1] != "" && parts[2] == "breaker":
		return a.serveBreaker(w, r, parts[1])
	case len(parts) == 1 && parts[0] == "cache":
		if r.Method != http.MethodDelete {
			return methodNotAllowed(w, "DELETE")
		}
		return serveCachePurge(w, r)
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such credential_status admin resource: %s", r.URL.Path)}
}

// maxBreakerBody bounds the body of PUT .../breaker, which is one short JSON object.
const maxBreakerBody = 4 << 10

// serveBreaker forces a provider's breaker open or closed (PUT), or releases it (PUT "auto",
// or DELETE), and answers the provider's listing after the change.
func (a *adminAPI) serveBreaker(w http.ResponseWriter, r *http.Request, name string) error {
	if r.Method != http.MethodPut && r.Method != http.MethodDelete {
		return methodNotAllowed(w, "PUT, DELETE")
	}
	if _, ok := providerListing(name); !ok {
		return unknownProvider(name)
	}
	word := "auto"
	if r.Method == http.MethodPut {
		var err error
		if word, err = decodeBreakerState(r); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
	}
	var prev *forcedState
	since := time.Now()
	if err := shareHold(r.Context(), name, holdState(word), word == "auto", since); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	switch word {
	case "open":
		prev = setForced(name, gobreaker.StateOpen, false)
	case "closed":
		prev = setForced(name, gobreaker.StateClosed, false)
	default:
		prev = setForced(name, 0, true)
	}
	previous := "auto"
	if prev != nil {
		previous = prev.state.String()
	}
	msg := "circuit breaker forced by an operator"
	if word == "auto" {
		msg = "circuit breaker released by an operator"
	}
	a.log().Warn(msg, zap.String("provider", name), zap.String("state", word), zap.String("previous", previous))
	st, ok := providerListing(name)
	if !ok { // its config went away meanwhile; the hold stays for the next one
		return unknownProvider(name)
	}
	return writeAdminJSON(w, st)
}

// decodeBreakerState reads the body of PUT .../breaker: exactly {"state": "open" | "closed" |
// "auto"}, nothing after it.
func decodeBreakerState(r *http.Request) (string, error) {
	var body struct {
		State *string `json:"state"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBreakerBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return "", fmt.Errorf(`body: want {"state": "open" | "closed" | "auto"}: %v`, err)
	}
	if dec.InputOffset() > maxBreakerBody {
		return "", fmt.Errorf("body: larger than %d bytes", maxBreakerBody)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("body: one JSON object only")
	}
	if body.State == nil {
		return "", fmt.Errorf(`body: "state" is missing`)
	}
	switch *body.State {
	case "open", "closed", "auto":
		return *body.State, nil
	}
	return "", fmt.Errorf(`state must be "open", "closed" or "auto"`)
}

// serveCachePurge empties every live ID cache, or with ?id= removes that one ID, and answers
// {"removed": n}: how many entries went, negative ones ("no provider owns it") included. The
// next request for a removed ID resolves its owner again.
func serveCachePurge(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "id" { // a misspelt ?id= must not empty the whole cache
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("unknown query parameter %q; only id is known", k)}
		}
	}
	one := q.Has("id")
	id := q.Get("id")
	if one && (len(q["id"]) != 1 || id == "" || len(id) > maxIDLen) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("id: give one credential ID of 1 to %d bytes", maxIDLen)}
	}
	var caches []*resolve.Cache
	pool.Range(func(_, v any) bool {
		if c, ok := v.(*resolve.Cache); ok {
			caches = append(caches, c)
		}
		return true
	})
	removed := 0
	for _, c := range caches {
		if one {
			if c.Remove(id) {
				removed++
			}
			continue
		}
		removed += c.Purge()
	}
	return writeAdminJSON(w, struct {
		Removed int `json:"removed"`
	}{removed})
}

// maxIDLen is the longest credential ID the API accepts.
const maxIDLen = 256

// providerStatus is one provider in the listing.
type providerStatus struct {
	Name    string `json:"name"`
	Adapter string `json:"adapter"`
	// State is the state the breaker acts on: closed, half-open or open.
	State string `json:"state"`
	// Forced says an operator holds the breaker in State.
	Forced bool `json:"forced"`
	// ForcedAt is when the operator did, with Forced.
	ForcedAt string `json:"forced_at,omitempty"`
	// AutomaticState is, with Forced, gobreaker's own state underneath: the one the breaker
	// goes back to on release.
	AutomaticState string        `json:"automatic_state,omitempty"`
	Counts         breakerCounts `json:"counts"`
	// LastFailure is the time of the provider's last failure, if it ever failed.
	LastFailure string `json:"last_failure,omitempty"`
	// OpenedAt is, while State is open, when it opened: the trip, or the operator's hold.
	OpenedAt string `json:"opened_at,omitempty"`
}

// breakerCounts are a breaker's counts since it was made. Requests counts the calls let
// through, Successes and Failures their answers as the breaker judges them; a call in flight,
// and an answer that counts neither way (the client's cancellation, a rate limit, the
// provider rejecting the gateway's own credentials), is in Requests only. Rejected counts the
// calls failed fast. ConsecutiveFailures counts the failures since the last success; unlike
// gobreaker's own count, which starts again at every state change, it still says how often
// the provider failed once the breaker has opened.
type breakerCounts struct {
	Requests            uint64 `json:"requests"`
	Successes           uint64 `json:"successes"`
	Failures            uint64 `json:"failures"`
	Rejected            uint64 `json:"rejected"`
	ConsecutiveFailures uint64 `json:"consecutive_failures"`
}

// liveBreakers returns the breakers in the pool, by provider name.
func liveBreakers() map[string][]*breaker {
	byName := map[string][]*breaker{}
	pool.Range(func(_, v any) bool {
		if b, ok := v.(*breaker); ok {
			byName[b.name] = append(byName[b.name], b)
		}
		return true
	})
	return byName
}

// listProviders returns every live provider, sorted by name; never nil.
func listProviders() []providerStatus {
	byName := liveBreakers()
	out := make([]providerStatus, 0, len(byName))
	for _, bs := range byName {
		out = append(out, merge(bs))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// providerListing returns the listing of the provider called name, if it is live.
func providerListing(name string) (providerStatus, bool) {
	var bs []*breaker
	pool.Range(func(_, v any) bool {
		if b, ok := v.(*breaker); ok && b.name == name {
			bs = append(bs, b)
		}
		return true
	})
	if len(bs) == 0 {
		return providerStatus{}, false
	}
	return merge(bs), true
}

// merge makes one listing of the live breakers of one provider name. There are several when
// a reload changed the provider's settings (the old config's breaker lives until the old
// config is cleaned up) or when two handlers configure a provider of the same name. They are
// reported as one, as the breaker_state metric does: the worst state, the sums of the counts,
// the most consecutive failures, the latest times, and the newest breaker's adapter.
func merge(bs []*breaker) providerStatus {
	sort.Slice(bs, func(i, j int) bool { return bs[i].seq > bs[j].seq })
	st := providerStatus{Name: bs[0].name, Adapter: bs[0].adapter}
	var auto gobreaker.State // gobreaker's, the worst of them
	var lastFailure, openedAt int64
	for i, b := range bs {
		s := b.state()
		if i == 0 || breakerGauge(s) > breakerGauge(auto) {
			auto = s
		}
		if s == gobreaker.StateOpen {
			openedAt = max(openedAt, b.openedAt.Load())
		}
		st.Counts.Requests += b.requests.Load()
		st.Counts.Successes += b.successes.Load()
		st.Counts.Failures += b.failures.Load()
		st.Counts.Rejected += b.rejected.Load()
		st.Counts.ConsecutiveFailures = max(st.Counts.ConsecutiveFailures, b.consecutive.Load())
		lastFailure = max(lastFailure, b.lastFailure.Load())
	}
	state := auto
	if f := bs[0].force.load(); f != nil { // one cell for all breakers of the name
		state = f.state
		st.Forced = true
		st.ForcedAt = rfc3339(f.since.UnixNano())
		st.AutomaticState = auto.String()
		openedAt = f.since.UnixNano()
	}
	st.State = state.String()
	if state == gobreaker.StateOpen && openedAt != 0 {
		st.OpenedAt = rfc3339(openedAt)
	}
	if lastFailure != 0 {
		st.LastFailure = rfc3339(lastFailure)
	}
	return st
}

// rfc3339 formats unix nanoseconds as RFC 3339 in UTC, to the millisecond.
func rfc3339(ns int64) string {
	return time.Unix(0, ns).UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return nil
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed; use %s", allow)}
}

func unknownProvider(name string) error {
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no provider %q in the running config", name)}
}

// Interface guards.
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
