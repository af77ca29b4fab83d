// Package tlsreload serves TLS from a certificate and key on disk that
// may be replaced while the process runs (cert-manager, ACME clients and
// Kubernetes secrets rotate them): the files are read again when they
// change, or when Reload is called (SIGHUP). A pair that cannot be read
// (a half-written rotation, a key that does not match) is reported and the
// certificate being served stays.
package tlsreload

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Config names the certificate and its key; it is the tls section of a
// listener's configuration (sources.firehose.tls, admin.tls). Both empty:
// the listener serves plain HTTP.
type Config struct {
	// CertFile is PEM: the certificate, then the intermediates.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of the certificate.
	KeyFile string `yaml:"key_file"`
}

// DefaultConfig is plain HTTP.
func DefaultConfig() Config { return Config{} }

// Enabled reports whether TLS is configured.
func (c Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// Validate reports a certificate without a key, or a key without a
// certificate. The files themselves are read when the listener opens.
func (c Config) Validate() error {
	var errs []error
	if c.CertFile == "" && c.KeyFile != "" {
		errs = append(errs, errors.New("cert_file: required with key_file"))
	}
	if c.KeyFile == "" && c.CertFile != "" {
		errs = append(errs, errors.New("key_file: required with cert_file"))
	}
	return errors.Join(errs...)
}

// CheckInterval is how often, at most, a handshake looks whether the files
// changed: once a second costs two stat calls a second, and a rotated
// certificate is served within a second of its files being replaced.
const CheckInterval = time.Second

// Certs serves the certificate of a Config, read again when its files
// change.
type Certs struct {
	cfg      Config
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	cert      atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // unix nanoseconds

	mu       sync.Mutex // one reload at a time
	stamp    fileStamp  // of the files the served certificate was read from
	failures atomic.Int64
	reloads  atomic.Int64
}

// Option configures Certs.
type Option func(*Certs)

// WithCheckInterval sets how often handshakes look at the files (0: at
// every handshake).
func WithCheckInterval(d time.Duration) Option { return func(c *Certs) { c.interval = d } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(c *Certs) { c.now = now } }

// New reads the certificate and key; it fails when they cannot be used.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Certs, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	c := &Certs{cfg: cfg, log: log, interval: CheckInterval, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// ServerConfig is a TLS configuration for a listener: TLS 1.2 and later,
// the certificate read again as its files change.
func (c *Certs) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c.maybeReload()
			return c.cert.Load(), nil
		},
	}
}

// Reload reads the files again, changed or not. On error the certificate
// served so far stays.
func (c *Certs) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.loadLocked()
	if err != nil {
		c.failures.Add(1)
	}
	return err
}

// Loads is how many times a certificate was read and taken, the first
// time included; Failures how many reloads failed (the old one stayed).
func (c *Certs) Loads() int64    { return c.reloads.Load() }
func (c *Certs) Failures() int64 { return c.failures.Load() }

// Leaf is the certificate being served.
func (c *Certs) Leaf() *tls.Certificate { return c.cert.Load() }

// maybeReload reads the files again when CheckInterval has passed since
// the last look and they changed. Handshakes meanwhile go on with the
// current certificate: only one of them looks.
func (c *Certs) maybeReload() {
	now := c.now().UnixNano()
	next := c.nextCheck.Load()
	if now < next || !c.nextCheck.CompareAndSwap(next, now+int64(c.interval)) {
		return
	}
	st, err := stampOf(c.cfg)
	c.mu.Lock()
	changed := err == nil && st != c.stamp
	c.mu.Unlock()
	if !changed {
		return // a file missing mid-rotation: look again later
	}
	if err := c.Reload(); err != nil {
		c.log.Warn("TLS certificate changed on disk but cannot be used; serving the previous one", "cert_file", c.cfg.CertFile, "error", err)
		return
	}
	c.log.Info("TLS certificate reloaded", "cert_file", c.cfg.CertFile)
}

func (c *Certs) load() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadLocked()
}

func (c *Certs) loadLocked() error {
	// The stamp first: files replaced while they are read are read again
	// at the next look.
	st, err := stampOf(c.cfg)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("cert_file and key_file: %w", err) // crypto/tls says "tls: …" itself
	}
	c.cert.Store(&cert)
	c.stamp = st
	c.reloads.Add(1)
	return nil
}

// fileStamp tells whether files changed: their size and modification time
// (through symbolic links, as Kubernetes swaps a secret's files).
type fileStamp struct {
	certSize, keySize int64
	certMod, keyMod   int64
}

func stampOf(cfg Config) (fileStamp, error) {
	ci, err := os.Stat(cfg.CertFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("cert_file: %w", err)
	}
	ki, err := os.Stat(cfg.KeyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("key_file: %w", err)
	}
	return fileStamp{ci.Size(), ki.Size(), ci.ModTime().UnixNano(), ki.ModTime().UnixNano()}, nil
}
