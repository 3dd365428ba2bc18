#!/bin/sh
# For builds where pip inside `docker build` cannot reach the package index by itself (a
# TLS-intercepting proxy whose CA only the host trusts, a mirror only the host is configured
# for): download Klamm's dependencies with the HOST's pip, which uses the host's pip config and
# CA bundle, lay them out as a PEP 503 "simple" index and serve it on 127.0.0.1 until stopped.
#
#   docker/serve-wheelhouse.sh [PORT]          # default port 8765; Ctrl-C stops it
#   docker build --network host \
#       --build-arg PIP_INDEX_URL=http://127.0.0.1:8765/simple/ -t klamm .
#   PIP_INDEX_URL=http://127.0.0.1:8765/simple/ docker compose build
#
# The build needs the host's network (--network host; docker-compose.yml builds with it) to
# reach 127.0.0.1. pip treats 127.0.0.1 as a secure origin, so plain HTTP needs no
# --trusted-host.
#
# Environment:
#   KLAMM_WHEELHOUSE  Directory for the wheels and the index (default /tmp/klamm-wheelhouse).
#   PYTHON            Python with pip on the host (default python3). The wheels are picked for
#                     CPython 3.11 on the host's platform, whatever version that Python is.
set -eu

PORT=${1:-8765}
DIR=${KLAMM_WHEELHOUSE:-/tmp/klamm-wheelhouse}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")/.." && pwd)

mkdir -p "$DIR/files"
# The runtime dependencies from pyproject.toml, plus the build backend the image build needs.
"$PYTHON" - "$HERE/pyproject.toml" > "$DIR/requirements.txt" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    meta = tomllib.load(fh)
for req in meta["build-system"]["requires"] + meta["project"]["dependencies"]:
    print(req)
PY
echo "==> downloading into $DIR/files:"; sed 's/^/    /' "$DIR/requirements.txt"
"$PYTHON" -m pip download --disable-pip-version-check --quiet --dest "$DIR/files" \
    --only-binary=:all: --implementation cp --python-version 3.11 \
    -r "$DIR/requirements.txt"

# One folder per normalised project name, each with an index.html linking its files.
"$PYTHON" - "$DIR" <<'PY'
import hashlib, html, os, re, sys
root = sys.argv[1]
files = sorted(os.listdir(os.path.join(root, "files")))
projects = {}
for name in files:
    if not name.endswith((".whl", ".tar.gz", ".zip")):
        continue
    project = re.split(r"-\d", name, maxsplit=1)[0]
    projects.setdefault(re.sub(r"[-_.]+", "-", project).lower(), []).append(name)
simple = os.path.join(root, "simple")
os.makedirs(simple, exist_ok=True)
for project, names in projects.items():
    os.makedirs(os.path.join(simple, project), exist_ok=True)
    links = []
    for name in names:
        with open(os.path.join(root, "files", name), "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        links.append(f'<a href="../../files/{html.escape(name)}#sha256={digest}">'
                     f"{html.escape(name)}</a><br>")
    with open(os.path.join(simple, project, "index.html"), "w") as fh:
        fh.write("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
with open(os.path.join(simple, "index.html"), "w") as fh:
    fh.write("<!DOCTYPE html><html><body>\n" + "\n".join(
        f'<a href="{p}/">{p}</a><br>' for p in sorted(projects)) + "\n</body></html>\n")
print(f"==> index of {len(projects)} projects in {simple}")
PY

echo "==> serving http://127.0.0.1:$PORT/simple/ (Ctrl-C to stop)"
exec "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$DIR" "$PORT"
