package check

import (
	"errors"
	"fmt"
	"regexp"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// serviceMonitor holds the monitoring.coreos.com/v1 ServiceMonitor fields
// the manifests use; decoding strictly into it refuses any other field, so
// a misspelt one (scrapeTimout) fails instead of being ignored by the
// operator.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// kustomization holds the kustomize.config.k8s.io/v1beta1 fields
// packaging/kubernetes/kustomization.yaml uses.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// newObject returns the typed object for a manifest's apiVersion and kind;
// any other pair is an error (a typo there would be refused by the API
// server).
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "apps/v1 StatefulSet":
		return new(appsv1.StatefulSet), nil
	case "v1 Service":
		return new(corev1.Service), nil
	case "v1 Secret":
		return new(corev1.Secret), nil
	case "v1 ConfigMap":
		return new(corev1.ConfigMap), nil
	case "v1 Pod":
		return new(corev1.Pod), nil
	case "policy/v1 PodDisruptionBudget":
		return new(policyv1.PodDisruptionBudget), nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return new(serviceMonitor), nil
	}
	return nil, fmt.Errorf("unexpected apiVersion %q kind %q", apiVersion, kind)
}

// decodeStrict decodes one YAML document into obj the way the API server
// does with fieldValidation=Strict: field names are case-sensitive (plain
// encoding/json would take readOnlyRootFileSystem for
// readOnlyRootFilesystem, where the API server drops it), and an unknown or
// duplicate field is an error.
func decodeStrict(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// object is one decoded manifest.
type object struct {
	source string // file or template, #n for the n-th document in it
	obj    any    // one of newObject's types
}

// docSeparator splits a multi-document YAML stream.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeManifests decodes every document of data strictly (an unknown or
// duplicate field is an error) into its typed object. Documents that hold
// only comments are skipped, as kubectl and Helm do.
func decodeManifests(source string, data []byte) ([]object, error) {
	var out []object
	for i, doc := range docSeparator.Split(string(data), -1) {
		var probe map[string]any
		if err := yaml.Unmarshal([]byte(doc), &probe); err != nil {
			return nil, fmt.Errorf("%s#%d: %w", source, i, err)
		}
		if probe == nil {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s#%d: %w", source, i, err)
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			return nil, fmt.Errorf("%s#%d: %w", source, i, err)
		}
		if err := decodeStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s#%d (%s): %w", source, i, tm.Kind, err)
		}
		out = append(out, object{source: fmt.Sprintf("%s#%d", source, i), obj: obj})
	}
	return out, nil
}

// bundle is what one deployment applies: the plain manifests, or one
// rendering of the chart.
type bundle struct {
	name    string
	objects []object
	// external are Secrets the deployment refers to but does not make
	// (auth.existingSecret, a TLS Secret): the test provides them.
	external map[string]*corev1.Secret
}

// all returns the objects of type T.
func all[T any](b *bundle) []T {
	var out []T
	for _, o := range b.objects {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func (b *bundle) statefulSet() (*appsv1.StatefulSet, error) {
	s := all[*appsv1.StatefulSet](b)
	if len(s) != 1 {
		return nil, fmt.Errorf("%s: %d StatefulSets, want 1", b.name, len(s))
	}
	return s[0], nil
}

func (b *bundle) service(name string) *corev1.Service {
	for _, s := range all[*corev1.Service](b) {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (b *bundle) configMap(name string) *corev1.ConfigMap {
	for _, c := range all[*corev1.ConfigMap](b) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// secret returns the Secret name from the bundle or the external ones.
func (b *bundle) secret(name string) *corev1.Secret {
	for _, s := range all[*corev1.Secret](b) {
		if s.Name == name {
			return s
		}
	}
	return b.external[name]
}

// secretData is what a Secret gives a pod: data, with stringData winning
// (as the API server merges them).
func secretData(s *corev1.Secret) map[string][]byte {
	m := map[string][]byte{}
	for k, v := range s.Data {
		m[k] = v
	}
	for k, v := range s.StringData {
		m[k] = []byte(v)
	}
	return m
}

// sortedKeys returns m's keys in order (stable test output).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
