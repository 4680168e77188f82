package openapi

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestDocumentIsWhole(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(Document(), &doc); err != nil {
		t.Fatal(err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	s, err := parsed()
	if err != nil {
		t.Fatal(err)
	}
	// Every reference points at something.
	refs := regexp.MustCompile(`"\$ref":\s*"#/components/(schemas|responses|parameters)/([A-Za-z]+)"`)
	comps := doc["components"].(map[string]any)
	for _, m := range refs.FindAllStringSubmatch(string(Document()), -1) {
		if _, ok := comps[m[1]].(map[string]any)[m[2]]; !ok {
			t.Errorf("$ref to #/components/%s/%s, which is not there", m[1], m[2])
		}
	}
	// Operation ids are unique, every path parameter is declared, every operation answers something.
	ids := map[string]string{}
	paths := doc["paths"].(map[string]any)
	params := comps["parameters"].(map[string]any)
	for p, ops := range paths {
		for m, o := range ops.(map[string]any) {
			op := o.(map[string]any)
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s %s has no operationId", m, p)
			} else if other, dup := ids[id]; dup {
				t.Errorf("operationId %s of %s %s is also %s's", id, m, p, other)
			}
			ids[id] = m + " " + p
			declared := map[string]bool{}
			list, _ := op["parameters"].([]any)
			for _, raw := range list {
				prm := raw.(map[string]any)
				if ref, ok := prm["$ref"].(string); ok {
					prm = params[strings.TrimPrefix(ref, "#/components/parameters/")].(map[string]any)
				}
				if prm["in"] == "path" {
					declared[prm["name"].(string)] = true
				}
			}
			for _, m2 := range regexp.MustCompile(`\{([a-z]+)\}`).FindAllStringSubmatch(p, -1) {
				if !declared[m2[1]] {
					t.Errorf("%s %s: path parameter %s is not declared", m, p, m2[1])
				}
			}
			if len(s.Paths[p][m].Responses) == 0 {
				t.Errorf("%s %s has no responses", m, p)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	run := Operation{"GET", "/api/v1/runs/{run}"}
	good := `{"run": 392680, "class": "Collisions25", "start": "2025-05-29T08:00:00Z", "stop": null,
		"readiness": {"state": "waiting", "reason": "r", "version": 3, "decided": "2025-05-29T13:10:05Z", "blocking": ["SiPixelAli"], "releasable": false},
		"workflows": [{"name": "SiStripGains", "state": "in-db", "quality": "good", "required": true, "flags": null,
			"updated": null, "deadline": "2025-05-30T08:00:00Z", "at_risk_until": null}],
		"milestones": {"SiStripGains": {"stop": "2025-05-29T12:00:00Z"}}, "decisions": [{}]}`
	if err := Validate(run, 200, []byte(good)); err != nil {
		t.Fatalf("a good reply: %v", err)
	}
	bad := map[string]string{
		"missing field":   strings.Replace(good, `"class": "Collisions25", `, "", 1),
		"unknown field":   strings.Replace(good, `"run": 392680,`, `"run": 392680, "colour": "red",`, 1),
		"wrong type":      strings.Replace(good, `"version": 3`, `"version": "3"`, 1),
		"not an integer":  strings.Replace(good, `"version": 3`, `"version": 3.5`, 1),
		"null, not null":  strings.Replace(good, `"required": true`, `"required": null`, 1),
		"not in the enum": strings.Replace(good, `"state": "in-db"`, `"state": "in-the-db"`, 1),
		"deep field":      strings.Replace(good, `"at_risk_until": null`, `"at_risk_until": null, "x": 1`, 1),
		"not JSON":        good[:40],
	}
	for name, body := range bad {
		if err := Validate(run, 200, []byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if err := Validate(run, 404, []byte(`{"error": "no run 1", "code": "not_found"}`)); err != nil {
		t.Errorf("an error reply: %v", err)
	}
	if err := Validate(run, 404, []byte(`{"error": "no run 1", "code": "gone"}`)); err == nil {
		t.Error("an error of an unknown code accepted")
	}
	if err := Validate(Operation{"GET", "/api/v1/nothing"}, 200, []byte(`{}`)); err == nil {
		t.Error("an undocumented operation accepted")
	}
	if err := Validate(Operation{"GET", "/healthz"}, 500, []byte(`{}`)); err == nil {
		t.Error("an undocumented status accepted")
	}
	fu := Operation{"GET", "/t0/v1/first_unready_run"}
	if err := Validate(fu, 200, []byte(`{"result": [1, 2]}`)); err == nil {
		t.Error("two first unready runs accepted")
	}
}
