package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// A reload (SIGHUP) applies the keys config.ReloadClassOf says reload, each
// through a small hook of the component that uses it, which swaps an
// immutable value behind an atomic pointer: the work in flight finishes
// with the old settings, the next uses the new, and nothing on the hot path
// takes a lock or waits for the reload. The keys read once at start-up are
// reported and keep their value until a restart. A configuration that is
// not valid is refused whole: the running one stays.

// ReloadReport is what a reload did, for the log and /status.
type ReloadReport struct {
	At time.Time `json:"at"`
	// Result is "applied" (the changed reloadable keys run now),
	// "unchanged" (nothing that reloads changed) or "rejected" (the new
	// configuration is not valid or could not be read: nothing changed).
	Result string `json:"result"`
	// Applied are the keys whose new value runs now.
	Applied []string `json:"applied,omitempty"`
	// NeedsRestart are the keys that changed but are read only at start:
	// they keep the value the process started with.
	NeedsRestart []string `json:"needs_restart,omitempty"`
	// Error is why the configuration was rejected.
	Error string `json:"error,omitempty"`
	// Notes say where an applied key does not reach (a part of the process
	// that reads it only at start).
	Notes []string `json:"notes,omitempty"`
}

// Reload results.
const (
	ReloadApplied   = "applied"
	ReloadUnchanged = "unchanged"
	ReloadRejected  = "rejected"
)

// reloadState is the pipeline's part for reloads.
type reloadState struct {
	mu      sync.Mutex // one reload at a time
	current atomic.Pointer[config.Config]
	last    atomic.Pointer[ReloadReport]
	level   *slog.LevelVar // the logger's level, when the command gave it
	// mappings is the enrich stage's resolver of log groups to stages
	// (awstags.Tagger or awstags.Offline).
	mappings interface{ SetMappings([]awstags.Mapping) error }
	ok       *telemetry.Counter
	rejected *telemetry.Counter
}

func (p *Pipeline) registerReload() {
	p.reload.current.Store(&p.cfg)
	const help = "Configuration reloads (SIGHUP), by result: ok (applied, or nothing to apply), rejected (invalid or unreadable: the running configuration stays)."
	p.reload.ok = p.metrics.Counter("config.reloads", help, telemetry.L("result", "ok"))
	p.reload.rejected = p.metrics.Counter("config.reloads", help, telemetry.L("result", "rejected"))
}

// SetLogLevel gives the pipeline the level of the logger it was given, for
// reloads of log.level.
func (p *Pipeline) SetLogLevel(v *slog.LevelVar) { p.reload.level = v }

// RunningConfig is the configuration running now: the one the pipeline
// started with, with the reloadable keys of the last applied reload.
func (p *Pipeline) RunningConfig() config.Config { return *p.reload.current.Load() }

// LastReload is the last reload's report; nil before the first.
func (p *Pipeline) LastReload() *ReloadReport { return p.reload.last.Load() }

// Reload applies next's reloadable keys to the running pipeline and
// reports the changed keys that need a restart, leaving them as they
// were. An invalid next is rejected with every reason (each naming its
// full key) and changes nothing. The report is logged, counted and shown
// in /status. It returns an error only when it rejects next.
func (p *Pipeline) Reload(ctx context.Context, next config.Config) (ReloadReport, error) {
	p.reload.mu.Lock()
	defer p.reload.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return p.rejectReload(err, nil), err
	}
	certs := p.reloadCertificates()
	if err := next.Validate(); err != nil {
		err = fmt.Errorf("invalid configuration:\n%w", err)
		return p.rejectReload(err, certs), err
	}
	cur := *p.reload.current.Load()
	rep := ReloadReport{At: time.Now().UTC(), Result: ReloadUnchanged, Notes: certs}
	for _, k := range config.Diff(cur, next) {
		switch config.ReloadClassOf(k) {
		case config.Reloads:
			rep.Applied = append(rep.Applied, k)
		case config.NeedsRestart:
			rep.NeedsRestart = append(rep.NeedsRestart, k)
		}
	}
	run := cur.WithReloaded(next)
	// Keys are checked together (one may bound another): what will run
	// must be valid too, not only the file.
	if err := run.Validate(); err != nil {
		err = fmt.Errorf("the reloadable keys do not fit the keys that need a restart:\n%w", err)
		return p.rejectReload(err, certs), err
	}
	var finish func()
	if len(rep.Applied) > 0 {
		rep.Result = ReloadApplied
		var notes []string
		notes, finish = p.applyReload(run, rep.Applied)
		rep.Notes = append(rep.Notes, notes...)
	}
	p.reload.current.Store(&run)
	p.reload.ok.Inc()
	p.reload.last.Store(&rep)
	if len(rep.Applied) > 0 {
		p.log.Info("configuration reloaded", "applied", rep.Applied)
	} else {
		p.log.Info("configuration reloaded: no key that reloads changed")
	}
	if len(rep.NeedsRestart) > 0 {
		p.log.Warn("configuration changes that need a restart were left as they were", "keys", rep.NeedsRestart)
	}
	for _, n := range rep.Notes {
		p.log.Warn("configuration reloaded in part: " + n)
	}
	if finish != nil {
		finish()
	}
	return rep, nil
}

