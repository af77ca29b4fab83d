package deployments

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/gwpipe/gwpipe/pkg/config"
)

// kustomization is a directory of kubernetes/ holding a kustomization.yaml.
type kustomization struct {
	dir       string
	component bool // a Component renders only inside a Kustomization
	k         kusttypes.Kustomization
}

// kustomizations finds every kustomization under kubernetes/, so that a new
// overlay is rendered and checked without being listed anywhere.
func kustomizations(t *testing.T) []kustomization {
	t.Helper()
	var out []kustomization
	for _, path := range files(t, k8sDir, "kustomization.yaml") {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var k kusttypes.Kustomization
		if err := strict(data, &k); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, kustomization{dir: filepath.Dir(path), component: k.Kind == kusttypes.ComponentKind, k: k})
	}
	return out
}

// deletion is a `$patch: delete` patch: the object it removes.
type deletion struct{ kind, name string }

// patchDocs returns the documents of each patch of a kustomization, by
// where it comes from (its file, or "inline patch N").
func patchDocs(t *testing.T, kz kustomization) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	for i, p := range kz.k.Patches {
		where, data := fmt.Sprintf("%s: inline patch %d", kz.dir, i+1), []byte(p.Patch)
		if p.Path != "" {
			where = filepath.Join(kz.dir, p.Path)
			var err error
			if data, err = os.ReadFile(where); err != nil {
				t.Fatal(err)
			}
		}
		docs, err := splitYAML(data)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		out[where] = docs
	}
	return out
}

// Every kustomization renders with the kustomize API, every patch holds
// one document, and what a delete patch removes is gone from the output.
//
// kustomize up to v5.5 (the one kubectl 1.32 embeds) panics on a patch
// file holding several `$patch: delete` documents
// (kubernetes-sigs/kustomize#5471), while the newer API these tests build
// with renders it: the one-document rule is what keeps `kubectl kustomize`
// working. When kubectl is installed, its kustomize renders every
// kustomization too, and yields the same objects.
func TestKubernetesEveryKustomizationRenders(t *testing.T) {
	kubectl, _ := exec.LookPath("kubectl")
	overlays := 0
	for _, kz := range kustomizations(t) {
		t.Run(kz.dir, func(t *testing.T) {
			//lint:ignore SA1019 the deprecated fields are read to refuse them
			if len(kz.k.PatchesStrategicMerge) > 0 || len(kz.k.PatchesJson6902) > 0 {
				t.Errorf("%s: patchesStrategicMerge and patchesJson6902 are deprecated: use patches", kz.dir)
			}
			var deleted []deletion
			for where, docs := range patchDocs(t, kz) {
				if len(docs) != 1 {
					t.Errorf("%s: %d documents in one patch: kubectl's kustomize panics on several $patch: delete in one file; make each its own patch", where, len(docs))
				}
				for _, doc := range docs {
					var d struct {
						Patch    string `json:"$patch"`
						Kind     string `json:"kind"`
						Metadata struct {
							Name string `json:"name"`
						} `json:"metadata"`
					}
					if err := sigsyaml.Unmarshal(doc, &d); err != nil {
						t.Errorf("%s: %v", where, err)
					}
					if d.Patch == "delete" {
						deleted = append(deleted, deletion{d.Kind, d.Metadata.Name})
					}
				}
			}
			if kz.component {
				return // rendered by the overlays that include it (TestKubernetesSharedDLQ)
			}
			overlays++
			m := render(t, filesys.MakeFsOnDisk(), kz.dir)
			if len(m.deployments) == 0 {
				t.Fatalf("%s renders no Deployment", kz.dir)
			}
			for _, d := range deleted {
				if m.ids[d.kind+"/"+d.name] {
					t.Errorf("%s: %s %s is deleted by a patch but rendered", kz.dir, d.kind, d.name)
				}
			}
			if kubectl == "" {
				return
			}
			out, err := exec.Command(kubectl, "kustomize", kz.dir).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%.2000s", kz.dir, err, out)
			}
			km := newManifests()
			km.addStream(t, "kubectl kustomize "+kz.dir, out)
			if a, b := sortedKeys(m.ids), sortedKeys(km.ids); !slices.Equal(a, b) {
				t.Errorf("%s: kubectl kustomize renders %v, the kustomize API %v", kz.dir, b, a)
			}
		})
	}
	if overlays < 4 {
		t.Errorf("found %d kustomizations to render, want base and the overlays", overlays)
	}
}

