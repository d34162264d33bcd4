#!/usr/bin/env bash
# Install everything sip-otel needs on Debian 12 (run as root). Idempotent: when everything is
# already there it only checks, in about a second.
#   - Debian packages: bcc (python3-bpfcc, bpfcc-tools), kernel headers, SIPp, tshark, Prometheus,
#     tcpreplay (benchmarks/live_load.py),
#     a C compiler and the Python headers (the compiled core is built by pip from the sources)
#   - /lib/modules/$(uname -r)/{build,source} links when the running kernel has no headers
#   - .venv (from the system Python, which is where bcc lives) with sip-otel and its test extras
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: needs root (apt-get, kernel header links); run it with sudo" >&2
    exit 2
fi

# --- Debian packages ---------------------------------------------------------------------------
packages=(python3 python3-venv python3-pip python3-dev gcc libc6-dev python3-bpfcc bpfcc-tools
          clang libclang-rt-14-dev llvm
          linux-headers-amd64 sip-tester tshark prometheus iproute2 libcap2-bin procps tcpreplay)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
    say "Debian packages present"
fi

# --- kernel headers for bcc ----------------------------------------------------------------------
kver="$(uname -r)"
moddir="/lib/modules/$kver"
if [ -e "$moddir/build/include" ] || [ -e "$moddir/build/Makefile" ]; then
    say "kernel headers for $kver present"
else
    hdr="$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$hdr" ]; then
        say "no /usr/src/linux-headers-*-amd64 found: bcc cannot compile; the agent will fall back to AF_PACKET"
    else
        common="${hdr%-amd64}-common"
        mkdir -p "$moddir"
        if [ ! -e "$moddir/build" ]; then
            ln -sfn "$hdr" "$moddir/build"
            say "running kernel $kver has no headers: linked $moddir/build -> $hdr"
        fi
        if [ ! -e "$moddir/source" ] && [ -d "$common" ]; then
            ln -sfn "$common" "$moddir/source"
            say "linked $moddir/source -> $common"
        fi
    fi
fi

# --- virtualenv ---------------------------------------------------------------------------------
# bcc is a Debian package in the system Python's dist-packages; the venv is built from that Python
# and sees exactly the bcc package (a symlink), not the rest of dist-packages.
py=/usr/bin/python3
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv from $py"
    "$py" -m venv "$venv"
fi
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ -d /usr/lib/python3/dist-packages/bcc ] && [ ! -e "$site/bcc" ]; then
    ln -s /usr/lib/python3/dist-packages/bcc "$site/bcc"
    say "venv sees bcc via $site/bcc -> /usr/lib/python3/dist-packages/bcc"
fi
stamp="$venv/.sip-otel-installed"
# Reinstall (and so rebuild the compiled core) when the dependencies or the core's sources change.
want="$(cat pyproject.toml setup.py src/sip_otel/_core.pyx src/sip_otel/*.pxi src/sip_otel/_c/*.[ch] \
        bpf/*.h | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing sip-otel with test extras into $venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$venv/bin/python" -m pip install -q -e ".[test]"
    echo "$want" > "$stamp"
else
    say "venv up to date"
fi
"$venv/bin/python" -c 'import bcc' 2>/dev/null && say "bcc importable from the venv" \
    || say "bcc not importable from the venv: live capture will use the AF_PACKET fallback"
