// Wrapper module that builds kube-apiserver, kubectl, kube-controller-manager and kube-scheduler
// for the local test control plane.
// hack/testenv/build.sh copies this directory into the cache, pins k8s.io/kubernetes to
// KUBERNETES_VERSION from hack/versions.env and adds the staging-module replace lines there,
// so this file stays version-free.
module launchgate.dev/testenv/kube-apiserver

go 1.23
