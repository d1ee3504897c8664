package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// Section 8, fleet (issue 14): the cost of shared state (`shared_state redis`) on a real
// redis-server started on a free loopback port, and the throughput of several gateway
// processes sharing it.
//
//   - shared state's cost on a cached PUT: two servers in this process (a config of its own),
//     the same provider on the main stub, one without shared_state and one with it
//     (idempotency_storage shared_state too, as docs/fleet.md deploys it), PUT of a cached ID
//     one request at a time, in alternating rounds; the difference of their p50s is what
//     shared state adds (the shared breaker's state read from Redis: one GET per request). The
//     Redis commands each row's requests cause are counted (INFO stats) so that the row is
//     seen to take the shared path. The allocations come from the micro benchmarks
//     (BenchmarkCachedRequestSharedState against BenchmarkCachedRequest, -micro).
//   - three instances against one: fleetInstances real gateway processes (the gateway of
//     tests/gateway/cmd/credgate, built here) sharing that Redis, in front of the main stub.
//     There is no load balancer: the client sends each request to the next instance in
//     turn (round robin), with the same workers as for one instance, which gets them all.
//     Every process, Redis, the stub and the client share this machine's cores: with fewer
//     cores than processes the ratio measures contention, not the fleet's capacity.
//
// Without redis-server the section is skipped, with the reason in the report.
const (
	fleetInstances = 3
	fleetKeyPrefix = "loadbench"
	fleetProvider  = "fleet-dc"
)

// fleet is what section 8 measured.
type fleet struct {
	skipped string // why the section did not run (no redis-server)

	local, shared          *row // in process, unloaded
	localCmds, sharedCmds  int64
	localN, sharedN        int  // answers of the measured rounds
	one, three             *row // processes, loaded
	oneCmds, threeCmds     int64
	oneN, threeN           int
	buildTime              time.Duration
	redisVersion, redisBin string
}

