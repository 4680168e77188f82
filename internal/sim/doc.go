// Package sim is a seeded, simulated CMS for Spy Agency's demo, end-to-end tests and release-latency
// study: LHC fills and runs, Tier-0 express processing and AlcaHarvest, the condition upload loop, the
// dropBox and the condition DB, the DQM GUI, and a Tier-0 PromptReco stub that can follow the agency's
// pull API so that the loop closes.
//
// The world advances in simulated time to the injected clock's Now on every request and feeder cycle,
// or as far as AdvanceTo asks, without sleeping. Its services speak the real formats at the real paths
// (Handler) and it writes the harvest area and a CondDB v2 condition DB as real files, so the agency
// reaches it only through its spies. docs/simulator.md gives every parameter and the fact it comes from.
package sim
