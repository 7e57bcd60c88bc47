#!/usr/bin/env bash
# Builds the gateway's container image from the repository's Dockerfile with buildah: no Docker
# daemon and no registry. The build context is a clean export of the commit (git archive HEAD:
# no bazel-* outputs, no node_modules, no untracked or uncommitted files), and the image is
# tagged with that commit:
#   tools/build_image.sh                 # -> localhost/clink-gateway:<full commit sha>
#   IMAGE=localhost/clink-gateway:dev tools/build_image.sh
#   BASE_REFRESH=1 tools/build_image.sh  # new Debian bases (security updates), new layers
# Prints the image reference on the last line of standard output. Exit status 77 (with the
# reason on standard error) means this machine cannot build images (no root, buildah not
# installed, or no mount namespaces, as in an unprivileged container): a skip, not a failure.
#
# The Dockerfile's bases (debian:bookworm, debian:bookworm-slim) cannot be pulled here, so they
# are made once per machine from Debian's archive with debootstrap and kept in local storage
# (rebuilt when this recipe or the host's extra CA certificates change, or with BASE_REFRESH=1):
#   - debian:bookworm-slim (the runtime base): a minbase debootstrap trimmed like Docker's slim
#     image (no docs but copyright files, no man pages, locales or apt lists; dpkg keeps them out
#     of later installs too), about 80 MB;
#   - debian:bookworm (the build stage only): minbase plus the host's extra CA certificates
#     (/usr/local/share/ca-certificates), which npm and apt over HTTPS need behind a
#     TLS-inspecting proxy. They never reach the runtime stage.
# Both get the host's Debian apt sources and Acquire:: settings, so apt-get in the build reaches
# the archive the host uses. Layers are cached (buildah --layers): only what changed is rebuilt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
workspace="$PWD"

skip() {
  echo "build_image: SKIP: $*" >&2
  exit 77
}

# Bumped when the base recipe below changes (the bases are then made again).
readonly BASE_RECIPE=1
readonly SLIM=localhost/debian:bookworm-slim
readonly FULL=localhost/debian:bookworm

[ "$(id -u)" -eq 0 ] || skip "needs root (rootful buildah and debootstrap); this is uid $(id -u)"
for tool in buildah podman debootstrap git; do
  command -v "$tool" >/dev/null 2>&1 ||
    skip "$tool is not installed (tools/install_deps.sh installs buildah, podman, runc, debootstrap)"
done
unshare --mount --pid --fork true 2>/dev/null ||
  skip "cannot create mount and pid namespaces here (an unprivileged container?): buildah cannot run"
buildah info >/dev/null 2>&1 || skip "buildah info failed: $(buildah info 2>&1 | tail -n1)"
[ -r /etc/os-release ] && . /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] ||
  skip "the bases are debootstrapped from this host's Debian 12 archive; this is ${PRETTY_NAME:-not Debian}"

# buildah keeps RUN --mount=type=cache directories (Bazel's disk cache) under $TMPDIR: one fixed
# place, whoever runs this (a Bazel test sets its own TMPDIR).
export TMPDIR=/var/tmp

commit="$(git -C "$workspace" rev-parse HEAD)"
image="${IMAGE:-localhost/clink-gateway:$commit}"
if [ -n "$(git -C "$workspace" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo "build_image: note: uncommitted changes are not in the image (it is built from $commit)" >&2
fi

work="$(mktemp -d /var/tmp/clink-gateway-image.XXXXXX)"
containers=()
cleanup() {
  local c
  for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- The bases.

# The host's Debian archive (deb822 or one-line sources).
mirror="$(sed -n 's/^URIs: *\([^ ]*\/debian\/\{0,1\}\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
if [ -z "$mirror" ]; then
  mirror="$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\/\{0,1\}\) bookworm .*/\2/p' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"
# The apt configuration the bases get: Debian's sources only (no third-party repositories), and
# the host's Acquire:: settings (proxy, validity of a snapshot archive).
apt_sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && grep -qE '^[^#]*[a-z]+://[^ ]*/debian(-security)?/?( |$)' "$f" && apt_sources+=("$f")
done
[ "${#apt_sources[@]}" -gt 0 ] || skip "no Debian archive in this host's apt sources"
apt_conf=()
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  [ -f "$f" ] && grep -q '^[[:space:]]*Acquire::' "$f" && apt_conf+=("$f")
done
extra_cas=()
while IFS= read -r f; do extra_cas+=("$f"); done < <(find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort)

recipe_key="$( {
  echo "recipe $BASE_RECIPE mirror $mirror"
  cat ${apt_sources[@]+"${apt_sources[@]}"} ${apt_conf[@]+"${apt_conf[@]}"} ${extra_cas[@]+"${extra_cas[@]}"}
} | sha256sum | cut -c1-16)"