// RejectReload records a reload that could not even read its configuration
// (a file that does not parse, a key that does not exist): counted, logged
// and shown like an invalid one.
func (p *Pipeline) RejectReload(err error) ReloadReport {
	p.reload.mu.Lock()
	defer p.reload.mu.Unlock()
	return p.rejectReload(err, p.reloadCertificates())
}

// reloadCertificates reads the listeners' TLS certificates again
// (sources.firehose.tls, admin.tls): a reload request is also how a
// rotation is announced, whatever the configuration file says. One that
// cannot be read keeps serving the previous certificate; the returned note
// says so.
func (p *Pipeline) reloadCertificates() (notes []string) {
	if len(p.tls) == 0 {
		return nil
	}
	if err := p.ReloadTLS(); err != nil {
		p.log.Error("TLS certificates not read again: the previous ones are still served", "error", err)
		return []string{fmt.Sprintf("TLS certificates not read again, the previous ones are still served: %v", err)}
	}
	p.log.Info("TLS certificates read again")
	return nil
}

// rejectReload records a rejected reload.
func (p *Pipeline) rejectReload(err error, notes []string) ReloadReport {
	rep := ReloadReport{At: time.Now().UTC(), Result: ReloadRejected, Error: err.Error(), Notes: notes}
	p.reload.rejected.Inc()
	p.reload.last.Store(&rep)
	p.log.Error("configuration reload rejected: the running configuration stays", "error", err)
	return rep
}

// applyReload hands each changed key's new value to the components of this
// process that use it (those of stages it does not run are absent), and
// returns notes on what the new values do not reach. run is valid, and
// each hook validates as Validate does, so a hook failing is a bug: it is
// reported as a note, its component keeping its old value.
//
// The log level changes in two steps, so that the lines saying what the
// reload did are written at the more verbose of the two levels: to it now,
// to the new level when finish is called, after those lines.
func (p *Pipeline) applyReload(run config.Config, changed []string) (notes []string, finish func()) {
	has := func(keys ...string) bool {
		return slices.ContainsFunc(keys, func(k string) bool { return slices.Contains(changed, k) })
	}
	var errs []error
	if has("log.level") {
		var lvl slog.Level
		switch err := lvl.UnmarshalText([]byte(run.Log.Level)); {
		case err != nil:
			errs = append(errs, fmt.Errorf("log.level: %w", err))
		case p.reload.level == nil:
			notes = append(notes, "log.level: this logger's level cannot change (no level variable given to the pipeline)")
		default:
			p.reload.level.Set(min(p.reload.level.Level(), lvl))
			finish = func() { p.reload.level.Set(lvl) }
		}
	}
	if has("parse.formats", "parse.access_log_group_prefixes", "parse.other_source") && p.parser != nil {
		if err := p.parser.SetConfig(run.Parse.Config); err != nil {
			errs = append(errs, fmt.Errorf("parse: %w", err))
		}
	}
	if has("enrich.mappings") && p.reload.mappings != nil {
		if err := p.reload.mappings.SetMappings(run.Enrich.Mappings); err != nil {
			errs = append(errs, fmt.Errorf("enrich.mappings: %w", err))
		}
	}
	if has("enrich.role_template", "enrich.role_overrides", "enrich.external_id") {
		if p.tagger != nil {
			if err := p.tagger.SetRoles(run.Enrich.Config); err != nil {
				errs = append(errs, fmt.Errorf("enrich: %w", err))
			}
		}
		if p.runs(StageIngest) && run.Metrics.Enabled && len(run.Metrics.Poller.Accounts) > 0 {
			notes = append(notes, "the CloudWatch poller (metrics.poller) keeps the roles it started with until a restart")
		}
	}
	if has("metrics.tag_allowlist") && p.deriver != nil {
		if err := p.deriver.SetTagAllowlist(run.Metrics.TagAllowlist); err != nil {
			errs = append(errs, fmt.Errorf("metrics.tag_allowlist: %w", err))
		}
	}
	if has("filters.redact", "filters.rules", "filters.include_at_match", "filters.exclude_at_match", "filters.drop", "filters.sample") && p.filters != nil {
		if err := p.filters.Load(run.Filters); err != nil {
			errs = append(errs, err)
		}
	}
	if has("enrich.tags", "datadog.service") && p.logs != nil {
		p.logs.SetDefaults(run.LogsClient().Defaults)
	}
	if has("enrich.tags") && p.deriver != nil {
		p.deriver.SetStaticTags(run.Enrich.Tags)
	}
	if err := errors.Join(errs...); err != nil {
		notes = append(notes, fmt.Sprintf("not applied, kept as they were: %v", err))
	}
	return notes, finish
}
