// Package gateway starts credgate and the vendor simulators as separate processes on free
// loopback ports, the way `make run` does on fixed ones, for tests that need the real thing
// from the outside (tests/docs runs every documented console example against it).
//
// Build compiles the two programs once per test binary: the simulators command
// (tests/cmd/simulators) and a gateway (./cmd/credgate: caddycmd.Main with credgate blank
// imported, what xcaddy generates, compiled from this repository's go.mod). Start then runs
// them with caddyfile-examples/local.Caddyfile rewritten to the free ports and the demo
// secrets of the Makefile's DEMO_ENV, and stops them in t.Cleanup.
package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credgate/credgate/module/provider/providertest"
	_ "github.com/credgate/credgate/tests/vendors"
)

// The documented addresses of `make run` (caddyfile-examples/local.Caddyfile and the
// simulators' defaults), which Start replaces with free ports.
const (
	DocSite  = "8080"
	DocAdmin = "2019"
)

// DocSims are the simulators' documented ports, by the simulators command's flag names: one
// per registered vendor (tests/vendors), at its fixture's DemoPort.
var DocSims = func() []struct{ Vendor, Port string } {
	var out []struct{ Vendor, Port string }
	for _, f := range providertest.Fixtures() {
		out = append(out, struct{ Vendor, Port string }{f.Name, strconv.Itoa(f.DemoPort)})
	}
	return out
}()

// Binaries are the built programs.
type Binaries struct {
	Root       string // the repository root
	Gateway    string
	Simulators string
}

// Main is the TestMain of a test package under tests/ (the repository root is two folders up):
// it builds the gateway and the simulators once into a temporary folder and sets *bins, runs
// the tests, removes the folder, and returns the exit code for os.Exit.
func Main(m *testing.M, bins **Binaries) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "credgate-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bins, err = Build(root, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// Build compiles the gateway and the simulators into dir. root is the repository root.
func Build(root, dir string) (*Binaries, error) {
	b := &Binaries{
		Root:       root,
		Gateway:    filepath.Join(dir, "credgate"),
		Simulators: filepath.Join(dir, "simulators"),
	}
	for _, job := range []struct{ out, pkg string }{
		{b.Gateway, "./tests/gateway/cmd/credgate"},
		{b.Simulators, "./tests/cmd/simulators"},
	} {
		cmd := exec.Command("go", "build", "-o", job.out, job.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", job.pkg, err, out)
		}
	}
	return b, nil
}

// Instance is one running gateway with its simulators.
type Instance struct {
	Site  string // the site's port (documented: 8080)
	Admin string // the admin endpoint's port (documented: 2019)
	Sims  map[string]string
	Dir   string // the processes' home, config and log directory

	bins       *Binaries
	gatewayLog *LockedBuffer
	stops      []func() // the processes' stops, in the order they started
	stopOnce   sync.Once
}

// Stop stops the gateway, then the simulators, and waits for them to exit. Start arranges it
// for the end of the test; an earlier call (a test that starts afresh) is allowed.
func (in *Instance) Stop() {
	in.stopOnce.Do(func() {
		for i := len(in.stops) - 1; i >= 0; i-- {
			in.stops[i]()
		}
	})
}

// Ports maps each documented port to the port this instance uses instead.
func (in *Instance) Ports() map[string]string {
	m := map[string]string{DocSite: in.Site, DocAdmin: in.Admin}
	for _, s := range DocSims {
		m[s.Port] = in.Sims[s.Vendor]
	}
	return m
}

// Rewrite replaces the documented addresses in s (localhost:8080, 127.0.0.1:9104, the
// Caddyfile's http_port 8080, ...) with this instance's.
func (in *Instance) Rewrite(s string) string {
	for doc, real := range in.Ports() {
		s = replacePort(s, doc, real)
	}
	return regexp.MustCompile(`(?m)^(\s*http_port\s+)`+DocSite+`\b`).ReplaceAllString(s, "${1}"+in.Site)
}

// Unrewrite maps this instance's addresses in s back to the documented ones.
func (in *Instance) Unrewrite(s string) string {
	for doc, real := range in.Ports() {
		s = replacePort(s, real, doc)
	}
	return s
}

// replacePort replaces localhost:from and 127.0.0.1:from (not followed by a digit) with to.
func replacePort(s, from, to string) string {
	re := regexp.MustCompile(`(localhost|127\.0\.0\.1):` + from + `\b`)
	return re.ReplaceAllString(s, "${1}:"+to)
}

// GatewayLog is what the gateway wrote to stdout and stderr so far (Caddy's logs, the audit
// trail among them).
func (in *Instance) GatewayLog() string { return in.gatewayLog.String() }

