package check

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// chartDir is the Helm chart.
const chartDir = "../helm/mcutie"

// namespace the chart is rendered into.
const namespace = "mqtt"

// rendered is one rendering of the chart: the manifests as a bundle, and
// NOTES.txt.
type rendered struct {
	*bundle
	notes string
}

// renderChart renders the chart as `helm install release --namespace mqtt
// -f values` would: Helm's loader, its values coalescing (which validates
// values.schema.json), the chart's kubeVersion check and its engine in
// strict mode (a template naming a value that does not exist fails).
func renderChart(release, values string) (*rendered, error) {
	return renderChartIn(release, values, nil)
}

// renderChartIn is renderChart with Helm's lookup function answered by
// cluster (nil: no cluster, as helm template; lookup finds nothing).
func renderChartIn(release, values string, cluster engine.ClientProvider) (*rendered, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kubeVersion()
	if kv := ch.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, &chartError{"chart kubeVersion " + kv + " excludes " + caps.KubeVersion.String()}
	}
	top, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	if cluster == nil {
		out, err = engine.Engine{Strict: true}.Render(ch, top)
	} else {
		out, err = engine.RenderWithClientProvider(ch, top, cluster)
	}
	if err != nil {
		return nil, err
	}
	r := &rendered{bundle: &bundle{name: "chart " + release}}
	for _, name := range sortedKeys(out) {
		switch {
		case strings.HasSuffix(name, "/NOTES.txt"):
			r.notes = out[name]
		case strings.HasSuffix(name, ".yaml"):
			objs, err := decodeManifests(name, []byte(out[name]))
			if err != nil {
				return nil, err
			}
			r.objects = append(r.objects, objs...)
		}
	}
	return r, nil
}

// kubeVersion is the Kubernetes version whose API types the manifests are
// decoded into: k8s.io/api v0.N.x (this module's go.mod) is Kubernetes
// 1.N. (Helm's library default, without its release build's flags, is an
// old 1.20.)
func kubeVersion() *chartutil.KubeVersion {
	minor := "0"
	if gomod, err := os.ReadFile("go.mod"); err == nil {
		if m := regexp.MustCompile(`(?m)^\s*k8s\.io/api v0\.(\d+)\.`).FindSubmatch(gomod); m != nil {
			minor = string(m[1])
		}
	}
	return &chartutil.KubeVersion{Version: "v1." + minor + ".0", Major: "1", Minor: minor}
}

type chartError struct{ s string }

func (e *chartError) Error() string { return e.s }

// TestChartLint runs Helm's linter (helm lint) on the chart: Chart.yaml,
// values against the schema, every template rendered and parsed, no
// deprecated API. Only INFO messages are allowed.
func TestChartLint(t *testing.T) {
	res := lint.AllWithKubeVersion(chartDir, nil, namespace, kubeVersion())
	for _, m := range res.Messages {
		if m.Severity > support.InfoSev {
			t.Errorf("helm lint: %v", m)
		} else {
			t.Logf("helm lint: %v", m)
		}
	}
}

