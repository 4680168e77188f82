package pcl

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// marshalReflect is the reference: what MarshalJSON did before AppendJSON, through encoding/json's
// reflection. A KindStreamDone observation is wrapped in a struct whose own "done" (never omitted)
// hides the observation's and comes after its fields.
func marshalReflect(o Observation) ([]byte, error) {
	type plain Observation
	if o.Kind != KindStreamDone {
		return json.Marshal(plain(o))
	}
	return json.Marshal(struct {
		plain
		Done bool `json:"done"`
	}{plain(o), o.Done})
}

// reflectObservation has the old MarshalJSON, so that json.Marshal of it is the old path whole:
// reflection, then encoding/json's compaction of the Marshaler's output.
type reflectObservation Observation

func (o reflectObservation) MarshalJSON() ([]byte, error) { return marshalReflect(Observation(o)) }

// errText is an error's message, "" for none.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkAppendJSON compares AppendJSON with the reference for o, and json.Marshal of o with json.Marshal
// of the old path. It returns AppendJSON's output, nil when the observation cannot be written.
func checkAppendJSON(t *testing.T, o Observation) []byte {
	t.Helper()
	want, wantErr := marshalReflect(o)
	prefix := []byte("prefix:")
	got, err := o.AppendJSON(prefix[:len(prefix):len(prefix)])
	if errText(err) != errText(wantErr) {
		t.Fatalf("error %q, reference %q\n%#v", errText(err), errText(wantErr), o)
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("dst lost: %q", got)
	}
	got = got[len(prefix):]
	if err != nil {
		if len(got) != 0 {
			t.Fatalf("failed AppendJSON appended %q", got)
		}
	} else if !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON differs from the reference\n got %s\nwant %s\n%#v", got, want, o)
	}

	// Both errors are MarshalerErrors naming their own type; what they wrap must be the same.
	viaMarshal, err := json.Marshal(o)
	old, oldErr := json.Marshal(reflectObservation(o))
	if errText(errors.Unwrap(err)) != errText(errors.Unwrap(oldErr)) || (err == nil) != (oldErr == nil) || !bytes.Equal(viaMarshal, old) {
		t.Fatalf("json.Marshal: %s (%v), before AppendJSON: %s (%v)", viaMarshal, err, old, oldErr)
	}
	if wantErr != nil {
		return nil
	}
	return got
}

// normalized is o as JSON carries it: strings with each byte of invalid UTF-8 replaced by U+FFFD,
// empty slices as nil, times in UTC without a monotonic reading.
func normalized(o Observation) Observation {
	s := func(v string) string { return string([]rune(v)) }
	ss := func(v []string) []string {
		if len(v) == 0 {
			return nil
		}
		out := make([]string, len(v))
		for i := range v {
			out[i] = s(v[i])
		}
		return out
	}
	// RFC 3339 has no seconds in a zone offset: the time is written as its wall clock in the zone and
	// the offset cut to whole minutes, so a zone like Zürich's mean time (+00:34:08) moves the instant.
	tm := func(t time.Time) time.Time {
		_, offset := t.Zone()
		return t.UTC().Add(time.Duration(offset%60) * time.Second).Round(0)
	}
	tmz := func(t time.Time) time.Time { // omitzero: a zero time is not written at all
		if t.IsZero() {
			return time.Time{}
		}
		return tm(t)
	}
	o.Source, o.Kind, o.At, o.Seen = Source(s(string(o.Source))), Kind(s(string(o.Kind))), tm(o.At), tmz(o.Seen)
	if o.RunInfo != nil {
		r := *o.RunInfo
		r.Start, r.LastUpdate = tm(r.Start), tmz(r.LastUpdate)
		if r.Stop != nil {
			stop := tm(*r.Stop)
			r.Stop = &stop
		}
		r.Class, r.Era, r.Sequence, r.HLTKey, r.FillType = s(r.Class), s(r.Era), s(r.Sequence), s(r.HLTKey), s(r.FillType)
		r.Components = ss(r.Components)
		o.RunInfo = &r
	}
	o.Stream, o.Producers, o.Dataset = s(o.Stream), ss(o.Producers), s(o.Dataset)
	o.Workflow, o.InputTag, o.File, o.FileHash = s(o.Workflow), s(o.InputTag), s(o.File), s(o.FileHash)
	o.Destinations = ss(o.Destinations)
	if len(o.Payloads) == 0 {
		o.Payloads = nil
	} else {
		p := make([]IOV, len(o.Payloads))
		for i, v := range o.Payloads {
			p[i] = IOV{Since: v.Since, Payload: s(v.Payload), Inserted: tmz(v.Inserted)}
		}
		o.Payloads = p
	}
	o.Tag, o.Status, o.Info = s(o.Tag), UploadStatus(s(string(o.Status))), s(o.Info)
	o.TimeType, o.Inserted, o.Payload, o.Previous = TimeType(s(string(o.TimeType))), tmz(o.Inserted), s(o.Payload), s(o.Previous)
	o.Synchronization = s(o.Synchronization)
	o.Quality, o.Action, o.Actor, o.Reason = Quality(s(string(o.Quality))), OverrideAction(s(string(o.Action))), s(o.Actor), s(o.Reason)
	return o
}

