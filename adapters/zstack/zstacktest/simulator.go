package zstacktest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/credgate/credgate/module/provider/providertest"
)

// Simulator simulates the ZStack Cloud credentials API (/api/v1, "Identity & Access /
// Credentials"):
//
//	GET /api/v1/credentials/{uuid}
//	PUT /api/v1/credentials/{uuid}   any of name, description, value, expiresAt, operator
//
// Both answer the credential object of the page, which never holds the stored value.
// Authentication is "Authorization: Bearer <token>". Errors are
// {"error": {"code": "SYS.1001", "description": "...", "details": "..."}}.
type Simulator struct {
	*providertest.Server

	// ObjectEnums renders type and healthStatus as {}, exactly as the page's response example
	// does. Set it while no request is in flight.
	ObjectEnums bool

	mu          sync.Mutex
	staleHealth bool
	tokens      map[string]bool
	creds       map[string]*Credential
	valueWrites int
}

// Credential is a credential in the ZStack simulator. Value is the stored secret: the
// API never returns it, and a test reads it here to check that it was never changed.
type Credential struct {
	UUID         string
	Name         string
	Description  string
	Type         string // CREDENTIAL_TYPE_PASSWORD, CREDENTIAL_TYPE_API_KEY, ...
	HealthStatus string // CREDENTIAL_HEALTH_STATUS_HEALTHY, CREDENTIAL_HEALTH_STATUS_EXPIRED, ...
	ExpiresAt    string // RFC 3339; empty: never expires
	CreatedBy    string
	CreateDate   string
	LastOpDate   string
	Value        string
	// LastOperator is the operator of the last PUT that named one.
	LastOperator string
}

// The ZStack simulator's demo data (SeedDemo).
const (
	DemoToken = "local-zstack-token"
	DemoID    = "cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890"
	DemoValue = "s3cr3t-db-password"
)

const (
	zstackPrefix   = "/api/v1/credentials/"
	zstackHealthy  = "CREDENTIAL_HEALTH_STATUS_HEALTHY"
	zstackExpired  = "CREDENTIAL_HEALTH_STATUS_EXPIRED"
	zstackDateForm = time.RFC3339
)

// zstackFields are the fields PUT accepts.
var zstackFields = map[string]bool{"name": true, "description": true, "value": true, "expiresAt": true, "operator": true}

// New starts a ZStack simulator on a free loopback port (or on addr).
func New(addr string) *Simulator {
	z := &Simulator{tokens: map[string]bool{}, creds: map[string]*Credential{}}
	mux := http.NewServeMux()
	mux.HandleFunc(zstackPrefix, z.serveCredential)
	z.Server = providertest.NewServer(mux, zstackError, addr)
	return z
}

// SeedDemo adds the token local-zstack-token and the page's example credential, expiring one
// year from now.
func (z *Simulator) SeedDemo() {
	z.AddToken(DemoToken)
	now := time.Now().UTC()
	z.AddCredential(Credential{
		UUID:        DemoID,
		Name:        "prod-db-password",
		Description: "Primary database password for production environment",
		Type:        "CREDENTIAL_TYPE_PASSWORD",
		ExpiresAt:   now.AddDate(1, 0, 0).Format(zstackDateForm),
		CreatedBy:   "admin@example.com",
		Value:       DemoValue,
	})
}

// SetStaleHealth makes the simulator answer a credential's healthStatus as it was stored,
// even once its expiresAt has passed (by default the health follows the clock): the page
// does not say when ZStack updates healthStatus, so a health word that lags the expiry is
// the other reading.
func (z *Simulator) SetStaleHealth(on bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.staleHealth = on
}

// AddToken accepts token as a bearer token.
func (z *Simulator) AddToken(token string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.tokens[token] = true
}

// AddCredential adds (or replaces) a credential. An empty HealthStatus is derived from the
// expiry, an empty CreateDate or LastOpDate is now.
func (z *Simulator) AddCredential(c Credential) {
	now := time.Now().UTC().Format(zstackDateForm)
	if c.CreateDate == "" {
		c.CreateDate = now
	}
	if c.LastOpDate == "" {
		c.LastOpDate = now
	}
	if c.HealthStatus == "" {
		c.HealthStatus = zstackHealth(c.ExpiresAt)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.creds[c.UUID] = &c
}

// Credential returns a copy of a credential's state, with its value, and whether it exists.
func (z *Simulator) Credential(uuid string) (Credential, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	c, ok := z.creds[uuid]
	if !ok {
		return Credential{}, false
	}
	return *c, true
}

// LastOperator returns the operator of the last PUT to the credential that named one.
func (z *Simulator) LastOperator(uuid string) string {
	c, _ := z.Credential(uuid)
	return c.LastOperator
}

// ValueWrites returns how many PUTs carried a value field (a rotation of the stored secret).
func (z *Simulator) ValueWrites() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.valueWrites
}

