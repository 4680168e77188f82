//go:build race

package study

// raceEnabled: the race detector slows the worlds several times over.
const raceEnabled = true
