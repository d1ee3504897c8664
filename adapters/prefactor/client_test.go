package prefactor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/prefactor/prefactortest"
	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/provider/providertest"
)

const (
	bearerToken = "pf-s3cr3t-bearer-token"
	account     = "013xrzp12g3nqk8ngskn1wtxgka5b0nf"
	otherAcct   = "013xrzp12g3nqk8ngskn1wtxgka5b0zz"
	activeID    = "013xrzp12g3nqk8n7f8f9jbg8d18q7tm"
	suspendedID = "013xrzp12g3nqk8n7f8f9jbg8d18q7t1"
	revokedID   = "013xrzp12g3nqk8nr5vkdt0k3n0000a1"
	oddID       = "013xrzp12g3nqk8nr5vkdt0k3n0000a2" // status "expired": not in the model
	foreignID   = "013xrzp12g3nqk8nr5vkdt0k3n0000a3"
	missingID   = "013xrzp12g3nqk8nr5vkdt0k3n0000a9"
)

func upstream() *provider.Upstream {
	return &provider.Upstream{
		Transport:   &http.Transport{},
		MaxResponse: 1 << 20,
		Retries:     2,
		Backoff:     time.Millisecond,
		MaxBackoff:  4 * time.Millisecond,
	}
}

func newSim(t *testing.T) (*prefactortest.Simulator, *Client) {
	t.Helper()
	s := prefactortest.New("")
	t.Cleanup(s.Close)
	s.AddToken(bearerToken, account)
	s.AddToken("other-account-token", otherAcct)
	s.AddAPIToken(activeID, account, "013xrzp12g3nqk8nzxvq7jm2arsfg5h1", "active")
	s.AddAPIToken(suspendedID, account, "", "suspended")
	s.AddAPIToken(revokedID, account, "", "revoked")
	s.AddAPIToken(oddID, account, "", "expired")
	s.AddAPIToken(foreignID, otherAcct, "", "active")
	return s, NewClient(s.URL, bearerToken, upstream())
}

func kindOf(t *testing.T, err error) *provider.Error {
	t.Helper()
	var pe *provider.Error
	require.ErrorAs(t, err, &pe)
	return pe
}

func TestRead(t *testing.T) {
	s, c := newSim(t)
	cases := []struct {
		id     string
		status provider.Status
		word   string
	}{
		{activeID, provider.StatusActive, "active"},
		{suspendedID, provider.StatusInactive, "suspended"},
		{revokedID, provider.StatusRevoked, "revoked"},
		{oddID, provider.StatusUnknown, "expired"},
	}
	for _, tc := range cases {
		cred, err := c.Read(context.Background(), tc.id)
		require.NoError(t, err, tc.id)
		assert.Equal(t, tc.status, cred.Status, tc.id)
		assert.Equal(t, tc.word, cred.ProviderStatus, tc.id)
	}
	assert.Equal(t, 0, s.Writes())

	req := s.Requests()[0]
	assert.Equal(t, http.MethodGet, req.Method)
	assert.Equal(t, "/api/v1/api_token/"+activeID, req.Path)
	assert.Equal(t, "Bearer "+bearerToken, req.Header.Get("Authorization"))
}

