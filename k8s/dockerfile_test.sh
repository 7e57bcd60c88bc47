#!/usr/bin/env bash
# Static checks of the repository's Dockerfile against the gateway that Bazel actually built.
# The image itself cannot be built here (no Docker daemon, no registry), so this checks what can
# be known without it:
#   - stages: multi-stage, Debian 12 only (build on debian:bookworm, run on bookworm-slim), the
#     build stage installs with tools/install_deps.sh and builds //server:clink_gateway -c opt,
#     the runtime stage copies the binary from it and uses it as an exec-form ENTRYPOINT;
#   - runtime libraries: every shared library the binary links (readelf NEEDED) is provided by a
#     package that the runtime stage's apt-get install names (dpkg -S on this Debian 12 host,
#     which has the same packages as the image), or by libc6/libgcc-s1 that every image has; and
#     every library ldd resolves transitively comes with those packages' dependencies;
#   - ca-certificates (Clink's certificate is verified against the system store);
#   - a numeric non-root USER equal to the manifests' runAsUser/runAsGroup, EXPOSE 50051 9464 8080;
#   - the preStop binary of k8s/base/deployment.yaml comes from an Essential package (in every
#     Debian image);
#   - .dockerignore keeps .git, bazel-* and tools/node_modules out of the build context.
# What it cannot know: that the image builds and starts. //k8s:image_test (image_test.sh) builds
# it with tools/build_image.sh, runs this script against the image's binary, and runs the image.
# Then each check is broken once in a copy of the Dockerfile, and must fail.
# Usage (from Bazel): dockerfile_test.sh <path to clink_gateway>
set -euo pipefail

gateway="$(readlink -f "$1")"
workspace="$(dirname "$(readlink -f Dockerfile)")"
dockerfile="$workspace/Dockerfile"
dockerignore="$workspace/.dockerignore"
deployment="$workspace/k8s/base/deployment.yaml"
work="${TEST_TMPDIR:-$(mktemp -d)}/dockerfile"
rm -rf "$work" && mkdir -p "$work"

. /etc/os-release
if [ "${VERSION_CODENAME:-}" != "bookworm" ]; then
  echo "this host is ${PRETTY_NAME:-unknown}, not Debian 12: its packages say nothing about the image's" >&2
  exit 1
fi

# --- What the binary needs, as Debian packages of this host.

