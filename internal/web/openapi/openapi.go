// Package openapi holds the OpenAPI 3.1 document of Spy Agency's HTTP interface (openapi.json, served at
// GET /api/v1/openapi.json) and checks replies against it. The document is written by hand, next to
// docs/api.md which explains it in prose; tests keep it true: docs/api.md must name every operation
// and no other (apidoc_test.go), the web package's test fails when a route
// is registered and not documented or documented and not registered, and the tests of the handlers
// validate their live replies with Validate, so a field added, renamed or retyped without the document
// fails a test.
package openapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

//go:embed openapi.json
var document []byte

// Document is the OpenAPI document, as served.
func Document() []byte { return document }

// Operation is a method and a path template of the document, e.g. GET /api/v1/runs/{run}.
type Operation struct{ Method, Path string }

func (o Operation) String() string { return o.Method + " " + o.Path }

type spec struct {
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Schemas   map[string]*Schema `json:"schemas"`
		Responses map[string]struct {
			Content map[string]struct {
				Schema *Schema `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"components"`
}

type operation struct {
	OperationID string              `json:"operationId"`
	Responses   map[string]response `json:"responses"`
}

type response struct {
	Ref     string `json:"$ref"`
	Content map[string]struct {
		Schema *Schema `json:"schema"`
	} `json:"content"`
}

// Schema is the part of JSON Schema the document uses.
type Schema struct {
	Ref                  string             `json:"$ref"`
	Type                 typeList           `json:"type"`
	Properties           map[string]*Schema `json:"properties"`
	Required             []string           `json:"required"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	Items                *Schema            `json:"items"`
	Enum                 []any              `json:"enum"`
	AllOf                []*Schema          `json:"allOf"`
	MinItems             *int               `json:"minItems"`
	MaxItems             *int               `json:"maxItems"`
}

// typeList is "type": a name or a list of names ("null" among them for a nullable value).
type typeList []string

func (t *typeList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*t = typeList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("type: want a name or a list of names: %w", err)
	}
	*t = many
	return nil
}

var parsed = sync.OnceValues(func() (*spec, error) {
	var s spec
	if err := json.Unmarshal(document, &s); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	return &s, nil
})

// Operations lists the document's operations, sorted.
func Operations() ([]Operation, error) {
	s, err := parsed()
	if err != nil {
		return nil, err
	}
	var out []Operation
	for p, ops := range s.Paths {
		for m := range ops {
			out = append(out, Operation{Method: strings.ToUpper(m), Path: p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// Validate checks a JSON reply of the operation with the given status against the document: the status
// must be documented (or covered by "default"), and the body must match its schema.
func Validate(op Operation, status int, body []byte) error {
	s, err := parsed()
	if err != nil {
		return err
	}
	o, ok := s.Paths[op.Path][strings.ToLower(op.Method)]
	if !ok {
		return fmt.Errorf("%s is not in the document", op)
	}
	r, ok := o.Responses[fmt.Sprint(status)]
	if !ok {
		if r, ok = o.Responses["default"]; !ok {
			return fmt.Errorf("%s: status %d is not documented", op, status)
		}
	}
	if r.Ref != "" {
		name := strings.TrimPrefix(r.Ref, "#/components/responses/")
		ref, ok := s.Components.Responses[name]
		if !ok {
			return fmt.Errorf("%s: no response %s", op, r.Ref)
		}
		r.Content = ref.Content
	}
	c, ok := r.Content["application/json"]
	if !ok || c.Schema == nil {
		return fmt.Errorf("%s: status %d has no JSON schema", op, status)
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%s: the reply is not JSON: %w", op, err)
	}
	return s.check(c.Schema, v, "$")
}

func (s *spec) resolve(sc *Schema) (*Schema, error) {
	for sc.Ref != "" {
		name := strings.TrimPrefix(sc.Ref, "#/components/schemas/")
		next, ok := s.Components.Schemas[name]
		if !ok {
			return nil, fmt.Errorf("no schema %s", sc.Ref)
		}
		sc = next
	}
	return sc, nil
}

func kindOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func (s *spec) check(sc *Schema, v any, at string) error {
	sc, err := s.resolve(sc)
	if err != nil {
		return fmt.Errorf("%s: %w", at, err)
	}
	for _, sub := range sc.AllOf {
		if err := s.check(sub, v, at); err != nil {
			return err
		}
	}
	k := kindOf(v)
	if len(sc.Type) > 0 && !slices.Contains(sc.Type, k) && !(k == "integer" && slices.Contains(sc.Type, "number")) {
		return fmt.Errorf("%s: a %s, the document says %s", at, k, strings.Join(sc.Type, " or "))
	}
	if len(sc.Enum) > 0 && k != "null" {
		found := false
		for _, e := range sc.Enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s: %v is not one of %v", at, v, sc.Enum)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for _, name := range sc.Required {
			if _, ok := x[name]; !ok {
				return fmt.Errorf("%s: required field %q is missing", at, name)
			}
		}
		extra := additional(sc.AdditionalProperties)
		for name, fv := range x {
			if p, ok := sc.Properties[name]; ok {
				if err := s.check(p, fv, at+"."+name); err != nil {
					return err
				}
				continue
			}
			switch {
			case extra.schema != nil:
				if err := s.check(extra.schema, fv, at+"."+name); err != nil {
					return err
				}
			case !extra.allowed:
				return fmt.Errorf("%s: field %q is not in the document", at, name)
			}
		}
	case []any:
		if sc.MinItems != nil && len(x) < *sc.MinItems || sc.MaxItems != nil && len(x) > *sc.MaxItems {
			return fmt.Errorf("%s: %d items, outside what the document allows", at, len(x))
		}
		if sc.Items != nil {
			for i, e := range x {
				if err := s.check(sc.Items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

type extraFields struct {
	allowed bool
	schema  *Schema
}

// additional reads additionalProperties: absent or true allows any field, false none, a schema those
// that match it.
func additional(raw json.RawMessage) extraFields {
	if len(raw) == 0 {
		return extraFields{allowed: true}
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return extraFields{allowed: b}
	}
	var sc Schema
	if json.Unmarshal(raw, &sc) == nil {
		return extraFields{allowed: true, schema: &sc}
	}
	return extraFields{}
}
