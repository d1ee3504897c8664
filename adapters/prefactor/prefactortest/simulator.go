package prefactortest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/credgate/credgate/module/provider/providertest"
)

// Simulator simulates the Prefactor platform API's API-token endpoints:
//
//	GET  /api/v1/api_token/{api_token_id}
//	POST /api/v1/api_token/{api_token_id}/activate   suspended -> active
//	POST /api/v1/api_token/{api_token_id}/suspend    active -> suspended
//	POST /api/v1/api_token/{api_token_id}/revoke     active or suspended -> revoked
//
// Every answer is {"details": {...token...}, "status": "success"}; errors are
// {"status": "error", "code": "...", "message": "..."} (validation_errors adds "errors").
// Authentication is "Authorization: Bearer <token>"; a bearer token belongs to an account and
// sees that account's API tokens only. A transition's body is {} or
// {"idempotency_key": "<at most 64 characters>"}; a replayed key (same API token, same
// action) answers the first answer again and applies nothing.
//
// Set the exported switches before the requests that should see them.
type Simulator struct {
	*providertest.Server

	// RefusalStatus is the HTTP status of a refused transition (code invalid_action). Prefactor
	// documents no status for it: 409 (the default, when 0) is the likely one, 400 the other.
	RefusalStatus int
	// RefuseRepeat refuses a transition to the status the token already has (the default,
	// set by NewPrefactor); false accepts it as a success that changes nothing.
	RefuseRepeat bool
	// ForbidForeign answers a request for another account's token 403 not_permitted instead
	// of 404 not_found.
	ForbidForeign bool

	mu      sync.Mutex
	bearers map[string]string          // bearer token -> account ID
	tokens  map[string]*APIToken       // API token ID -> API token
	replays map[string]prefactorAnswer // API token ID|action|idempotency key -> first answer
	keys    []string                   // idempotency keys received, in order
}

// APIToken is an API token in the Prefactor simulator (ApiToken_Details without
// available_actions, which is computed from Status).
type APIToken struct {
	ID                   string  `json:"id"`
	AccountID            string  `json:"account_id"`
	EnvironmentID        *string `json:"environment_id"`
	CreatedByAdminUserID *string `json:"created_by_admin_user_id"`
	Status               string  `json:"status"`
	TokenScope           string  `json:"token_scope"`
	Type                 string  `json:"type"`
	ExpiresAt            string  `json:"expires_at"`
	InsertedAt           string  `json:"inserted_at"`
	UpdatedAt            string  `json:"updated_at"`
	LastUsedAt           *string `json:"last_used_at"`
}

// prefactorAnswer is an answer kept for an idempotency key.
type prefactorAnswer struct {
	status int
	body   any
}

// prefactorActions is one transition: the statuses it starts from and the one it leads to.
var prefactorActions = map[string]struct {
	from []string
	to   string
}{
	"activate": {[]string{"suspended"}, "active"},
	"suspend":  {[]string{"active"}, "suspended"},
	"revoke":   {[]string{"active", "suspended"}, "revoked"},
}

// Demo data of SeedDemo.
const (
	DemoBearer  = "local-prefactor-token"
	DemoAccount = "013xrzp12g3nqk8ngskn1wtxgka5b0nf"
	DemoActive  = "013xrzp12g3nqk8n7f8f9jbg8d18q7tm"
	DemoRevoked = "013xrzp12g3nqk8nr5vkdt0k3n0000a1"

	prefactorAdminUser   = "013xrzp12g3nqk8nh0qrc2b1jfanmvb9"
	prefactorEnvironment = "013xrzp12g3nqk8nzxvq7jm2arsfg5h1"
)

// New starts a Prefactor simulator on a free loopback port (or on addr).
func New(addr string) *Simulator {
	p := &Simulator{
		RefuseRepeat: true,
		bearers:      map[string]string{},
		tokens:       map[string]*APIToken{},
		replays:      map[string]prefactorAnswer{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/api_token/", p.serveToken)
	p.Server = providertest.NewServer(mux, prefactorError, addr)
	return p
}

// SeedDemo adds the demo account: bearer token local-prefactor-token, an active API token
// and a revoked one.
func (p *Simulator) SeedDemo() {
	p.AddToken(DemoBearer, DemoAccount)
	p.AddAPIToken(DemoActive, DemoAccount, prefactorEnvironment, "active")
	p.AddAPIToken(DemoRevoked, DemoAccount, "", "revoked")
}

// AddToken makes token a bearer token of the account accountID.
func (p *Simulator) AddToken(token, accountID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bearers[token] = accountID
}

// AddAPIToken adds an API token to an account, in an environment (none when empty), with a
// status: active, suspended, revoked, or any other word to see how a client takes it.
func (p *Simulator) AddAPIToken(id, accountID, environmentID, status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var env *string
	if environmentID != "" {
		env = &environmentID
	}
	admin := prefactorAdminUser
	p.tokens[id] = &APIToken{
		ID: id, AccountID: accountID, EnvironmentID: env, CreatedByAdminUserID: &admin,
		Status: status, TokenScope: "account", Type: "api_token",
		ExpiresAt: "2027-01-01T00:00:00Z", InsertedAt: "2024-01-01T00:00:00Z", UpdatedAt: "2024-01-01T00:00:00Z",
	}
}

// SetExpiresAt sets an API token's expires_at (RFC 3339), and reports whether it exists. The
// simulator keeps the status word as it is when the expiry passes, as the page does not say
// that it changes: the gateway must read the expiry itself.
func (p *Simulator) SetExpiresAt(id, expiresAt string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.tokens[id]
	if ok {
		t.ExpiresAt = expiresAt
	}
	return ok
}

// APIToken returns a copy of an API token's state, and whether it exists.
func (p *Simulator) APIToken(id string) (APIToken, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.tokens[id]
	if !ok {
		return APIToken{}, false
	}
	return *t, true
}

// IdempotencyKeys returns the idempotency keys received in transitions, oldest first,
// replays included.
func (p *Simulator) IdempotencyKeys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.keys...)
}

