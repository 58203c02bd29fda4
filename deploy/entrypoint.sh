#!/usr/bin/env bash
# The roles of the fleetlearn image: head | worker | api | serve | ui | certs | <any command>.
#
#   head    Ray head (GCS; no CPUs by default, so work and replicas land on workers),
#           GCS state in Redis when RAY_REDIS_ADDRESS is set.
#   worker  waits for the head by itself (`fleetlearn cluster join`, retry with backoff),
#           then is `ray start --block` (same PID: docker stop reaches Ray directly).
#   api     `fleetlearn serve` (uvicorn) on 0.0.0.0:8000, its launcher running training
#           on the cluster; the container joins the cluster as a node with no CPUs, so
#           the drivers it launches have a raylet beside them (a Ray driver needs one).
#   serve   `fleetlearn serve --ray`: deploys the API's Ray Serve replicas on the workers
#           (a proxy on every node, port 8001); also a node with no CPUs.
#   ui      `fleetlearn ui` (Streamlit) on 0.0.0.0:8501, a thin client of the API at
#           $FLEETLEARN_URL (http://api:8000) with $FLEETLEARN_API_KEY, once that API
#           answers; not a Ray node.
#   certs   one-shot: the stack's Ray CA, certificates and token. `fleetlearn certs
#           ensure` on $FLEETLEARN_CA_DIR (init without a CA; rotate when the node
#           certificate ends within 30 days or misses an address of
#           $FLEETLEARN_SAN_NETWORK), then ca.crt, node.crt, node.key and the token
#           (made once, 0600) into $FLEETLEARN_RAY_SECRETS, which the Ray nodes mount
#           read-only; `certs rotate` renews the certificates now. Exits 0 when done.
# Settings come from the environment (docker-compose.yml sets them; docs/docker.md).
set -euo pipefail

role="${1:-api}"
[ $# -gt 0 ] && shift
FLEETLEARN_ROLE="$role"
export FLEETLEARN_ROLE
# For the HEALTHCHECK (a fresh `docker exec` that sees the image's environment only).
echo "$role" > /tmp/fleetlearn-role 2>/dev/null || true

node_ip() { hostname -i | awk '{print $1}'; }
head_address="${FLEETLEARN_CLUSTER_ADDRESS:-ray-head:6380}"
object_store="${RAY_OBJECT_STORE_BYTES:-300000000}"
# Ray's Prometheus metrics on every node (deploy/observability/prometheus.yml scrapes it).
metrics_port="${RAY_METRICS_EXPORT_PORT:-8080}"
redis_password_args=()
if [ -n "${RAY_REDIS_PASSWORD:-}" ]; then redis_password_args=(--redis-password "$RAY_REDIS_PASSWORD"); fi

need_key() {
  # Off loopback, fleetlearn serve requires API keys (and refuses to start without one).
  # Wait for the first key instead of crash-looping, saying what to do.
  local said=0
  until fleetlearn keys list --json 2>/dev/null | grep -q '"prefix"'; do
    if [ "$said" = 0 ]; then
      echo "fleetlearn: waiting for an API key in the registry: create one with" \
           "'docker compose exec api fleetlearn keys create --role admin'" >&2
      said=1
    fi
    sleep 5
  done
}

join_without_cpus() {
  # A node with no CPUs (nothing is scheduled on it), beside the API or Serve's driver.
  fleetlearn cluster join --address "$head_address" --node-ip-address "$(node_ip)" \
    --timeout "${FLEETLEARN_JOIN_TIMEOUT:-600}" -- --num-cpus 0 \
    --object-store-memory "${RAY_DRIVER_OBJECT_STORE_BYTES:-100000000}" \
    --metrics-export-port "$metrics_port" --temp-dir "$RAY_TMPDIR" &
}

wait_local_raylet() {
  local deadline=$(( $(date +%s) + ${FLEETLEARN_JOIN_TIMEOUT:-600} ))
  until compgen -G "$RAY_TMPDIR/session_latest/sockets/raylet*" >/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "fleetlearn: this node never joined $head_address" >&2; exit 1; }
    sleep 1
  done
}

