// Package conddb is the condition DB spy: it follows the IOVs appended to the watched tags of a CondDB v2
// database (read through the library internal/conddbv2) and reports each as a KindIOV observation, with the tag's time
// type and synchronization (whether the tag gates PromptReco depends on it).
//
// It reads incrementally by INSERTION_TIME, per tag. The cursor remembers, per tag, the newest insertion
// time seen and the rows seen within a short look-back window before it, so that rows sharing a
// timestamp are neither lost nor repeated, and a row whose insertion time lags its commit (a slow upload
// transaction) is still caught if it lands within the window.
//
// While runs are open, a run- or lumi-based tag is read from the IOV in effect at the lowest open run
// up (its "floor"): no row below it can be in effect for an open run, and the primary key (TAG_NAME,
// SINCE, INSERTION_TIME) gives that range without the tag's years of history. A floor that goes down
// starts the tag's reading again from the new one. With no run open the floor is the tag's newest IOV
// (a run that opens below it lowers the floor). Without hints (a spy given its tags alone), and for
// time-based tags, every row is looked at.
//
// A poll first asks what changed at all, cheapest first: on an SQLite file, PRAGMA data_version (one
// pragma: no commit since the previous poll counted means nothing to read); then, per tag, the count
// and newest insertion time of its IOV rows (a tag whose count did not move is not read). Both skips
// hold only for the cursor the poll that counted returned, and every 60th poll reads every tag.
package conddb
