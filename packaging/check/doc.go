// Package check tests mcutie's Kubernetes deployment files: the plain
// manifests in packaging/kubernetes and the Helm chart in
// packaging/helm/mcutie (docs/install.md#kubernetes, #helm).
//
// It is a module of its own so that the broker's go.mod does not pull Helm
// and the Kubernetes libraries: `make test` and `make test-packaging` run
// it with `cd packaging/check && go test`. The tests
//
//   - render the chart with Helm's own loader, values coalescing (which
//     validates values.schema.json), strict template engine and linter,
//     with the default values and with variants, and check that bad values
//     are refused by the schema;
//   - decode every rendered and every plain manifest strictly into the
//     typed k8s.io/api objects (an unknown or misspelt field fails), and a
//     ServiceMonitor into a struct of the monitoring.coreos.com/v1 fields
//     used;
//   - check what matters for the broker: its arguments are flags that
//     `mcutie --help` lists, probes and Services point at the ports the
//     broker listens on, --data-dir is the persistent volume, the pod runs
//     as non-root on a read-only root filesystem with no capabilities;
//   - run the real mcutie binary as the kubelet would (the StatefulSet's
//     command, arguments and environment, with the volumes as temporary
//     directories and the ports as free loopback ports), ask the probes'
//     paths and connect MQTT clients with the Secret's credentials.
//
// The package has no code besides its tests.
package check
