// Package runner polls one spy on its interval, with jitter so that spies do not poll their sources in
// lock step, a per-poll deadline so that a hanging source cannot stop the loop, retries with exponential
// backoff while the next poll is not due for failures that may pass (httpx.Retryable decides), and a
// persisted cursor that advances only after the sink has accepted the poll's observations, so a crash
// never loses a fact. With the cursor it persists the poll's view time (when its listing or query
// began), which is what a conclusion from absence rests on, so that a restart leaves every source as
// fresh as it was. It keeps the spy's health: a spy whose polls keep failing is stale, and nothing
// positive may be concluded from a stale source.
//
// Two clocks: the schedule (interval, jitter, health, view) runs on the injected Clock, which is
// simulated time in the demo; what is I/O (an attempt's deadline, the backoff before a retry) runs on
// the wall clock, because a source answers in real time whatever the simulation's speed.
package runner
