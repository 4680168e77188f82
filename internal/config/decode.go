package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The file is decoded by walking its yaml.Node tree against the Config struct ourselves instead of with
// yaml's decoder: that way every value is checked where it stands, every problem keeps its line, and one
// bad value does not hide the others. The walk records where each key was, so that the checks after it
// can point at the line of the value they reject.

// maxNodes bounds the work one document may cause; aliases can make a small file expand enormously.
const maxNodes = 100_000

// pos is a place in the file.
type pos struct{ line, col int }

func posOf(n *yaml.Node) pos { return pos{n.Line, n.Column} }

// decoder walks one document.
type decoder struct {
	file     string
	problems []Problem
	seen     map[string]pos      // key path -> where its key (or sequence element) is
	merged   map[string]bool     // key paths set through a merge key, which an explicit key may override
	oldName  map[string]pos      // key paths set under their deprecated name, and where
	inMerge  map[*yaml.Node]bool // mappings being merged, against merge cycles
	visited  int
	tooBig   bool
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, seen: map[string]pos{}, merged: map[string]bool{}, oldName: map[string]pos{}, inMerge: map[*yaml.Node]bool{}}
}

// maxProblems bounds the report; past it, more problems say nothing new.
const maxProblems = 1000

func (d *decoder) addf(p pos, field, format string, args ...any) {
	d.add(p, field, false, format, args...)
}

// warnf reports what does not refuse the file.
func (d *decoder) warnf(p pos, field, format string, args ...any) {
	d.add(p, field, true, format, args...)
}

func (d *decoder) add(p pos, field string, warning bool, format string, args ...any) {
	if len(d.problems) > maxProblems {
		return
	}
	if len(d.problems) == maxProblems {
		format, field, args = "too many problems; stopping here", "", nil
	}
	d.problems = append(d.problems, Problem{
		File: d.file, Line: p.line, Column: p.col, Field: field, Message: fmt.Sprintf(format, args...), Warning: warning,
	})
}

// present says whether the file had the key path.
func (d *decoder) present(path string) bool {
	_, ok := d.seen[path]
	return ok
}

// at is where a key path is, or its nearest ancestor that is in the file, or nowhere (line 0).
func (d *decoder) at(path string) pos {
	for path != "" {
		if p, ok := d.seen[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return pos{}
}

// resolve follows aliases, counting the work.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode && depth < 100; depth++ {
		n = n.Alias
	}
	return n
}

// spend counts one node; false once the document has cost too much, with one problem said.
func (d *decoder) spend(n *yaml.Node) bool {
	d.visited++
	if d.visited <= maxNodes {
		return true
	}
	if !d.tooBig {
		d.tooBig = true
		d.addf(posOf(n), "", "the document expands to more than %d values (aliases?); refusing to read further", maxNodes)
	}
	return false
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

// decode puts node n into v. path names v for problems ("" for the root).
func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	n = d.resolve(n)
	if n == nil || !d.spend(n) {
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "key:" with nothing keeps the default
	}
	switch {
	case v.Type() == durationType:
		d.decodeDuration(path, n, v)
	case v.Type() == timeType:
		d.decodeTime(path, n, v)
	case v.Kind() == reflect.Struct:
		d.decodeStruct(path, n, v)
	case v.Kind() == reflect.Slice:
		d.decodeSlice(path, n, v)
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String:
		d.decodeMap(path, n, v)
	case v.Kind() == reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		before := len(d.problems)
		d.decode(path, n, elem.Elem())
		if len(d.problems) == before {
			v.Set(elem)
		}
	default:
		d.decodeScalar(path, n, v)
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (d *decoder) decodeDuration(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.addf(posOf(n), path, "want a duration such as \"30s\" or \"20h\", got %s", kindName(n))
		return
	}
	// store.retention is switched off by "off" or a bare 0.
	if path == "store.retention" && (n.Value == "off" || n.Value == "0") {
		v.SetInt(0)
		return
	}
	// A bare number would be nanoseconds to Go; nobody means that in a configuration file.
	if n.ShortTag() == "!!int" || n.ShortTag() == "!!float" {
		d.addf(posOf(n), path, "duration %q has no unit: write e.g. \"%ss\" or \"%sm\"", n.Value, n.Value, n.Value)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.addf(posOf(n), path, "bad duration %q: want a Go duration such as \"90s\", \"5m\" or \"20h\"", n.Value)
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) decodeTime(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.addf(posOf(n), path, "want a time such as \"2026-05-04T06:00:00Z\", got %s", kindName(n))
		return
	}
	t, err := time.Parse(time.RFC3339Nano, n.Value)
	if err != nil {
		d.addf(posOf(n), path, "bad time %q: want RFC 3339 such as \"2026-05-04T06:00:00Z\"", n.Value)
		return
	}
	v.Set(reflect.ValueOf(t))
}

func (d *decoder) decodeScalar(path string, n *yaml.Node, v reflect.Value) {
	want := map[reflect.Kind]string{
		reflect.String: "a string", reflect.Bool: "true or false", reflect.Int: "an integer",
		reflect.Int64: "an integer", reflect.Float64: "a number",
	}[v.Kind()]
	if want == "" {
		d.addf(posOf(n), path, "cannot be set from a configuration file")
		return
	}
	if n.Kind != yaml.ScalarNode {
		d.addf(posOf(n), path, "want %s, got %s", want, kindName(n))
		return
	}
	tag := n.ShortTag()
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
		return
	case reflect.Bool:
		var b bool
		if tag == "!!bool" && n.Decode(&b) == nil {
			v.SetBool(b)
			return
		}
	case reflect.Int, reflect.Int64:
		var i int64
		if tag == "!!int" && n.Decode(&i) == nil && !v.OverflowInt(i) {
			v.SetInt(i)
			return
		}
	case reflect.Float64:
		var f float64
		if (tag == "!!int" || tag == "!!float") && n.Decode(&f) == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			v.SetFloat(f)
			return
		}
	}
	d.addf(posOf(n), path, "want %s, got %q", want, n.Value)
}

