// Command etcd is a thin wrapper that builds the real etcd server from its Go
// module, for tierguard's test control plane only. See ../README.md.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