// fleetRuns starts Redis, measures the in-process pair, then builds the gateway and
// measures one process against three.
func (b *bench) fleetRuns() (*fleet, error) {
	f := &fleet{}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		f.skipped = "redis-server is not installed: apt-get install -y redis-server (Debian's package; `make test` installs it)"
		return f, nil
	}
	f.redisBin = bin
	dir, err := os.MkdirTemp("", "loadbench-fleet-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rs, err := startRedis(bin, filepath.Join(dir, "redis"))
	if err != nil {
		return nil, err
	}
	defer rs.stop()
	cli := redis.NewClient(&redis.Options{Addr: rs.addr})
	defer cli.Close()
	if info, err := cli.Info(context.Background(), "server").Result(); err == nil {
		f.redisVersion = infoField(info, "redis_version")
	}

	// 1. Shared state's cost, in process.
	handler := func(shared bool) obj {
		h := credentialStatus(obj{fleetProvider: digicertProvider(b.main, nil)})
		if shared {
			h["shared_state"] = obj{"redis": obj{"addresses": []string{rs.addr}, "key_prefix": fleetKeyPrefix}}
			h["idempotency_storage"] = "shared_state"
		}
		return h
	}
	addrs, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	cfg, err := caddyConfig(obj{
		"fleet-local":  server(addrs[0], handler(false), notFound()),
		"fleet-shared": server(addrs[1], handler(true), notFound()),
	})
	if err != nil {
		return nil, err
	}
	if err := caddy.Load(cfg, true); err != nil {
		return nil, fmt.Errorf("caddy.Load (fleet): %v", err)
	}
	if err := waitListening(addrs, 10*time.Second); err != nil {
		return nil, err
	}
	body := []byte(`{"status":"active"}`)
	path := "/credentials/" + strconv.Itoa(cachedID) + "/status"
	for _, a := range addrs {
		if err := b.expect(putReq("http://"+a+path, body))(200, `"provider":"`+fleetProvider+`"`, `"changed":false`); err != nil {
			return nil, fmt.Errorf("fleet: %v", err)
		}
	}
	mk := func(key, label, addr string, workers int) *row {
		u := "http://" + addr + path
		return &row{key: key, label: label, workers: workers, want: 200, stubs: []*stub{b.main}, expectCalls: 1,
			build: func(int, int) (*http.Request, error) { return putReq(u, body) }}
	}
	f.local = mk("local_cached_put", "local state, unloaded", addrs[0], b.o.latencyWorkers)
	f.shared = mk("shared_state_cached_put", "shared state (Redis), unloaded", addrs[1], b.o.latencyWorkers)
	cmds, answers, err := b.runGroupCounted([]*row{f.local, f.shared}, cli)
	if err != nil {
		return nil, err
	}
	f.localCmds, f.sharedCmds = cmds[0], cmds[1]
	f.localN, f.sharedN = answers[0], answers[1]
	if err := caddy.Stop(); err != nil {
		return nil, fmt.Errorf("caddy.Stop (fleet): %v", err)
	}

	// 2. One process against three.
	began := time.Now()
	gw, err := buildGateway(filepath.Join(dir, "credgate"))
	if err != nil {
		return nil, err
	}
	f.buildTime = time.Since(began)
	site, err := freePorts(fleetInstances)
	if err != nil {
		return nil, err
	}
	var procs []*gatewayProc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for i, a := range site {
		cfg, err := caddyConfig(obj{"fleet": server(a, handler(true), notFound())})
		if err != nil {
			return nil, err
		}
		p, err := startGateway(gw, filepath.Join(dir, "gw"+strconv.Itoa(i)), a, cfg)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if err := p.wait(20 * time.Second); err != nil {
			return nil, err
		}
		if err := b.expect(putReq("http://"+p.addr+path, body))(200, `"provider":"`+fleetProvider+`"`, `"changed":false`); err != nil {
			return nil, fmt.Errorf("fleet, gateway process on %s: %v", p.addr, err)
		}
	}
	f.one = mk("fleet_1_instance", "1 instance", site[0], b.o.workers)
	var next atomic.Uint64
	urls := make([]string, len(site))
	for i, a := range site {
		urls[i] = "http://" + a + path
	}
	f.three = &row{key: "fleet_3_instances", label: fmt.Sprintf("%d instances, round robin", fleetInstances),
		workers: b.o.workers, want: 200, stubs: []*stub{b.main}, expectCalls: 1,
		build: func(int, int) (*http.Request, error) {
			return putReq(urls[(next.Add(1)-1)%uint64(len(urls))], body)
		}}
	cmds, answers, err = b.runGroupCounted([]*row{f.one, f.three}, cli)
	if err != nil {
		for _, p := range procs {
			if p.exited() {
				err = fmt.Errorf("%v; gateway process on %s exited: %s", err, p.addr, p.log())
			}
		}
		return nil, err
	}
	f.oneCmds, f.threeCmds = cmds[0], cmds[1]
	f.oneN, f.threeN = answers[0], answers[1]
	b.c.http.CloseIdleConnections()
	return f, nil
}

// runGroupCounted is runGroup, counting the commands Redis processed during each row's
// measured rounds and the answers of those rounds. Redis also runs every connected
// instance's background commands (a ping a second, the holds read twice a second): a few a
// second, spread over the rows.
func (b *bench) runGroupCounted(rows []*row, cli *redis.Client) (cmds []int64, answers []int, err error) {
	if b.o.warmup > 0 {
		for _, r := range rows {
			if err := b.check(r, b.c.run(r, b.o.warmup)); err != nil {
				return nil, nil, err
			}
		}
	}
	cmds, answers = make([]int64, len(rows)), make([]int, len(rows))
	for i := 0; i < b.o.rounds; i++ {
		for j := range rows {
			k := (i + j) % len(rows)
			r := rows[k]
			before, err := redisCommands(cli)
			if err != nil {
				return nil, nil, err
			}
			res := b.c.run(r, b.o.round)
			after, err := redisCommands(cli)
			if err != nil {
				return nil, nil, err
			}
			if err := b.check(r, res); err != nil {
				return nil, nil, err
			}
			r.rounds = append(r.rounds, res)
			cmds[k] += after - before - 1 // not the INFO itself
			answers[k] += res.n
		}
	}
	return cmds, answers, nil
}

