#!/usr/bin/env bash
# Installs the Debian packages Prism needs. One script for `make`, `.ci/run` and the Dockerfile.
#   scripts/install.sh               build + test + benchmark tools (what `make test` needs)
#   scripts/install.sh --build-only  only what building needs (the Docker builder stage)
#   scripts/install.sh --runtime     only the shared libraries the shipped binary loads (Docker runtime stage)
#   scripts/install.sh --image-tools what `make image-test` needs to build and run the image without a
#                                    Docker engine (podman, buildah, runc, debootstrap)
#   add --dry-run to any mode: show what apt would do, change nothing (used by the tests)
# Idempotent: apt-get runs only when a package is missing. The Swift toolchain itself is expected
# on PATH (it is on this project's machines and in the official swift images).
set -euo pipefail

runtime_packages=(libcurl4 libyaml-0-2 libffi8 libhiredis0.14 libsqlite3-0 libssl3 zlib1g libzstd1 ca-certificates curl)
build_packages=(libcurl4-openssl-dev libyaml-dev libffi-dev libhiredis-dev libsqlite3-dev libssl-dev zlib1g-dev libzstd-dev pkg-config ca-certificates curl)
image_packages=(podman buildah runc debootstrap containernetworking-plugins iptables)
test_packages=(python3 python3-pip procps iproute2 nginx-light libnginx-mod-http-echo wrk redis-server docker-compose chromium chromium-driver)

mode=test
dry_run=0
for argument in "$@"; do
    case $argument in
        --runtime) mode=runtime ;;
        --build-only) mode=build ;;
        --image-tools) mode=image ;;
        --dry-run) dry_run=1 ;;
        *) echo "usage: $0 [--build-only | --runtime | --image-tools] [--dry-run]" >&2; exit 2 ;;
    esac
done
case $mode in
    runtime) packages=("${runtime_packages[@]}") ;;
    build) packages=("${build_packages[@]}") ;;
    image) packages=("${image_packages[@]}") ;;
    test) packages=("${build_packages[@]}" "${test_packages[@]}") ;;
esac

sudo=""
[[ $(id -u) == 0 ]] || sudo=sudo
if [[ $dry_run == 1 ]]; then
    # Resolves every package against the archive without installing anything.
    apt-get install -s -qq --no-install-recommends "${packages[@]}" >/dev/null
    echo "install.sh --$mode: all ${#packages[@]} packages resolve"
    exit 0
fi

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
    # Debian's nginx package would start a system service on port 80; the benchmark runs its own.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ $mode == test ]]; then
    # The integration tests drive Prism with the official OpenAI Python SDK, and the dashboard with
    # Selenium in headless Chromium (Debian's chromium and chromium-driver above).
    # The Python client (clients/python) builds on openai 3.x and is type-checked with mypy.
    # opentelemetry-proto: the test OTLP receiver decodes exported traces with the real protobuf schema.
    python3 -c 'import openai, anthropic, zstandard, pytest, prometheus_client, kubernetes_validate, yaml, selenium, mypy, opentelemetry.proto; assert int(openai.__version__.split(".")[0]) >= 3' 2>/dev/null || python3 -m pip install -q 'openai>=3,<4' 'anthropic>=2,<3' zstandard pytest prometheus-client kubernetes-validate pyyaml selenium mypy opentelemetry-proto
fi
