package deployments

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	k8sDir    = "kubernetes"
	namespace = "gwpipe"
)

// manifests is a set of decoded Kubernetes objects.
type manifests struct {
	deployments     []appsv1.Deployment
	statefulSets    []appsv1.StatefulSet
	pdbs            []policyv1.PodDisruptionBudget
	hpas            []autoscalingv2.HorizontalPodAutoscaler
	services        []corev1.Service
	ingresses       []networkingv1.Ingress
	configMaps      map[string]corev1.ConfigMap
	secrets         map[string]corev1.Secret
	serviceAccounts map[string]corev1.ServiceAccount
	namespaces      []corev1.Namespace
	pvcs            []corev1.PersistentVolumeClaim
	scaledObjects   []scaledObject
	triggerAuths    map[string]triggerAuthentication
	kustomizations  []kusttypes.Kustomization
	all             []metav1.Object
	// ids are the objects decoded, as kind/name.
	ids map[string]bool
}

func newManifests() *manifests {
	return &manifests{
		configMaps:      map[string]corev1.ConfigMap{},
		secrets:         map[string]corev1.Secret{},
		serviceAccounts: map[string]corev1.ServiceAccount{},
		triggerAuths:    map[string]triggerAuthentication{},
		ids:             map[string]bool{},
	}
}

// strict decodes a YAML document into obj, refusing unknown and duplicate
// fields, as the API server's strict field validation does.
func strict(doc []byte, obj any) error {
	return sigsyaml.UnmarshalStrict(doc, obj)
}

