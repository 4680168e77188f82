package pcl

import (
	"fmt"
	"strconv"
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
// failure pays for formatting. It reads the name in one pass, checking each byte against a table: the
// reconcile reads every harvested file's name on every reconcile.
func parseHarvestName(base string) (HarvestName, string) {
	if len(base) < 3 || base[:3] != "Run" {
		return HarvestName{}, "does not start with Run"
	}
	i := 3
	var run uint64
	for ; i < len(base) && nameChars[base[i]]&charDigit != 0; i++ {
		if run = run*10 + uint64(base[i]-'0'); run > 0xffffffff {
			return HarvestName{}, "has a run out of range"
		}
	}
	switch {
	case i == len(base) || base[i] != '@':
		return HarvestName{}, "has no @ right after the run number"
	case i == 3 || base[3] == '0':
		return HarvestName{}, "has a run that is not a positive number"
	}
	tag, i := span(base, i+1, charTag)
	switch {
	case i == len(base) || base[i] != '@':
		return HarvestName{}, "has no @ right after the input tag (a tag is letters, digits, '_' and '-')"
	case tag == "":
		return HarvestName{}, "has no input tag"
	}
	uuid, i := span(base, i+1, charUUID)
	switch {
	case i == len(base) || base[i] != '.':
		return HarvestName{}, "has no extension right after the uuid (a uuid is letters, digits and '-')"
	case uuid == "":
		return HarvestName{}, "has no uuid"
	}
	// The extension is a piece of base, dot included: no concatenation, so no allocation.
	n := HarvestName{Run: uint32(run), InputTag: tag, UUID: uuid, Ext: HarvestExt(base[i:])}
	switch n.Ext {
	case HarvestDB, HarvestMetadata, HarvestUploaded:
		return n, ""
	}
	return HarvestName{}, "has an extension that is not .db, .txt or .txt.uploaded"
}

// span is the longest run of bytes of the class from i, and the index after it. It steps eight bytes at
// a time while all eight are of the class, then byte by byte to the one that ends the part: a tag and a
// uuid are most of a name, and one test for eight bytes takes half the instructions of eight.
func span(s string, i int, class uint8) (string, int) {
	j := i
	for ; j+8 <= len(s); j += 8 {
		b := s[j : j+8]
		if nameChars[b[0]]&nameChars[b[1]]&nameChars[b[2]]&nameChars[b[3]]&
			nameChars[b[4]]&nameChars[b[5]]&nameChars[b[6]]&nameChars[b[7]]&class == 0 {
			break
		}
	}
	for j < len(s) && nameChars[s[j]]&class != 0 {
		j++
	}
	return s[i:j], j
}

// The classes of bytes a harvest file name's parts may hold: digits in the run; letters, digits, '_'
// and '-' in the input tag; letters, digits and '-' in the uuid.
const (
	charDigit = 1 << iota
	charTag
	charUUID
)

var nameChars = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = charDigit | charTag | charUUID
	}
	for _, r := range [2][2]rune{{'a', 'z'}, {'A', 'Z'}} {
		for c := r[0]; c <= r[1]; c++ {
			t[c] = charTag | charUUID
		}
	}
	t['_'] = charTag
	t['-'] = charTag | charUUID
	return t
}()
