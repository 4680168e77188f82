// Package runner polls one spy on its interval, with jitter so that spies do not poll their sources in
// lock step, a per-poll deadline so that a hanging source cannot stop the loop, retries with exponential
// backoff inside the interval for failures that may pass (fetch.Retryable decides), and a persisted
// cursor that advances only after the sink has accepted the poll's observations, so a crash never loses
// a fact. It keeps the spy's health: a spy whose polls keep failing is stale, and nothing positive may be
// concluded from a stale source. All waiting is done on the injected clock.
package runner