// fieldKey is the YAML key of a struct field, "" for fields the file cannot set.
func fieldKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if key == "-" {
		return ""
	}
	return key
}

func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && n.ShortTag() == "!!merge"
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	d.decodeMapping(path, n, v, false)
}

// decodeMapping reads a mapping into a struct; merging says it is the target of a merge key.
func (d *decoder) decodeMapping(path string, n *yaml.Node, v reflect.Value, merging bool) {
	if n.Kind != yaml.MappingNode {
		what := "the configuration"
		if path != "" {
			what = "this"
		}
		d.addf(posOf(n), path, "%s must be a mapping of keys to values, got %s", what, kindName(n))
		return
	}
	fields := map[string]int{}
	var keys []string
	for i := range v.NumField() {
		if k := fieldKey(v.Type().Field(i)); k != "" {
			fields[k] = i
			keys = append(keys, k)
		}
	}
	// Merged mappings first: YAML says the mapping's own keys win over merged ones.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMergeKey(n.Content[i]) {
			d.decodeMerge(path, n.Content[i+1], v)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if isMergeKey(kn) {
			continue
		}
		if kn.Kind != yaml.ScalarNode {
			d.addf(posOf(kn), path, "a key must be a plain name, got %s", kindName(kn))
			continue
		}
		key := kn.Value
		kpath := joinPath(path, key)
		fi, known := fields[key]
		if newKey, ok := renamed[kpath]; ok && !known {
			d.decodeRenamed(path, key, newKey, kn, vn, v.Field(fields[newKey]))
			continue
		}
		if old, ok := d.oldName[kpath]; ok {
			d.addf(posOf(kn), kpath, "set twice: here and on line %d under its deprecated name; keep only %s", old.line, key)
			continue
		}
		switch {
		case !known && notYet[kpath] != "":
			d.addf(posOf(kn), kpath, "not used yet: %s; remove the key", notYet[kpath])
		case !known && looksSecret(key):
			d.addf(posOf(kn), kpath, "looks like an inline secret: secrets are never read from the configuration file; %s", secretHint(key, fields))
		case !known:
			d.addf(posOf(kn), kpath, "unknown field %q%s", key, suggest(key, keys))
		default:
			if first, dup := d.seen[kpath]; dup && !d.merged[kpath] {
				d.addf(posOf(kn), kpath, "given twice (first on line %d)", first.line)
				continue
			}
			d.seen[kpath] = posOf(kn)
			d.merged[kpath] = merging
			d.decode(kpath, vn, v.Field(fi))
		}
	}
}

// renamed are keys read again under their new name, with a warning, so that a file written for an
// older version keeps working: the old key path → the new key in the same mapping.
var renamed = map[string]string{
	"agency.max_wake_delay": "resync_interval", // renamed for what it is (issue 10)
}

// notYet are keys of features not built yet. They are refused, saying what is missing, rather than read
// into a setting that would do nothing and mislead whoever set it. A key leaves this list when the code
// that reads it lands.
var notYet = map[string]string{}