// add decodes one document into its API type.
func (m *manifests) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	// A kustomize delete patch names an object and nothing else.
	var directive struct {
		Patch      string `json:"$patch"`
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if sigsyaml.Unmarshal(doc, &directive) == nil && directive.Patch != "" {
		if err := strict(doc, &directive); err != nil || directive.Patch != "delete" || directive.Kind == "" || directive.Metadata.Name == "" {
			return fmt.Errorf("a $patch document must be a delete naming apiVersion, kind and metadata.name only (%v)", err)
		}
		return nil
	}
	var err error
	switch tm.APIVersion + "/" + tm.Kind {
	case "apps/v1/Deployment":
		var o appsv1.Deployment
		if err = strict(doc, &o); err == nil {
			m.deployments = append(m.deployments, o)
			m.all = append(m.all, &o)
		}
	case "apps/v1/StatefulSet":
		var o appsv1.StatefulSet
		if err = strict(doc, &o); err == nil {
			m.statefulSets = append(m.statefulSets, o)
			m.all = append(m.all, &o)
		}
	case "policy/v1/PodDisruptionBudget":
		var o policyv1.PodDisruptionBudget
		if err = strict(doc, &o); err == nil {
			m.pdbs = append(m.pdbs, o)
			m.all = append(m.all, &o)
		}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		var o autoscalingv2.HorizontalPodAutoscaler
		if err = strict(doc, &o); err == nil {
			m.hpas = append(m.hpas, o)
			m.all = append(m.all, &o)
		}
	case "v1/Service":
		var o corev1.Service
		if err = strict(doc, &o); err == nil {
			m.services = append(m.services, o)
			m.all = append(m.all, &o)
		}
	case "networking.k8s.io/v1/Ingress":
		var o networkingv1.Ingress
		if err = strict(doc, &o); err == nil {
			m.ingresses = append(m.ingresses, o)
			m.all = append(m.all, &o)
		}
	case "v1/ConfigMap":
		var o corev1.ConfigMap
		if err = strict(doc, &o); err == nil {
			m.configMaps[o.Name] = o
			m.all = append(m.all, &o)
		}
	case "v1/Secret":
		var o corev1.Secret
		if err = strict(doc, &o); err == nil {
			m.secrets[o.Name] = o
			m.all = append(m.all, &o)
		}
	case "v1/ServiceAccount":
		var o corev1.ServiceAccount
		if err = strict(doc, &o); err == nil {
			m.serviceAccounts[o.Name] = o
			m.all = append(m.all, &o)
		}
	case "v1/Namespace":
		var o corev1.Namespace
		if err = strict(doc, &o); err == nil {
			m.namespaces = append(m.namespaces, o)
			m.all = append(m.all, &o)
		}
	case "v1/PersistentVolumeClaim":
		var o corev1.PersistentVolumeClaim
		if err = strict(doc, &o); err == nil {
			m.pvcs = append(m.pvcs, o)
			m.all = append(m.all, &o)
		}
	case "keda.sh/v1alpha1/ScaledObject":
		var o scaledObject
		if err = strict(doc, &o); err == nil {
			m.scaledObjects = append(m.scaledObjects, o)
			m.all = append(m.all, &o)
		}
	case "keda.sh/v1alpha1/TriggerAuthentication":
		var o triggerAuthentication
		if err = strict(doc, &o); err == nil {
			m.triggerAuths[o.Name] = o
			m.all = append(m.all, &o)
		}
	case "kustomize.config.k8s.io/v1beta1/Kustomization", "kustomize.config.k8s.io/v1alpha1/Component":
		var o kusttypes.Kustomization
		if err = strict(doc, &o); err == nil {
			m.kustomizations = append(m.kustomizations, o)
		}
	default:
		return fmt.Errorf("unexpected object %s %s: add it to the test's decoder", tm.APIVersion, tm.Kind)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	if n := len(m.all); n > 0 && tm.Kind != "Kustomization" && tm.Kind != "Component" {
		m.ids[tm.Kind+"/"+m.all[n-1].GetName()] = true
	}
	return nil
}

func (m *manifests) addStream(t *testing.T, where string, data []byte) {
	t.Helper()
	docs, err := splitYAML(data)
	if err != nil {
		t.Fatalf("%s: YAML: %v", where, err)
	}
	for i, doc := range docs {
		if err := m.add(doc); err != nil {
			t.Errorf("%s (document %d): %v", where, i+1, err)
		}
	}
}

// TestKubernetesManifestsStrict decodes every YAML file under kubernetes/
// (manifests, patches, kustomizations, the Secret template) strictly.
func TestKubernetesManifestsStrict(t *testing.T) {
	for _, path := range files(t, k8sDir, ".yaml", ".yml") {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := newManifests()
		m.addStream(t, path, data)
		for _, o := range m.all {
			for _, msg := range validation.IsDNS1123Subdomain(o.GetName()) {
				t.Errorf("%s: name %q: %s", path, o.GetName(), msg)
			}
		}
	}
}

// render builds a kustomization with the kustomize API (kubectl kustomize).
func render(t *testing.T, fs filesys.FileSystem, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(fs, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	m := newManifests()
	m.addStream(t, "kustomize build "+dir, out)
	return m
}

// memFS copies kubernetes/ into an in-memory file system under /k.
func memFS(t *testing.T) filesys.FileSystem {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	for _, path := range files(t, k8sDir, ".yaml") {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(k8sDir, path)
		if err := fs.WriteFile(filepath.Join("/k", rel), data); err != nil {
			t.Fatal(err)
		}
	}
	return fs
}

func TestKubernetesBase(t *testing.T) {
	m := render(t, filesys.MakeFsOnDisk(), filepath.Join(k8sDir, "base"))
	checkFleet(t, "base", m, false)
	if _, ok := m.secrets["gwpipe-secrets"]; ok {
		t.Error("base must not ship the Secret (secret.example.yaml is a template)")
	}
}

func TestKubernetesOverlayNATS(t *testing.T) {
	m := render(t, filesys.MakeFsOnDisk(), filepath.Join(k8sDir, "overlays", "nats"))
	checkFleet(t, "overlays/nats", m, true)
	checkTransport(t, m, "nats")
	checkNATSServer(t, m)
}

// The two-tier overlay: the front tier runs ingest alone, the processing
// tier every other stage in one Deployment (scaled by the decode
// ScaledObject on the raw stream); every stage still runs exactly once.
func TestKubernetesOverlayNATSTiers(t *testing.T) {
	m := render(t, filesys.MakeFsOnDisk(), filepath.Join(k8sDir, "overlays", "nats-tiers"))
	checkFleet(t, "overlays/nats-tiers", m, true)
	checkTransport(t, m, "nats")
	checkNATSServer(t, m)
	var names []string
	for _, d := range m.deployments {
		names = append(names, d.Name)
		want := map[string]string{"gwpipe-ingest": "ingest", "gwpipe-decode": "decode,parse,enrich,derive,deliver-logs,deliver-metrics"}[d.Name]
		c := d.Spec.Template.Spec.Containers[0]
		if i := slices.Index(c.Args, "--stages"); i < 0 || c.Args[i+1] != want {
			t.Errorf("%s args %v, want --stages %s", d.Name, c.Args, want)
		}
	}
	slices.Sort(names)
	if want := []string{"gwpipe-decode", "gwpipe-ingest"}; !slices.Equal(names, want) {
		t.Errorf("Deployments %v, want %v", names, want)
	}
	if len(m.pdbs) != 2 || len(m.scaledObjects) != 1 || m.scaledObjects[0].GetName() != "gwpipe-decode" {
		t.Errorf("%d PodDisruptionBudgets and %d ScaledObjects, want 2 and the decode tier's", len(m.pdbs), len(m.scaledObjects))
	}
}

func TestKubernetesOverlaySQS(t *testing.T) {
	m := render(t, filesys.MakeFsOnDisk(), filepath.Join(k8sDir, "overlays", "sqs"))
	checkFleet(t, "overlays/sqs", m, true)
	checkTransport(t, m, "sqs")
}

// TestKubernetesSharedDLQ adds the shared-dlq component to the NATS overlay.
func TestKubernetesSharedDLQ(t *testing.T) {
	fs := memFS(t)
	kust := "/k/overlays/nats/kustomization.yaml"
	data, err := fs.ReadFile(kust)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.WriteFile(kust, append(data, []byte("components:\n  - ../../components/shared-dlq\n")...)); err != nil {
		t.Fatal(err)
	}
	m := render(t, fs, "/k/overlays/nats")
	checkFleet(t, "overlays/nats + components/shared-dlq", m, true)
	if len(m.pvcs) != 1 {
		t.Fatalf("want the gwpipe-dlq claim, got %d claims", len(m.pvcs))
	}
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		for _, v := range spec.Volumes {
			if v.Name != "dlq" {
				continue
			}
			if v.EmptyDir != nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != m.pvcs[0].Name {
				t.Errorf("%s: dlq volume is not the shared claim: %+v", d.Name, v.VolumeSource)
			}
		}
		c := spec.Containers[0]
		for _, vm := range c.VolumeMounts {
			if vm.Name == "dlq" && vm.SubPathExpr != "$(POD_NAME)" {
				t.Errorf("%s: each pod needs its own directory on the shared volume (subPathExpr $(POD_NAME)), got %q", d.Name, vm.SubPathExpr)
			}
		}
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
		}) {
			t.Errorf("%s: POD_NAME is not set from metadata.name", d.Name)
		}
	}
}

