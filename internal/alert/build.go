package alert

import (
	"github.com/cms-pcl/spyagency/internal/config"
)

// BuildNotifiers makes the configured notifiers, reading their secrets (token and password files or
// environment variables) now, so that a missing secret stops the start rather than the first alert.
// lookupEnv is os.LookupEnv outside tests.
func BuildNotifiers(cfg config.Alerts, lookupEnv func(string) (string, bool)) ([]NamedNotifier, error) {
	var out []NamedNotifier
	for _, n := range cfg.Alertmanagers {
		token, err := config.Token(n.Name, n.TokenFile, n.TokenEnv, lookupEnv)
		if err != nil {
			return nil, err
		}
		out = append(out, NamedNotifier{Name: n.Name, Kind: "alertmanager", RetryFor: n.RetryFor, Resend: n.Resend,
			Notifier: NewAlertmanager(n.Name, n.URL, token, n.Timeout)})
	}
	for _, n := range cfg.Webhooks {
		token, err := config.Token(n.Name, n.TokenFile, n.TokenEnv, lookupEnv)
		if err != nil {
			return nil, err
		}
		out = append(out, NamedNotifier{Name: n.Name, Kind: "webhook", RetryFor: n.RetryFor, Notifier: NewWebhook(n.Name, n.URL, token, n.Timeout)})
	}
	for _, n := range cfg.Email {
		pw, err := n.Password(lookupEnv)
		if err != nil {
			return nil, err
		}
		em, err := NewEmail(EmailSettings{Name: n.Name, Addr: n.SMTP, From: n.From, To: n.To, Username: n.Username, Password: pw,
			CAFile: n.CAFile, Timeout: n.Timeout})
		if err != nil {
			return nil, err
		}
		out = append(out, NamedNotifier{Name: n.Name, Kind: "email", RetryFor: n.RetryFor, Notifier: em})
	}
	return out, nil
}
