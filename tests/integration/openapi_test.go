package integration

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/credentialstatus"
	"github.com/credgate/credgate/module/provider/providertest"
)

// openapi.yaml is checked in three ways, so that clients can trust what they generate from
// it: it is an OpenAPI 3.1 document by the OpenAPI Initiative's own schema documents, whose
// schemas are valid JSON Schema 2020-12 (TestOpenAPIDocument); its problem types are exactly
// those of the handler's table, credentialstatus.ProblemTypes (TestOpenAPIProblemTypes); and
// every answer it documents is one that the live gateway gives, and every answer the live
// gateway gives is one it documents (TestOpenAPILiveAnswers, and for the request bodies
// TestOpenAPIRequestBody and TestOpenAPIBatchRequestBody).
const (
	openapiFile   = "../../openapi.yaml"
	statusPath    = "/credentials/{id}/status"
	batchEndpoint = "/credentials/status"
	problemURN    = credentialstatus.ProblemTypePrefix
	specResource  = "https://credgate.invalid/openapi.json"
	ndjson        = "application/x-ndjson"
)

// The official OpenAPI 3.1 schema documents, version 2022-10-07, as the OpenAPI Initiative
// publishes them (testdata/oas-3.1/README.md says from where): oasSchemaID describes an
// OpenAPI 3.1 document, oasSchemaBaseID the same with every Schema Object held to the
// default dialect of OpenAPI 3.1 (JSON Schema 2020-12 and the OpenAPI vocabulary), which is
// openapi.yaml's: it names no jsonSchemaDialect.
const (
	oasSchemaID     = "https://spec.openapis.org/oas/3.1/schema/2022-10-07"
	oasSchemaBaseID = "https://spec.openapis.org/oas/3.1/schema-base/2022-10-07"
)

//go:embed testdata/oas-3.1/*.json
var oasFiles embed.FS

// offline is the loader of the compiler of the official documents: every document they
// reference is committed (testdata/oas-3.1) or one of the JSON Schema meta-schemas that
// jsonschema embeds, so none is loaded from anywhere else, the network least of all.
type offline struct{}

func (offline) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s is neither in testdata/oas-3.1 nor a JSON Schema meta-schema; the test loads nothing over the network", url)
}

// oasValidator validates a document against the official OpenAPI 3.1 schema documents.
type oasValidator struct {
	structure *jsonschema.Schema // oasSchemaID
	dialect   *jsonschema.Schema // oasSchemaBaseID
}

// loadOAS compiles the official documents, each registered under its $id.
func loadOAS(t *testing.T) *oasValidator {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.UseLoader(offline{})
	c.AssertFormat()
	files, err := fs.Glob(oasFiles, "testdata/oas-3.1/*.json")
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, f := range files {
		data, err := oasFiles.ReadFile(f)
		require.NoError(t, err)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		require.NoError(t, err, f)
		obj, _ := doc.(map[string]any)
		id, _ := obj["$id"].(string)
		require.NotEmpty(t, id, "%s has no $id", f)
		require.NoError(t, c.AddResource(id, doc), f)
		ids[id] = true
	}
	require.True(t, ids[oasSchemaID] && ids[oasSchemaBaseID], "testdata/oas-3.1 holds %v", ids)
	v := &oasValidator{}
	v.structure, err = c.Compile(oasSchemaID)
	require.NoError(t, err)
	v.dialect, err = c.Compile(oasSchemaBaseID)
	require.NoError(t, err)
	return v
}

// validate returns the errors of doc against both official documents, nil when it is valid.
func (v *oasValidator) validate(doc any) error {
	var errs []error
	if err := v.structure.Validate(doc); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", oasSchemaID, err))
	}
	if err := v.dialect.Validate(doc); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", oasSchemaBaseID, err))
	}
	return errors.Join(errs...)
}

// cloneJSON deep-copies a JSON value, for a test to break a copy of the document.
func cloneJSON(v any) any {
	switch c := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(c))
		for k, e := range c {
			m[k] = cloneJSON(e)
		}
		return m
	case []any:
		l := make([]any, len(c))
		for i, e := range c {
			l[i] = cloneJSON(e)
		}
		return l
	default:
		return v
	}
}

// apiSpec is openapi.yaml, loaded as JSON values, with its schemas compiled on demand.
type apiSpec struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema // by JSON pointer
}

// decodeYAML decodes YAML into the JSON values that jsonschema validates (json.Number for
// numbers). A mapping with a key that is not a string, such as an unquoted response code,
// fails: JSON has no such thing.
func decodeYAML(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not JSON-compatible (quote numeric keys such as response codes): %v", err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(js))
}

// loadSpec loads openapi.yaml.
func loadSpec(t *testing.T) *apiSpec {
	t.Helper()
	data, err := os.ReadFile(openapiFile)
	require.NoError(t, err)
	v, err := decodeYAML(data)
	require.NoError(t, err, "openapi.yaml")
	doc, ok := v.(map[string]any)
	require.True(t, ok, "openapi.yaml is not a mapping")
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1's dialect is JSON Schema 2020-12
	c.AssertFormat()
	require.NoError(t, c.AddResource(specResource, doc))
	return &apiSpec{doc: doc, compiler: c, compiled: map[string]*jsonschema.Schema{}}
}

// pointer joins JSON pointer tokens, escaped.
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}

