package config

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var updateReference = flag.Bool("update-reference", false, "rewrite docs/configuration-reference.md from the configuration types")

const referencePath = "../../docs/configuration-reference.md"

// TestReference: docs/configuration-reference.md is what the configuration types say today: every key
// with its type, default and doc comment. When a field is added, renamed or its comment changes, the
// test fails until the reference is regenerated with
//
//	go test ./internal/config -run TestReference -update-reference
func TestReference(t *testing.T) {
	got := reference(t)
	if *updateReference {
		if err := os.WriteFile(referencePath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v (generate it with go test ./internal/config -run TestReference -update-reference)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("docs/configuration-reference.md is stale from line %d:\n have %q\n want %q\nregenerate: go test ./internal/config -run TestReference -update-reference", i+1, w, g)
			}
		}
	}
}

// docs maps "importpath.Type.Field" to the field's doc comment, read from the sources of the packages
// the configuration's types come from. A field declared right under another without a comment of its
// own shares the comment above it when that comment names it ("SecretFile or SecretEnv hold ...").
func docs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for dir, pkg := range map[string]string{".": "github.com/cms-pcl/spyagency/internal/config", "../pcl": "github.com/cms-pcl/spyagency/internal/pcl"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok {
					return true
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return false
				}
				prevDoc := ""
				for _, fld := range st.Fields.List {
					text := ""
					switch {
					case fld.Doc != nil:
						text = fld.Doc.Text()
						prevDoc = text
					case fld.Comment != nil:
						text, prevDoc = fld.Comment.Text(), ""
					case len(fld.Names) > 0 && strings.Contains(prevDoc, fld.Names[0].Name):
						text = prevDoc // "SecretFile or SecretEnv hold ..." speaks of both
					default:
						prevDoc = ""
					}
					for _, name := range fld.Names {
						out[pkg+"."+ts.Name.Name+"."+name.Name] = strings.Join(strings.Fields(text), " ")
					}
				}
				return false
			})
		}
	}
	return out
}

type refRow struct{ key, typ, def, doc string }

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "duration"
	case t == reflect.TypeFor[time.Time]():
		return "time (RFC 3339)"
	}
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "list"
		}
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Key()) + " to " + typeName(t.Elem())
	case reflect.Struct:
		return "block"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float64, reflect.Float32:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	}
	return t.Kind().String()
}

// shortDuration writes 5m for 5m0s and 47h30m for 47h30m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func defaultOf(v reflect.Value) string {
	if !v.IsValid() || v.IsZero() {
		return ""
	}
	switch x := v.Interface().(type) {
	case time.Duration:
		return shortDuration(x)
	case time.Time:
		return x.Format(time.RFC3339)
	}
	switch v.Kind() {
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			return fmt.Sprintf("%d built in", v.Len())
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map, reflect.Struct:
		return ""
	}
	return fmt.Sprint(v.Interface())
}

func walk(rows *[]refRow, doc map[string]string, prefix string, t reflect.Type, v reflect.Value) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		key := prefix + name
		var fv reflect.Value
		if v.IsValid() {
			fv = v.Field(i)
		}
		*rows = append(*rows, refRow{key: key, typ: typeName(f.Type), def: defaultOf(fv), doc: doc[t.PkgPath()+"."+t.Name()+"."+f.Name]})
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]():
			walk(rows, doc, key+".", f.Type, fv)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			var first reflect.Value
			walk(rows, doc, key+"[].", f.Type.Elem(), first)
		}
	}
}

func reference(t *testing.T) []byte {
	t.Helper()
	doc := docs(t)
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

<!-- Generated from the configuration types (internal/config, and internal/pcl for the catalogue and
the policy) by: go test ./internal/config -run TestReference -update-reference
Do not edit: the test fails when this file and the types disagree. -->

Every key of the YAML file, with its type, its default and what it means, as the code declares them.
[configuration.md](configuration.md) explains them in prose; ` + "`spyagency config example`" + ` prints a
whole file. A default left blank is empty or is derived (the comment says from what); lists of blocks
(` + "`[]`" + `) show each entry's keys. Durations are Go durations (` + "`90s`, `5m`, `47h30m`" + `).
`)
	cfg := Default()
	ct := reflect.TypeOf(*cfg)
	cv := reflect.ValueOf(*cfg)
	for i := range ct.NumField() {
		f := ct.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		rows := []refRow{{key: name, typ: typeName(f.Type), def: defaultOf(cv.Field(i)), doc: doc[ct.PkgPath()+"."+ct.Name()+"."+f.Name]}}
		switch {
		case f.Type.Kind() == reflect.Struct:
			walk(&rows, doc, name+".", f.Type, cv.Field(i))
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			walk(&rows, doc, name+"[].", f.Type.Elem(), reflect.Value{})
		}
		fmt.Fprintf(&b, "\n## `%s`\n\n%s\n\n| key | type | default | meaning |\n|---|---|---|---|\n", name, rows[0].doc)
		if rows[0].typ == "block" || rows[0].typ == "list" {
			rows = rows[1:] // its comment heads the section
		}
		for _, r := range rows {
			def := "—"
			if r.def != "" {
				def = "`" + strings.ReplaceAll(r.def, "|", `\|`) + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.key, r.typ, def, strings.ReplaceAll(r.doc, "|", `\|`))
		}
	}
	// Defaults under the user's cache directory differ from machine to machine.
	out := b.Bytes()
	if dir, err := os.UserCacheDir(); err == nil && dir != "" {
		out = bytes.ReplaceAll(out, []byte(dir), []byte("<user cache dir>"))
	}
	return out
}