func TestReadMetadata(t *testing.T) {
	_, c := newSim(t)
	cred, err := c.Read(context.Background(), activeID)
	require.NoError(t, err)
	out, err := json.Marshal(cred.Metadata)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"id": "013xrzp12g3nqk8n7f8f9jbg8d18q7tm",
		"account_id": "013xrzp12g3nqk8ngskn1wtxgka5b0nf",
		"environment_id": "013xrzp12g3nqk8nzxvq7jm2arsfg5h1",
		"created_by_admin_user_id": "013xrzp12g3nqk8nh0qrc2b1jfanmvb9",
		"token_scope": "account",
		"type": "api_token",
		"expires_at": "2027-01-01T00:00:00Z",
		"inserted_at": "2024-01-01T00:00:00Z",
		"updated_at": "2024-01-01T00:00:00Z",
		"available_actions": {"activate": false, "suspend": true, "revoke": true, "delete": true}
	}`, string(out), "null environment and last use are left out, false actions kept")
}

// stub answers every request with status and body, and records what it received.
type stub struct {
	srv    *httptest.Server
	status int
	body   string
	got    []*http.Request
	bodies []string
}

func newStub(t *testing.T, status int, body string) *stub {
	t.Helper()
	st := &stub{status: status, body: body}
	st.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		st.got = append(st.got, r)
		st.bodies = append(st.bodies, string(b))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st.status)
		_, _ = io.WriteString(w, st.body)
	}))
	t.Cleanup(st.srv.Close)
	return st
}

func TestReadToleratesLooseTypes(t *testing.T) {
	st := newStub(t, 200, `{"status": "success", "details": {
		"id": 12345, "account_id": "acc", "environment_id": null, "created_by_admin_user_id": null,
		"last_used_at": null, "expires_at": null, "token": "tok-secret-value",
		"available_actions": {"activate": "maybe", "suspend": true},
		"status": "suspended", "future_field": {"x": 1}}}`)
	cred, err := NewClient(st.srv.URL, bearerToken, upstream()).Read(context.Background(), activeID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusInactive, cred.Status)
	out, _ := json.Marshal(cred.Metadata)
	assert.JSONEq(t, `{"account_id": "acc", "available_actions": {"suspend": true}}`, string(out))
	assert.NotContains(t, string(out), "tok-secret-value")

	st.body = `{"status": "success", "details": {"id": "x", "available_actions": "all", "status": "revoked"}}`
	cred, err = NewClient(st.srv.URL, bearerToken, upstream()).Read(context.Background(), activeID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusRevoked, cred.Status)
	assert.Equal(t, "x", cred.Metadata.(*Metadata).ID)

	st.body = `{"status": "success", "details": {"id": "x", "status": {"state": "active"}}}`
	cred, err = NewClient(st.srv.URL, bearerToken, upstream()).Read(context.Background(), activeID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusUnknown, cred.Status, "a status that is not a word is unknown")

	st.body = `{"details": {"status": "active", "last_used_at": "2026-11-20T17:02:11Z"}}`
	cred, err = NewClient(st.srv.URL, bearerToken, upstream()).Read(context.Background(), activeID)
	require.NoError(t, err, "the envelope's status is not required")
	assert.Equal(t, provider.StatusActive, cred.Status)
	assert.Equal(t, "2026-11-20T17:02:11Z", cred.Metadata.(*Metadata).LastUsedAt.String())
}

func TestReadMalformed(t *testing.T) {
	for _, body := range []string{``, `{"status": "succ`, `{"status": "success"}`, `{"details": null}`, `[1]`, `<html>`} {
		st := newStub(t, 200, body)
		_, err := NewClient(st.srv.URL, bearerToken, upstream()).Read(context.Background(), activeID)
		pe := kindOf(t, err)
		assert.Equal(t, provider.KindUpstream, pe.Kind, body)
	}
}

func TestChangeTransitions(t *testing.T) {
	cases := []struct {
		name   string
		id     string
		want   provider.Status
		action string
		word   string
	}{
		{"suspend", activeID, provider.StatusInactive, "suspend", "suspended"},
		{"activate", suspendedID, provider.StatusActive, "activate", "active"},
		{"revoke active", activeID, provider.StatusRevoked, "revoke", "revoked"},
		{"revoke suspended", suspendedID, provider.StatusRevoked, "revoke", "revoked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newSim(t)
			res, err := c.Change(context.Background(), &provider.Change{ID: tc.id, Status: tc.want})
			require.NoError(t, err)
			assert.True(t, res.Changed)
			assert.Equal(t, tc.want, res.Status)
			assert.Equal(t, tc.word, res.ProviderStatus)
			m := res.Metadata.(*Metadata)
			assert.Equal(t, tc.id, m.ID)
			require.NotNil(t, m.AvailableActions)
			require.NotNil(t, m.AvailableActions.Revoke)
			assert.Equal(t, tc.want != provider.StatusRevoked, *m.AvailableActions.Revoke, "actions of the new status")

			tok, _ := s.APIToken(tc.id)
			assert.Equal(t, tc.word, tok.Status)
			assert.Equal(t, 1, s.Writes())
			reqs := s.Requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, http.MethodGet, reqs[0].Method, "reads first")
			assert.Equal(t, http.MethodPost, reqs[1].Method)
			assert.Equal(t, "/api/v1/api_token/"+tc.id+"/"+tc.action, reqs[1].Path)
			assert.Equal(t, "Bearer "+bearerToken, reqs[1].Header.Get("Authorization"))
			assert.Equal(t, "application/json", reqs[1].Header.Get("Content-Type"))
			assert.JSONEq(t, `{}`, string(reqs[1].Body))
		})
	}
}

