// Command etcd is the upstream etcd server, built through a wrapper module because
// `go install go.etcd.io/etcd/server/v3@...` refuses modules with replace directives.
// It does exactly what go.etcd.io/etcd/server/v3/main.go does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
