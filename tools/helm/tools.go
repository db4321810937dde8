//go:build tools

// Package tools pins helm v4, which the chart tests run (helm lint, helm template). The imports
// are those of helm's own main package (cmd/helm), so that go.sum covers everything it builds.
// tools/helm/build builds that command from this module's go.mod and go.sum.
package tools

import (
	_ "helm.sh/helm/v4/pkg/cmd"
	_ "helm.sh/helm/v4/pkg/kube"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)
