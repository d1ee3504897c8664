package palisadetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credgate/credgate/module/provider/providertest"
)

// Simulator simulates the Palisade API 2.0 (Ripple Wallet-as-a-Service) endpoints for API
// credentials:
//
//	POST /v2/credentials/oauth/token    {"clientId", "clientSecret"} -> {"accessToken", "scope", "expiresIn", "tokenType"}
//	GET  /v2/credentials/{id}           -> the credential
//	PUT  /v2/credentials/{id}/active    {"active": true|false} -> the credential
//	DELETE /v2/credentials/{id}         -> the credential, DELETED (the gateway must never call it)
//
// Organizations own OAuth clients, static access tokens and credentials. API calls take
// "Authorization: Bearer <token>": a static token, or an access token the token endpoint
// issued (opaque, random, with a configurable lifetime). A credential of another organization
// answers 404, like an unknown one. The credential is answered whole, including its
// clientSecret, as the real API does. Errors are grpc-gateway RpcStatus bodies:
// {"code": <gRPC code>, "message": "...", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo"}]}.
type Simulator struct {
	*providertest.Server

	mu            sync.Mutex
	orgs          map[string]bool
	clients       map[string]palisadeClient // OAuth clientId -> client
	static        map[string]string         // static access token -> organization
	issued        map[string]palisadeIssued // issued access token -> grant
	creds         map[string]*Credential
	lifetime      time.Duration
	expiresAsText bool
	tokenCalls    int
	everIssued    []string
	foreign403    bool
}

// SetForeignForbidden makes a credential of another organization answer 403
// PERMISSION_DENIED instead of 404 (the default): the page lists both answers and does not say
// which one a credential of another organization gets, so the simulator offers both readings.
// An unknown ID answers 404 either way.
func (p *Simulator) SetForeignForbidden(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.foreign403 = on
}

// Credential is an API credential in the Palisade simulator, in the vendor's JSON.
type Credential struct {
	ID                  string   `json:"id"`
	Name                string   `json:"name"`
	Description         string   `json:"description,omitempty"`
	Category            string   `json:"category"`
	Permissions         []string `json:"permissions"`
	CreatedBy           string   `json:"createdBy"`
	OrganizationID      string   `json:"organizationId"`
	CreatedAt           string   `json:"createdAt"`
	UpdatedAt           string   `json:"updatedAt"`
	ClientID            string   `json:"clientId"`
	ClientSecret        string   `json:"clientSecret,omitempty"`
	Active              bool     `json:"active"`
	Status              string   `json:"status"`
	ProposedPermissions []string `json:"proposedPermissions"`
	AllowedIPs          []string `json:"allowedIps,omitempty"`
	// RequireApproval makes every change of active wait for Approve.
	RequireApproval bool `json:"-"`
}

type palisadeClient struct {
	secret string
	org    string
}

type palisadeIssued struct {
	org     string
	expires time.Time
}

// gRPC status codes the simulator answers with.
const (
	palisadeCodeUnknown            = 2
	palisadeCodeInvalidArgument    = 3
	palisadeCodeDeadlineExceeded   = 4
	palisadeCodeNotFound           = 5
	palisadeCodePermissionDenied   = 7
	palisadeCodeResourceExhausted  = 8
	palisadeCodeFailedPrecondition = 9
	palisadeCodeAborted            = 10
	palisadeCodeUnimplemented      = 12
	palisadeCodeInternal           = 13
	palisadeCodeUnavailable        = 14
	palisadeCodeUnauthenticated    = 16
)

