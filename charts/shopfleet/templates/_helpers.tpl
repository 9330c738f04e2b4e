{{/*
The chart name, or nameOverride.
*/}}
{{- define "shopfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of namespaced objects: fullnameOverride, else the release name
(followed by the chart name unless it already contains it). 63 characters at
most, as label values and Service names allow.
*/}}
{{- define "shopfleet.fullname" -}}
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

{{/*
The name of cluster-scoped objects (ClusterRole, ClusterRoleBinding,
ValidatingAdmissionPolicy and its binding): the full name and the release
namespace, so that two releases of the same name in two namespaces do not
collide.
*/}}
{{- define "shopfleet.clusterName" -}}
{{- printf "%s-%s" (include "shopfleet.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" }}
{{- end }}

{{/*
chart label value: name-version.
*/}}
{{- define "shopfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels of every object.
*/}}
{{- define "shopfleet.labels" -}}
helm.sh/chart: {{ include "shopfleet.chart" . }}
{{ include "shopfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shopfleet
{{- end }}

{{/*
Selector labels of the operator pods.
*/}}
{{- define "shopfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shopfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The operator's ServiceAccount name.
*/}}
{{- define "shopfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shopfleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository, then @digest or :tag (default appVersion).
*/}}
{{- define "shopfleet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The rules of the operator in the namespaces it watches: ShopRegions, their
children, Events and the Redis AUTH Secrets. Used by the ClusterRole (every
namespace) or by one Role per watched namespace; docs/install.md explains
each rule. Never a wildcard.
*/}}
{{- define "shopfleet.operatorRules" -}}
# ShopRegions: read and watch; patch adds and removes the finalizer
# shopfleet.io/cleanup (the spec guard denies any spec change).
- apiGroups: ["shopfleet.io"]
  resources: ["shopregions"]
  verbs: ["list", "watch", "patch"]
# The single status write (server-side apply on /status).
- apiGroups: ["shopfleet.io"]
  resources: ["shopregions/status"]
  verbs: ["patch"]
# Children carry blockOwnerDeletion owner references to their ShopRegion: the
# OwnerReferencesPermissionEnforcement admission plugin requires update on
# the owner's finalizers subresource.
- apiGroups: ["shopfleet.io"]
  resources: ["shopregions/finalizers"]
  verbs: ["update"]
# The five children, applied server-side (an apply that creates is
# authorized as create and patch) and read from the operator's watch caches
# only (no get).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch"]
# The PodDisruptionBudget is deleted when the region no longer wants one.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Events on ShopRegions (events.k8s.io/v1; a repeated Event is patched).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The Redis AUTH token named by cache.authSecretRef and the shop's database
# master Secret (<shop>-database-master): get only, never list or watch.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
  {{- with concat .Values.rbac.cacheAuthSecretNames .Values.rbac.databaseMasterSecretNames }}
  resourceNames:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# The database master Secret is created once per shop, before its primary
# cluster (create cannot be narrowed by resourceNames).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
{{- end }}
