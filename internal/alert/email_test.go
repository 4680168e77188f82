package alert

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// smtpServer is a small SMTP server for the tests, on loopback: EHLO, STARTTLS with a certificate made
// for the test, AUTH PLAIN (only once encrypted), MAIL, RCPT, DATA, QUIT. It refuses mail before
// STARTTLS, so a mail that arrives proves the notifier encrypted.
type smtpServer struct {
	ln       net.Listener
	cert     tls.Certificate
	user     string
	pass     string
	noTLS    bool // offer no STARTTLS
	rcptCode int  // answer RCPT with this code instead of 250

	mu    sync.Mutex
	mails []gotMail
	wg    sync.WaitGroup
}

type gotMail struct {
	from   string
	to     []string
	authed string
	data   string
}

// selfSigned makes a certificate for 127.0.0.1 and writes it, as the authority to trust, to a PEM file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

func startSMTP(t *testing.T, s *smtpServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.session(c) })
		}
	})
	return ln.Addr().String()
}

func (s *smtpServer) session(c net.Conn) {
	defer func() { c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(c)
	reply := func(code int, lines ...string) {
		for i, l := range lines {
			sep := "-"
			if i == len(lines)-1 {
				sep = " "
			}
			_ = tp.PrintfLine("%d%s%s", code, sep, l)
		}
	}
	reply(220, "smtp.test ESMTP ready")
	var encrypted bool
	var m gotMail
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			exts := []string{"smtp.test"}
			if !encrypted && !s.noTLS {
				exts = append(exts, "STARTTLS")
			}
			if encrypted {
				exts = append(exts, "AUTH PLAIN")
			}
			reply(250, append(exts, "8BITMIME")...)
		case "STARTTLS":
			reply(220, "go ahead")
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12})
			if err := tc.Handshake(); err != nil {
				return
			}
			c, tp, encrypted = tc, textproto.NewConn(tc), true
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if !encrypted || mech != "PLAIN" || err != nil || len(parts) != 3 || parts[1] != s.user || parts[2] != s.pass {
				reply(535, "authentication failed")
				continue
			}
			m.authed = parts[1]
			reply(235, "authenticated")
		case "MAIL":
			if !encrypted {
				reply(530, "must issue STARTTLS first")
				continue
			}
			m.from = pathOf(arg)
			reply(250, "ok")
		case "RCPT":
			if s.rcptCode != 0 {
				reply(s.rcptCode, "recipient not taken now")
				continue
			}
			m.to = append(m.to, pathOf(arg))
			reply(250, "ok")
		case "DATA":
			reply(354, "end with .")
			data, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			m.data = string(data)
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			m = gotMail{authed: m.authed}
			reply(250, "queued")
		case "RSET", "NOOP":
			reply(250, "ok")
		case "QUIT":
			reply(221, "bye")
			return
		default:
			reply(502, "not implemented")
		}
	}
}

// pathOf is the address between < and > of "FROM:<a@b> BODY=8BITMIME".
func pathOf(arg string) string {
	_, rest, _ := strings.Cut(arg, "<")
	addr, _, _ := strings.Cut(rest, ">")
	return addr
}

func (s *smtpServer) received() []gotMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gotMail(nil), s.mails...)
}

