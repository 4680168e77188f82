package pcl

import "testing"

func TestParseHarvestName(t *testing.T) {
	t.Parallel()
	good := map[string]HarvestName{
		"Run390001@SiStripApvGain_pcl@8a1b2c3d-0e0f-4a4b-9c9d-112233445566.db": {390001, "SiStripApvGain_pcl", "8a1b2c3d-0e0f-4a4b-9c9d-112233445566", HarvestDB},
		"Run1@BeamSpotObject_ByLumi@abc.txt":                                   {1, "BeamSpotObject_ByLumi", "abc", HarvestMetadata},
		"Run4294967295@T@0.txt.uploaded":                                       {4294967295, "T", "0", HarvestUploaded},
	}
	for in, want := range good {
		got, err := ParseHarvestName(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseHarvestName(%q) = %+v, %v", in, got, err)
		}
		if !got.SameUpload(want) || got.DB() != got.Stem()+".db" {
			t.Errorf("%q: SameUpload or DB wrong: %+v", in, got)
		}
	}
	for _, in := range []string{"", "README", "Run@T@u.db", "Run0@T@u.db", "Run01@T@u.db", "Run4294967296@T@u.db",
		"Run12@T.db", "Run12@@u.db", "Run12@T@.db", "Run12@T@u", "Run12@T@u.root", "Run12@T@u.txt.uploaded.bak",
		"Run12@T@u@v.db", "Run-1@T@u.db", "run12@T@u.db", "Run12@T x@u.db", "Run12@T@u.DB", "dir/Run12@T@u.db"} {
		if n, err := ParseHarvestName(in); err == nil {
			t.Errorf("ParseHarvestName(%q) accepted as %+v", in, n)
		}
	}
	a, _ := ParseHarvestName("Run12@T@u.db")
	for _, other := range []string{"Run13@T@u.txt", "Run12@S@u.txt", "Run12@T@v.txt"} {
		if b, _ := ParseHarvestName(other); a.SameUpload(b) {
			t.Errorf("%s and %s taken for one upload", a, b)
		}
	}
}

// TestParseHarvestNameAllocatesNothing: the reconcile parses marker and upload-log names on its hot path.
func TestParseHarvestNameAllocatesNothing(t *testing.T) {
	name := "Run390001@SiStripApvGain_pcl@8a1b2c3d-0e0f-4a4b-9c9d-112233445566.txt.uploaded"
	if n := testing.AllocsPerRun(100, func() {
		if _, err := ParseHarvestName(name); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ParseHarvestName allocates %v times", n)
	}
}

func FuzzParseHarvestName(f *testing.F) {
	for _, s := range []string{"Run390001@SiStripApvGain_pcl@8a1b2c3d-0e0f.db", "Run1@T@u.txt", "Run7@T@u.txt.uploaded", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseHarvestName(s)
		if err != nil {
			return
		}
		if n.String() != s || n.Run == 0 || n.InputTag == "" || n.UUID == "" {
			t.Fatalf("ParseHarvestName(%q) = %+v, which does not print back", s, n)
		}
	})
}

func BenchmarkParseHarvestName(b *testing.B) {
	name := "Run392680@SiPixelQualityFromDbRcd_stuckTBM@0b1d6e5a-1111-2222-3333-444455556666.db"
	for b.Loop() {
		if _, err := ParseHarvestName(name); err != nil {
			b.Fatal(err)
		}
	}
}