// TestKubernetesS3State adds the s3-state component to the NATS overlay:
// every worker gets the dead-letter archive and the poller's state in the
// bucket of gwpipe-params, URLs gwpipe accepts (checkFleet loads and
// validates each worker's configuration).
func TestKubernetesS3State(t *testing.T) {
	fs := memFS(t)
	kust := "/k/overlays/nats/kustomization.yaml"
	data, err := fs.ReadFile(kust)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.WriteFile(kust, append(data, []byte("components:\n  - ../../components/s3-state\n")...)); err != nil {
		t.Fatal(err)
	}
	params := "/k/base/params.yaml"
	p, err := fs.ReadFile(params)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(p), "STATE_BUCKET: gwpipe-state-111111111111", "STATE_BUCKET: acme-gwpipe-state", 1)
	if changed == string(p) {
		t.Fatal("params.yaml has no STATE_BUCKET: update this test")
	}
	if err := fs.WriteFile(params, []byte(changed)); err != nil {
		t.Fatal(err)
	}
	m := render(t, fs, "/k/overlays/nats")
	checkFleet(t, "overlays/nats + components/s3-state", m, true)
	env := m.configMaps["gwpipe-env"].Data
	if got := env["GWPIPE_DLQ_URL"]; got != "s3://acme-gwpipe-state/dlq/" {
		t.Errorf("GWPIPE_DLQ_URL %q", got)
	}
	if got := env["GWPIPE_METRICS_POLLER_STATE_URL"]; got != "s3://acme-gwpipe-state/cwpoller/" {
		t.Errorf("GWPIPE_METRICS_POLLER_STATE_URL %q", got)
	}
	for _, d := range m.deployments {
		c := d.Spec.Template.Spec.Containers[0]
		if !slices.ContainsFunc(c.EnvFrom, func(e corev1.EnvFromSource) bool { return e.ConfigMapRef != nil && e.ConfigMapRef.Name == "gwpipe-env" }) {
			t.Errorf("%s does not read gwpipe-env", d.Name)
		}
	}
}

// TestKubernetesParams changes gwpipe-params and checks the replacements
// carry the values everywhere they are needed.
func TestKubernetesParams(t *testing.T) {
	fs := memFS(t)
	p := "/k/base/params.yaml"
	data, err := fs.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(
		`"111111111111"`, `"222233334444"`,
		"AWS_REGION: us-east-1", "AWS_REGION: eu-west-3",
		"PIPELINE_ROLE_NAME: gwpipe-pipeline", "PIPELINE_ROLE_NAME: logs-pipeline",
		"FIREHOSE_HOST: firehose.gwpipe.example.com", "FIREHOSE_HOST: fh.example.org",
	).Replace(string(data))
	if s == string(data) {
		t.Fatal("params.yaml changed shape: update this test")
	}
	if err := fs.WriteFile(p, []byte(s)); err != nil {
		t.Fatal(err)
	}
	m := render(t, fs, "/k/overlays/sqs")
	if got := m.serviceAccounts["gwpipe"].Annotations["eks.amazonaws.com/role-arn"]; got != "arn:aws:iam::222233334444:role/logs-pipeline" {
		t.Errorf("role-arn annotation %q", got)
	}
	if got := m.configMaps["gwpipe-env"].Data["AWS_REGION"]; got != "eu-west-3" {
		t.Errorf("gwpipe-env AWS_REGION %q", got)
	}
	if got := m.configMaps["gwpipe-env"].Data["GWPIPE_TRANSPORT_SQS_REGION"]; got != "eu-west-3" {
		t.Errorf("gwpipe-env GWPIPE_TRANSPORT_SQS_REGION %q", got)
	}
	for _, so := range m.scaledObjects {
		for _, tr := range so.Spec.Triggers {
			if tr.Type != "aws-sqs-queue" {
				continue
			}
			if !strings.HasPrefix(tr.Metadata["queueURL"], "https://sqs.eu-west-3.amazonaws.com/222233334444/") || tr.Metadata["awsRegion"] != "eu-west-3" {
				t.Errorf("%s: queue %s in %s", so.Name, tr.Metadata["queueURL"], tr.Metadata["awsRegion"])
			}
		}
	}
	ing := m.ingresses[0]
	if ing.Spec.Rules[0].Host != "fh.example.org" || ing.Spec.TLS[0].Hosts[0] != "fh.example.org" {
		t.Errorf("ingress host not replaced: %+v", ing.Spec)
	}
}