// at returns the value at JSON pointer ptr of the document.
func (s *apiSpec) at(ptr string) (any, bool) {
	var v any = s.doc
	if ptr == "" {
		return v, true
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[tok]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// object returns the object at ptr, following a Reference Object there to its target; the
// pointer it returns is that of the target.
func (s *apiSpec) object(t *testing.T, ptr string) (string, map[string]any) {
	t.Helper()
	for range 10 {
		v, ok := s.at(ptr)
		require.True(t, ok, "openapi.yaml has nothing at #%s", ptr)
		m, ok := v.(map[string]any)
		require.True(t, ok, "openapi.yaml: #%s is not an object", ptr)
		ref, isRef := m["$ref"].(string)
		if !isRef {
			return ptr, m
		}
		require.True(t, strings.HasPrefix(ref, "#/"), "openapi.yaml: #%s: only local references: %s", ptr, ref)
		ptr = ref[1:]
	}
	t.Fatalf("openapi.yaml: a cycle of references at #%s", ptr)
	return "", nil
}

// schema compiles the Schema Object at ptr. Compiling checks it against the JSON Schema
// 2020-12 meta-schema, and resolves its references.
func (s *apiSpec) schema(t *testing.T, ptr string) *jsonschema.Schema {
	t.Helper()
	if sch, ok := s.compiled[ptr]; ok {
		return sch
	}
	var frag strings.Builder
	for _, tok := range strings.Split(ptr, "/")[1:] {
		frag.WriteByte('/')
		frag.WriteString(url.PathEscape(tok))
	}
	sch, err := s.compiler.Compile(specResource + "#" + frag.String())
	require.NoError(t, err, "openapi.yaml: the schema at #%s", ptr)
	s.compiled[ptr] = sch
	return sch
}

// paths returns the document's paths.
func (s *apiSpec) paths(t *testing.T) []string {
	t.Helper()
	_, paths := s.object(t, pointer("paths"))
	var out []string
	for p := range paths {
		if !strings.HasPrefix(p, "x-") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// specPath returns the document's path that a request path (with its query) is one of.
func specPath(reqPath string) string {
	if p, _, _ := strings.Cut(reqPath, "?"); p == batchEndpoint {
		return batchEndpoint
	}
	return statusPath
}

// operations returns the methods of a path of the document, lower-case, with their pointers.
func (s *apiSpec) operations(t *testing.T, path string) map[string]string {
	t.Helper()
	base := pointer("paths", path)
	_, item := s.object(t, base)
	ops := map[string]string{}
	for _, m := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
		if _, ok := item[m]; ok {
			ops[m] = base + pointer(m)
		}
	}
	return ops
}

// responsesOf returns the responses documented for a method of a path, by status: an
// operation's, or for any method without an operation, those of the path's x-other-methods.
func (s *apiSpec) responsesOf(t *testing.T, path, method string) (string, map[string]any) {
	t.Helper()
	if op, ok := s.operations(t, path)[strings.ToLower(method)]; ok {
		return s.object(t, op+pointer("responses"))
	}
	return s.object(t, pointer("paths", path, "x-other-methods", "responses"))
}

// documentedAnswers lists every answer the document has, as answerKey gives them: each
// path's operations' statuses, with each problem type a problem status can carry and each
// media type another status can come in. Methods without an operation are "*".
func (s *apiSpec) documentedAnswers(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, path := range s.paths(t) {
		methods := []string{"*"}
		for m := range s.operations(t, path) {
			methods = append(methods, strings.ToUpper(m))
		}
		for _, m := range methods {
			respPtr, responses := s.responsesOf(t, path, m)
			for code := range responses {
				if strings.HasPrefix(code, "x-") {
					continue
				}
				status, err := strconv.Atoi(code)
				require.NoError(t, err, "openapi.yaml: response %q of %s %s: give every status, not a range", code, m, path)
				_, resp := s.object(t, respPtr+pointer(code))
				content, _ := resp["content"].(map[string]any)
				if len(content) == 0 {
					out[answerKey(m, path, status, "")] = true
				}
				for mt := range content {
					if mt != "application/problem+json" {
						out[answerKey(m, path, status, mt)] = true
					}
				}
				for _, typ := range s.problemTypesOf(t, respPtr+pointer(code)) {
					out[answerKey(m, path, status, typ)] = true
				}
			}
		}
	}
	return out
}

// problemTypesOf returns the problem types that the response at ptr can carry: the type
// constants of the *Problem schemas its application/problem+json schema names.
func (s *apiSpec) problemTypesOf(t *testing.T, ptr string) []string {
	t.Helper()
	ptr, resp := s.object(t, ptr)
	content, _ := resp["content"].(map[string]any)
	if _, ok := content["application/problem+json"]; !ok {
		return nil
	}
	schPtr, sch := s.object(t, ptr+pointer("content", "application/problem+json", "schema"))
	var alts []string
	if oneOf, ok := sch["oneOf"].([]any); ok {
		for i := range oneOf {
			alts = append(alts, schPtr+pointer("oneOf", strconv.Itoa(i)))
		}
	} else {
		alts = []string{schPtr}
	}
	var types []string
	for _, alt := range alts {
		typ, _, _ := s.problemSchema(t, alt)
		types = append(types, typ)
	}
	return types
}

// problemSchema reads a *Problem schema (allOf: Problem, then the type's constants) and
// returns its type, title and status.
func (s *apiSpec) problemSchema(t *testing.T, ptr string) (typ, title string, status int) {
	t.Helper()
	ptr, sch := s.object(t, ptr)
	allOf, ok := sch["allOf"].([]any)
	require.True(t, ok && len(allOf) == 2, "openapi.yaml: #%s is not allOf [Problem, constants]", ptr)
	require.Equal(t, "#/components/schemas/Problem", allOf[0].(map[string]any)["$ref"], "openapi.yaml: #%s", ptr)
	props, _ := allOf[1].(map[string]any)["properties"].(map[string]any)
	constant := func(name string) any {
		p, _ := props[name].(map[string]any)
		require.Contains(t, p, "const", "openapi.yaml: #%s gives no const %s", ptr, name)
		return p["const"]
	}
	typ, _ = constant("type").(string)
	title, _ = constant("title").(string)
	n, _ := constant("status").(json.Number)
	st, err := n.Int64()
	require.NoError(t, err, "openapi.yaml: #%s: status", ptr)
	return typ, title, int(st)
}

// answerKey names an answer for the coverage of the document: method, path, status, and
// what the answer is: its problem type, or the media type of another body ("" for none).
func answerKey(method, path string, status int, what string) string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %d %s", method, path, status, what))
}

// specHeaders are the headers that the document must mention whenever an answer has them.
var specHeaders = []string{"Allow", "Cache-Control", "Idempotent-Replayed", "Retry-After", "WWW-Authenticate"}

// checkAnswer validates an answer of the gateway to method on reqPath against the document:
// its status is documented, its documented headers are there when required and valid when
// there, it has no header of specHeaders that its response does not document, its content
// type is documented and its body valid (an NDJSON body line by line). It returns the
// answer's key.
func (s *apiSpec) checkAnswer(t *testing.T, method, reqPath string, a answer) string {
	t.Helper()
	path := specPath(reqPath)
	respsPtr, responses := s.responsesOf(t, path, method)
	code := strconv.Itoa(a.status)
	_, documented := responses[code]
	require.True(t, documented, "%s %s %d is not documented: %s", method, path, a.status, a.raw)
	ptr, resp := s.object(t, respsPtr+pointer(code))

	headers, _ := resp["headers"].(map[string]any)
	for name := range headers {
		hPtr, h := s.object(t, ptr+pointer("headers", name))
		vals := a.header.Values(name)
		if len(vals) == 0 {
			assert.NotEqual(t, true, h["required"], "%s %d: the required header %s is missing", method, a.status, name)
			continue
		}
		require.Len(t, vals, 1, "%s %d: header %s sent more than once", method, a.status, name)
		sch := s.schema(t, hPtr+pointer("schema"))
		var v any = vals[0]
		if hs, _ := h["schema"].(map[string]any); hs["type"] == "integer" {
			n, err := strconv.ParseInt(vals[0], 10, 64)
			if !assert.NoError(t, err, "%s %d: header %s: %q is not an integer", method, a.status, name, vals[0]) {
				continue
			}
			v = json.Number(strconv.FormatInt(n, 10))
		}
		assert.NoError(t, sch.Validate(v), "%s %d: header %s: %q", method, a.status, name, vals[0])
	}
	for _, name := range specHeaders {
		if a.header.Get(name) != "" {
			_, documented := headers[name]
			assert.True(t, documented, "%s %d has a %s header that the document does not mention", method, a.status, name)
		}
	}

	keyMethod := method
	if _, ok := s.operations(t, path)[strings.ToLower(method)]; !ok {
		keyMethod = "*"
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		assert.Empty(t, a.raw, "%s %d: a body where the document has none", method, a.status)
		return answerKey(keyMethod, path, a.status, "")
	}
	mt, _, err := mime.ParseMediaType(a.header.Get("Content-Type"))
	require.NoError(t, err, "%s %d: Content-Type %q", method, a.status, a.header.Get("Content-Type"))
	_, documented = content[mt]
	require.True(t, documented, "%s %d: Content-Type %s is not documented", method, a.status, mt)
	what := mt
	if mt == "application/problem+json" {
		what = problemTypeOf(a)
	}
	if method == http.MethodHead {
		return answerKey(keyMethod, path, a.status, what) // no body to check
	}
	sch := s.schema(t, ptr+pointer("content", mt, "schema"))
	if mt == ndjson {
		checkLines(t, sch, a.raw)
		return answerKey(keyMethod, path, a.status, what)
	}
	body, err := jsonschema.UnmarshalJSON(strings.NewReader(a.raw))
	require.NoError(t, err, "%s %d: the body is not JSON: %s", method, a.status, a.raw)
	require.NoError(t, sch.Validate(body), "%s %d: the body does not match the document: %s", method, a.status, a.raw)
	return answerKey(keyMethod, path, a.status, what)
}

// checkLines validates a batch's NDJSON answer: every line is one JSON text that the line
// schema accepts (the document's schema for application/x-ndjson is each line's, OpenAPI 3.1
// having none for a sequence), there is a result line for each item, with each index from 0
// once, and the summary line comes last.
func checkLines(t *testing.T, line *jsonschema.Schema, raw string) {
	t.Helper()
	require.True(t, strings.HasSuffix(raw, "\n"), "every line ends with a newline: %q", raw)
	lines := strings.Split(strings.TrimSuffix(raw, "\n"), "\n")
	indexes := map[int]bool{}
	for i, l := range lines {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(l))
		require.NoError(t, err, "line %d is not one JSON text: %s", i, l)
		require.NoError(t, line.Validate(v), "line %d does not match the document: %s", i, l)
		obj := v.(map[string]any)
		_, isSummary := obj["summary"]
		require.Equal(t, i == len(lines)-1, isSummary, "the summary line, and only it, comes last: line %d: %s", i, l)
		if !isSummary {
			n, err := obj["index"].(json.Number).Int64()
			require.NoError(t, err, l)
			assert.False(t, indexes[int(n)], "index %d twice", n)
			indexes[int(n)] = true
		}
	}
	for i := range len(lines) - 1 {
		assert.True(t, indexes[i], "no line for item %d", i)
	}
}

// problemTypeOf returns the type of a problem answer, "" for any other answer.
func problemTypeOf(a answer) string {
	if a.header.Get("Content-Type") != "application/problem+json" {
		return ""
	}
	typ, _ := a.body["type"].(string)
	return typ
}

// checkBrokenCopies breaks copies of the document doc, one fault each, and checks that the
// official documents reject each copy: the OpenAPI 3.1 schema document rejects the faults of
// the document's structure; the faults inside a Schema Object are rejected by the schema-base
// document alone, which holds Schema Objects to the dialect (the other leaves them to it).
func checkBrokenCopies(t *testing.T, oas *oasValidator, doc map[string]any) {
	require.NoError(t, oas.validate(cloneJSON(doc)), "an unbroken copy")
	obj := func(v any, tokens ...string) map[string]any {
		for _, tok := range tokens {
			v = v.(map[string]any)[tok]
		}
		return v.(map[string]any)
	}
	get := func(d map[string]any) map[string]any { return obj(d, "paths", statusPath, "get") }
	for _, c := range []struct {
		name     string
		inSchema bool // a fault inside a Schema Object
		breakIt  func(d map[string]any)
	}{
		{"an OpenAPI 3.0 document", false, func(d map[string]any) { d["openapi"] = "3.0.3" }},
		{"an info without a version", false, func(d map[string]any) { delete(obj(d, "info"), "version") }},
		{"an operation with no responses in its responses", false, func(d map[string]any) {
			get(d)["responses"] = map[string]any{}
		}},
		{"a misspelt member of an operation", false, func(d map[string]any) {
			get(d)["reponses"] = get(d)["responses"]
			delete(get(d), "responses")
		}},
		{"a response without a description", false, func(d map[string]any) {
			delete(obj(get(d), "responses", "200"), "description")
		}},
		{"a response code that is no status", false, func(d map[string]any) {
			obj(get(d), "responses")["2000"] = obj(get(d), "responses", "200")
		}},
		{"a path parameter that is not required", false, func(d map[string]any) {
			obj(d, "components", "parameters", "CredentialID")["required"] = false
		}},
		{"a parameter with neither schema nor content", false, func(d map[string]any) {
			delete(obj(d, "components", "parameters", "CredentialID"), "schema")
		}},
		{"a Schema Object with a bad type", true, func(d map[string]any) {
			obj(d, "components", "schemas", "Problem")["type"] = "strnig"
		}},
		{"a Schema Object with a negative minLength", true, func(d map[string]any) {
			obj(d, "components", "schemas", "CredentialID")["minLength"] = json.Number("-1")
		}},
		{"a Schema Object with a discriminator without propertyName", true, func(d map[string]any) {
			obj(d, "components", "schemas", "Problem")["discriminator"] = map[string]any{}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			broken := cloneJSON(doc).(map[string]any)
			c.breakIt(broken)
			assert.Error(t, oas.dialect.Validate(any(broken)), oasSchemaBaseID)
			if c.inSchema {
				assert.NoError(t, oas.structure.Validate(any(broken)), "%s leaves Schema Objects to the dialect", oasSchemaID)
			} else {
				assert.Error(t, oas.structure.Validate(any(broken)), oasSchemaID)
			}
		})
	}
}

// TestOpenAPIDocument checks that openapi.yaml is a valid OpenAPI 3.1 document: valid against
// the official OpenAPI 3.1 schema documents (testdata/oas-3.1), every Schema Object in it
// valid JSON Schema 2020-12 with every reference resolved, every local reference resolving,
// operations that document their responses, unique operation IDs, path parameters that match
// the path's template, and every example valid against its schema. Copies of the document
// broken on purpose show that the official documents catch what they should.
func TestOpenAPIDocument(t *testing.T) {
	s := loadSpec(t)

	oas := loadOAS(t)
	require.NoError(t, oas.validate(any(s.doc)), "openapi.yaml is not an OpenAPI 3.1 document")
	t.Run("broken copies fail", func(t *testing.T) { checkBrokenCopies(t, oas, s.doc) })

	// Every $ref resolves; every Schema Object compiles (which checks it against the
	// 2020-12 meta-schema); every example matches its schema.
	// Example values are data, not part of the document: they are not walked.
	var walk func(ptr string, v any, inSchema bool)
	schemaPtrs := map[string]bool{}
	walk = func(ptr string, v any, inSchema bool) {
		switch c := v.(type) {
		case map[string]any:
			if ref, ok := c["$ref"].(string); ok {
				require.True(t, strings.HasPrefix(ref, "#/"), "#%s: only local references: %s", ptr, ref)
				_, ok := s.at(ref[1:])
				assert.True(t, ok, "#%s: $ref %s resolves to nothing", ptr, ref)
			}
			for k, e := range c {
				child := ptr + pointer(k)
				if !inSchema && (k == "value" || k == "example") {
					continue
				}
				isSchema := !inSchema && (k == "schema" || ptr == pointer("components", "schemas"))
				if isSchema {
					schemaPtrs[child] = true
				}
				walk(child, e, inSchema || isSchema)
			}
		case []any:
			for i, e := range c {
				walk(ptr+pointer(strconv.Itoa(i)), e, inSchema)
			}
		}
	}
	walk("", s.doc, false)
	require.NotEmpty(t, schemaPtrs)
	for ptr := range schemaPtrs {
		s.schema(t, ptr)
	}

	ids := map[string]string{}
	for _, path := range s.paths(t) {
		for m, op := range s.operations(t, path) {
			_, o := s.object(t, op)
			// OpenAPI 3.1 lets an operation leave its responses out; this API documents them all.
			require.Contains(t, o, "responses", "%s %s documents no responses", m, path)
			id, _ := o["operationId"].(string)
			require.NotEmpty(t, id, "%s %s has no operationId", m, path)
			require.NotContains(t, ids, id, "operationId %s is not unique", id)
			ids[id] = strings.ToUpper(m) + " " + path

			// The path's template parameters are exactly its path parameters.
			declared := map[string]bool{}
			for _, base := range []string{pointer("paths", path), op} {
				_, holder := s.object(t, base)
				params, _ := holder["parameters"].([]any)
				for i := range params {
					_, p := s.object(t, base+pointer("parameters", strconv.Itoa(i)))
					if p["in"] == "path" {
						declared[p["name"].(string)] = true
					}
				}
			}
			templ := map[string]bool{}
			for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
				templ[m[1]] = true
			}
			assert.Equal(t, templ, declared, "%s: the path parameters are not those of %s", m, path)
		}
	}
	assert.Equal(t, map[string]string{
		"getCredentialStatus":      "GET " + statusPath,
		"setCredentialStatus":      "PUT " + statusPath,
		"changeCredentialStatuses": "POST " + batchEndpoint,
	}, ids)

	examples := 0
	var checkExamples func(ptr string, v any)
	checkExamples = func(ptr string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			if l, ok := v.([]any); ok {
				for i, e := range l {
					checkExamples(ptr+pointer(strconv.Itoa(i)), e)
				}
			}
			return
		}
		if ex, ok := m["examples"].(map[string]any); ok && m["schema"] != nil {
			sch := s.schema(t, ptr+pointer("schema"))
			for name := range ex {
				_, e := s.object(t, ptr+pointer("examples", name))
				assert.NoError(t, sch.Validate(e["value"]), "the example #%s/examples/%s", ptr, name)
				examples++
			}
		}
		for k, e := range m {
			if k != "schema" && k != "examples" {
				checkExamples(ptr+pointer(k), e)
			}
		}
	}
	checkExamples("", s.doc)
	assert.Greater(t, examples, 20, "the examples were found")

	// The checks bite: a wrong document or a wrong answer fails them.
	_, err := decodeYAML([]byte("responses:\n  200: {description: unquoted}\n"))
	assert.Error(t, err, "a numeric key is not JSON")
	problem := s.schema(t, pointer("components", "schemas", "ProviderUnavailableProblem"))
	for _, body := range []string{
		`{"type":"urn:credgate:problem:provider-unavailable","title":"Provider unavailable","status":503,"detail":"d"}`,
		`{"type":"urn:credgate:problem:provider-unavailable","title":"Provider unavailable","status":502,"detail":"d","id":"1","provider":"p"}`,
		`{"type":"urn:credgate:problem:provider-unavailable","title":"Provider unavailable","status":503,"detail":"d","id":"1","provider":"p","secret":"s"}`,
	} {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
		require.NoError(t, err)
		assert.Error(t, problem.Validate(v), body)
	}
	// The answers built on open member schemas are closed all the same: a result has no
	// index, a line has one, and neither has a member of another kind of result.
	for name, bodies := range map[string][]string{
		"StatusChange": {
			`{"id":"1","provider":"p","adapter":"a","status":"active","changed":true,"index":0}`,
			`{"id":"1","provider":"p","adapter":"a","status":"active","changed":true,"secret":"s"}`,
		},
		"BatchItemResult": {
			`{"id":"1","provider":"p","adapter":"a","status":"active","changed":true,"would_change":true}`,
			`{"id":"1","error":{"type":"urn:credgate:problem:body-too-large","title":"Request body too large","status":413,"detail":"d"}}`,
		},
		"BatchStreamLine": {
			`{"id":"1","provider":"p","adapter":"a","status":"active","changed":true}`,
			`{"index":0,"id":"1","provider":"p","adapter":"a","status":"active","changed":true,"secret":"s"}`,
			`{"summary":{"changed":1,"unchanged":0,"pending":0,"failed":0},"index":1}`,
		},
	} {
		sch := s.schema(t, pointer("components", "schemas", name))
		for _, body := range bodies {
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
			require.NoError(t, err)
			assert.Error(t, sch.Validate(v), "%s: %s", name, body)
		}
	}
	line := s.schema(t, pointer("components", "schemas", "BatchStreamLine"))
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(`{"index":0,"id":"1","provider":"p","adapter":"a","status":"active","changed":true}`))
	require.NoError(t, err)
	assert.NoError(t, line.Validate(v), "a result line")
}

