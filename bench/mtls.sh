#!/usr/bin/env bash
# The mTLS hop benchmark (issue 13): client sidecar → (Istio mTLS) → server sidecar → nginx,
# two lateen-proxies against two Envoy 1.40s with the same certificates (a private CA,
# SPIFFE identities, Istio's file-mounted names) and Istio's wire settings (SNI
# outbound_.PORT_._.HOST, ALPN istio-http/1.1, the server's URI SAN checked, TLS 1.3 with
# X25519MLKEM768). Both sidecars of a pair run on CPU 0 with one worker each; nginx and the
# load generators on CPU 1. CPU and peak RSS are the sums of the two sidecars.
#   throughput, CPU per request, p50/p99 at $RATE req/s, peak RSS: bench/lib.sh's `measure`
#   (the upstream hop is pooled, as between real sidecars);
#   new handshakes per second at the server sidecar: `openssl s_time -new` with the client's
#   certificate for $SECONDS_PER_RUN.
# Usage: bash bench/mtls.sh   (BIN_DIR=DIR to use built binaries; writes
# bench/results/mtls.jsonl and prints a table)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
RATE="${RATE:-5000}"
source bench/lib.sh
proxy_bench_binaries
WORK=$(mktemp -d)
trap 'cleanup; rm -rf "$WORK"' EXIT

require_free 127.0.0.1:18081 127.0.0.1:18180 127.0.0.1:18181 127.0.0.1:18182 127.0.0.1:18183 \
  127.0.0.1:19200 127.0.0.1:19201 127.0.0.1:19202 127.0.0.1:19210 127.0.0.1:19211 127.0.0.1:19212 \
  127.0.0.1:19300 127.0.0.1:19301

# Certificates: a P-256 CA, and per workload a leaf with its SPIFFE URI SAN for client and
# server auth, as Istio's CA issues them.
HOST=upstream.default.svc.cluster.local
CLIENT_ID=spiffe://cluster.local/ns/default/sa/bench-client
SERVER_ID=spiffe://cluster.local/ns/default/sa/upstream
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /O=bench-mesh \
  -keyout "$WORK/ca-key.pem" -out "$WORK/root-cert.pem" 2>/dev/null
issue() { # issue NAME SPIFFE_ID
  mkdir -p "$WORK/$1"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj / \
    -keyout "$WORK/$1/key.pem" -out "$WORK/$1/csr.pem" 2>/dev/null
  openssl x509 -req -in "$WORK/$1/csr.pem" -CA "$WORK/root-cert.pem" -CAkey "$WORK/ca-key.pem" \
    -CAcreateserial -days 1 -out "$WORK/$1/cert-chain.pem" \
    -extfile <(printf 'subjectAltName=critical,URI:%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' "$2") 2>/dev/null
  cp "$WORK/root-cert.pem" "$WORK/$1/root-cert.pem"
}
issue client "$CLIENT_ID"
issue server "$SERVER_ID"

cat >"$WORK/lateen-client.yaml" <<YAML
node: { workload: bench-client, namespace: default, app: bench-client, version: v1 }
admin: { address: 127.0.0.1:19200, health_address: 127.0.0.1:19201, metrics_address: 127.0.0.1:19202 }
listeners:
  - { name: outbound, address: 127.0.0.1:18180, protocol: http, route_config: bench }
route_configs:
  - name: bench
    virtual_hosts:
      - { name: upstream, domains: ["*"], routes: [{ match: { path: { prefix: / } }, route: { cluster: "outbound|80||$HOST" } }] }
clusters:
  - name: "outbound|80||$HOST"
    protocol: http1
    endpoints: [{ address: 127.0.0.1:18181 }]
    tls: { sni: "outbound_.80_._.$HOST", subject_alt_names: ["$SERVER_ID"] }
    destination: { service: $HOST, workload: upstream, namespace: default, version: v1 }
YAML
cat >"$WORK/lateen-server.yaml" <<YAML
node: { workload: upstream, namespace: default, app: upstream, version: v1 }
admin: { address: 127.0.0.1:19210, health_address: 127.0.0.1:19211, metrics_address: 127.0.0.1:19212 }
listeners:
  - { name: inbound, address: 127.0.0.1:18181, direction: inbound, mtls: strict, protocol: http, route_config: inbound }
route_configs:
  - name: inbound
    virtual_hosts:
      - { name: app, domains: ["*"], routes: [{ match: { path: { prefix: / } }, route: { cluster: "inbound|80||" } }] }