func prefactorError(w http.ResponseWriter, status int, code, message string) {
	providertest.WriteJSON(w, status, map[string]any{"status": "error", "code": code, "message": message})
}

// prefactorDetails is the success answer for a token: a snapshot, so that an answer kept for
// an idempotency key stays the first answer.
func prefactorDetails(t *APIToken) map[string]any {
	snapshot := *t
	return map[string]any{"details": prefactorView(&snapshot), "status": "success"}
}

// prefactorView is ApiToken_Details: the token with its available actions.
func prefactorView(t *APIToken) any {
	return struct {
		*APIToken
		AvailableActions map[string]bool `json:"available_actions"`
	}{t, map[string]bool{
		"activate": t.Status == "suspended",
		"suspend":  t.Status == "active",
		"revoke":   t.Status != "revoked",
		"delete":   true,
	}}
}

func (p *Simulator) serveToken(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/api/v1/api_token/")
	rawID, action, _ := strings.Cut(rest, "/")
	id, err := url.PathUnescape(rawID)
	_, known := prefactorActions[action]
	switch {
	case err != nil || id == "" || (action != "" && !known):
		prefactorError(w, http.StatusNotFound, "not_found", "not found")
		return
	case action == "" && r.Method != http.MethodGet:
		w.Header().Set("Allow", "GET")
		prefactorError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
		return
	case action != "" && r.Method != http.MethodPost:
		w.Header().Set("Allow", "POST")
		prefactorError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
		return
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	account, ok := p.bearers[providertest.Bearer(r)]
	if !ok {
		prefactorError(w, http.StatusUnauthorized, "not_authenticated", "missing or invalid API token")
		return
	}
	t, ok := p.tokens[id]
	if !ok {
		prefactorError(w, http.StatusNotFound, "not_found", "API token not found")
		return
	}
	if t.AccountID != account {
		if p.ForbidForeign {
			prefactorError(w, http.StatusForbidden, "not_permitted", "not permitted")
		} else {
			prefactorError(w, http.StatusNotFound, "not_found", "API token not found")
		}
		return
	}
	if action == "" {
		providertest.WriteJSON(w, http.StatusOK, prefactorDetails(t))
		return
	}

	key, ok := prefactorBody(w, r)
	if !ok {
		return
	}
	var replayKey string
	if key != "" {
		p.keys = append(p.keys, key)
		replayKey = id + "|" + action + "|" + key
		if a, ok := p.replays[replayKey]; ok {
			providertest.WriteJSON(w, a.status, a.body)
			return
		}
	}
	status, body := p.transition(t, action)
	if replayKey != "" {
		p.replays[replayKey] = prefactorAnswer{status, body}
	}
	providertest.WriteJSON(w, status, body)
}

// prefactorBody reads a transition's body: empty, null, {} or {"idempotency_key": ...} (the
// SDK's object), or the page's literal form "IdempotencyKeyOrNull: string | null": a JSON
// string (the key itself) or null. It answers the error itself when the body is not
// acceptable.
func prefactorBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(r.Body)
	raw := bytes.TrimSpace(buf.Bytes())
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var body map[string]json.RawMessage
	v, ok := json.RawMessage(raw), raw[0] == '"' // the page's literal string
	if !ok {
		if err := json.Unmarshal(raw, &body); err != nil {
			prefactorError(w, http.StatusBadRequest, "bad_request", "the request body is not valid JSON")
			return "", false
		}
		v, ok = body["idempotency_key"]
	}
	if !ok || string(v) == "null" {
		return "", true
	}
	var key string
	switch err := json.Unmarshal(v, &key); {
	case err != nil:
		prefactorValidation(w, "is invalid")
		return "", false
	case len(key) > 64:
		prefactorValidation(w, "should be at most 64 character(s)")
		return "", false
	}
	return key, true
}

func prefactorValidation(w http.ResponseWriter, problem string) {
	providertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"status": "error", "code": "validation_errors", "message": "validation failed",
		"errors": map[string][]string{"idempotency_key": {problem}},
	})
}

// transition applies action to t, or refuses it, and returns the answer. p.mu is held.
func (p *Simulator) transition(t *APIToken, action string) (int, any) {
	a := prefactorActions[action]
	if t.Status == a.to && !p.RefuseRepeat {
		return http.StatusOK, prefactorDetails(t)
	}
	for _, from := range a.from {
		if t.Status == from {
			t.Status = a.to
			t.UpdatedAt = time.Now().UTC().Format(time.RFC3339)
			return http.StatusOK, prefactorDetails(t)
		}
	}
	status := p.RefusalStatus
	if status == 0 {
		status = http.StatusConflict
	}
	return status, map[string]any{
		"status": "error", "code": "invalid_action",
		"message": "cannot " + action + " a token that is " + t.Status,
	}
}
