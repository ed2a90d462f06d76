#!/usr/bin/env bash
# Install the Debian/Ubuntu packages diffrestore needs, when missing.
# As root it runs apt-get; otherwise it names the exact packages to install.
set -euo pipefail
pkgs=(cmake make gcc pkg-config zlib1g-dev libpng-dev libjpeg62-turbo-dev libtiff-dev libwebp-dev libexif-dev
      liblcms2-dev libopenblas-dev libcjson-dev libmicrohttpd-dev openmpi-bin libopenmpi-dev)
# Ubuntu names libjpeg-turbo's dev package libjpeg-turbo8-dev; both provide libjpeg.pc.
if ! apt-cache show libjpeg62-turbo-dev >/dev/null 2>&1 && apt-cache show libjpeg-turbo8-dev >/dev/null 2>&1; then
  pkgs=("${pkgs[@]/libjpeg62-turbo-dev/libjpeg-turbo8-dev}")
fi
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing packages; install them with:" >&2
  echo "  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