// secretTemplate is the Secret every Deployment reads, from its template.
func secretTemplate(t *testing.T) corev1.Secret {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(k8sDir, "base", "secret.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var s corev1.Secret
	if err := strict(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// podEnv resolves a container's environment as the kubelet would, with the
// Secret template's placeholder values.
func podEnv(t *testing.T, where string, m *manifests, secret corev1.Secret, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := m.configMaps[ef.ConfigMapRef.Name]
			if !ok {
				t.Errorf("%s: envFrom ConfigMap %s does not exist", where, ef.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = v
			}
		default:
			t.Errorf("%s: unexpected envFrom %+v", where, ef)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != secret.Name {
				t.Errorf("%s: %s reads Secret %s, not %s", where, e.Name, ref.Name, secret.Name)
			}
			v, ok := secret.StringData[ref.Key]
			if !ok {
				t.Errorf("%s: %s reads key %s missing from the Secret template", where, e.Name, ref.Key)
			}
			if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") {
				// "<datadog api key>" tells a person what to put there; the
				// pod gets a key, which gwpipe validates as such (no blanks).
				v = "placeholder-" + ref.Key
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "gwpipe-pod-0"
		case e.ValueFrom.ConfigMapKeyRef != nil:
			env[e.Name] = m.configMaps[e.ValueFrom.ConfigMapKeyRef.Name].Data[e.ValueFrom.ConfigMapKeyRef.Key]
		}
	}
	return env
}

// namedPort resolves a probe or service port against a container.
func namedPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// loopbackAddr reports whether a listen address is on loopback only.
func loopbackAddr(addr string) bool {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(h)
	return h == "localhost" || ip != nil && ip.IsLoopback()
}

func listenPort(t *testing.T, where, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, addr, err)
		return 0
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

// checkFleet checks every gwpipe Deployment of a rendered kustomization.
// withAutoscalers requires exactly one autoscaler per Deployment.
func checkFleet(t *testing.T, name string, m *manifests, withAutoscalers bool) {
	t.Helper()
	secret := secretTemplate(t)
	if len(m.namespaces) != 1 || m.namespaces[0].Name != namespace {
		t.Errorf("%s: want the %s Namespace", name, namespace)
	}
	for _, o := range m.all {
		if _, isNS := o.(*corev1.Namespace); !isNS && o.GetNamespace() != namespace {
			t.Errorf("%s: %s is in namespace %q, want %s", name, o.GetName(), o.GetNamespace(), namespace)
		}
	}
	file := m.configMaps["gwpipe-config"].Data["gwpipe.yaml"]
	if file == "" {
		t.Fatalf("%s: no gwpipe-config ConfigMap with gwpipe.yaml", name)
	}
	// The file alone must load: every key known to pkg/config.
	base := loadConfig(t, name+": gwpipe-config", file, map[string]string{"DD_API_KEY": "x", "GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS": "x"})
	if base.Pipeline.DrainTimeout <= 0 {
		t.Fatalf("%s: no drain timeout", name)
	}

	stagesSeen := map[string]bool{}
	for _, d := range m.deployments {
		where := name + ": Deployment " + d.Name
		stage := d.Labels["app.kubernetes.io/component"]
		if !slices.Contains(allStages, stage) {
			t.Errorf("%s: component label %q is not a stage", where, stage)
			continue
		}
		// A Deployment runs its component's stage, and may run the stages
		// after it in memory (a grouped tier: --stages ingest,decode,…).
		var stages []string
		if c := d.Spec.Template.Spec.Containers; len(c) > 0 {
			if i := slices.Index(c[0].Args, "--stages"); i >= 0 && i+1 < len(c[0].Args) {
				stages = strings.Split(c[0].Args[i+1], ",")
			}
		}
		for _, st := range stages {
			if !slices.Contains(allStages, st) {
				t.Errorf("%s: --stages names %q, not a stage", where, st)
			}
			if stagesSeen[st] {
				t.Errorf("%s: stage %s runs in two Deployments", where, st)
			}
			stagesSeen[st] = true
		}
		runs := func(st string) bool { return slices.Contains(stages, st) }

		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			t.Errorf("%s: selector: %v", where, err)
			continue
		}
		podLabels := labels.Set(d.Spec.Template.Labels)
		if !sel.Matches(podLabels) {
			t.Errorf("%s: selector does not match the pod template", where)
		}
		spec := d.Spec.Template.Spec
		if len(spec.Containers) != 1 {
			t.Errorf("%s: want one container, got %d", where, len(spec.Containers))
			continue
		}
		c := spec.Containers[0]
		if len(stages) == 0 || stages[0] != stage || c.Args[0] != "run" {
			t.Errorf("%s: args %v, want run … --stages %s[,…]", where, c.Args, stage)
		}
		if i := slices.Index(c.Args, "--config"); i < 0 || i+1 >= len(c.Args) {
			t.Errorf("%s: no --config", where)
		} else if !mountsConfig(spec, c, c.Args[i+1]) {
			t.Errorf("%s: --config %s is not the mounted gwpipe-config", where, c.Args[i+1])
		}
		if c.Image == "" || strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
			t.Errorf("%s: image %q must be pinned", where, c.Image)
		}
		if spec.ServiceAccountName == "" {
			t.Errorf("%s: no serviceAccountName", where)
		} else if _, ok := m.serviceAccounts[spec.ServiceAccountName]; !ok {
			t.Errorf("%s: ServiceAccount %s does not exist", where, spec.ServiceAccountName)
		}

		// The configuration this pod loads.
		env := podEnv(t, where, m, secret, c)
		checkEnvKeys(t, where, env)
		cfg := loadConfig(t, where, file, env)
		// The operator's listener (/status, pprof) stays on the pod's
		// loopback; probes and scrapes go to the health listener, which
		// serves nothing else.
		if !loopbackAddr(cfg.Admin.Listen) {
			t.Errorf("%s: admin.listen %q must be on loopback (127.0.0.1): it serves /status and pprof", where, cfg.Admin.Listen)
		}
		if cfg.Admin.Pprof {
			t.Errorf("%s: admin.pprof must stay off in the shipped manifests", where)
		}
		healthPort := listenPort(t, where+": admin.health_listen", cfg.Admin.HealthListen)
		if h, _, _ := net.SplitHostPort(cfg.Admin.HealthListen); h != "" && h != "0.0.0.0" {
			t.Errorf("%s: admin.health_listen %q is not reachable by the kubelet's probes", where, cfg.Admin.HealthListen)
		}
		// Prometheus (or the Datadog Agent's OpenMetrics check) scrapes
		// /metrics on the health listener: the pod says where.
		ann := d.Spec.Template.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(int(healthPort)) || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: pod annotations prometheus.io/scrape %q, port %q, path %q; want \"true\", the health listener's %d, /metrics",
				where, ann["prometheus.io/scrape"], ann["prometheus.io/port"], ann["prometheus.io/path"], healthPort)
		}
		adminPort := listenPort(t, where+": admin.listen", cfg.Admin.Listen)
		for _, cp := range c.Ports {
			if cp.ContainerPort == adminPort {
				t.Errorf("%s: container port %s (%d) is admin.listen's, which must not be exposed", where, cp.Name, cp.ContainerPort)
			}
		}
		if !runs("ingest") && cfg.Sources.Firehose.Enabled {
			t.Errorf("%s: only ingest serves the Firehose endpoint", where)
		}
		if runs("ingest") && (!cfg.Sources.Firehose.Enabled || len(cfg.Sources.Firehose.AccessKeys) == 0) {
			t.Errorf("%s: ingest needs the Firehose endpoint and its access keys", where)
		}
		if runs("enrich") && (env[envName("enrich.role_template")] == "" || env[envName("enrich.external_id")] == "") {
			t.Errorf("%s: enrich.role_template and enrich.external_id must be set", where)
		}

		// Probes on the health port.
		for _, p := range []struct {
			what  string
			probe *corev1.Probe
			path  string
		}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s probe", where, p.what)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s: %s probe path %s, want %s", where, p.what, p.probe.HTTPGet.Path, p.path)
			}
			if port, ok := namedPort(c, p.probe.HTTPGet.Port); !ok || port != healthPort {
				t.Errorf("%s: %s probe port %s is not the health port %d (admin.health_listen)", where, p.what, p.probe.HTTPGet.Port.String(), healthPort)
			}
		}
		// Services reach the Firehose endpoint and the health listener,
		// nothing else; so does the load balancer's health check.
		for _, s := range m.services {
			if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
				continue
			}
			for _, sp := range s.Spec.Ports {
				port, ok := namedPort(c, sp.TargetPort)
				if !ok || (port != healthPort && !(cfg.Sources.Firehose.Enabled && port == listenPort(t, where, cfg.Sources.Firehose.Listen))) {
					t.Errorf("%s: Service %s port %s targets %s, neither the Firehose endpoint nor the health listener", where, s.Name, sp.Name, sp.TargetPort.String())
				}
			}
		}
		for _, ing := range m.ingresses {
			if hp := ing.Annotations["alb.ingress.kubernetes.io/healthcheck-port"]; hp != "" && runs("ingest") && hp != strconv.Itoa(int(healthPort)) {
				t.Errorf("%s: the load balancer checks port %s, not the health listener's %d", where, hp, healthPort)
			}
		}
		if lp := c.LivenessProbe; lp != nil && lp.PeriodSeconds*lp.FailureThreshold < 30 {
			t.Errorf("%s: liveness probe gives up after %ds: too quick for a busy worker", where, lp.PeriodSeconds*lp.FailureThreshold)
		}

		// Resources.
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[r]
			lim, okLim := c.Resources.Limits[r]
			if !okReq || !okLim {
				t.Errorf("%s: %s request and limit must be set", where, r)
				continue
			}
			if req.Cmp(lim) > 0 {
				t.Errorf("%s: %s request %s exceeds limit %s", where, r, req.String(), lim.String())
			}
		}
		if gml := env["GOMEMLIMIT"]; gml != "" {
			if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && !goMemLimitBelow(gml, lim.Value()) {
				t.Errorf("%s: GOMEMLIMIT %s is not below the memory limit %s", where, gml, lim.String())
			}
		}

		// Hardening.
		if psc := spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: pod must run as non-root", where)
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: container must have a read-only root filesystem and no privilege escalation", where)
		}
		if !mountsDir(c, cfg.DLQ.Dir) {
			t.Errorf("%s: dlq.dir %s is not on a mounted volume (the root filesystem is read-only)", where, cfg.DLQ.Dir)
		}

		// Exactly one PodDisruptionBudget.
		pdbs := 0
		for _, pdb := range m.pdbs {
			s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err == nil && !s.Empty() && s.Matches(podLabels) {
				pdbs++
				if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
					t.Errorf("%s: PDB %s sets neither minAvailable nor maxUnavailable", where, pdb.Name)
				}
			}
		}
		if pdbs != 1 {
			t.Errorf("%s: %d PodDisruptionBudgets select its pods, want 1", where, pdbs)
		}

		// Exactly one autoscaler.
		var scalers []string
		for _, h := range m.hpas {
			if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == d.Name {
				scalers = append(scalers, "HPA "+h.Name)
			}
		}
		for _, so := range m.scaledObjects {
			if ref := so.Spec.ScaleTargetRef; ref != nil && (ref.Kind == "" || ref.Kind == "Deployment") && ref.Name == d.Name {
				scalers = append(scalers, "ScaledObject "+so.Name)
			}
		}
		if stage == "ingest" && !slices.ContainsFunc(m.hpas, func(h autoscalingv2.HorizontalPodAutoscaler) bool {
			return h.Spec.ScaleTargetRef.Name == d.Name && slices.ContainsFunc(h.Spec.Metrics, func(ms autoscalingv2.MetricSpec) bool {
				return ms.Type == autoscalingv2.ResourceMetricSourceType && ms.Resource != nil && ms.Resource.Name == corev1.ResourceCPU
			})
		}) {
			t.Errorf("%s: ingest needs a CPU HorizontalPodAutoscaler", where)
		}
		if len(scalers) > 1 {
			t.Errorf("%s: several autoscalers fight over it: %v", where, scalers)
		}
		if withAutoscalers && len(scalers) == 0 {
			t.Errorf("%s: no autoscaler", where)
		}

		if stage == "ingest" {
			checkIngestEndpoint(t, name, m, d, c, cfg.Sources.Firehose.Listen)
			if cfg.Sources.Firehose.AckTimeout >= 3*time.Minute {
				t.Errorf("%s: ack_timeout %s is not below Firehose's 3-minute response timeout", where, cfg.Sources.Firehose.AckTimeout)
			}
		}
	}
	for _, st := range allStages {
		if !stagesSeen[st] {
			t.Errorf("%s: no Deployment runs stage %s", name, st)
		}
	}
	for _, h := range m.hpas {
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("%s: HPA %s: replicas %v..%d", name, h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
	}
	checkScaledObjects(t, name, m)
}

