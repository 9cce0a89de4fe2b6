#!/usr/bin/env python3
"""Tests' side of the manifest's file checksums, computed with xxHash's own
command-line tool (`xxhsum -H2`, Debian's xxhash), independently of moeq.

  digest_artifact.py seal DIR     write DIR/manifest.json's "files" for a
                                  hand-written artifact (the files the tests
                                  build at run time)
  digest_artifact.py check DIR    print one line per listed file, "ok" when
                                  xxhsum agrees with the manifest, and the
                                  files on disk that are not listed

Lists every regular file under DIR but manifest.json, report.txt and
report.html, as moeq-compile does. Standard library only."""
import json
import os
import subprocess
import sys

UNLISTED = {"manifest.json", "report.txt", "report.html"}


def files_of(directory):
    found = []
    for root, _, names in os.walk(directory):
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), directory).replace(os.sep, "/")
            if relative not in UNLISTED and os.path.isfile(os.path.join(directory, relative)):
                found.append(relative)
    return sorted(found)


def xxh128(path):
    out = subprocess.run(["xxhsum", "-H2", path], check=True, capture_output=True,
                         text=True).stdout
    return out.split()[0]


def describe(directory, relative):
    path = os.path.join(directory, relative)
    return {"bytes": os.path.getsize(path), "xxh3_128": xxh128(path)}


def main():
    command, directory = sys.argv[1], sys.argv[2]
    manifest_path = os.path.join(directory, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    if command == "seal":
        manifest["files"] = {r: describe(directory, r) for r in files_of(directory)}
        with open(manifest_path, "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        return 0
    listed = manifest.get("files", {})
    for relative in sorted(listed):
        actual = describe(directory, relative) if os.path.isfile(
            os.path.join(directory, relative)) else None
        print("%s %s" % (relative, "ok" if actual == listed[relative] else "MISMATCH"))
    for relative in files_of(directory):
        if relative not in listed:
            print("%s UNLISTED" % relative)
    return 0


if __name__ == "__main__":
    sys.exit(main())
