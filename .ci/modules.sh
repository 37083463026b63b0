# The published modules, and how CI builds them alone: sourced by .ci/run,
# .ci/stores and .ci/modules (RELEASING.md says why it is done this way).
#
# The published modules require each other at the version being released,
# with no replace directive, as users get them; that version is tagged only
# at the release. In the workspace (go.work) it is this tree. Alone
# (GOWORK=off), the go command fetches it like a user's would: here from a
# local module proxy that .ci/modproxy builds from the working tree, into a
# module cache of this run (a cache kept from an earlier tree would hold a
# stale zip under the same version), with GONOSUMDB for these modules only
# (the checksum database does not know zips of an unreleased tree). Every
# other module comes from the machine's module cache or its GOPROXY.
#
# The modules' go.sum files hold no line for these modules: the hash of a
# zip of the tree changes with every commit. `alone` adds the tree's lines
# to a copy of go.mod and go.sum (-modfile), so the committed go.sum must
# still hold every other module's, as before. GOPRIVATE is not used: it
# would also set GONOPROXY and send the go command to the repository's
# VCS, past the local proxy.
#
#	modules_setup              build the proxy once (a child process reuses it)
#	trap modules_cleanup EXIT  remove it when the process that built it exits
#	alone DIR CMD...           run CMD in the module at DIR, alone, against it
#	modules_env CMD...         run CMD with the go environment of the proxy

# The published modules' directories; the root first.
published_modules=(. store/sqlstore store/redisstore otelmetrics cmd/finchreauth finchtest/spectest)

modules_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

modules_setup() {
  if [ -n "${FINCHREAUTH_MODULES:-}" ] && [ -f "$FINCHREAUTH_MODULES/go.sum" ]; then
    return 0 # built by the process that started this one
  fi
  # The machine's settings, before modules_env changes them.
  FINCHREAUTH_GOPROXY=$(go env GOPROXY)
  FINCHREAUTH_GOFLAGS=$(go env GOFLAGS)
  FINCHREAUTH_GOMODCACHE=$(go env GOMODCACHE)
  FINCHREAUTH_MODULES=$(mktemp -d "${TMPDIR:-/tmp}/finchreauth-modules.XXXXXX")
  modules_owner=$BASHPID
  export FINCHREAUTH_GOPROXY FINCHREAUTH_GOFLAGS FINCHREAUTH_GOMODCACHE FINCHREAUTH_MODULES
  FINCHREAUTH_VERSION=$(cd "$modules_repo/.ci/modproxy" && GOWORK=off go run . -repo "$modules_repo" \
    -out "$FINCHREAUTH_MODULES/proxy" -sums "$FINCHREAUTH_MODULES/go.sum.tmp" "${published_modules[@]}")
  export FINCHREAUTH_VERSION
  mv "$FINCHREAUTH_MODULES/go.sum.tmp" "$FINCHREAUTH_MODULES/go.sum"
}

modules_cleanup() {
  if [ "${modules_owner:-}" = "$BASHPID" ] && [ -n "${FINCHREAUTH_MODULES:-}" ]; then
    rm -rf "$FINCHREAUTH_MODULES"
  fi
}

# modules_env CMD...: runs CMD with GOWORK=off, the local proxy first, the
# run's module cache, and GOFLAGS (the machine's, then those given in
# MODULES_GOFLAGS). -trimpath lets the build cache reuse what it compiled
# from another run's module cache (without it, the cache's path is part of
# every package's key).
modules_env() {
  env GOWORK=off \
    GOPROXY="file://$FINCHREAUTH_MODULES/proxy,file://$FINCHREAUTH_GOMODCACHE/cache/download,$FINCHREAUTH_GOPROXY" \
    GOMODCACHE="$FINCHREAUTH_MODULES/modcache" \
    GONOSUMDB=github.com/finchkit/finchreauth \
    GOFLAGS="$FINCHREAUTH_GOFLAGS -modcacherw -trimpath ${MODULES_GOFLAGS:-}" \
    "$@"
}

# alone DIR CMD...: runs CMD in the module at DIR (relative to the
# repository) outside the workspace, its go.mod and go.sum read from a copy
# that has the tree's go.sum lines added.
alone() {
  local dir=$1; shift
  local copy="$FINCHREAUTH_MODULES/modfiles/${dir//\//_}"
  mkdir -p "$copy"
  cp "$modules_repo/$dir/go.mod" "$copy/go.mod"
  cat "$modules_repo/$dir/go.sum" "$FINCHREAUTH_MODULES/go.sum" >"$copy/go.sum"
  (cd "$modules_repo/$dir" && MODULES_GOFLAGS="-modfile=$copy/go.mod" modules_env "$@")
}
