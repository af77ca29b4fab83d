package awstags

import (
	"fmt"
	"maps"
)

// A configuration reload replaces the mappings and the role settings
// without stopping the enrichment: each is an immutable value behind an
// atomic pointer, so that a lookup under way finishes with what it
// started with and the next one uses the new.

// roleSettings keeps cfg's role settings alone (RoleTemplate,
// RoleOverrides, ExternalID).
func roleSettings(cfg Config) *Config {
	return &Config{RoleTemplate: cfg.RoleTemplate, RoleOverrides: maps.Clone(cfg.RoleOverrides), ExternalID: cfg.ExternalID}
}

// withMappings is r with other mappings: a new memo, the same regions.
func (r *resolver) withMappings(m []Mapping) *resolver {
	return newResolver(Config{Mappings: m, SourceRegions: r.sourceRegions, DefaultRegion: r.defaultRegion})
}

// validMappings checks mappings as Validate does.
func validMappings(m []Mapping) error {
	if err := (Config{Mappings: m}).withDefaults().Validate(); err != nil {
		return fmt.Errorf("awstags: invalid configuration: %w", err)
	}
	return nil
}

// SetMappings replaces Config.Mappings: records resolved from then on are
// named by the new ones. Invalid mappings are refused and the current ones
// stay.
func (t *Tagger) SetMappings(m []Mapping) error {
	if err := validMappings(m); err != nil {
		return err
	}
	t.res.Store(t.res.Load().withMappings(m))
	return nil
}

// SetMappings replaces Config.Mappings, as Tagger.SetMappings does.
func (o *Offline) SetMappings(m []Mapping) error {
	if err := validMappings(m); err != nil {
		return err
	}
	o.res.Store(o.res.Load().withMappings(m))
	return nil
}

// SetRoles replaces the role settings (RoleTemplate, RoleOverrides,
// ExternalID; cfg's other fields are ignored). Each account already known
// whose role or external id changes is read with the new one from its next
// call on, and its inventories are read again at once, so that an account
// a wrong role kept from being read does not wait for NegativeTTL. Invalid
// settings are refused and the current ones stay.
func (t *Tagger) SetRoles(cfg Config) error {
	r := roleSettings(cfg)
	probe := *r
	if err := probe.withDefaults().Validate(); err != nil {
		return fmt.Errorf("awstags: invalid configuration: %w", err)
	}
	t.mu.Lock()
	t.roles.Store(r)
	changed := map[*account]bool{}
	for _, a := range t.accounts {
		cur := a.auth.Load()
		if role := r.RoleFor(a.id); role != cur.role || (role != "" && r.ExternalID != cur.externalID) {
			a.auth.Store(t.newAuth(a, r))
			changed[a] = true
		}
	}
	var reread []*inventory
	for _, inv := range *t.invs.Load() {
		if changed[inv.acct] {
			reread = append(reread, inv)
		}
	}
	t.mu.Unlock()
	for _, inv := range reread {
		t.startLoad(inv)
	}
	if len(changed) > 0 {
		t.log.Info("role settings reloaded: accounts read again with their new role", "accounts", len(changed))
	}
	return nil
}