func TestChangeIsIdempotent(t *testing.T) {
	cases := []struct {
		id   string
		want provider.Status
	}{
		{activeID, provider.StatusActive},
		{suspendedID, provider.StatusInactive},
		{revokedID, provider.StatusRevoked},
	}
	for _, tc := range cases {
		s, c := newSim(t)
		res, err := c.Change(context.Background(), &provider.Change{ID: tc.id, Status: tc.want, IdempotencyKey: "k1"})
		require.NoError(t, err, tc.id)
		assert.False(t, res.Changed, tc.id)
		assert.Equal(t, tc.want, res.Status, tc.id)
		assert.Equal(t, 0, s.Writes(), "no write when the token already has the status")
		assert.Empty(t, s.IdempotencyKeys())
	}
}

func TestChangeRevokedIsConflictWithoutWrite(t *testing.T) {
	s, c := newSim(t)
	for _, want := range []provider.Status{provider.StatusActive, provider.StatusInactive} {
		_, err := c.Change(context.Background(), &provider.Change{ID: revokedID, Status: want})
		pe := kindOf(t, err)
		assert.Equal(t, provider.KindConflict, pe.Kind)
		assert.Equal(t, "revoked tokens cannot change status", pe.Detail)
	}
	assert.Equal(t, 0, s.Writes())
}

func TestChangeUnsupportedStatus(t *testing.T) {
	s, c := newSim(t)
	_, err := c.Change(context.Background(), &provider.Change{ID: activeID, Status: provider.StatusUnknown})
	assert.Equal(t, provider.KindUnsupported, provider.KindOf(err))
	assert.Equal(t, 0, s.Count(""))
}

func TestChangeSendsIdempotencyKey(t *testing.T) {
	s, c := newSim(t)
	_, err := c.Change(context.Background(), &provider.Change{ID: activeID, Status: provider.StatusInactive, IdempotencyKey: "INC-42/1"})
	require.NoError(t, err)
	assert.Equal(t, []string{"INC-42/1"}, s.IdempotencyKeys())
	reqs := s.Requests()
	assert.JSONEq(t, `{"idempotency_key": "INC-42/1"}`, string(reqs[len(reqs)-1].Body))
}

func TestChangeRetriesOnlyWithKey(t *testing.T) {
	// With an idempotency key, a transition that met a 503 is sent again (the key makes the
	// repeat safe), and the vendor applies it once.
	s, c := newSim(t)
	s.SetFault(providertest.Fault{Status: http.StatusServiceUnavailable, Times: 1, Path: "/suspend"})
	res, err := c.Change(context.Background(), &provider.Change{ID: activeID, Status: provider.StatusInactive, IdempotencyKey: "k-retry"})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, 2, s.Writes())
	for _, r := range s.Requests()[1:] {
		assert.JSONEq(t, `{"idempotency_key": "k-retry"}`, string(r.Body), "the repeat carries the same key")
	}
	assert.Equal(t, []string{"k-retry"}, s.IdempotencyKeys(), "the faulted attempt never reached the vendor")
	tok, _ := s.APIToken(activeID)
	assert.Equal(t, "suspended", tok.Status)

	// Without one, the 503 is not repeated: the vendor may have applied it.
	s, c = newSim(t)
	s.SetFault(providertest.Fault{Status: http.StatusServiceUnavailable, Times: 1, Path: "/suspend"})
	_, err = c.Change(context.Background(), &provider.Change{ID: activeID, Status: provider.StatusInactive})
	assert.Equal(t, provider.KindUpstream, provider.KindOf(err))
	assert.Equal(t, 1, s.Writes())
}