// problemKind is one problem type: its title and status.
type problemKind struct {
	title  string
	status int
}

// handlerProblems returns the handler's problem table, credentialstatus.ProblemTypes, by
// type URI.
func handlerProblems(t *testing.T) map[string]problemKind {
	t.Helper()
	kinds := map[string]problemKind{}
	for _, p := range credentialstatus.ProblemTypes() {
		require.NotEmpty(t, p.Suffix, "a problem type without a suffix: %+v", p)
		require.False(t, strings.HasPrefix(p.Suffix, credentialstatus.ProblemTypePrefix), "%s: the suffix, without the prefix", p.Suffix)
		require.NotEmpty(t, p.Title, "%s has no title", p.Suffix)
		require.True(t, p.Status >= 400 && p.Status <= 599, "%s: status %d is no error status", p.Suffix, p.Status)
		typ := credentialstatus.ProblemTypePrefix + p.Suffix
		require.NotContains(t, kinds, typ, "the handler's table has %s twice", typ)
		kinds[typ] = problemKind{title: p.Title, status: p.Status}
	}
	require.NotEmpty(t, kinds, "the handler's problem table")
	return kinds
}

// TestOpenAPIProblemTypes compares the handler's problem table with the document:
// the Problem schema's type enum is exactly theirs, each has a *Problem schema with its title
// and status, and each is documented as an answer of its status to some method.
func TestOpenAPIProblemTypes(t *testing.T) {
	s := loadSpec(t)
	kinds := handlerProblems(t)

	_, problem := s.object(t, pointer("components", "schemas", "Problem"))
	var enum []string
	for _, v := range problem["properties"].(map[string]any)["type"].(map[string]any)["enum"].([]any) {
		enum = append(enum, v.(string))
	}
	var handler []string
	for typ := range kinds {
		handler = append(handler, typ)
	}
	assert.ElementsMatch(t, handler, enum, "the Problem schema's types are not the handler's")

	_, schemas := s.object(t, pointer("components", "schemas"))
	specKinds := map[string]problemKind{}
	for name := range schemas {
		if !strings.HasSuffix(name, "Problem") || name == "Problem" {
			continue
		}
		typ, title, status := s.problemSchema(t, pointer("components", "schemas", name))
		require.NotContains(t, specKinds, typ, "two schemas for %s", typ)
		specKinds[typ] = problemKind{title: title, status: status}
	}
	assert.Equal(t, kinds, specKinds, "the *Problem schemas' types, titles and statuses are not the handler's")

	documented := s.documentedAnswers(t)
	for typ, k := range kinds {
		found := false
		for key := range documented {
			f := strings.Fields(key) // method, path, status, type
			if len(f) == 4 && f[3] == typ {
				found = true
				assert.Equal(t, strconv.Itoa(k.status), f[2], "%s is documented with another status than the handler's", typ)
			}
		}
		assert.True(t, found, "the handler's %s is no documented answer", typ)
	}
}

