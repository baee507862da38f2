#!/usr/bin/env bash
# Fills a root filesystem for the `FROM scratch` fogflow image (see ../Dockerfile).
#
#   scripts/image-rootfs.sh [--strip] BINARY OUTDIR
#
# OUTDIR receives:
#   /fogflow                                 the binary (with --strip: its debug sections removed)
#   the shared libraries `ldd BINARY` lists, the dynamic loader included, at the same absolute paths
#   /etc/ssl/certs/ca-certificates.crt       the host's CA bundle (Debian package ca-certificates)
#   /etc/passwd, /etc/group                  root and the unprivileged user `fogflow` (uid/gid 10001)
#   /etc/nsswitch.conf                       `files dns` (glibc >= 2.34 has both built into libc.so.6)
#   /tmp (mode 1777, empty)
#
# There is deliberately no /data in OUTDIR: `COPY` makes every file it copies root-owned, and only a directory
# that `COPY --chown` *creates* gets another owner, so the Dockerfile creates /data, owned by uid 10001, with
# `COPY --chown=10001:10001 rootfs/tmp/ /data/` (rootfs/tmp is guaranteed empty). Anyone using OUTDIR another way
# (`tar … | docker import`) must create /data owned by 10001 themselves.
#
# OUTDIR must be absent, empty, or a root filesystem this script made before (it is then replaced).
# Needs bash, coreutils, ldd (libc-bin) and, for --strip, objcopy (binutils). Run as any user.
set -euo pipefail

die() {
    echo "image-rootfs: $*" >&2
    exit 1
}

strip_debug=false
if [[ ${1:-} == --strip ]]; then
    strip_debug=true
    shift
fi
[[ $# -eq 2 ]] || die "usage: $0 [--strip] BINARY OUTDIR"
binary=$1
out=$2
marker=.fogflow-rootfs

[[ -f $binary && -x $binary ]] || die "$binary is not an executable file (build it first: cargo build --release)"
[[ -n $out && $out != / ]] || die "refusing to use '$out' as the output directory"
if [[ -e $out ]]; then
    [[ -d $out ]] || die "$out exists and is not a directory"
    if [[ -n $(ls -A "$out") && ! -e $out/$marker ]]; then
        die "$out is not empty and was not made by this script; choose another directory"
    fi
    rm -rf -- "$out"
fi
mkdir -p -- "$out"
out=$(cd -- "$out" && pwd)
touch -- "$out/$marker"

# The binary itself.
if $strip_debug; then
    command -v objcopy >/dev/null || die "--strip needs objcopy (apt-get install -y binutils)"
    objcopy --strip-debug -- "$binary" "$out/fogflow"
else
    cp -- "$binary" "$out/fogflow"
fi
chmod 0755 "$out/fogflow"

# Its shared libraries and the loader, copied (symlinks resolved) to the paths the binary asks for.
# ldd lines: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`,
# `linux-vdso.so.1 (0x…)` (provided by the kernel, skipped), or `statically linked` / `not a dynamic executable`.
command -v ldd >/dev/null || die "ldd not found (Debian package libc-bin)"
libraries=()
if ldd_output=$(ldd "$binary" 2>&1); then
    while read -r line; do
        case $line in
            *"not found"*) die "a library of $binary is missing: $line" ;;
            *"=> /"*) path=${line#*=> }; libraries+=("${path%% (*}") ;;
            /*) libraries+=("${line%% (*}") ;;
        esac
    done <<<"$ldd_output"
elif [[ $ldd_output != *"not a dynamic executable"* && $ldd_output != *"statically linked"* ]]; then
    die "ldd $binary failed: $ldd_output"
fi
for library in "${libraries[@]}"; do
    [[ -e $library ]] || die "library $library listed by ldd does not exist"
    mkdir -p -- "$out$(dirname -- "$library")"
    cp -L -- "$library" "$out$library"
done

# CA certificates, so that outgoing https (registries, webhooks) can be verified.
ca=/etc/ssl/certs/ca-certificates.crt
[[ -s $ca ]] || die "$ca is missing: apt-get install -y ca-certificates"
mkdir -p -- "$out/etc/ssl/certs"
cp -L -- "$ca" "$out$ca"
chmod 0644 "$out$ca"

# Users, groups and name resolution.
cat >"$out/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
fogflow:x:10001:10001:fogflow:/data:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$out/etc/group" <<'EOF'
root:x:0:
fogflow:x:10001:
nogroup:x:65534:
EOF
cat >"$out/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$out/etc/passwd" "$out/etc/group" "$out/etc/nsswitch.conf"

# /tmp for everyone; it must stay empty: the Dockerfile also uses it as the template of /data (see above).
mkdir -p -- "$out/tmp"
chmod 1777 "$out/tmp"

echo "image-rootfs: $out holds /fogflow, ${#libraries[@]} libraries, CA certificates, /etc and /tmp" >&2
