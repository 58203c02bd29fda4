#!/usr/bin/env bash
# Docker HEALTHCHECK of the fleetlearn image, by role; cheap (no Python, no Ray import):
# it runs every 10 s in every container of a 2-core machine.
set -u
role="$(cat /tmp/fleetlearn-role 2>/dev/null || echo "${FLEETLEARN_ROLE:-api}")"
case "$role" in
  head)   # the GCS accepts connections
    port="${FLEETLEARN_CLUSTER_ADDRESS:-ray-head:6380}"
    (exec 3<>"/dev/tcp/$(hostname -i | awk '{print $1}')/${port##*:}") 2>/dev/null ;;
  worker) # this node's raylet runs
    grep -qx raylet /proc/[0-9]*/comm 2>/dev/null ;;
  api)    curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:${FLEETLEARN_API_PORT:-8000}/healthz" ;;
  serve)  # the deployer is up (the replicas answer on every node's proxy)
    grep -qa -- '--ray' /proc/[0-9]*/cmdline 2>/dev/null ;;
  ui)     curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:${FLEETLEARN_UI_PORT:-8501}/_stcore/health" ;;
  *)      true ;;
esac