// TestChartRender renders the chart with the default values and variants,
// decodes every manifest strictly and checks each deployment.
func TestChartRender(t *testing.T) {
	_, flags := mcutieBinary(t)
	f := func(release, values string, external map[string]*corev1.Secret, check func(t *testing.T, r *rendered)) {
		t.Helper()
		t.Run(release, func(t *testing.T) {
			r, err := renderChart(release, values)
			if err != nil {
				t.Fatal(err)
			}
			r.external = external
			checkBundle(t, r.bundle, flags)
			if check != nil {
				check(t, r)
			}
		})
	}
	// The defaults: a generated user, persistence, a PDB, no ServiceMonitor.
	f("mcutie", "", nil, func(t *testing.T, r *rendered) {
		ss, _ := r.statefulSet()
		if ss.Name != "mcutie" || len(ss.Spec.VolumeClaimTemplates) != 1 || len(all[*serviceMonitor](r.bundle)) != 0 {
			t.Errorf("defaults: StatefulSet %s, %d claim templates, %d ServiceMonitors", ss.Name, len(ss.Spec.VolumeClaimTemplates), len(all[*serviceMonitor](r.bundle)))
		}
		s := r.secret("mcutie-users")
		if s == nil || len(secretData(s)["MCUTIE_USER_mqtt"]) != 24 {
			t.Fatalf("defaults: no Secret mcutie-users with a generated 24-character MCUTIE_USER_mqtt")
		}
		if !strings.Contains(r.notes, "get secret mcutie-users") {
			t.Errorf("NOTES.txt does not say how to read the generated password:\n%s", r.notes)
		}
	})
	// Users, config, an ACL, the ServiceMonitor, a LoadBalancer.
	f("prod", `
auth:
  users: {alice: s3cret, bob: "hunter2"}
  acl: |
    user alice
    topic readwrite #
config:
  max-connections: 5000
  max-keepalive: 300
metrics:
  serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
service: {type: LoadBalancer, port: 1883}
extraArgs: ["--profile=latency"]
`, nil, func(t *testing.T, r *rendered) {
		sms := all[*serviceMonitor](r.bundle)
		if len(sms) != 1 || sms[0].Labels["release"] != "kube-prometheus-stack" || sms[0].Name != "prod-mcutie" {
			t.Errorf("serviceMonitor.enabled: got %d, labels %v", len(sms), sms)
		}
		ss, _ := r.statefulSet()
		c, _ := brokerContainer(ss)
		args := mustArgs(t, c)
		if v, _ := one(args, "acl-file"); v == "" {
			t.Errorf("auth.acl set: no --acl-file")
		}
		if v, _ := one(args, "profile"); v != "latency" {
			t.Errorf("extraArgs: --profile=%q", v)
		}
	})
	// Users from your own Secrets, no persistence, no PDB.
	f("ext", `
auth: {existingSecret: my-users, passwordFileSecret: my-passwd}
persistence: {enabled: false}
podDisruptionBudget: {enabled: false}
`, map[string]*corev1.Secret{
		"my-users":  {ObjectMeta: metav1.ObjectMeta{Name: "my-users"}, StringData: map[string]string{"MCUTIE_USER_dave": "pw"}},
		"my-passwd": {ObjectMeta: metav1.ObjectMeta{Name: "my-passwd"}, StringData: map[string]string{"passwd": "carol:$7$placeholder"}},
	}, func(t *testing.T, r *rendered) {
		ss, _ := r.statefulSet()
		if len(ss.Spec.VolumeClaimTemplates) != 0 || r.secret("ext-mcutie-users") != nil || len(all[*policyv1.PodDisruptionBudget](r.bundle)) != 0 {
			t.Errorf("persistence off: %d claim templates; users Secret made anyway: %v; PDBs: %d", len(ss.Spec.VolumeClaimTemplates), r.secret("ext-mcutie-users") != nil, len(all[*policyv1.PodDisruptionBudget](r.bundle)))
		}
		if v, ok := volume(&ss.Spec.Template.Spec, "data"); !ok || v.EmptyDir == nil {
			t.Errorf("persistence off: data is not an emptyDir")
		}
	})
	// TLS with client certificates.
	f("tls", `
tls: {enabled: true, secretName: mcutie-tls, clientCASecret: mcutie-client-ca}
auth: {users: {alice: s3cret}}
`, map[string]*corev1.Secret{
		"mcutie-tls":       {ObjectMeta: metav1.ObjectMeta{Name: "mcutie-tls"}, Type: corev1.SecretTypeTLS, StringData: map[string]string{"tls.crt": "-", "tls.key": "-"}},
		"mcutie-client-ca": {ObjectMeta: metav1.ObjectMeta{Name: "mcutie-client-ca"}, StringData: map[string]string{"ca.crt": "-"}},
	}, func(t *testing.T, r *rendered) {
		s := r.service("tls-mcutie")
		if s == nil || len(s.Spec.Ports) != 2 || s.Spec.Ports[1].Port != 8883 {
			t.Errorf("tls.enabled: the Service has no 8883 port: %v", s)
		}
	})
	f("anon", `auth: {allowAnonymous: true}`, nil, func(t *testing.T, r *rendered) {
		if len(all[*corev1.Secret](r.bundle)) != 0 {
			t.Errorf("allowAnonymous without users: a users Secret was made")
		}
		if !strings.Contains(r.notes, "WARNING") {
			t.Errorf("allowAnonymous: NOTES.txt does not warn")
		}
	})
}

