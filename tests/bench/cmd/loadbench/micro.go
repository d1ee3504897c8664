package main

import (
	"bufio"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// microBench is one benchmark of a `go test -bench` output: every "value unit" pair of its
// lines (the median when it ran several times, as with -count N).
type microBench struct {
	pkg   string // import path, from the "pkg:" line before it
	name  string // without the -GOMAXPROCS suffix
	iters int    // of its last run
	runs  int
	units []string             // in the order of its line
	vals  map[string][]float64 // unit -> one value per run
	key   string               // its name in name=value lines: bench_<key>_<unit>
}

func (b *microBench) value(unit string) (float64, bool) {
	v := b.vals[unit]
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// microInfo is what the report takes from the file besides the benchmarks.
type microInfo struct {
	cpu     string
	benches []*microBench
}

// readMicro reads the benchmark lines of a `go test -bench` output:
//
//	BenchmarkCachedRequest-2   	  50000	     21000 ns/op	    2100 B/op	      28 allocs/op
//
// Anything else (PASS, ok, logs, goos/goarch) is skipped; "pkg:" and "cpu:" lines are noted.
func readMicro(file string) (*microInfo, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info := &microInfo{}
	byID := make(map[string]*microBench)
	pkg := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if p, ok := strings.CutPrefix(line, "pkg:"); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if c, ok := strings.CutPrefix(line, "cpu:"); ok && info.cpu == "" {
			info.cpu = strings.TrimSpace(c)
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || len(fields)%2 != 0 {
			continue
		}
		iters, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		vals := make(map[string]float64)
		var units []string
		ok := true
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				ok = false
				break
			}
			units = append(units, fields[i+1])
			vals[fields[i+1]] = v
		}
		if !ok {
			continue
		}
		name := stripProcs(fields[0])
		id := pkg + " " + name
		b := byID[id]
		if b == nil {
			b = &microBench{pkg: pkg, name: name, vals: make(map[string][]float64)}
			byID[id] = b
			info.benches = append(info.benches, b)
		}
		b.iters = iters
		b.runs++
		for _, u := range units {
			if _, seen := b.vals[u]; !seen {
				b.units = append(b.units, u)
			}
			b.vals[u] = append(b.vals[u], vals[u])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// A name found in several packages is qualified with its package's last element.
	count := make(map[string]int)
	for _, b := range info.benches {
		count[b.name]++
	}
	for _, b := range info.benches {
		k := strings.TrimPrefix(b.name, "Benchmark")
		if count[b.name] > 1 {
			k = path.Base(b.pkg) + "_" + k
		}
		b.key = sanitize(k)
	}
	return info, nil
}

// find returns the first benchmark of that name (any package).
func (m *microInfo) find(name string) *microBench {
	if m == nil {
		return nil
	}
	for _, b := range m.benches {
		if b.name == name {
			return b
		}
	}
	return nil
}

// stripProcs drops the -GOMAXPROCS suffix of a benchmark name: BenchmarkX/sub-2 -> BenchmarkX/sub.
func stripProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return name
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name
		}
	}
	return name[:i]
}

// sanitize keeps letters, digits and _, and turns anything else into _.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
