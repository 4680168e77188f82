package pcl

import (
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Input is one tag that a workflow's AlcaHarvest writes into its .db file, with the tags of the condition
// DB it is uploaded to.
type Input struct {
	// Tag is the tag in the harvested .db file (the record's tag in the upload metadata's inputTag);
	// unique in the catalogue.
	Tag string `yaml:"tag" json:"tag"`
	// Destinations are the condition DB tags the payload is uploaded to (the metadata's destinationTags).
	Destinations []string `yaml:"destinations" json:"destinations"`
	// TimeType is the tag's IOV unit: run, lumi, time, hash or user. Default run.
	TimeType TimeType `yaml:"time_type" json:"time_type"`
	// Gates says of some destination tags whether they gate PromptReco, whatever their synchronization
	// says (see TagGates): true for a tag the prompt global tag reads although its synchronization is
	// hlt or express, false for one it does not read although it is a pcl tag. Keys are destinations
	// of this input.
	Gates map[string]bool `yaml:"gates" json:"gates,omitempty"`
}

// Workflow is one PCL workflow of the catalogue (cms-interfaces.md §5).
type Workflow struct {
	// Name is the workflow's name on the board and in the policy (SiStripGains); unique.
	Name string `yaml:"name" json:"name"`
	// Producer is the AlCaReco producer in Tier-0's express_config alca_skim (PromptCalibProdSiStripGains).
	Producer string `yaml:"producer" json:"producer"`
	// Streams are the Tier-0 express streams that run it; HIExpress and HIExpressAlignment count as
	// their pp twins.
	Streams []string `yaml:"streams" json:"streams"`
	// Inputs are the tags its AlcaHarvest writes, each with its destination tags.
	Inputs []Input `yaml:"inputs" json:"inputs"`
	// Detector is the OMS component it calibrates (TRACKER, PIXEL, ECAL, CTPPS).
	Detector string `yaml:"detector,omitempty" json:"detector,omitempty"`
}

// Catalogue is the set of PCL workflows Spy Agency knows, looked up by name and by input tag.
type Catalogue struct {
	workflows []Workflow
	byName    map[string]int
	byInput   map[string]int // input tag → workflow
	inputBase []int          // workflow → dense index of its first input
	inDests   [][]int        // input index → dense indices of its destinations
	destGates []int8         // destination index → the catalogue's say on gating: 0 none, 1 gates, -1 does not
	inputTags tagTable       // input tag → dense input index
	destTags  tagTable       // destination tag → dense index
	prodTags  tagTable       // AlCaReco producer → index into prodWfs
	prodWfs   [][]int        // the workflows each producer feeds
}

// tagTable finds a tag's dense index: the reconcile looks up the tag of nearly every observation of a
// run on every reconcile, and for a catalogue's few dozen tags this small open-addressing table, with a
// hash of the tag's length and a few of its bytes, answers in about half the time of a Go map (which
// hashes every byte). Tags that share the sampled bytes only make a probe longer: every lookup ends at
// an empty slot or a match, and the table is at most a quarter full.
type tagTable struct {
	tags  []string // by dense index
	slots []int32  // 1 + dense index, 0 for an empty slot
	shift uint     // 64 - log2(len(slots)): the hash's top bits pick the slot
}

func newTagTable(idx map[string]int) tagTable {
	t := tagTable{tags: make([]string, len(idx)), shift: 64 - 2}
	for len(idx)*4 > 1<<(64-t.shift) {
		t.shift--
	}
	t.slots = make([]int32, 1<<(64-t.shift))
	for tag, i := range idx {
		t.tags[i] = tag
	}
	for i, tag := range t.tags {
		j := t.slot(tag)
		for t.slots[j] != 0 {
			j = (j + 1) & uint(len(t.slots)-1)
		}
		t.slots[j] = int32(i + 1)
	}
	return t
}

// slot is where a tag's probe starts: a multiplicative (Fibonacci) hash of its length and four of its
// bytes, which is enough to tell a catalogue's tags apart almost always.
func (t *tagTable) slot(tag string) uint {
	var x uint64
	if n := len(tag); n > 0 {
		x = uint64(n) | uint64(tag[n-1])<<8 | uint64(tag[n/2])<<16 | uint64(tag[n/4])<<24 | uint64(tag[n-1-n/4])<<32
	}
	return uint((x * 0x9E3779B97F4A7C15) >> t.shift)
}

func (t *tagTable) index(tag string) (int, bool) {
	if len(t.slots) == 0 {
		return 0, false // a zero Catalogue
	}
	mask := uint(len(t.slots) - 1)
	for j := t.slot(tag); ; j = (j + 1) & mask {
		e := t.slots[j]
		if e == 0 {
			return 0, false
		}
		if t.tags[e-1] == tag {
			return int(e - 1), true
		}
	}
}

// NewCatalogue checks the workflows and indexes them. Names and input tags must be unique.
func NewCatalogue(ws []Workflow) (*Catalogue, error) {
	c := &Catalogue{byName: map[string]int{}, byInput: map[string]int{}}
	// Dense indices, built here and kept in tag tables.
	inputIdx, destIdx, prodIdx := map[string]int{}, map[string]int{}, map[string]int{}
	for i, w := range ws {
		if w.Name == "" {
			return nil, fmt.Errorf("workflow %d has no name", i+1)
		}
		if _, dup := c.byName[w.Name]; dup {
			return nil, fmt.Errorf("workflow %s is defined twice", w.Name)
		}
		if w.Producer == "" {
			return nil, fmt.Errorf("workflow %s has no producer", w.Name)
		}
		if len(w.Streams) == 0 {
			return nil, fmt.Errorf("workflow %s has no stream", w.Name)
		}
		if len(w.Inputs) == 0 {
			return nil, fmt.Errorf("workflow %s has no input tag", w.Name)
		}
		for _, in := range w.Inputs {
			if in.Tag == "" {
				return nil, fmt.Errorf("workflow %s has an input without a tag", w.Name)
			}
			if other, dup := c.byInput[in.Tag]; dup {
				return nil, fmt.Errorf("input tag %s belongs to both %s and %s", in.Tag, c.workflows[other].Name, w.Name)
			}
			if _, err := ParseTimeType(string(in.TimeType)); err != nil {
				return nil, fmt.Errorf("workflow %s input %s: %w", w.Name, in.Tag, err)
			}
			c.byInput[in.Tag] = len(c.workflows)
			inputIdx[in.Tag] = len(inputIdx)
			var di []int
			for _, d := range in.Destinations {
				if _, ok := destIdx[d]; !ok {
					destIdx[d] = len(destIdx)
					c.destGates = append(c.destGates, 0)
				}
				di = append(di, destIdx[d])
			}
			c.inDests = append(c.inDests, di)
			for _, d := range slices.Sorted(maps.Keys(in.Gates)) {
				if !slices.Contains(in.Destinations, d) {
					return nil, fmt.Errorf("workflow %s input %s: gates names %s, which is not one of its destinations", w.Name, in.Tag, d)
				}
				say := int8(-1)
				if in.Gates[d] {
					say = 1
				}
				if prev := c.destGates[destIdx[d]]; prev != 0 && prev != say {
					return nil, fmt.Errorf("workflow %s input %s: gates says %v of %s, another input says the opposite", w.Name, in.Tag, in.Gates[d], d)
				}
				c.destGates[destIdx[d]] = say
			}
		}
		c.inputBase = append(c.inputBase, len(inputIdx)-len(w.Inputs))
		p, ok := prodIdx[w.Producer]
		if !ok {
			p = len(c.prodWfs)
			prodIdx[w.Producer] = p
			c.prodWfs = append(c.prodWfs, nil)
		}
		c.prodWfs[p] = append(c.prodWfs[p], len(c.workflows))
		c.byName[w.Name] = len(c.workflows)
		c.workflows = append(c.workflows, w)
	}
	c.inputTags, c.destTags, c.prodTags = newTagTable(inputIdx), newTagTable(destIdx), newTagTable(prodIdx)
	return c, nil
}

// The dense indices below let hot code (the reconcile) keep per-input and per-tag facts in slices
// instead of maps.

// NumInputs is the number of input tags of all workflows.
func (c *Catalogue) NumInputs() int { return len(c.inputTags.tags) }

// InputIndex is the dense index of an input tag, in catalogue order.
func (c *Catalogue) InputIndex(tag string) (int, bool) { return c.inputTags.index(tag) }

// InputIndexOf is the dense index of input j of workflow i (catalogue order).
func (c *Catalogue) InputIndexOf(workflow, j int) int { return c.inputBase[workflow] + j }

// WorkflowIndex is a workflow's position in catalogue order.
func (c *Catalogue) WorkflowIndex(name string) (int, bool) {
	i, ok := c.byName[name]
	return i, ok
}

// DestinationIndicesOf are the dense indices of an input's destination tags, in catalogue order.
func (c *Catalogue) DestinationIndicesOf(input int) []int { return c.inDests[input] }

// WorkflowsOfProducer are the indices of the workflows an AlCaReco producer feeds.
func (c *Catalogue) WorkflowsOfProducer(producer string) []int {
	if i, ok := c.prodTags.index(producer); ok {
		return c.prodWfs[i]
	}
	return nil
}

// GatesOf is the catalogue's say on whether a destination tag (by dense index) gates PromptReco: set
// is false where the catalogue leaves it to the tag's synchronization.
func (c *Catalogue) GatesOf(dest int) (gates, set bool) {
	say := c.destGates[dest]
	return say > 0, say != 0
}

// NumDestinations is the number of distinct destination tags.
func (c *Catalogue) NumDestinations() int { return len(c.destTags.tags) }

// DestinationIndex is the dense index of a destination tag.
func (c *Catalogue) DestinationIndex(tag string) (int, bool) { return c.destTags.index(tag) }

// Workflows returns the workflows in catalogue order.
func (c *Catalogue) Workflows() []Workflow { return c.workflows }

// Names returns the workflow names in catalogue order.
func (c *Catalogue) Names() []string {
	out := make([]string, len(c.workflows))
	for i, w := range c.workflows {
		out[i] = w.Name
	}
	return out
}

// Workflow finds a workflow by name.
func (c *Catalogue) Workflow(name string) (*Workflow, bool) {
	i, ok := c.byName[name]
	if !ok {
		return nil, false
	}
	return &c.workflows[i], true
}

// ByInputTag finds the workflow whose AlcaHarvest writes the given input tag, and that input.
func (c *Catalogue) ByInputTag(tag string) (*Workflow, *Input, bool) {
	i, ok := c.byInput[tag]
	if !ok {
		return nil, nil, false
	}
	w := &c.workflows[i]
	for j := range w.Inputs {
		if w.Inputs[j].Tag == tag {
			return w, &w.Inputs[j], true
		}
	}
	return nil, nil, false
}

// DestinationTags returns every destination tag of the catalogue, sorted, each once: the tags a
// condition DB spy watches when nothing narrower is asked.
func (c *Catalogue) DestinationTags() []string {
	seen := map[string]bool{}
	for _, w := range c.workflows {
		for _, in := range w.Inputs {
			for _, d := range in.Destinations {
				seen[d] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// TimeTypeOf returns the time type of a destination tag, as the catalogue knows it.
func (c *Catalogue) TimeTypeOf(tag string) (TimeType, bool) {
	for _, w := range c.workflows {
		for _, in := range w.Inputs {
			if in.Tag == tag || slices.Contains(in.Destinations, tag) {
				return in.TimeType, true
			}
		}
	}
	return "", false
}

// RunsIn says whether the workflow runs in an express stream: the stream is one of its streams, or the
// heavy-ion twin of one (HIExpress for Express, HIExpressAlignment for ExpressAlignment).
func (w *Workflow) RunsIn(stream string) bool {
	for _, s := range w.Streams {
		if s == stream || (len(stream) == len(s)+2 && stream[:2] == "HI" && stream[2:] == s) {
			return true
		}
	}
	return false
}

// DefaultWorkflows is the production PCL catalogue of Run 3 (cms-interfaces.md §5). Where the upload
// metadata files of CMSSW (CondFormats/Common/data/*_prod.json) name other destination tags than the
// table, the files win: they are what Tier-0 uploads with.
func DefaultWorkflows() []Workflow {
	run, lumi := TimeRun, TimeLumi
	in := func(tag string, tt TimeType, dest ...string) Input {
		return Input{Tag: tag, TimeType: tt, Destinations: dest}
	}
	return []Workflow{
		// The legacy workflow harvests BeamSpotObject_ByLumi too, but only its by-run payload goes to a
		// prompt tag (§5 lists only the legacy by-run tag; CMSSW's metadata sends the by-lumi one to the
		// prep tag, fixture BeamSpotObjectsRcdByLumi_prep.json). BeamSpotObjects_PCL_byLumi_v0_prompt is
		// BeamSpotHP's (fixture BeamSpotObjectsRcdHPbyLumi_prod.json): with both in it, each run's two
		// payloads at the same since would hide one of them, and that workflow would never be in the DB.
		{Name: "BeamSpotByRun+ByLumi", Producer: "PromptCalibProd", Streams: []string{"Express"}, Detector: "TRACKER",
			Inputs: []Input{in("BeamSpotObject_ByRun", run, "BeamSpotObjects_PCL_byRun_v0_prompt")}},
		{Name: "BeamSpotHP", Producer: "PromptCalibProdBeamSpotHP", Streams: []string{"ExpressAlignment"}, Detector: "TRACKER",
			Inputs: []Input{in("BeamSpotObjectHP_ByLumi", lumi, "BeamSpotObjects_PCL_byLumi_v0_prompt")}},
		{Name: "SiStripQuality", Producer: "PromptCalibProdSiStrip", Streams: []string{"Express", "ExpressCosmics"}, Detector: "TRACKER",
			Inputs: []Input{in("SiStripBadStrip_pcl", run, "SiStripBadChannel_PCL_v1_hlt")}},
		{Name: "SiStripGains", Producer: "PromptCalibProdSiStripGains", Streams: []string{"Express"}, Detector: "TRACKER",
			Inputs: []Input{in("SiStripApvGain_pcl", run, "SiStripApvGain_PCL_v0_hlt", "SiStripApvGain_PCL_v0_prompt")}},
		{Name: "SiStripGainsAAG", Producer: "PromptCalibProdSiStripGainsAAG", Streams: []string{"Express"}, Detector: "TRACKER",
			Inputs: []Input{in("SiStripApvGainAAG_pcl", run, "SiStripApvGainAfterAbortGap_PCL_v0_hlt", "SiStripApvGainAfterAbortGap_PCL_v0_prompt")}},
		{Name: "SiStripHitEff", Producer: "PromptCalibProdSiStripHitEff", Streams: []string{"Express"}, Detector: "TRACKER",
			Inputs: []Input{in("SiStripBadStripRcdHitEff_pcl", run, "SiStripBadChannel_FromHitEfficiency_v0_prompt")}},
		{Name: "SiStripLA", Producer: "PromptCalibProdSiStripLA", Streams: []string{"ExpressCosmics"}, Detector: "TRACKER",
			Inputs: []Input{in("SiStripLA_pcl", run, "SiStripLorentzAngle_byPCL_v0_prompt")}},
		{Name: "SiPixelAli", Producer: "PromptCalibProdSiPixelAli", Streams: []string{"Express"}, Detector: "PIXEL",
			Inputs: []Input{in("SiPixelAli_pcl", run, "SiPixelAli_PCL_v0_hlt_off", "TrackerAlignment_PCL_byRun_v2_express_off")}},
		{Name: "SiPixelAliHG", Producer: "PromptCalibProdSiPixelAliHG", Streams: []string{"Express"}, Detector: "PIXEL",
			Inputs: []Input{in("SiPixelAliHG_pcl", run, "SiPixelAli_PCL_v0_hlt", "TrackerAlignment_PCL_byRun_v2_express")}},
		{Name: "SiPixelAliHGComb", Producer: "PromptCalibProdSiPixelAliHGComb", Streams: []string{"Express"}, Detector: "PIXEL",
			Inputs: []Input{in("SiPixelAliHGCombined_pcl", run, "SiPixelAliHGCombined_PCL_v0_hlt", "TrackerAlignmentHG_PCL_byRun_v2_express")}},
		{Name: "SiPixelAliHLTHGC", Producer: "PromptCalibProdSiPixelAliHLTHGC", Streams: []string{"HLTMonitor"}, Detector: "PIXEL",
			Inputs: []Input{in("SiPixelAliHLTHGCombined_pcl", run, "SiPixelAliHLTHGCombined_PCL_v0_hlt")}},
		{Name: "SiPixelQuality", Producer: "PromptCalibProdSiPixel", Streams: []string{"Express"}, Detector: "PIXEL",
			Inputs: []Input{in("SiPixelQualityFromDbRcd_prompt", lumi, "SiPixelQuality_byPCL_prompt_v2"),
				in("SiPixelQualityFromDbRcd_other", lumi, "SiPixelQuality_byPCL_other_v1"),
				in("SiPixelQualityFromDbRcd_stuckTBM", lumi, "SiPixelQuality_byPCL_stuckTBM_v1")}},
		{Name: "SiPixelLA", Producer: "PromptCalibProdSiPixelLA", Streams: []string{"Express"}, Detector: "PIXEL",
			Inputs: []Input{in("SiPixelLA_pcl", run, "SiPixelLorentzAngle_byPCL_v0_prompt")}},
		{Name: "SiPixelLAMCS", Producer: "PromptCalibProdSiPixelLAMCS", Streams: []string{"ExpressCosmics"}, Detector: "PIXEL",
			Inputs: []Input{in("SiPixelLAMCS_pcl", run, "SiPixelLorentzAngleMCS_byPCL_v0_prompt")}},
		{Name: "EcalPedestals", Producer: "PromptCalibProdEcalPedestals", Streams: []string{"Calibration"}, Detector: "ECAL",
			Inputs: []Input{in("EcalPedestals_pcl", run, "EcalPedestals_PCL_prompt")}},
		{Name: "LumiPCC", Producer: "PromptCalibProdLumiPCC", Streams: []string{"ALCALumiPixelsCountsExpress"}, Detector: "PIXEL",
			Inputs: []Input{in("LumiPCCCorrections_pcl", lumi, "LumiPCC_Corrections_prompt")}},
		{Name: "PPSTimingCalibration", Producer: "PromptCalibProdPPSTimingCalib", Streams: []string{"ALCAPPSExpress"}, Detector: "CTPPS",
			Inputs: []Input{in("PPSDiamondTimingCalibration_pcl", run, "CTPPPSTimingCalibration_HPTDC_byPCL_v1_prompt")}},
		{Name: "PPSAlignment", Producer: "PromptCalibProdPPSAlignment", Streams: []string{"ALCAPPSExpress"}, Detector: "CTPPS",
			Inputs: []Input{in("CTPPSRPAlignment_real_pcl", run, "CTPPSRPAlignment_byPCL_v1_prompt")}},
	}
}

// DefaultCatalogue is the built-in catalogue.
func DefaultCatalogue() *Catalogue {
	c, err := NewCatalogue(DefaultWorkflows())
	if err != nil {
		panic("pcl: built-in catalogue is invalid: " + err.Error())
	}
	return c
}
