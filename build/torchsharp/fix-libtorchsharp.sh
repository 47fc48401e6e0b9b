#!/usr/bin/env bash
# fix-libtorchsharp.sh [--from SRC] DIR
#
# Makes TorchSharp's libLibTorchSharp.so (built with GCC 13) load against an older libstdc++ such as
# Debian 12's (GCC 12, GLIBCXX_3.4.30 at most). The library's only GLIBCXX_3.4.32 symbol is
# std::ios_base_library_init(); so, on a copy of DIR/libLibTorchSharp.so:
#   1. mark its GLIBCXX_3.4.32 version need weak (VER_FLG_WEAK, via weaken_verneed),
#   2. clear that symbol's version       (patchelf --clear-symbol-version),
#   3. make it load libmis_glibcxx_shim.so, which defines the symbol (patchelf --add-needed),
# then mv the copy over the original and put the shim beside it (RUNPATH has $ORIGIN/).
# Files are never modified in place: build outputs are hard links into ~/.nuget/packages.
#
# --from SRC: (re)create DIR/libLibTorchSharp.so from the pristine SRC first, unless DIR already
#             holds a patched copy of that same SRC, and record the result line in DIR/.result.
#             The MSBuild step (Directory.Build.targets) patches into a cache dir this way and
#             points the copy-local items at the result.
#
# No-op when the system libstdc++ already has GLIBCXX_3.4.32 (MIS_LIBSTDCXX overrides which file is
# checked), when the library does not need that version, or when it is already patched.
# Prints exactly one line on stdout: "mis-torchsharp: <patched|up-to-date|not-needed>: ...".
# Errors use MSBuild's canonical format, so the build fails showing the message.
# MSBuild runs it only when its inputs change; even so, the up-to-date path takes no lock and forks
# little (about 50 ms).
set -euo pipefail

readonly VERSION=GLIBCXX_3.4.32
readonly SYMBOL=_ZSt21ios_base_library_initv
readonly LIB=libLibTorchSharp.so
readonly SHIM=libmis_glibcxx_shim.so
readonly CFLAGS_TOOL="-std=c11 -O2 -Wall -Wextra -Werror"
readonly CFLAGS_SHIM="-std=c11 -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -Wl,-soname,$SHIM -Wl,-z,defs"

die() {
    echo "fix-libtorchsharp.sh: error MIS0101: $*" >&2
    exit 1
}

# Prints the one-line result; with --from also records it in DIR/.result, which the MSBuild step
# reads on builds where its inputs are unchanged and it does not run this script at all. A result
# that depends on the MIS_LIBSTDCXX override is not recorded.
report() {
    echo "mis-torchsharp: $1"
    if [[ -n $from && -z ${MIS_LIBSTDCXX-} ]]; then
        echo "mis-torchsharp: $1" >"$dir/.result.$$"
        mv -f "$dir/.result.$$" "$dir/.result"
    fi
}

