package gateway

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Member is one gateway process of a fleet: several gateways with configs of their own (a
// shared state in common) in front of simulators the test runs itself.
type Member struct {
	Site  string // the site's port
	Admin string // the admin endpoint's port
	Dir   string

	log  *LockedBuffer
	cmd  *exec.Cmd
	stop func()
	done <-chan struct{}
}

// StartMember runs a gateway with the Caddyfile that config returns for its free site and
// admin ports, with env added to its environment, waits until it listens, and stops it when
// t ends.
func (b *Binaries) StartMember(t testing.TB, config func(site, admin string) string, env []string) *Member {
	t.Helper()
	ports, err := FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	m := &Member{Site: ports[0], Admin: ports[1], Dir: t.TempDir(), log: &LockedBuffer{}}
	path := filepath.Join(m.Dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(config(m.Site, m.Admin)), 0o600); err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(b.Gateway, "run", "--config", path, "--adapter", "caddyfile")
	m.cmd.Dir = m.Dir
	m.cmd.Env = append(os.Environ(), append(env, "HOME="+m.Dir, "XDG_CONFIG_HOME="+m.Dir, "XDG_DATA_HOME="+m.Dir)...)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.stop, m.done = startProcess(t, m.cmd, "gateway :"+m.Site, m.log)
	t.Cleanup(m.Stop)
	waitListening(t, "127.0.0.1:"+m.Site, "gateway", m.done, m.log)
	waitListening(t, "127.0.0.1:"+m.Admin, "gateway", m.done, m.log)
	return m
}

// URL is the member's site, http://127.0.0.1:port.
func (m *Member) URL() string { return "http://127.0.0.1:" + m.Site }

// AdminURL is the member's admin endpoint.
func (m *Member) AdminURL() string { return "http://127.0.0.1:" + m.Admin }

// Log is what the gateway wrote so far.
func (m *Member) Log() string { return m.log.String() }

// Stop stops the gateway gracefully (SIGINT) and waits for it; more calls do nothing.
func (m *Member) Stop() {
	if m.stop != nil {
		m.stop()
		m.stop = nil
	}
}

// Kill kills the gateway (SIGKILL), as a crash would: nothing it held is released.
func (m *Member) Kill() {
	if m.stop == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
	}
	m.stop = nil
}