func goMemLimitBelow(s string, limit int64) bool {
	units := map[string]int64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
	for u, mul := range units {
		if n, ok := strings.CutSuffix(s, u); ok {
			if v, err := strconv.ParseInt(n, 10, 64); err == nil {
				return v*mul < limit
			}
		}
	}
	return false
}

func mountsConfig(spec corev1.PodSpec, c corev1.Container, path string) bool {
	for _, vm := range c.VolumeMounts {
		if filepath.Dir(path) != vm.MountPath {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == "gwpipe-config" {
				return true
			}
		}
	}
	return false
}

func mountsDir(c corev1.Container, dir string) bool {
	for _, vm := range c.VolumeMounts {
		if !vm.ReadOnly && (dir == vm.MountPath || strings.HasPrefix(dir, vm.MountPath+"/")) {
			return true
		}
	}
	return false
}

// checkIngestEndpoint: Service -> ingest pods' Firehose port; Ingress with
// TLS for its host -> the Service.
func checkIngestEndpoint(t *testing.T, name string, m *manifests, d appsv1.Deployment, c corev1.Container, listen string) {
	t.Helper()
	want := listenPort(t, name+": sources.firehose.listen", listen)
	var svc *corev1.Service
	for i, s := range m.services {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			svc = &m.services[i]
		}
	}
	if svc == nil {
		t.Fatalf("%s: no Service selects the ingest pods", name)
	}
	var httpPort *corev1.ServicePort
	for i, p := range svc.Spec.Ports {
		if got, ok := namedPort(c, p.TargetPort); ok && got == want {
			httpPort = &svc.Spec.Ports[i]
		}
	}
	if httpPort == nil {
		t.Fatalf("%s: Service %s has no port to the Firehose endpoint (%d)", name, svc.Name, want)
	}
	if len(m.ingresses) != 1 {
		t.Fatalf("%s: want one Ingress, got %d", name, len(m.ingresses))
	}
	ing := m.ingresses[0]
	if len(ing.Spec.TLS) == 0 {
		t.Errorf("%s: Ingress %s has no TLS: Firehose delivers over HTTPS only", name, ing.Name)
	}
	for _, r := range ing.Spec.Rules {
		if r.Host == "" || !slices.ContainsFunc(ing.Spec.TLS, func(tls networkingv1.IngressTLS) bool { return slices.Contains(tls.Hosts, r.Host) }) {
			t.Errorf("%s: Ingress host %q is not covered by its TLS section", name, r.Host)
		}
		if r.HTTP == nil {
			t.Errorf("%s: Ingress rule without paths", name)
			continue
		}
		for _, p := range r.HTTP.Paths {
			b := p.Backend.Service
			if b == nil || b.Name != svc.Name || (b.Port.Name != httpPort.Name && b.Port.Number != httpPort.Port) {
				t.Errorf("%s: Ingress path %s does not reach %s:%s", name, p.Path, svc.Name, httpPort.Name)
			}
		}
	}
	if ann := ing.Annotations["alb.ingress.kubernetes.io/listen-ports"]; ann != "" && !strings.Contains(ann, `"HTTPS":443`) {
		t.Errorf("%s: the load balancer must listen for HTTPS on 443, got %s", name, ann)
	}
	if ann := ing.Annotations["alb.ingress.kubernetes.io/load-balancer-attributes"]; ann != "" {
		re := regexp.MustCompile(`idle_timeout\.timeout_seconds=(\d+)`)
		if mm := re.FindStringSubmatch(ann); mm == nil {
			t.Errorf("%s: set the ALB idle timeout above ack_timeout", name)
		} else if n, _ := strconv.Atoi(mm[1]); n <= 120 {
			t.Errorf("%s: ALB idle timeout %ds does not cover ack_timeout (120s)", name, n)
		}
	}
}