// redisCommands is Redis's total_commands_processed.
func redisCommands(cli *redis.Client) (int64, error) {
	info, err := cli.Info(context.Background(), "stats").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO stats: %v", err)
	}
	v, err := strconv.ParseInt(infoField(info, "total_commands_processed"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis INFO stats: total_commands_processed: %v", err)
	}
	return v, nil
}

// infoField reads "name:value" of an INFO answer.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// redisServer is a redis-server on a free loopback port, without persistence (as
// module/sharedstate/redistest runs it for the tests).
type redisServer struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	out  bytes.Buffer
}

func startRedis(bin, dir string) (*redisServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	a, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(a[0])
	s := &redisServer{addr: a[0], done: make(chan struct{})}
	s.cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "no")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server exited before it listened on %s: %s", s.addr, bytes.TrimSpace(s.out.Bytes()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server never listened on %s", s.addr)
		}
	}
}

func (s *redisServer) stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// buildGateway builds the gateway the fleet tests run (tests/gateway/cmd/credgate: Caddy
// with credgate, from this repository's go.mod) into out.
func buildGateway(out string) (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", errors.New("fleet: run loadbench from the repository (no go.mod here)")
	}
	cmd := exec.Command("go", "build", "-o", out, "./tests/gateway/cmd/credgate")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./tests/gateway/cmd/credgate: %v\n%s", err, b)
	}
	return out, nil
}

// gatewayProc is a gateway process running a JSON config (admin off, logs at ERROR).
type gatewayProc struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
	once sync.Once
}

func (p *gatewayProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *gatewayProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.TrimSpace(p.out.String())
}