// checkRoundTrip decodes b, which AppendJSON wrote for o, and checks that it gives o back (as JSON
// carries it) and that the decoded observation is written as encoding/json writes it too. (Not always
// as b: a \ufffd in b decodes to U+FFFD, which is written as it is.)
func checkRoundTrip(t *testing.T, o Observation, b []byte) {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("invalid JSON %s", b)
	}
	var back Observation
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if want, got := normalized(o), normalized(back); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip of %s\n got %#v\nwant %#v", b, got, want)
	}
	if checkAppendJSON(t, back) == nil {
		t.Fatalf("the decoded observation cannot be written: %s", b)
	}
}

// stringPieces are what random strings are made of: plain text, every character encoding/json
// escapes, non-ASCII text, and invalid UTF-8 (a lone continuation byte, truncated sequences, a
// surrogate, a code point above U+10FFFF, an overlong form).
var stringPieces = []string{
	"Express", "Run392001@SiStripApvGain_pcl@3f9c.db", " ", "a", "0", "/StreamExpress/Run2025/ALCAPROMPT",
	`"`, `\`, `\"`, `\u2028`, "<", ">", "&", "<script>&amp;</script>", "'", "/", "\x7f", "\x00", "\x01",
	"\b", "\f", "\n", "\r", "\t", "\x0b", "\x1b", "\x1f", "\u2028", "\u2029", "\u2027", "\u202a", "é", "Zürich",
	"日本語", "\U0001F600", "\uFFFD", "\ufeff", "\xff", "\x80", "\xc3", "\xe2\x80", "\xe2\x80\xa8\xe2", "\xed\xa0\x80",
	"\xf4\x90\x80\x80", "\xc0\xaf", "\xf0\x9f\x98",
}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return ""
	}
	var sb strings.Builder
	for n := 1 + r.IntN(6); n > 0; n-- {
		if r.IntN(8) == 0 {
			sb.WriteByte(byte(r.IntN(256))) // any byte at all
		} else {
			sb.WriteString(stringPieces[r.IntN(len(stringPieces))])
		}
	}
	return sb.String()
}

func randStrings(r *rand.Rand) []string {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	ss := make([]string, 1+r.IntN(3))
	for i := range ss {
		ss[i] = randString(r)
	}
	return ss
}

var zones = []*time.Location{time.UTC, time.Local, time.FixedZone("CEST", 2*3600), time.FixedZone("", -5*3600-30*60),
	time.FixedZone("odd", 5*3600+45*60+17), time.FixedZone("", -30*60), time.FixedZone("UTC", 0),
	time.FixedZone("max", 23*3600+59*60)}