// New starts a Palisade simulator on a free loopback port (or on addr).
func New(addr string) *Simulator {
	p := &Simulator{
		orgs:     map[string]bool{},
		clients:  map[string]palisadeClient{},
		static:   map[string]string{},
		issued:   map[string]palisadeIssued{},
		creds:    map[string]*Credential{},
		lifetime: time.Hour,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/credentials/", p.serve)
	p.Server = providertest.NewServer(mux, palisadeFaultError, addr)
	return p
}

// SeedDemo loads the demo organization: org-demo, its OAuth client local-client-id /
// local-client-secret, its static token local-palisade-token, and two credentials:
// Treasury (ce4918bf-a199-4ce2-85a3-d0d296855384) and Settlement
// (5b0f2a8e-3c41-4d7a-9e65-0c2f4a9b7d13, whose changes need approval), both enabled.
func (p *Simulator) SeedDemo() {
	p.AddOrg("org-demo")
	p.AddClient("org-demo", "local-client-id", "local-client-secret")
	p.AddToken("org-demo", "local-palisade-token")
	p.AddCredential("org-demo", "ce4918bf-a199-4ce2-85a3-d0d296855384", "Treasury", "WALLETS", "ENABLED", true, false)
	p.Update("ce4918bf-a199-4ce2-85a3-d0d296855384", func(c *Credential) {
		c.Description = "Credentials that belong to trading desk #1"
		c.ClientID = "7c9e6679-7425-40de-944b-e07fc1f90ae7" // fixed, so the README's answers hold
	})
	p.AddCredential("org-demo", "5b0f2a8e-3c41-4d7a-9e65-0c2f4a9b7d13", "Settlement", "TRANSACTIONS", "ENABLED", true, true)
	p.Update("5b0f2a8e-3c41-4d7a-9e65-0c2f4a9b7d13", func(c *Credential) {
		c.ClientID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
	})
}

// AddOrg adds an organization.
func (p *Simulator) AddOrg(org string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.orgs[org] = true
}

// AddClient adds an OAuth client of org, which the token endpoint takes.
func (p *Simulator) AddClient(org, clientID, clientSecret string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.orgs[org] = true
	p.clients[clientID] = palisadeClient{secret: clientSecret, org: org}
}

// AddToken adds a static access token of org, which never expires.
func (p *Simulator) AddToken(org, token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.orgs[org] = true
	p.static[token] = org
}

// AddCredential adds an API credential of org, with a random clientId and a non-empty
// clientSecret. requireApproval makes every change of its active flag wait for Approve.
func (p *Simulator) AddCredential(org, id, name, category, status string, active, requireApproval bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.orgs[org] = true
	perm := "vault:read:org:id=" + id + ":*"
	p.creds[id] = &Credential{
		ID: id, Name: name, Category: category,
		Permissions:         []string{perm},
		ProposedPermissions: []string{perm},
		CreatedBy:           "8d1c2b7e-4f3a-4e7b-9c1d-2a6b5e4f3c21",
		OrganizationID:      org,
		CreatedAt:           "2022-03-29T10:22:22.420Z",
		UpdatedAt:           "2022-03-29T10:22:22.420Z",
		ClientID:            palisadeUUID(),
		ClientSecret:        "sec-" + palisadeRandom(16),
		Active:              active,
		Status:              status,
		AllowedIPs:          []string{"88.9.2.1", "88.10.2.1/0"},
		RequireApproval:     requireApproval,
	}
}

// Update changes a credential's state in place (to set a description, a status such as
// DELETED, an approval requirement...). It reports whether the credential exists.
func (p *Simulator) Update(id string, f func(*Credential)) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.creds[id]
	if ok {
		f(c)
	}
	return ok
}

// Credential returns a copy of a credential's state, and whether it exists.
func (p *Simulator) Credential(id string) (Credential, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.creds[id]
	if !ok {
		return Credential{}, false
	}
	out := *c
	out.Permissions = append([]string(nil), c.Permissions...)
	out.ProposedPermissions = append([]string(nil), c.ProposedPermissions...)
	out.AllowedIPs = append([]string(nil), c.AllowedIPs...)
	return out, true
}

// Approve completes a change awaiting approval: ENABLE_APPROVAL_PENDING becomes active and
// ENABLED, DISABLE_APPROVAL_PENDING inactive and DISABLED. It reports whether a change was
// pending.
func (p *Simulator) Approve(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.creds[id]
	if !ok {
		return false
	}
	switch c.Status {
	case "ENABLE_APPROVAL_PENDING":
		c.Active, c.Status = true, "ENABLED"
	case "DISABLE_APPROVAL_PENDING":
		c.Active, c.Status = false, "DISABLED"
	default:
		return false
	}
	c.UpdatedAt = palisadeNow()
	return true
}

// SetTokenLifetime sets the life of the access tokens issued from now on (default one hour).
func (p *Simulator) SetTokenLifetime(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lifetime = d
}

