// Package dropbox is the upload-log spy: it reads the conditions upload service's log of PCL uploads,
// one record per file and destination tag, in the JSON feed that docs/upload-log.md defines (no public
// format exists), and reports each record as a KindUploadStatus observation.
//
// DecodeLog is the only code that knows the feed's format, so that the spy can be adapted to a real log
// service in one place. Reading is incremental by the records' logged time, with the records sharing
// the newest instant remembered so that they are neither lost nor repeated.
package dropbox
