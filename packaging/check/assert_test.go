package check

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// brokerShutdown is the longest the broker's stop may take after SIGTERM
// (cmd/mcutie/main.go: listeners and clients, 10 s) plus the store's close
// and margin: the pod's grace period must be at least this.
// TestRun*'s SIGTERM checks the real stop ends well within it.
const brokerShutdown = 15 * time.Second

// flagArg is one --name[=value] argument.
type flagArg struct {
	name, value string
	hasValue    bool
}

// parseArgs reads the container's arguments. Each must be --name=value
// (or --name for a boolean): a value in the next argument would be
// ambiguous to read here and to a person.
func parseArgs(args []string) ([]flagArg, error) {
	var out []flagArg
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return nil, fmt.Errorf("argument %q is not a flag: write --name=value", a)
		}
		name, value, has := strings.Cut(strings.TrimLeft(a, "-"), "=")
		out = append(out, flagArg{name: name, value: value, hasValue: has})
	}
	return out, nil
}

// values returns every value given to flag name.
func values(args []flagArg, name string) []string {
	var out []string
	for _, a := range args {
		if a.name == name {
			out = append(out, a.value)
		}
	}
	return out
}

// one returns the single value of flag name ("" and false if it is not
// given exactly once).
func one(args []flagArg, name string) (string, bool) {
	v := values(args, name)
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// brokerContainer returns the StatefulSet's container named mcutie.
func brokerContainer(ss *appsv1.StatefulSet) (*corev1.Container, error) {
	for i := range ss.Spec.Template.Spec.Containers {
		if c := &ss.Spec.Template.Spec.Containers[i]; c.Name == "mcutie" {
			return c, nil
		}
	}
	return nil, fmt.Errorf("StatefulSet %s: no container named mcutie", ss.Name)
}

// containerPort resolves a probe's or Service's port (a name or a number)
// to one of c's container ports.
func containerPort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func namedPort(c *corev1.Container, name string) (int32, bool) {
	return containerPort(c, intstr.FromString(name))
}

// hostPort splits "0.0.0.0:9100" or "tcp://0.0.0.0:1883" into host and port.
func hostPort(addr string) (string, int32, error) {
	if u, err := url.Parse(addr); err == nil && u.Scheme != "" && u.Host != "" {
		addr = u.Host
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	return h, int32(n), err
}

// mountFor returns the mount whose path holds file (the longest match).
func mountFor(c *corev1.Container, file string) (corev1.VolumeMount, bool) {
	var best corev1.VolumeMount
	found := false
	for _, m := range c.VolumeMounts {
		if (file == m.MountPath || strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")) && len(m.MountPath) > len(best.MountPath) {
			best, found = m, true
		}
	}
	return best, found
}

func volume(spec *corev1.PodSpec, name string) (corev1.Volume, bool) {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

// parseBytes reads --memory-limit the way the broker does
// (tuning.ParseBytes: case-insensitive GiB, MiB, KiB, GB, MB, kB, G, M, K,
// B, or a number of bytes).
func parseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}} {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

// checkBundle checks what makes the deployment work and keeps it safe; it
// reports every problem with t.Errorf. flags are the flag names
// `mcutie --help` lists.
func checkBundle(t *testing.T, b *bundle, flags map[string]bool) {
	t.Helper()
	for _, o := range b.objects {
		m := metaOf(o.obj)
		for _, e := range validation.IsDNS1123Subdomain(m.Name) {
			t.Errorf("%s: name %q: %s", o.source, m.Name, e)
		}
	}
	ss, err := b.statefulSet()
	if err != nil {
		t.Fatal(err)
	}
	pod := &ss.Spec.Template
	spec := &pod.Spec
	where := b.name + ": StatefulSet " + ss.Name
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 {
		t.Errorf("%s: replicas must be 1 (no --cluster-* here: a second replica would be a separate broker)", where)
	}
	sel, err := metav1.LabelSelectorAsSelector(ss.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("%s: selector %v does not pick the pod template's labels %v (%v)", where, ss.Spec.Selector, pod.Labels, err)
	}

	// Hardening.
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false (the broker does not use the API)", where)
	}
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Errorf("%s: enableServiceLinks must be false (Service variables like MCUTIE_PORT would land in the broker's environment)", where)
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < brokerShutdown {
		t.Errorf("%s: terminationGracePeriodSeconds %v, want at least %v (the broker's shutdown)", where, g, brokerShutdown)
	}
	c, err := brokerContainer(ss)
	if err != nil {
		t.Fatal(err)
	}
	psc, csc := spec.SecurityContext, c.SecurityContext
	if psc == nil || csc == nil {
		t.Fatalf("%s: pod and container securityContext must be set", where)
	}
	nonRoot := (csc.RunAsNonRoot != nil && *csc.RunAsNonRoot) || (csc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	uid := csc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	if !nonRoot || uid == nil || *uid == 0 {
		t.Errorf("%s: must run as non-root with a fixed non-zero UID (runAsNonRoot %v, runAsUser %v)", where, nonRoot, uid)
	}
	if psc.FSGroup == nil || *psc.FSGroup == 0 {
		t.Errorf("%s: fsGroup must be set (a fresh volume writable by the broker's group)", where)
	}
	seccomp := csc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile must be RuntimeDefault, got %v", where, seccomp)
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem must be true", where)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation must be false", where)
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Errorf("%s: privileged", where)
	}
	if caps := csc.Capabilities; caps == nil || len(caps.Add) > 0 || len(caps.Drop) != 1 || caps.Drop[0] != "ALL" {
		t.Errorf("%s: capabilities must drop ALL and add none, got %v", where, caps)
	}

	// Resources: requests for scheduling, a memory limit, and the Go
	// runtime's soft limit below it.
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
		t.Errorf("%s: resources need cpu and memory requests and a memory limit, got %v", where, c.Resources)
	}

	// The arguments: flags the broker has, and the ones the pod needs.
	if len(c.Command) != 1 || c.Command[0] != "/mcutie" {
		t.Errorf("%s: command %q, want [/mcutie] (the image's binary)", where, c.Command)
	}
	args, err := parseArgs(c.Args)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	for _, a := range args {
		if !flags[a.name] {
			t.Errorf("%s: argument --%s is not a flag of mcutie --help", where, a.name)
		}
	}
	if ml, ok := one(args, "memory-limit"); ok {
		n, err := parseBytes(ml)
		if err != nil {
			t.Errorf("%s: --memory-limit=%s: %v", where, ml, err)
		} else if lim.Memory().IsZero() || n >= lim.Memory().Value() {
			t.Errorf("%s: --memory-limit=%s must be below the container's memory limit %v", where, ml, lim.Memory())
		}
	}

	// MQTT: a tcp:// listener on every address, on the port named mqtt.
	mqttPort, ok := namedPort(c, "mqtt")
	if !ok {
		t.Errorf("%s: no container port named mqtt", where)
	}
	listens := values(args, "listen")
	var tcpOK bool
	for _, l := range listens {
		h, p, err := hostPort(l)
		if err != nil {
			t.Errorf("%s: --listen=%s: %v", where, l, err)
			continue
		}
		if h != "0.0.0.0" && h != "::" && h != "" {
			t.Errorf("%s: --listen=%s: in a pod the broker must listen on every address", where, l)
		}
		found := false
		for _, cp := range c.Ports {
			found = found || cp.ContainerPort == p
		}
		if !found {
			t.Errorf("%s: --listen=%s: port %d is not a container port", where, l, p)
		}
		if strings.HasPrefix(l, "tcp://") && p == mqttPort {
			tcpOK = true
		}
	}
	if !tcpOK {
		t.Errorf("%s: no --listen=tcp://0.0.0.0:%d for the mqtt port (got %q)", where, mqttPort, listens)
	}

	// Metrics and probes: on --metrics-listen's port, named metrics.
	ml, ok := one(args, "metrics-listen")
	var metricsPort int32
	if !ok {
		t.Errorf("%s: --metrics-listen must be given once (the probes need it; the default is loopback)", where)
	} else if h, p, err := hostPort(ml); err != nil || (h != "0.0.0.0" && h != "") {
		t.Errorf("%s: --metrics-listen=%s: must be 0.0.0.0:PORT for the kubelet and Prometheus to reach it (%v)", where, ml, err)
	} else {
		metricsPort = p
	}
	if p, ok := namedPort(c, "metrics"); !ok || p != metricsPort {
		t.Errorf("%s: container port metrics = %d, --metrics-listen port %d", where, p, metricsPort)
	}
	for _, pr := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"startupProbe", c.StartupProbe, "/healthz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s: %s must be an httpGet", where, pr.kind)
			continue
		}
		g := pr.probe.HTTPGet
		if g.Path != pr.path {
			t.Errorf("%s: %s path %q, want %s", where, pr.kind, g.Path, pr.path)
		}
		if p, ok := containerPort(c, g.Port); !ok || p != metricsPort {
			t.Errorf("%s: %s port %v is not --metrics-listen's port %d", where, pr.kind, g.Port.String(), metricsPort)
		}
		if pr.probe.TimeoutSeconds != 0 && pr.probe.TimeoutSeconds < 3 {
			t.Errorf("%s: %s timeoutSeconds %d: /readyz may take up to 2 s", where, pr.kind, pr.probe.TimeoutSeconds)
		}
	}

	// Volumes: --data-dir is the volume named data; every mount has a
	// volume; every file flag points into a mount that holds the file.
	vcts := map[string]corev1.PersistentVolumeClaim{}
	for _, v := range ss.Spec.VolumeClaimTemplates {
		vcts[v.Name] = v
		if v.Spec.Resources.Requests.Storage().IsZero() {
			t.Errorf("%s: volumeClaimTemplate %s requests no storage", where, v.Name)
		}
	}
	for _, m := range c.VolumeMounts {
		_, inPod := volume(spec, m.Name)
		_, inVCT := vcts[m.Name]
		if inPod == inVCT {
			t.Errorf("%s: volumeMount %s: want exactly one volume or volumeClaimTemplate of that name (pod %v, template %v)", where, m.Name, inPod, inVCT)
		}
	}
	dataDir, ok := one(args, "data-dir")
	if m, found := mountFor(c, dataDir); !ok || !found || m.MountPath != dataDir || m.Name != "data" || m.ReadOnly {
		t.Errorf("%s: --data-dir=%s must be the mount path of the writable volume data (mounts %v)", where, dataDir, c.VolumeMounts)
	}
	if _, inPod := volume(spec, "data"); !inPod {
		if _, ok := vcts["data"]; !ok {
			t.Errorf("%s: no volume data", where)
		}
	}
	for _, f := range []string{"config", "password-file", "acl-file", "tls-cert", "tls-key", "tls-client-ca"} {
		for _, file := range values(args, f) {
			if err := fileInMount(b, spec, c, file); err != nil {
				t.Errorf("%s: --%s=%s: %v", where, f, file, err)
			}
		}
	}
	if cfg, ok := one(args, "config"); ok {
		if data, err := mountedFile(b, spec, c, cfg); err == nil {
			var keys map[string]any
			if err := yaml.Unmarshal(data, &keys); err != nil {
				t.Errorf("%s: --config=%s: %v", where, cfg, err)
			}
			for k := range keys {
				if !flags[k] {
					t.Errorf("%s: --config=%s: key %q is not a flag of mcutie --help", where, cfg, k)
				}
			}
		}
	}

	// Credentials: anonymous access is off on 0.0.0.0, so users must come
	// from somewhere unless --allow-anonymous.
	users := 0
	for _, ef := range c.EnvFrom {
		if ef.SecretRef == nil {
			t.Errorf("%s: envFrom %v: only Secrets are expected", where, ef)
			continue
		}
		s := b.secret(ef.SecretRef.Name)
		if s == nil {
			t.Errorf("%s: envFrom Secret %s is not in the deployment", where, ef.SecretRef.Name)
			continue
		}
		for k, v := range secretData(s) {
			switch {
			case strings.HasPrefix(k, "MCUTIE_USER_") || k == "MCUTIE_USERS":
				users++
				if len(v) == 0 {
					t.Errorf("%s: Secret %s: %s is empty (the broker refuses to start)", where, s.Name, k)
				}
			case strings.HasPrefix(k, "MCUTIE_") && k != "MCUTIE_REDIS_PASSWORD":
				// MCUTIE_<NAME> sets flag <name>; any other is ignored
				// with a warning.
				if !flags[strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "MCUTIE_"), "_", "-"))] {
					t.Errorf("%s: Secret %s: %s names no flag of mcutie --help", where, s.Name, k)
				}
			}
		}
	}
	if len(values(args, "password-file")) > 0 {
		users++
	}
	if users == 0 && len(values(args, "allow-anonymous")) == 0 {
		t.Errorf("%s: no users (envFrom MCUTIE_USER_<name> or --password-file) and no --allow-anonymous: nobody could connect", where)
	}

	// Services: each picks the pod and targets a container port.
	if hs := b.service(ss.Spec.ServiceName); hs == nil || hs.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("%s: serviceName %q must be a headless Service of the deployment", where, ss.Spec.ServiceName)
	}
	var mqttService bool
	for _, s := range all[*corev1.Service](b) {
		sw := b.name + ": Service " + s.Name
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: selector %v does not pick the broker's pod %v", sw, s.Spec.Selector, pod.Labels)
		}
		for _, p := range s.Spec.Ports {
			for _, e := range validation.IsValidPortName(p.Name) {
				t.Errorf("%s: port name %q: %s", sw, p.Name, e)
			}
			cp, ok := containerPort(c, p.TargetPort)
			if !ok {
				t.Errorf("%s: targetPort %s is not a container port", sw, p.TargetPort.String())
			}
			if cp == mqttPort {
				mqttService = true
			}
		}
	}
	if !mqttService {
		t.Errorf("%s: no Service targets the mqtt port", b.name)
	}

	for _, pdb := range all[*policyv1.PodDisruptionBudget](b) {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: PodDisruptionBudget %s does not pick the broker's pod (%v)", b.name, pdb.Name, err)
		}
		if (pdb.Spec.MaxUnavailable == nil) == (pdb.Spec.MinAvailable == nil) {
			t.Errorf("%s: PodDisruptionBudget %s: give one of maxUnavailable and minAvailable", b.name, pdb.Name)
		}
	}
	for _, sm := range all[*serviceMonitor](b) {
		checkServiceMonitor(t, b, sm, metricsPort, c)
	}
	for _, p := range all[*corev1.Pod](b) {
		checkTestPod(t, b, p, ss, metricsPort)
	}
}

