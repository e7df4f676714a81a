// Package deploy holds ferry's deployment files. Its tests decode every
// Kubernetes manifest strictly into the official API types, so a misspelled
// field fails here rather than being dropped by a lenient client, and check
// the few properties of the manifests that ferry's behaviour depends on.
package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
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
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifestDir holds the Kubernetes manifests, relative to this package.
const manifestDir = "kubernetes"

// defaultGrace is ferry's FERRY_GRACE when the variable is not set.
const defaultGrace = 30 * time.Second

// minSecretLen is the shortest FERRY_SECRET ferry accepts.
const minSecretLen = 32

// manifests is every object of every manifest file, by kind.
type manifests struct {
	Namespaces   []*corev1.Namespace
	Secrets      []*corev1.Secret
	Services     []*corev1.Service
	Deployments  []*appsv1.Deployment
	Ingresses    []*networkingv1.Ingress
	HPAs         []*autoscalingv2.HorizontalPodAutoscaler
	PDBs         []*policyv1.PodDisruptionBudget
	objectsCount int
}

// splitDocuments splits a multi-document YAML file as kubectl does.
// Documents holding nothing but blank lines and comments are dropped.
func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if s := string(bytes.TrimSpace(j)); s != "null" && s != "" {
			docs = append(docs, doc)
		}
	}
}

