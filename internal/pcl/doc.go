// Package pcl is the domain of Spy Agency: the runs CMS records, the Prompt Calibration Loop workflows
// that must calibrate them, the observations the spies make of the CMS systems, and the states and
// readiness that the reconcile derives from those observations.
//
// Nothing in this package does I/O. The types here are shared by every other package: spies produce
// Observations, the store keeps them, the reconcile (package reconcile) turns them into RunStates, and
// steering, alerts and the web read the result.
package pcl
