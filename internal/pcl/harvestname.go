package pcl

import (
	"fmt"
	"strconv"
	"strings"
)

// HarvestExt is the kind of file in the harvest area, by its name's ending.
type HarvestExt string

const (
	HarvestDB       HarvestExt = ".db"           // the payload file
	HarvestMetadata HarvestExt = ".txt"          // the dropBox metadata
	HarvestUploaded HarvestExt = ".txt.uploaded" // Tier-0's marker: the file was sent to the dropBox
)

// HarvestName is a harvest file name, Run<run>@<inputTag>@<uuid><ext> (cms-interfaces.md §1). The
// harvest spy reads the area's listing with it, the upload-log spy the log's file names, and the
// reconcile ties markers and upload records to their harvest file with it: one reading of the names.
type HarvestName struct {
	Run      uint32
	InputTag string
	UUID     string
	Ext      HarvestExt
}

// Stem is the name without its ending: what the three files of one upload share.
func (n HarvestName) Stem() string {
	return "Run" + strconv.FormatUint(uint64(n.Run), 10) + "@" + n.InputTag + "@" + n.UUID
}

// String is the file name.
func (n HarvestName) String() string { return n.Stem() + string(n.Ext) }

// DB is the name of the payload file of the same upload.
func (n HarvestName) DB() string { return n.Stem() + string(HarvestDB) }

// SameUpload says whether two names are files of one upload (the same stem), without building stems.
func (n HarvestName) SameUpload(o HarvestName) bool {
	return n.Run == o.Run && n.InputTag == o.InputTag && n.UUID == o.UUID
}

// ParseHarvestName reads a harvest file's base name. Tier-0 makes the input tag from CMSSW tag names and
// the uuid from hex and dashes, so neither may hold '@', '.' or a path separator. A name that parses
// allocates nothing (its parts are pieces of base): the reconcile parses names on its hot path.
func ParseHarvestName(base string) (HarvestName, error) {
	n, problem := parseHarvestName(base)
	if problem != "" {
		return HarvestName{}, fmt.Errorf("harvest file name %q %s", base, problem)
	}
	return n, nil
}

// parseHarvestName is ParseHarvestName with the problem as a phrase, "" for none, so that only a
// failure pays for formatting.
func parseHarvestName(base string) (HarvestName, string) {
	rest, ok := strings.CutPrefix(base, "Run")
	if !ok {
		return HarvestName{}, "does not start with Run"
	}
	runText, rest, ok := strings.Cut(rest, "@")
	if !ok {
		return HarvestName{}, "has no @ after the run"
	}
	if runText == "" || len(runText) > 10 || runText[0] == '0' || !allOf(runText, isDigit) {
		return HarvestName{}, "has a run that is not a positive number"
	}
	run, err := strconv.ParseUint(runText, 10, 32)
	if err != nil {
		return HarvestName{}, "has a run out of range"
	}
	tag, rest, ok := strings.Cut(rest, "@")
	if !ok {
		return HarvestName{}, "has no @ after the input tag"
	}
	if tag == "" || !allOf(tag, isTagChar) {
		return HarvestName{}, "has an input tag that is not a tag name"
	}
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return HarvestName{}, "has no extension"
	}
	uuid := rest[:dot]
	if uuid == "" || !allOf(uuid, isUUIDChar) {
		return HarvestName{}, "has a uuid that is not hex and dashes"
	}
	// The extension is a piece of base, dot included: no concatenation, so no allocation.
	n := HarvestName{Run: uint32(run), InputTag: tag, UUID: uuid, Ext: HarvestExt(rest[dot:])}
	switch n.Ext {
	case HarvestDB, HarvestMetadata, HarvestUploaded:
		return n, ""
	}
	return HarvestName{}, "has an extension that is not .db, .txt or .txt.uploaded"
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
