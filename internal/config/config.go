// Package config is Spy Agency's configuration: one YAML file in which every field has a default, so that
// an empty file (or none) is a valid configuration. Durations are Go duration strings ("20h", "30s").
// Secrets never live in the file: a field names a file or an environment variable that holds them, and
// a key that looks like an inline secret is refused.
//
// Check reports every problem of a file at once, each with its line, so that `spyagency config check`
// can say everything that is wrong in one go; Parse and Load refuse a file that has any problem.
package config

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Config is the whole configuration. The zero value is not useful: start from Default, Parse or Load.
type Config struct {
	// Server is the HTTP server: dashboard, JSON API, Tier-0 pull API, metrics.
	Server Server `yaml:"server"`
	// Store is where observations, state, decisions and the audit log are kept.
	Store Store `yaml:"store"`
	// DataDir holds the SQLite database (when the store is SQLite) and other local state. Default: a
	// "spyagency" folder in the user's cache directory (os.UserCacheDir).
	DataDir string `yaml:"data_dir"`
	// Sources configures one spy per CMS system.
	Sources Sources `yaml:"sources"`
	// RunClasses derive a run's class (Collisions25, Cosmics25, ...) from its OMS attributes, first
	// matching rule wins (cms-interfaces.md §7: OMS has no run class). Empty means DefaultClassRules.
	RunClasses []ClassRule `yaml:"run_classes"`
	// Workflows is the PCL workflow catalogue (YAML key `catalogue`). Empty means the built-in one
	// (pcl.DefaultWorkflows); a non-empty list REPLACES it entirely, it is not merged.
	Workflows []pcl.Workflow `yaml:"catalogue"`
	// Policy says, per run class pattern, which workflows are required and how long to wait. Empty means
	// pcl.DefaultPolicy; a class entry that omits a field takes that field from the default policy.
	Policy pcl.Policy `yaml:"policy"`
	// Links are the base URLs of the CMS web pages the dashboard links to.
	Links Links `yaml:"links"`
	// Agency tunes the reconcile loop.
	Agency Agency `yaml:"agency"`
	// Clock is the agency's time: the wall clock unless it watches a simulated CMS (spyagency simulate).
	Clock Clock `yaml:"clock"`
	// Steering says where decisions are pushed (Tier-0 can also pull them: see docs/tier0-integration.md).
	Steering Steering `yaml:"steering"`
	// Access is who may do what: reading, Tier-0's pull API, the OIDC login (docs/security.md).
	Access Access `yaml:"access"`
	// Alerts are the rules over the loop and where alerts are sent (docs/alerts.md).
	Alerts Alerts `yaml:"alerts"`

	// Warnings are what Parse accepted but a person should change (a deprecated key), for serve to log.
	Warnings []Problem `yaml:"-"`
}

// Clock lets serve share the time of a simulated CMS: simulated time was Epoch at wall time WallStart
// and runs Speed times faster than the wall. Speed 0 (the default) is the wall clock.
type Clock struct {
	// Speed is how many times faster than the wall simulated time runs; 0 (the default) is the wall clock.
	Speed float64 `yaml:"speed"`
	// Epoch is the simulated time at WallStart.
	Epoch time.Time `yaml:"epoch"`
	// WallStart is the wall time at which simulated time was Epoch (when the simulator started).
	WallStart time.Time `yaml:"wall_start"`
}

// Steering is the push side of steering Tier-0.
type Steering struct {
	// Targets each receive every decision, in run order, through the transactional outbox.
	Targets []PushTarget `yaml:"targets"`
}

// PushTarget is one receiver of decisions.
type PushTarget struct {
	// Name identifies the target in the outbox and the API; letters, digits, '-' and '_'.
	Name string `yaml:"name"`
	// Type is webhook (an HTTP POST signed with HMAC-SHA256) or sql (an upsert into a table).
	Type string `yaml:"type"`
	// URL is the webhook's address.
	URL string `yaml:"url"`
	// SecretFile or SecretEnv hold the webhook's shared HMAC secret.
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
	// DSN is the sql target's database: postgres://... or sqlite:PATH; Table its table
	// (default spyagency_readiness).
	DSN   string `yaml:"dsn"`
	Table string `yaml:"table"`
	// PasswordFile or PasswordEnv hold the sql target's database password (never in the DSN).
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// Timeout bounds one delivery attempt (default 30s); MaxAttempts before a dead letter (default 100).
	Timeout     time.Duration `yaml:"timeout"`
	MaxAttempts int           `yaml:"max_attempts"`
}