func TestChangeRefusedByVendor(t *testing.T) {
	// "expired" is a status the model does not know: the client asks, and the vendor refuses.
	for _, status := range []int{0, http.StatusBadRequest, http.StatusUnprocessableEntity} {
		s, c := newSim(t)
		s.RefusalStatus = status
		_, err := c.Change(context.Background(), &provider.Change{ID: oddID, Status: provider.StatusActive})
		pe := kindOf(t, err)
		assert.Equal(t, provider.KindConflict, pe.Kind, "refusal status %d", status)
		assert.Equal(t, "Prefactor error invalid_action", pe.Detail)
		assert.NotContains(t, pe.Error(), "cannot activate", "the vendor's message is not passed on")
		assert.Equal(t, 1, s.Writes())
	}
}

func TestChangeRepeatAcceptedAsNoop(t *testing.T) {
	// A vendor that accepts a repeated transition: the read still answers first, no write.
	s, c := newSim(t)
	s.RefuseRepeat = false
	res, err := c.Change(context.Background(), &provider.Change{ID: activeID, Status: provider.StatusActive})
	require.NoError(t, err)
	assert.False(t, res.Changed)
	assert.Equal(t, 0, s.Writes())
}

func TestChangeSuccessWithoutDetails(t *testing.T) {
	read := `{"status": "success", "details": {"id": "` + activeID + `", "status": "active", "token_scope": "account",
		"available_actions": {"activate": false, "suspend": true, "revoke": true, "delete": true}}}`
	for _, answer := range []struct {
		status int
		body   string
	}{
		{200, `{"status": "success"}`},
		{200, `{"status": "success", "details": {"status": "pending"}}`},
		{200, ``},
		{201, `OK`},
		{204, ``},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				_, _ = io.WriteString(w, read)
				return
			}
			w.WriteHeader(answer.status)
			_, _ = io.WriteString(w, answer.body)
		}))
		res, err := NewClient(srv.URL, bearerToken, upstream()).Change(context.Background(), &provider.Change{ID: activeID, Status: provider.StatusRevoked})
		srv.Close()
		require.NoError(t, err, answer.body)
		assert.True(t, res.Changed)
		assert.Equal(t, provider.StatusRevoked, res.Status, answer.body)
		assert.Equal(t, "revoked", res.ProviderStatus, answer.body)
		m := res.Metadata.(*Metadata)
		assert.Equal(t, "account", m.TokenScope, "the read's metadata is kept")
		assert.Nil(t, m.AvailableActions, "the read's actions are stale")
	}
}

