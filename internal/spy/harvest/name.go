package harvest

import (
	"fmt"
	"strconv"
	"strings"
)

// Ext is the kind of file in the harvest area, by its name's ending.
type Ext string

const (
	ExtDB       Ext = ".db"           // the payload file
	ExtMetadata Ext = ".txt"          // the dropBox metadata
	ExtUploaded Ext = ".txt.uploaded" // Tier-0's marker: the file was sent to the dropBox
)

// Name is a harvest file name, Run<run>@<inputTag>@<uuid><ext>.
type Name struct {
	Run      uint32
	InputTag string
	UUID     string
	Ext      Ext
}

// Stem is the name without its ending: what the three files of one upload share.
func (n Name) Stem() string {
	return "Run" + strconv.FormatUint(uint64(n.Run), 10) + "@" + n.InputTag + "@" + n.UUID
}

// String is the file name.
func (n Name) String() string { return n.Stem() + string(n.Ext) }

// DB is the name of the payload file of the same upload.
func (n Name) DB() string { return n.Stem() + string(ExtDB) }

// ParseName reads a harvest file's base name. Tier-0 makes the input tag from CMSSW tag names and the
// uuid from hex and dashes, so neither may hold '@', '.' or a path separator.
func ParseName(base string) (Name, error) {
	rest, ok := strings.CutPrefix(base, "Run")
	if !ok {
		return Name{}, fmt.Errorf("harvest file name %q does not start with Run", base)
	}
	runText, rest, ok := strings.Cut(rest, "@")
	if !ok {
		return Name{}, fmt.Errorf("harvest file name %q has no @ after the run", base)
	}
	if runText == "" || len(runText) > 10 || runText[0] == '0' || !allOf(runText, isDigit) {
		return Name{}, fmt.Errorf("harvest file name %q: run %q is not a positive number", base, runText)
	}
	run, err := strconv.ParseUint(runText, 10, 32)
	if err != nil {
		return Name{}, fmt.Errorf("harvest file name %q: run %q out of range", base, runText)
	}
	tag, rest, ok := strings.Cut(rest, "@")
	if !ok {
		return Name{}, fmt.Errorf("harvest file name %q has no @ after the input tag", base)
	}
	if tag == "" || !allOf(tag, isTagChar) {
		return Name{}, fmt.Errorf("harvest file name %q: input tag %q is not a tag name", base, tag)
	}
	uuid, ext, ok := strings.Cut(rest, ".")
	if !ok {
		return Name{}, fmt.Errorf("harvest file name %q has no extension", base)
	}
	if uuid == "" || !allOf(uuid, isUUIDChar) {
		return Name{}, fmt.Errorf("harvest file name %q: uuid %q is not hex and dashes", base, uuid)
	}
	n := Name{Run: uint32(run), InputTag: tag, UUID: uuid, Ext: Ext("." + ext)}
	switch n.Ext {
	case ExtDB, ExtMetadata, ExtUploaded:
		return n, nil
	}
	return Name{}, fmt.Errorf("harvest file name %q: extension %q is not .db, .txt or .txt.uploaded", base, "."+ext)
}

func allOf(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isTagChar(c byte) bool { return isDigit(c) || isLetter(c) || c == '_' || c == '-' }

func isUUIDChar(c byte) bool { return isDigit(c) || isLetter(c) || c == '-' }
