#!/usr/bin/env bash
# Checks the plugin ABI header without building the host:
#  1. a translation unit that includes prism_plugin.h compiles warning-free as C11 and as C++11
#     (and C++17) with -pedantic -Wall -Wextra -Werror;
#  2. Tests/fixtures/abi_layout.c compiles: _Static_asserts on sizeof/offsetof of every struct on
#     LP64 Linux, a tripwire for accidental layout changes.
# Prints "header check: OK" on success. Works from any directory. CC and CXX override cc / c++.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
include="$root/Sources/PrismPluginABI/include"
cc=${CC:-cc}
cxx=${CXX:-c++}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Uses the header the way a plugin does: types, constants, PRISM_HAS_FIELD.
cat >"$work/use_header.inc" <<'SRC'
#include <prism_plugin.h>
#include <prism_plugin.h> /* include guard */

int prism_check_uses_header(const prism_host_api *host, const prism_provider_v1 *provider);
int prism_check_uses_header(const prism_host_api *host, const prism_provider_v1 *provider) {
    prism_status status = PRISM_OK;
    prism_framing framing = PRISM_FRAMING_SSE;
    unsigned flags = PRISM_REQUEST_STREAM | PRISM_REQUEST_RETRY;
    int has = PRISM_HAS_FIELD(host, prism_host_api, get_service) &&
              PRISM_HAS_FIELD(provider, prism_provider_v1, translate_error);
    const char *symbol = PRISM_PLUGIN_ENTRY_SYMBOL;
    const char *service = PRISM_KEY_VALUE_SERVICE_V1;
    prism_plugin_entry_function entry = 0;
    (void)entry;
    return has + status + framing + (int)flags + (symbol[0] == 'p') + (service[0] == 'p') +
           PRISM_ABI_MAJOR + PRISM_ABI_MINOR;
}
SRC

common=(-pedantic -Wall -Wextra -Werror -I "$include" -c)
cp "$work/use_header.inc" "$work/use_header.c"
cp "$work/use_header.inc" "$work/use_header.cpp"

"$cc" -std=c11 "${common[@]}" -o "$work/c11.o" "$work/use_header.c"
echo "C11:    ok ($cc -std=c11 -pedantic -Wall -Wextra -Werror)"
"$cxx" -std=c++11 "${common[@]}" -o "$work/cxx11.o" "$work/use_header.cpp"
echo "C++11:  ok ($cxx -std=c++11 -pedantic -Wall -Wextra -Werror)"
"$cxx" -std=c++17 "${common[@]}" -o "$work/cxx17.o" "$work/use_header.cpp"
echo "C++17:  ok ($cxx -std=c++17 -pedantic -Wall -Wextra -Werror)"
"$cc" -std=c11 "${common[@]}" -o "$work/abi_layout.o" "$root/Tests/fixtures/abi_layout.c"
echo "layout: ok (Tests/fixtures/abi_layout.c)"

echo "header check: OK"