func checkScaledObjects(t *testing.T, name string, m *manifests) {
	t.Helper()
	deps := map[string]appsv1.Deployment{}
	for _, d := range m.deployments {
		deps[d.Name] = d
	}
	for _, so := range m.scaledObjects {
		where := name + ": ScaledObject " + so.Name
		s := so.Spec
		if s.ScaleTargetRef == nil {
			t.Errorf("%s: no scaleTargetRef", where)
			continue
		}
		d, ok := deps[s.ScaleTargetRef.Name]
		if !ok {
			t.Errorf("%s: target Deployment %s does not exist", where, s.ScaleTargetRef.Name)
			continue
		}
		stage := d.Labels["app.kubernetes.io/component"]
		topic := stageTopics[stage]
		if topic == "" {
			t.Errorf("%s: stage %s has no backlog to scale on", where, stage)
			continue
		}
		minR, maxR := int32(0), int32(100)
		if s.MinReplicaCount != nil {
			minR = *s.MinReplicaCount
		}
		if s.MaxReplicaCount != nil {
			maxR = *s.MaxReplicaCount
		}
		if minR < 1 || maxR < minR {
			t.Errorf("%s: replicas %d..%d (keep at least one worker per stage)", where, minR, maxR)
		}
		if len(s.Triggers) == 0 {
			t.Errorf("%s: no triggers", where)
		}
		names := map[string]bool{}
		backlog := 0
		for _, tr := range s.Triggers {
			if tr.Name != "" {
				if names[tr.Name] {
					t.Errorf("%s: trigger name %s twice", where, tr.Name)
				}
				names[tr.Name] = true
			}
			md, known := scalerMetadata[tr.Type]
			if !known {
				t.Errorf("%s: unexpected trigger type %s", where, tr.Type)
				continue
			}
			for k := range tr.Metadata {
				if !slices.Contains(md.allowed, k) {
					t.Errorf("%s: %s trigger has unknown metadata %q", where, tr.Type, k)
				}
			}
			for _, k := range md.required {
				if tr.Metadata[k] == "" {
					t.Errorf("%s: %s trigger lacks %s", where, tr.Type, k)
				}
			}
			switch tr.Type {
			case "cpu":
				if tr.MetricType != autoscalingv2.UtilizationMetricType && tr.MetricType != autoscalingv2.AverageValueMetricType {
					t.Errorf("%s: cpu trigger needs metricType Utilization or AverageValue", where)
				}
				if _, ok := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; !ok {
					t.Errorf("%s: cpu trigger on a container without a CPU request", where)
				}
			case "nats-jetstream":
				backlog++
				checkPositiveInt(t, where, tr.Metadata, "lagThreshold")
				if tr.Metadata["stream"] != topic || tr.Metadata["consumer"] != stage+"_"+topic {
					t.Errorf("%s: stream/consumer %s/%s, want %s/%s_%s", where, tr.Metadata["stream"], tr.Metadata["consumer"], topic, stage, topic)
				}
				checkServiceEndpoint(t, where, m, tr.Metadata["natsServerMonitoringEndpoint"])
			case "aws-sqs-queue":
				backlog++
				checkPositiveInt(t, where, tr.Metadata, "queueLength")
				u, err := url.Parse(tr.Metadata["queueURL"])
				want := "gwpipe-" + stage + "-" + topic
				if err != nil || u.Scheme != "https" || u.Host != "sqs."+tr.Metadata["awsRegion"]+".amazonaws.com" ||
					!regexp.MustCompile(`^/[0-9]{12}/`+regexp.QuoteMeta(want)+`$`).MatchString(u.Path) {
					t.Errorf("%s: queueURL %s, want https://sqs.%s.amazonaws.com/<account>/%s", where, tr.Metadata["queueURL"], tr.Metadata["awsRegion"], want)
				}
				ref := tr.AuthenticationRef
				if ref == nil {
					t.Errorf("%s: aws-sqs-queue without authenticationRef", where)
				} else if ta, ok := m.triggerAuths[ref.Name]; !ok {
					t.Errorf("%s: TriggerAuthentication %s does not exist", where, ref.Name)
				} else if ta.Spec.PodIdentity == nil || ta.Spec.PodIdentity.Provider != "aws" {
					t.Errorf("%s: TriggerAuthentication %s must use podIdentity provider aws", where, ref.Name)
				}
			}
		}
		if backlog != 1 {
			t.Errorf("%s: want one backlog trigger, got %d", where, backlog)
		}
		if s.Fallback != nil && backlog == 0 {
			t.Errorf("%s: fallback needs a trigger that is not cpu or memory", where)
		}
		if a := s.Advanced; a != nil && a.HorizontalPodAutoscalerConfig != nil && a.HorizontalPodAutoscalerConfig.Behavior != nil {
			if sd := a.HorizontalPodAutoscalerConfig.Behavior.ScaleDown; sd == nil || sd.StabilizationWindowSeconds == nil || *sd.StabilizationWindowSeconds < 60 {
				t.Errorf("%s: scale down slowly (stabilization window ≥ 60s)", where)
			}
		}
	}
	for _, ta := range m.triggerAuths {
		if pi := ta.Spec.PodIdentity; pi != nil && pi.IdentityOwner != nil && pi.RoleArn != nil {
			t.Errorf("%s: TriggerAuthentication %s: roleArn and identityOwner are mutually exclusive", name, ta.Name)
		}
	}
}