// drainMargin is what terminationGracePeriodSeconds keeps beyond preStop
// and pipeline.drain_timeout: the process exits within about a second of
// the drain timeout, and the kubelet's SIGKILL must never cut a drain
// short.
const drainMargin = 5 * time.Second

// graceProblem says what is wrong with a grace period that does not cover
// a pre-stop delay, the drain timeout (the pod's configuration and the
// built-in default, whichever is longer, so that removing the key from the
// ConfigMap cannot break it) and the margin; "" when it does.
func graceProblem(grace, preStop, configured time.Duration) string {
	def := config.DefaultConfig().Pipeline.DrainTimeout
	drain := max(def, configured)
	if need := preStop + drain + drainMargin; grace < need {
		return fmt.Sprintf("grace period %s is shorter than preStop %s + pipeline.drain_timeout %s (configured %s, default %s) + margin %s = %s",
			grace, preStop, drain, configured, def, drainMargin, need)
	}
	return ""
}

// isGwpipe reports whether a container runs gwpipe (after kustomize's
// image transformer).
func isGwpipe(c corev1.Container) bool {
	repo, _, _ := strings.Cut(c.Image, ":")
	return repo == "gwpipe" || strings.HasSuffix(repo, "/gwpipe")
}

// Every rendered pod that runs gwpipe has a grace period that covers its
// preStop sleep, the drain timeout and a margin.
func TestKubernetesGracePeriodCoversDrain(t *testing.T) {
	secret := secretTemplate(t)
	checked := 0
	for _, kz := range kustomizations(t) {
		if kz.component {
			continue
		}
		m := render(t, filesys.MakeFsOnDisk(), kz.dir)
		file := m.configMaps["gwpipe-config"].Data["gwpipe.yaml"]
		type pod struct {
			where string
			spec  corev1.PodSpec
		}
		var pods []pod
		for _, d := range m.deployments {
			pods = append(pods, pod{kz.dir + ": Deployment " + d.Name, d.Spec.Template.Spec})
		}
		for _, s := range m.statefulSets {
			pods = append(pods, pod{kz.dir + ": StatefulSet " + s.Name, s.Spec.Template.Spec})
		}
		for _, p := range pods {
			for _, c := range p.spec.Containers {
				if !isGwpipe(c) {
					continue
				}
				checked++
				where := p.where + " container " + c.Name
				cfg := loadConfig(t, where, file, podEnv(t, where, m, secret, c))
				var preStop time.Duration
				if lc := c.Lifecycle; lc != nil && lc.PreStop != nil {
					if lc.PreStop.Sleep == nil {
						t.Errorf("%s: preStop must be a sleep action, whose length this test can add up", where)
						continue
					}
					preStop = time.Duration(lc.PreStop.Sleep.Seconds) * time.Second
				}
				grace := time.Duration(corev1.DefaultTerminationGracePeriodSeconds) * time.Second
				if g := p.spec.TerminationGracePeriodSeconds; g != nil {
					grace = time.Duration(*g) * time.Second
				}
				if msg := graceProblem(grace, preStop, cfg.Pipeline.DrainTimeout); msg != "" {
					t.Errorf("%s: %s", where, msg)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no rendered pod runs gwpipe")
	}
}

// The rule itself: these would let the kubelet kill a drain.
func TestCheckGraceRefusesShortPeriods(t *testing.T) {
	def := config.DefaultConfig().Pipeline.DrainTimeout
	for _, tc := range []struct {
		name                       string
		grace, preStop, configured time.Duration
		ok                         bool
	}{
		{"covers everything", def + 10*time.Second + drainMargin, 10 * time.Second, def, true},
		{"no margin", def + 10*time.Second, 10 * time.Second, def, false},
		{"forgets preStop", def + drainMargin, 10 * time.Second, def, false},
		{"configured longer than the grace", def + drainMargin, 0, def + time.Minute, false},
		{"configured shorter, default still counts", def, 0, def / 2, false},
	} {
		if got := graceProblem(tc.grace, tc.preStop, tc.configured) == ""; got != tc.ok {
			t.Errorf("%s: accepted %v, want %v", tc.name, got, tc.ok)
		}
	}
}
