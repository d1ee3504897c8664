package vendors_test

import (
	"net"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/credgate/credgate"
	"github.com/credgate/credgate/module/provider/providertest"
	_ "github.com/credgate/credgate/tests/vendors"
)

// namespace is where the adapters register as Caddy modules.
const namespace = "http.credential_status.providers"

// testOnlyAdapters are adapters registered in the namespace by test code, not vendors.
var testOnlyAdapters = map[string]bool{"fake": true}

// TestEveryAdapterHasAFixture builds the list of vendors from the two registries, the Caddy
// modules that credgate.go plugs in and the fixtures that this package imports, and fails,
// saying which line to add where, when they differ.
func TestEveryAdapterHasAFixture(t *testing.T) {
	var adapters []string
	for _, m := range caddy.GetModules(namespace) {
		if name := m.ID.Name(); !testOnlyAdapters[name] {
			adapters = append(adapters, name)
		}
	}
	var fixtures []string
	for _, f := range providertest.Fixtures() {
		fixtures = append(fixtures, f.Name)
	}
	if len(adapters) == 0 {
		t.Fatal("no adapter registered in " + namespace + ": does credgate.go still import them?")
	}
	for _, a := range adapters {
		if !slices.Contains(fixtures, a) {
			t.Errorf("adapter %[1]q (Caddy module %[2]s.%[1]s) has no test fixture: add\n"+
				"\t_ \"github.com/credgate/credgate/adapters/%[1]s/%[1]stest\"\n"+
				"to the imports of tests/vendors/vendors.go, and register its providertest.Fixture in the init of that package",
				a, namespace)
		}
	}
	for _, f := range fixtures {
		if !slices.Contains(adapters, f) {
			t.Errorf("fixture %[1]q has no Caddy module %[2]s.%[1]s: add\n"+
				"\t_ \"github.com/credgate/credgate/adapters/%[1]s\"\n"+
				"to the imports of credgate.go (the adapter's Caddy module registers in its init)",
				f, namespace)
		}
	}
	t.Logf("vendors: %s", strings.Join(fixtures, ", "))
}

// TestFixturesKeepTheirWord starts each fixture's test simulator and checks what the
// fixture promises about it, so that the shared tests can take it at its word.
func TestFixturesKeepTheirWord(t *testing.T) {
	ports := map[int]string{}
	for _, f := range providertest.Fixtures() {
		t.Run(f.Name, func(t *testing.T) {
			if other, dup := ports[f.DemoPort]; dup {
				t.Errorf("DemoPort %d is %s's too", f.DemoPort, other)
			}
			ports[f.DemoPort] = f.Name
			info, err := caddy.GetModule(namespace + "." + f.Name)
			if err != nil {
				t.Fatalf("no adapter module: %v", err)
			}
			pattern := idPattern(t, info.New())
			for name, id := range map[string]string{"ID": f.ID, "UnknownID": f.UnknownID, "BulkID(0)": f.BulkID(0), "BulkID(99999)": f.BulkID(99999)} {
				if !pattern.MatchString(id) {
					t.Errorf("%s %s does not match the adapter's id_pattern %s", name, id, pattern)
				}
			}
			for _, other := range providertest.Fixtures() {
				if other.Name == f.Name {
					continue
				}
				otherInfo, err := caddy.GetModule(namespace + "." + other.Name)
				if err == nil && idPattern(t, otherInfo.New()).MatchString(f.BulkID(0)) {
					t.Errorf("BulkID(0) %s matches %s's id_pattern too", f.BulkID(0), other.Name)
				}
			}

			s := f.Start("")
			defer s.Close()
			if s.Server == nil || s.Add == nil || s.Active == nil || s.Secrets == nil || s.Vendor == nil {
				t.Fatal("Start returned a Sim with a nil field")
			}
			if !s.Active(f.ID) {
				t.Errorf("ID %s is not active in the fresh simulator", f.ID)
			}
			if s.Active(f.UnknownID) {
				t.Errorf("UnknownID %s is held", f.UnknownID)
			}
			bulk := map[string]bool{}
			for n := range 3 {
				id := f.BulkID(n)
				if bulk[id] || id == f.ID || id == f.UnknownID {
					t.Errorf("BulkID(%d) = %s repeats an ID", n, id)
				}
				bulk[id] = true
				if s.Active(id) {
					t.Errorf("BulkID(%d) = %s is held before Add", n, id)
				}
				s.Add(id)
				if !s.Active(id) {
					t.Errorf("BulkID(%d) = %s is not active after Add", n, id)
				}
			}
			secrets := s.Secrets()
			for name, value := range f.Env {
				if !strings.Contains(f.Block, "{env."+name+"}") {
					t.Errorf("Env %s is not read by Block", name)
				}
				if !slices.Contains(secrets, value) && !strings.Contains(strings.ToLower(name), "_id") {
					t.Errorf("Env %s's value is not among Secrets()", name)
				}
			}
			for _, m := range regexp.MustCompile(`\{env\.([A-Za-z0-9_]+)\}`).FindAllStringSubmatch(f.Block, -1) {
				if _, ok := f.Env[m[1]]; !ok {
					t.Errorf("Block reads {env.%s}, which Env does not set", m[1])
				}
			}
			if strings.Contains(f.Block, "base_url") {
				t.Error("Block sets base_url, which the caller adds")
			}

			demo := f.StartDemo("")
			demo.Close()
			// StartDemo on a given address listens there.
			addr := freeAddr(t)
			demo = f.StartDemo(addr)
			defer demo.Close()
			if demo.Listener.Addr().String() != addr {
				t.Errorf("StartDemo(%s) listens on %s", addr, demo.Listener.Addr())
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// idPattern returns the default id_pattern of an adapter module, anchored as the handler
// anchors it. The adapter reports it by its Vendor method (whose result type belongs to the
// contract package), in the field IDPattern.
func idPattern(t *testing.T, adapter any) *regexp.Regexp {
	t.Helper()
	m := reflect.ValueOf(adapter).MethodByName("Vendor")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		t.Fatalf("%T has no Vendor() method", adapter)
	}
	v := m.Call(nil)[0]
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	field := v.FieldByName("IDPattern")
	if !field.IsValid() || field.Kind() != reflect.String || field.String() == "" {
		t.Fatalf("%T.Vendor() has no IDPattern", adapter)
	}
	return regexp.MustCompile(`^(?:` + field.String() + `)$`)
}
