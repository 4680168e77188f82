// Package fetch is Spy Agency's one HTTP client helper for the JSON sources (Tier-0 Data Service, OMS, the
// DQM GUI, the upload log). Every spy that speaks HTTP goes through it so that timeouts, body size limits,
// content-type checks, status handling and the classification of failures into retryable and permanent are
// done once and the same way. DecodeJSON is the one JSON decoding helper: spies' format decoders call it
// on bytes, so each format can be fuzzed without HTTP.
package fetch