// answerTwice serves a read (GET) with getStatus/getBody and anything else with
// postStatus/postBody.
func answerTwice(t *testing.T, getStatus int, getBody string, postStatus int, postBody string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet {
			w.WriteHeader(getStatus)
			_, _ = io.WriteString(w, getBody)
			return
		}
		w.WriteHeader(postStatus)
		_, _ = io.WriteString(w, postBody)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func errBody(code string) string {
	return `{"status": "error", "code": "` + code + `", "message": "token pf-s3cr3t-bearer-token is not valid here", "errors": {"x": ["y"]}}`
}

func TestReadErrorMapping(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    string
		kind    provider.Kind
		detail  string
		foreign bool
	}{
		{"404 not_found", 404, errBody("not_found"), provider.KindNotFound, "Prefactor error not_found", false},
		{"404 without body", 404, ``, provider.KindNotFound, "", false},
		{"401", 401, errBody("not_authenticated"), provider.KindAuth, "Prefactor error not_authenticated", false},
		{"403", 403, errBody("not_permitted"), provider.KindForbidden, "Prefactor error not_permitted", true},
		{"409 on a read", 409, errBody("invalid_action"), provider.KindConflict, "Prefactor error invalid_action", false},
		{"400 not_found", 400, errBody("not_found"), provider.KindNotFound, "Prefactor error not_found", false},
		{"400 not_authenticated", 400, errBody("not_authenticated"), provider.KindAuth, "Prefactor error not_authenticated", false},
		{"400 not_permitted", 400, errBody("not_permitted"), provider.KindForbidden, "Prefactor error not_permitted", true},
		{"400 bad_request", 400, errBody("bad_request"), provider.KindRejected, "Prefactor error bad_request", false},
		{"422 validation_errors", 422, errBody("validation_errors"), provider.KindRejected, "Prefactor error validation_errors", false},
		{"400 invalid_action on a read", 400, errBody("invalid_action"), provider.KindRejected, "Prefactor error invalid_action", false},
		{"200 error envelope", 200, errBody("not_found"), provider.KindNotFound, "Prefactor error not_found", false},
		{"418 odd code", 418, `{"status": "error", "code": "token pf-s3cr3t-bearer-token"}`, provider.KindRejected, "", false},
		{"302", 302, ``, provider.KindUpstream, "", false},
		{"500", 500, errBody("internal"), provider.KindUpstream, "", false},
		{"429", 429, errBody("rate_limited"), provider.KindRateLimited, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := upstream()
			up.Retries = 0
			st := newStub(t, tc.status, tc.body)
			_, err := NewClient(st.srv.URL, bearerToken, up).Read(context.Background(), activeID)
			pe := kindOf(t, err)
			assert.Equal(t, tc.kind, pe.Kind)
			assert.Equal(t, tc.status, pe.StatusCode)
			if tc.detail != "" {
				assert.Equal(t, tc.detail, pe.Detail)
			}
			assert.Equal(t, tc.foreign, pe.Foreign)
			assert.NotContains(t, err.Error(), bearerToken)
			assert.NotContains(t, err.Error(), "not valid here", "the vendor's message is not passed on")
		})
	}
}

func TestChangeErrorMapping(t *testing.T) {
	readActive := `{"status": "success", "details": {"id": "` + activeID + `", "status": "active"}}`
	cases := []struct {
		name   string
		status int
		body   string
		kind   provider.Kind
		detail string
	}{
		{"409 invalid_action", 409, errBody("invalid_action"), provider.KindConflict, "Prefactor error invalid_action"},
		{"409 without body", 409, ``, provider.KindConflict, "Prefactor refused the transition"},
		{"400 invalid_action", 400, errBody("invalid_action"), provider.KindConflict, "Prefactor error invalid_action"},
		{"400 bad_request", 400, errBody("bad_request"), provider.KindRejected, "Prefactor error bad_request"},
		{"422 validation_errors", 422, errBody("validation_errors"), provider.KindRejected, "Prefactor error validation_errors"},
		{"404 invalid_action", 404, errBody("invalid_action"), provider.KindConflict, "Prefactor error invalid_action"},
		{"200 error invalid_action", 200, errBody("invalid_action"), provider.KindConflict, "Prefactor error invalid_action"},
		{"404 not_found", 404, errBody("not_found"), provider.KindNotFound, "Prefactor error not_found"},
		{"401", 401, errBody("not_authenticated"), provider.KindAuth, "Prefactor error not_authenticated"},
		{"403", 403, errBody("not_permitted"), provider.KindForbidden, "Prefactor error not_permitted"},
		{"418 not_permitted", 418, errBody("not_permitted"), provider.KindForbidden, "Prefactor error not_permitted"},
		{"418 other", 418, errBody("teapot"), provider.KindRejected, "Prefactor error teapot"},
		{"500", 500, errBody("internal"), provider.KindUpstream, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := answerTwice(t, 200, readActive, tc.status, tc.body)
			_, err := NewClient(srv.URL, bearerToken, upstream()).Change(context.Background(), &provider.Change{ID: activeID, Status: provider.StatusInactive})
			pe := kindOf(t, err)
			assert.Equal(t, tc.kind, pe.Kind)
			assert.Equal(t, tc.status, pe.StatusCode)
			if tc.detail != "" {
				assert.Equal(t, tc.detail, pe.Detail)
			}
			assert.False(t, pe.Foreign, "a 403 to a write is not about ownership")
			assert.NotContains(t, err.Error(), bearerToken)
			assert.NotContains(t, err.Error(), "not valid here")
		})
	}
}

