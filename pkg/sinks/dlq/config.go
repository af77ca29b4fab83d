package dlq

import "errors"

// Config places the dead-letter archive; it is the dlq section of gwpipe's
// configuration.
type Config struct {
	Dir string `yaml:"dir"` // the archive's directory
}

// DefaultConfig archives under data/dlq.
func DefaultConfig() Config { return Config{Dir: "data/dlq"} }

// Validate reports a configuration that leaves dead letters nowhere to go.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: must be set: dead letters need somewhere to go")
	}
	return nil
}
