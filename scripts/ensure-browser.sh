#!/usr/bin/env bash
# Make sure Debian's Chromium and the Noto CJK fonts are installed, for the browser tests of the
# web pages (Playwright drives /usr/bin/chromium; no browser is downloaded). Installs with apt
# when missing (as root, or through sudo without a password); refreshes the package lists only
# when the packages are not known yet. Fails with a clear message otherwise.
set -euo pipefail

CHROMIUM="${RHIP_CHROMIUM:-/usr/bin/chromium}"
missing=()
[[ -x "$CHROMIUM" ]] || missing+=(chromium)
if ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
    missing+=(fonts-noto-cjk)
fi
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "ensure-browser: chromium and fonts-noto-cjk present"
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "ensure-browser: missing ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "ensure-browser: missing ${missing[*]} and no apt-get here; install them by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
for pkg in "${missing[@]}"; do
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
        "${SUDO[@]}" apt-get update -q
        break
    fi
done
echo "ensure-browser: installing ${missing[*]}"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
[[ -x "$CHROMIUM" ]] || { echo "ensure-browser: $CHROMIUM still missing after install" >&2; exit 1; }
echo "ensure-browser: done"