func TestErrorsAgainstSimulator(t *testing.T) {
	s, c := newSim(t)
	ctx := context.Background()

	_, err := c.Read(ctx, missingID)
	assert.Equal(t, provider.KindNotFound, provider.KindOf(err))
	_, err = c.Change(ctx, &provider.Change{ID: missingID, Status: provider.StatusInactive})
	assert.Equal(t, provider.KindNotFound, provider.KindOf(err))

	_, err = c.Read(ctx, foreignID)
	assert.Equal(t, provider.KindNotFound, provider.KindOf(err), "another account's token is not found")
	s.ForbidForeign = true
	_, err = c.Read(ctx, foreignID)
	pe := kindOf(t, err)
	assert.Equal(t, provider.KindForbidden, pe.Kind)
	assert.True(t, pe.Foreign, "another account's token, while probing, is not this provider's")

	bad := NewClient(s.URL, "wrong-token-value", upstream())
	_, err = bad.Read(ctx, activeID)
	assert.Equal(t, provider.KindAuth, provider.KindOf(err))
	assert.NotContains(t, err.Error(), "wrong-token-value")
	_, err = bad.Change(ctx, &provider.Change{ID: activeID, Status: provider.StatusInactive})
	assert.Equal(t, provider.KindAuth, provider.KindOf(err))
	assert.Equal(t, 0, s.Writes())

	s.SetFault(providertest.Fault{Malformed: true, Times: 1})
	_, err = c.Read(ctx, activeID)
	assert.Equal(t, provider.KindUpstream, provider.KindOf(err))
}

func TestIDIsPathEscaped(t *testing.T) {
	s, c := newSim(t)
	_, err := c.Change(context.Background(), &provider.Change{ID: "a/b?c#d e", Status: provider.StatusInactive})
	assert.Equal(t, provider.KindNotFound, provider.KindOf(err))
	reqs := s.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/api/v1/api_token/a%2Fb%3Fc%23d%20e", reqs[0].Path)
}

func TestBaseURLPrefix(t *testing.T) {
	s, _ := newSim(t)
	proxy := httptest.NewServer(http.StripPrefix("/proxy", s.Config.Handler))
	defer proxy.Close()
	cred, err := NewClient(proxy.URL+"/proxy", bearerToken, upstream()).Read(context.Background(), activeID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusActive, cred.Status)
}

func TestNoSecretInResults(t *testing.T) {
	s, c := newSim(t)
	ctx := context.Background()
	var outputs []string
	cred, err := c.Read(ctx, activeID)
	require.NoError(t, err)
	b, _ := json.Marshal(cred)
	outputs = append(outputs, string(b))
	res, err := c.Change(ctx, &provider.Change{ID: activeID, Status: provider.StatusInactive, IdempotencyKey: "k"})
	require.NoError(t, err)
	b, _ = json.Marshal(res)
	outputs = append(outputs, string(b))
	for _, id := range []string{revokedID, missingID, foreignID} {
		_, err := c.Change(ctx, &provider.Change{ID: id, Status: provider.StatusActive})
		require.Error(t, err)
		outputs = append(outputs, err.Error(), kindOf(t, err).Detail)
	}
	s.SetFault(providertest.Fault{Status: 500})
	_, err = c.Read(ctx, activeID)
	require.Error(t, err)
	outputs = append(outputs, err.Error())
	for _, out := range outputs {
		assert.NotContains(t, out, bearerToken)
		assert.NotContains(t, strings.ToLower(out), "bearer")
	}
}

func TestIDPattern(t *testing.T) {
	re := regexp.MustCompile(`^(?:` + IDPattern + `)$`)
	for _, id := range []string{activeID, revokedID, "7zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"} {
		assert.True(t, re.MatchString(id), id)
	}
	for _, id := range []string{"813xrzp12g3nqk8n7f8f9jbg8d18q7tm", "013xrzp12g3nqk8n7f8f9jbg8d18q7t", "013xrzp12g3nqk8n7f8f9jbg8d18q7tmm", "013Xrzp12g3nqk8n7f8f9jbg8d18q7tm", "013irzp12g3nqk8n7f8f9jbg8d18q7tm", "12345"} {
		assert.False(t, re.MatchString(id), id)
	}
}
