#!/usr/bin/env bash
# OS packages the test suite and OCR need, installed when missing (CI runs as root; a
# developer without root is told what to install): Tesseract with its English data, for
# OCR of image-only PDF pages. Idempotent and quiet when everything is there.
#   deploy/dev/os-deps.sh
set -euo pipefail

missing=()
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)
langs=$(tesseract --list-langs 2>/dev/null || true)
grep -qx eng <<<"$langs" || missing+=(tesseract-ocr-eng)
# orientation and script data: OCR reads pages scanned sideways or upside down
grep -qx osd <<<"$langs" || missing+=(tesseract-ocr-osd)
# the offline tests: a network namespace (unshare) and a record of every connect() (strace)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v strace >/dev/null 2>&1 || missing+=(strace)
[ "${#missing[@]}" = 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "os-deps.sh: missing ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]}):" \
       "OCR and offline tests need them" >&2
  exit 1
fi
echo "os-deps.sh: installing ${missing[*]} from the OS packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