# The package owning a file; Debian 12 is merged-/usr, so the same library may be registered
# under /lib or /usr/lib, by its soname link or by its real name. One dpkg-query for all files.
declare -A owner_of=()
index_owners() {
  local f real c
  local -a candidates=()
  for f in "$@"; do
    real="$(readlink -f "$f")"
    for c in "$f" "$real"; do
      candidates+=("$c")
      case "$c" in
        /usr/*) candidates+=("${c#/usr}") ;;
        *) candidates+=("/usr$c") ;;
      esac
    done
  done
  while IFS= read -r line; do
    # "libfoo1:amd64: /usr/lib/x86_64-linux-gnu/libfoo.so.1" (diversions and dirs have ", ")
    local pkg="${line%%: /*}" file="/${line#*: /}"
    pkg="${pkg%%,*}"
    owner_of[$file]="${pkg%%:*}"
  done < <(dpkg-query -S "${candidates[@]}" 2>/dev/null || true)
}
package_of() {
  local f="$1" real c
  real="$(readlink -f "$f")"
  for c in "$f" "$real" "${f#/usr}" "/usr$f" "${real#/usr}" "/usr$real"; do
    if [ -n "${owner_of[$c]:-}" ]; then
      echo "${owner_of[$c]}"
      return 0
    fi
  done
  return 1
}

ldd "$gateway" >"$work/ldd.txt"
if grep -q 'not found' "$work/ldd.txt"; then
  echo "FAIL: the binary does not load on this host:" >&2
  grep 'not found' "$work/ldd.txt" >&2
  exit 1
fi
declare -A lib_path=()
while read -r name _ path _; do
  [ -n "${path:-}" ] && [ "${path:0:1}" = "/" ] && lib_path[$name]="$path"
done <"$work/ldd.txt"

prestop="$(sed -n 's/.*command: *\[ *"\([^"]*\)".*/\1/p' "$deployment" | head -n1)"
index_owners "${lib_path[@]}" ${prestop:+"$prestop"}

declare -A needed_pkg=()  # package -> the NEEDED sonames it provides
while read -r soname; do
  path="${lib_path[$soname]:-}"
  if [ -z "$path" ]; then
    echo "FAIL: ldd does not resolve NEEDED $soname" >&2
    exit 1
  fi
  pkg="$(package_of "$path")" || { echo "FAIL: no Debian package owns $path ($soname)" >&2; exit 1; }
  needed_pkg[$pkg]="${needed_pkg[$pkg]:-} $soname"
done < <(readelf -d "$gateway" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

declare -A all_lib_pkg=()  # every package ldd's full list comes from
for soname in "${!lib_path[@]}"; do
  pkg="$(package_of "${lib_path[$soname]}")" || { echo "FAIL: no package owns ${lib_path[$soname]}" >&2; exit 1; }
  all_lib_pkg[$pkg]="${all_lib_pkg[$pkg]:-} $soname"
done

# What apt installs for a list of packages: their Depends/Pre-Depends closure on this host
# (every installed alternative of an `a | b`).
dpkg-query -W -f='${Package}\t${Depends}, ${Pre-Depends}\n' >"$work/depends.tsv"
closure() {
  printf '%s\n' "$@" | awk -F'\t' -f "$workspace/k8s/depends_closure.awk" "$work/depends.tsv" -
}

# Packages in every Debian image (debian:bookworm-slim is Essential + Priority required).
base_image_packages="$(dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' |
  awk '$2 == "yes" || $3 == "required" {print $1}')"

# --- The checks, over one Dockerfile (the real one, then broken copies). Prints FAIL lines.

check() {
  local file="$1" ignore="$2" fails=0
  fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

  # Logical instructions: comments dropped, continuation lines joined.
  awk '
    /^[[:space:]]*#/ { next }
    { line = line $0 }
    /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, " ", line); next }
    { if (line ~ /[^[:space:]]/) print line; line = "" }
  ' "$file" >"$work/instructions"

  local froms final_from
  froms="$(grep -ciE '^[[:space:]]*FROM[[:space:]]' "$work/instructions" || true)"
  [ "$froms" -ge 2 ] || fail "not a multi-stage build ($froms FROM)"
  while read -r _ image rest; do
    [[ "$image" =~ ^debian:bookworm(-slim)?(@sha256:[0-9a-f]{64})?$ ]] || fail "FROM $image is not Debian 12 (debian:bookworm[-slim])"
  done < <(grep -iE '^[[:space:]]*FROM[[:space:]]' "$work/instructions")
  final_from="$(grep -iE '^[[:space:]]*FROM[[:space:]]' "$work/instructions" | tail -n1 | awk '{print $2}')"
  [[ "$final_from" == debian:bookworm-slim* ]] || fail "the runtime stage is $final_from, want debian:bookworm-slim"

  # The build stage (everything before the last FROM) and the runtime stage.
  local last_from_line
  last_from_line="$(grep -niE '^[[:space:]]*FROM[[:space:]]' "$work/instructions" | tail -n1 | cut -d: -f1)"
  head -n "$((last_from_line - 1))" "$work/instructions" >"$work/build_stage"
  tail -n "+$last_from_line" "$work/instructions" >"$work/runtime_stage"
  local build_name
  build_name="$(head -n1 "$work/build_stage" | awk 'tolower($3) == "as" {print $4}')"
  grep -qE '^[[:space:]]*RUN .*tools/install_deps\.sh' "$work/build_stage" || fail "the build stage does not run tools/install_deps.sh"
  grep -qE '^[[:space:]]*RUN .*bazel build .*-c opt .*//server:clink_gateway' "$work/build_stage" ||
    fail "the build stage does not run bazel build -c opt //server:clink_gateway"
  grep -qE "^[[:space:]]*COPY --from=${build_name:-build} .*clink_gateway" "$work/runtime_stage" ||
    fail "the runtime stage does not copy clink_gateway from the build stage ${build_name:-}"

  # Runtime packages: the names after `apt-get install` in the runtime stage.
  local -A runtime=()
  while read -r word; do runtime[$word]=1; done < <(
    grep -E '^[[:space:]]*RUN .*apt-get( -[^ ]+)* install' "$work/runtime_stage" |
      sed -E 's/.*apt-get( -[^ ]+)* install//; s/&&.*//' | tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' || true)
  [ "${#runtime[@]}" -gt 0 ] || fail "the runtime stage installs no packages"
  [ -n "${runtime[ca-certificates]:-}" ] || fail "the runtime stage lacks ca-certificates (Clink's TLS is verified against the system store)"
  local pkg
  for pkg in "${!needed_pkg[@]}"; do
    if [ -z "${runtime[$pkg]:-}" ] && [ "$pkg" != libc6 ] && [ "$pkg" != libgcc-s1 ]; then
      fail "the binary needs${needed_pkg[$pkg]} from package $pkg, which the runtime stage does not install"
    fi
  done
  # Everything ldd resolves must come with those packages (or be in every Debian image).
  closure "${!runtime[@]}" $base_image_packages >"$work/closure"
  for pkg in "${!all_lib_pkg[@]}"; do
    grep -qxF "$pkg" "$work/closure" || fail "ldd loads${all_lib_pkg[$pkg]} from $pkg, which no runtime package depends on"
  done
  for pkg in "${!runtime[@]}"; do
    grep -q "^$pkg"$'\t' "$work/depends.tsv" || fail "runtime package $pkg is not a Debian 12 package installed on this build host"
  done

  # Non-root, the same identity as the manifests.
  local user uid gid want_uid want_gid
  user="$(grep -iE '^[[:space:]]*USER[[:space:]]' "$work/runtime_stage" | tail -n1 | awk '{print $2}')"
  uid="${user%%:*}"
  gid="${user#*:}"
  [ "$gid" != "$user" ] || gid=""
  want_uid="$(sed -n 's/^ *runAsUser: *\([0-9]*\).*/\1/p' "$deployment" | head -n1)"
  want_gid="$(sed -n 's/^ *runAsGroup: *\([0-9]*\).*/\1/p' "$deployment" | head -n1)"
  if ! [[ "$uid" =~ ^[0-9]+$ ]] || [ "$uid" -eq 0 ]; then
    fail "the runtime stage's USER is '${user:-}' (want a numeric non-root uid:gid, which runAsNonRoot can verify)"
  elif [ "$uid" != "$want_uid" ] || [ "$gid" != "$want_gid" ]; then
    fail "USER $user differs from the manifests' runAsUser $want_uid / runAsGroup $want_gid"
  fi

  local exposed port
  exposed=" $(grep -iE '^[[:space:]]*EXPOSE[[:space:]]' "$work/runtime_stage" | sed -E 's/^[[:space:]]*EXPOSE//I' | tr '\n' ' ') "
  for port in 50051 9464 8080; do
    [[ "$exposed" == *" $port "* || "$exposed" == *" $port/tcp "* ]] || fail "the image does not EXPOSE $port"
  done
  local entry binary
  entry="$(grep -iE '^[[:space:]]*ENTRYPOINT[[:space:]]' "$work/runtime_stage" | tail -n1 || true)"
  binary="$(echo "$entry" | sed -nE 's/^[[:space:]]*ENTRYPOINT[[:space:]]+\[[[:space:]]*"([^"]+)".*/\1/Ip')"
  if [ -z "$binary" ]; then
    fail "no exec-form ENTRYPOINT [\"/path/to/clink_gateway\"] (the image has no shell to need)"
  elif ! grep -qE "^[[:space:]]*COPY --from=[^ ]+ .* $binary\$" "$work/runtime_stage"; then
    fail "ENTRYPOINT $binary is not where the binary is copied"
  fi

  # The preStop command of the manifests must exist in the image.
  local owner
  if [ -z "$prestop" ]; then
    fail "no preStop exec command found in $deployment"
  elif ! owner="$(package_of "$prestop")"; then
    fail "preStop runs $prestop, which no Debian package provides"
  elif [ "$(dpkg-query -W -f='${Essential}' "$owner")" != yes ]; then
    fail "preStop runs $prestop from $owner, which is not Essential (not in every image)"
  fi

  local pattern
  for pattern in .git 'bazel-*' tools/node_modules; do
    grep -qxF "$pattern" "$ignore" || fail ".dockerignore does not exclude $pattern"
  done
  return "$fails"
}

echo "gateway links $(wc -l <"$work/ldd.txt") libraries from ${#all_lib_pkg[@]} packages; NEEDED from: ${!needed_pkg[*]}"
if ! check "$dockerfile" "$dockerignore"; then
  exit 1
fi
echo "Dockerfile: ok"

# Self-test: each breakage must be caught.
mutate() {  # name, sed expression applied to the Dockerfile (or .dockerignore when name starts with ignore:)
  local name="$1" expr="$2" df="$work/Dockerfile.mutated" di="$work/dockerignore.mutated"
  cp "$dockerfile" "$df"
  cp "$dockerignore" "$di"
  if [[ "$name" == ignore:* ]]; then sed -i -E "$expr" "$di"; else sed -i -E "$expr" "$df"; fi
  if cmp -s "$df" "$dockerfile" && cmp -s "$di" "$dockerignore"; then
    echo "SELF-TEST FAIL  $name: the mutation changed nothing"
    return 1
  fi
  local out
  if out="$(check "$df" "$di")"; then
    echo "SELF-TEST FAIL  $name: went unnoticed"
    return 1
  fi
  echo "self-test ok    $name: $(echo "$out" | head -n1)"
}
bad=0
mutate "runtime library dropped" '/^ +libhiredis0\.14 \\$/d' || bad=1
mutate "libstdc++ dropped" '/^ +libstdc\+\+6 \\$/d' || bad=1
mutate "ca-certificates dropped" '/^ +ca-certificates \\$/d' || bad=1
mutate "runs as root" 's/^USER .*/USER root/' || bad=1
mutate "USER removed" '/^USER /d' || bad=1
mutate "UID differs" 's/^USER .*/USER 1000:1000/' || bad=1
mutate "not Debian 12" 's/^FROM debian:bookworm-slim/FROM ubuntu:22.04/' || bad=1
mutate "single stage" '/^FROM debian:bookworm AS build/d' || bad=1
mutate "no install_deps" 's#^(RUN .*)tools/install_deps\.sh#\1true#' || bad=1
mutate "metrics port not exposed" 's/^EXPOSE .*/EXPOSE 50051/' || bad=1
mutate "webhook port not exposed" 's/^EXPOSE .*/EXPOSE 50051 9464/' || bad=1
mutate "shell-form entrypoint" 's#^ENTRYPOINT .*#ENTRYPOINT /usr/local/bin/clink_gateway#' || bad=1
mutate "not a Debian package" 's/^( +)zlib1g \\$/\1zlib1g \\\n\1libnotreal9 \\/' || bad=1
mutate "ignore:.git in context" '/^\.git$/d' || bad=1
[ "$bad" -eq 0 ] || exit 1
echo "dockerfile self-test: ok"