// callHalfClosed sends a request on a connection of its own and closes the connection's
// sending side at once, as a client that gives up does: the gateway sees the client gone, and
// what it answers can still be read.
func callHalfClosed(t *testing.T, method, path, body string) answer {
	t.Helper()
	u, err := url.Parse(gatewayURL)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	req, err := http.NewRequest(method, gatewayURL+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Close = true
	require.NoError(t, req.Write(conn))
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// openapiBlock configures, with the given max_body, a max_batch of 100 and a max_batches of 2,
// a provider of each adapter over the shared simulators:
//   - oa-dc, DigiCert account 1: every numeric ID; a 1s timeout
//   - oa-dc-sub, its subaccount 3: 3xxxx, which oa-dc owns too (ambiguous)
//   - oa-dc-badkey, a partner key DigiCert does not know: 9xxxx
//   - oa-slow, DigiCert account 1 again, with a 10s timeout: a change that DigiCert holds
//     (holdPut) is still running while a test sends another with its Idempotency-Key. It
//     claims 6xxxx, as oa-dc does: requests name it.
//   - oa-flaky, on the second DigiCert: a breaker that opens on the first failure
//   - oa-pal, oa-zs, oa-pf: Palisade's org-eu, ZStack, Prefactor
//   - oa-budget, DigiCert account 1 with a rate of 1 call an hour: 8xxxx. The first call takes
//     the budget's only token; after it, a single request answers 429 rate-limited, and a
//     batch's change (a read, then a write that finds no token) fails as rate-limited.
//   - oa-noreads, DigiCert account 1 with reads off: 7xxxx. Requests name these two, whose IDs
//     oa-dc claims too.
func openapiBlock(maxBody string) string {
	return fmt.Sprintf(`
		max_body %[6]s
		max_batch 100
		max_batches 2
		provider oa-slow digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			id_pattern 6[0-9]{4}
			timeout 10s
			retries 0
		}
		provider oa-dc digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			timeout 1s
			retries 0
			breaker {
				failures 1000
			}
		}
		provider oa-dc-sub digicert {
			base_url %[1]s
			api_key {env.DC_SUB_KEY}
			id_pattern 3[0-9]{4}
			timeout 1s
			retries 0
		}
		provider oa-dc-badkey digicert {
			base_url %[1]s
			api_key {env.DC_BAD_KEY}
			id_pattern 9[0-9]{4}
			retries 0
		}
		provider oa-flaky digicert {
			base_url %[2]s
			api_key {env.DC_FLAKY_KEY}
			id_pattern 5[0-9]{4}
			retries 0
			breaker {
				failures 1
				open_for 1m
			}
		}
		provider oa-pal palisade {
			base_url %[3]s
			client_id {env.PALISADE_CLIENT_ID}
			client_secret {env.PALISADE_CLIENT_SECRET}
			retries 0
		}
		provider oa-zs zstack {
			base_url %[4]s
			token {env.ZSTACK_TOKEN}
			retries 0
		}
		provider oa-pf prefactor {
			base_url %[5]s
			token {env.PREFACTOR_TOKEN}
			timeout 3s
			retries 0
		}
		provider oa-locked digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			id_pattern 4[0-9]{4}
		}
		provider oa-budget digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			id_pattern 8[0-9]{4}
			retries 0
			rate 1/h
		}
		provider oa-noreads digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			id_pattern 7[0-9]{4}
			retries 0
			reads off
		}
		policy {
			allow * * providers oa-[^l]*
		}`, dc.URL, dcFlaky.URL, pal.URL, zs.URL, pf.URL, maxBody)
}

// liveCase is one request to the live gateway and the answer it must give.
type liveCase struct {
	name      string
	method    string
	path      string
	body      string
	header    []string
	halfClose bool               // the client gives up at once (callHalfClosed)
	setup     func(t *testing.T) // the simulators' faults, the requests that come first
	check     func(t *testing.T, a answer)
	after     func(t *testing.T)
	status    int
	problem   string // the problem type's suffix; "" for an answer that is no problem
	replayed  bool   // the answer is the replay of an Idempotency-Key's kept answer
}

// TestOpenAPILiveAnswers drives the live gateway, through Caddy and the simulators, to every
// answer that openapi.yaml documents, checks that each case gives the answer it aims at, and
// validates each against the document. It fails on an answer the document does not have, and
// on a documented answer that no case produced.
func TestOpenAPILiveAnswers(t *testing.T) {
	s := loadSpec(t)
	sims := []*providertest.Server{dc.Server, dcFlaky.Server, zs.Server, pf.Server, pal.Server}
	fresh(sims...)
	dc.AddKey(10001, 1, "build-server", "active")
	pal.AddCredential("org-eu", palApproval, "Payouts", "TRANSACTIONS", "ENABLED", true, true)
	zs.AddCredential(zstacktest.Credential{UUID: zsCred, Name: "prod-db", Type: "CREDENTIAL_TYPE_PASSWORD", ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Value: zsSecret})
	pf.AddAPIToken(pfActive, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "active")
	pf.AddAPIToken(pfRevoked, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "revoked")
	seen := map[string]bool{}
	defer func() {
		fresh(sims...)
		dc.AddKey(10001, 1, "build-server", "active")
	}()

	const dcKey = "/credentials/10001/status"
	fault := func(srv *providertest.Server, f providertest.Fault) func(*testing.T) {
		return func(*testing.T) { srv.SetFault(f) }
	}
	// record validates an answer against the document, and counts it as produced.
	record := func(t *testing.T, method, path string, a answer) {
		t.Helper()
		seen[s.checkAnswer(t, method, path, a)] = true
	}
	run := func(t *testing.T, tester *caddytest.Tester, cases []liveCase) {
		t.Helper()
		for _, c := range cases {
			t.Run(c.method+" "+strconv.Itoa(c.status)+" "+c.name, func(t *testing.T) {
				defer fresh(sims...)
				if c.setup != nil {
					c.setup(t)
				}
				var a answer
				if c.halfClose {
					a = callHalfClosed(t, c.method, c.path, c.body)
				} else {
					a = call(t, tester, c.method, c.path, c.body, c.header...)
				}
				if c.problem != "" {
					requireProblem(t, a, c.status, c.problem)
				} else {
					require.Equal(t, c.status, a.status, a.raw)
				}
				if c.replayed {
					assert.Equal(t, "true", a.header.Get("Idempotent-Replayed"), "a replay")
				} else {
					assert.Empty(t, a.header.Get("Idempotent-Replayed"), "an answer that ran")
				}
				record(t, c.method, c.path, a)
				if c.check != nil {
					c.check(t, a)
				}
				if c.after != nil {
					c.after(t)
				}
			})
		}
	}

	tester := load(t, openapiBlock("1KiB"))

	// The Idempotency-Key cases send a first request, then the case's request with its key.
	// before sends the first, and checks its answer against the document too.
	before := func(t *testing.T, method, path, body string, status int, header ...string) {
		t.Helper()
		a := call(t, tester, method, path, body, header...)
		require.Equal(t, status, a.status, a.raw)
		assert.Empty(t, a.header.Get("Idempotent-Replayed"), "the first request ran")
		record(t, method, path, a)
	}
	// hold sends a first change of DigiCert key id that DigiCert holds (holdPut), and waits
	// until it reached DigiCert: until DigiCert answers, its Idempotency-Key is in use. done
	// waits for its answer.
	var held <-chan result
	hold := func(t *testing.T, method, path, body, key string, id int) {
		t.Helper()
		dc.AddKey(id, 1, "openapi-idempotency", "active")
		holdPut()
		held = inBackground(tester.Client, gatewayURL, method, path, body, "Idempotency-Key", key)
		awaitPut(t, id)
	}
	done := func(t *testing.T, method, path string) {
		t.Helper()
		r := <-held
		require.NoError(t, r.err)
		require.Equal(t, 200, r.a.status, r.a.raw)
		record(t, method, path, r.a)
		assert.Equal(t, 1, dcPuts(), "the request refused for its key wrote nothing")
	}
	retryAfter := func(want string) func(*testing.T, answer) {
		return func(t *testing.T, a answer) { assert.Equal(t, want, a.header.Get("Retry-After")) }
	}
	idem := func(label string) []string { return []string{"Idempotency-Key", idemKey("openapi-" + label)} }
	putInUse, putReused, putReplay, putReplay422 := idem("put-in-use"), idem("put-reused"), idem("put-replay"), idem("put-replay-422")
	batchInUse, batchReused, batchReplay, streamReplay, refusalReplay := idem("batch-in-use"), idem("batch-reused"), idem("batch-replay"), idem("stream-replay"), idem("refusal-replay")
	const slowPut = `{"status": "inactive", "provider": "oa-slow"}`

	// A batch with every kind of result: changed (twice, the same credential), unchanged,
	// awaiting approval, and the problems a single PUT of each item would get.
	items := []string{
		`{"id": "10001", "status": "inactive"}`,
		`{"id": "10001", "status": "inactive"}`,
		`{"id": "10002", "status": "inactive"}`,
		`{"id": "` + palApproval + `", "status": "inactive"}`,
		`{"id": "10999", "status": "inactive"}`,
		`{"id": "10001", "status": "off"}`,
		`{"id": "10001", "status": "inactive", "provider": "nope"}`,
		`{"id": "10003", "status": "revoked", "provider": "oa-dc"}`,
		`{"id": "30001", "status": "inactive"}`,
		`{"id": "a/b", "status": "inactive"}`,
		`{"status": "inactive"}`,
		`{"id": "90001", "status": "inactive"}`,
		`{"id": "20001", "status": "inactive", "provider": "oa-dc"}`,
		`{"id": "` + pfRevoked + `", "status": "active"}`,
		`{"id": "10001", "status": "active", "provider": "oa-dc-badkey"}`,
	}
	itemProblems := []string{"", "", "", "", "credential-not-found", "invalid-request", "unknown-provider", "unsupported-status",
		"ambiguous-credential", "invalid-request", "invalid-request", "provider-unavailable", "provider-forbidden",
		"transition-not-allowed", "provider-auth-failed"}
	seedBatch := func(*testing.T) {
		dc.AddKey(10001, 1, "build-server", "active")
		dc.AddKey(10002, 1, "ci-runner", "inactive")
		pal.AddCredential("org-eu", palApproval, "Payouts", "TRANSACTIONS", "ENABLED", true, true)
	}
	small := `{"items": [{"id": "10001", "status": "inactive"}, {"id": "10001", "status": "inactive"}, {"id": "10999", "status": "inactive"}, {"id": "` + palApproval + `", "status": "inactive"}]}`
	dryRun := `{"dry_run": true, "items": [{"id": "10001", "status": "inactive"}, {"id": "10002", "status": "inactive"}, {"id": "10999", "status": "inactive"}, {"id": "10003", "status": "revoked", "provider": "oa-dc"}]}`
	tooMany := `{"items": [` + strings.Repeat(`{"id": "10001", "status": "inactive"},`, 100) + `{"id": "10001", "status": "inactive"}]}`
	slowBatch := `{"items": [{"id": "62002", "status": "inactive", "provider": "oa-slow"}]}`
	lines := func(n int) func(*testing.T, answer) {
		return func(t *testing.T, a answer) {
			assert.Equal(t, ndjson, a.header.Get("Content-Type"))
			assert.Len(t, strings.Split(strings.TrimSpace(a.raw), "\n"), n, "a line per item, and the summary")
		}
	}
	summary := func(want map[string]int, problems ...string) func(*testing.T, answer) {
		return func(t *testing.T, a answer) {
			var b batchAnswer
			require.NoError(t, json.Unmarshal([]byte(a.raw), &b), a.raw)
			assert.Equal(t, want, b.Summary, a.raw)
			if problems != nil {
				var got []string
				for _, r := range b.Results {
					got = append(got, itemProblem(r))
				}
				assert.Equal(t, problems, got)
			}
		}
	}
	nothingWritten := func(t *testing.T) { assert.Zero(t, dc.Writes()+pal.Writes(), "a dry run writes nothing") }
	// oa-budget (rate 1/h) and oa-noreads (reads off), by name.
	const budgetKey, writeOnlyKey = "/credentials/80001/status", "/credentials/70001/status"
	noDCCall := func(t *testing.T) { assert.Zero(t, dc.Count(""), "no call to DigiCert") }
	longRetry := func(t *testing.T, a answer) {
		ra, err := strconv.Atoi(a.header.Get("Retry-After"))
		require.NoError(t, err, a.raw)
		assert.Greater(t, ra, 60, "the wait for the budget's next token (1/h)")
	}

	run(t, tester, []liveCase{
		{name: "read", method: "GET", path: dcKey, status: 200},
		{name: "named provider", method: "GET", path: "/credentials/30001/status?provider=oa-dc-sub", status: 200},
		{name: "bad ID", method: "GET", path: "/credentials/%00/status", status: 400, problem: "invalid-request"},
		{name: "unknown provider", method: "GET", path: dcKey + "?provider=nope", status: 400, problem: "unknown-provider"},
		{name: "policy", method: "GET", path: dcKey + "?provider=oa-locked", status: 403, problem: "forbidden"},
		{name: "policy", method: "PUT", path: dcKey, body: `{"status": "inactive", "provider": "oa-locked"}`, status: 403, problem: "forbidden"},
		{name: "forbidden", method: "GET", path: "/credentials/20001/status?provider=oa-dc", status: 403, problem: "provider-forbidden"},
		{name: "no pattern matches", method: "GET", path: "/credentials/abc/status", status: 404, problem: "credential-not-found"},
		{name: "unknown at the provider", method: "GET", path: "/credentials/10999/status", status: 404, problem: "credential-not-found"},
		{name: "ambiguous", method: "GET", path: "/credentials/30001/status", status: 409, problem: "ambiguous-credential"},
		{name: "provider answers 409", method: "GET", path: dcKey, setup: fault(dc.Server, providertest.Fault{Status: 409}), status: 409, problem: "transition-not-allowed"},
		{name: "provider answers 422", method: "GET", path: dcKey, setup: fault(dc.Server, providertest.Fault{Status: 422}), status: 422, problem: "unsupported-status"},
		{name: "rate limited", method: "GET", path: dcKey, setup: fault(dc.Server, providertest.Fault{Status: 429, RetryAfter: "7"}), status: 429, problem: "provider-rate-limited"},
		{name: "rate limited without Retry-After", method: "GET", path: dcKey, setup: fault(dc.Server, providertest.Fault{Status: 429}), status: 429, problem: "provider-rate-limited"},
		{name: "rate budget", method: "GET", path: budgetKey + "?provider=oa-budget", status: 429, problem: "rate-limited",
			setup: func(t *testing.T) {
				dc.AddKey(80001, 1, "budget", "active")
				before(t, "GET", budgetKey+"?provider=oa-budget", "", 200) // the budget's only token
				fresh(dc.Server)
			},
			check: longRetry, after: noDCCall},
		{name: "client gone", method: "GET", path: "/credentials/" + pfActive + "/status?provider=oa-pf", halfClose: true, setup: fault(pf.Server, providertest.Fault{Hang: 5 * time.Second}), status: 499, problem: "request-canceled"},
		{name: "bad partner key", method: "GET", path: dcKey + "?provider=oa-dc-badkey", status: 502, problem: "provider-auth-failed"},
		{name: "5xx", method: "GET", path: dcKey, setup: fault(dc.Server, providertest.Fault{Status: 500}), status: 502, problem: "provider-error"},
		{name: "malformed answer", method: "GET", path: dcKey, setup: fault(dc.Server, providertest.Fault{Malformed: true}), status: 502, problem: "provider-error"},
		{name: "a candidate cannot be asked", method: "GET", path: "/credentials/90001/status", status: 503, problem: "provider-unavailable"},
		{name: "timeout", method: "GET", path: dcKey, setup: fault(dc.Server, providertest.Fault{Hang: 3 * time.Second}), status: 504, problem: "provider-timeout"},
		{name: "reads off", method: "GET", path: writeOnlyKey + "?provider=oa-noreads", status: 501, problem: "reads-disabled", after: noDCCall},

		{name: "change", method: "PUT", path: dcKey, body: `{"status": "inactive", "reason": "INC-42"}`, status: 200},
		{name: "unchanged", method: "PUT", path: dcKey, body: `{"status": "inactive", "provider": "oa-dc"}`, status: 200},
		{name: "expiry", method: "PUT", path: "/credentials/" + zsCred + "/status", body: `{"status": "active", "expires_at": "2031-06-30T12:00:00Z"}`, status: 200},
		{name: "with an Idempotency-Key", method: "PUT", path: "/credentials/" + pfActive + "/status", body: `{"status": "inactive"}`, header: idem("INC-42-suspend"), status: 200},
		{name: "awaits approval", method: "PUT", path: "/credentials/" + palApproval + "/status", body: `{"status": "inactive"}`, status: 202},
		{name: "already awaits approval", method: "PUT", path: "/credentials/" + palApproval + "/status", body: `{"status": "inactive"}`, status: 202},
		{name: "bad status", method: "PUT", path: dcKey, body: `{"status": "off"}`, status: 400, problem: "invalid-request"},
		{name: "unknown field", method: "PUT", path: dcKey, body: `{"status": "inactive", "enabled": false}`, status: 400, problem: "invalid-request"},
		{name: "bad Idempotency-Key", method: "PUT", path: dcKey, body: `{"status": "inactive"}`, header: []string{"Idempotency-Key", strings.Repeat("k", 65)}, status: 400, problem: "invalid-request"},
		{name: "bad ID", method: "PUT", path: "/credentials/../status", body: `{"status": "inactive"}`, status: 400, problem: "invalid-request"},
		{name: "unknown provider", method: "PUT", path: dcKey, body: `{"status": "inactive", "provider": "nope"}`, status: 400, problem: "unknown-provider"},
		{name: "forbidden", method: "PUT", path: "/credentials/20001/status", body: `{"status": "inactive", "provider": "oa-dc"}`, status: 403, problem: "provider-forbidden"},
		{name: "not found", method: "PUT", path: "/credentials/10999/status", body: `{"status": "inactive"}`, status: 404, problem: "credential-not-found"},
		{name: "ambiguous", method: "PUT", path: "/credentials/30001/status", body: `{"status": "inactive"}`, status: 409, problem: "ambiguous-credential"},
		{name: "revoked token", method: "PUT", path: "/credentials/" + pfRevoked + "/status", body: `{"status": "active"}`, status: 409, problem: "transition-not-allowed"},
		{name: "body too large", method: "PUT", path: dcKey, body: `{"status": "inactive", "reason": "` + strings.Repeat("x", 2000) + `"}`, status: 413, problem: "body-too-large"},
		{name: "not JSON", method: "PUT", path: dcKey, body: `{"status": "inactive"}`, header: []string{"Content-Type", "text/plain"}, status: 415, problem: "unsupported-media-type"},
		{name: "no revoked state", method: "PUT", path: dcKey, body: `{"status": "revoked"}`, status: 422, problem: "unsupported-status"},
		{name: "no expiry", method: "PUT", path: dcKey, body: `{"status": "active", "expires_at": "2031-06-30T12:00:00Z"}`, status: 422, problem: "unsupported-status"},
		{name: "rate limited", method: "PUT", path: dcKey, body: `{"status": "active"}`, setup: fault(dc.Server, providertest.Fault{Status: 429, RetryAfter: "7"}), status: 429, problem: "provider-rate-limited"},
		{name: "rate budget", method: "PUT", path: budgetKey, body: `{"status": "inactive", "provider": "oa-budget"}`, status: 429, problem: "rate-limited",
			setup: func(*testing.T) { dc.AddKey(80001, 1, "budget", "active") }, check: longRetry, after: noDCCall},
		{name: "reads off", method: "PUT", path: writeOnlyKey, body: `{"status": "inactive", "provider": "oa-noreads"}`, status: 200,
			setup: func(*testing.T) { dc.AddKey(70001, 1, "write-only", "active") },
			check: func(t *testing.T, a answer) {
				assert.Contains(t, a.raw, `"changed":null`, "nothing was read")
				assert.Equal(t, "inactive", a.body["status"], a.raw)
			},
			after: func(t *testing.T) {
				assert.Zero(t, dc.Count(http.MethodGet), "never read")
				assert.Equal(t, 1, dc.Count(http.MethodPut), "the write alone")
			}},
		{name: "dry run at reads off", method: "PUT", path: writeOnlyKey + "?dry_run=true", body: `{"status": "inactive", "provider": "oa-noreads"}`, status: 501, problem: "reads-disabled", after: noDCCall},
		{name: "client gone while probing", method: "PUT", path: "/credentials/30001/status", body: `{"status": "inactive"}`, halfClose: true, setup: fault(dc.Server, providertest.Fault{Hang: 1500 * time.Millisecond}), status: 499, problem: "request-canceled",
			after: func(t *testing.T) {
				// The probe goes on without the client, until the candidates' 1s timeout:
				// a request for the same ID waits for it (or, when it has ended, probes
				// anew), so that nothing of it outlives the case.
				a := call(t, tester, "GET", "/credentials/30001/status", "")
				assert.Contains(t, []int{409, 503}, a.status, a.raw)
			}},
		{name: "bad partner key", method: "PUT", path: dcKey, body: `{"status": "active", "provider": "oa-dc-badkey"}`, status: 502, problem: "provider-auth-failed"},
		{name: "5xx on the write", method: "PUT", path: dcKey, body: `{"status": "active"}`, setup: fault(dc.Server, providertest.Fault{Status: 500, Method: http.MethodPut}), status: 502, problem: "provider-error"},
		{name: "a candidate cannot be asked", method: "PUT", path: "/credentials/90001/status", body: `{"status": "inactive"}`, status: 503, problem: "provider-unavailable"},
		{name: "timeout", method: "PUT", path: dcKey, body: `{"status": "active"}`, setup: fault(dc.Server, providertest.Fault{Hang: 3 * time.Second, Method: http.MethodPut}), status: 504, problem: "provider-timeout"},

		{name: "dry run", method: "PUT", path: dcKey + "?dry_run=true", body: `{"status": "active"}`, status: 200, after: nothingWritten,
			check: func(t *testing.T, a answer) {
				assert.Equal(t, true, a.body["dry_run"], a.raw)
				assert.Equal(t, "active", a.body["requested_status"], a.raw)
			}},
		{name: "bad dry_run", method: "PUT", path: dcKey + "?dry_run=maybe", body: `{"status": "active"}`, status: 400, problem: "invalid-request"},
		{name: "replayed", method: "PUT", path: dcKey, body: `{"status": "inactive"}`, header: putReplay, status: 200, replayed: true,
			setup: func(t *testing.T) { before(t, "PUT", dcKey, `{"status": "inactive"}`, 200, putReplay...) }},
		{name: "replayed", method: "PUT", path: dcKey, body: `{"status": "revoked"}`, header: putReplay422, status: 422, problem: "unsupported-status", replayed: true,
			setup: func(t *testing.T) { before(t, "PUT", dcKey, `{"status": "revoked"}`, 422, putReplay422...) }},
		{name: "Idempotency-Key in use", method: "PUT", path: "/credentials/62001/status", body: slowPut, header: putInUse, status: 409, problem: "idempotency-key-in-use",
			setup: func(t *testing.T) { hold(t, "PUT", "/credentials/62001/status", slowPut, putInUse[1], 62001) },
			check: retryAfter("1"), after: func(t *testing.T) { done(t, "PUT", "/credentials/62001/status") }},
		{name: "Idempotency-Key reused", method: "PUT", path: dcKey, body: `{"status": "active"}`, header: putReused, status: 422, problem: "idempotency-key-reused",
			setup: func(t *testing.T) { before(t, "PUT", dcKey, `{"status": "inactive"}`, 200, putReused...) }},

		{name: "opens the breaker", method: "GET", path: "/credentials/50001/status?provider=oa-flaky", setup: fault(dcFlaky.Server, providertest.Fault{Status: 500}), status: 502, problem: "provider-error"},
		{name: "breaker open", method: "GET", path: "/credentials/50001/status?provider=oa-flaky", status: 503, problem: "provider-unavailable"},
		{name: "breaker open", method: "PUT", path: "/credentials/50001/status", body: `{"status": "inactive", "provider": "oa-flaky"}`, status: 503, problem: "provider-unavailable"},

		{name: "DELETE", method: "DELETE", path: dcKey, status: 405, problem: "method-not-allowed"},
		{name: "POST", method: "POST", path: dcKey, body: `{"status": "inactive"}`, status: 405, problem: "method-not-allowed"},
		{name: "PATCH", method: "PATCH", path: dcKey, body: `{"status": "inactive"}`, status: 405, problem: "method-not-allowed"},
		{name: "OPTIONS", method: "OPTIONS", path: dcKey, status: 405, problem: "method-not-allowed"},
	})
	// HEAD has no body to check the problem's type in.
	for _, path := range []string{dcKey, batchEndpoint} {
		a := call(t, tester, "HEAD", path, "")
		require.Equal(t, 405, a.status)
		s.checkAnswer(t, "HEAD", path, a)
	}

	// Retry-After: the provider's with a 429, the breaker's with a 503.
	fresh(sims...)
	dc.SetFault(providertest.Fault{Status: 429, RetryAfter: "7"})
	a := call(t, tester, "GET", dcKey, "")
	assert.Equal(t, "7", a.header.Get("Retry-After"))
	fresh(sims...)
	a = call(t, tester, "GET", "/credentials/50001/status?provider=oa-flaky", "")
	retry, err := strconv.Atoi(a.header.Get("Retry-After"))
	require.NoError(t, err, a.raw)
	assert.InDelta(t, 60, retry, 2, "the breaker opened for 1m")

	// The batch, on a config of its own: a batch's calls wait while their provider's last 429
	// asks them to, and the providers of the config above have just had a few; oa-budget's
	// token is spent. (Another max_body makes it another config: Caddy keeps running a config
	// it is sent again.)
	tester = load(t, openapiBlock("2KiB"))
	// holdBatches sends max_batches (2) dry-run batches whose reads DigiCert holds, and waits
	// until both reached it: until they end, another batch is one too many. batchesDone waits
	// for their answers.
	var heldBatches []<-chan result
	holdBatches := func(t *testing.T) {
		t.Helper()
		dc.SetFault(providertest.Fault{Hang: 2 * time.Second, Method: http.MethodGet, Times: 2})
		heldBatches = nil
		for _, id := range []string{"62003", "62004"} {
			heldBatches = append(heldBatches, inBackground(tester.Client, gatewayURL, "POST", batchEndpoint,
				`{"dry_run": true, "items": [{"id": "`+id+`", "status": "inactive", "provider": "oa-slow"}]}`))
		}
		require.Eventually(t, func() bool { return dc.InFlight() == 2 }, 10*time.Second, 5*time.Millisecond, "both batches reached DigiCert")
	}
	batchesDone := func(t *testing.T) {
		t.Helper()
		for _, ch := range heldBatches {
			r := <-ch
			require.NoError(t, r.err)
			require.Equal(t, 200, r.a.status, r.a.raw)
			record(t, "POST", batchEndpoint, r.a)
		}
	}
	// A change at oa-budget, its budget's only token for its read, and a change at
	// oa-noreads, its write alone.
	budgetBatch := `{"items": [{"id": "80002", "status": "inactive", "provider": "oa-budget"}, {"id": "70002", "status": "inactive", "provider": "oa-noreads"}]}`
	run(t, tester, []liveCase{
		{name: "batch", method: "POST", path: batchEndpoint, body: `{"items": [` + strings.Join(items, ", ") + `], "reason": "INC-42"}`, status: 200, setup: seedBatch,
			check: summary(map[string]int{"changed": 1, "unchanged": 1, "pending": 1, "failed": 11}, itemProblems...)},
		{name: "dry run", method: "POST", path: batchEndpoint, body: dryRun, status: 200, setup: seedBatch, after: nothingWritten,
			check: summary(map[string]int{"would_change": 1, "unchanged": 1, "failed": 2}, "", "", "credential-not-found", "unsupported-status")},
		{name: "stream", method: "POST", path: batchEndpoint, body: small, header: []string{"Accept", ndjson}, status: 200, setup: seedBatch, check: lines(5)},
		{name: "dry run stream", method: "POST", path: batchEndpoint, body: dryRun, header: []string{"Accept", ndjson}, status: 200, setup: seedBatch, check: lines(5), after: nothingWritten},
		{name: "replayed", method: "POST", path: batchEndpoint, body: small, header: batchReplay, status: 200, replayed: true,
			setup: func(t *testing.T) { seedBatch(t); before(t, "POST", batchEndpoint, small, 200, batchReplay...) }},
		{name: "replayed stream", method: "POST", path: batchEndpoint, body: small, header: append([]string{"Accept", ndjson}, streamReplay...), status: 200, replayed: true,
			setup: func(t *testing.T) {
				seedBatch(t)
				before(t, "POST", batchEndpoint, small, 200, append([]string{"Accept", ndjson}, streamReplay...)...)
			},
			check: lines(5)},
		{name: "no items", method: "POST", path: batchEndpoint, body: `{"items": []}`, status: 400, problem: "invalid-request"},
		{name: "unknown member", method: "POST", path: batchEndpoint, body: `{"items": [{"id": "10001", "status": "inactive"}], "extra": 1}`, status: 400, problem: "invalid-request"},
		{name: "bad Idempotency-Key", method: "POST", path: batchEndpoint, body: small, header: []string{"Idempotency-Key", strings.Repeat("k", 65)}, status: 400, problem: "invalid-request"},
		{name: "replayed refusal", method: "POST", path: batchEndpoint, body: `{"items": []}`, header: refusalReplay, status: 400, problem: "invalid-request", replayed: true,
			setup: func(t *testing.T) { before(t, "POST", batchEndpoint, `{"items": []}`, 400, refusalReplay...) }},
		{name: "too many items", method: "POST", path: batchEndpoint, body: tooMany, status: 413, problem: "body-too-large"},
		{name: "not JSON", method: "POST", path: batchEndpoint, body: small, header: []string{"Content-Type", "text/plain"}, status: 415, problem: "unsupported-media-type"},
		{name: "Idempotency-Key in use", method: "POST", path: batchEndpoint, body: slowBatch, header: batchInUse, status: 409, problem: "idempotency-key-in-use",
			setup: func(t *testing.T) { hold(t, "POST", batchEndpoint, slowBatch, batchInUse[1], 62002) },
			check: retryAfter("1"), after: func(t *testing.T) { done(t, "POST", batchEndpoint) }},
		{name: "Idempotency-Key reused", method: "POST", path: batchEndpoint, body: small, header: batchReused, status: 422, problem: "idempotency-key-reused",
			setup: func(t *testing.T) { seedBatch(t); before(t, "POST", batchEndpoint, dryRun, 200, batchReused...) }},
		{name: "too many batches", method: "POST", path: batchEndpoint, body: small, status: 429, problem: "too-many-batches",
			setup: holdBatches, check: retryAfter("1"), after: batchesDone},
		{name: "rate budget and reads off", method: "POST", path: batchEndpoint, body: budgetBatch, status: 200,
			setup: func(*testing.T) {
				dc.AddKey(80002, 1, "budget", "active")
				dc.AddKey(70002, 1, "write-only", "active")
			},
			check: func(t *testing.T, a answer) {
				summary(map[string]int{"changed": 1, "unchanged": 0, "pending": 0, "failed": 1}, "rate-limited", "")(t, a)
				assert.Contains(t, a.raw, `"changed":null`, "reads off: nothing was read")
			}},
		{name: "dry run at reads off", method: "POST", path: batchEndpoint, body: `{"dry_run": true, "items": [{"id": "70002", "status": "inactive", "provider": "oa-noreads"}]}`, status: 200,
			check: summary(map[string]int{"would_change": 0, "unchanged": 0, "failed": 1}, "reads-disabled"), after: noDCCall},
		{name: "GET", method: "GET", path: batchEndpoint, status: 405, problem: "method-not-allowed"},
		{name: "PUT", method: "PUT", path: batchEndpoint, body: small, status: 405, problem: "method-not-allowed"},
		{name: "DELETE", method: "DELETE", path: batchEndpoint, status: 405, problem: "method-not-allowed"},
		{name: "OPTIONS", method: "OPTIONS", path: batchEndpoint, status: 405, problem: "method-not-allowed"},
	})

	// 401 is the answer of an authentication handler in front of the gateway.
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	require.NoError(t, err)
	authed := loadSite(t, fmt.Sprintf("basic_auth /credentials/* {\n alice %s\n}\ncredential_status {\n%s\n}", hash, openapiBlock("1KiB")))
	run(t, authed, []liveCase{
		{name: "no credentials", method: "GET", path: dcKey, status: 401},
		{name: "no credentials", method: "PUT", path: dcKey, body: `{"status": "inactive"}`, status: 401},
		{name: "no credentials", method: "POST", path: batchEndpoint, body: small, status: 401},
		{name: "authenticated", method: "GET", path: dcKey, header: []string{"Authorization", basicAuth("alice", "alice-password")}, status: 200},
	})

	// 503 idempotency-unavailable: keys kept in Caddy's storage, a file_system storage whose
	// folder of locks is a regular file, so that it can store (Caddy's own PKI app does, when
	// the config loads) but not take a lock. Nothing runs.
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "locks"), nil, 0o600))
	broken := loadWith(t, "\tstorage file_system "+root, "credential_status {\n"+openapiBlock("1KiB")+"\nidempotency_storage caddy\n}")
	noCall := func(t *testing.T) { assert.Zero(t, dc.Count(""), "no provider was called") }
	run(t, broken, []liveCase{
		{name: "store unreachable", method: "PUT", path: dcKey, body: `{"status": "inactive"}`, header: idem("broken-put"), status: 503, problem: "idempotency-unavailable", check: retryAfter("1"), after: noCall},
		{name: "store unreachable", method: "POST", path: batchEndpoint, body: small, header: idem("broken-batch"), status: 503, problem: "idempotency-unavailable", check: retryAfter("1"), after: noCall},
		{name: "without a key", method: "PUT", path: dcKey, body: `{"status": "inactive"}`, status: 200},
	})

	var missing []string
	for key := range s.documentedAnswers(t) {
		if !seen[key] {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "documented answers that no case produced")
}

