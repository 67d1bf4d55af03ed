#!/usr/bin/env bash
# The plugin ABI as it was released: for every released minor, the header and the plain-C example
# plugins from the commit that released that minor, vendored into Tests/fixtures/abi_history/ so a
# shallow clone (CI) can still build plugins exactly as an author did then.
# Tests/integration/test_abi_history.py builds them against their own header and loads them into
# today's gateway.
#
#   scripts/abi-history.sh           writes Tests/fixtures/abi_history/<minor>/{prism_plugin.h,
#                                    c_example_provider.c, c_example_quota.c} with `git show
#                                    COMMIT:PATH` (a file the commit does not have is left out)
#   scripts/abi-history.sh --check   verifies the vendored files: byte for byte equal to the git
#                                    objects when the commits are in this clone; always: one
#                                    directory per listed minor, each header declaring its minor,
#                                    and today's header minor listed once a commit before HEAD
#                                    released it. Exit 0 when nothing differs
#                                    (a minor whose commit is absent is reported "NOT VERIFIED"),
#                                    1 when something differs or is missing.
#
# Adding a minor (every released minor, from now on): append a line to RELEASES below, run the
# script without arguments, commit Tests/fixtures/abi_history/<minor>/. See
# Tests/fixtures/abi_history/README.md. Works from any directory; needs git and a POSIX shell.
set -euo pipefail

# minor, the commit that released it, then optional FILE=COMMIT for a vendored file the releasing
# commit did not have yet, taken from a later commit of the same minor (header unchanged between).
RELEASES=(
    "1.0 81823bc24cad6cdfef3f0384f970aa424439eb3c"
    "1.1 1c2923182abdb2b37fb38fdbde65c8c55275aea5"
    # c_example_quota.c (the first C middleware) came in 0e4d995, still ABI 1.2.
    "1.2 64ea45e7ee7eca2774c8f3997de9936102689615 c_example_quota.c=0e4d995c387e66a39b046657b6a192b6b5acb7e9"
    "1.3 b031201267c0f7a83b4e60f89597e231ddfd34bf"
    # 1.4 was made over several commits of one stop (f31fa16 first declared it); the layout that
    # landed is that of the last one, which completed it with model_patterns.
    "1.4 9562bdc9bfb573cbd4bff29ffec5c7ab2935b4fd"
    # 1.5 (ingress) was made over three commits of one stop; e1d34f2 completed it (PRISM_TRANSLATE_ONLY).
    "1.5 e1d34f2ca453112f8902bfcfeb4444c86dfeb085"
    # 1.6: the prism.client_keys.v1 service.
    "1.6 f05f538f2face827d7ac66838ce12fe24af2b78d"
)

# vendored name -> path in the repository
FILES=(
    "prism_plugin.h=Sources/PrismPluginABI/include/prism_plugin.h"
    "c_example_provider.c=examples/plugins/c_example_provider.c"
    "c_example_quota.c=examples/plugins/c_example_quota.c"
    # From 1.4 the C example includes the C plugin kit beside it.
    "prism_kit.h=examples/plugins/prism_kit.h"
    # From 1.5 the C example ingress (Ollama's /api/chat).
    "c_example_ingress.c=examples/plugins/c_example_ingress.c"
)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/Tests/fixtures/abi_history"
mode=write
case "${1:-}" in
"") ;;
--check) mode=check ;;
*)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

have_git=0
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then have_git=1; fi
has_commit() { ((have_git)) && git -C "$root" cat-file -e "$1^{commit}" 2>/dev/null; }
has_blob() { git -C "$root" cat-file -e "$1:$2" 2>/dev/null; }

# The header's own minor: `#define PRISM_ABI_MINOR <n>`.
header_minor() { sed -n 's/^#define PRISM_ABI_MINOR \([0-9][0-9]*\).*/\1/p' "$1" | head -n 1; } # FILE or -

failures=0
verified_count=0
fail() {
    echo "DIFFERS: $*"
    failures=$((failures + 1))
}

