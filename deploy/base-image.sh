#!/usr/bin/env bash
# Build a Debian 12 (bookworm) base image from Debian's own packages, with no registry:
# debootstrap --variant=minbase, then `docker import`. For machines that cannot reach
# Docker Hub (air-gapped, or this project's CI). The image holds python3 (3.11),
# python3-venv, ca-certificates and curl; the apt lists are removed to keep it small.
#
#   bash deploy/base-image.sh [--tag NAME] [--mirror URL] [--extra-ca DIR] [--force]
#
# --extra-ca DIR (or FLEETLEARN_EXTRA_CA_DIR=DIR): also trust the *.crt files of DIR
#   inside the image (e.g. /usr/local/share/ca-certificates behind a TLS-intercepting
#   proxy). Off by default: nothing of this machine is baked in unless asked.
# Skips the build when the tag already exists (--force rebuilds). Needs root and docker.
set -euo pipefail

TAG="${FLEETLEARN_BASE_IMAGE:-fleetlearn-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
EXTRA_CA="${FLEETLEARN_EXTRA_CA_DIR:-}"
FORCE=0

die() { echo "base-image.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG="$2"; shift 2 ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a value"; MIRROR="$2"; shift 2 ;;
    --extra-ca) [ $# -ge 2 ] || die "--extra-ca needs a directory"; EXTRA_CA="$2"; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

if [ -n "$EXTRA_CA" ]; then
  [ -d "$EXTRA_CA" ] || die "--extra-ca: '$EXTRA_CA' is not a directory"
  ls "$EXTRA_CA"/*.crt >/dev/null 2>&1 || die "--extra-ca: no *.crt file in '$EXTRA_CA'"
fi
command -v docker >/dev/null || die "docker is not installed (apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (start dockerd)"
if [ "$FORCE" = 0 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG exists; skipping (--force rebuilds)"
  exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
[ "$(id -u)" = 0 ] || die "debootstrap needs root"

ROOT="$(mktemp -d /tmp/fleetlearn-base.XXXXXX)"
chmod 0755 "$ROOT"  # the image's / (mktemp makes it 0700: no user could read a library)
trap 'rm -rf "$ROOT"' EXIT
start=$(date +%s)
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,curl \
  bookworm "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || { tail -20 "$ROOT.log" >&2; die "debootstrap failed (log: $ROOT.log)"; }
rm -f "$ROOT.log"

if [ -n "$EXTRA_CA" ]; then
  cp "$EXTRA_CA"/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >/dev/null
fi
# The apt sources of the image: the same mirror, plus security updates.
cat >"$ROOT/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
# Lean: no apt lists, caches, docs or man pages (vfs copies every byte per layer).
printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
  >"$ROOT/etc/dpkg/dpkg.cfg.d/01-nodoc"
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
  >"$ROOT/etc/apt/apt.conf.d/01-norecommends"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
  "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/* "$ROOT"/tmp/*

tar -C "$ROOT" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  --message "fleetlearn base: debootstrap minbase bookworm + python3 venv ca-certificates curl" \
  - "$TAG" >/dev/null
echo "built base image $TAG in $(( $(date +%s) - start )) s ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