// randTime gives a time in one of several zones: often zero, with and without nanoseconds (some with
// trailing zeros), rarely with a monotonic reading, and once in a while one that encoding/json refuses.
func randTime(r *rand.Rand) time.Time {
	var t time.Time
	switch r.IntN(12) {
	case 0, 1:
		// the zero time, which omitzero leaves out and which some fields write anyway
	case 2:
		t = time.Unix(r.Int64N(4e9), 0)
	case 3:
		t = time.Unix(r.Int64N(4e9), int64(r.IntN(1000))*1e6)
	case 4:
		t = time.Now()
	case 5:
		if r.IntN(20) == 0 { // refused: the year has other than four digits, or the zone is a day off
			switch r.IntN(4) {
			case 0:
				return time.Date(10000+r.IntN(5000), 1, 1, 0, 0, 0, 0, time.UTC)
			case 1:
				return time.Date(-1-r.IntN(5000), 12, 31, 23, 59, 59, 0, time.UTC)
			case 2:
				return time.Date(9999, 12, 31, 23, 30, 0, 0, time.UTC).In(time.FixedZone("", 3600))
			default:
				return time.Date(2025, 6, 1, 0, 0, 0, 0, time.FixedZone("", (24+r.IntN(3))*3600))
			}
		}
		t = time.Date(r.IntN(10000), time.January, 1, 0, 0, 0, r.IntN(1e9), time.UTC).Add(time.Duration(r.Int64N(365 * 24 * int64(time.Hour))))
		if t.Year() > 9998 {
			t = t.AddDate(-1, 0, 0)
		}
	default:
		t = time.Unix(r.Int64N(4e9), r.Int64N(1e9))
	}
	return t.In(zones[r.IntN(len(zones))])
}

func randFloat(r *rand.Rand) float64 {
	switch r.IntN(12) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return float64(r.IntN(9)) - 4
	case 3:
		return []float64{3.8, 3.8000000000000003, 1e-6, math.Nextafter(1e-6, 0), 1e21, math.Nextafter(1e21, 0), 1e20, 1e-7,
			5e-324, math.MaxFloat64, -1e-10, 123456789e-15, 0.1, 1.0 / 3}[r.IntN(14)]
	case 4:
		if r.IntN(10) == 0 {
			return []float64{math.NaN(), math.Inf(1), math.Inf(-1)}[r.IntN(3)] // refused
		}
		return r.NormFloat64()
	case 5:
		return math.Float64frombits(r.Uint64()) // anything, NaN included now and then
	default:
		return r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30))
	}
}

func randRunInfo(r *rand.Rand) *RunInfo {
	if r.IntN(3) == 0 {
		return nil
	}
	ri := &RunInfo{Start: randTime(r), Class: randString(r), BField: randFloat(r), Era: randString(r),
		Sequence: randString(r), HLTKey: randString(r), FillType: randString(r), StableBeam: r.IntN(2) == 0,
		Components: randStrings(r), LastUpdate: randTime(r)}
	if r.IntN(2) == 0 {
		stop := randTime(r)
		ri.Stop = &stop
	}
	if r.IntN(2) == 0 {
		fill := []int{0, -1, 10742, math.MaxInt, math.MinInt}[r.IntN(5)]
		ri.Fill = &fill
	}
	if r.IntN(2) == 0 {
		ri.Lumis = int(r.Int64()) >> r.IntN(64)
		if r.IntN(4) == 0 {
			ri.Lumis = -ri.Lumis
		}
	}
	return ri
}

func randObservation(r *rand.Rand) Observation {
	maybe := func(s string) string {
		if r.IntN(2) == 0 {
			return ""
		}
		return s
	}
	o := Observation{Source: Source(maybe(string(append(Sources, SourceOperator)[r.IntN(len(Sources)+1)]))), At: randTime(r),
		Seen: randTime(r), RunInfo: randRunInfo(r), Stream: randString(r), Done: r.IntN(2) == 0, Producers: randStrings(r),
		Dataset: randString(r), Workflow: randString(r), InputTag: randString(r), File: randString(r),
		FileHash: randString(r), Destinations: randStrings(r), Prep: r.IntN(2) == 0, Tag: randString(r),
		Status: UploadStatus(maybe(string(UploadTooLate))), Info: randString(r), TimeType: TimeType(maybe(string(TimeLumi))),
		Inserted: randTime(r), Payload: randString(r), Previous: randString(r), Synchronization: randString(r), Quality: Quality(maybe(string(QualityBad))),
		Action: OverrideAction(maybe(string(OverrideAccept))), Actor: randString(r), Reason: randString(r)}
	if r.IntN(5) == 0 {
		o.Source = Source(randString(r))
	}
	if r.IntN(10) == 0 {
		o.Kind = Kind(randString(r))
	} else {
		o.Kind = Kinds[r.IntN(len(Kinds))]
	}
	if r.IntN(4) > 0 {
		o.Run = r.Uint32() >> r.IntN(32)
	}
	if r.IntN(4) > 0 {
		o.Since = r.Uint64() >> r.IntN(64)
	}
	switch r.IntN(4) {
	case 0:
	case 1:
		o.Payloads = []IOV{}
	default:
		o.Payloads = make([]IOV, 1+r.IntN(3))
		for i := range o.Payloads {
			o.Payloads[i] = IOV{Since: r.Uint64() >> r.IntN(64), Payload: randString(r), Inserted: randTime(r)}
		}
	}
	return o
}

