package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// manifestsDir holds the plain manifests.
const manifestsDir = "../kubernetes"

// optionalManifests are in the directory but not in kustomization.yaml:
// applying them needs something the cluster may not have.
var optionalManifests = []string{
	"servicemonitor.yaml", // the Prometheus operator's CRDs
}

// loadPlainManifests decodes kustomization.yaml and every manifest it
// lists, plus the optional ones, into one bundle.
func loadPlainManifests(t *testing.T) (*bundle, *kustomization) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(manifestsDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := decodeStrict(raw, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: apiVersion %q kind %q", k.APIVersion, k.Kind)
	}
	b := &bundle{name: "packaging/kubernetes"}
	for _, f := range append(slices.Clone(k.Resources), optionalManifests...) {
		data, err := os.ReadFile(filepath.Join(manifestsDir, f))
		if err != nil {
			t.Fatalf("kustomization.yaml resource: %v", err)
		}
		objs, err := decodeManifests(f, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s: no manifest", f)
		}
		b.objects = append(b.objects, objs...)
	}
	return b, &k
}

// TestPlainManifests decodes packaging/kubernetes strictly and checks it:
// every file is listed (or optional), the image rename names the
// StatefulSet's image, and the deployment checks of checkBundle pass.
func TestPlainManifests(t *testing.T) {
	_, flags := mcutieBinary(t)
	b, k := loadPlainManifests(t)
	files, err := filepath.Glob(filepath.Join(manifestsDir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !slices.Contains(k.Resources, base) && !slices.Contains(optionalManifests, base) {
			t.Errorf("%s is neither in kustomization.yaml nor an optional manifest", base)
		}
	}
	ss, err := b.statefulSet()
	if err != nil {
		t.Fatal(err)
	}
	c, err := brokerContainer(ss)
	if err != nil {
		t.Fatal(err)
	}
	image, _, _ := strings.Cut(c.Image, ":")
	for _, img := range k.Images {
		if img.Name != image {
			t.Errorf("kustomization.yaml images: %q is not the StatefulSet's image %q", img.Name, image)
		}
	}
	checkBundle(t, b, flags)
}

// TestRunPlainManifests starts the broker as packaging/kubernetes'
// StatefulSet runs it and connects with secret.yaml's user.
func TestRunPlainManifests(t *testing.T) {
	b, _ := loadPlainManifests(t)
	users := map[string]string{}
	for _, s := range all[*corev1.Secret](b) {
		for k, v := range secretData(s) {
			if u, ok := strings.CutPrefix(k, "MCUTIE_USER_"); ok {
				users[u] = string(v)
			}
		}
	}
	if len(users) == 0 {
		t.Fatal("secret.yaml has no MCUTIE_USER_<name>")
	}
	runPod(t, b, runChecks{users: users})
}
