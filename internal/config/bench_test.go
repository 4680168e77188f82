package config

import "testing"

func BenchmarkCheckFull(b *testing.B) {
	data := ExampleYAML()
	for b.Loop() {
		if p := Check("full.yaml", data); len(p) != 0 {
			b.Fatal(p)
		}
	}
}