// TestOpenAPIRequestBody checks that the document's schema of the PUT body accepts exactly
// what the gateway accepts: for each body, the schema's verdict and the gateway's (a 400
// invalid-request or not) agree.
func TestOpenAPIRequestBody(t *testing.T) {
	s := loadSpec(t)
	sch := s.schema(t, pointer("components", "schemas", "StatusChangeRequest"))
	tester := load(t, openapiBlock("64KiB"))
	fresh(dc.Server)
	defer func() {
		fresh(dc.Server)
		dc.AddKey(10001, 1, "build-server", "active")
	}()
	for _, body := range []string{
		`{"status": "inactive"}`,
		`{"status": "active"}`,
		`{"status": "revoked"}`,
		`{"status": "inactive", "provider": "oa-dc", "reason": "INC-42"}`,
		`{"status": "inactive", "provider": null, "reason": null, "expires_at": null}`,
		`{"status": "inactive", "provider": ""}`,
		`{"status": "inactive", "reason": "` + strings.Repeat("x", 1024) + `"}`,
		`{"status": "inactive", "reason": "` + strings.Repeat("x", 1025) + `"}`,
		`{"status": "active", "expires_at": "2031-06-30T12:00:00Z"}`,
		`{"status": "active", "expires_at": "2031-06-30T12:00:00.5+02:00"}`,
		`{"status": "active", "expires_at": "2031-06-30"}`,
		`{"status": "active", "expires_at": "tomorrow"}`,
		`{"status": "INACTIVE"}`,
		`{"status": "unknown"}`,
		`{"status": null}`,
		`{"status": true}`,
		`{"status": "inactive", "reason": 42}`,
		`{"status": "inactive", "enabled": false}`,
		`{"provider": "oa-dc"}`,
		`{}`,
		`[]`,
		`"inactive"`,
	} {
		t.Run(body[:min(len(body), 60)], func(t *testing.T) {
			dc.AddKey(10001, 1, "build-server", "active")
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
			require.NoError(t, err)
			schemaErr := sch.Validate(v)
			a := call(t, tester, "PUT", "/credentials/10001/status", body)
			require.NotEqual(t, 413, a.status, a.raw)
			rejected := a.status == 400 && a.body["type"] == problemURN+"invalid-request"
			assert.Equal(t, schemaErr != nil, rejected, "the schema says %v; the gateway answers %d: %s", schemaErr, a.status, a.raw)
			s.checkAnswer(t, "PUT", "/credentials/10001/status", a)
		})
	}
}

