package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// benchBatch is the size of one append: about what the condition DB spy reads in one poll after a
// backlog, and what a harvest-area rescan produces.
const benchBatch = 1000

// benchObservations makes n distinct observations shaped like a busy day of the loop: mostly IOVs of
// the prompt tags, with harvest files, upload verdicts and DQM results among them.
func benchObservations(n, offset int) []pcl.Observation {
	tags := []string{"SiStripApvGain_PCL_v0_prompt", "SiStripApvGain_PCL_v0_hlt", "SiPixelAli_PCL_v0_hlt_off",
		"BeamSpotObjects_PCL_byLumi_v0_prompt", "SiPixelQuality_byPCL_prompt_v2", "LumiPCC_Corrections_prompt"}
	base := time.Date(2025, 6, 14, 8, 0, 0, 0, time.UTC)
	out := make([]pcl.Observation, n)
	for i := range n {
		k := offset + i
		run := 380000 + uint32(k/len(tags))
		tag := tags[k%len(tags)]
		at := base.Add(time.Duration(k) * 1700 * time.Millisecond)
		hash := fmt.Sprintf("%08x%032x", run, uint64(k)*2654435761)
		switch k % 10 {
		case 7:
			out[i] = pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: run, At: at,
				Seen: at.Add(75 * time.Second), Workflow: "SiStripGains", InputTag: "SiStripApvGain_pcl",
				File:         fmt.Sprintf("Run%d@SiStripApvGain_pcl@3f9c%04x-1b2a-4c3d-9e8f-%012d.db", run, k%65536, k),
				Destinations: []string{"SiStripApvGain_PCL_v0_hlt", "SiStripApvGain_PCL_v0_prompt"},
				Payloads:     []pcl.IOV{{Since: uint64(run), Payload: hash}}}
		case 8:
			out[i] = pcl.Observation{Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: run, At: at,
				Seen: at.Add(90 * time.Second), Workflow: "SiStripGains", InputTag: "SiStripApvGain_pcl",
				File: fmt.Sprintf("Run%d@SiStripApvGain_pcl@%012d.db", run, k), FileHash: hash, Tag: tag,
				Status: pcl.UploadOK, Info: "Upload finished: 1 IOV appended to " + tag}
		case 9:
			out[i] = pcl.Observation{Source: pcl.SourceDQM, Kind: pcl.KindDQMQuality, Run: run, At: at,
				Seen: at.Add(3 * time.Minute), Workflow: "SiStripGains", Quality: pcl.QualityGood,
				Dataset: "/StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT"}
		default:
			out[i] = pcl.Observation{Source: pcl.SourceCondDB, Kind: pcl.KindIOV, Run: run, At: at,
				Seen: at.Add(2 * time.Minute), Tag: tag, Since: uint64(run), TimeType: pcl.TimeRun,
				Inserted: at, Payload: hash, Previous: fmt.Sprintf("%040x", k)}
		}
	}
	return out
}

// rawRow is an observation as the raw loop inserts it: everything computed beforehand.
type rawRow struct {
	key                        []byte
	source, kind, tag, payload string
	run, at, seen              int64
	body                       []byte
}

func rawRows(b *testing.B, obs []pcl.Observation) []rawRow {
	rows := make([]rawRow, len(obs))
	for i := range obs {
		o := &obs[i]
		body, err := json.Marshal(o)
		if err != nil {
			b.Fatal(err)
		}
		key := o.KeySum()
		rows[i] = rawRow{key: key[:], source: string(o.Source), kind: string(o.Kind), tag: o.Tag,
			run: int64(o.Run), at: o.At.UnixNano(), seen: o.Seen.UnixNano(), body: body}
		if o.Kind == pcl.KindIOV {
			rows[i].payload = o.Payload
		}
	}
	return rows
}

// rawInsert is the floor the store is measured against: one prepared INSERT, one transaction, rows ready,
// through database/sql and the same driver, connection settings and table.
func rawInsert(ctx context.Context, s *Store, rows []rawRow) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO observations
		(run, key, source, kind, at, seen, tag, payload, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, r := range rows {
		if _, err := stmt.ExecContext(ctx, r.run, r.key, r.source, r.kind, r.at, r.seen, r.tag, r.payload, r.body); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkAppendObservations appends batches of 1000 new observations through the store (validation,
// keys, JSON, an insert that skips stored facts, the new ones returned), and inserts the same rows with a
// raw prepared INSERT into a second database of the same schema, alternating the two so that both see the
// same machine load. It reports both rates and the store's rate as a percentage of the raw one.
func BenchmarkAppendObservations(b *testing.B) {
	benchAppend(b, benchStore(b), benchStore(b), 0)
}

// BenchmarkAppendObservationsLargeStore is the same on stores that already hold a million observations,
// more than a year of the real loop: the random part of an append (the payload-hash index) then misses
// the page cache. Filling takes a while, so run it with -benchtime=Nx.
func BenchmarkAppendObservationsLargeStore(b *testing.B) {
	const stored = 1_000_000
	ctx := context.Background()
	// Both files are filled the same way, one after the other, and reopened, so that both start with an
	// empty WAL and a cold page cache. (Filled in alternation, the two files' checkpoints interleave, and
	// whichever was filled first was then measured up to twice as slow, by either method.)
	paths := []string{filepath.Join(b.TempDir(), "store.db"), filepath.Join(b.TempDir(), "raw.db")}
	for _, p := range paths {
		s, err := Open(ctx, p, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for lo := 0; lo < stored; lo += 10 * benchBatch {
			if err := rawInsert(ctx, s, rawRows(b, benchObservations(10*benchBatch, lo))); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	var stores []*Store
	for _, p := range paths {
		s, err := Open(ctx, p, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	b.ResetTimer()
	benchAppend(b, stores[0], stores[1], stored)
}

func benchAppend(b *testing.B, st, raw *Store, offset int) {
	ctx := context.Background()
	var storeTime, rawTime time.Duration
	n := 0
	for i := range b.N {
		b.StopTimer()
		obs := benchObservations(benchBatch, offset+i*benchBatch)
		rows := rawRows(b, obs)
		b.StartTimer()

		start := time.Now()
		added, err := st.AppendObservations(ctx, obs)
		storeTime += time.Since(start)
		if err != nil || len(added) != benchBatch {
			b.Fatalf("append: %d added, err %v", len(added), err)
		}

		b.StopTimer()
		start = time.Now()
		if err := rawInsert(ctx, raw, rows); err != nil {
			b.Fatalf("raw insert: %v", err)
		}
		rawTime += time.Since(start)
		b.StartTimer()
		n += benchBatch
	}
	storeRate := float64(n) / storeTime.Seconds()
	rawRate := float64(n) / rawTime.Seconds()
	b.ReportMetric(storeRate, "obs/s")
	b.ReportMetric(rawRate, "raw-obs/s")
	b.ReportMetric(100*storeRate/rawRate, "%-of-raw")
}
