package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong in a configuration file.
type Problem struct {
	File    string // the file's name as given to Check
	Line    int    // 1-based; 0 when the problem has no place (a missing value)
	Column  int    // 1-based; 0 when unknown
	Field   string // the key path, e.g. "policy.classes[0].workflow_deadline"; "" for syntax errors
	Message string
	// Warning marks a problem that does not refuse the file (a deprecated key read under its new name):
	// Check reports it, Parse accepts the file and keeps it in Config.Warnings.
	Warning bool
}

// String is "file:line:col: field: message", leaving out what is unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	if p.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is a configuration refused for its problems.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid configuration:\n  " + strings.Join(lines, "\n  ")
}

// Load reads, decodes, defaults and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for a file already read; name is used in problems. Any problem that is not a warning
// refuses the file; the warnings are kept in the configuration's Warnings.
func Parse(name string, data []byte) (*Config, error) {
	c, problems := parse(name, data)
	var errs, warnings []Problem
	for _, p := range problems {
		if p.Warning {
			warnings = append(warnings, p)
		} else {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		return nil, &Error{Problems: errs}
	}
	c.Warnings = warnings
	return c, nil
}

// Errors counts the problems that refuse a file (those that are not warnings).
func Errors(problems []Problem) int {
	n := 0
	for _, p := range problems {
		if !p.Warning {
			n++
		}
	}
	return n
}

// Check returns every problem of a configuration file, warnings included, in file order; Parse accepts
// the file when none of them is an error (see Errors).
func Check(name string, data []byte) []Problem {
	_, problems := parse(name, data)
	return problems
}

func parse(name string, data []byte) (*Config, []Problem) {
	d := newDecoder(name)
	c := preDefaults()
	root := d.parseYAML(data)
	if root != nil {
		d.decode("", root, reflect.ValueOf(c).Elem())
	}
	if d.tooBig {
		return nil, d.problems
	}
	c.finish(d.present)
	d.validate(c)
	sort.SliceStable(d.problems, func(i, j int) bool {
		a, b := d.problems[i], d.problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return c, d.problems
}

// yamlLine finds the line in yaml's error messages ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML reads the one document of the file; nil when it is empty or unreadable (with a problem).
func (d *decoder) parseYAML(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml's parser is not ours; a panic in it must still be a problem, not a crash.
		if r := recover(); r != nil {
			d.addf(pos{}, "", "the YAML parser failed: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntaxProblem(err, data)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.addf(posOf(&next), "", "a configuration is one YAML document; a second one starts here")
		return nil
	} else if !errors.Is(err, io.EOF) {
		d.syntaxProblem(err, data)
		return nil
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		return doc.Content[0]
	}
	return &doc
}

func (d *decoder) syntaxProblem(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	// yaml counts lines from 0 in its parser's errors (not in its scanner's) and leaves the line out when
	// that makes it 0; its parser's messages are few and fixed, so they can be told apart.
	if isParserError(msg) {
		line++
	}
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		line = aliasLine(data, m[1])
	}
	d.addf(pos{line: line}, "", "YAML syntax: %s", msg)
}

// unknownAnchor is yaml's message for an alias without anchor, which comes without a line.
var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// aliasLine is the first line that uses the alias *name, 0 if none does.
func aliasLine(data []byte, name string) int {
	for i, line := range strings.Split(string(data), "\n") {
		for rest := line; ; {
			j := strings.Index(rest, "*"+name)
			if j < 0 {
				break
			}
			rest = rest[j+1+len(name):]
			if rest == "" || strings.ContainsAny(rest[:1], " \t,]}\r#") {
				return i + 1
			}
		}
	}
	return 0
}

// isParserError says whether a yaml message comes from its parser rather than its scanner.
func isParserError(msg string) bool {
	for _, p := range []string{
		"did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected '-' indicator",
		"did not find expected key", "did not find expected node content", "did not find expected <document start>",
		"did not find expected <stream-start>", "found duplicate %YAML directive", "found duplicate %TAG directive",
		"found incompatible YAML document", "found undefined tag handle",
	} {
		if msg == p {
			return true
		}
	}
	return false
}

//go:embed testdata/full.yaml
var exampleYAML []byte

// ExampleYAML is a documented configuration that sets every field, for `spyagency config example`.
func ExampleYAML() []byte { return bytes.Clone(exampleYAML) }

// String is the configuration as YAML, passwords in URLs masked.
func (c *Config) String() string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.Redacted()); err != nil {
		return fmt.Sprintf("config: cannot encode: %v", err)
	}
	_ = enc.Close()
	return b.String()
}