// decode reads a document's apiVersion and kind, then decodes it strictly into
// the matching API type: unknown or duplicate fields are errors.
func decode(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		obj = &corev1.Namespace{}
	case "v1 Secret":
		obj = &corev1.Secret{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "networking.k8s.io/v1 Ingress":
		obj = &networkingv1.Ingress{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		obj = &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1 PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	default:
		return nil, fmt.Errorf("unknown kind %q of apiVersion %q", tm.Kind, tm.APIVersion)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	return obj, nil
}

func (m *manifests) add(obj any) {
	m.objectsCount++
	switch o := obj.(type) {
	case *corev1.Namespace:
		m.Namespaces = append(m.Namespaces, o)
	case *corev1.Secret:
		m.Secrets = append(m.Secrets, o)
	case *corev1.Service:
		m.Services = append(m.Services, o)
	case *appsv1.Deployment:
		m.Deployments = append(m.Deployments, o)
	case *networkingv1.Ingress:
		m.Ingresses = append(m.Ingresses, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		m.HPAs = append(m.HPAs, o)
	case *policyv1.PodDisruptionBudget:
		m.PDBs = append(m.PDBs, o)
	default:
		panic(fmt.Sprintf("add: unexpected %T", obj))
	}
}

// load decodes every manifest under manifestDir; any error fails the test.
func load(t *testing.T) *manifests {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		f, err := filepath.Glob(filepath.Join(manifestDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", manifestDir)
	}
	slices.Sort(files)
	m := &manifests{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := splitDocuments(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i, doc := range docs {
			obj, err := decode(doc)
			if err != nil {
				t.Fatalf("%s, document %d: %v", file, i+1, err)
			}
			m.add(obj)
		}
	}
	return m
}

// role is the ferry subcommand a container runs: "edge", "origin", ...
func role(c *corev1.Container) string {
	if len(c.Args) == 0 {
		return ""
	}
	return c.Args[0]
}

func env(c *corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// containerPort resolves a probe's or a Service's named or numbered port
// against the containers' ports; 0 if nothing matches.
func containerPort(containers []corev1.Container, p intstr.IntOrString) int32 {
	for _, c := range containers {
		for _, cp := range c.Ports {
			if p.Type == intstr.String && cp.Name == p.StrVal ||
				p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

func deploymentsRunning(m *manifests, r string) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, d := range m.Deployments {
		for i := range d.Spec.Template.Spec.Containers {
			if role(&d.Spec.Template.Spec.Containers[i]) == r {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

// selects reports whether sel is non-empty and matches the pod template of a
// Deployment in the same namespace, and returns that Deployment.
func selects(m *manifests, namespace string, sel labels.Selector) *appsv1.Deployment {
	if sel.Empty() {
		return nil
	}
	for _, d := range m.Deployments {
		if d.Namespace == namespace && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			return d
		}
	}
	return nil
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := load(t)
	if len(m.Namespaces) == 0 {
		t.Fatal("no Namespace in the manifests")
	}
	namespaces := map[string]bool{}
	for _, ns := range m.Namespaces {
		namespaces[ns.Name] = true
	}
	if !namespaces["ferry"] {
		t.Errorf("no Namespace ferry, only %v", namespaces)
	}
	// Every namespaced object sits in a namespace the manifests create, so
	// nothing lands in whatever namespace kubectl's context happens to use.
	var metas []metav1.ObjectMeta
	for _, o := range m.Secrets {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range m.Services {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range m.Deployments {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range m.Ingresses {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range m.HPAs {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range m.PDBs {
		metas = append(metas, o.ObjectMeta)
	}
	for _, meta := range metas {
		if meta.Name == "" {
			t.Errorf("an object has no name")
		}
		if !namespaces[meta.Namespace] {
			t.Errorf("%s is in namespace %q, which the manifests do not create", meta.Name, meta.Namespace)
		}
	}
	for _, r := range []string{"edge", "origin"} {
		if len(deploymentsRunning(m, r)) == 0 {
			t.Errorf("no Deployment runs ferry %s", r)
		}
	}
	t.Logf("%d objects decoded strictly", m.objectsCount)
}

// TestStrictDecodingRejectsUnknownFields proves the decoding above is strict:
// a misspelled field, at the top of a spec or deep in a pod template, and an
// unknown kind are refused rather than silently dropped.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	const good = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  replicas: 2
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers:
        - name: x
          image: x
          ports:
            - containerPort: 80
`
	if _, err := decode([]byte(good)); err != nil {
		t.Fatalf("the well-formed Deployment is refused: %v", err)
	}
	for name, doc := range map[string]string{
		"misspelled spec field":   strings.Replace(good, "replicas:", "replicass:", 1),
		"misspelled nested field": strings.Replace(good, "containerPort:", "containerPortt:", 1),
		"duplicate field":         strings.Replace(good, "replicas: 2", "replicas: 2\n  replicas: 3", 1),
		"unknown kind":            strings.Replace(good, "kind: Deployment", "kind: Deploymnet", 1),
		"unknown apiVersion":      strings.Replace(good, "apiVersion: apps/v1", "apiVersion: apps/v1beta1", 1),
	} {
		if doc == good {
			t.Fatalf("%s: the replacement did not change the document", name)
		}
		if _, err := decode([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
}

func TestSplitDocuments(t *testing.T) {
	// A comment may follow a separator, as YAML and kubectl allow.
	in := "# only a comment\n---\na: 1\n--- # a separator with a comment\nb: 2\n---\n\n---\r\nc: '---'\n"
	docs, err := splitDocuments([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 3 {
		t.Fatalf("got %d documents, want 3: %q", len(docs), docs)
	}
}

// TestProbes: the kubelet probes ferry's admin endpoint, which must listen on
// the pod IP (not ferry's default 127.0.0.1) at the port the probes use.
func TestProbes(t *testing.T) {
	m := load(t)
	for _, d := range m.Deployments {
		spec := d.Spec.Template.Spec
		for i := range spec.Containers {
			c := &spec.Containers[i]
			admin, ok := env(c, "FERRY_ADMIN")
			if !ok {
				t.Errorf("%s/%s: FERRY_ADMIN is not set; its default 127.0.0.1:8199 cannot be probed", d.Name, c.Name)
				continue
			}
			host, port, err := net.SplitHostPort(admin.Value)
			if err != nil {
				t.Errorf("%s/%s: FERRY_ADMIN %q: %v", d.Name, c.Name, admin.Value, err)
				continue
			}
			if host != "" && host != "0.0.0.0" && host != "::" {
				t.Errorf("%s/%s: FERRY_ADMIN %q listens on %s only; the kubelet probes the pod IP", d.Name, c.Name, admin.Value, host)
			}
			// ferry refuses an admin address beyond loopback without it.
			if public, _ := env(c, "FERRY_ADMIN_PUBLIC"); public.Value != "true" {
				t.Errorf("%s/%s: FERRY_ADMIN %q is beyond loopback, and FERRY_ADMIN_PUBLIC is not \"true\": ferry would refuse to start", d.Name, c.Name, admin.Value)
			}
			adminPort, err := strconv.Atoi(port)
			if err != nil {
				t.Errorf("%s/%s: FERRY_ADMIN %q: port: %v", d.Name, c.Name, admin.Value, err)
				continue
			}
			for _, p := range []struct {
				what  string
				probe *corev1.Probe
				path  string
			}{
				{"livenessProbe", c.LivenessProbe, "/healthz"},
				{"readinessProbe", c.ReadinessProbe, "/readyz"},
			} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s/%s: no HTTP %s", d.Name, c.Name, p.what)
					continue
				}
				if p.probe.HTTPGet.Path != p.path {
					t.Errorf("%s/%s: %s path is %q, want %q", d.Name, c.Name, p.what, p.probe.HTTPGet.Path, p.path)
				}
				if got := containerPort([]corev1.Container{*c}, p.probe.HTTPGet.Port); got != int32(adminPort) {
					t.Errorf("%s/%s: %s port %s is container port %d, not the admin port %d", d.Name, c.Name, p.what, p.probe.HTTPGet.Port.String(), got, adminPort)
				}
			}
		}
	}
}

// TestTerminationGrace: ferry drains for FERRY_GRACE after SIGTERM; the
// kubelet's SIGKILL must come later, or the drain is cut short.
func TestTerminationGrace(t *testing.T) {
	m := load(t)
	for _, d := range m.Deployments {
		spec := d.Spec.Template.Spec
		kill := 30 * time.Second // Kubernetes' default
		if spec.TerminationGracePeriodSeconds != nil {
			kill = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		}
		for i := range spec.Containers {
			c := &spec.Containers[i]
			grace := defaultGrace
			if e, ok := env(c, "FERRY_GRACE"); ok {
				var err error
				if grace, err = time.ParseDuration(e.Value); err != nil {
					t.Errorf("%s/%s: FERRY_GRACE %q: %v", d.Name, c.Name, e.Value, err)
					continue
				}
			}
			if kill <= grace {
				t.Errorf("%s/%s: terminationGracePeriodSeconds (%v) is not longer than FERRY_GRACE (%v)", d.Name, c.Name, kill, grace)
			}
		}
	}
}

// TestEdgeService: phones reach the edges on WhatsApp's proxy ports through a
// load balancer that keeps their addresses.
func TestEdgeService(t *testing.T) {
	m := load(t)
	edges := deploymentsRunning(m, "edge")
	found := false
	for _, s := range m.Services {
		d := selects(m, s.Namespace, labels.SelectorFromSet(s.Spec.Selector))
		if d == nil || !slices.Contains(edges, d) {
			continue
		}
		found = true
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			t.Errorf("edge Service %s is of type %q, want LoadBalancer", s.Name, s.Spec.Type)
		}
		if s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			t.Errorf("edge Service %s: externalTrafficPolicy %q hides client addresses; want Local", s.Name, s.Spec.ExternalTrafficPolicy)
		}
		ports := map[int32]bool{}
		for _, p := range s.Spec.Ports {
			ports[p.Port] = true
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				t.Errorf("edge Service %s: port %d is %s, want TCP", s.Name, p.Port, p.Protocol)
			}
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			if containerPort(d.Spec.Template.Spec.Containers, target) == 0 {
				t.Errorf("edge Service %s: port %d's target %s is no container port of %s", s.Name, p.Port, target.String(), d.Name)
			}
		}
		for _, want := range []int32{443, 80, 5222, 587} {
			if !ports[want] {
				t.Errorf("edge Service %s does not expose port %d", s.Name, want)
			}
		}
	}
	if !found {
		t.Error("no Service selects the edge's pods")
	}
}

// TestSecret: FERRY_SECRET comes from a Secret of the manifests, never from a
// literal in a pod spec, and the placeholder is long enough for ferry to start.
func TestSecret(t *testing.T) {
	m := load(t)
	uses := 0
	for _, d := range m.Deployments {
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			e, ok := env(c, "FERRY_SECRET")
			if !ok {
				t.Errorf("%s/%s: FERRY_SECRET is not set", d.Name, c.Name)
				continue
			}
			uses++
			if e.Value != "" {
				t.Errorf("%s/%s: FERRY_SECRET is a literal value; use valueFrom.secretKeyRef", d.Name, c.Name)
			}
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s/%s: FERRY_SECRET is not from a secretKeyRef", d.Name, c.Name)
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			var value string
			found := false
			for _, s := range m.Secrets {
				if s.Namespace != d.Namespace || s.Name != ref.Name {
					continue
				}
				if v, ok := s.StringData[ref.Key]; ok {
					value, found = v, true
				} else if v, ok := s.Data[ref.Key]; ok {
					value, found = string(v), true
				}
			}
			if !found {
				t.Errorf("%s/%s: FERRY_SECRET refers to key %q of Secret %s/%s, which the manifests do not hold", d.Name, c.Name, ref.Key, d.Namespace, ref.Name)
			} else if len(value) < minSecretLen {
				t.Errorf("%s/%s: Secret %s key %q is %d characters, ferry needs %d", d.Name, c.Name, ref.Name, ref.Key, len(value), minSecretLen)
			}
		}
	}
	if uses == 0 {
		t.Error("no container uses FERRY_SECRET")
	}
}

// TestNonRoot: every container runs as a non-root user with nothing more than
// it needs.
func TestNonRoot(t *testing.T) {
	m := load(t)
	for _, d := range m.Deployments {
		pod := d.Spec.Template.Spec.SecurityContext
		if pod == nil {
			pod = &corev1.PodSecurityContext{}
		}
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			nonRoot, uid := pod.RunAsNonRoot, pod.RunAsUser
			if sc.RunAsNonRoot != nil {
				nonRoot = sc.RunAsNonRoot
			}
			if sc.RunAsUser != nil {
				uid = sc.RunAsUser
			}
			if nonRoot == nil || !*nonRoot {
				t.Errorf("%s/%s: runAsNonRoot is not true", d.Name, c.Name)
			}
			if uid != nil && *uid == 0 {
				t.Errorf("%s/%s: runAsUser is 0", d.Name, c.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s/%s: allowPrivilegeEscalation is not false", d.Name, c.Name)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s/%s: readOnlyRootFilesystem is not true", d.Name, c.Name)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s/%s: capabilities do not drop ALL", d.Name, c.Name)
			} else {
				for _, add := range sc.Capabilities.Add {
					if add != "NET_BIND_SERVICE" {
						t.Errorf("%s/%s: adds capability %s", d.Name, c.Name, add)
					}
				}
			}
		}
	}
}

// TestHPATargets: every HorizontalPodAutoscaler scales a Deployment that exists.
func TestHPATargets(t *testing.T) {
	m := load(t)
	for _, h := range m.HPAs {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
			t.Errorf("HPA %s scales a %s %s, want an apps/v1 Deployment", h.Name, ref.APIVersion, ref.Kind)
			continue
		}
		if !slices.ContainsFunc(m.Deployments, func(d *appsv1.Deployment) bool {
			return d.Namespace == h.Namespace && d.Name == ref.Name
		}) {
			t.Errorf("HPA %s scales Deployment %s/%s, which the manifests do not hold", h.Name, h.Namespace, ref.Name)
		}
	}
}

// TestSelectors: every Service, PodDisruptionBudget and Deployment selector
// matches the pods of a Deployment, so none of them silently selects nothing.
func TestSelectors(t *testing.T) {
	m := load(t)
	for _, s := range m.Services {
		if selects(m, s.Namespace, labels.SelectorFromSet(s.Spec.Selector)) == nil {
			t.Errorf("Service %s: selector %v matches no Deployment's pod template labels", s.Name, s.Spec.Selector)
		}
	}
	for _, p := range m.PDBs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Errorf("PodDisruptionBudget %s: %v", p.Name, err)
			continue
		}
		if selects(m, p.Namespace, sel) == nil {
			t.Errorf("PodDisruptionBudget %s: selector %v matches no Deployment's pod template labels", p.Name, sel)
		}
	}
	for _, d := range m.Deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			t.Errorf("Deployment %s: %v", d.Name, err)
			continue
		}
		if sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Deployment %s: selector %v does not match its pod template labels %v", d.Name, sel, d.Spec.Template.Labels)
		}
	}
}

// TestIngressBackends: every Ingress backend is a port of a Service of the
// manifests.
func TestIngressBackends(t *testing.T) {
	m := load(t)
	for _, ing := range m.Ingresses {
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, path := range rule.HTTP.Paths {
				b := path.Backend.Service
				if b == nil {
					t.Errorf("Ingress %s path %s: no service backend", ing.Name, path.Path)
					continue
				}
				ok := slices.ContainsFunc(m.Services, func(s *corev1.Service) bool {
					return s.Namespace == ing.Namespace && s.Name == b.Name &&
						slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool {
							return b.Port.Name != "" && p.Name == b.Port.Name || b.Port.Name == "" && p.Port == b.Port.Number
						})
				})
				if !ok {
					t.Errorf("Ingress %s path %s: backend %s port %v is no port of a Service of the manifests", ing.Name, path.Path, b.Name, b.Port)
				}
			}
		}
	}
}

// envNames returns, sorted, the name of every environment variable the
// manifests set. ferry is configured by FERRY_* variables only.
func envNames(t *testing.T, m *manifests) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, d := range m.Deployments {
		spec := d.Spec.Template.Spec
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			if len(c.EnvFrom) > 0 {
				// Names from envFrom are not visible in the manifests.
				t.Errorf("%s/%s: envFrom hides variable names; list them under env", d.Name, c.Name)
			}
			inContainer := map[string]bool{}
			for _, e := range c.Env {
				if inContainer[e.Name] {
					t.Errorf("%s/%s: %s is set twice", d.Name, c.Name, e.Name)
				}
				inContainer[e.Name] = true
				seen[e.Name] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func TestEnvNames(t *testing.T) {
	names := envNames(t, load(t))
	if len(names) == 0 {
		t.Fatal("no environment variables in the manifests")
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "FERRY_") {
			t.Errorf("environment variable %s is not ferry's (FERRY_*)", n)
		}
	}
	t.Logf("environment variables: %s", strings.Join(names, " "))
}