// SetExpiresInAsString makes the token endpoint send expiresIn as a numeric string ("3600"),
// as a protobuf JSON encoding of an int64 does, instead of a number.
func (p *Simulator) SetExpiresInAsString(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expiresAsText = on
}

// ExpireTokens invalidates every access token issued so far (static tokens stay valid), so
// that the next API call with one answers 401.
func (p *Simulator) ExpireTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issued = map[string]palisadeIssued{}
}

// IssuedTokens returns every access token the token endpoint has issued, expired ones too:
// secrets a test checks never leak.
func (p *Simulator) IssuedTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.everIssued...)
}

// TokenCalls returns how many requests the token endpoint received (failed ones included).
func (p *Simulator) TokenCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokenCalls
}

// palisadeError writes an RpcStatus error body.
func palisadeError(w http.ResponseWriter, status, code int, message string) {
	providertest.WriteJSON(w, status, map[string]any{
		"code":    code,
		"message": message,
		"details": []map[string]string{{"@type": "type.googleapis.com/google.rpc.ErrorInfo"}},
	})
}

// palisadeFaultError is the error body of a simulated fault: an RpcStatus whose gRPC code is
// the fault's Code when that is a number (a 400 with FAILED_PRECONDITION is "9"), else the one
// grpc-gateway maps to the HTTP status.
func palisadeFaultError(w http.ResponseWriter, status int, faultCode, message string) {
	if n, err := strconv.Atoi(faultCode); err == nil {
		palisadeError(w, status, n, message)
		return
	}
	code := palisadeCodeUnknown
	switch status {
	case http.StatusBadRequest:
		code = palisadeCodeInvalidArgument
	case http.StatusUnauthorized:
		code = palisadeCodeUnauthenticated
	case http.StatusForbidden:
		code = palisadeCodePermissionDenied
	case http.StatusNotFound:
		code = palisadeCodeNotFound
	case http.StatusConflict:
		code = palisadeCodeAborted
	case http.StatusPreconditionFailed:
		code = palisadeCodeFailedPrecondition
	case http.StatusTooManyRequests:
		code = palisadeCodeResourceExhausted
	case http.StatusNotImplemented:
		code = palisadeCodeUnimplemented
	case http.StatusInternalServerError:
		code = palisadeCodeInternal
	case http.StatusServiceUnavailable:
		code = palisadeCodeUnavailable
	case http.StatusGatewayTimeout:
		code = palisadeCodeDeadlineExceeded
	}
	palisadeError(w, status, code, message)
}

