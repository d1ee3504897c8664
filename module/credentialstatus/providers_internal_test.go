package credentialstatus

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandlerOptionsListed keeps handlerOptions, which the unknown-option message lists, equal
// to the options the Caddyfile parsers handle: a new option needs a line there.
func TestHandlerOptionsListed(t *testing.T) {
	parsers := map[string]bool{
		"UnmarshalCaddyfile": true, "unmarshalIdempotencyOption": true, "unmarshalAuthorizationOption": true,
	}
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", nil, 0)
	require.NoError(t, err)
	var handled []string
	for _, f := range pkgs["credentialstatus"].Files {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || !parsers[fn.Name.Name] {
				continue
			}
			// Only the top switch of each parser: the one on the option's name.
			for _, stmt := range fn.Body.List {
				ast.Inspect(stmt, func(n ast.Node) bool {
					sw, ok := n.(*ast.SwitchStmt)
					if !ok {
						return true
					}
					for _, cc := range sw.Body.List {
						for _, e := range cc.(*ast.CaseClause).List {
							if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
								s, _ := strconv.Unquote(lit.Value)
								handled = append(handled, s)
							}
						}
					}
					return false
				})
			}
		}
	}
	slices.Sort(handled)
	listed := slices.Sorted(slices.Values(handlerOptions))
	assert.Equal(t, listed, slices.Compact(handled))
}
