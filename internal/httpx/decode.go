package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DefaultMaxBytes bounds a JSON body when the caller sets no limit: far above any real reply of the CMS
// services (the OMS page of 100 runs is about 0.5 MB) and low enough that garbage cannot exhaust memory.
const DefaultMaxBytes int64 = 32 << 20

// ErrTooLarge is returned when a body exceeds its size limit.
var ErrTooLarge = errors.New("body too large")

// DecodeJSON decodes one JSON value from r into into, reading at most max bytes (DefaultMaxBytes if max
// <= 0). Unknown object fields are ignored, because the sources add fields over time; truncated input,
// syntax errors, wrong types and trailing data are errors that name the field or byte offset.
func DecodeJSON(r io.Reader, max int64, into any) error { return decode(r, max, into, false) }

// DecodeStrict is DecodeJSON refusing unknown object fields too: for the formats Spy Agency defines and
// reads from itself, where an unknown field means the two sides disagree.
func DecodeStrict(r io.Reader, max int64, into any) error { return decode(r, max, into, true) }

func decode(r io.Reader, max int64, into any, strict bool) error {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	if raw, ok := into.(*json.RawMessage); ok {
		return decodeRaw(r, max, raw)
	}
	return decodeStream(r, max, into, strict)
}

// decodeRaw keeps one JSON value as it came, checked in one pass over the body: a reply kept raw is
// decoded by its format's decoder next, and the stream decoder's passes (finding the value's end,
// then copying it, then looking for trailing data) were most of the cost of a small reply. A body
// that is not one JSON value goes through the stream decoder, which says what is wrong and where.
func decodeRaw(r io.Reader, max int64, raw *json.RawMessage) error {
	lr := &limitReader{r: r, left: max}
	data, err := io.ReadAll(lr)
	switch {
	case lr.over || errors.Is(err, ErrTooLarge):
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lr.limit())
	case err != nil:
		return fmt.Errorf("reading body: %w", err)
	case json.Valid(data):
		*raw = bytes.TrimSpace(data) // only JSON's whitespace can surround a valid value
		return nil
	}
	if err := decodeStream(bytes.NewReader(data), max, raw, false); err != nil {
		return err
	}
	return fmt.Errorf("%w: not one JSON value", ErrDecode)
}

func decodeStream(r io.Reader, max int64, into any, strict bool) error {
	lr := &limitReader{r: r, left: max}
	dec := json.NewDecoder(lr)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(into); err != nil {
		return describeDecodeError(err, lr, dec)
	}
	// A second value or garbage after the first means the reply is not what we think it is.
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
		return nil
	case lr.over || (lr.err != nil && errors.Is(err, lr.err)):
		return describeDecodeError(err, lr, dec)
	default:
		return fmt.Errorf("%w: trailing data after the JSON value at offset %d", ErrDecode, dec.InputOffset())
	}
}

// ErrDecode marks a body that is not the JSON expected; it is never worth retrying.
var ErrDecode = errors.New("invalid JSON")

func describeDecodeError(err error, lr *limitReader, dec *json.Decoder) error {
	if errors.Is(err, ErrTooLarge) || lr.over {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lr.limit())
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: empty body", ErrDecode)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated JSON after %d bytes", ErrDecode, dec.InputOffset())
	case errors.As(err, &syn):
		return fmt.Errorf("%w: syntax error at offset %d: %v", ErrDecode, syn.Offset, err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("%w: field %s: got JSON %s, want %s (offset %d)", ErrDecode, field, typ.Value, typ.Type, typ.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no type for it; its message is stable and names the field.
		return fmt.Errorf("%w: %s (offset %d)", ErrDecode, strings.TrimPrefix(err.Error(), "json: "), dec.InputOffset())
	}
	// A failure of the reader (a dropped connection, a deadline) keeps its own kind so that the caller
	// can tell it from bad JSON.
	if lr.err != nil && errors.Is(err, lr.err) {
		return fmt.Errorf("reading body: %w", err)
	}
	return fmt.Errorf("%w: %v", ErrDecode, err)
}

// limitReader fails with ErrTooLarge as soon as more than its limit is read, so that an oversized body
// is refused after reading at most limit+1 bytes rather than being buffered whole.
type limitReader struct {
	r    io.Reader
	left int64
	read int64
	over bool
	err  error // the underlying reader's last error other than io.EOF
}

func (l *limitReader) limit() int64 { return l.read + l.left }

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		l.over = true
		return 0, ErrTooLarge
	}
	// Ask for one byte more than allowed so that a body of exactly the limit is accepted.
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return n, ErrTooLarge
	}
	if err != nil && err != io.EOF {
		l.err = err
	}
	return n, err
}

// DecodeBytes is DecodeJSON over a byte slice, with no limit beyond its length; the spies' format
// decoders use it on bodies that the Client already bounded.
//
// Well-formed input is decoded by json.Unmarshal, in two passes; input it refuses is decoded again by
// the stream decoder, whose error names what is wrong and where.
func DecodeBytes(data []byte, into any) error {
	if json.Unmarshal(data, into) == nil {
		return nil
	}
	return DecodeJSON(bytes.NewReader(data), int64(len(data))+1, into)
}

// DecodeBytesStrict is DecodeStrict over a byte slice.
func DecodeBytesStrict(data []byte, into any) error {
	return DecodeStrict(bytes.NewReader(data), int64(len(data))+1, into)
}