base_key_of() {
  buildah inspect --type image --format '{{index .OCIv1.Config.Labels "io.clink-gateway.base"}}' "$1" 2>/dev/null || true
}

make_bases() {
  local rootfs="$work/rootfs" slim="$work/slim" f
  echo "build_image: debootstrap bookworm (minbase) from $mirror" >&2
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    exit 1
  }
  rm -f "$rootfs/etc/apt/sources.list"
  for f in "${apt_sources[@]}"; do cp "$f" "$rootfs/etc/apt/sources.list.d/"; done
  for f in ${apt_conf[@]+"${apt_conf[@]}"}; do cp "$f" "$rootfs/etc/apt/apt.conf.d/"; done
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/log/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old

  # The runtime base, trimmed like Docker's slim images: nothing a program reads at run time.
  cp -a "$rootfs" "$slim"
  cat >"$slim/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
# Documentation, manuals and translations are not installed in this image (copyright files are).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  cat >"$slim/etc/apt/apt.conf.d/slim" <<'EOF'
# No package caches, no translations of the package lists.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
  find "$slim/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$slim/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$slim"/usr/share/man/* "$slim"/usr/share/groff/* "$slim"/usr/share/info/* \
    "$slim"/usr/share/lintian/* "$slim"/usr/share/linda/* "$slim"/usr/share/locale/*

  tar -C "$slim" --numeric-owner -cf - . |
    podman import --change 'CMD ["bash"]' --message "debootstrap minbase bookworm, slim" - "$SLIM" >/dev/null
  tar -C "$rootfs" --numeric-owner -cf - . |
    podman import --change 'CMD ["bash"]' - localhost/clink-gateway-base:minbase >/dev/null

  # The build stage's base: the host's extra CA certificates trusted (never in the runtime base).
  local c
  c="$(buildah from --pull=never localhost/clink-gateway-base:minbase)"
  containers+=("$c")
  buildah run --isolation chroot "$c" -- sh -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*'
  if [ "${#extra_cas[@]}" -gt 0 ]; then
    buildah copy "$c" "${extra_cas[@]}" /usr/local/share/ca-certificates/ >/dev/null
    buildah run --isolation chroot "$c" -- update-ca-certificates >/dev/null
  fi
  buildah config --label "io.clink-gateway.base=$recipe_key" "$c"
  buildah commit --quiet "$c" "$FULL" >/dev/null
  buildah rm "$c" >/dev/null
  containers=()
  buildah rmi localhost/clink-gateway-base:minbase >/dev/null 2>&1 || true

  # The slim base gets its label the same way (podman import cannot set one).
  c="$(buildah from --pull=never "$SLIM")"
  containers+=("$c")
  buildah config --label "io.clink-gateway.base=$recipe_key" "$c"
  buildah commit --quiet "$c" "$SLIM" >/dev/null
  buildah rm "$c" >/dev/null
  containers=()
  rm -rf "$rootfs" "$slim"
}

started=$SECONDS
if [ -n "${BASE_REFRESH:-}" ] || [ "$(base_key_of "$SLIM")" != "$recipe_key" ] ||
  [ "$(base_key_of "$FULL")" != "$recipe_key" ]; then
  make_bases
  echo "build_image: bases made in $((SECONDS - started)) s" >&2
else
  echo "build_image: reusing the bases $FULL and $SLIM (recipe $recipe_key)" >&2
fi
# Every name the Dockerfile's FROM lines may resolve to.
buildah tag "$SLIM" docker.io/library/debian:bookworm-slim
buildah tag "$FULL" docker.io/library/debian:bookworm

# --- The image, from a clean export of the commit.

mkdir "$work/src"
git -C "$workspace" archive --format=tar "$commit" | tar -x -C "$work/src"
build_started=$SECONDS
buildah bud --isolation chroot --pull=never --layers ${BASE_REFRESH:+--no-cache} \
  --build-arg "GIT_COMMIT=$commit" -f "$work/src/Dockerfile" -t "$image" "$work/src" >&2
echo "build_image: built $image in $((SECONDS - build_started)) s ($((SECONDS - started)) s in all)" >&2
# The build stage's Bazel layer of another commit is never reused (GIT_COMMIT differs): remove
# those this script left (untagged, ~50 MB each), so that storage does not grow by one per commit.
for id in $(podman images --filter dangling=true --format '{{.ID}}'); do
  top="$(podman history --no-trunc --format '{{.CreatedBy}}' "$id" 2>/dev/null | head -n1 || true)"
  case "$top" in
    *"GIT_COMMIT=$commit "*) ;;
    *GIT_COMMIT=*"bazel build -c opt"*"//server:clink_gateway"*) podman rmi "$id" >/dev/null 2>&1 || true ;;
  esac
done
echo "$image"
