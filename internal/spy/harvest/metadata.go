package harvest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Metadata is the dropBox metadata of one upload (cms-interfaces.md §4).
type Metadata struct {
	DestinationDatabase string   `json:"destinationDatabase"`
	DestinationTags     []string `json:"destinationTags"` // sorted
	InputTag            string   `json:"inputTag"`
	Since               *uint64  `json:"since"` // nil: the sinces come from the file
	UserText            string   `json:"userText"`
}

// MetadataFile is a harvest .txt: the metadata for a validation (prep) and a production upload. Either
// may be absent.
type MetadataFile struct {
	Prep *Metadata
	Prod *Metadata
}

// MaxMetadataBytes bounds a .txt; real ones are well under a kilobyte.
const MaxMetadataBytes = 1 << 20

const (
	prepKey = "prepMetaData"
	prodKey = "prodMetaData"
)

// ParseMetadata reads a harvest .txt: lines "prepMetaData <json>" and "prodMetaData <json>", each at
// most once, at least one of them. Blank lines and CRLF endings are tolerated; anything else is an error
// naming the line.
func ParseMetadata(data []byte) (MetadataFile, error) {
	var f MetadataFile
	if len(data) > MaxMetadataBytes {
		return f, fmt.Errorf("metadata is %d bytes, more than the %d allowed", len(data), MaxMetadataBytes)
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, doc, _ := strings.Cut(line, " ")
		var slot **Metadata
		switch key {
		case prepKey:
			slot = &f.Prep
		case prodKey:
			slot = &f.Prod
		default:
			return MetadataFile{}, fmt.Errorf("metadata line %d: starts with %.40q, want %s or %s", i+1, key, prepKey, prodKey)
		}
		if *slot != nil {
			return MetadataFile{}, fmt.Errorf("metadata line %d: second %s line", i+1, key)
		}
		m, err := DecodeMetadata([]byte(doc))
		if err != nil {
			return MetadataFile{}, fmt.Errorf("metadata line %d (%s): %w", i+1, key, err)
		}
		*slot = &m
	}
	if f.Prep == nil && f.Prod == nil {
		return f, fmt.Errorf("metadata has neither a %s nor a %s line", prepKey, prodKey)
	}
	return f, nil
}

// DecodeMetadata reads one dropBox metadata JSON document. inputTag and a non-empty destinationTags
// object are required; since must be null or a non-negative integer; unknown fields are ignored.
func DecodeMetadata(doc []byte) (Metadata, error) {
	var raw struct {
		DestinationDatabase *string                    `json:"destinationDatabase"`
		DestinationTags     map[string]json.RawMessage `json:"destinationTags"`
		InputTag            *string                    `json:"inputTag"`
		Since               json.RawMessage            `json:"since"`
		UserText            *string                    `json:"userText"`
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return Metadata{}, fmt.Errorf("not a JSON metadata object: %w", err)
	}
	if dec.More() {
		return Metadata{}, fmt.Errorf("trailing data after the JSON object")
	}
	var m Metadata
	if raw.InputTag == nil || strings.TrimSpace(*raw.InputTag) == "" {
		return m, fmt.Errorf("field inputTag missing or empty")
	}
	m.InputTag = *raw.InputTag
	if len(raw.DestinationTags) == 0 {
		return m, fmt.Errorf("field destinationTags missing or empty")
	}
	for tag := range raw.DestinationTags {
		if strings.TrimSpace(tag) == "" {
			return m, fmt.Errorf("field destinationTags has an empty tag name")
		}
		m.DestinationTags = append(m.DestinationTags, tag)
	}
	slices.Sort(m.DestinationTags)
	if raw.DestinationDatabase != nil {
		m.DestinationDatabase = *raw.DestinationDatabase
	}
	if raw.UserText != nil {
		m.UserText = *raw.UserText
	}
	if s := strings.TrimSpace(string(raw.Since)); s != "" && s != "null" {
		var since uint64
		if err := json.Unmarshal(raw.Since, &since); err != nil {
			return m, fmt.Errorf("field since is %.30s, want null or a non-negative integer", s)
		}
		m.Since = &since
	}
	return m, nil
}
