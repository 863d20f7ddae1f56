{{/* Names and labels. */}}
{{- define "ai-gateway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ai-gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ai-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ai-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of the gateway pods (component: gateway). */}}
{{- define "ai-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ai-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "ai-gateway.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ai-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{- define "ai-gateway.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "ai-gateway.fullname" .)) -}}
{{- end -}}

{{- define "ai-gateway.configMapName" -}}
{{- .Values.existingConfigMap | default (printf "%s-config" (include "ai-gateway.fullname" .)) -}}
{{- end -}}

{{- define "ai-gateway.redisName" -}}
{{- printf "%s-redis" (include "ai-gateway.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The Secret and key holding the Redis password (REDIS_PASSWORD of the gateway,
requirepass of the bundled Redis): redis.passwordSecret when given, else the
one the chart generates for the bundled Redis, else none (empty).
*/}}
{{- define "ai-gateway.redisPasswordSecretName" -}}
{{- if .Values.redis.passwordSecret.name -}}
{{- .Values.redis.passwordSecret.name -}}
{{- else if .Values.redis.bundled -}}
{{- printf "%s-redis-auth" (include "ai-gateway.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ai-gateway.redisPasswordSecretKey" -}}
{{- if .Values.redis.passwordSecret.name -}}
{{- required "redis.passwordSecret.key is required with redis.passwordSecret.name" .Values.redis.passwordSecret.key -}}
{{- else if .Values.redis.bundled -}}
password
{{- end -}}
{{- end -}}

{{/* The port of a URL: explicit, or the scheme's default (redis 6379, http 80, https 443). */}}
{{- define "ai-gateway.urlPort" -}}
{{- $hostport := regexReplaceAll "^[A-Za-z0-9+.-]+://([^/?#]*@)?([^/?#]*).*$" . "${2}" -}}
{{- if regexMatch ":[0-9]+$" $hostport -}}
{{- regexFind "[0-9]+$" $hostport -}}
{{- else if hasPrefix "https:" . -}}
443
{{- else if hasPrefix "http:" . -}}
80
{{- else -}}
6379
{{- end -}}
{{- end -}}

{{/* A random value for a generated secret: the one `key` of Secret `name` already holds (kept across upgrades), else `length` random letters and digits. */}}
{{- define "ai-gateway.keptRandom" -}}
{{- $old := lookup "v1" "Secret" .ns .name -}}
{{- if and $old $old.data (hasKey $old.data .key) -}}
{{- index $old.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum (int .length) -}}
{{- end -}}
{{- end -}}

{{/*
The gateway's config file: .Values.config with the keys the chart owns filled
in from the other values (listeners, shutdown, state.redis, telemetry.otlp).
*/}}
{{- define "ai-gateway.config" -}}
{{- $v := .Values -}}
{{- $cfg := deepCopy ($v.config | default dict) -}}
{{- $server := deepCopy ($cfg.server | default dict) -}}
{{- $_ := set $server "listen" "0.0.0.0:8080" -}}
{{- $_ = set $server "admin_listen" "0.0.0.0:8001" -}}
{{- $_ = set $server "shutdown_grace_s" (int $v.shutdown.graceSeconds) -}}
{{- $_ = set $server "shutdown_delay_ms" (int $v.shutdown.delayMs) -}}
{{- $_ = set $cfg "server" $server -}}
{{- $redis := dict "pool_size" (int $v.redis.poolSize) "timeout_ms" (int $v.redis.timeoutMs) "key_prefix" $v.redis.keyPrefix -}}
{{- if $v.redis.bundled -}}
{{- $_ = set $redis "url" (printf "redis://:${REDIS_PASSWORD}@%s:6379/0" (include "ai-gateway.redisName" .)) -}}
{{- else if and $v.redis.url $v.redis.clusterNodes -}}
{{- fail "redis: set either redis.url (standalone) or redis.clusterNodes (Redis Cluster), not both" -}}
{{- else if $v.redis.url -}}
{{- $_ = set $redis "url" $v.redis.url -}}
{{- else if $v.redis.clusterNodes -}}
{{- $_ = set $redis "cluster_nodes" $v.redis.clusterNodes -}}
{{- else -}}
{{- fail "redis: with redis.bundled false, set redis.url (standalone) or redis.clusterNodes (Redis Cluster)" -}}
{{- end -}}
{{- $state := deepCopy ($cfg.state | default dict) -}}
{{- $_ = set $state "backend" "redis" -}}
{{- $_ = set $state "redis" $redis -}}
{{- if not (hasKey $state "expected_replicas") -}}
{{- $_ = set $state "expected_replicas" (int (ternary $v.autoscaling.minReplicas $v.replicaCount $v.autoscaling.enabled)) -}}
{{- end -}}
{{- $_ = set $cfg "state" $state -}}
{{- if $v.otlp.endpoint -}}
{{- $otlp := dict "endpoint" "${OTLP_ENDPOINT}" "protocol" $v.otlp.protocol "traces" $v.otlp.traces "logs" $v.otlp.logs "metrics" $v.otlp.metrics "sampling_ratio" $v.otlp.samplingRatio -}}
{{- if $v.otlp.headers -}}
{{- $_ = set $otlp "headers" $v.otlp.headers -}}
{{- end -}}
{{- $telemetry := deepCopy ($cfg.telemetry | default dict) -}}
{{- $_ = set $telemetry "otlp" $otlp -}}
{{- $_ = set $cfg "telemetry" $telemetry -}}
{{- end -}}
{{- /* Helm reads values as YAML 1.1, where the key `on` of routes[].fallback is
       the boolean true: give the gateway its `on` back */ -}}
{{- range $r := ($cfg.routes | default list) -}}
{{- if and (kindIs "map" $r) (kindIs "map" $r.fallback) (hasKey $r.fallback "true") -}}
{{- $_ = set $r.fallback "on" (get $r.fallback "true") -}}
{{- $_ = unset $r.fallback "true" -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Fails the render when the shutdown budget does not fit the grace period. */}}
{{- define "ai-gateway.checkShutdown" -}}
{{- $s := .Values.shutdown -}}
{{- $need := add (int $s.preStopSleepSeconds) (int $s.graceSeconds) 20 -}}
{{- if le (int $s.terminationGracePeriodSeconds) (int $need) -}}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + graceSeconds + 20 s of exit work (%d): pods would be killed mid-drain" (int $s.terminationGracePeriodSeconds) (int $need)) -}}
{{- end -}}
{{- if ge (int $s.delayMs) (mul (int $s.graceSeconds) 1000) -}}
{{- fail "shutdown.delayMs must be shorter than shutdown.graceSeconds" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled .Values.podMonitor.enabled -}}
{{- fail "enable serviceMonitor or podMonitor, not both (every pod would be scraped twice)" -}}
{{- end -}}
{{- end -}}