script=${BASH_SOURCE[0]}
[[ $script == /* ]] || script=$PWD/$script
readonly script here=${script%/*}
readonly out=$here/.output tool=$here/.output/weaken_verneed shim=$here/.output/$SHIM

from=""
if [[ ${1-} == --from ]]; then
    [[ $# -ge 2 ]] || die "usage: fix-libtorchsharp.sh [--from SRC] DIR"
    from=$2
    shift 2
fi
[[ $# -eq 1 ]] || die "usage: fix-libtorchsharp.sh [--from SRC] DIR"
dir=${1%/}
[[ -n $dir ]] || dir=/
lib=$dir/$LIB
if [[ -n $from ]]; then
    [[ -f $from ]] || die "$from does not exist"
    [[ -d $dir ]] || mkdir -p "$dir"
else
    [[ -f $lib ]] || die "$lib does not exist"
fi

# --- 1. Does this system's libstdc++ need the workaround at all? -------------------------------
libstdcxx=""
if [[ -n ${MIS_LIBSTDCXX-} ]]; then
    [[ -f $MIS_LIBSTDCXX ]] || die "MIS_LIBSTDCXX=$MIS_LIBSTDCXX does not exist"
    libstdcxx=$MIS_LIBSTDCXX
else
    # What the dynamic linker would load: the ld.so cache first, then the usual places, then gcc.
    cache=$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true)
    re=$'libstdc\\+\\+\\.so\\.6 \\([^)]*x86-64[^)]*\\) => ([^\n]+)'
    if [[ $cache =~ $re && -f ${BASH_REMATCH[1]} ]]; then
        libstdcxx=${BASH_REMATCH[1]}
    fi
    for c in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 /lib64/libstdc++.so.6; do
        [[ -z $libstdcxx && -f $c ]] && libstdcxx=$c
    done
    if [[ -z $libstdcxx ]] && command -v gcc >/dev/null; then
        c=$(gcc -print-file-name=libstdc++.so.6)
        [[ $c == /* && -f $c ]] && libstdcxx=$c
    fi
    [[ -n $libstdcxx ]] || die "cannot find libstdc++.so.6 (set MIS_LIBSTDCXX to its path)"
fi
# The version name is in the .dynstr of every libstdc++ that defines it (GCC 13 and later).
if LC_ALL=C grep -qaF "$VERSION" "$libstdcxx"; then
    report "not-needed: $libstdcxx already provides $VERSION; $LIB left as is"
    exit 0
fi

# --- 2. Tools, and the helpers cached in .output/ (rebuilt only when sources or flags change) --
require_tools() {
    local missing=""
    command -v patchelf >/dev/null || missing="patchelf"
    command -v cc >/dev/null || missing="${missing:+$missing and }cc (a C compiler)"
    if [[ -n $missing ]]; then
        die "$missing not found. $libstdcxx lacks $VERSION, so TorchSharp's $LIB must be patched at build time or it fails to load at run time. Install: apt-get install patchelf gcc"
    fi
}

helpers_key() {
    (cd "$here" && sha256sum weaken_verneed.c glibcxx_shim.c)
    echo "tool: $CFLAGS_TOOL"
    echo "shim: $CFLAGS_SHIM $libstdcxx"
}

# Fast check without forking: the stamp is touched after every successful content comparison.
helpers_current() {
    [[ -x $tool && -f $shim && -f $out/helpers.stamp ]] || return 1
    [[ $out/helpers.stamp -nt $here/weaken_verneed.c && $out/helpers.stamp -nt $here/glibcxx_shim.c &&
        $out/helpers.stamp -nt $script ]] && return 0
    local key
    key=$(helpers_key)
    if [[ $(<"$out/helpers.stamp") == "$key" ]]; then
        touch "$out/helpers.stamp"
        return 0
    fi
    return 1
}

build_helpers() {
    # shellcheck disable=SC2086 # the flag strings are meant to split
    cc $CFLAGS_TOOL -o "$tool.tmp" "$here/weaken_verneed.c" || die "compiling $here/weaken_verneed.c failed (the C library headers come from libc6-dev: apt-get install patchelf gcc libc6-dev)"
    # shellcheck disable=SC2086
    cc $CFLAGS_SHIM -o "$shim.tmp" "$here/glibcxx_shim.c" "$libstdcxx" || die "compiling $here/glibcxx_shim.c failed (the C library headers come from libc6-dev: apt-get install patchelf gcc libc6-dev)"
    mv -f "$tool.tmp" "$tool"
    mv -f "$shim.tmp" "$shim"
    helpers_key >"$out/helpers.stamp.tmp"
    mv -f "$out/helpers.stamp.tmp" "$out/helpers.stamp"
}

# --- 3. Patch (a temp copy in DIR, then mv), unless already done ------------------------------
source_id=""
[[ -z $from ]] || source_id="$(stat -L -c '%s %Y' "$from") $from"

shim_current() { [[ $dir/$SHIM -ef $shim ]] || cmp -s "$shim" "$dir/$SHIM"; }

lib_current() {
    if [[ -n $from ]]; then
        [[ -f $dir/.source && $(<"$dir/.source") == "$source_id" ]] || return 1
    fi
    [[ -f $lib && $("$tool" --status "$lib" "$VERSION" "$SHIM") == "weak 0 yes" ]]
}

install_shim() { # never overwrite in place: DIR's shim may be hard-linked from a bin/ dir
    local t
    t=$(mktemp "$dir/.$SHIM.XXXXXX")
    ln -f "$shim" "$t" 2>/dev/null || cp "$shim" "$t"
    mv -f "$t" "$dir/$SHIM"
}

if helpers_current && lib_current && shim_current; then
    report "up-to-date: $lib is already patched ($VERSION weak, needs $SHIM)"
    exit 0
fi

require_tools
[[ -d $out ]] || mkdir -p "$out"
exec 9>"$out/.lock"
flock 9 # parallel project builds share .output/ and the patch cache dir

helpers_current || build_helpers
if lib_current; then # a parallel build may have just done it
    if shim_current; then
        report "up-to-date: $lib is already patched ($VERSION weak, needs $SHIM)"
    else
        install_shim
        report "patched: $lib was already patched; refreshed $dir/$SHIM"
    fi
    exit 0
fi

input=${from:-$lib}
status=$("$tool" --status "$input" "$VERSION") || die "cannot read the ELF version needs of $input"
read -r state refs _ <<<"$status"
if [[ $state == absent ]]; then
    report "not-needed: $input does not require $VERSION; left as is"
    exit 0
fi

tmp=$(mktemp "$dir/.$LIB.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cp "$input" "$tmp"
chmod --reference="$input" "$tmp"
chmod u+w "$tmp"
"$tool" "$tmp" "$VERSION" >/dev/null || die "cannot mark $VERSION weak in a copy of $input"
if [[ $refs != 0 ]]; then
    patchelf --clear-symbol-version "$SYMBOL" "$tmp" || die "patchelf --clear-symbol-version $SYMBOL failed"
fi
if [[ $("$tool" --status "$tmp" "$VERSION" "$SHIM") != *" yes" ]]; then
    patchelf --add-needed "$SHIM" "$tmp" || die "patchelf --add-needed $SHIM failed"
fi
after=$("$tool" --status "$tmp" "$VERSION" "$SHIM") || die "cannot read back the patched copy of $input"
if [[ $after != "weak 0 yes" ]]; then
    die "$input still needs $VERSION after patching (status: $after): symbols other than $SYMBOL use it, so this workaround does not fit this TorchSharp version"
fi
shim_current || install_shim
mv -f "$tmp" "$lib"
trap - EXIT
if [[ -n $from ]]; then
    echo "$source_id" >"$dir/.source.tmp"
    mv -f "$dir/.source.tmp" "$dir/.source"
fi
report "patched: $lib ($VERSION weak, $SYMBOL unversioned, needs $SHIM) for $libstdcxx"