// TestAppendJSONMatchesReflection checks AppendJSON against encoding/json's reflection over random
// observations, and that what it writes decodes back to the observation.
func TestAppendJSONMatchesReflection(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(20250614, 392001))
	failed := 0
	for range 5000 {
		o := randObservation(r)
		b := checkAppendJSON(t, o)
		if b == nil {
			failed++
			continue
		}
		checkRoundTrip(t, o, b)
	}
	if failed == 0 || failed > 1000 {
		t.Errorf("%d of 5000 observations cannot be written; the generator should make some, not many", failed)
	}
	for _, o := range keyCases() {
		checkRoundTrip(t, o, checkAppendJSON(t, o))
	}
}

func TestAppendJSONErrors(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 14, 8, 30, 15, 0, time.UTC)
	y10k := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	bc := time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC)
	y9999 := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	y0 := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	east := time.Date(2025, 6, 14, 8, 30, 15, 0, time.FixedZone("", 24*3600))
	base := func(mod func(*Observation)) Observation {
		o := Observation{Source: SourceCondDB, Kind: KindIOV, Run: 1, At: at}
		mod(&o)
		return o
	}
	for _, tc := range []struct {
		name string
		o    Observation
		err  string // "" when it can be written
	}{
		{"at year 10000", base(func(o *Observation) { o.At = y10k }), "year outside of range [0,9999]"},
		{"at year -1", base(func(o *Observation) { o.At = bc }), "year outside of range [0,9999]"},
		{"at year 9999", base(func(o *Observation) { o.At = y9999 }), ""},
		{"at year 0", base(func(o *Observation) { o.At = y0 }), ""},
		{"at UTC year 9999, local year 10000", base(func(o *Observation) { o.At = y9999.In(time.FixedZone("", 3600)) }), "year outside"},
		{"at zone +24:00", base(func(o *Observation) { o.At = east }), "timezone hour outside of range [0,23]"},
		{"seen", base(func(o *Observation) { o.Seen = y10k }), "year outside"},
		{"inserted", base(func(o *Observation) { o.Inserted = bc }), "year outside"},
		{"run start", base(func(o *Observation) { o.RunInfo = &RunInfo{Start: y10k} }), "for type time.Time"},
		{"run stop", base(func(o *Observation) { o.RunInfo = &RunInfo{Start: at, Stop: &bc} }), "for type *time.Time"},
		{"run last update", base(func(o *Observation) { o.RunInfo = &RunInfo{Start: at, LastUpdate: east} }), "timezone hour"},
		{"payload inserted", base(func(o *Observation) { o.Payloads = []IOV{{Since: 1, Payload: "p", Inserted: y10k}} }), "year outside"},
		{"second payload inserted", base(func(o *Observation) { o.Payloads = []IOV{{Since: 1}, {Since: 2, Inserted: bc}} }), "year outside"},
		{"b_field NaN", base(func(o *Observation) { o.RunInfo = &RunInfo{Start: at, BField: math.NaN()} }), "json: unsupported value: NaN"},
		{"b_field +Inf", base(func(o *Observation) { o.RunInfo = &RunInfo{Start: at, BField: math.Inf(1)} }), "unsupported value: +Inf"},
		{"b_field -Inf", base(func(o *Observation) { o.RunInfo = &RunInfo{Start: at, BField: math.Inf(-1)} }), "unsupported value: -Inf"},
		{"stream done", base(func(o *Observation) { o.Kind, o.At = KindStreamDone, y10k }), "year outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dst := []byte("kept")
			b, err := tc.o.AppendJSON(dst)
			if !strings.Contains(errText(err), tc.err) || (tc.err == "") != (err == nil) {
				t.Fatalf("error %v, want one saying %q", err, tc.err)
			}
			if err != nil && string(b) != "kept" {
				t.Errorf("a failed AppendJSON returned %q, not dst", b)
			}
			checkAppendJSON(t, tc.o) // the same error as encoding/json's, word for word
			if _, err := json.Marshal(tc.o); (err == nil) != (tc.err == "") {
				t.Errorf("json.Marshal: %v", err)
			}
		})
	}
}

