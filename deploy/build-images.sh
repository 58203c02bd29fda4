#!/usr/bin/env bash
# Build the images of the compose stack: the base (deploy/base-image.sh; skipped when it
# exists), fleetlearn's (deploy/Dockerfile) and the services' (deploy/Dockerfile.services).
# Layers are cached by Docker: a second run takes seconds, a code change rebuilds only
# fleetlearn's own layer. One build at a time on a machine (a lock): the test suite and
# .ci/run's background build may both call it.
#
#   bash deploy/build-images.sh [--extra-ca DIR]
#
# --extra-ca DIR (or FLEETLEARN_EXTRA_CA_DIR): the build stages trust DIR/*.crt (a
#   TLS-intercepting proxy in front of PyPI); the runtime images never hold them.
# Tags: $FLEETLEARN_IMAGE (fleetlearn:dev), $FLEETLEARN_SERVICES_IMAGE
# (fleetlearn-services:dev), $FLEETLEARN_BASE_IMAGE (fleetlearn-base:bookworm).
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRA_CA="${FLEETLEARN_EXTRA_CA_DIR:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --extra-ca) [ $# -ge 2 ] || { echo "build-images.sh: --extra-ca needs a directory" >&2; exit 2; }
                EXTRA_CA="$2"; shift 2 ;;
    *) echo "build-images.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
BASE="${FLEETLEARN_BASE_IMAGE:-fleetlearn-base:bookworm}"
IMAGE="${FLEETLEARN_IMAGE:-fleetlearn:dev}"
SERVICES="${FLEETLEARN_SERVICES_IMAGE:-fleetlearn-services:dev}"
ca_pem=""
if [ -n "$EXTRA_CA" ]; then
  ls "$EXTRA_CA"/*.crt >/dev/null 2>&1 || { echo "build-images.sh: no *.crt in '$EXTRA_CA'" >&2; exit 2; }
  ca_pem="$(cat "$EXTRA_CA"/*.crt)"
fi

exec 9>/tmp/fleetlearn-build-images.lock
flock 9
t0=$(date +%s)
FLEETLEARN_BASE_IMAGE="$BASE" bash deploy/base-image.sh
t1=$(date +%s)
# The two builds at once: both mostly wait on the network (apt, PyPI) and the disk.
logs="$(mktemp -d /tmp/fleetlearn-build.XXXXXX)"
( docker build -q -f deploy/Dockerfile.services --build-arg BASE_IMAGE="$BASE" -t "$SERVICES" . \
    >"$logs/services.log" 2>&1; echo $? >"$logs/services.rc"; date +%s >"$logs/services.end" ) &
docker build -q -f deploy/Dockerfile --build-arg BASE_IMAGE="$BASE" \
  --build-arg EXTRA_CA_CERTS="$ca_pem" -t "$IMAGE" . >"$logs/fleetlearn.log" 2>&1 \
  || { tail -30 "$logs/fleetlearn.log" >&2; wait; echo "build-images.sh: $IMAGE failed" >&2; exit 1; }
t3=$(date +%s)
wait
if [ "$(cat "$logs/services.rc")" != 0 ]; then
  tail -30 "$logs/services.log" >&2; echo "build-images.sh: $SERVICES failed" >&2; exit 1
fi
t2=$(cat "$logs/services.end")
rm -rf "$logs"
size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }
echo "images (services and fleetlearn built at once): $BASE $((t1 - t0)) s, $SERVICES $((t2 - t1)) s ($(size "$SERVICES")), $IMAGE $((t3 - t1)) s ($(size "$IMAGE"))"
