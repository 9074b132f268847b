{{/* The chart's name, or nameOverride. */}}
{{- define "mcutie.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's resource name: fullnameOverride, else <release>-<name>, or
just <release> when it already holds the name. At most 52 characters:
the StatefulSet's pods get a controller-revision-hash label of
<name>-<hash> that must fit in 63.
*/}}
{{- define "mcutie.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mcutie.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "mcutie.labels" -}}
helm.sh/chart: {{ include "mcutie.chart" . }}
{{ include "mcutie.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that pick the broker's pod. */}}
{{- define "mcutie.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcutie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mcutie.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The headless Service: metrics, and the pods' DNS names. */}}
{{- define "mcutie.metricsServiceName" -}}
{{- printf "%s-metrics" (include "mcutie.fullname" .) }}
{{- end }}

{{- define "mcutie.usersSecretName" -}}
{{- printf "%s-users" (include "mcutie.fullname" .) }}
{{- end }}

{{/*
Whether the chart makes the users Secret: users were given, or no other
source of users was (then it holds one generated user).
*/}}
{{- define "mcutie.makeUsersSecret" -}}
{{- if or .Values.auth.users (not (or .Values.auth.existingSecret .Values.auth.passwordFileSecret .Values.auth.allowAnonymous)) }}true{{ end }}
{{- end }}

{{/*
The users Secret's data: auth.users, or one user mqtt whose password is
kept from the Secret already installed (lookup), else a new random one.
Made once per rendering (kept in .Values): the Secret and the pod's
checksum annotation must see the same random password.
*/}}
{{- define "mcutie.usersSecretData" -}}
{{- if not (hasKey .Values "_mcutieUsersSecretData") }}
{{- $_ := set .Values "_mcutieUsersSecretData" (include "mcutie.usersSecretData.make" .) }}
{{- end }}
{{- index .Values "_mcutieUsersSecretData" }}
{{- end }}

{{- define "mcutie.usersSecretData.make" -}}
{{- $users := .Values.auth.users }}
{{- if not $users }}
{{- $password := randAlphaNum 24 }}
{{- $old := lookup "v1" "Secret" .Release.Namespace (include "mcutie.usersSecretName" .) }}
{{- if and $old $old.data (hasKey $old.data "MCUTIE_USER_mqtt") }}
{{- $password = index $old.data "MCUTIE_USER_mqtt" | b64dec }}
{{- end }}
{{- $users = dict "mqtt" $password }}
{{- end }}
{{- range $user, $password := $users }}
MCUTIE_USER_{{ $user }}: {{ $password | toString | b64enc | quote }}
{{- end }}
{{- end }}
