#!/usr/bin/env bash
# Debian packages the platform and its tests need beyond Python: PostGIS (STAC API test server, benchmarks),
# Chromium and a CJK font (viewer tests, screenshots). Installs only what is missing; needs root (as on CI and the dev machines).
set -euo pipefail
wanted=(postgresql-15 postgresql-15-postgis-3 chromium fonts-wqy-microhei)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
