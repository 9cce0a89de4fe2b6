#!/bin/sh
# with_small_disk.sh DIR KIND COMMAND...
# Runs COMMAND with DIR the mount point of a file system of its own, in a
# private mount namespace (gone when this script ends; root only, lit
# feature `mount-namespace`): KIND `full` (a 64 KiB tmpfs: writes past it
# fail with ENOSPC, as on a full disk) or `readonly` (a read-only tmpfs:
# EROFS). Then prints "left in DIR:" and every entry left there, and exits
# with COMMAND's status.
dir=$1 kind=$2
shift 2
mkdir -p "$dir"
case $kind in
  full) options=size=64k ;;
  readonly) options=ro,size=64k ;;
  *) echo "with_small_disk.sh: unknown kind '$kind'" >&2; exit 2 ;;
esac
exec unshare -m sh -c '
  mount -t tmpfs -o "$1" moeq-test "$2" || exit 2
  dir=$2
  shift 2
  "$@"
  status=$?
  echo "left in $dir:"
  ls -A "$dir"
  exit $status' with_small_disk "$options" "$dir" "$@"
