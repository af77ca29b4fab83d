package membudget

import "fmt"

// Config sizes the process's budget; it is part of the pipeline section of
// gwpipe's configuration.
type Config struct {
	// MaxHeldBytes is the budget: event data held by the process, from
	// admission until delivery, counted with its expected footprint.
	MaxHeldBytes int64 `yaml:"max_held_bytes"`
	// IngestHighWaterBytes is the part of MaxHeldBytes above which sources
	// admit nothing new; the rest is decode's room to expand what was
	// admitted.
	IngestHighWaterBytes int64 `yaml:"ingest_high_water_bytes"`
}

// DefaultConfig is 96 MiB, sources admitting up to half of it.
func DefaultConfig() Config { return Config{MaxHeldBytes: 96 << 20, IngestHighWaterBytes: 48 << 20} }

// Validate reports a budget that cannot work.
func (c Config) Validate() error {
	if c.MaxHeldBytes < 1<<20 {
		return fmt.Errorf("max_held_bytes: must be at least 1 MiB (it is a number of bytes), got %d", c.MaxHeldBytes)
	}
	if c.IngestHighWaterBytes <= 0 || c.IngestHighWaterBytes >= c.MaxHeldBytes {
		return fmt.Errorf("ingest_high_water_bytes: must be positive and below max_held_bytes (%d), got %d: above it sources wait, below it decode has room to expand what they admitted",
			c.MaxHeldBytes, c.IngestHighWaterBytes)
	}
	return nil
}

// NewBudget returns the budget c describes.
func NewBudget(c Config) (*Budget, error) { return New(c.MaxHeldBytes, c.IngestHighWaterBytes) }
