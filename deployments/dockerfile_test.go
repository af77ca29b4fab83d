package deployments

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile checks the image recipe without a Docker engine: a
// multi-stage build of the three services (and httpcheck, which the Compose
// healthchecks run) into a non-root runtime image.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)); n < 2 {
		t.Errorf("want a multi-stage build, got %d stages", n)
	}
	if !regexp.MustCompile(`(?m)^FROM \$\{RUNTIME_IMAGE\}`).MatchString(df) ||
		!regexp.MustCompile(`ARG RUNTIME_IMAGE=gcr\.io/distroless/static[-a-z0-9]*:nonroot`).MatchString(df) {
		t.Error("the runtime stage must be distroless/static (nonroot)")
	}
	if !regexp.MustCompile(`(?m)^USER 65532(:65532)?$`).MatchString(df) {
		t.Error("the image must run as the non-root user 65532")
	}
	if !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("static binaries need CGO_ENABLED=0 on distroless/static")
	}
	for _, svc := range []string{"gwpipe", "fakeintake", "loadgen"} {
		if !strings.Contains(df, "for svc in gwpipe fakeintake loadgen") {
			t.Fatalf("the build loop over the services changed: update this test")
		}
		if _, err := os.Stat(filepath.Join("..", "services", svc, "main.go")); err != nil {
			t.Errorf("services/%s: %v", svc, err)
		}
	}
	if !strings.Contains(df, "./cmd/httpcheck") {
		t.Error("httpcheck (the Compose healthcheck) is not built")
	}
	if _, err := os.Stat("cmd/httpcheck/main.go"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(df, "COPY --from=build /out/ /usr/local/bin/") {
		t.Error("the binaries must land in /usr/local/bin (the Compose entrypoints and healthchecks use those paths)")
	}
	compose, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range regexp.MustCompile(`/usr/local/bin/([a-z]+)`).FindAllStringSubmatch(string(compose), -1) {
		if !strings.Contains(df, bin[1]) {
			t.Errorf("the Compose file runs /usr/local/bin/%s, which the image does not build", bin[1])
		}
	}
}
