#!/usr/bin/env bash
# Prints the ATEN_CPU_CAPABILITY values below the native one ($1, torch's own choice, lower case) that this
# CPU can run, one per line: on x86 the ladder is default < avx2 < avx512, and a value above the native one
# would be an illegal instruction. Elsewhere (aarch64: sve256, default, ...) only `default` is below.
native=${1:-}
case "$native" in
  avx512*) echo default; echo avx2 ;;
  avx2) echo default ;;
  default|"") ;;
  *) echo default ;;
esac