// TestChartSchemaRefuses: values the broker would fail on, or that Helm
// would ignore silently, are refused by values.schema.json at render time.
func TestChartSchemaRefuses(t *testing.T) {
	f := func(values, want string) {
		t.Helper()
		_, err := renderChart("bad", values)
		if err == nil || !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), want) {
			t.Errorf("values %q: err %v, want a schema error naming %q", values, err, want)
		}
	}
	f(`persistance: {enabled: false}`, "persistance")                      // a misspelt key
	f(`auth: {users: {alice: ""}}`, "alice")                               // the broker refuses an empty password
	f(`auth: {users: {"a:b": pw}}`, "a:b")                                 // not a Secret key
	f(`tls: {enabled: true}`, "secretName")                                // TLS without a certificate
	f(`memoryLimit: 448Mi`, "memoryLimit")                                 // mcutie wants MiB
	f(`config: {listen: "tcp://0.0.0.0:1884"}`, "listen")                  // set by the chart
	f(`terminationGracePeriodSeconds: 5`, "terminationGracePeriodSeconds") // shorter than the shutdown
	f(`logLevel: verbose`, "logLevel")
	f(`service: {type: ExternalName}`, "type")
	f(`podDisruptionBudget: {maxUnavailable: 2}`, "maxUnavailable")
}

// secretsCluster answers Helm's lookup of v1 Secrets from what an earlier
// install made, as the API server would (NotFound for anything else).
type secretsCluster struct {
	dynamic.NamespaceableResourceInterface                           // nil: only Namespace(ns).Get is called
	secrets                                map[string]*corev1.Secret // namespace/name
	ns                                     string
}

func (c *secretsCluster) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	if apiVersion != "v1" || kind != "Secret" {
		return nil, false, fmt.Errorf("lookup of %s %s: only v1 Secrets are expected", apiVersion, kind)
	}
	return c, true, nil
}

func (c *secretsCluster) Namespace(ns string) dynamic.ResourceInterface {
	return &secretsCluster{secrets: c.secrets, ns: ns}
}

