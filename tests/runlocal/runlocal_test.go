// Package runlocal tests scripts/run-local.sh, what `make run` runs: it says that the gateway
// is ready only once it answers, and otherwise exits non-zero with the gateway's last lines
// (issue 15). It runs the script with the gateway and simulators that tests/gateway builds (go
// build, not xcaddy), on free ports.
package runlocal

import (
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credgate/credgate/tests/gateway"
)

var bins *gateway.Binaries

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	return gateway.Main(m, &bins)
}

// setup is one run of the script: make run's config on free ports.
type setup struct {
	in        *gateway.Instance // only its ports and Rewrite
	caddyfile string
	env       []string
	dir       string
}

func newSetup(t *testing.T, edit func(string) string) *setup {
	t.Helper()
	ports := mustFreePorts(t, 2+len(gateway.DocSims))
	in := &gateway.Instance{Site: ports[0], Admin: ports[1], Sims: map[string]string{}}
	for i, s := range gateway.DocSims {
		in.Sims[s.Vendor] = ports[2+i]
	}
	src, err := os.ReadFile(filepath.Join(bins.Root, "caddyfile-examples", "local.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	config := in.Rewrite(string(src))
	if edit != nil {
		config = edit(config)
	}
	dir := t.TempDir()
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := gateway.DemoEnv(bins.Root)
	if err != nil {
		t.Fatal(err)
	}
	var simPorts []string
	for _, s := range gateway.DocSims {
		simPorts = append(simPorts, in.Sims[s.Vendor])
	}
	env = append(env, "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir,
		"SITE=localhost:"+in.Site, "SIM_PORTS="+strings.Join(simPorts, " "))
	return &setup{in: in, caddyfile: caddyfile, env: env, dir: dir}
}

// script is a running scripts/run-local.sh, in its own process group as under make.
type script struct {
	cmd  *exec.Cmd
	out  *gateway.LockedBuffer
	done chan struct{}
	err  error
}

func (s *setup) start(t *testing.T, extraEnv ...string) *script {
	t.Helper()
	args := []string{s.caddyfile, bins.Simulators}
	for _, sim := range gateway.DocSims {
		args = append(args, "-"+sim.Vendor, "127.0.0.1:"+s.in.Sims[sim.Vendor])
	}
	cmd := exec.Command(filepath.Join(bins.Root, "scripts", "run-local.sh"), append([]string{bins.Gateway}, args...)...)
	cmd.Dir = s.dir
	cmd.Env = append(append(os.Environ(), s.env...), extraEnv...)
	out := &gateway.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := &script{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { sc.err = cmd.Wait(); close(sc.done) }()
	t.Cleanup(func() {
		select {
		case <-sc.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-sc.done
		}
		if t.Failed() {
			t.Logf("run-local.sh's output:\n%s", out.String())
		}
	})
	return sc
}

// exit waits for the script's exit and returns its status.
func (sc *script) exit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-sc.done:
	case <-time.After(within):
		t.Fatalf("run-local.sh still runs after %s", within)
	}
	var ee *exec.ExitError
	if errors.As(sc.err, &ee) {
		return ee.ExitCode()
	}
	if sc.err != nil {
		t.Fatal(sc.err)
	}
	return 0
}

const banner = "==> credgate is ready on http://localhost:"

// With make run's config, the banner comes once the gateway answers, and Ctrl-C (SIGINT to
// the process group, as a terminal sends it) stops the gateway and the simulators.
func TestReadyThenCtrlC(t *testing.T) {
	s := newSetup(t, nil)
	sc := s.start(t)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(sc.out.String(), banner) {
		select {
		case <-sc.done:
			t.Fatalf("run-local.sh exited: %v", sc.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no ready banner after 60 s")
		}
	}
	// Ready means ready: the documented first request answers at once.
	resp, err := http.Get("http://localhost:" + s.in.Site + "/credentials/12345/status")
	if err != nil {
		t.Fatalf("ready, but: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /credentials/12345/status: %s", resp.Status)
	}

	if err := syscall.Kill(-sc.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := sc.exit(t, 20*time.Second); code != 130 {
		t.Errorf("exit status after Ctrl-C: %d, want 130", code)
	}
	for _, port := range append([]string{s.in.Site, s.in.Admin}, s.in.Sims["digicert"], s.in.Sims["palisade"]) {
		if listening("127.0.0.1:" + port) {
			t.Errorf("127.0.0.1:%s still listens after Ctrl-C", port)
		}
	}
}

// A broken config: the gateway exits at once; the script says so, shows why, and exits 1
// without a ready banner, and stops the simulators.
func TestBrokenConfig(t *testing.T) {
	s := newSetup(t, func(c string) string {
		return strings.Replace(c, "provider custody palisade {", "provider custody palisade {\n\t\t\ttimout 5s", 1)
	})
	sc := s.start(t)
	if code := sc.exit(t, 60*time.Second); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	out := sc.out.String()
	for _, want := range []string{
		"make run: the gateway exited (status 1) before it answered on http://localhost:" + s.in.Site,
		"---- the gateway's last lines",
		`palisade: unknown option \"timout\"; did you mean \"timeout\"?`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "ready on") {
		t.Error("a broken config was called ready")
	}
	if listening("127.0.0.1:" + s.in.Sims["digicert"]) {
		t.Error("the simulators still run")
	}
}

// A missing secret is a broken config too, and the script shows the gateway's message naming
// the variable.
func TestMissingSecret(t *testing.T) {
	s := newSetup(t, nil)
	sc := s.start(t, "PALISADE_CLIENT_SECRET=", "ZSTACK_TOKEN=")
	if code := sc.exit(t, 60*time.Second); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	out := sc.out.String()
	for _, want := range []string{
		"provider custody: client_secret: PALISADE_CLIENT_SECRET is empty",
		"provider vault: token: ZSTACK_TOKEN is empty",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "ready on") {
		t.Error("a broken config was called ready")
	}
}

// A gateway that runs but does not answer where it should: no banner, exit 1 after
// READY_TIMEOUT, and the gateway is stopped.
func TestNeverAnswers(t *testing.T) {
	s := newSetup(t, nil)
	elsewhere := mustFreePorts(t, 1)[0]
	s.env = append(s.env, "SITE=localhost:"+elsewhere, "READY_TIMEOUT=3")
	sc := s.start(t)
	if code := sc.exit(t, 60*time.Second); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	out := sc.out.String()
	if want := "make run: the gateway did not answer on http://localhost:" + elsewhere + " after 3s"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q", want)
	}
	if strings.Contains(out, "ready on") {
		t.Error("called ready")
	}
	if listening("127.0.0.1:" + s.in.Site) {
		t.Error("the gateway still runs")
	}
}

// Something else on the gateway's port would answer for it: the script refuses to start.
func TestSiteTaken(t *testing.T) {
	s := newSetup(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:"+s.in.Site)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sc := s.start(t)
	if code := sc.exit(t, 10*time.Second); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if want := "make run: localhost:" + s.in.Site + " is taken"; !strings.Contains(sc.out.String(), want) {
		t.Errorf("output lacks %q", want)
	}
}

func listening(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
	}
	return err == nil
}

func mustFreePorts(t *testing.T, n int) []string {
	t.Helper()
	ports, err := gateway.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}