// Start runs the simulators and a gateway serving caddyfile (a path relative to the
// repository root, or absolute; "" for caddyfile-examples/local.Caddyfile) on free ports,
// waits until all of them listen, and stops them when t ends.
func (b *Binaries) Start(t testing.TB, caddyfile string) *Instance {
	t.Helper()
	// Free ports are free when chosen; another test process may take one before the
	// simulators or the gateway bind it. Such a start is tried again, on other ports.
	for attempt := 1; ; attempt++ {
		in, err := b.start(t, caddyfile)
		if err == nil {
			return in
		}
		in.Stop()
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("starting again on other ports: %v", err)
	}
}

// start makes one attempt of Start. Its Instance is stopped by t's cleanup, or by Stop.
func (b *Binaries) start(t testing.TB, caddyfile string) (*Instance, error) {
	if caddyfile == "" {
		caddyfile = "caddyfile-examples/local.Caddyfile"
	}
	ports, err := FreePorts(2 + len(DocSims))
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{Site: ports[0], Admin: ports[1], Sims: map[string]string{}, Dir: t.TempDir(),
		bins: b, gatewayLog: &LockedBuffer{}}
	t.Cleanup(in.Stop)
	args := []string{}
	for i, s := range DocSims {
		in.Sims[s.Vendor] = ports[2+i]
		args = append(args, "-"+s.Vendor, "127.0.0.1:"+ports[2+i])
	}
	env, err := demoEnv(filepath.Join(b.Root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	// Caddy keeps its autosave and data under the home and XDG directories: a test's own.
	env = append(env, "HOME="+in.Dir, "XDG_CONFIG_HOME="+in.Dir, "XDG_DATA_HOME="+in.Dir)

	simsLog := &LockedBuffer{}
	sims := exec.Command(b.Simulators, args...)
	sims.Stdout, sims.Stderr = simsLog, simsLog
	stop, exited := startProcess(t, sims, "simulators", simsLog)
	in.stops = append(in.stops, stop)
	for _, s := range DocSims {
		if err := listening("127.0.0.1:"+in.Sims[s.Vendor], "simulators", exited, simsLog); err != nil {
			return in, err
		}
	}

	if !filepath.IsAbs(caddyfile) {
		caddyfile = filepath.Join(b.Root, caddyfile)
	}
	src, err := os.ReadFile(caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(in.Dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(in.Rewrite(string(src))), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := exec.Command(b.Gateway, "run", "--config", config, "--adapter", "caddyfile")
	gw.Dir = in.Dir
	gw.Env = append(os.Environ(), env...)
	gw.Stdout, gw.Stderr = in.gatewayLog, in.gatewayLog
	stop, exited = startProcess(t, gw, "gateway", in.gatewayLog)
	in.stops = append(in.stops, stop)
	for _, port := range []string{in.Site, in.Admin} {
		if err := listening("127.0.0.1:"+port, "gateway", exited, in.gatewayLog); err != nil {
			return in, err
		}
	}
	return in, nil
}

// startProcess starts cmd and returns its stop: SIGINT, then SIGKILL after 10 s, and a wait
// for its exit; if t failed by then, its output is logged.
func startProcess(t testing.TB, cmd *exec.Cmd, name string, out *LockedBuffer) (stop func(), exited <-chan struct{}) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, out.String())
		}
	}
	return stop, done
}

// waitListening waits up to 30 s for addr to accept connections, failing t if the process
// exits first.
func waitListening(t testing.TB, addr, name string, exited <-chan struct{}, out *LockedBuffer) {
	t.Helper()
	if err := listening(addr, name, exited, out); err != nil {
		t.Fatal(err)
	}
}

// listening waits up to 30 s for addr to accept connections; it fails, with the process's
// output, when the process exits first or never listens.
func listening(addr, name string, exited <-chan struct{}, out *LockedBuffer) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it listened on %s:\n%s", name, addr, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never listened on %s:\n%s", name, addr, out.String())
		}
	}
}

// FreePorts returns n distinct ports that were free a moment ago.
func FreePorts(n int) ([]string, error) {
	var ports []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}

// DemoEnv is the NAME=value list of the Makefile's DEMO_ENV under the repository root: the
// demo secrets that `make run` exports.
func DemoEnv(root string) ([]string, error) { return demoEnv(filepath.Join(root, "Makefile")) }

// demoEnv reads the NAME=value lines of the Makefile's DEMO_ENV, the secrets `make run`
// exports, so that the tests and `make run` cannot disagree.
func demoEnv(makefile string) ([]string, error) {
	f, err := os.Open(makefile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var env []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "DEMO_ENV") && strings.Contains(line, ":=") {
			in = true
			continue
		}
		if !in {
			continue
		}
		env = append(env, strings.TrimSpace(strings.TrimSuffix(line, `\`)))
		if !strings.HasSuffix(line, `\`) {
			break
		}
	}
	if len(env) == 0 {
		return nil, fmt.Errorf("%s: no DEMO_ENV", makefile)
	}
	return env, sc.Err()
}

// LockedBuffer is a bytes.Buffer that a process's output and a test may use at once.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// URL is the site's address, what `make run` serves on http://localhost:8080.
func (in *Instance) URL() string { return "http://localhost:" + in.Site }
