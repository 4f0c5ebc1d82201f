// Wrapper module that builds etcd for the local test control plane.
// hack/testenv/build.sh copies this directory into the cache and pins
// go.etcd.io/etcd/server/v3 to ETCD_VERSION from hack/versions.env there.
module launchgate.dev/testenv/etcd

go 1.23
