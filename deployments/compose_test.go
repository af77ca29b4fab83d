package deployments

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

const composeFile = "compose/docker-compose.yaml"

// loadCompose loads the Compose file the way `docker compose config` does:
// schema validation, interpolation (defaults only: no environment), merge
// keys, normalisation and consistency checks (e.g. depends_on names).
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithEnv([]string{}),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s is not a valid Compose file: %v", composeFile, err)
	}
	return p
}

func TestComposeRawStructure(t *testing.T) {
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]map[string]any `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	if len(doc.Services) == 0 {
		t.Fatal("no services")
	}
	for name, svc := range doc.Services {
		_, image := svc["image"]
		_, build := svc["build"]
		_, merge := svc["<<"]
		if !image && !build && !merge {
			t.Errorf("service %s has neither image nor build", name)
		}
	}
}

func TestComposeFleet(t *testing.T) {
	p := loadCompose(t)
	services := map[string]types.ServiceConfig{}
	for name, s := range p.Services {
		services[name] = s
	}

	for name, s := range services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s: neither image nor build", name)
		}
		for dep, d := range s.DependsOn {
			target, ok := services[dep]
			if !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
				continue
			}
			if d.Condition == types.ServiceConditionHealthy && (target.HealthCheck == nil || target.HealthCheck.Disable) {
				t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
		if hc := s.HealthCheck; hc != nil && !hc.Disable {
			checkHealthcheck(t, name, hc)
		}
	}
	checkNoDependencyCycle(t, services)

	// NATS with JetStream.
	nats, ok := services["nats"]
	if !ok {
		t.Fatal("no nats service")
	}
	if !strings.HasPrefix(nats.Image, "nats:2") {
		t.Errorf("nats image %q, want nats:2…", nats.Image)
	}
	if !slices.Contains(nats.Command, "-js") {
		t.Errorf("nats command %v does not enable JetStream (-js)", nats.Command)
	}

	// fakeintake: the Datadog intake every worker delivers to.
	fi, ok := services["fakeintake"]
	if !ok {
		t.Fatal("no fakeintake service")
	}
	fiListen := flagValue(fi.Command, "-listen")
	_, fiPort, err := net.SplitHostPort(fiListen)
	if err != nil {
		t.Fatalf("fakeintake -listen %q: %v", fiListen, err)
	}
	fiKeys := strings.Split(flagValue(fi.Command, "-api-keys"), ",")
	if !strings.HasSuffix(strings.Join(fi.Entrypoint, " "), "fakeintake") {
		t.Errorf("fakeintake entrypoint %v", fi.Entrypoint)
	}

	// One service per stage, running that stage only, on NATS.
	seen := map[string]string{}
	var ingestListen, ingestKey string
	for name, s := range services {
		stages := flagValue(s.Command, "--stages")
		if stages == "" {
			continue
		}
		if len(s.Command) == 0 || s.Command[0] != "run" {
			t.Errorf("service %s: command %v, want run --stages …", name, s.Command)
		}
		if strings.Contains(stages, ",") {
			t.Errorf("service %s runs several stages (%s): one service per stage", name, stages)
		}
		if !slices.Contains(allStages, stages) {
			t.Errorf("service %s: unknown stage %q", name, stages)
		}
		if other, dup := seen[stages]; dup {
			t.Errorf("stage %s runs in services %s and %s", stages, other, name)
		}
		seen[stages] = name

		env := map[string]string{}
		for k, v := range s.Environment {
			if v == nil {
				t.Errorf("service %s: %s has no value", name, k)
				continue
			}
			env[k] = *v
		}
		checkEnvKeys(t, "compose service "+name, env)
		c := loadConfig(t, "compose service "+name, "", env)
		if c.Transport.Kind != "nats" {
			t.Errorf("service %s: transport.kind %q, want nats", name, c.Transport.Kind)
		}
		if u, err := url.Parse(c.Transport.NATS.URL); err != nil || !hostIsService(u.Host, services, "nats") || u.Port() != "4222" {
			t.Errorf("service %s: transport.nats.url %q does not reach the nats service", name, c.Transport.NATS.URL)
		}
		if !slices.Contains(fiKeys, c.Datadog.APIKey) {
			t.Errorf("service %s: DD_API_KEY %q is not one of fakeintake's -api-keys %v", name, c.Datadog.APIKey, fiKeys)
		}
		for key, raw := range map[string]string{"datadog.logs_url": c.LogsURL(), "datadog.api_url": c.APIURL()} {
			u, err := url.Parse(raw)
			if err != nil || !hostIsService(u.Host, services, "fakeintake") || u.Port() != fiPort {
				t.Errorf("service %s: %s %q does not point at fakeintake:%s", name, key, raw, fiPort)
			}
		}
		if !strings.HasPrefix(c.LogsURL(), "http://") || !strings.HasSuffix(c.LogsURL(), "/api/v2/logs") {
			t.Errorf("service %s: logs URL %q, want http://fakeintake:%s/api/v2/logs", name, c.LogsURL(), fiPort)
		}
		// /status and pprof stay on the container's loopback; the network
		// (other containers, published ports) gets the health listener.
		if !loopbackAddr(c.Admin.Listen) {
			t.Errorf("service %s: admin.listen %q must be on loopback (127.0.0.1): it serves /status and pprof", name, c.Admin.Listen)
		}
		if c.Admin.Pprof {
			t.Errorf("service %s: admin.pprof must stay off", name)
		}
		host, healthPort, err := net.SplitHostPort(c.Admin.HealthListen)
		if err != nil || (host != "0.0.0.0" && host != "") {
			t.Errorf("service %s: admin.health_listen %q must listen on every interface in a container", name, c.Admin.HealthListen)
		}
		_, adminPort, _ := net.SplitHostPort(c.Admin.Listen)
		for _, p := range s.Ports {
			if p.Target == 0 || strconv.Itoa(int(p.Target)) == adminPort {
				t.Errorf("service %s: publishes admin.listen's port %d", name, p.Target)
			}
		}
		// Healthcheck on the health listener's /healthz.
		if s.HealthCheck == nil || s.HealthCheck.Disable {
			t.Errorf("service %s: no healthcheck", name)
		} else if got := strings.Join(s.HealthCheck.Test, " "); !strings.Contains(got, ":"+healthPort+"/healthz") {
			t.Errorf("service %s: healthcheck %q does not probe /healthz on the health port %s", name, got, healthPort)
		}
		// Drain before SIGKILL (the rule of the Kubernetes grace periods;
		// no preStop here).
		if s.StopGracePeriod == nil {
			t.Errorf("service %s: no stop_grace_period: Docker kills after 10s, before the drain", name)
		} else if msg := graceProblem(time.Duration(*s.StopGracePeriod), 0, c.Pipeline.DrainTimeout); msg != "" {
			t.Errorf("service %s: stop_grace_period: %s", name, msg)
		}
		for _, dep := range []string{"nats", "fakeintake"} {
			if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("service %s must wait for %s to be healthy", name, dep)
			}
		}
		replicas := 1
		if s.Deploy != nil && s.Deploy.Replicas != nil {
			replicas = *s.Deploy.Replicas
		}
		switch stages {
		case "decode", "parse", "deliver-logs":
			if replicas != 2 {
				t.Errorf("CPU-heavy stage %s: %d replicas, want 2", stages, replicas)
			}
		case "ingest":
			if replicas != 1 {
				t.Errorf("ingest publishes a host port: 1 replica, got %d", replicas)
			}
			if !c.Sources.Firehose.Enabled {
				t.Error("ingest: sources.firehose.enabled is false")
			}
			ingestListen, ingestKey = c.Sources.Firehose.Listen, strings.Join(c.Sources.Firehose.AccessKeys, ",")
		}
		if stages != "ingest" && c.Sources.Firehose.Enabled {
			t.Errorf("service %s: only ingest serves the Firehose endpoint", name)
		}
		if replicas > 1 {
			for _, p := range s.Ports {
				if p.Published != "" {
					t.Errorf("service %s: %d replicas cannot publish host port %s", name, replicas, p.Published)
				}
			}
		}
	}
	for _, st := range allStages {
		if _, ok := seen[st]; !ok {
			t.Errorf("no service runs stage %s", st)
		}
	}

	// loadgen feeds ingest with its access key.
	lg, ok := services["loadgen"]
	if !ok {
		t.Fatal("no loadgen service")
	}
	u, err := url.Parse(flagValue(lg.Command, "-url"))
	if err != nil {
		t.Fatalf("loadgen -url: %v", err)
	}
	_, ingestPort, _ := net.SplitHostPort(ingestListen)
	if u.Hostname() != seen["ingest"] || u.Port() != ingestPort {
		t.Errorf("loadgen -url %s does not reach the ingest service %s:%s", u, seen["ingest"], ingestPort)
	}
	if got := flagValue(lg.Command, "-access-key"); got == "" || !slices.Contains(strings.Split(ingestKey, ","), got) {
		t.Errorf("loadgen -access-key %q is not accepted by ingest (%q)", got, ingestKey)
	}
	if rate := flagValue(lg.Command, "-rate"); rate != "" {
		if _, err := strconv.ParseFloat(rate, 64); err != nil {
			t.Errorf("loadgen -rate %q: %v", rate, err)
		}
	}
	if d, ok := lg.DependsOn[seen["ingest"]]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Error("loadgen must wait for ingest to be healthy")
	}
}

func checkHealthcheck(t *testing.T, name string, hc *types.HealthCheckConfig) {
	t.Helper()
	if len(hc.Test) < 2 {
		t.Errorf("service %s: healthcheck test %v is too short", name, hc.Test)
		return
	}
	switch hc.Test[0] {
	case "CMD":
		if !strings.HasPrefix(hc.Test[1], "/") && hc.Test[1] != "wget" && hc.Test[1] != "curl" {
			t.Errorf("service %s: healthcheck command %q: use an absolute path (distroless images have no shell or PATH tools)", name, hc.Test[1])
		}
		last := hc.Test[len(hc.Test)-1]
		if u, err := url.Parse(last); err != nil || u.Scheme != "http" || u.Path != "/healthz" {
			t.Errorf("service %s: healthcheck does not GET an http …/healthz URL: %v", name, hc.Test)
		}
	case "CMD-SHELL":
	default:
		t.Errorf("service %s: healthcheck test must start with CMD or CMD-SHELL: %v", name, hc.Test)
	}
	for what, d := range map[string]*types.Duration{"interval": hc.Interval, "timeout": hc.Timeout} {
		if d == nil || *d <= 0 {
			t.Errorf("service %s: healthcheck %s not set", name, what)
		}
	}
	if hc.Interval != nil && hc.Timeout != nil && *hc.Timeout > *hc.Interval {
		t.Errorf("service %s: healthcheck timeout exceeds its interval", name)
	}
	if hc.Retries == nil || *hc.Retries == 0 {
		t.Errorf("service %s: healthcheck retries not set", name)
	}
}

func checkNoDependencyCycle(t *testing.T, services map[string]types.ServiceConfig) {
	t.Helper()
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var visit func(string, []string)
	visit = func(n string, path []string) {
		switch state[n] {
		case 1:
			t.Errorf("depends_on cycle: %s", strings.Join(append(path, n), " -> "))
			return
		case 2:
			return
		}
		state[n] = 1
		for dep := range services[n].DependsOn {
			visit(dep, append(path, n))
		}
		state[n] = 2
	}
	for _, n := range sortedKeys(services) {
		visit(n, nil)
	}
}

// flagValue returns the argument after flag in a command line.
func flagValue(cmd []string, flag string) string {
	for i, a := range cmd {
		if a == flag && i+1 < len(cmd) {
			return cmd[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func hostIsService(hostport string, services map[string]types.ServiceConfig, want string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	_, ok := services[host]
	return ok && host == want
}
