package alert

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"time"
)

// EmailNotifier sends each group of alerts as one plain-text mail over SMTP. STARTTLS is required (a
// server that does not offer it is refused: the password and the alerts must not travel in clear),
// AUTH PLAIN is used when a username is configured.
type EmailNotifier struct {
	name, addr, host string
	from             string
	to               []string
	user, password   string
	roots            *x509.CertPool // nil: the system's
	timeout          time.Duration
	now              func() time.Time
}

// EmailSettings configure an EmailNotifier.
type EmailSettings struct {
	Name     string
	Addr     string // host:port
	From     string
	To       []string
	Username string
	Password string
	// CAFile is a PEM file of the authorities that may sign the server's certificate; "" for the
	// system's.
	CAFile  string
	Timeout time.Duration
	Now     func() time.Time // the Date header; default time.Now
}

// NewEmail checks the settings and reads the authorities.
func NewEmail(s EmailSettings) (*EmailNotifier, error) {
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return nil, fmt.Errorf("email notifier %s: smtp %q: %w", s.Name, s.Addr, err)
	}
	if _, err := mail.ParseAddress(s.From); err != nil {
		return nil, fmt.Errorf("email notifier %s: from %q: %w", s.Name, s.From, err)
	}
	if len(s.To) == 0 {
		return nil, fmt.Errorf("email notifier %s: no recipient", s.Name)
	}
	e := &EmailNotifier{name: s.Name, addr: s.Addr, host: host, from: s.From, to: slices.Clone(s.To), user: s.Username,
		password: s.Password, timeout: s.Timeout, now: s.Now}
	if e.timeout <= 0 {
		e.timeout = 10 * time.Second
	}
	if e.now == nil {
		e.now = time.Now
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("email notifier %s: ca_file: %w", s.Name, err)
		}
		e.roots = x509.NewCertPool()
		if !e.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("email notifier %s: ca_file %s holds no PEM certificate", s.Name, s.CAFile)
		}
	}
	return e, nil
}

// smtpVerdict: a 4xx reply is the server's "try later", a 5xx a refusal; anything that is not an SMTP
// reply (a broken connection, a timeout) is worth retrying.
func smtpVerdict(err error, what string) (bool, error) {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code >= 400 && tp.Code < 500, fmt.Errorf("%s: SMTP %d %s", what, tp.Code, tp.Msg)
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return false, fmt.Errorf("%s: the server's certificate is not trusted (see ca_file): %w", what, err)
	}
	return true, fmt.Errorf("%s: %w", what, err)
}

// Notify sends one mail for the group.
func (e *EmailNotifier) Notify(ctx context.Context, m Message) (bool, error) {
	what := "email " + e.name
	deadline := time.Now().Add(e.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dialer := net.Dialer{Deadline: deadline}
	conn, err := dialer.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return true, fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline) // every exchange below, TLS included, ends by it
	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		return smtpVerdict(err, what)
	}
	defer c.Close()
	if err := c.Hello("spyagency"); err != nil {
		return smtpVerdict(err, what)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return false, fmt.Errorf("%s: %s offers no STARTTLS; mail is only sent encrypted", what, e.addr)
	}
	if err := c.StartTLS(&tls.Config{ServerName: e.host, RootCAs: e.roots, MinVersion: tls.VersionTLS12}); err != nil {
		return smtpVerdict(err, what)
	}
	if e.user != "" {
		if err := c.Auth(smtp.PlainAuth("", e.user, e.password, e.host)); err != nil {
			return smtpVerdict(err, what)
		}
	}
	if err := c.Mail(addressOf(e.from)); err != nil {
		return smtpVerdict(err, what)
	}
	for _, to := range e.to {
		if err := c.Rcpt(addressOf(to)); err != nil {
			return smtpVerdict(err, what)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpVerdict(err, what)
	}
	if _, err := w.Write(e.compose(m)); err != nil {
		return smtpVerdict(err, what)
	}
	if err := w.Close(); err != nil {
		return smtpVerdict(err, what)
	}
	_ = c.Quit() // the mail is accepted; a failed goodbye changes nothing
	return false, nil
}

// addressOf is the bare address of "Name <addr>".
func addressOf(s string) string {
	if a, err := mail.ParseAddress(s); err == nil {
		return a.Address
	}
	return s
}

// oneHeaderLine keeps what comes from sources from starting a header of its own.
func oneHeaderLine(s string) string {
	return strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
}

// compose writes the mail: headers, then the alerts in plain text, quoted-printable.
func (e *EmailNotifier) compose(m Message) []byte {
	firing := 0
	for _, n := range m.Alerts {
		if n.Status == "firing" {
			firing++
		}
	}
	subject := fmt.Sprintf("[%s:%d] %s", strings.ToUpper(m.Status()), max(firing, len(m.Alerts)-firing), m.GroupLabels["alertname"])
	if m.Status() == "firing" {
		subject = fmt.Sprintf("[FIRING:%d] %s", firing, m.GroupLabels["alertname"])
	}
	if len(m.Alerts) == 1 {
		subject += ": " + m.Alerts[0].Annotations["summary"]
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", e.from)
	header("To", strings.Join(e.to, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", oneHeaderLine(subject)+" (Spy Agency)"))
	header("Date", e.now().UTC().Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id)+"@spyagency>")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("X-Spyagency-Group", mime.QEncoding.Encode("utf-8", oneHeaderLine(m.GroupKey)))
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	fmt.Fprintf(qp, "%d alert(s) of %s, %d firing.\r\n\r\n", len(m.Alerts), m.GroupLabels["alertname"], firing)
	for _, n := range m.Alerts {
		fmt.Fprintf(qp, "%s [%s] %s\r\n", strings.ToUpper(n.Status), n.Labels["severity"], n.Annotations["summary"])
		fmt.Fprintf(qp, "  since %s", n.StartsAt.UTC().Format("2006-01-02 15:04 MST"))
		if n.Status == "resolved" {
			fmt.Fprintf(qp, ", resolved %s", n.EndsAt.UTC().Format("2006-01-02 15:04 MST"))
		}
		qp.Write([]byte("\r\n"))
		for _, k := range []string{"description", "run_url", "workflow_url", "runbook_url"} {
			if v := n.Annotations[k]; v != "" {
				fmt.Fprintf(qp, "  %s: %s\r\n", strings.TrimSuffix(k, "_url"), v)
			}
		}
		fmt.Fprintf(qp, "  alert: %s\r\n\r\n", n.GeneratorURL)
	}
	fmt.Fprintf(qp, "The Alerts page: %s/alerts\r\n", m.ExternalURL)
	_ = qp.Close()
	return b.Bytes()
}
