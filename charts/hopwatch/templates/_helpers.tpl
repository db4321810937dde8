{{/*
The namespace of every namespaced object: namespace.name, or the release namespace.
*/}}
{{- define "hopwatch.namespace" -}}
{{- .Values.namespace.name | default .Release.Namespace -}}
{{- end -}}

{{/*
An object's labels: its own (the dict), then app.kubernetes.io/part-of, then commonLabels,
earlier ones winning. Called as (list $ (dict ...)).
*/}}
{{- define "hopwatch.labels" -}}
{{- $root := index . 0 -}}
{{- $labels := deepCopy (index . 1) -}}
{{- $labels = merge $labels (dict "app.kubernetes.io/part-of" "hopwatch") (deepCopy $root.Values.commonLabels) -}}
{{- toYaml $labels -}}
{{- end -}}

{{/* The agents' own labels: their pods', and their selector. */}}
{{- define "hopwatch.agentLabels" -}}
app.kubernetes.io/name: hopwatch
app.kubernetes.io/component: agent
{{- end -}}

{{/* The agent's configuration as text: the `config` value, a string or a mapping. */}}
{{- define "hopwatch.config" -}}
{{- if kindIs "string" .Values.config -}}
{{- .Values.config -}}
{{- else if kindIs "map" .Values.config -}}
{{- toYaml .Values.config -}}
{{- else -}}
{{- fail "config: must be the agent's configuration file as a string (--set-file config=FILE) or a YAML mapping" -}}
{{- end -}}
{{- end -}}

{{/* The canary Service as the config names it. */}}
{{- define "hopwatch.canaryService" -}}
{{- include "hopwatch.namespace" . -}}/hopwatch-canary
{{- end -}}

{{/*
Refuses values that would install something broken, each with what to change.
*/}}
{{- define "hopwatch.validate" -}}
{{- $config := include "hopwatch.config" . -}}
{{- $canary := include "hopwatch.canaryService" . -}}
{{- if not (trim $config) -}}
{{- fail "config: empty; the agent needs its configuration (the default is deploy/hopwatch.yaml)" -}}
{{- end -}}
{{- if and .Values.namespace.create (eq (include "hopwatch.namespace" .) .Release.Namespace) -}}
{{- fail (printf "namespace.create: the chart cannot create the release namespace %q (Helm stores the release there before it creates anything): install the release into another namespace (e.g. -n default), or create %q yourself and set namespace.create=false" .Release.Namespace .Release.Namespace) -}}
{{- end -}}
{{- $parsed := fromYaml $config -}}
{{- if hasKey $parsed "Error" -}}
{{- fail (printf "config: not a YAML mapping: %s" (get $parsed "Error")) -}}
{{- end -}}
{{- $service := dig "canary" "service" "" $parsed -}}
{{- $always := dig "kubernetes" "services" "always" list $parsed -}}
{{- if and .Values.canary.enabled (or (ne $service $canary) (not (has $canary $always))) -}}
{{- fail (printf "canary.enabled: the config must name the canary Service %s as canary.service and in kubernetes.services.always (it has %q and %v): add it, or set canary.enabled=false" $canary $service $always) -}}
{{- end -}}
{{- if and (not .Values.canary.enabled) (or (eq $service $canary) (has $canary $always)) -}}
{{- fail (printf "canary.enabled is false, yet the config names the canary Service %s: remove canary.service and %s from kubernetes.services.always, or every cause would be `unknown`" $canary $canary) -}}
{{- end -}}
{{- if and .Values.canary.ingress.enabled (not .Values.canary.enabled) -}}
{{- fail "canary.ingress.enabled needs canary.enabled: the Ingress routes to the canary Service" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled .Values.podMonitor.enabled -}}
{{- fail "serviceMonitor.enabled and podMonitor.enabled: choose one; both would scrape every agent twice" -}}
{{- end -}}
{{- if and .Values.priorityClass.create (not .Values.priorityClass.name) -}}
{{- fail "priorityClass.create needs priorityClass.name" -}}
{{- end -}}
{{- end -}}
