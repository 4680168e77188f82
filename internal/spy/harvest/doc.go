// Package harvest is the harvest-area spy. Tier-0's AlcaHarvest writes, per run and PCL workflow,
// Run<run>@<inputTag>@<uuid>.db (a CondDB v2 SQLite file) and .txt (the dropBox metadata, one
// "prepMetaData <json>" and one "prodMetaData <json>" line) to /store/express/tier0_harvest/<year>/,
// and its upload loop writes <name>.txt.uploaded once it sent the file to the dropBox
// (cms-interfaces.md §1, §4).
//
// The spy scans the directory tree recursively and incrementally (scan.go): a directory is listed
// again only when its modification time moved or was too recent to trust, only files young enough to
// change are stat'ed again, files older than the lookback are neither read nor remembered, and a full
// rescan every few hours is the safety net. A poll with nothing new costs a few stat calls whatever
// the area's size. Where the area's file system is local (Linux, Config.Notifications), the kernel's
// change notifications replace those rules (notify.go): a watched directory is never listed again for a
// new file, only the names the notifications named are stat'ed; on EOS's FUSE mount and other network
// file systems, where another client's changes give no notification here, the modification times decide. A .db+.txt pair becomes a KindHarvestFile observation
// carrying the input tag's IOVs read from the .db (the payload hashes that the condition DB spy later
// matches); a marker becomes a KindUploadMarker. A .db whose .txt has not appeared yet is still being
// written and is left for a later scan. Names that do not match are ignored (debug log).
//
// One bad file never fails the poll: a corrupt .db or a garbage .txt is logged, listed by Problems, and
// tried again only when its size or mtime changes; every other file is still observed. Only an unreadable
// harvest directory (EOS not mounted) fails the poll, which makes the spy stale as it should.
//
// The cursor acknowledges: Poll re-sends what it sent since the cursor it is given, so observations that
// the runner failed to store are not lost, while unchanged files are neither re-read nor re-sent.
package harvest
