package credentialstatus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	credentialstatus "github.com/credgate/credgate/module/credentialstatus"
	"github.com/credgate/credgate/module/provider"
)

// fakeAdapter is a scripted adapter: its client is looked up by the "script" option in
// fakeClients, so that a test decides every answer without a network.
type fakeAdapter struct {
	provider.Options
	Script  string `json:"script"`
	Pattern string `json:"pattern,omitempty"`
	Revoke  bool   `json:"revoke,omitempty"`
}

func init() { caddy.RegisterModule(new(fakeAdapter)) }

func (*fakeAdapter) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: provider.Namespace + ".fake", New: func() caddy.Module { return new(fakeAdapter) }}
}

func (*fakeAdapter) Provision(caddy.Context) error { return nil }

func (a *fakeAdapter) Vendor() provider.Vendor {
	p := a.Pattern
	if p == "" {
		p = `[0-9]+`
	}
	return provider.Vendor{BaseURL: "https://fake.invalid", IDPattern: p, Capabilities: provider.Capabilities{Revoke: a.Revoke}}
}

func (a *fakeAdapter) Open(string, *provider.Upstream) (provider.Client, error) {
	fakeMu.Lock()
	defer fakeMu.Unlock()
	c, ok := fakeClients[a.Script]
	if !ok {
		return nil, fmt.Errorf("no fake client %q", a.Script)
	}
	return c, nil
}

var (
	fakeMu      sync.Mutex
	fakeClients = map[string]*fakeClient{}
)

// fakeClient answers with its functions and counts the calls.
type fakeClient struct {
	read    func(ctx context.Context, id string) (*provider.Credential, error)
	change  func(ctx context.Context, c *provider.Change) (*provider.Result, error)
	reads   atomic.Int32
	changes atomic.Int32
	last    atomic.Pointer[provider.Change]
}

func (f *fakeClient) Read(ctx context.Context, id string) (*provider.Credential, error) {
	f.reads.Add(1)
	return f.read(ctx, id)
}

func (f *fakeClient) Change(ctx context.Context, c *provider.Change) (*provider.Result, error) {
	f.changes.Add(1)
	cp := *c
	f.last.Store(&cp)
	return f.change(ctx, c)
}

// owns returns a client that owns the given IDs, at the status it keeps for each.
func owns(ids ...string) *fakeClient {
	var mu sync.Mutex
	state := map[string]provider.Status{}
	for _, id := range ids {
		state[id] = provider.StatusActive
	}
	f := &fakeClient{}
	f.read = func(_ context.Context, id string) (*provider.Credential, error) {
		mu.Lock()
		defer mu.Unlock()
		s, ok := state[id]
		if !ok {
			return nil, &provider.Error{Kind: provider.KindNotFound, StatusCode: 404}
		}
		return &provider.Credential{Status: s, ProviderStatus: strings.ToUpper(string(s)), Metadata: map[string]string{"name": "n-" + id}}, nil
	}
	f.change = func(_ context.Context, c *provider.Change) (*provider.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		s, ok := state[c.ID]
		if !ok {
			return nil, &provider.Error{Kind: provider.KindNotFound, StatusCode: 404}
		}
		state[c.ID] = c.Status
		return &provider.Result{Credential: provider.Credential{Status: c.Status}, Changed: s != c.Status}, nil
	}
	return f
}

// failing returns a client whose every call fails with err.
func failing(err error) *fakeClient {
	return &fakeClient{
		read:   func(context.Context, string) (*provider.Credential, error) { return nil, err },
		change: func(context.Context, *provider.Change) (*provider.Result, error) { return nil, err },
	}
}

var scriptSeq atomic.Int32

// gateway provisions a Handler whose providers are the given fake clients, by name. extra
// holds more handler JSON fields, and per-provider JSON fields by name under "providers".
type gateway struct {
	t *testing.T
	h *credentialstatus.Handler
}

type fakeProvider struct {
	name    string
	client  *fakeClient
	options map[string]any
}

func newGateway(t *testing.T, handlerJSON map[string]any, providers ...fakeProvider) *gateway {
	t.Helper()
	raw := map[string]json.RawMessage{}
	for _, p := range providers {
		script := fmt.Sprintf("%s-%d", p.name, scriptSeq.Add(1))
		fakeMu.Lock()
		fakeClients[script] = p.client
		fakeMu.Unlock()
		obj := map[string]any{"adapter": "fake", "script": script}
		for k, v := range p.options {
			obj[k] = v
		}
		b, err := json.Marshal(obj)
		require.NoError(t, err)
		raw[p.name] = b
	}
	if handlerJSON == nil {
		handlerJSON = map[string]any{}
	}
	handlerJSON["providers"] = raw
	b, err := json.Marshal(handlerJSON)
	require.NoError(t, err)
	h := new(credentialstatus.Handler)
	require.NoError(t, json.Unmarshal(b, h))
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, h.Provision(ctx))
	require.NoError(t, h.Validate())
	t.Cleanup(func() { require.NoError(t, h.Cleanup()) })
	return &gateway{t: t, h: h}
}

// do serves one request and returns the recorder. The replacer is in the context, as Caddy
// puts it there; user, when set, is the authenticated caller.
func (g *gateway) do(method, target, body string, header ...string) *httptest.ResponseRecorder {
	return g.doAs("", method, target, body, header...)
}

func (g *gateway) doAs(user, method, target, body string, header ...string) *httptest.ResponseRecorder {
	g.t.Helper()
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, target, nil)
	} else {
		req = httptest.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	repl := caddy.NewReplacer()
	if user != "" {
		repl.Set("http.auth.user.id", user)
	}
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusTeapot) // the next handler: marks "not ours"
		return nil
	})
	require.NoError(g.t, g.h.ServeHTTP(rec, req, next))
	return rec
}

// problem decodes a problem+json answer.
func problem(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"), "body: %s", rec.Body)
	var p map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	return p
}

func body(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"), "body: %s", rec.Body)
	var v map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v))
	return v
}

// TestMain fails the package when a test leaves a goroutine behind (a probe, a breaker, a
// connection to a provider). glog's flush daemon belongs to a dependency's init.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}