func TestAppendJSONStreamDone(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 14, 8, 30, 15, 0, time.UTC)
	for _, tc := range []struct {
		name string
		o    Observation
		want string
	}{
		{"stream done, false", Observation{Source: SourceTier0, Kind: KindStreamDone, Run: 392001, At: at, Stream: "Express"},
			`{"source":"tier0","kind":"stream-done","run":392001,"at":"2025-06-14T08:30:15Z","stream":"Express","done":false}`},
		// "done" comes after every other field, not after "stream" where the struct has it.
		{"stream done, true", Observation{Source: SourceTier0, Kind: KindStreamDone, Run: 392001, At: at, Stream: "Express", Done: true, Reason: "r"},
			`{"source":"tier0","kind":"stream-done","run":392001,"at":"2025-06-14T08:30:15Z","stream":"Express","reason":"r","done":true}`},
		{"other kind, done true", Observation{Source: SourceTier0, Kind: KindExpressConfig, Run: 392001, At: at, Stream: "Express", Done: true, Reason: "r"},
			`{"source":"tier0","kind":"express-config","run":392001,"at":"2025-06-14T08:30:15Z","stream":"Express","done":true,"reason":"r"}`},
		{"other kind, done false", Observation{Source: SourceTier0, Kind: KindExpressConfig, Run: 392001, At: at, Stream: "Express"},
			`{"source":"tier0","kind":"express-config","run":392001,"at":"2025-06-14T08:30:15Z","stream":"Express"}`},
		{"zero", Observation{},
			`{"source":"","kind":"","at":"0001-01-01T00:00:00Z"}`},
		{"zero stream done", Observation{Kind: KindStreamDone},
			`{"source":"","kind":"stream-done","at":"0001-01-01T00:00:00Z","done":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := tc.o.AppendJSON(nil)
			if err != nil || string(b) != tc.want {
				t.Fatalf("%s (%v)\nwant %s", b, err, tc.want)
			}
			checkRoundTrip(t, tc.o, checkAppendJSON(t, tc.o))
		})
	}
}

// TestAppendJSONEveryField writes an observation with every field set and checks the keys and their
// order against the struct's json tags, so that a field added to the struct and not to AppendJSON fails
// here even if the random test's generator does not know it either.
func TestAppendJSONEveryField(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 14, 8, 30, 15, 5, time.UTC)
	fill := 7
	o := Observation{Run: 1, At: at, Seen: at, Done: true, Prep: true, Since: 1, Inserted: at, Producers: []string{"x"},
		Destinations: []string{"x"}, Payloads: []IOV{{Inserted: at}},
		RunInfo: &RunInfo{Start: at, Stop: &at, Fill: &fill, BField: 1, Lumis: 1, StableBeam: true, Components: []string{"x"}, LastUpdate: at}}
	fillStrings := func(v reflect.Value) {
		for i := range v.NumField() {
			if f := v.Field(i); f.Kind() == reflect.String {
				f.SetString("s")
			}
		}
	}
	fillStrings(reflect.ValueOf(&o).Elem())
	fillStrings(reflect.ValueOf(o.RunInfo).Elem())
	fillStrings(reflect.ValueOf(&o.Payloads[0]).Elem())

	keys := func(typ reflect.Type) []string {
		var ks []string
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name == "-" {
				continue // not encoded (Seq)
			}
			ks = append(ks, name)
		}
		return ks
	}
	var want, got []string
	for _, k := range keys(reflect.TypeFor[Observation]()) {
		want = append(want, k)
		switch k {
		case "run_info":
			want = append(want, keys(reflect.TypeFor[RunInfo]())...)
		case "payloads":
			want = append(want, keys(reflect.TypeFor[IOV]())...)
		}
	}
	b, err := o.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every key of every object, in order: a string token in an object is a key when no key awaits
	// its value.
	dec := json.NewDecoder(bytes.NewReader(b))
	var open []json.Delim // the containers the decoder is in
	keyed := false        // the innermost object has a key awaiting its value
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		inObject := len(open) > 0 && open[len(open)-1] == '{'
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				open = append(open, v)
				keyed = false
			default:
				open = open[:len(open)-1]
				keyed = false // the container was the value of its parent's key, if any
			}
		case string:
			if inObject && !keyed {
				got = append(got, v)
				keyed = true
			} else {
				keyed = false
			}
		default:
			keyed = false
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys\n got %v\nwant %v\n%s", got, want, b)
	}
	checkRoundTrip(t, o, checkAppendJSON(t, o))
}

// FuzzAppendJSON builds an observation from fuzzed strings and numbers and compares AppendJSON with
// encoding/json's reflection.
func FuzzAppendJSON(f *testing.F) {
	f.Add(uint8(0), "tier0", "Express", uint64(392001), int64(1749889815), int64(123456789), int32(7200), 3.8, uint16(0xffff))
	f.Add(uint8(2), "<a&b>", "\u2028\"\\\x00\xff", uint64(0), int64(0), int64(0), int32(0), 0.0, uint16(0))
	f.Add(uint8(8), "日本語", "\xed\xa0\x80", uint64(math.MaxUint64), int64(253402300800), int64(0), int32(-3600), 1e-7, uint16(0x5555))
	f.Add(uint8(5), "", "x", uint64(1), int64(-62135596801), int64(999999999), int32(86400), 1e21, uint16(0xaaaa))
	f.Add(uint8(11), "kind", "", uint64(1<<32|17), int64(1), int64(1), int32(-86399), math.Inf(1), uint16(3))
	f.Fuzz(func(t *testing.T, k uint8, s1, s2 string, n uint64, sec, nsec int64, offset int32, fl float64, bits uint16) {
		bit := func(i uint) bool { return bits>>(i%16)&1 == 1 }
		str := func(i uint) string {
			if bit(i) {
				return s1
			}
			return s2
		}
		at := time.Unix(sec, nsec).In(time.FixedZone(s1, int(offset)%(30*3600)))
		kind := Kind(s2)
		if int(k) < len(Kinds) {
			kind = Kinds[k]
		}
		fill := int(n)
		o := Observation{Source: Source(str(0)), Kind: kind, Run: uint32(n), At: at, Stream: str(1), Done: bit(2),
			Producers: []string{s1, s2}[:int(k)%3], Dataset: str(3), Workflow: str(4), InputTag: str(5), File: str(6),
			FileHash: str(7), Destinations: []string{s2, s1}[:int(k>>2)%3], Prep: bit(8), Tag: str(9),
			Status: UploadStatus(str(10)), Info: str(11), Since: n, TimeType: TimeType(str(12)), Payload: str(13),
			Previous: str(14), Synchronization: str(13), Quality: Quality(str(15)), Action: OverrideAction(str(0)), Actor: str(1), Reason: str(2)}
		if bit(3) {
			o.Seen = at
		}
		if bit(4) {
			o.Inserted = at.Add(time.Duration(n))
		}
		if bit(5) {
			o.RunInfo = &RunInfo{Start: at, Class: str(6), BField: fl, Lumis: int(sec), Era: str(7), Sequence: str(8),
				HLTKey: str(9), FillType: str(10), StableBeam: bit(6), Components: []string{s1, s2, ""}[:int(k>>4)%4]}
			if bit(7) {
				stop := at.Add(time.Duration(nsec))
				o.RunInfo.Stop = &stop
			}
			if bit(9) {
				o.RunInfo.Fill = &fill
			}
			if bit(10) {
				o.RunInfo.LastUpdate = at.AddDate(0, 0, int(offset)%1000)
			}
		}
		if bit(11) {
			o.Payloads = []IOV{{Since: n, Payload: s1}, {Since: uint64(sec), Payload: s2, Inserted: at}}[:1+int(k>>6)%2]
		}
		if b := checkAppendJSON(t, o); b != nil {
			checkRoundTrip(t, o, b)
		}
	})
}

// benchObservations are typical of what the store keeps: an IOV, a harvested file with two
// destination tags and one payload, and a run from OMS.
func benchObservations() []struct {
	name string
	o    Observation
} {
	at := time.Date(2025, 6, 14, 8, 30, 15, 0, time.UTC)
	seen := at.Add(1234567891 * time.Nanosecond)
	stop := at.Add(47 * time.Minute)
	fill := 10742
	return []struct {
		name string
		o    Observation
	}{
		{"iov", Observation{Source: SourceCondDB, Kind: KindIOV, Run: 392001, At: at, Seen: seen,
			Tag: "BeamSpotObjects_PCL_byLumi_v0_prompt", Since: 392001<<32 | 17, TimeType: TimeLumi, Inserted: at,
			Payload: "d1e5c0ffee0123456789abcdef0123456789abcd", Previous: "0123456789abcdef0123456789abcdefd1e5c0ff"}},
		{"harvest-file", Observation{Source: SourceHarvest, Kind: KindHarvestFile, Run: 392001, At: at, Seen: seen,
			Workflow: "SiStripGains", InputTag: "SiStripApvGain_pcl",
			File:         "Run392001@SiStripApvGain_pcl@3f9c2a1e-5b7d-4e0f-9a8b-1c2d3e4f5a6b.db",
			Destinations: []string{"SiStripApvGainAfterAbortGap_PCL_v0_prompt", "SiStripApvGain_GR10_v1_hlt"},
			Payloads:     []IOV{{Since: 392001, Payload: "5f0b2d6e9a8c7b6a5f4e3d2c1b0a99887766554433", Inserted: at}}}},
		{"run", Observation{Source: SourceOMS, Kind: KindRun, Run: 392001, At: at, Seen: seen,
			RunInfo: &RunInfo{Start: at.Add(-time.Hour), Stop: &stop, Class: "Collisions25", Fill: &fill, BField: 3.8,
				Lumis: 1234, Era: "Run2025C", Sequence: "GLOBAL-RUN", HLTKey: "/cdaq/physics/Run2025/2e34/v1.2.3/HLT/V4",
				FillType: "PROTONS", StableBeam: true, LastUpdate: stop.Add(time.Minute),
				Components: []string{"CSC", "DAQ", "DCS", "DQM", "DT", "ECAL", "ES", "GEM", "HCAL", "HF", "PIXEL", "RPC", "SCAL", "TCDS", "TRACKER", "TRG"}}}},
	}
}

// BenchmarkMarshalReflect is the store's path before AppendJSON: json.Marshal of the observation,
// whose MarshalJSON went through reflection, then encoding/json's compaction of its output.
func BenchmarkMarshalReflect(b *testing.B) {
	for _, bo := range benchObservations() {
		b.Run(bo.name, func(b *testing.B) {
			o := reflectObservation(bo.o)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(&o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendJSON writes into a reused buffer, as the store can.
func BenchmarkAppendJSON(b *testing.B) {
	for _, bo := range benchObservations() {
		b.Run(bo.name, func(b *testing.B) {
			o := bo.o
			var buf []byte
			var err error
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = o.AppendJSON(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkAppendJSONViaMarshal is json.Marshal of the observation now: MarshalJSON calls AppendJSON,
// and encoding/json still checks and compacts its output.
func BenchmarkAppendJSONViaMarshal(b *testing.B) {
	for _, bo := range benchObservations() {
		b.Run(bo.name, func(b *testing.B) {
			o := bo.o
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(&o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