func checkPositiveInt(t *testing.T, where string, md map[string]string, key string) {
	t.Helper()
	if n, err := strconv.Atoi(md[key]); err != nil || n <= 0 {
		t.Errorf("%s: %s %q must be a positive integer", where, key, md[key])
	}
}

// checkServiceEndpoint resolves host:port (<service>.<namespace>.svc…) to
// a rendered Service port.
func checkServiceEndpoint(t *testing.T, where string, m *manifests, hostport string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: %q: %v", where, hostport, err)
		return
	}
	parts := strings.Split(host, ".")
	if len(parts) < 2 || (len(parts) > 2 && parts[2] != "svc") {
		t.Errorf("%s: %q is not a Service address", where, host)
		return
	}
	if parts[1] != namespace {
		t.Errorf("%s: %q is not in namespace %s", where, host, namespace)
	}
	for _, s := range m.services {
		if s.Name != parts[0] {
			continue
		}
		for _, p := range s.Spec.Ports {
			if strconv.Itoa(int(p.Port)) == port {
				return
			}
		}
	}
	t.Errorf("%s: no Service %s with port %s", where, parts[0], port)
}

// checkTransport: every worker's environment selects the overlay's transport.
func checkTransport(t *testing.T, m *manifests, kind string) {
	t.Helper()
	env := m.configMaps["gwpipe-env"].Data
	if env["GWPIPE_TRANSPORT_KIND"] != kind {
		t.Errorf("gwpipe-env GWPIPE_TRANSPORT_KIND %q, want %s", env["GWPIPE_TRANSPORT_KIND"], kind)
	}
	for _, d := range m.deployments {
		if !slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].EnvFrom, func(e corev1.EnvFromSource) bool {
			return e.ConfigMapRef != nil && e.ConfigMapRef.Name == "gwpipe-env"
		}) {
			t.Errorf("Deployment %s does not read gwpipe-env", d.Name)
		}
	}
	switch kind {
	case "nats":
		u, err := url.Parse(env["GWPIPE_TRANSPORT_NATS_URL"])
		if err != nil || u.Scheme != "nats" {
			t.Fatalf("GWPIPE_TRANSPORT_NATS_URL %q", env["GWPIPE_TRANSPORT_NATS_URL"])
		}
		checkServiceEndpoint(t, "GWPIPE_TRANSPORT_NATS_URL", m, u.Host)
	case "sqs":
		if env["GWPIPE_TRANSPORT_SQS_TOPIC_PREFIX"] != "gwpipe-" {
			t.Errorf("the ScaledObjects assume topic prefix gwpipe-, got %q", env["GWPIPE_TRANSPORT_SQS_TOPIC_PREFIX"])
		}
		if env["GWPIPE_TRANSPORT_SQS_REGION"] != env["AWS_REGION"] {
			t.Errorf("transport region %q differs from AWS_REGION %q", env["GWPIPE_TRANSPORT_SQS_REGION"], env["AWS_REGION"])
		}
		if len(m.triggerAuths) == 0 {
			t.Error("no TriggerAuthentication for the SQS scalers")
		}
	}
}

