{{/*
Names are fixed, as in manifests/: credgate's flags, its RBAC, the ValidatingAdmissionPolicy and
the docs name the service account credgate, the Service credgate, the Secret
credgate-serving-cert and the webhook configurations credgate, whatever the release is called.
*/}}

{{/*
credgate.namespace: the namespace of credgate serve, the release's. It must be credgate's own:
with self-managed certificates its service account reads every Secret there, and the webhooks
are never called for it.
*/}}
{{- define "credgate.namespace" -}}
{{- $ns := .Release.Namespace -}}
{{- if or (eq $ns "default") (hasPrefix "kube-" $ns) -}}
{{- fail (printf "credgate needs a namespace of its own, not %q (its service account may read the Secrets there, and the webhooks skip it): helm install --namespace credgate-system --create-namespace" $ns) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/* credgate.refresherNamespace: the refresher's namespace, where the source Secrets live. */}}
{{- define "credgate.refresherNamespace" -}}
{{- $ns := required "refresher.namespace is required" .Values.refresher.namespace -}}
{{- if or (has $ns (list "default" "kube-public" "kube-node-lease")) (hasPrefix "kube-" $ns) -}}
{{- fail (printf "refresher.namespace must be a namespace of the refresher's own, not %q: the source Secrets live there, and the webhooks skip it" $ns) -}}
{{- end -}}
{{- if eq $ns .Release.Namespace -}}
{{- fail (printf "refresher.namespace must differ from the release namespace %q: only the refresher may read the source Secrets of its namespace" $ns) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/*
credgate.labels: the chart's bookkeeping labels, on every object the templates render (not on
pod templates, so that a chart upgrade alone restarts nothing). charts/chart_test.go removes
exactly these before comparing with the kustomize install.
*/}}
{{- define "credgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* credgate.image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "credgate.image" -}}
{{- with .Values.image -}}
{{- if .digest -}}
{{ .repository }}@{{ .digest }}
{{- else -}}
{{ .repository }}:{{ .tag | default $.Chart.AppVersion }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
credgate.serveArgs: the arguments of credgate serve. The first ones are those of
manifests/base/deployment.yaml, in its order, then --cert-management=self as the self-managed
overlay appends it; what the values add comes after.
*/}}
{{- define "credgate.serveArgs" -}}
{{- $ns := include "credgate.namespace" . -}}
- serve
- --cert-dir=/var/run/secrets/credgate/serving-certs
- --policy-dir=/etc/credgate/policies
{{- with .Values.audit }}
{{- if .file.enabled }}
- --audit-file=/var/log/credgate/audit.log
{{- end }}
{{- if .stdout }}
- --audit-stdout
{{- end }}
{{- end }}
{{- if eq .Values.certificates.mode "self" }}
- --cert-management=self
{{- /*
credgate's defaults name the Secret and the certificate's DNS names in credgate-system
(certs.ServiceDNSNames); in another namespace they must be given.
*/}}
{{- if ne $ns "credgate-system" }}
- --cert-secret={{ $ns }}/credgate-serving-cert
- --cert-dns-name=credgate.{{ $ns }}.svc,credgate.{{ $ns }}.svc.cluster.local,credgate.{{ $ns }},credgate
{{- end }}
{{- end }}
{{- with .Values.audit }}
{{- if and .file.enabled .file.maxSizeMiB }}
- --audit-max-size={{ .file.maxSizeMiB | int }}
{{- end }}
{{- if and .file.enabled .file.maxBackups }}
- --audit-max-backups={{ .file.maxBackups | int }}
{{- end }}
{{- if .allowed }}
- --audit-allowed
{{- end }}
{{- with .onError }}
- --audit-on-error={{ . }}
{{- end }}
{{- end }}
{{- range $rule, $action := .Values.enforcement }}
- --enforce={{ $rule }}={{ $action }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
credgate.excludedNamespaces: the namespaces the webhooks are never called for: credgate's own,
then webhook.excludedNamespaces.
*/}}
{{- define "credgate.excludedNamespaces" -}}
{{- $ns := list (include "credgate.namespace" .) -}}
{{- if .Values.refresher.enabled -}}
{{- $ns = append $ns (include "credgate.refresherNamespace" .) -}}
{{- end -}}
{{- concat $ns .Values.webhook.excludedNamespaces | uniq | toJson -}}
{{- end -}}

{{/*
credgate.webhookClientConfig: how the API server reaches a webhook: credgate's Service, at the
path given. Called with (list $ path).
*/}}
{{- define "credgate.webhookClientConfig" -}}
{{- $root := index . 0 -}}
admissionReviewVersions: [v1]
clientConfig:
  service:
    name: credgate
    namespace: {{ include "credgate.namespace" $root }}
    path: {{ index . 1 }}
    port: 443
{{- end -}}

{{/* credgate.webhookPolicy: the namespaces skipped and how a webhook fails, for every webhook. */}}
{{- define "credgate.webhookPolicy" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "credgate.excludedNamespaces" . }}
failurePolicy: Fail
sideEffects: None
timeoutSeconds: 5
{{- end -}}