// TestEmailOverSTARTTLS: the e-mail notifier, built from the configuration with its password from a
// file, upgrades to TLS, authenticates and delivers one mail per group, with the alert, its run and its
// runbook in it.
func TestEmailOverSTARTTLS(t *testing.T) {
	t.Parallel()
	cert, caFile := selfSigned(t)
	srv := &smtpServer{cert: cert, user: "spyagency", pass: "s3cret smtp"}
	addr := startSMTP(t, srv)
	pwFile := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(pwFile, []byte("s3cret smtp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse("mail.yaml", fmt.Appendf(nil, `
alerts:
  external_url: https://spyagency.example.cern.ch
  email:
    - name: alca-shift
      smtp: %q
      from: "Spy Agency <spyagency@cern.ch>"
      to: [alca-shifters@cern.ch, expert@cern.ch]
      username: spyagency
      password_file: %s
      ca_file: %s
      timeout: 5s
`, addr, pwFile, caFile))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := BuildNotifiers(c.Alerts, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, ns...)
	r.cfg = c.Alerts
	r.cfg.Rules.RunBlocked.Enabled = false
	r.open()
	r.w.set(runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed)))
	r.at(time.Hour)
	mails := srv.received()
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1 (health %+v)", len(mails), r.e.Notifiers())
	}
	got := mails[0]
	if got.authed != "spyagency" || got.from != "spyagency@cern.ch" || strings.Join(got.to, ",") != "alca-shifters@cern.ch,expert@cern.ch" {
		t.Fatalf("mail envelope %+v", got)
	}
	msg, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(got.data)))
	if err != nil {
		t.Fatal(err)
	}
	if subj := msg.Header.Get("Subject"); subj != "[FIRING:1] upload-failed: run 400123 SiStripGains: upload failed (Spy Agency)" {
		t.Errorf("subject %q", subj)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FIRING [critical] run 400123 SiStripGains: upload failed", "run: https://spyagency.example.cern.ch/runs/400123",
		"runbook: https://spyagency.example.cern.ch/alerts/runbook#upload-failed", "workflow: https://spyagency.example.cern.ch/workflows/SiStripGains"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if h := r.e.Notifiers()[0]; !h.Healthy() || h.LastSuccess.IsZero() {
		t.Errorf("health %+v", h)
	}
	// Resolved: a second mail, and nothing more on later evaluations.
	r.w.set()
	r.at(2 * time.Hour)
	r.at(3 * time.Hour)
	if mails := srv.received(); len(mails) != 2 || !strings.Contains(mails[1].data, "[RESOLVED:1] upload-failed") {
		t.Fatalf("%d mails after the resolution", len(mails))
	}
}

// TestEmailVerdicts: a server without STARTTLS, an untrusted certificate and a 5xx are refusals; a 4xx
// is worth retrying. No mail is sent in clear.
func TestEmailVerdicts(t *testing.T) {
	t.Parallel()
	cert, caFile := selfSigned(t)
	msg := Message{Receiver: "m", GroupLabels: map[string]string{"alertname": "at-risk"},
		Alerts: []Notice{{Status: "firing", Labels: map[string]string{"alertname": "at-risk"}, Annotations: map[string]string{"summary": "x"}}}}
	for _, tc := range []struct {
		name   string
		srv    *smtpServer
		ca     string
		retry  bool
		errHas string
	}{
		{"no STARTTLS", &smtpServer{cert: cert, noTLS: true}, caFile, false, "no STARTTLS"},
		{"untrusted certificate", &smtpServer{cert: cert}, "", false, "not trusted"},
		{"451 try later", &smtpServer{cert: cert, rcptCode: 451}, caFile, true, "SMTP 451"},
		{"550 refused", &smtpServer{cert: cert, rcptCode: 550}, caFile, false, "SMTP 550"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := startSMTP(t, tc.srv)
			n, err := NewEmail(EmailSettings{Name: "m", Addr: addr, From: "spyagency@cern.ch", To: []string{"a@cern.ch"}, CAFile: tc.ca, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), msg)
			if err == nil || retry != tc.retry || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("retry=%v err=%v, want retry=%v and %q", retry, err, tc.retry, tc.errHas)
			}
			if len(tc.srv.received()) != 0 {
				t.Fatal("a mail was delivered")
			}
		})
	}
	// Nobody listening: worth retrying.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	n, _ := NewEmail(EmailSettings{Name: "m", Addr: addr, From: "spyagency@cern.ch", To: []string{"a@cern.ch"}, Timeout: time.Second})
	if retry, err := n.Notify(context.Background(), msg); !retry || err == nil {
		t.Errorf("unreachable: retry=%v err=%v", retry, err)
	}
}

// TestEmailHeadersStayHeaders: a summary from a source with line breaks in it cannot add headers.
func TestEmailHeadersStayHeaders(t *testing.T) {
	t.Parallel()
	n, err := NewEmail(EmailSettings{Name: "m", Addr: "127.0.0.1:25", From: "spyagency@cern.ch", To: []string{"a@cern.ch"}})
	if err != nil {
		t.Fatal(err)
	}
	raw := n.compose(Message{GroupLabels: map[string]string{"alertname": "upload-failed"},
		Alerts: []Notice{{Status: "firing", Annotations: map[string]string{"summary": "bad\r\nBcc: everyone@cern.ch"}}}})
	msg, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(string(raw))))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Bcc") != "" || !strings.Contains(msg.Header.Get("Subject"), "Bcc: everyone") {
		t.Fatalf("headers %v", msg.Header)
	}
}