// checkNATSServer: the StatefulSet, its Services, probes and storage.
func checkNATSServer(t *testing.T, m *manifests) {
	t.Helper()
	if len(m.statefulSets) != 1 {
		t.Fatalf("want the nats StatefulSet, got %d StatefulSets", len(m.statefulSets))
	}
	ss := m.statefulSets[0]
	sel, err := metav1.LabelSelectorAsSelector(ss.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(ss.Spec.Template.Labels)) {
		t.Errorf("StatefulSet %s: selector does not match its template", ss.Name)
	}
	headless := false
	for _, s := range m.services {
		if s.Name == ss.Spec.ServiceName {
			headless = s.Spec.ClusterIP == corev1.ClusterIPNone
		}
	}
	if !headless {
		t.Errorf("StatefulSet %s: serviceName %s is not a headless Service", ss.Name, ss.Spec.ServiceName)
	}
	c := ss.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.ReadinessProbe.HTTPGet == nil ||
		!strings.HasPrefix(c.ReadinessProbe.HTTPGet.Path, "/healthz") {
		t.Errorf("nats: readiness and liveness probes on /healthz expected")
	}
	if len(ss.Spec.VolumeClaimTemplates) == 0 {
		t.Error("nats: JetStream needs a persistent volume (volumeClaimTemplates)")
	}
	conf := m.configMaps["nats-config"].Data["nats.conf"]
	for _, want := range []string{"jetstream", "http_port: 8222", "store_dir"} {
		if !strings.Contains(conf, want) {
			t.Errorf("nats.conf lacks %q", want)
		}
	}
}