// checkServiceMonitor: it selects the metrics Service, scrapes a port of
// it that reaches --metrics-listen, at /metrics, within its interval.
func checkServiceMonitor(t *testing.T, b *bundle, sm *serviceMonitor, metricsPort int32, c *corev1.Container) {
	t.Helper()
	where := b.name + ": ServiceMonitor " + sm.Name
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("%s: selector: %v", where, err)
	}
	var picked []*corev1.Service
	for _, s := range all[*corev1.Service](b) {
		if sel.Matches(labels.Set(s.Labels)) {
			picked = append(picked, s)
		}
	}
	if len(picked) != 1 {
		t.Fatalf("%s: selects %d Services, want the metrics one only", where, len(picked))
	}
	if len(sm.Spec.Endpoints) == 0 {
		t.Errorf("%s: no endpoints", where)
	}
	for _, e := range sm.Spec.Endpoints {
		var target *intstr.IntOrString
		for _, p := range picked[0].Spec.Ports {
			if p.Name == e.Port {
				target = &p.TargetPort
			}
		}
		if target == nil {
			t.Errorf("%s: endpoint port %q is not a port of Service %s", where, e.Port, picked[0].Name)
		} else if p, _ := containerPort(c, *target); p != metricsPort {
			t.Errorf("%s: endpoint port %q reaches container port %d, not --metrics-listen's %d", where, e.Port, p, metricsPort)
		}
		if e.Path != "/metrics" {
			t.Errorf("%s: path %q, want /metrics", where, e.Path)
		}
		iv, err1 := time.ParseDuration(e.Interval)
		st, err2 := time.ParseDuration(e.ScrapeTimeout)
		if err1 != nil || err2 != nil || st > iv {
			t.Errorf("%s: interval %q, scrapeTimeout %q: both durations, timeout not above interval", where, e.Interval, e.ScrapeTimeout)
		}
	}
}

