package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-11-28T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	got := readBuildInfo(bi, true)
	if got.Version != "v1.2.3" || got.Revision != "0123456789abcdef0123456789abcdef01234567-dirty" || got.Built != "2026-11-28T10:00:00Z (commit time)" {
		t.Fatalf("build info read as %+v", got)
	}
	line := got.String()
	if !strings.HasPrefix(line, "gwpipe v1.2.3 (rev 0123456789ab-dirty, built 2026-11-28T10:00:00Z (commit time), go") {
		t.Fatalf("version line %q", line)
	}
}

func TestVersionLinkTimeValuesWin(t *testing.T) {
	defer func(v, r, b string) { version, revision, buildTime = v, r, b }(version, revision, buildTime)
	version, revision, buildTime = "1.4.0", "fedcba9876543210fedcba9876543210fedcba98", "2026-12-01T08:00:00Z"
	bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2020-01-01T00:00:00Z"},
	}}
	got := readBuildInfo(bi, true)
	if got.Version != "1.4.0" || got.Revision != revision || got.Built != buildTime {
		t.Fatalf("link-time values not kept: %+v", got)
	}
}

func TestVersionWithoutBuildInfo(t *testing.T) {
	got := readBuildInfo(nil, false)
	if got.Version != "dev" || !strings.Contains(got.String(), "rev unknown") {
		t.Fatalf("no build info read as %+v (%s)", got, got)
	}
}

func TestVersionCommandAndFlagAgree(t *testing.T) {
	var a, b bytes.Buffer
	for _, c := range []struct {
		args []string
		out  *bytes.Buffer
	}{{[]string{"version"}, &a}, {[]string{"--version"}, &b}} {
		root := rootCmd()
		root.SetOut(c.out)
		root.SetArgs(c.args)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
	}
	if a.String() != b.String() || !strings.HasPrefix(a.String(), "gwpipe ") || !strings.HasSuffix(a.String(), ")\n") {
		t.Fatalf("version %q, --version %q", a.String(), b.String())
	}
}
