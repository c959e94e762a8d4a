{{/* The objects' name: the release name, or <release>-tierguard. */}}
{{- define "tierguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. app.kubernetes.io/name is deploy/base's selector. */}}
{{- define "tierguard.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "tierguard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
{{- end -}}

{{/* The service account as the API server names it in admission requests. */}}
{{- define "tierguard.serviceAccount" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "tierguard.fullname" . }}
{{- end -}}

{{/* The isolation policy: the values' one, with the chart's mode and its
     service account among those who may change memberships. */}}
{{- define "tierguard.isolationPolicy" -}}
{{- $policy := deepCopy .Values.isolationPolicy -}}
{{- $_ := set $policy.spec "mode" .Values.mode -}}
{{- $membership := default (dict) $policy.spec.membership -}}
{{- $sa := printf "%s/%s" .Release.Namespace (include "tierguard.fullname" .) -}}
{{- $accounts := default (list) $membership.serviceAccounts -}}
{{- if not (has $sa $accounts) -}}
{{- $accounts = append $accounts $sa -}}
{{- end -}}
{{- $_ := set $membership "serviceAccounts" $accounts -}}
{{- $_ := set $policy.spec "membership" $membership -}}
{{- toYaml $policy -}}
{{- end -}}

{{/* Namespaces never sent to the webhooks. */}}
{{- define "tierguard.excluded" -}}
{{- $excluded := concat .Values.excludedNamespaces (list .Release.Namespace) | uniq -}}
{{- toJson $excluded -}}
{{- end -}}

{{/* The tier namespaces named in the isolation policy (the pod guard's by-name selector). */}}
{{- define "tierguard.tierNamespaces" -}}
{{- $names := list -}}
{{- range .Values.isolationPolicy.spec.tiers -}}
{{- range .namespaces -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- toJson ($names | uniq) -}}
{{- end -}}

{{/* The serving certificate: generated once per release (reused from the
     Secret on upgrade) when certificates.source is selfSigned. Returns a
     dict with ca, crt, key (PEM). */}}
{{- define "tierguard.selfSigned" -}}
{{- $name := include "tierguard.fullname" . -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace .Values.certificates.secretName -}}
{{- if and $secret (index $secret.data "ca.crt") -}}
{{- dict "ca" (index $secret.data "ca.crt" | b64dec) "crt" (index $secret.data "tls.crt" | b64dec) "key" (index $secret.data "tls.key" | b64dec) | toJson -}}
{{- else -}}
{{- $dns := list (printf "%s.%s.svc" $name .Release.Namespace) (printf "%s.%s.svc.cluster.local" $name .Release.Namespace) -}}
{{- $days := int .Values.certificates.validityDays -}}
{{- $ca := genCAWithKey (printf "%s CA" $name) $days (genPrivateKey "ecdsa") -}}
{{- $cert := genSignedCertWithKey (printf "%s.%s.svc" $name .Release.Namespace) nil $dns $days $ca (genPrivateKey "ecdsa") -}}
{{- dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key | toJson -}}
{{- end -}}
{{- end -}}