// checkTestPod: the chart's helm test pod asks the broker pod's /readyz
// through the headless Service, with the image's /healthcheck.
func checkTestPod(t *testing.T, b *bundle, p *corev1.Pod, ss *appsv1.StatefulSet, metricsPort int32) {
	t.Helper()
	where := b.name + ": Pod " + p.Name
	if p.Annotations["helm.sh/hook"] != "test" {
		t.Errorf("%s: only helm test pods are expected", where)
	}
	if len(p.Spec.Containers) != 1 || len(p.Spec.Containers[0].Command) != 2 || p.Spec.Containers[0].Command[0] != "/healthcheck" {
		t.Fatalf("%s: want one container running /healthcheck URL", where)
	}
	want := fmt.Sprintf("http://%s-0.%s.%s.svc:%d/readyz", ss.Name, ss.Spec.ServiceName, ss.Namespace, metricsPort)
	if got := p.Spec.Containers[0].Command[1]; got != want {
		t.Errorf("%s: asks %s, want %s", where, got, want)
	}
	if csc := p.Spec.Containers[0].SecurityContext; csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("%s: not hardened like the broker", where)
	}
}

// fileInMount checks that file is in a mount whose volume (a ConfigMap or
// Secret of the deployment) holds it.
func fileInMount(b *bundle, spec *corev1.PodSpec, c *corev1.Container, file string) error {
	_, err := mountedFile(b, spec, c, file)
	return err
}