case "$role" in
  head|worker|api|serve)
    # A container started again (docker start, a restart policy) starts its node clean:
    # its old processes are gone, their sockets are not, and Ray refuses a head whose
    # temp folder records a running cluster. The GCS state is in Redis, the logs in
    # `docker logs`.
    rm -rf "${RAY_TMPDIR:?}"/session_* "$RAY_TMPDIR/ray_current_cluster"
    ;;
esac

case "$role" in
  head)
    exec ray start --head --block --disable-usage-stats --port "${head_address##*:}" \
      --node-ip-address "$(node_ip)" --num-cpus "${RAY_NUM_CPUS:-0}" \
      --object-store-memory "$object_store" --include-dashboard false \
      --metrics-export-port "$metrics_port" --temp-dir "$RAY_TMPDIR" "${redis_password_args[@]}" "$@"
    ;;
  worker)
    # A small random delay: workers scaled up together do not all knock at once.
    sleep "$(awk -v s="$RANDOM" 'BEGIN{srand(s); printf "%.2f", rand()*2}')"
    exec fleetlearn cluster join --address "$head_address" --node-ip-address "$(node_ip)" \
      --timeout "${FLEETLEARN_JOIN_TIMEOUT:-600}" -- --num-cpus "${RAY_NUM_CPUS:-2}" \
      --object-store-memory "$object_store" --metrics-export-port "$metrics_port" \
      --temp-dir "$RAY_TMPDIR" "$@"
    ;;
  api)
    need_key
    join_without_cpus
    exec fleetlearn serve --host 0.0.0.0 --port "${FLEETLEARN_API_PORT:-8000}" "$@"
    ;;
  serve)
    need_key
    join_without_cpus
    wait_local_raylet
    exec fleetlearn serve --ray --address "$head_address" --host 0.0.0.0 \
      --port "${FLEETLEARN_SERVE_HTTP_PORT:-8001}" \
      --replicas "${FLEETLEARN_SERVE_REPLICAS:-2}" "$@"
    ;;
  ui)
    # The API answers only once it has a key (need_key above): wait for it here, saying
    # so once, instead of `fleetlearn ui` exiting on an unreachable server and
    # crash-looping (a compose "healthy" condition would stall `up` until the first key).
    api_url="${FLEETLEARN_URL:-http://api:8000}"
    said=0
    until curl -fsS -o /dev/null --max-time 5 "$api_url/healthz"; do
      if [ "$said" = 0 ]; then
        echo "fleetlearn: the GUI waits for the API at $api_url to answer" >&2
        said=1
      fi
      sleep 3
    done
    exec fleetlearn ui --api "$api_url" --host 0.0.0.0 --port "${FLEETLEARN_UI_PORT:-8501}" "$@"
    ;;
  certs)
    ca_dir="${FLEETLEARN_CA_DIR:-/var/lib/fleetlearn/ray-ca}"
    out="${FLEETLEARN_RAY_SECRETS:-/etc/fleetlearn/ray}"
    names=(--san-network "${FLEETLEARN_SAN_NETWORK:-172.30.42.0/24}")
    umask 077
    if [ "${1:-}" = rotate ]; then
      fleetlearn certs rotate "$ca_dir" "${names[@]}" >/dev/null
      echo "fleetlearn: renewed the certificates in $ca_dir (same CA)"
    else
      fleetlearn certs ensure "$ca_dir" "${names[@]}"
    fi
    # Each file replaced whole (a node starting meanwhile reads an old or a new one).
    for f in ca.crt node.crt node.key; do
      cp "$ca_dir/$f" "$out/.$f.new"
      case "$f" in *.key) chmod 0600 "$out/.$f.new" ;; *) chmod 0644 "$out/.$f.new" ;; esac
      mv -f "$out/.$f.new" "$out/$f"
    done
    python -c 'import sys; from fleetlearn.security import ensure_token; ensure_token(sys.argv[1])' \
      "$out/token"
    echo "fleetlearn: Ray TLS and token files ready in $out (ca.crt, node.crt, node.key, token)"
    exit 0
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