// Server is the HTTP server's configuration.
type Server struct {
	// Addr is the listen address. Default "127.0.0.1:8080": loopback only until someone decides otherwise.
	Addr string `yaml:"addr"`
	// PublicURL is the address users reach the dashboard at (behind a proxy), used in links sent out by
	// alerts. Empty: derived from Addr.
	PublicURL string `yaml:"public_url"`
	// ReadTimeout bounds reading a whole request. Default 15s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response. Default 60s. Long-lived responses (the SSE stream) must
	// lift it for themselves with http.ResponseController.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// ShutdownTimeout is how long a graceful shutdown waits for requests in flight. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxBodyBytes is the largest request body accepted. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TrustedProxies are the reverse proxies (addresses or networks) whose X-Forwarded-For,
	// X-Forwarded-Proto and X-Forwarded-Host are believed: the client's address (for the limit of
	// failed logins and the demo's loopback rule), whether it came over TLS (Secure cookies, HSTS) and
	// the host it asked for (origin checks). Default none: the headers are ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Access is who may do what (docs/security.md).
type Access struct {
	// Read is "open" (anyone who reaches the server may read: the default) or "authenticated" (a
	// login or an API token of any scope).
	Read string `yaml:"read"`
	// Pull is "open" (the default) or "token": Tier-0's pull API (/t0/v1/) then needs a token of the
	// steer scope.
	Pull string `yaml:"pull"`
	// FailedAuthLimit failed authentications (bad tokens, bad sessions, failed logins) are allowed
	// from one client address per FailedAuthWindow; past them its requests with credentials get 429
	// until the window ends. Defaults 10 and 1m.
	FailedAuthLimit  int           `yaml:"failed_auth_limit"`
	FailedAuthWindow time.Duration `yaml:"failed_auth_window"`
	// OIDC is the login for people (CERN SSO); without an issuer nobody logs in, and operators act
	// with tokens of the operate scope.
	OIDC OIDC `yaml:"oidc"`
}

// OIDC is the OpenID Connect provider people log in with.
type OIDC struct {
	// Issuer is the provider, e.g. https://auth.cern.ch/auth/realms/cern.
	Issuer string `yaml:"issuer"`
	// ClientID is this application's registration with the provider.
	ClientID string `yaml:"client_id"`
	// ClientSecretFile or ClientSecretEnv hold the client's secret; neither for a public client (PKCE
	// alone then protects the code).
	ClientSecretFile string `yaml:"client_secret_file"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	// RedirectURL is the callback registered with the provider. Default server.public_url +
	// "/auth/callback".
	RedirectURL string `yaml:"redirect_url"`
	// Scopes asked for. Default [openid, profile, email].
	Scopes []string `yaml:"scopes"`
	// UserClaim names the person in the audit log. Default "": preferred_username, else email, else sub.
	UserClaim string `yaml:"user_claim"`
	// RolesClaim is the ID token's claim that holds groups or roles. Default cern_roles (CERN SSO's
	// application roles, which its Application Portal maps from e-groups); "groups" for most others.
	RolesClaim string `yaml:"roles_claim"`
	// Roles maps the claim's values to roles.
	Roles OIDCRoles `yaml:"roles"`
	// SessionTTL is how long a login lasts. Default 12h.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// OIDCRoles lists, per role, the values of the roles claim that give it; a person gets the highest.
// With viewer empty anyone the provider logs in may view; otherwise only the listed may log in.
type OIDCRoles struct {
	Viewer   []string `yaml:"viewer"`   // may read; empty: anyone the provider logs in
	Operator []string `yaml:"operator"` // may also override runs and silence alerts
	Admin    []string `yaml:"admin"`    // may also list and revoke tokens and see the configuration
}

// LoginEnabled says whether people log in.
func (a Access) LoginEnabled() bool { return a.OIDC.Issuer != "" }

// ClientSecret reads the OIDC client's secret from its file or environment variable; "" for a public
// client.
func (o OIDC) ClientSecret(lookupEnv func(string) (string, bool)) (string, error) {
	return readSecret("access.oidc client secret", o.ClientSecretFile, o.ClientSecretEnv, lookupEnv)
}

// Callback is the redirect URL: the configured one, or the public URL's /auth/callback.
func (c *Config) Callback() string {
	if c.Access.OIDC.RedirectURL != "" {
		return c.Access.OIDC.RedirectURL
	}
	if c.Server.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(c.Server.PublicURL, "/") + "/auth/callback"
}

// Store is the database's configuration.
type Store struct {
	// DSN is "sqlite:PATH" (embedded, the default: sqlite:<data_dir>/spyagency.db) or
	// "postgres://user@host:port/db?sslmode=..." (replicated deployments). A password must not be in it.
	DSN string `yaml:"dsn"`
	// PasswordFile names a file holding the database password (PostgreSQL only).
	PasswordFile string `yaml:"password_file"`
	// PasswordEnv names an environment variable holding the database password (PostgreSQL only).
	PasswordEnv string `yaml:"password_env"`
	// Retention is how long after its release a run keeps its raw observations; after that they are
	// compacted into a summary per source and kind (its decisions, audit, milestones and final state
	// are kept forever), so the store grows by a bounded amount per run. Default 2160h (90 days);
	// "0s", "0" or "off" keeps every observation forever. At least 24h when set.
	Retention time.Duration `yaml:"retention"`
}

// DefaultRetention is store.retention's default: 90 days after release.
const DefaultRetention = 90 * 24 * time.Hour

// MinRetention is the shortest store.retention accepted other than off: a day.
const MinRetention = 24 * time.Hour

// Sources holds one block per spied CMS system; the keys are the source names of pcl.Sources.
type Sources struct {
	// OMS is the OMS aggregation API (https://cmsoms.cern.ch/agg/api/v1/): runs and their attributes.
	OMS Source `yaml:"oms"`
	// Tier0 is the Tier-0 Data Service (https://<host>/t0wmadatasvc/prod/). Its replies are cached for
	// 5 minutes, so polling it faster is useless.
	Tier0 Source `yaml:"tier0"`
	// Harvest is the AlcaHarvest output area: Dir for a mounted EOS path
	// (/eos/cms/store/express/tier0_harvest), or URL for an HTTP listing of it.
	Harvest Source `yaml:"harvest"`
	// Dropbox is the conditions upload service's log (https://<host>/logs/dropBox/).
	Dropbox Source `yaml:"dropbox"`
	// CondDB is the condition DB: DSN ("sqlite:PATH" of a CondDB v2 file, or "postgres://...") or URL of
	// an HTTP service in front of it.
	CondDB Source `yaml:"conddb"`
	// DQM is the DQM GUI (https://cmsweb.cern.ch/dqm/offline).
	DQM Source `yaml:"dqm"`
}

// Source is one spy's configuration.
type Source struct {
	// Enabled turns the spy on. Default: true when URL, Dir or DSN is set, false otherwise, so that a
	// source one has not configured is simply not watched. Setting it to false keeps a configured source
	// switched off; setting it to true with nothing to read is an error.
	Enabled bool `yaml:"enabled"`
	// URL is the source's HTTP(S) base URL.
	URL string `yaml:"url"`
	// Dir is a local or mounted directory (the harvest area).
	Dir string `yaml:"dir"`
	// DSN is a database to read ("sqlite:PATH" or "postgres://...").
	DSN string `yaml:"dsn"`
	// Interval between polls. Defaults: oms 60s, tier0 5m, harvest 60s, dropbox 60s, conddb 60s, dqm 10m.
	Interval time.Duration `yaml:"interval"`
	// Jitter spreads polls by up to this fraction of Interval, so that replicas and restarts do not poll
	// in step. Default 0.1; must be in [0, 1].
	Jitter float64 `yaml:"jitter"`
	// Timeout is one poll's deadline. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// StaleAfter is the number of consecutive failed polls after which the source is stale and nothing
	// positive is concluded from it. Default 3.
	StaleAfter int `yaml:"stale_after"`
	// TokenFile names a file holding the bearer token (or, for OMS, the OIDC client secret).
	TokenFile string `yaml:"token_file"`
	// TokenEnv names an environment variable holding the same; TokenFile wins when both are set.
	TokenEnv string `yaml:"token_env"`
	// FullRescan (harvest only) is how often, in real time, the harvest spy lists every directory and
	// stats every file whatever the directories' modification times say. Default 6h.
	FullRescan time.Duration `yaml:"full_rescan"`
	// MtimeSlack (harvest only) is how much older than a listing a directory's modification time must
	// be for the listing to be trusted while that time does not move. Default 2s.
	MtimeSlack time.Duration `yaml:"mtime_slack"`
	// Notifications (harvest only) is "auto" or "off". With auto, on Linux, where the harvest area's
	// file system is local (ext4, xfs, btrfs, tmpfs, overlayfs) the spy trusts the kernel's change
	// notifications: a watched directory is not listed again when its time moves, only the files they
	// name are stat'ed. On FUSE (EOS), NFS, AFS, CIFS or Ceph, and with off, directory times decide.
	// Default auto.
	Notifications string `yaml:"notifications"`
}

// Links are base URLs for links out of the web page. Defaults are CERN's production services; an
// explicit "" hides that kind of link.
type Links struct {
	// CondDBBrowser shows a tag's IOVs: <base>/list/Prod/tags/<tag>.
	CondDBBrowser string `yaml:"conddb_browser"`
	// UploadLog shows an upload's log: <base>/getFileLog?fileHash=<sha1>.
	UploadLog string `yaml:"upload_log"`
	// DQMGUI shows the DQM plots of a run.
	DQMGUI string `yaml:"dqm_gui"`
	// OMS shows a run's report: <base>/runs/report?cms_run=<run>.
	OMS string `yaml:"oms"`
	// RunRegistry shows a run's class and certification.
	RunRegistry string `yaml:"run_registry"`
}

// Agency tunes the agency's own loops.
type Agency struct {
	// ReconcileBatch is the most runs reconciled in one pass; more wait for the next. Default 200.
	ReconcileBatch int `yaml:"reconcile_batch"`
	// ResyncInterval is how often every open run is reconciled even when nothing woke it, a safety net for missed
	// notifications. Default 5m.
	ResyncInterval time.Duration `yaml:"resync_interval"`
	// Lookback is how far back (by run start) runs are still watched. Default 336h (14 days).
	Lookback time.Duration `yaml:"lookback"`
	// LeaseTTL is the leader lease's lifetime on a PostgreSQL store shared by replicas: the leader
	// renews it every third of it, and a follower takes over at most this long after the leader
	// stopped renewing. Default 15s. A single process on SQLite is its own leader and takes no lease.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// Defaults that are not per source.
const (
	DefaultAddr             = "127.0.0.1:8080"
	DefaultReadTimeout      = 15 * time.Second
	DefaultWriteTimeout     = 60 * time.Second
	DefaultShutdownTimeout  = 10 * time.Second
	DefaultMaxBodyBytes     = 1 << 20
	DefaultJitter           = 0.1
	DefaultPollTimeout      = 30 * time.Second
	DefaultStaleAfter       = 3
	DefaultReconcileBatch   = 200
	DefaultResyncInterval   = 5 * time.Minute
	DefaultLookback         = 14 * 24 * time.Hour
	DefaultLeaseTTL         = 15 * time.Second
	DefaultFailedAuthLimit  = 10
	DefaultFailedAuthWindow = time.Minute
	DefaultSessionTTL       = 12 * time.Hour
	DefaultRolesClaim       = "cern_roles"
)

// DefaultInterval is each source's default poll interval. Tier-0 caches its replies for 5 minutes and the
// DQM GUI's harvesting output moves slowly; the others are cheap to ask every minute.
func DefaultInterval(src pcl.Source) time.Duration {
	switch src {
	case pcl.SourceTier0:
		return 5 * time.Minute
	case pcl.SourceDQM:
		return 10 * time.Minute
	default:
		return time.Minute
	}
}

// DefaultLinks are CERN's production services.
func DefaultLinks() Links {
	return Links{
		CondDBBrowser: "https://cms-conddb.cern.ch/cmsDbBrowser",
		UploadLog:     "https://cms-conddb.cern.ch/logs/dropBox",
		DQMGUI:        "https://cmsweb.cern.ch/dqm/offline",
		OMS:           "https://cmsoms.cern.ch/cms",
		RunRegistry:   "https://cmsrunregistry.web.cern.ch",
	}
}

// DefaultDataDir is a "spyagency" folder in the user's cache directory, or in the temporary directory
// when the system names no cache directory (no $HOME).
func DefaultDataDir() string {
	base, err := os.UserCacheDir()
	if err != nil || base == "" {
		base = os.TempDir()
	}
	return filepath.Join(base, "spyagency")
}

// defaultSource is a source block before the file is read: disabled, default timings.
func defaultSource(src pcl.Source) Source {
	return Source{
		Interval:   DefaultInterval(src),
		Jitter:     DefaultJitter,
		Timeout:    DefaultPollTimeout,
		StaleAfter: DefaultStaleAfter,
	}
}

// DefaultNotifications is the harvest source's notifications.
const DefaultNotifications = "auto"

// HarvestNotifications is the harvest source's notifications as the spy is to use them: the value
// written, or DefaultNotifications where none was (a file without the key, a Source built in code).
// The one place the default is decided; validation accepts the empty value for the same reason.
func (s Source) HarvestNotifications() string {
	if s.Notifications == "" {
		return DefaultNotifications
	}
	return s.Notifications
}

func defaultHarvest() Source {
	s := defaultSource(pcl.SourceHarvest)
	s.Notifications = DefaultNotifications
	return s
}

// Default is the configuration of an empty file: every source off, SQLite in the cache directory, the
// built-in catalogue, policy and run class rules.
func Default() *Config {
	c := preDefaults()
	c.finish(nil)
	return c
}

// preDefaults is the configuration the file is decoded over: every field that a present key may replace
// already holds its default. Fields whose default depends on other fields are filled in by finish.
func preDefaults() *Config {
	return &Config{
		Server: Server{
			Addr:            DefaultAddr,
			ReadTimeout:     DefaultReadTimeout,
			WriteTimeout:    DefaultWriteTimeout,
			ShutdownTimeout: DefaultShutdownTimeout,
			MaxBodyBytes:    DefaultMaxBodyBytes,
		},
		Sources: Sources{
			OMS:     defaultSource(pcl.SourceOMS),
			Tier0:   defaultSource(pcl.SourceTier0),
			Harvest: defaultHarvest(),
			Dropbox: defaultSource(pcl.SourceDropbox),
			CondDB:  defaultSource(pcl.SourceCondDB),
			DQM:     defaultSource(pcl.SourceDQM),
		},
		Store: Store{Retention: DefaultRetention},
		Links: DefaultLinks(),
		Access: Access{
			Read:             "open",
			Pull:             "open",
			FailedAuthLimit:  DefaultFailedAuthLimit,
			FailedAuthWindow: DefaultFailedAuthWindow,
			OIDC:             OIDC{RolesClaim: DefaultRolesClaim, SessionTTL: DefaultSessionTTL},
		},
		Alerts: defaultAlerts(),
		Agency: Agency{
			ReconcileBatch: DefaultReconcileBatch,
			ResyncInterval: DefaultResyncInterval,
			LeaseTTL:       DefaultLeaseTTL,
			Lookback:       DefaultLookback,
		},
	}
}

// finish fills the defaults that depend on other fields or on whether a key was present at all.
// present says whether a key path (as in Problem.Field) was in the file; nil means none was.
func (c *Config) finish(present func(path string) bool) {
	if present == nil {
		present = func(string) bool { return false }
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.Store.DSN == "" {
		c.Store.DSN = "sqlite:" + filepath.Join(c.DataDir, "spyagency.db")
	}
	for _, s := range c.Sources.list() {
		if !present("sources." + string(s.name) + ".enabled") {
			s.src.Enabled = s.src.URL != "" || s.src.Dir != "" || s.src.DSN != ""
		}
	}
	if len(c.RunClasses) == 0 {
		c.RunClasses = DefaultClassRules()
	}
	if len(c.Workflows) == 0 {
		c.Workflows = pcl.DefaultWorkflows()
	}
	if len(c.Policy.Classes) == 0 {
		c.Policy = pcl.DefaultPolicy()
	}
	if len(c.Access.OIDC.Scopes) == 0 {
		c.Access.OIDC.Scopes = []string{"openid", "profile", "email"}
	}
	c.finishAlerts()
}

// namedSource is a source block with its name, pointing into the Config.
type namedSource struct {
	name pcl.Source
	src  *Source
}

func (s *Sources) list() []namedSource {
	return []namedSource{
		{pcl.SourceOMS, &s.OMS}, {pcl.SourceTier0, &s.Tier0}, {pcl.SourceHarvest, &s.Harvest},
		{pcl.SourceDropbox, &s.Dropbox}, {pcl.SourceCondDB, &s.CondDB}, {pcl.SourceDQM, &s.DQM},
	}
}

// ByName returns a source's block by its name (pcl.SourceOMS, ...).
func (s *Sources) ByName(name pcl.Source) (Source, bool) {
	for _, n := range s.list() {
		if n.name == name {
			return *n.src, true
		}
	}
	return Source{}, false
}

// Set replaces one source's block.
func (s *Sources) Set(name pcl.Source, src Source) bool {
	for _, n := range s.list() {
		if n.name == name {
			*n.src = src
			return true
		}
	}
	return false
}

// Enabled lists the enabled sources in pcl.Sources order.
func (s *Sources) Enabled() []pcl.Source {
	var out []pcl.Source
	for _, n := range s.list() {
		if n.src.Enabled {
			out = append(out, n.name)
		}
	}
	return out
}

// Catalogue builds the configured workflow catalogue.
func (c *Config) Catalogue() (*pcl.Catalogue, error) {
	ws := c.Workflows
	if len(ws) == 0 {
		ws = pcl.DefaultWorkflows()
	}
	return pcl.NewCatalogue(ws)
}