func (p *gatewayProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func startGateway(bin, dir, addr string, cfg []byte) (*gatewayProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return nil, err
	}
	p := &gatewayProc{addr: addr, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "--config", path)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the gateway: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// wait waits until the process listens.
func (p *gatewayProc) wait(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("the gateway process for %s exited: %s", p.addr, p.log())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the gateway process never listened on %s: %s", p.addr, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop stops the process gracefully (SIGINT), and kills it after 10 seconds.
func (p *gatewayProc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// perReq is n / answers (NaN without answers).
func perReq(n int64, answers int) float64 {
	if answers == 0 {
		return math.NaN()
	}
	return float64(n) / float64(answers)
}

// printFleet prints section 8: the rows, then the figures.
func (r *report) printFleet(w io.Writer) {
	f := r.fleet
	sharedB, localB := r.micro.find("BenchmarkCachedRequestSharedState"), r.micro.find("BenchmarkCachedRequest")
	if f == nil && sharedB == nil {
		return
	}
	fmt.Fprintln(w, "\n8. Fleet (issue 14): shared state on a local redis-server, and three gateway processes against one")
	if f != nil && f.skipped != "" {
		fmt.Fprintf(w, "  skipped: %s\n", f.skipped)
	}
	if f != nil && f.skipped == "" {
		fmt.Fprintf(w, "  redis          %s %s on 127.0.0.1 (no persistence), started for this section\n", f.redisBin, f.redisVersion)
		r.head(w, fmt.Sprintf("  a. shared state's cost: PUT of a cached ID (status unchanged: one upstream GET), %d worker(s), in this process", r.opts.latencyWorkers))
		r.line(w, f.local)
		r.line(w, f.shared)
		fmt.Fprintf(w, "  Redis commands per request: local %.2f, shared %.2f (the shared breaker's state: one GET; plus every instance's pings and holds reads, a few a second)\n",
			perReq(f.localCmds, f.localN), perReq(f.sharedCmds, f.sharedN))
		fmt.Fprintf(w, "  shared state p50 - local p50: %.1f us (shared_state_overhead_p50_us)\n", f.shared.medP50()-f.local.medP50())
		r.head(w, fmt.Sprintf("  b. %d gateway processes against 1, PUT of a cached ID, %d workers: the client sends each request to the next instance (no load balancer)", fleetInstances, r.opts.workers))
		r.line(w, f.one)
		r.line(w, f.three)
		fmt.Fprintf(w, "  Redis commands per request: 1 instance %.2f, %d instances %.2f\n", perReq(f.oneCmds, f.oneN), fleetInstances, perReq(f.threeCmds, f.threeN))
		fmt.Fprintf(w, "  %d instances / 1 instance throughput: %.3f (fleet_throughput_3_over_1)\n", fleetInstances, f.three.medRPS()/f.one.medRPS())
		fmt.Fprintf(w, "  every gateway process (built in %.1f s from tests/gateway/cmd/credgate, GOMAXPROCS default), Redis, the stub and this\n", f.buildTime.Seconds())
		fmt.Fprintf(w, "  client share this machine's %d cores: with fewer cores than processes the ratio measures contention for them, not\n", runtime.NumCPU())
		fmt.Fprintln(w, "  what instances on cores of their own would serve (at most 3 times one)")
	}
	if sharedB != nil && localB != nil {
		s, _ := sharedB.value("allocs/op")
		l, _ := localB.value("allocs/op")
		sns, _ := sharedB.value("ns/op")
		lns, _ := localB.value("ns/op")
		fmt.Fprintf(w, "  allocations per cached PUT (micro benchmarks): shared state %.0f, local %.0f (+%.0f); %.1f us/op against %.1f us/op\n", s, l, s-l, sns/1000, lns/1000)
	} else if r.micro != nil {
		fmt.Fprintln(w, "  allocations: BenchmarkCachedRequestSharedState not in the micro benchmarks (skipped: no redis-server?)")
	}
	if f != nil && f.skipped == "" {
		for _, x := range []struct {
			label    string
			n        int64
			answers  int
			min, max float64
		}{
			{f.local.label, f.localCmds, f.localN, 0, 0.1},
			{f.shared.label, f.sharedCmds, f.sharedN, 0.9, 2},
			{f.one.label, f.oneCmds, f.oneN, 0.9, 2},
			{f.three.label, f.threeCmds, f.threeN, 0.9, 2},
		} {
			if v := perReq(x.n, x.answers); !(v >= x.min && v <= x.max) {
				r.problems = append(r.problems, fmt.Sprintf("fleet, %s: %.3f Redis commands per request, expected %.1f to %.1f", x.label, v, x.min, x.max))
			}
		}
	}
}

// addFleet adds section 8's name=value lines.
func (r *report) addFleet() {
	if s, l := r.micro.find("BenchmarkCachedRequestSharedState"), r.micro.find("BenchmarkCachedRequest"); s != nil && l != nil {
		sv, _ := s.value("allocs/op")
		lv, _ := l.value("allocs/op")
		r.add("shared_state_allocs_per_put", sv)
		r.add("local_allocs_per_put", lv)
		r.add("shared_state_allocs_overhead_per_put", sv-lv)
	}
	f := r.fleet
	if f == nil || f.skipped != "" {
		return
	}
	r.add("local_cached_put_p50_us", f.local.medP50())
	r.add("shared_state_cached_put_p50_us", f.shared.medP50())
	r.add("shared_state_overhead_p50_us", f.shared.medP50()-f.local.medP50())
	r.add("local_cached_put_p99_us", f.local.medP99())
	r.add("shared_state_cached_put_p99_us", f.shared.medP99())
	r.add("shared_state_redis_commands_per_put", math.Round(perReq(f.sharedCmds, f.sharedN)*1000)/1000)
	r.add("fleet_1_instance_rps", f.one.medRPS())
	r.add("fleet_3_instances_rps", f.three.medRPS())
	r.add("fleet_throughput_3_over_1", f.three.medRPS()/f.one.medRPS())
	r.add("fleet_cores", float64(runtime.NumCPU()))
}