func zstackError(w http.ResponseWriter, status int, code, message string) {
	providertest.WriteJSON(w, status, map[string]any{"error": map[string]string{"code": code, "description": message, "details": ""}})
}

// zstackHealth is the health status of a credential that expires at expiresAt (RFC 3339, or
// empty for never).
func zstackHealth(expiresAt string) string {
	if t, err := time.Parse(time.RFC3339, expiresAt); err == nil && !t.After(time.Now()) {
		return zstackExpired
	}
	return zstackHealthy
}

// zstackView is the credential object of the page: no value.
type zstackView struct {
	UUID         string `json:"uuid"`
	Name         string `json:"name"`
	Description  string `json:"description"`
	Type         any    `json:"type"`
	HealthStatus any    `json:"healthStatus"`
	ExpiresAt    string `json:"expiresAt,omitempty"`
	CreatedBy    string `json:"createdBy"`
	CreateDate   string `json:"createDate"`
	LastOpDate   string `json:"lastOpDate"`
}

// view renders c; the health status follows the clock, so an expiry that passed shows
// (unless SetStaleHealth). z.mu is held.
func (z *Simulator) view(c *Credential) zstackView {
	health := c.HealthStatus
	if zstackHealth(c.ExpiresAt) == zstackExpired && !z.staleHealth {
		health = zstackExpired
	}
	v := zstackView{
		UUID: c.UUID, Name: c.Name, Description: c.Description, Type: c.Type, HealthStatus: health,
		ExpiresAt: c.ExpiresAt, CreatedBy: c.CreatedBy, CreateDate: c.CreateDate, LastOpDate: c.LastOpDate,
	}
	if z.ObjectEnums {
		v.Type, v.HealthStatus = struct{}{}, struct{}{}
	}
	return v
}

func (z *Simulator) serveCredential(w http.ResponseWriter, r *http.Request) {
	uuid := strings.TrimPrefix(r.URL.Path, zstackPrefix)
	if uuid == "" || strings.Contains(uuid, "/") {
		zstackError(w, http.StatusNotFound, "SYS.1404", "no such resource")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPut {
		w.Header().Set("Allow", "GET, PUT")
		zstackError(w, http.StatusMethodNotAllowed, "SYS.1405", "method not allowed")
		return
	}

	z.mu.Lock()
	defer z.mu.Unlock()
	if !z.tokens[providertest.Bearer(r)] {
		zstackError(w, http.StatusUnauthorized, "ID.1001", "missing or invalid bearer token")
		return
	}
	c, ok := z.creds[uuid]
	if !ok {
		zstackError(w, http.StatusNotFound, "SYS.1404", "credential not found")
		return
	}
	if r.Method == http.MethodGet {
		providertest.WriteJSON(w, http.StatusOK, z.view(c))
		return
	}

	if !providertest.IsJSON(r) {
		zstackError(w, http.StatusUnsupportedMediaType, "SYS.1415", "Content-Type must be application/json")
		return
	}
	var body map[string]json.RawMessage
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(r.Body)
	if b := bytes.TrimSpace(buf.Bytes()); len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &body) != nil {
		zstackError(w, http.StatusBadRequest, "SYS.1002", "the body must be a JSON object")
		return
	}
	fields := make(map[string]string, len(body))
	for k, raw := range body {
		var s string
		if !zstackFields[k] {
			zstackError(w, http.StatusBadRequest, "SYS.1002", "unknown field "+k)
			return
		}
		if json.Unmarshal(raw, &s) != nil {
			zstackError(w, http.StatusBadRequest, "SYS.1002", k+" must be a string")
			return
		}
		fields[k] = s
	}
	if v, ok := fields["expiresAt"]; ok {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			zstackError(w, http.StatusBadRequest, "SYS.1003", "expiresAt must be an RFC 3339 time")
			return
		}
	}

	if v, ok := fields["name"]; ok {
		c.Name = v
	}
	if v, ok := fields["description"]; ok {
		c.Description = v
	}
	if v, ok := fields["value"]; ok {
		c.Value = v
		z.valueWrites++
	}
	if v, ok := fields["expiresAt"]; ok {
		c.ExpiresAt = v
	}
	if v, ok := fields["operator"]; ok {
		c.LastOperator = v
	}
	c.LastOpDate = time.Now().UTC().Format(zstackDateForm)
	c.HealthStatus = zstackHealth(c.ExpiresAt)
	providertest.WriteJSON(w, http.StatusOK, z.view(c))
}
