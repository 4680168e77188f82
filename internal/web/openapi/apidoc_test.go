package openapi

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAPIReferenceMatchesTheDocument: docs/api.md, the API reference in prose, names every operation
// of the OpenAPI document ("`GET /api/v1/runs/{run}`"), and every operation it names is in the
// document, except the login's browser redirects under /auth/, which the document leaves out as the
// web package's route check does: the two cannot drift apart.
func TestAPIReferenceMatchesTheDocument(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[Operation]bool{}
	for _, o := range ops {
		documented[o] = true
	}
	named := map[Operation]bool{}
	for _, m := range regexp.MustCompile("`(GET|POST|PUT|PATCH|DELETE) (/[^`?\\s]*)").FindAllStringSubmatch(string(text), -1) {
		o := Operation{Method: m[1], Path: m[2]}
		named[o] = true
		if strings.HasPrefix(o.Path, "/auth/") {
			continue
		}
		if !documented[o] {
			t.Errorf("docs/api.md names %s %s, which the OpenAPI document does not have", o.Method, o.Path)
		}
	}
	for _, o := range ops {
		if !named[o] {
			t.Errorf("docs/api.md does not name %s %s", o.Method, o.Path)
		}
	}
}