clusters:
  - name: "inbound|80||"
    protocol: http1
    endpoints: [{ address: 127.0.0.1:18081 }]
    destination: { service: $HOST }
YAML
# envoy_sidecar ADMIN LISTEN TARGET DIR MODE: MODE client (TLS origination to TARGET) or
# server (mTLS termination, to TARGET in plaintext).
envoy_sidecar() {
  local admin=$1 listen=$2 target=$3 dir=$4 mode=$5 certs
  certs="tls_certificates: [{ certificate_chain: { filename: $dir/cert-chain.pem }, private_key: { filename: $dir/key.pem } }]"
  local downstream="" upstream=""
  if [ "$mode" = server ]; then
    downstream="transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: true
              common_tls_context:
                alpn_protocols: [h2, http/1.1]
                $certs
                validation_context: { trusted_ca: { filename: $dir/root-cert.pem } }"
  else
    upstream="transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: outbound_.80_._.$HOST
          common_tls_context:
            tls_params: { tls_maximum_protocol_version: TLSv1_3 }
            alpn_protocols: [istio-http/1.1, istio]
            $certs
            validation_context:
              trusted_ca: { filename: $dir/root-cert.pem }
              match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: \"$SERVER_ID\" } }]"
  fi
  cat <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $admin } } }
static_resources:
  listeners:
    - name: sidecar
      address: { socket_address: { address: 127.0.0.1, port_value: $listen } }
      filter_chains:
        - $downstream
          filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: bench
                route_config:
                  virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: next } }] }]
                http_filters:
                  - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
    - name: next
      type: STATIC
      connect_timeout: 10s
      load_assignment:
        cluster_name: next
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $target } } } }] }]
      $upstream
YAML
}
envoy_sidecar 19300 18182 18183 "$WORK/client" client >"$WORK/envoy-client.yaml"
envoy_sidecar 19301 18183 18081 "$WORK/server" server >"$WORK/envoy-server.yaml"

taskset -c 1 nginx -c "$PWD/bench/nginx.conf" -p /tmp & pids+=($!)
taskset -c 0 "$BIN_DIR/lateen-proxy" --config "$WORK/lateen-server.yaml" --cert-dir "$WORK/server" --concurrency 1 --log-level warn & pids+=($!); L_SERVER=$!
taskset -c 0 "$BIN_DIR/lateen-proxy" --config "$WORK/lateen-client.yaml" --cert-dir "$WORK/client" --concurrency 1 --log-level warn & pids+=($!); L_CLIENT=$!
taskset -c 0 "$ENVOY" -c "$WORK/envoy-server.yaml" --concurrency 1 --log-level warn --base-id 73 & pids+=($!); E_SERVER=$!
taskset -c 0 "$ENVOY" -c "$WORK/envoy-client.yaml" --concurrency 1 --log-level warn --base-id 74 & pids+=($!); E_CLIENT=$!
wait_port 18081; wait_port 18180; wait_port 18181; wait_port 18182; wait_port 18183

# handshakes NAME PORT PID: new mTLS handshakes per second the server sidecar completes.
handshakes() {
  local out per_s before after
  before=$(cpu_ticks "$3")
  out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$2" -new -time "$SECONDS_PER_RUN" \
    -cert "$WORK/client/cert-chain.pem" -key "$WORK/client/key.pem" -CAfile "$WORK/root-cert.pem" 2>&1 || true)
  after=$(cpu_ticks "$3")
  per_s=$(awk '/connections in [0-9.]+ real seconds/ {print $1 / $4; exit}' <<<"$out")
  printf '{"target":"%s-handshakes","handshakes_per_s":%s,"server_cpu_ms":%s}\n' "$1" "${per_s:-null}" \
    "$(awk -v t="$((after - before))" -v hz="$TICKS" 'BEGIN { printf "%.0f", t / hz * 1000 }')"
}

{
  measure lateen http://127.0.0.1:18180/ http://127.0.0.1:18180/ "$L_CLIENT $L_SERVER"
  measure envoy http://127.0.0.1:18182/ http://127.0.0.1:18182/ "$E_CLIENT $E_SERVER"
} | tee bench/results/mtls.jsonl
{
  handshakes lateen 18181 "$L_SERVER"
  handshakes envoy 18183 "$E_SERVER"
} | tee bench/results/mtls-handshakes.jsonl

summarize bench/results/mtls.jsonl