// TestOpenAPIBatchRequestBody checks that the document's schema of the batch body accepts
// exactly what the gateway accepts: for each body, the schema's verdict and the gateway's
// agree. The gateway refuses a faulty envelope with a 400 invalid-request, and a faulty item
// with that item's invalid-request in the 200; either is a refusal. (An ID listed twice with
// different changes is refused too, which no schema of one item can say: the document says it
// in words, and it is left out here.)
func TestOpenAPIBatchRequestBody(t *testing.T) {
	s := loadSpec(t)
	sch := s.schema(t, pointer("components", "schemas", "BatchRequest"))
	tester := load(t, openapiBlock("64KiB"))
	fresh(dc.Server)
	defer func() {
		fresh(dc.Server)
		dc.AddKey(10001, 1, "build-server", "active")
	}()
	item := `{"id": "10001", "status": "inactive"}`
	withItem := func(it string) string { return `{"items": [` + it + `], "dry_run": true}` }
	for _, body := range []string{
		`{"items": [` + item + `]}`,
		`{"items": [` + item + `, ` + item + `], "reason": "INC-42", "dry_run": true}`,
		`{"items": [` + item + `], "reason": null, "dry_run": null}`,
		`{"items": [` + item + `], "dry_run": false}`,
		`{"items": [` + item + `], "reason": "` + strings.Repeat("x", 1024) + `", "dry_run": true}`,
		`{"items": [` + item + `], "reason": "` + strings.Repeat("x", 1025) + `", "dry_run": true}`,
		`{"items": [` + item + `], "reason": 42}`,
		`{"items": [` + item + `], "dry_run": "yes"}`,
		`{"items": [` + item + `], "dry_run": 1}`,
		`{"items": [` + item + `], "extra": 1}`,
		`{"items": []}`,
		`{"items": null}`,
		`{"items": {}}`,
		`{"reason": "INC-42"}`,
		`{}`,
		`[]`,
		`"items"`,
		withItem(`{"id": "10001", "status": "inactive", "provider": "oa-dc", "reason": "r", "expires_at": null}`),
		withItem(`{"id": "10001", "status": "inactive", "provider": null, "reason": null}`),
		withItem(`{"id": "10001", "status": "active", "expires_at": "2031-06-30T12:00:00Z"}`),
		withItem(`{"id": "10001", "status": "active", "expires_at": "tomorrow"}`),
		withItem(`{"id": "10001", "status": "inactive", "reason": "` + strings.Repeat("x", 1025) + `"}`),
		withItem(`{"id": "10001", "status": "INACTIVE"}`),
		withItem(`{"id": "10001", "status": null}`),
		withItem(`{"id": "10001"}`),
		withItem(`{"status": "inactive"}`),
		withItem(`{"id": null, "status": "inactive"}`),
		withItem(`{"id": "", "status": "inactive"}`),
		withItem(`{"id": "a b", "status": "inactive"}`),
		withItem(`{"id": "..", "status": "inactive"}`),
		withItem(`{"id": "` + strings.Repeat("1", 257) + `", "status": "inactive"}`),
		withItem(`{"id": 10001, "status": "inactive"}`),
		withItem(`{"id": "10001", "status": "inactive", "enabled": false}`),
		withItem(`"10001"`),
		withItem(`[]`),
	} {
		t.Run(body[:min(len(body), 60)], func(t *testing.T) {
			dc.AddKey(10001, 1, "build-server", "active")
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
			require.NoError(t, err)
			schemaErr := sch.Validate(v)
			a := call(t, tester, "POST", batchEndpoint, body)
			require.Contains(t, []int{200, 400}, a.status, a.raw)
			rejected := a.status == 400 && a.body["type"] == problemURN+"invalid-request"
			if a.status == 200 {
				var b batchAnswer
				require.NoError(t, json.Unmarshal([]byte(a.raw), &b), a.raw)
				for _, r := range b.Results {
					rejected = rejected || itemProblem(r) == "invalid-request"
				}
			}
			assert.Equal(t, schemaErr != nil, rejected, "the schema says %v; the gateway answers %d: %s", schemaErr, a.status, a.raw)
			s.checkAnswer(t, "POST", batchEndpoint, a)
		})
	}
}
