// netpol-oracle decides NetworkPolicy connections with an implementation independent of
// hopwatch's: the policy engine of cyclonus (github.com/mattfenwick/cyclonus/pkg/matcher, the
// project kubernetes-sigs/network-policy-api continues as policy-assistant), after the API
// server's own defaulting (k8s.io/kubernetes/pkg/apis/networking/v1), which cyclonus leaves
// to the API server.
//
// Reads a JSON array of worlds from stdin, each {"policies": [NetworkPolicy...],
// "connections": [...]}, and prints one JSON array per world, one [egress, ingress] pair of
// booleans per connection: whether the source's egress and the destination's ingress allow it.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	defaults "k8s.io/kubernetes/pkg/apis/networking/v1"
)

type pod struct {
	Namespace       string            `json:"namespace"`
	NamespaceLabels map[string]string `json:"namespace_labels"`
	Labels          map[string]string `json:"labels"`
}

type peer struct {
	Pod *pod   `json:"pod"`
	IP  string `json:"ip"`
}

type connection struct {
	Source      peer   `json:"source"`
	Destination peer   `json:"destination"`
	Port        int    `json:"port"`
	PortName    string `json:"port_name"`
	Protocol    string `json:"protocol"`
}

type world struct {
	Policies    []networkingv1.NetworkPolicy `json:"policies"`
	Connections []connection                 `json:"connections"`
}

func trafficPeer(p peer) *matcher.TrafficPeer {
	out := &matcher.TrafficPeer{IP: p.IP}
	if p.Pod != nil {
		out.Internal = &matcher.InternalPeer{
			PodLabels:       p.Pod.Labels,
			NamespaceLabels: p.Pod.NamespaceLabels,
			Namespace:       p.Pod.Namespace,
		}
	}
	return out
}

func decide(w world) [][2]bool {
	policies := make([]*networkingv1.NetworkPolicy, len(w.Policies))
	for i := range w.Policies {
		defaults.SetObjectDefaults_NetworkPolicy(&w.Policies[i])
		policies[i] = &w.Policies[i]
	}
	engine := matcher.BuildNetworkPolicies(false, policies)
	out := make([][2]bool, 0, len(w.Connections))
	for _, c := range w.Connections {
		result := engine.IsTrafficAllowed(&matcher.Traffic{
			Source:           trafficPeer(c.Source),
			Destination:      trafficPeer(c.Destination),
			ResolvedPort:     c.Port,
			ResolvedPortName: c.PortName,
			Protocol:         corev1.Protocol(c.Protocol),
		})
		out = append(out, [2]bool{result.Egress.IsAllowed(), result.Ingress.IsAllowed()})
	}
	return out
}

func main() {
	var worlds []world
	if err := json.NewDecoder(os.Stdin).Decode(&worlds); err != nil {
		fmt.Fprintf(os.Stderr, "netpol-oracle: cannot read the cases: %v\n", err)
		os.Exit(2)
	}
	verdicts := make([][][2]bool, 0, len(worlds))
	for _, w := range worlds {
		verdicts = append(verdicts, decide(w))
	}
	if err := json.NewEncoder(os.Stdout).Encode(verdicts); err != nil {
		fmt.Fprintf(os.Stderr, "netpol-oracle: %v\n", err)
		os.Exit(1)
	}
}
