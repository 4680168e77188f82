package pcl

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// MarshalJSON writes the observation with its kind's fields. A stream's "done" is written even when
// false: "not done yet" is what the Tier-0 spy reports most of the time.
func (o Observation) MarshalJSON() ([]byte, error) {
	return o.AppendJSON(make([]byte, 0, 512))
}

// AppendJSON appends the observation's JSON to dst: the bytes that encoding/json gave when MarshalJSON
// went through its reflection, field by field, without reflection and without allocating beyond dst's
// growth. It fails where encoding/json fails, with the same error: a time that RFC 3339 cannot carry (a
// year outside [0,9999], a zone offset of 24 hours or more) or a b_field that is NaN or infinite. On
// failure it returns dst as it was.
//
// The fields come in the struct's order and obey their omitempty and omitzero tags, except for a
// KindStreamDone observation: its "done" is always written, and last (MarshalJSON used to wrap the
// observation in a struct with one more field, and encoding/json writes the wrapped struct's fields
// first).
func (o *Observation) AppendJSON(dst []byte) ([]byte, error) {
	b := append(dst, `{"source":`...)
	b = appendJSONString(b, string(o.Source))
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, string(o.Kind))
	if o.Run != 0 {
		b = append(b, `,"run":`...)
		b = strconv.AppendUint(b, uint64(o.Run), 10)
	}
	b = append(b, `,"at":`...)
	b, ok := appendJSONTime(b, o.At)
	if !ok {
		return dst, timeError(o.At)
	}
	if !o.Seen.IsZero() {
		b = append(b, `,"seen":`...)
		if b, ok = appendJSONTime(b, o.Seen); !ok {
			return dst, timeError(o.Seen)
		}
	}
	if o.RunInfo != nil {
		b = append(b, `,"run_info":`...)
		var err error
		if b, err = o.RunInfo.appendJSON(b); err != nil {
			return dst, err
		}
	}
	b = appendOptString(b, `,"stream":`, o.Stream)
	streamDone := o.Kind == KindStreamDone
	if o.Done && !streamDone {
		b = append(b, `,"done":true`...)
	}
	b = appendOptStrings(b, `,"producers":`, o.Producers)
	b = appendOptString(b, `,"dataset":`, o.Dataset)
	b = appendOptString(b, `,"workflow":`, o.Workflow)
	b = appendOptString(b, `,"input_tag":`, o.InputTag)
	b = appendOptString(b, `,"file":`, o.File)
	b = appendOptString(b, `,"file_hash":`, o.FileHash)
	b = appendOptStrings(b, `,"destinations":`, o.Destinations)
	if len(o.Payloads) > 0 {
		b = append(b, `,"payloads":[`...)
		for i := range o.Payloads {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = o.Payloads[i].appendJSON(b); err != nil {
				return dst, err
			}
		}
		b = append(b, ']')
	}
	if o.Prep {
		b = append(b, `,"prep":true`...)
	}
	b = appendOptString(b, `,"tag":`, o.Tag)
	b = appendOptString(b, `,"status":`, string(o.Status))
	b = appendOptString(b, `,"info":`, o.Info)
	if o.Since != 0 {
		b = append(b, `,"since":`...)
		b = strconv.AppendUint(b, o.Since, 10)
	}
	b = appendOptString(b, `,"time_type":`, string(o.TimeType))
	if !o.Inserted.IsZero() {
		b = append(b, `,"inserted":`...)
		if b, ok = appendJSONTime(b, o.Inserted); !ok {
			return dst, timeError(o.Inserted)
		}
	}
	b = appendOptString(b, `,"payload":`, o.Payload)
	b = appendOptString(b, `,"previous":`, o.Previous)
	b = appendOptString(b, `,"synchronization":`, o.Synchronization)
	b = appendOptString(b, `,"quality":`, string(o.Quality))
	b = appendOptString(b, `,"action":`, string(o.Action))
	b = appendOptString(b, `,"actor":`, o.Actor)
	b = appendOptString(b, `,"reason":`, o.Reason)
	if streamDone {
		b = append(b, `,"done":`...)
		b = strconv.AppendBool(b, o.Done)
	}
	return append(b, '}'), nil
}