// decodeRenamed reads a deprecated key into its new field. Both names in one file are an error: which
// one was meant cannot be known.
func (d *decoder) decodeRenamed(path, oldKey, newKey string, kn, vn *yaml.Node, field reflect.Value) {
	kpath, npath := joinPath(path, oldKey), joinPath(path, newKey)
	if first, dup := d.seen[npath]; dup {
		d.addf(posOf(kn), kpath, "set twice: here under its deprecated name and as %s on line %d; keep only %s", newKey, first.line, newKey)
		return
	}
	d.warnf(posOf(kn), kpath, "deprecated: read as %s; rename the key", npath)
	// Later checks of the new key point at this line, where the value the file gives is.
	d.seen[npath] = posOf(kn)
	d.oldName[npath] = posOf(kn)
	d.decode(kpath, vn, field)
}

// decodeMerge applies a YAML merge key ("<<: *defaults"): the merged mappings' keys, then the rest.
func (d *decoder) decodeMerge(path string, n *yaml.Node, v reflect.Value) {
	n = d.resolve(n)
	if n == nil || !d.spend(n) {
		return
	}
	if d.inMerge[n] {
		d.addf(posOf(n), path, "a merge key includes the mapping itself")
		return
	}
	d.inMerge[n] = true
	defer delete(d.inMerge, n)
	if n.Kind == yaml.SequenceNode {
		for _, m := range n.Content {
			d.decodeMerge(path, m, v)
		}
		return
	}
	d.decodeMapping(path, n, v, true)
}

func (d *decoder) decodeSlice(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.addf(posOf(n), path, "want a list, got %s", kindName(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, en := range n.Content {
		epath := fmt.Sprintf("%s[%d]", path, i)
		d.seen[epath] = posOf(d.resolveOr(en))
		elem := reflect.New(v.Type().Elem()).Elem()
		if rn := d.resolveOr(en); elem.Kind() == reflect.Struct && rn.Kind != yaml.MappingNode {
			// Leave out what is not an entry at all, so that its missing fields do not pile up problems.
			d.addf(posOf(rn), epath, "want a mapping of keys to values, got %s", kindName(rn))
			continue
		}
		if def, ok := elementDefault(v.Type().Elem()); ok {
			elem.Set(def)
		}
		d.decode(epath, en, elem)
		out = reflect.Append(out, elem)
	}
	if out.Len() == 0 {
		out = reflect.Zero(v.Type()) // "[]" means the same as no list at all
	}
	v.Set(out)
}

// decodeMap reads a mapping of names to values (a catalogue input's gates: destination tag → bool).
// Each key is recorded as a path of its own, so that checks can point at its line.
func (d *decoder) decodeMap(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.addf(posOf(n), path, "want a mapping, got %s", kindName(n))
		return
	}
	out := reflect.MakeMap(v.Type())
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := d.resolveOr(n.Content[i]), n.Content[i+1]
		if kn.Kind != yaml.ScalarNode || isMergeKey(kn) {
			d.addf(posOf(kn), path, "a key must be a plain name, got %s", kindName(kn))
			continue
		}
		kpath := joinPath(path, kn.Value)
		if first, dup := d.seen[kpath]; dup {
			d.addf(posOf(kn), kpath, "given twice (first on line %d)", first.line)
			continue
		}
		d.seen[kpath] = posOf(kn)
		elem := reflect.New(v.Type().Elem()).Elem()
		before := len(d.problems)
		d.decode(kpath, vn, elem)
		if len(d.problems) == before {
			out.SetMapIndex(reflect.ValueOf(kn.Value).Convert(v.Type().Key()), elem)
		}
	}
	if out.Len() == 0 {
		out = reflect.Zero(v.Type()) // "{}" means the same as no mapping at all
	}
	v.Set(out)
}

// resolveOr is the node an alias points at, or the node itself; for positions.
func (d *decoder) resolveOr(n *yaml.Node) *yaml.Node {
	if r := d.resolve(n); r != nil {
		return r
	}
	return n
}

// elementDefault is what a list element starts as before its keys are read: a policy class omitting a
// field takes it from the default policy.
func elementDefault(t reflect.Type) (reflect.Value, bool) {
	if v, ok := notifierDefault(t); ok {
		return v, true
	}
	if t == reflect.TypeFor[pcl.ClassPolicy]() {
		base := pcl.DefaultPolicy().Classes[0]
		base.Pattern, base.Required, base.NoPayloadOK, base.RequirePayload = "", nil, nil, nil
		return reflect.ValueOf(base), true
	}
	return reflect.Value{}, false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names the known key nearest to a misspelt one, or lists the known keys.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	sorted := slices.Clone(known)
	slices.Sort(sorted)
	return " (known: " + strings.Join(sorted, ", ") + ")"
}

// editDistance is the Levenshtein distance, for short keys only.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
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
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
