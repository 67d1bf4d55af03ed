#!/usr/bin/env bash
# Builds the plain-C plugins: the example provider and the deliberately broken test fixtures.
#   scripts/build-c-plugins.sh OUTDIR
# leaves
#   OUTDIR/c-example-provider.so          (examples/plugins/c_example_provider.c, provider "c-example")
#   OUTDIR/c-example-quota.so             (examples/plugins/c_example_quota.c, middleware "c-quota")
#   OUTDIR/c-example-ingress.so           (examples/plugins/c_example_ingress.c, ingress "ollama", ABI 1.5)
#   OUTDIR/broken/<fixture>.so            (Tests/fixtures/broken_plugins/<fixture>.c, '_' -> '-')
#   OUTDIR/old/<fixture>.so               (Tests/fixtures/old_abi/<fixture>.c: plugins shaped as older minors)
# Works from any directory. Needs only a C compiler (CC, default cc); the plugins link nothing.
set -euo pipefail

if (($# != 1)); then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cc=${CC:-cc}
flags=(-std=c11 -Wall -Wextra -Werror -pedantic -shared -fPIC -O2 -I "$root/Sources/PrismPluginABI/include")

mkdir -p "$1/broken" "$1/old"
out=$(cd "$1" && pwd)

build() { # build SOURCE OUTPUT
    "$cc" "${flags[@]}" -o "$2" "$1"
    # The host refuses group- or world-writable plugin files.
    chmod 755 "$2"
    echo "built ${2#"$PWD"/}"
}

build "$root/examples/plugins/c_example_provider.c" "$out/c-example-provider.so"
build "$root/examples/plugins/c_example_quota.c" "$out/c-example-quota.so"
build "$root/examples/plugins/c_example_ingress.c" "$out/c-example-ingress.so"

fixtures=(missing_entry wrong_major short_descriptor null_required_function short_vtable)
for fixture in "${fixtures[@]}"; do
    build "$root/Tests/fixtures/broken_plugins/$fixture.c" "$out/broken/${fixture//_/-}.so"
done

for source in "$root"/Tests/fixtures/old_abi/*.c; do
    name=$(basename "$source" .c)
    build "$source" "$out/old/${name//_/-}.so"
done
