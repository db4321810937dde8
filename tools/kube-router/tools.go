//go:build tools

// Package tools pins kube-router, the NetworkPolicy enforcer the lab runs on every node with
// only its firewall on (--run-firewall --run-router=false --run-service-proxy=false).
// tools/kube-router/build builds its command from this module's go.mod and go.sum.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/pkg/cmd"
