package digicerttest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/credgate/credgate/module/provider/providertest"
)

// Simulator simulates the DigiCert Partner Subscriptions API's API-key endpoints:
//
//	GET /partner-subscription/api/v1/api-key/{apiKeyId}
//	PUT /partner-subscription/api/v1/api-key/{apiKeyId}/status   {"status": "active"|"inactive"} -> 204
//
// Authentication is the X-PARTNER-APIKEY header. A partner key belongs to an account; it
// manages the keys of its account and of its subaccounts. A key of an unrelated account
// answers 403. Errors are {"errors": [{"code": "...", "message": "..."}]}.
type Simulator struct {
	*providertest.Server

	mu       sync.Mutex
	partners map[string]int  // partner API key -> account ID
	parents  map[int]int     // subaccount -> parent account
	keys     map[int]*APIKey // API key ID -> key
	// denied: partner keys that may not use the API-key endpoints at all (a permission
	// problem): every request with one answers 403, its own account's keys included.
	denied map[string]bool
}

// SetPermissionDenied makes every request with partnerKey answer 403 access_denied, as a
// partner key without the permission to manage API keys would: the other reading of a 403,
// beside "the key belongs to an unrelated account" (the page documents that one only).
func (d *Simulator) SetPermissionDenied(partnerKey string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.denied == nil {
		d.denied = map[string]bool{}
	}
	d.denied[partnerKey] = on
}

// APIKey is an API key in the DigiCert simulator.
type APIKey struct {
	ID           int    `json:"id"`
	Name         string `json:"name"`
	AccountID    int    `json:"account_id"`
	Status       string `json:"status"`
	CreatedAt    string `json:"created_at"`
	LastUsedDate string `json:"last_used_date"`
	APIKeyLast4  string `json:"api_key_last4"`
}

// New starts a DigiCert simulator on a free loopback port (or on addr).
func New(addr string) *Simulator {
	d := &Simulator{partners: map[string]int{}, parents: map[int]int{}, keys: map[int]*APIKey{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/partner-subscription/api/v1/api-key/", d.serveKey)
	d.Server = providertest.NewServer(mux, dcError, addr)
	return d
}

// AddAccount makes an account, a subaccount of parent when parent is not 0, whose partner
// key is partnerKey.
func (d *Simulator) AddAccount(account, parent int, partnerKey string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if partnerKey != "" { // an account without a key of its own is reached through its parent
		d.partners[partnerKey] = account
	}
	if parent != 0 {
		d.parents[account] = parent
	}
}

// AddKey adds an API key to an account.
func (d *Simulator) AddKey(id, account int, name, status string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys[id] = &APIKey{
		ID: id, Name: name, AccountID: account, Status: status,
		CreatedAt: "2024-05-01T09:30:00Z", LastUsedDate: "2026-11-20T17:02:11Z",
		APIKeyLast4: strconv.Itoa(1000 + id%9000),
	}
}

// Key returns a copy of an API key's state, and whether it exists.
func (d *Simulator) Key(id int) (APIKey, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k, ok := d.keys[id]
	if !ok {
		return APIKey{}, false
	}
	return *k, true
}

func dcError(w http.ResponseWriter, status int, code, message string) {
	providertest.WriteJSON(w, status, map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
}

// manages reports whether the account can manage keys of target: its own or a subaccount's.
func (d *Simulator) manages(account, target int) bool {
	for a := target; a != 0; a = d.parents[a] {
		if a == account {
			return true
		}
	}
	return false
}

func (d *Simulator) serveKey(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/partner-subscription/api/v1/api-key/")
	idText, sub, _ := strings.Cut(rest, "/")
	switch {
	case sub == "" && r.Method != http.MethodGet:
		w.Header().Set("Allow", "GET")
		dcError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
		return
	case sub == "status" && r.Method != http.MethodPut:
		w.Header().Set("Allow", "PUT")
		dcError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
		return
	case sub != "" && sub != "status":
		dcError(w, http.StatusNotFound, "not_found", "not found")
		return
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	account, ok := d.partners[r.Header.Get("X-PARTNER-APIKEY")]
	if !ok {
		dcError(w, http.StatusUnauthorized, "access_denied", "invalid or missing X-PARTNER-APIKEY")
		return
	}
	if d.denied[r.Header.Get("X-PARTNER-APIKEY")] {
		dcError(w, http.StatusForbidden, "access_denied", "this partner key may not manage API keys")
		return
	}
	id, err := strconv.Atoi(idText)
	if err != nil {
		dcError(w, http.StatusBadRequest, "invalid_api_key_id", "apiKeyId must be an integer")
		return
	}
	key, ok := d.keys[id]
	if !ok {
		dcError(w, http.StatusNotFound, "not_found", "API key not found")
		return
	}
	if !d.manages(account, key.AccountID) {
		dcError(w, http.StatusForbidden, "access_denied", "the API key belongs to an unrelated account")
		return
	}
	if sub == "" {
		providertest.WriteJSON(w, http.StatusOK, key)
		return
	}
	if !providertest.IsJSON(r) {
		dcError(w, http.StatusUnsupportedMediaType, "invalid_content_type", "Content-Type must be application/json")
		return
	}
	var body struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || (body.Status != "active" && body.Status != "inactive") {
		dcError(w, http.StatusBadRequest, "invalid_status", "status must be active or inactive")
		return
	}
	key.Status = body.Status
	w.WriteHeader(http.StatusNoContent)
}