func (c *secretsCluster) Get(_ context.Context, name string, _ metav1.GetOptions, _ ...string) (*unstructured.Unstructured, error) {
	s, ok := c.secrets[c.ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// TestChartKeepsGeneratedPassword: the generated user's password survives
// helm upgrade (the chart looks up the Secret it made) and so does the
// pod's checksum annotation (no needless restart); a fresh install gets
// a new password.
func TestChartKeepsGeneratedPassword(t *testing.T) {
	install, err := renderChart("mcutie", "")
	if err != nil {
		t.Fatal(err)
	}
	first := install.secret("mcutie-users")
	if first == nil {
		t.Fatal("no Secret mcutie-users")
	}
	first.Namespace = namespace
	cluster := &secretsCluster{secrets: map[string]*corev1.Secret{namespace + "/mcutie-users": first}}
	upgrade, err := renderChartIn("mcutie", "", cluster)
	if err != nil {
		t.Fatal(err)
	}
	pw := func(r *rendered) string { return string(secretData(r.secret("mcutie-users"))["MCUTIE_USER_mqtt"]) }
	sum := func(r *rendered) string {
		ss, err := r.statefulSet()
		if err != nil {
			t.Fatal(err)
		}
		return ss.Spec.Template.Annotations["checksum/users"]
	}
	if pw(upgrade) != pw(install) || sum(upgrade) != sum(install) || sum(install) == "" {
		t.Errorf("upgrade: password %q -> %q, checksum %q -> %q: want both kept", pw(install), pw(upgrade), sum(install), sum(upgrade))
	}
	other, err := renderChartIn("mcutie", "", &secretsCluster{secrets: map[string]*corev1.Secret{}})
	if err != nil {
		t.Fatal(err)
	}
	if pw(other) == pw(install) || len(pw(other)) != 24 {
		t.Errorf("a fresh install got password %q, the first one %q: want a new random one", pw(other), pw(install))
	}
}

// TestRunChart starts the broker as each rendering of the chart runs it
// and connects with its users.
func TestRunChart(t *testing.T) {
	bin, _ := mcutieBinary(t)
	t.Run("defaults", func(t *testing.T) {
		r, err := renderChart("mcutie", "")
		if err != nil {
			t.Fatal(err)
		}
		pw := string(secretData(r.secret("mcutie-users"))["MCUTIE_USER_mqtt"])
		runPod(t, r.bundle, runChecks{users: map[string]string{"mqtt": pw}})
	})
	t.Run("users-config-acl", func(t *testing.T) {
		r, err := renderChart("prod", `
auth:
  users: {alice: s3cret, bob: "hunter 2"}
  acl: |
    user alice
    topic readwrite k8s/check/alice
    user bob
    topic readwrite k8s/check/bob
config: {max-connections: 5000, max-keepalive: 300, sys-interval: 0s}
extraArgs: ["--profile=latency"]
`)
		if err != nil {
			t.Fatal(err)
		}
		runPod(t, r.bundle, runChecks{users: map[string]string{"alice": "s3cret", "bob": "hunter 2"}})
	})
	t.Run("existing-secret-and-password-file", func(t *testing.T) {
		r, err := renderChart("ext", `
auth: {existingSecret: my-users, passwordFileSecret: my-passwd}
persistence: {enabled: false}
`)
		if err != nil {
			t.Fatal(err)
		}
		// The password file as an operator makes it, with mcutie passwd.
		file := filepath.Join(t.TempDir(), "passwd")
		if out, err := exec.Command(bin, "passwd", "-c", "-b", file, "carol", "c4rol").CombinedOutput(); err != nil {
			t.Fatalf("mcutie passwd: %v\n%s", err, out)
		}
		passwd, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		r.external = map[string]*corev1.Secret{
			// A setting from the Secret too: MCUTIE_<NAME> sets --<name>.
			"my-users":  {ObjectMeta: metav1.ObjectMeta{Name: "my-users"}, StringData: map[string]string{"MCUTIE_USER_dave": "d4ve", "MCUTIE_MAX_CONNECTIONS": "1000"}},
			"my-passwd": {ObjectMeta: metav1.ObjectMeta{Name: "my-passwd"}, Data: map[string][]byte{"passwd": passwd}},
		}
		runPod(t, r.bundle, runChecks{users: map[string]string{"carol": "c4rol", "dave": "d4ve"}})
	})
	t.Run("anonymous", func(t *testing.T) {
		r, err := renderChart("anon", `auth: {allowAnonymous: true}`)
		if err != nil {
			t.Fatal(err)
		}
		runPod(t, r.bundle, runChecks{anonymous: true})
	})
	t.Run("tls", func(t *testing.T) {
		r, err := renderChart("tls", `
tls: {enabled: true, secretName: mcutie-tls}
auth: {users: {alice: s3cret}}
`)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, pool := selfSigned(t, "mcutie.test")
		r.external = map[string]*corev1.Secret{
			"mcutie-tls": {ObjectMeta: metav1.ObjectMeta{Name: "mcutie-tls"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}},
		}
		runPod(t, r.bundle, runChecks{users: map[string]string{"alice": "s3cret"}, tls: pool})
	})
}

// selfSigned makes a certificate for name, as cert-manager would put in a
// kubernetes.io/tls Secret, and a pool trusting it.
func selfSigned(t *testing.T, name string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), pool
}