listed=()
for release in "${RELEASES[@]}"; do
    read -r minor commit overrides <<<"$release"
    listed+=("$minor")
    dir="$out/$minor"
    if [[ $mode == write ]]; then
        has_commit "$commit" || {
            echo "abi-history: commit $commit ($minor) is not in this clone (git fetch --unshallow)" >&2
            exit 1
        }
        mkdir -p "$dir"
    fi
    verified=1
    before=$failures
    for file in "${FILES[@]}"; do
        name=${file%%=*}
        path=${file#*=}
        source=$commit
        for override in $overrides; do
            [[ ${override%%=*} == "$name" ]] && source=${override#*=}
        done
        if [[ $mode == write ]]; then
            if has_blob "$source" "$path"; then
                git -C "$root" show "$source:$path" >"$dir/$name"
                chmod 644 "$dir/$name"
                echo "wrote Tests/fixtures/abi_history/$minor/$name (${source:0:7}:$path)"
            else
                rm -f "$dir/$name"
            fi
            continue
        fi
        if ! has_commit "$source"; then
            verified=0
            continue
        fi
        if has_blob "$source" "$path"; then
            if [[ ! -f $dir/$name ]]; then
                fail "$minor/$name is missing (${source:0:7}:$path exists)"
            elif ! git -C "$root" show "$source:$path" | cmp -s - "$dir/$name"; then
                fail "$minor/$name is not ${source:0:7}:$path (run scripts/abi-history.sh)"
            fi
        elif [[ -e $dir/$name ]]; then
            fail "$minor/$name exists but ${source:0:7} has no $path"
        fi
    done
    [[ $mode == write ]] && continue
    # Without history too: the directory is there and its header is the minor it claims to be.
    if [[ ! -f $dir/prism_plugin.h ]]; then
        fail "$minor/prism_plugin.h is missing"
    elif [[ "1.$(header_minor "$dir/prism_plugin.h")" != "$minor" ]]; then
        fail "$minor/prism_plugin.h declares PRISM_ABI_MINOR $(header_minor "$dir/prism_plugin.h")"
    fi
    if ((failures > before)); then
        echo "$minor: DIFFERS (above)"
    elif ((verified)); then
        echo "$minor: verified against ${commit:0:7}${overrides:+ ($overrides)}"
        verified_count=$((verified_count + 1))
    else
        echo "$minor: NOT VERIFIED: commit ${commit:0:7} is not in this clone (shallow or no history;" \
            "git fetch --unshallow to verify); the vendored files are used as they are"
    fi
done

if [[ $mode == check ]]; then
    for dir in "$out"/*/; do
        [[ -d $dir ]] || continue
        minor=$(basename "$dir")
        [[ " ${listed[*]} " == *" $minor "* ]] || fail "$minor/ is not listed in RELEASES in $0"
    done
    # Today's minor must be listed once it is released: the oldest commit whose header declares
    # it released it. Until a later commit exists (the release itself is HEAD or uncommitted) it is
    # pending, since a commit cannot name itself.
    header=Sources/PrismPluginABI/include/prism_plugin.h
    current_minor=$(header_minor "$root/$header")
    current="1.$current_minor"
    if [[ " ${listed[*]} " != *" $current "* ]]; then
        released=
        if ((have_git)); then
            for candidate in $(git -C "$root" log --reverse --format=%H \
                -G"^#define PRISM_ABI_MINOR $current_minor" -- "$header"); do
                if [[ $(git -C "$root" show "$candidate:$header" | header_minor -) == "$current_minor" ]]; then
                    released=$candidate
                    break
                fi
            done
        fi
        if [[ -n $released && $released != "$(git -C "$root" rev-parse HEAD)" ]]; then
            fail "today's header is ABI $current, released in ${released:0:7}, which RELEASES does not" \
                "list: append \"$current $released\" to RELEASES in $0 and run it"
        else
            echo "$current: PENDING: today's header is ABI $current, not released in a commit before HEAD;" \
                "once it is, append it to RELEASES in $0 and run it"
        fi
    fi
    if ((failures)); then
        echo "abi history: $failures difference(s)"
        exit 1
    fi
    if ((verified_count == ${#listed[@]})); then
        echo "abi history: OK (every minor verified against git)"
    else
        echo "abi history: OK, $verified_count of ${#listed[@]} minors verified against git (NOT VERIFIED: history absent)"
    fi
fi
