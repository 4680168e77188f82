// Package httpx is Spy Agency's one HTTP client. Every caller of a JSON service goes through it: the spies
// (Tier-0 Data Service, OMS, the DQM GUI, the upload log), the simulated Tier-0 asking the agency's pull
// API, the webhook push target and the operator's command line. Timeouts, body size limits, content-type
// checks, strict or lenient JSON, status handling, Retry-After, redirects (followed for reads only), the
// classification of failures into retryable and permanent, and the redaction of secrets from every
// error are done once and the same way.
//
// DecodeJSON and DecodeStrict are the one JSON decoding helper: the spies' format decoders call them on
// bytes, so each format can be fuzzed without HTTP. Retryable, RetryAfter and MarkRetryable are the
// protocol by which any error, HTTP or not (a file, a database), tells the spies' runner whether to try
// again.
package httpx
