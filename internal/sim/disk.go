package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// disk is what the simulator writes: the harvest area and the condition DB. Every file appears whole
// (built in a staging directory, given its simulated modification time, then renamed), because the
// agency's spies read them while the world runs.
type disk struct {
	harvest string // the harvest area's root
	staging string // next to the harvest area: files are renamed from here into place
	build   string // where SQLite files are built (memory-backed when the system has /dev/shm)
	cond    *conddbv2.Writer
	condDB  string
	stored  map[string]bool // payload hashes already in the condition DB
	// empty is an empty CondDB v2 file made by conddbv2.Create: each harvest file starts as a copy of it,
	// which saves building the schema again for every file.
	empty []byte
}

const (
	prodDatabase = "oracle://cms_orcon_prod/CMS_CONDITIONS"
	prepDatabase = "oracle://cms_orcon_prep/CMS_CONDITIONS"
)

// newDisk makes the simulator's directories under dir, replacing what an earlier simulation left there
// (only the simulator's own names: harvest/, .staging/, conddb.db), and creates the condition DB with a
// TAG row for every destination tag of the catalogue.
func newDisk(ctx context.Context, dir string, cat *pcl.Catalogue, created time.Time) (*disk, error) {
	if dir == "" {
		return nil, fmt.Errorf("sim: no directory")
	}
	d := &disk{harvest: filepath.Join(dir, "harvest"), staging: filepath.Join(dir, ".staging"), condDB: filepath.Join(dir, "conddb.db"),
		stored: map[string]bool{}}
	for _, p := range []string{d.harvest, d.staging, d.condDB, d.condDB + "-journal"} {
		if err := os.RemoveAll(p); err != nil {
			return nil, fmt.Errorf("sim: clearing %s: %w", p, err)
		}
	}
	for _, p := range []string{d.harvest, d.staging} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
	}
	// SQLite syncs every statement to disk; a harvest file built on a memory-backed file system and then
	// copied costs 2 ms instead of 17 ms.
	d.build = d.staging
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if b, err := os.MkdirTemp("/dev/shm", "spyagency-sim-"); err == nil {
			d.build = b
		}
	}
	tmpl := filepath.Join(d.build, "empty.db")
	os.Remove(tmpl)
	tw, err := conddbv2.Create(ctx, tmpl)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	tw.Close()
	d.empty, err = os.ReadFile(tmpl)
	os.Remove(tmpl)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	w, err := conddbv2.Create(ctx, d.condDB)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	d.cond = w
	for _, tag := range cat.DestinationTags() {
		tt, _ := cat.TimeTypeOf(tag)
		if err := w.InsertTag(ctx, conddbv2.TagInfo{Name: tag, TimeType: tt, ObjectType: objectTypeOfDest(cat, tag),
			Synchronization: Synchronization(tag), Description: "PCL destination tag (simulated)",
			Inserted: created, Modified: created}); err != nil {
			w.Close()
			return nil, fmt.Errorf("sim: %w", err)
		}
	}
	return d, nil
}

func (d *disk) close() error {
	if d.build != d.staging {
		os.RemoveAll(d.build)
		d.build = d.staging
	}
	if d.cond == nil {
		return nil
	}
	err := d.cond.Close()
	d.cond = nil
	return err
}

// objectTypeOfDest is the payload class of the input uploaded to a destination tag.
func objectTypeOfDest(cat *pcl.Catalogue, tag string) string {
	for _, w := range cat.Workflows() {
		for _, in := range w.Inputs {
			if slices.Contains(in.Destinations, tag) {
				return objectType(in.Tag)
			}
		}
	}
	return "PCLPayload"
}

// objectType is the CondFormats class of an input tag's payload.
func objectType(inputTag string) string {
	for _, m := range []struct{ prefix, class string }{
		{"BeamSpotObject", "BeamSpotObjects"}, {"SiStripBadStrip", "SiStripBadStrip"}, {"SiStripApvGain", "SiStripApvGain"},
		{"SiStripLA", "SiStripLorentzAngle"}, {"SiPixelAli", "Alignments"}, {"SiPixelQuality", "SiPixelQuality"},
		{"SiPixelLA", "SiPixelLorentzAngle"}, {"EcalPedestals", "EcalCondObjectContainer<EcalPedestal>"},
		{"LumiPCC", "LumiCorrections"}, {"PPSDiamond", "PPSTimingCalibration"}, {"CTPPSRPAlignment", "CTPPSRPAlignmentCorrectionsData"},
	} {
		if strings.HasPrefix(inputTag, m.prefix) {
			return m.class
		}
	}
	return "PCLPayload"
}

func (d *disk) yearDir(r *run) (string, error) {
	p := filepath.Join(d.harvest, strconv.Itoa(r.Start.UTC().Year()))
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", fmt.Errorf("sim: harvest area: %w", err)
	}
	return p, nil
}

