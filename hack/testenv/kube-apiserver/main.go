// Command kube-apiserver is the upstream kube-apiserver, built from the k8s.io/kubernetes module
// so the local test control plane needs neither Docker nor a release download.
// It does exactly what k8s.io/kubernetes/cmd/kube-apiserver/apiserver.go does.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version" // for version metric registration
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
