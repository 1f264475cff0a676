#!/usr/bin/env bash
# Installs every Debian package Lampyr needs to build, test, fuzz and run its
# services. Idempotent: when everything is present it prints nothing and exits 0.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libevent-dev libjsoncpp-dev libboost-dev libboost-filesystem-dev
  libmemcached-dev libmysqlcppconn-dev libgtest-dev libgmock-dev
  memcached mariadb-server mariadb-client libmemcached-tools
  iproute2 procps
  libssl-dev openssl
  libwslay-dev libsodium-dev libsystemd-dev
  systemd lintian dpkg-dev adduser logrotate
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
