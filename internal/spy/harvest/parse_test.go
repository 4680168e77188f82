package harvest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParseMetadataFixtures(t *testing.T) {
	t.Parallel()
	fx := metadataFixtures(t)
	if len(fx) != 39 {
		t.Errorf("%d metadata fixtures, want 39", len(fx))
	}
	for name, doc := range fx {
		var want struct {
			InputTag        string              `json:"inputTag"`
			DestinationTags map[string]struct{} `json:"destinationTags"`
			Since           *uint64             `json:"since"`
		}
		if err := json.Unmarshal(doc, &want); err != nil {
			t.Fatal(err)
		}
		key := prodKey
		if strings.HasSuffix(name, "_prep.json") {
			key = prepKey
		}
		f, err := ParseMetadata([]byte(key + " " + string(doc) + "\n"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		m := f.Prod
		if key == prepKey {
			m = f.Prep
		}
		if m == nil || m.InputTag != want.InputTag || len(m.DestinationTags) != len(want.DestinationTags) ||
			!slices.IsSorted(m.DestinationTags) || (m.Since == nil) != (want.Since == nil) {
			t.Errorf("%s: parsed %+v", name, m)
		}
		for _, d := range m.DestinationTags {
			if _, ok := want.DestinationTags[d]; !ok {
				t.Errorf("%s: destination %s not in the JSON", name, d)
			}
		}
	}
}

func TestParseMetadataEdges(t *testing.T) {
	t.Parallel()
	ok := `{"destinationDatabase":"oracle://x","destinationTags":{"A":{},"B":{}},"inputTag":"I","since":null,"userText":"u","extra":1}`
	both := "prepMetaData " + strings.Replace(ok, `"A":{},`, `"P":{},`, 1) + "\r\n\r\nprodMetaData " + ok + "\r\n"
	f, err := ParseMetadata([]byte(both))
	if err != nil || f.Prep == nil || f.Prod == nil || !slices.Equal(f.Prod.DestinationTags, []string{"A", "B"}) ||
		!slices.Equal(f.Prep.DestinationTags, []string{"B", "P"}) {
		t.Fatalf("both lines: %+v, %v", f, err)
	}
	withSince := strings.Replace(ok, `"since":null`, `"since":390001`, 1)
	if f, err := ParseMetadata([]byte("prodMetaData " + withSince)); err != nil || f.Prod.Since == nil || *f.Prod.Since != 390001 {
		t.Errorf("since 390001: %+v, %v", f, err)
	}
	bad := map[string]string{
		"empty":            "",
		"garbage":          "hello world\n",
		"no json":          "prodMetaData\n",
		"truncated":        "prodMetaData " + ok[:40],
		"trailing":         "prodMetaData " + ok + " {}",
		"twice":            "prodMetaData " + ok + "\nprodMetaData " + ok,
		"no input tag":     "prodMetaData " + strings.Replace(ok, `"inputTag":"I"`, `"inputTag":""`, 1),
		"input tag number": "prodMetaData " + strings.Replace(ok, `"inputTag":"I"`, `"inputTag":5`, 1),
		"no destinations":  "prodMetaData " + strings.Replace(ok, `"destinationTags":{"A":{},"B":{}}`, `"destinationTags":{}`, 1),
		"destination list": "prodMetaData " + strings.Replace(ok, `{"A":{},"B":{}}`, `["A","B"]`, 1),
		"negative since":   "prodMetaData " + strings.Replace(ok, `"since":null`, `"since":-3`, 1),
		"string since":     "prodMetaData " + strings.Replace(ok, `"since":null`, `"since":"1"`, 1),
		"array":            "prodMetaData []",
		"big":              "prodMetaData " + strings.Repeat(" ", MaxMetadataBytes) + ok,
	}
	for name, in := range bad {
		if f, err := ParseMetadata([]byte(in)); err == nil {
			t.Errorf("%s: accepted as %+v", name, f)
		}
	}
	if _, err := ParseMetadata([]byte("prodMetaData " + ok + "\nsomething else")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error does not name the line: %v", err)
	}
}

func FuzzParseMetadata(f *testing.F) {
	for name, doc := range metadataFixtures(f) {
		key := prodKey
		if strings.HasSuffix(name, "_prep.json") {
			key = prepKey
		}
		f.Add([]byte(key + " " + string(doc) + "\n"))
		f.Add([]byte(prepKey + " " + string(doc) + "\n" + prodKey + " " + string(doc) + "\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadata(data)
		if err != nil {
			return
		}
		for _, md := range []*Metadata{m.Prep, m.Prod} {
			if md == nil {
				continue
			}
			if md.InputTag == "" || len(md.DestinationTags) == 0 {
				t.Fatalf("accepted metadata without input tag or destinations: %+v", md)
			}
		}
		if m.Prep == nil && m.Prod == nil {
			t.Fatal("accepted a file with no metadata line")
		}
	})
}
