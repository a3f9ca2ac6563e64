{{/* Name of the chart, or nameOverride. */}}
{{- define "l7lb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name when it already holds
the chart's name (release l7lb gives l7lb, as deploy/ names its objects).
*/}}
{{- define "l7lb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Selector labels: what the Deployment, PDB and Service select pods by. */}}
{{- define "l7lb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "l7lb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "l7lb.labels" -}}
{{ include "l7lb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "l7lb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "l7lb.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "l7lb.ingressClassName" -}}
{{- default (include "l7lb.fullname" .) .Values.ingressClass.name }}
{{- end }}

{{/* Labels of the metrics Service, which the ServiceMonitor selects. */}}
{{- define "l7lb.metricsLabels" -}}
{{ include "l7lb.selectorLabels" . }}
app.kubernetes.io/component: metrics
{{- end }}

{{- define "l7lb.leaseName" -}}
{{- default (printf "%s-controller" (include "l7lb.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The arguments of `l7lb controller`; each line is a flag the command accepts
(cmd/l7lb/controller.go). The first five are in deploy/deployment.yaml's order.
*/}}
{{- define "l7lb.args" -}}
- controller
{{- with .Values.classes }}
- --class={{ join "," . }}
{{- end }}
{{- if .Values.publish.addresses }}
- --publish-address={{ join "," .Values.publish.addresses }}
{{- else if .Values.publish.service }}
- --publish-service={{ .Values.publish.service }}
{{- else if .Values.service.create }}
- --publish-service={{ .Release.Namespace }}/{{ include "l7lb.fullname" . }}
{{- end }}
{{- range .Values.listeners }}
- --listen={{ .port }}=:{{ .containerPort }}
{{- end }}
- --drain-timeout={{ .Values.drainTimeout }}
- --shutdown-delay={{ .Values.shutdownDelay }}
{{- if .Values.leaderElection.enabled }}
- --lease={{ include "l7lb.leaseName" . }}
{{- else }}
- --lease=
{{- end }}
- --health-address=:{{ .Values.health.port }}
{{- with .Values.certificates.namespace }}
- --cert-namespace={{ . }}
{{- end }}
{{- if .Values.metrics.enabled }}
- --admin=:{{ .Values.metrics.port }}
{{- end }}
{{- with .Values.accessLog.destination }}
{{- if ne . "off" }}
- --access-log={{ . }}
{{- end }}
{{- end }}
{{- if ne (int .Values.accessLog.sample) 1 }}
- --access-log-sample={{ .Values.accessLog.sample }}
{{- end }}
{{- with .Values.logLevel }}
- --log-level={{ . }}
{{- end }}
{{- with .Values.logFormat }}
- --log-format={{ . }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}
