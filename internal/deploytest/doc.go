// Package deploytest checks what ships beside the code and is never compiled: the container recipe
// (Dockerfile), the systemd unit and the Kubernetes/OpenShift manifests under deploy/, the Grafana
// dashboard, and the example configurations under examples/. Each is read as its consumer would read it
// and held to the code: the configurations pass `config check`, the probes hit routes the server
// serves, the dashboard's queries name metrics the process exports, the image runs the binary it builds
// as a user without privileges, and that binary links statically.
package deploytest