// mountedFile returns the content the kubelet would put at file: the
// ConfigMap or Secret key projected there.
func mountedFile(b *bundle, spec *corev1.PodSpec, c *corev1.Container, file string) ([]byte, error) {
	m, ok := mountFor(c, file)
	if !ok {
		return nil, fmt.Errorf("not under any volumeMount")
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(file, m.MountPath), "/")
	if m.SubPath != "" {
		return nil, fmt.Errorf("mount %s uses subPath (not updated on change; not expected here)", m.Name)
	}
	v, ok := volume(spec, m.Name)
	if !ok {
		return nil, fmt.Errorf("mount %s has no volume", m.Name)
	}
	files, err := volumeFiles(b, v)
	if err != nil {
		return nil, err
	}
	data, ok := files[path.Clean(rel)]
	if !ok {
		return nil, fmt.Errorf("volume %s holds %v, not %s", v.Name, sortedKeys(files), rel)
	}
	return data, nil
}

// volumeFiles returns the files a ConfigMap or Secret volume holds (items
// respected), as the kubelet projects them; nil for other volumes.
func volumeFiles(b *bundle, v corev1.Volume) (map[string][]byte, error) {
	var data map[string][]byte
	var items []corev1.KeyToPath
	switch {
	case v.ConfigMap != nil:
		cm := b.configMap(v.ConfigMap.Name)
		if cm == nil {
			return nil, fmt.Errorf("volume %s: ConfigMap %s is not in the deployment", v.Name, v.ConfigMap.Name)
		}
		data = map[string][]byte{}
		for k, s := range cm.Data {
			data[k] = []byte(s)
		}
		for k, s := range cm.BinaryData {
			data[k] = s
		}
		items = v.ConfigMap.Items
	case v.Secret != nil:
		s := b.secret(v.Secret.SecretName)
		if s == nil {
			return nil, fmt.Errorf("volume %s: Secret %s is not in the deployment", v.Name, v.Secret.SecretName)
		}
		data, items = secretData(s), v.Secret.Items
	default:
		return nil, nil
	}
	if len(items) == 0 {
		return data, nil
	}
	out := map[string][]byte{}
	for _, it := range items {
		d, ok := data[it.Key]
		if !ok {
			return nil, fmt.Errorf("volume %s: key %s is not in its source", v.Name, it.Key)
		}
		out[path.Clean(it.Path)] = d
	}
	return out, nil
}

// metaOf returns an object's metadata.
func metaOf(obj any) *metav1.ObjectMeta {
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		return &o.ObjectMeta
	case *corev1.Service:
		return &o.ObjectMeta
	case *corev1.Secret:
		return &o.ObjectMeta
	case *corev1.ConfigMap:
		return &o.ObjectMeta
	case *corev1.Pod:
		return &o.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return &o.ObjectMeta
	case *serviceMonitor:
		return &o.ObjectMeta
	}
	panic(fmt.Sprintf("BUG: metaOf(%T)", obj))
}
