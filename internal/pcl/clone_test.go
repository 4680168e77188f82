package pcl

import (
	"reflect"
	"testing"
	"time"
)

// fillAll sets every field reachable from v to a non-zero value, with two elements in each slice, so
// that a field added to RunState later is covered by the clone test without naming it.
func fillAll(t *testing.T, v reflect.Value) {
	t.Helper()
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillAll(t, v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fillAll(t, v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillAll(t, v.Field(i))
			}
		}
	default:
		t.Fatalf("fillAll: a %s field: teach the clone test (and Clone) about it", v.Kind())
	}
}

// sharesMemory reports the first path at which a and b hold the same pointer or slice backing array.
func sharesMemory(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return sharesMemory(a.Elem(), b.Elem(), path)
	case reflect.Slice:
		if a.Len() == 0 || b.Len() == 0 {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		for i := range min(a.Len(), b.Len()) {
			if p := sharesMemory(a.Index(i), b.Index(i), path+"[i]"); p != "" {
				return p
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if p := sharesMemory(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

func TestCloneSharesNothing(t *testing.T) {
	var rs RunState
	fillAll(t, reflect.ValueOf(&rs).Elem())
	c := rs.Clone()
	if !reflect.DeepEqual(rs, c) {
		t.Fatalf("the clone differs:\n%+v\n%+v", rs, c)
	}
	if p := sharesMemory(reflect.ValueOf(rs), reflect.ValueOf(c), "RunState"); p != "" {
		t.Fatalf("the clone shares %s with the original", p)
	}
	c.Workflows[0].Flags[0] = FlagAtRisk
	*c.Info.Stop = time.Time{}
	if rs.Workflows[0].Flags[0] == FlagAtRisk || rs.Info.Stop.IsZero() {
		t.Fatal("changing the clone changed the original")
	}
	if z := (RunState{}).Clone(); !reflect.DeepEqual(z, RunState{}) {
		t.Fatalf("the zero state's clone is %+v", z)
	}
}
