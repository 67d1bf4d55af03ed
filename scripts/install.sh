#!/usr/bin/env bash
# Installs the Debian packages Prism needs. One script for `make`, `.ci/run` and the Dockerfile.
#   scripts/install.sh            build + test dependencies (compilers come with the Swift toolchain)
#   scripts/install.sh --runtime  only the shared libraries the shipped binary loads (Docker runtime stage)
# Idempotent: it skips apt-get when every package is already installed.
set -euo pipefail

runtime_packages=(libcurl4 libyaml-0-2 libffi8 ca-certificates curl)
build_packages=(libcurl4-openssl-dev libyaml-dev libffi-dev pkg-config ca-certificates curl
                python3 python3-pip python3-venv procps iproute2)
bench_packages=(nginx-light libnginx-mod-http-echo wrk)

mode=${1:-build}
case $mode in
    --runtime) packages=("${runtime_packages[@]}") ;;
    build|--build) packages=("${build_packages[@]}" "${bench_packages[@]}") ;;
    *) echo "usage: $0 [--runtime]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
    # Debian's nginx package would start a system service on port 80; we run our own instances.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ $mode != --runtime ]]; then
    # The integration tests drive Prism with the official OpenAI Python SDK.
    python3 -c 'import openai, pytest' 2>/dev/null || python3 -m pip install -q 'openai>=1.40' pytest
fi
