package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Set at link time by the Makefile (-ldflags "-X main.version=… -X
// main.revision=… -X main.buildTime=…"); a plain `go build` or `go install`
// leaves them empty and the build info answers instead.
var (
	version   = ""
	revision  = ""
	buildTime = ""
)

// buildInfo is what `gwpipe version` reports.
type buildInfo struct {
	Version  string // the release, or the module version, or "dev"
	Revision string // git commit, with "-dirty" when built from a modified tree
	Built    string // build time (-ldflags), else the commit time
	Go       string // toolchain and platform
}

// readBuildInfo merges the link-time values with what the Go toolchain
// records in every binary (module version, vcs.revision, vcs.time,
// vcs.modified).
func readBuildInfo(bi *debug.BuildInfo, ok bool) buildInfo {
	info := buildInfo{Version: version, Revision: revision, Built: buildTime, Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		vcs := map[string]string{}
		for _, s := range bi.Settings {
			vcs[s.Key] = s.Value
		}
		if info.Revision == "" && vcs["vcs.revision"] != "" {
			info.Revision = vcs["vcs.revision"]
			if vcs["vcs.modified"] == "true" {
				info.Revision += "-dirty"
			}
		}
		if info.Built == "" && vcs["vcs.time"] != "" {
			info.Built = vcs["vcs.time"] + " (commit time)"
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

// String is the one line `gwpipe version` and `gwpipe --version` print,
// as `vector --version` does: gwpipe 1.4.0 (rev 1a2b3c4d5e6f, built …, go1.26 linux/amd64).
func (b buildInfo) String() string {
	parts := []string{}
	rev := b.Revision
	if rev == "" {
		rev = "unknown"
	}
	parts = append(parts, "rev "+shortRev(rev))
	if b.Built != "" {
		parts = append(parts, "built "+b.Built)
	}
	parts = append(parts, b.Go)
	return fmt.Sprintf("gwpipe %s (%s)", b.Version, strings.Join(parts, ", "))
}

// shortRev keeps 12 hex digits of a revision, as git's abbreviations do
// for large repositories, and any "-dirty" mark.
func shortRev(rev string) string {
	hash, mark, _ := strings.Cut(rev, "-")
	if len(hash) > 12 {
		hash = hash[:12]
	}
	if mark != "" {
		return hash + "-" + mark
	}
	return hash
}

func currentBuild() buildInfo { return readBuildInfo(debug.ReadBuildInfo()) }

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, git revision and build time",
		Long: `Version prints the release, the git revision it was built from ("-dirty"
when the tree had uncommitted changes) and the build time, then the Go
toolchain and platform. make build sets the version (git describe) and the
build time; a plain go build takes the revision and its commit time from the
build information Go records in the binary.`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), currentBuild())
		},
	}
}