// appendJSON appends the run's JSON object, as encoding/json writes it.
func (r *RunInfo) appendJSON(dst []byte) ([]byte, error) {
	b := append(dst, `{"start":`...)
	b, ok := appendJSONTime(b, r.Start)
	if !ok {
		return dst, timeError(r.Start)
	}
	if r.Stop != nil {
		b = append(b, `,"stop":`...)
		if b, ok = appendJSONTime(b, *r.Stop); !ok {
			return dst, timeError(r.Stop) // encoding/json names the pointer type in its error
		}
	}
	b = appendOptString(b, `,"class":`, r.Class)
	if r.Fill != nil {
		b = append(b, `,"fill":`...)
		b = strconv.AppendInt(b, int64(*r.Fill), 10)
	}
	b = append(b, `,"b_field":`...)
	b, ok = appendJSONFloat(b, r.BField)
	if !ok {
		_, err := json.Marshal(r.BField)
		return dst, err
	}
	if r.Lumis != 0 {
		b = append(b, `,"lumisections":`...)
		b = strconv.AppendInt(b, int64(r.Lumis), 10)
	}
	b = appendOptString(b, `,"era":`, r.Era)
	b = appendOptString(b, `,"sequence":`, r.Sequence)
	b = appendOptString(b, `,"hlt_key":`, r.HLTKey)
	b = appendOptString(b, `,"fill_type":`, r.FillType)
	if r.StableBeam {
		b = append(b, `,"stable_beam":true`...)
	}
	b = appendOptStrings(b, `,"components":`, r.Components)
	if !r.LastUpdate.IsZero() {
		b = append(b, `,"last_update":`...)
		if b, ok = appendJSONTime(b, r.LastUpdate); !ok {
			return dst, timeError(r.LastUpdate)
		}
	}
	return append(b, '}'), nil
}

// appendJSON appends the IOV's JSON object, as encoding/json writes it.
func (v *IOV) appendJSON(dst []byte) ([]byte, error) {
	b := append(dst, `{"since":`...)
	b = strconv.AppendUint(b, v.Since, 10)
	b = append(b, `,"payload":`...)
	b = appendJSONString(b, v.Payload)
	if !v.Inserted.IsZero() {
		b = append(b, `,"inserted":`...)
		var ok bool
		if b, ok = appendJSONTime(b, v.Inserted); !ok {
			return dst, timeError(v.Inserted)
		}
	}
	return append(b, '}'), nil
}

// appendOptString appends the key and the quoted string unless the string is empty (omitempty).
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, key...), s)
}

// appendOptStrings appends the key and the array unless it has no element (omitempty: nil and empty
// slices alike).
func appendOptStrings(b []byte, key string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONTime appends the quoted time as time.Time.MarshalJSON writes it: RFC 3339 with nanoseconds
// and trailing zeros dropped. AppendText formats exactly so and refuses exactly the times MarshalJSON
// refuses; it reports false then, and b is not to be used.
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	n := len(b)
	b = append(b, '"')
	out, err := t.AppendText(b)
	if err != nil {
		return b[:n], false
	}
	return append(out, '"'), true
}

// timeError is the error encoding/json gives for a time it cannot write. It is made by encoding/json
// itself, so that the message (which names the Go type and MarshalJSON) stays what it was. Only the
// failure path pays for it.
func timeError[T time.Time | *time.Time](t T) error {
	_, err := json.Marshal(t)
	return err
}

// appendJSONFloat appends f as encoding/json writes a float64: the shortest decimal that reads back
// as f, in plain notation when 1e-6 <= |f| < 1e21 (or f is zero) and in exponent notation otherwise,
// with the exponent's leading zero dropped (1e-7, not 1e-07). NaN and the infinities have no JSON
// form: it reports false for them.
func appendJSONFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	a := math.Abs(f)
	if a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64), true
	}
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	// strconv pads the exponent to two digits; only negative exponents can be below 10 here.
	if n := len(b); b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b, true
}

// jsonPlain says which ASCII bytes encoding/json copies into a string unescaped when it escapes for
// HTML (json.Marshal always does): printable ones other than the quote, the backslash, <, > and &.
var jsonPlain = func() (plain [utf8.RuneSelf]bool) {
	for c := byte(' '); c < utf8.RuneSelf; c++ {
		plain[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return plain
}()

const lowerHex = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes a string with HTML escaping on: \" and
// \\; \b \f \n \r \t for those controls and \u00XX for the other control bytes and for < > &; \u2028
// and \u2029 for the line and paragraph separators; \ufffd for each byte that is not part of valid
// UTF-8. Everything else, DEL and valid non-ASCII included, is copied as it is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	from := 0 // s[from:i] is pending, to be copied as it is
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonPlain[c] {
				i++
				continue
			}
			b = append(b, s[from:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xf])
			}
			i++
			from = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[from:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[from:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', lowerHex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		from = i
	}
	b = append(b, s[from:]...)
	return append(b, '"')
}
