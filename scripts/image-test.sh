#!/usr/bin/env bash
# `make image-test`: builds the Dockerfile's runtime stage from the dist/ that `make build` left,
# runs the real image as its own USER with no capabilities and a read-only root filesystem, and
# tests it (Tests/image). No Docker engine is needed: buildah builds, podman runs with runc.
#
# No registry image can be pulled here, so the base is a Debian 12 root filesystem made with
# `debootstrap --variant=minbase bookworm`, trimmed the way debian:bookworm-slim is, and imported
# as localhost/prism-test-base:bookworm (cached in .build/image-test/, ~40 s the first time).
# The Dockerfile is used as it is: --build-arg RUNTIME_IMAGE names that base and DIST an image
# holding dist/ at /src/dist, in place of the Swift build stage.
#
# Needs root (rootful podman; debootstrap). Environment: PRISM_IMAGE (tag, default
# localhost/prism:test), DEBIAN_MIRROR (default: the first mirror apt uses here).
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) == 0 ]] || { echo "image-test: run as root (rootful podman and debootstrap)" >&2; exit 1; }
[[ -x dist/prism-gateway ]] || { echo "image-test: dist/ is missing: run 'make build' first" >&2; exit 1; }
scripts/install.sh --image-tools

image=${PRISM_IMAGE:-localhost/prism:test}
base=localhost/prism-test-base:bookworm
dist_image=localhost/prism-test-dist:latest
cache=.build/image-test
mkdir -p "$cache"

# Rootless-style defaults do not hold on this machine: pin the runtime and cgroup manager.
podman=(podman --runtime runc --cgroup-manager=cgroupfs)

mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
    mirror=$(grep -rhoE '^(deb|URIs:) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | head -1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
fi

if [[ ! -s $cache/bookworm-slim.tar ]]; then
    echo "image-test: debootstrap bookworm (minbase) from $mirror"
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log"; exit 1; }
    # What debian:bookworm-slim leaves out: docs, man pages, locales (and keeps out of later installs).
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/archives/*.deb \
           "$root"/var/lib/apt/lists/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
    tar -C "$root" -cf "$cache/bookworm-slim.tar.partial" .
    mv "$cache/bookworm-slim.tar.partial" "$cache/bookworm-slim.tar"
    rm -rf "$root"
    trap - EXIT
    "${podman[@]}" rmi -f "$base" >/dev/null 2>&1 || true
fi
if ! "${podman[@]}" image exists "$base"; then
    "${podman[@]}" import "$cache/bookworm-slim.tar" "$base" >/dev/null
fi

# dist/ as an image, standing in for the Dockerfile's Swift build stage.
container=$(buildah from scratch)
buildah copy --quiet "$container" dist /src/dist >/dev/null
buildah commit --quiet --rm "$container" "$dist_image" >/dev/null

echo "image-test: building the runtime stage as $image"
started=$(date +%s)
buildah bud --isolation chroot --format docker --layers=false --target runtime \
    --build-arg DIST="$dist_image" --build-arg RUNTIME_IMAGE="$base" \
    -t "$image" . >"$cache/build.log" 2>&1 || { tail -40 "$cache/build.log"; exit 1; }
echo "image-test: built in $(( $(date +%s) - started )) s; $("${podman[@]}" image inspect "$image" --format '{{.Size}}' \
    | awk '{printf "%.1f MB", $1 / 1e6}') (base $("${podman[@]}" image inspect "$base" --format '{{.Size}}' \
    | awk '{printf "%.1f MB", $1 / 1e6}'))"

PRISM_IMAGE=$image PRISM_IMAGE_BASE=$base python3 -m pytest -q Tests/image "$@"
