// Command build builds the Caddy binary that the build manifest describes, with xcaddy's
// library: the manifest (xcaddy.json at the repository root) is decoded straight into
// xcaddy.Builder, so it takes xcaddy's own fields:
//
//	{
//		"caddy_version": "v2.11.9",
//		"plugins":      [{"module_path": "github.com/credgate/credgate", "version": "v0.0.0-00010101000000-000000000000"}],
//		"replacements": [{"old": "github.com/credgate/credgate", "new": "."}]
//	}
//
// A replacement whose "new" is a local path (".", "./x", "../x" or absolute) is taken relative
// to the manifest's directory. Usage, from tools/ (or with go -C tools):
//
//	go run ./build [-manifest ../xcaddy.json] [-output ../bin/credgate]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/caddyserver/xcaddy"
)

const manifestName = "xcaddy.json"

func main() {
	log.SetFlags(0)
	manifest := flag.String("manifest", "", "the build manifest (default: the nearest "+manifestName+" in the current directory or above, the repository root's)")
	output := flag.String("output", "", "the binary to write (default: bin/credgate beside the manifest)")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("build: unexpected arguments %q", flag.Args())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *manifest, *output); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		stop()
		log.Fatalf("build: %v", err)
	}
}

func run(ctx context.Context, manifest, output string) error {
	var err error
	if manifest == "" {
		if manifest, err = findManifest(); err != nil {
			return err
		}
	}
	if manifest, err = filepath.Abs(manifest); err != nil {
		return err
	}
	b, err := load(manifest)
	if err != nil {
		return fmt.Errorf("%s: %w", manifest, err)
	}
	if output == "" {
		output = filepath.Join(filepath.Dir(manifest), "bin", "credgate")
	}
	if output, err = filepath.Abs(output); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(output), 0o755); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return b.Build(ctx, output)
}

// load decodes the manifest into xcaddy's Builder, rejecting unknown fields, and makes its
// local replacement paths absolute.
func load(manifest string) (*xcaddy.Builder, error) {
	data, err := os.ReadFile(manifest)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b xcaddy.Builder
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding: data after the manifest's JSON object")
	}
	dir := filepath.Dir(manifest)
	for i, r := range b.Replacements {
		if r.Old == "" || r.New == "" {
			return nil, fmt.Errorf("replacements[%d]: both old and new are required", i)
		}
		n := string(r.New)
		if !isLocalPath(n) {
			continue // a module path and version
		}
		if !filepath.IsAbs(n) {
			n = filepath.Join(dir, n)
		}
		if _, err := os.Stat(filepath.Join(n, "go.mod")); err != nil {
			return nil, fmt.Errorf("replacements[%d]: %s => %s: not a Go module directory: %w", i, r.Old, n, err)
		}
		b.Replacements[i].New = xcaddy.ReplacementPath(n)
	}
	for i, p := range b.Plugins {
		if p.PackagePath == "" {
			return nil, fmt.Errorf("plugins[%d]: module_path is required", i)
		}
	}
	return &b, nil
}

// isLocalPath reports whether a replacement's new side is a directory, by go.mod's rule.
func isLocalPath(p string) bool {
	return p == "." || p == ".." || strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../") || filepath.IsAbs(p)
}

// findManifest returns the nearest xcaddy.json in the current directory or above.
func findManifest() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, manifestName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s in the current directory or above; give -manifest", manifestName)
		}
		dir = parent
	}
}
