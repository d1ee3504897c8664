package provider

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// OptionNames are the options of a provider block that every adapter takes
// ([Options.ParseProviderBlock]); an adapter's unknown-option error lists them beside its own.
var OptionNames = []string{
	"base_url", "id_pattern", "timeout", "retries", "max_response", "max_connections",
	"max_concurrent", "tls_ca_file", "breaker", "reads", "rate", "burst", "max_retry_after",
}

// BreakerOptionNames are the options of a provider's breaker block.
var BreakerOptionNames = []string{"failures", "open_for", "half_open_requests"}

// UnknownOption is the error an adapter's Caddyfile unmarshaler returns for an option it does
// not know, with the dispenser on the option's name. own are the adapter's own options; the
// message lists them with [OptionNames] and suggests the nearest:
//
//	digicert: unknown option "apikey"; did you mean "api_key"? (digicert takes: api_key, base_url, ...)
func UnknownOption(d *caddyfile.Dispenser, vendor string, own []string) error {
	known := append(slices.Clone(own), OptionNames...)
	return d.Errf("%s: unknown option %q%s", vendor, d.Val(), DidYouMean(d.Val(), known, vendor+" takes"))
}

// DidYouMean is the tail of an "unknown <thing> %q" message: the nearest of known by edit
// distance, when one is near enough, then the list of known, after label ("options", "adapters").
// It starts with "; " or " (", so it goes right after the quoted unknown word.
func DidYouMean(word string, known []string, label string) string {
	list := slices.Clone(known)
	slices.Sort(list)
	list = slices.Compact(list)
	tail := fmt.Sprintf(" (%s: %s)", label, strings.Join(list, ", "))
	if len(list) == 0 {
		tail = ""
	}
	if near := Nearest(word, list); near != "" {
		return fmt.Sprintf("; did you mean %q?%s", near, tail)
	}
	return tail
}

// Nearest returns the candidate nearest to word by edit distance (insertions, deletions,
// substitutions and swaps of two neighbours, case ignored), or "" when none is near enough to
// be a typing slip: at most 1 edit for a word of up to 4 letters, 2 up to 8, then a third of
// its length. A tie goes to the first candidate.
func Nearest(word string, candidates []string) string {
	w := strings.ToLower(word)
	best, bestDist := "", -1
	for _, c := range candidates {
		dist := editDistance(w, strings.ToLower(c))
		if dist == 0 {
			return c
		}
		limit := len(c) / 3
		switch {
		case len(c) <= 4:
			limit = 1
		case len(c) <= 8:
			limit = 2
		}
		if dist <= limit && (bestDist < 0 || dist < bestDist) {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b (bytes).
func editDistance(a, b string) int {
	// Three rows: two before the current one, for the swap of neighbours.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// placeholder finds the placeholders of a secret option's value.
var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

// secretProblem says what is wrong with the placeholders of a secret's value, when
// [caddy.Replacer] could not replace them: which variable is unset or empty, which file cannot
// be read or is empty. It names variables and files, never a value; a placeholder of any other
// kind is not echoed, as it could be a piece of a secret written in full.
func secretProblem(repl *caddy.Replacer, value string) string {
	var problems []string
	unknown := false
	for _, m := range placeholder.FindAllStringSubmatch(value, -1) {
		key := m[1]
		if _, err := repl.ReplaceOrErr(m[0], true, true); err == nil {
			continue
		}
		switch {
		case strings.HasPrefix(key, "env."):
			name := strings.TrimPrefix(key, "env.")
			if _, ok := os.LookupEnv(name); ok {
				problems = append(problems, name+" is empty")
			} else {
				problems = append(problems, name+" is not set")
			}
		case strings.HasPrefix(key, "file."):
			path := strings.TrimPrefix(key, "file.")
			if _, err := os.Stat(path); err != nil {
				problems = append(problems, fmt.Sprintf("file %s cannot be read (%v)", path, pathErrReason(err)))
			} else {
				problems = append(problems, fmt.Sprintf("file %s is empty or cannot be read", path))
			}
		default:
			unknown = true
		}
	}
	if unknown || len(problems) == 0 {
		problems = append(problems, "holds an unknown placeholder (use {env.NAME} or {file./path})")
	}
	return strings.Join(problems, ", ")
}

// pathErrReason is the reason of an *os.PathError without the path, which the message already
// names.
func pathErrReason(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