// place gives a staged file its simulated time and moves it into the harvest area.
func (d *disk) place(staged, final string, at time.Time) error {
	if err := os.Chtimes(staged, at, at); err != nil {
		os.Remove(staged)
		return fmt.Errorf("sim: %w", err)
	}
	if err := os.Rename(staged, final); err != nil {
		os.Remove(staged)
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// writeHarvest writes one payload file (a CondDB v2 SQLite file holding the input tag, the payload and
// its IOV) and its metadata .txt.
func (d *disk) writeHarvest(r *run, wf *pcl.Workflow, in pcl.Input, f FileTruth, at time.Time) error {
	dir, err := d.yearDir(r)
	if err != nil {
		return err
	}
	ctx := context.Background()
	built := filepath.Join(d.build, f.Name)
	if err := os.WriteFile(built, d.empty, 0o644); err != nil {
		return fmt.Errorf("sim: harvest file %s: %w", f.Name, err)
	}
	w, err := conddbv2.OpenWriter(ctx, built)
	if err != nil {
		os.Remove(built)
		return fmt.Errorf("sim: harvest file %s: %w", f.Name, err)
	}
	err = w.InsertTag(ctx, conddbv2.TagInfo{Name: in.Tag, TimeType: in.TimeType, ObjectType: objectType(in.Tag),
		Synchronization: "any", Description: "AlcaHarvest output of " + wf.Name, Inserted: at, Modified: at})
	if err == nil {
		err = w.InsertPayload(ctx, payloadRow(f, at))
	}
	if err == nil {
		err = w.AppendIOV(ctx, conddbv2.IOV{Tag: in.Tag, Since: f.Since, Payload: f.PayloadHash, Inserted: at})
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil && d.build != d.staging {
		var body []byte
		if body, err = os.ReadFile(built); err == nil {
			os.Remove(built)
			built = filepath.Join(d.staging, f.Name)
			err = os.WriteFile(built, body, 0o644)
		}
	}
	if err != nil {
		os.Remove(built)
		return fmt.Errorf("sim: harvest file %s: %w", f.Name, err)
	}
	if err := d.place(built, filepath.Join(dir, f.Name), at); err != nil {
		return err
	}
	txt := strings.TrimSuffix(f.Name, ".db") + ".txt"
	body := "prepMetaData " + metadataJSON(prepDatabase, in, r.Number) + "\n" +
		"prodMetaData " + metadataJSON(prodDatabase, in, r.Number) + "\n"
	return d.writeFile(filepath.Join(dir, txt), []byte(body), at)
}

// writeMarker writes <name>.txt.uploaded, which Tier-0 fills with the metadata it uploaded with.
func (d *disk) writeMarker(r *run, f *FileTruth, in pcl.Input, at time.Time) error {
	dir, err := d.yearDir(r)
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(f.Name, ".db") + ".txt.uploaded"
	return d.writeFile(filepath.Join(dir, name), []byte(metadataJSON(prodDatabase, in, r.Number)+"\n"), at)
}

func (d *disk) writeFile(final string, body []byte, at time.Time) error {
	staged := filepath.Join(d.staging, filepath.Base(final))
	if err := os.WriteFile(staged, body, 0o644); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return d.place(staged, final, at)
}

// metadataJSON is the dropBox metadata of cms-interfaces.md §4, as CondFormats/Common/data writes it.
func metadataJSON(database string, in pcl.Input, run uint32) string {
	tags := map[string]struct{}{}
	for _, t := range in.Destinations {
		tags[t] = struct{}{}
	}
	b, _ := json.Marshal(struct {
		DestinationDatabase string              `json:"destinationDatabase"`
		DestinationTags     map[string]struct{} `json:"destinationTags"`
		InputTag            string              `json:"inputTag"`
		Since               *uint64             `json:"since"`
		UserText            string              `json:"userText"`
	}{database, tags, in.Tag, nil, fmt.Sprintf("T0 PCL Upload for %s, run %d (simulated)", in.Tag, run)})
	return string(b)
}

func payloadRow(f FileTruth, at time.Time) conddbv2.Payload {
	return conddbv2.Payload{Hash: f.PayloadHash, ObjectType: objectType(f.InputTag),
		Data: []byte("simulated payload " + f.PayloadHash), StreamerInfo: []byte(`{"tech":"boost/serialization","tech_version":"1.1"}`),
		Version: "CMSSW_16_0_2", Inserted: at}
}

// appendIOV puts the payload (once) and an IOV of it into the condition DB.
func (d *disk) appendIOV(tag string, f *FileTruth, since uint64, at time.Time) error {
	ctx := context.Background()
	if d.cond == nil {
		return fmt.Errorf("sim: condition DB is closed")
	}
	if !d.stored[f.PayloadHash] { // each write is a synced transaction: skip the ones that do nothing
		if err := d.cond.InsertPayload(ctx, payloadRow(*f, at)); err != nil {
			return err
		}
		d.stored[f.PayloadHash] = true
	}
	return d.cond.AppendIOV(ctx, conddbv2.IOV{Tag: tag, Since: since, Payload: f.PayloadHash, Inserted: at})
}
