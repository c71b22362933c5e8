#!/usr/bin/env bash
# System prerequisites of the local stack: Python 3.11, a JDK 17+ with javac, Maven.
# Installs what is missing from Debian's packages when run as root; otherwise says what to install.
set -euo pipefail
missing=()
command -v python3.11 >/dev/null || missing+=(python3.11 python3.11-venv)
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
else
  echo "error: missing system packages: ${missing[*]}. Install them (e.g. sudo apt-get install ${missing[*]}) and run again." >&2
  exit 1
fi