func (p *Simulator) serve(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/v2/credentials/")
	if rest == "oauth/token" {
		p.serveToken(w, r)
		return
	}
	idText, sub, _ := strings.Cut(rest, "/")
	id, err := url.PathUnescape(idText)
	if err != nil || id == "" || (sub != "" && sub != "active") {
		palisadeError(w, http.StatusNotFound, palisadeCodeNotFound, "Not Found")
		return
	}
	switch {
	case sub == "" && r.Method != http.MethodGet && r.Method != http.MethodDelete:
		w.Header().Set("Allow", "GET, DELETE")
		palisadeError(w, http.StatusMethodNotAllowed, palisadeCodeUnimplemented, "Method Not Allowed")
		return
	case sub == "active" && r.Method != http.MethodPut:
		w.Header().Set("Allow", "PUT")
		palisadeError(w, http.StatusMethodNotAllowed, palisadeCodeUnimplemented, "Method Not Allowed")
		return
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	org, ok := p.authenticate(r)
	if !ok {
		palisadeError(w, http.StatusUnauthorized, palisadeCodeUnauthenticated, "unauthenticated")
		return
	}
	c, ok := p.creds[id]
	if ok && c.OrganizationID != org && p.foreign403 {
		palisadeError(w, http.StatusForbidden, palisadeCodePermissionDenied, "permission denied")
		return
	}
	if !ok || c.OrganizationID != org {
		palisadeError(w, http.StatusNotFound, palisadeCodeNotFound, "credential not found")
		return
	}
	switch {
	case r.Method == http.MethodGet:
		providertest.WriteJSON(w, http.StatusOK, c)
	case r.Method == http.MethodDelete:
		if c.Status != "DELETED" {
			c.Status, c.Active, c.UpdatedAt = "DELETED", false, palisadeNow()
		}
		providertest.WriteJSON(w, http.StatusOK, c)
	default:
		p.setActive(w, r, c)
	}
}

// setActive serves PUT /v2/credentials/{id}/active; p.mu is held.
func (p *Simulator) setActive(w http.ResponseWriter, r *http.Request, c *Credential) {
	var body map[string]json.RawMessage
	if !providertest.IsJSON(r) || json.NewDecoder(r.Body).Decode(&body) != nil {
		palisadeError(w, http.StatusBadRequest, palisadeCodeInvalidArgument, "body must be JSON: {\"active\": true|false}")
		return
	}
	var active bool
	switch string(bytes.TrimSpace(body["active"])) {
	case "true":
		active = true
	case "false":
	default:
		palisadeError(w, http.StatusBadRequest, palisadeCodeInvalidArgument, "active: a boolean is required")
		return
	}
	switch c.Status {
	case "DELETED", "DELETION_APPROVAL_COMPLETE":
		palisadeError(w, http.StatusBadRequest, palisadeCodeFailedPrecondition, "credential is deleted")
		return
	case "DELETION_APPROVAL_PENDING":
		palisadeError(w, http.StatusBadRequest, palisadeCodeFailedPrecondition, "credential deletion awaits approval")
		return
	}
	switch {
	case c.RequireApproval && active != c.Active:
		// The change waits for Approve; active stays as it is.
		c.Status = "DISABLE_APPROVAL_PENDING"
		if active {
			c.Status = "ENABLE_APPROVAL_PENDING"
		}
	default:
		// Setting the flag it has needs no approval, and withdraws a change awaiting one.
		c.Active = active
		c.Status = "DISABLED"
		if active {
			c.Status = "ENABLED"
		}
	}
	c.UpdatedAt = palisadeNow()
	providertest.WriteJSON(w, http.StatusOK, c)
}

// authenticate returns the organization of the request's bearer token; p.mu is held.
func (p *Simulator) authenticate(r *http.Request) (string, bool) {
	tok := providertest.Bearer(r)
	if tok == "" {
		return "", false
	}
	if org, ok := p.static[tok]; ok {
		return org, true
	}
	g, ok := p.issued[tok]
	if !ok {
		return "", false
	}
	if !time.Now().Before(g.expires) {
		delete(p.issued, tok)
		return "", false
	}
	return g.org, true
}

// serveToken serves POST /v2/credentials/oauth/token, which takes no authentication.
func (p *Simulator) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		palisadeError(w, http.StatusMethodNotAllowed, palisadeCodeUnimplemented, "Method Not Allowed")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokenCalls++
	var body struct {
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}
	if !providertest.IsJSON(r) || json.NewDecoder(r.Body).Decode(&body) != nil || body.ClientID == "" || body.ClientSecret == "" {
		palisadeError(w, http.StatusBadRequest, palisadeCodeInvalidArgument, "clientId and clientSecret are required")
		return
	}
	cl, ok := p.clients[body.ClientID]
	if !ok || cl.secret != body.ClientSecret {
		palisadeError(w, http.StatusUnauthorized, palisadeCodeUnauthenticated, "invalid client credentials")
		return
	}
	tok := palisadeRandom(32)
	p.issued[tok] = palisadeIssued{org: cl.org, expires: time.Now().Add(p.lifetime)}
	p.everIssued = append(p.everIssued, tok)
	secs := int64(p.lifetime / time.Second)
	var expiresIn any = secs
	if p.expiresAsText {
		expiresIn = strconv.FormatInt(secs, 10)
	}
	providertest.WriteJSON(w, http.StatusOK, map[string]any{
		"accessToken": tok,
		"scope":       "vault:read vault:write credentials:write",
		"expiresIn":   expiresIn,
		"tokenType":   "Bearer",
	})
}

// palisadeNow is the time as Palisade writes it.
func palisadeNow() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// palisadeRandom returns n random bytes in hex.
func palisadeRandom(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// palisadeUUID returns a random version 4 UUID.
func palisadeUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
