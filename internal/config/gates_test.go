package config

import (
	"reflect"
	"strings"
	"testing"
)

// gatesCatalogue is a one-workflow catalogue whose input says something of gating; gates is its
// mapping's YAML.
func gatesCatalogue(gates string) string {
	return `catalogue:
  - name: SiStripGains
    producer: PromptCalibProdSiStripGains
    streams: [Express]
    inputs:
      - tag: SiStripApvGain_pcl
        destinations: [SiStripApvGain_PCL_v0_hlt, SiStripApvGain_PCL_v0_prompt]
        gates: ` + gates + "\n"
}

func TestCatalogueGatesDecode(t *testing.T) {
	t.Parallel()
	c, err := Parse("gates.yaml", []byte(gatesCatalogue("{SiStripApvGain_PCL_v0_hlt: true, SiStripApvGain_PCL_v0_prompt: false}")))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"SiStripApvGain_PCL_v0_hlt": true, "SiStripApvGain_PCL_v0_prompt": false}
	if got := c.Workflows[0].Inputs[0].Gates; !reflect.DeepEqual(got, want) {
		t.Errorf("gates = %v, want %v", got, want)
	}
	cat, err := c.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	i, _ := cat.DestinationIndex("SiStripApvGain_PCL_v0_hlt")
	if g, set := cat.GatesOf(i); !g || !set {
		t.Errorf("the catalogue does not say the hlt tag gates")
	}
	// An empty mapping is no say at all, as the example writes it.
	c, err = Parse("gates.yaml", []byte(gatesCatalogue("{}")))
	if err != nil || c.Workflows[0].Inputs[0].Gates != nil {
		t.Errorf("gates: {} gave %v, %v", c.Workflows[0].Inputs[0].Gates, err)
	}
	for _, tc := range []struct{ gates, field, msg string }{
		{"{SiStripApvGain_PCL_v1_prompt: true}", "catalogue[0].inputs[0].gates.SiStripApvGain_PCL_v1_prompt", "not one of this input's destinations"},
		{"{SiStripApvGain_PCL_v0_hlt: maybe}", "catalogue[0].inputs[0].gates.SiStripApvGain_PCL_v0_hlt", "want true or false"},
		{"[SiStripApvGain_PCL_v0_hlt]", "catalogue[0].inputs[0].gates", "want a mapping"},
	} {
		probs := Check("gates.yaml", []byte(gatesCatalogue(tc.gates)))
		if len(probs) != 1 || probs[0].Field != tc.field || probs[0].Line != 8 || !strings.Contains(probs[0].Message, tc.msg) {
			t.Errorf("gates %s: problems %v, want one on line 8 at %s saying %q", tc.gates, probs, tc.field, tc.msg)
		}
	}
}
