{{/* The release's full name: the release name when it already names the chart. */}}
{{- define "airbyte-watch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "airbyte-watch.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "airbyte-watch.labels" -}}
{{ include "airbyte-watch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "airbyte-watch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "airbyte-watch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The webhook's Service, and the Secret holding its serving certificate. */}}
{{- define "airbyte-watch.webhookService" -}}
{{- printf "%s-webhook" (include "airbyte-watch.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "airbyte-watch.webhookCertSecret" -}}
{{- printf "%s-webhook-cert" (include "airbyte-watch.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "true" when watchNamespaces holds a pattern (glob, exclusion, list) rather than only names. */}}
{{- define "airbyte-watch.hasGlob" -}}
{{- range .Values.watchNamespaces }}{{ if regexMatch "[*?\\[\\]!,]" . }}true{{ end }}{{ end }}
{{- end -}}

{{/* The operator's arguments, shared by the Deployment and the StatefulSet. */}}
{{- define "airbyte-watch.args" -}}
- run
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --log-format={{ .Values.logFormat }}
- --metrics-port={{ .Values.metrics.port }}
{{- if ne .Values.defaultServerSecret "airbyte-default" }}
- --default-server-secret={{ .Values.defaultServerSecret }}
{{- end }}
{{- if ne (toString .Values.maxRequestsPerSecond) "100" }}
- --max-requests-per-second={{ .Values.maxRequestsPerSecond }}
{{- end }}
{{- if ne (int .Values.concurrency) 64 }}
- --concurrency={{ .Values.concurrency }}
{{- end }}
{{- if ne (toString .Values.requestTimeout) "15" }}
- --request-timeout={{ .Values.requestTimeout }}
{{- end }}
{{- range .Values.allowedUrls }}
- --allowed-url={{ . }}
{{- end }}
{{- if ne .Values.pollMode "list" }}
- --poll-mode={{ .Values.pollMode }}
{{- end }}
{{- if .Values.sharding.enabled }}
- --shard-count={{ .Values.sharding.shards }}
{{- end }}
{{- with .Values.leaderElection }}
{{- if .enabled }}
- --leader-elect
{{- if ne (int .leaseDuration) 15 }}
- --lease-duration={{ .leaseDuration }}
{{- end }}
{{- if ne (toString .renewDeadline) "10" }}
- --renew-deadline={{ .renewDeadline }}
{{- end }}
{{- if ne (toString .retryPeriod) "2" }}
- --retry-period={{ .retryPeriod }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.webhook.enabled }}
- --webhook-port={{ .Values.webhook.port }}
- --webhook-addr=0.0.0.0
- --webhook-cert=/etc/airbyte-watch/webhook/tls.crt
- --webhook-key=/etc/airbyte-watch/webhook/tls.key
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The pod template, shared by the Deployment and the StatefulSet. */}}
{{- define "airbyte-watch.podTemplate" -}}
metadata:
  labels:
    {{- include "airbyte-watch.selectorLabels" . | nindent 4 }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "airbyte-watch.serviceAccountName" . }}
  automountServiceAccountToken: true
  affinity:
    {{- if .Values.affinity }}
    {{- toYaml .Values.affinity | nindent 4 }}
    {{- else }}
    # Replicas on different nodes where possible, so one lost node loses one.
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                app.kubernetes.io/name: {{ .Chart.Name }}
    {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: operator
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        {{- include "airbyte-watch.args" . | nindent 8 }}
      {{- if .Values.leaderElection.enabled }}
      env:
        # The Lease lives in the operator's own namespace; the pod name starts its identity.
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
      {{- end }}
      ports:
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
        {{- if .Values.webhook.enabled }}
        - name: webhook
          containerPort: {{ .Values.webhook.port }}
        {{- end }}
      {{- if .Values.webhook.enabled }}
      volumeMounts:
        - name: webhook-cert
          mountPath: /etc/airbyte-watch/webhook
          readOnly: true
      {{- end }}
      # Live while the operator's loops run; ready once every existing watch is listed (or
      # at once as a standby: /readyz says which replica leads).
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        periodSeconds: 20
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        periodSeconds: 5
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
  {{- if .Values.webhook.enabled }}
  volumes:
    # The webhook's serving certificate (tls.crt, tls.key): the chart's own, or cert-manager's.
    - name: webhook-cert
      secret:
        secretName: {{ include "airbyte-watch.webhookCertSecret" . }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
