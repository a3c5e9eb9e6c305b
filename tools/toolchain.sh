# Pinned toolchains and the native build, sourced by ./reliab and .ci/run.
#
# Versions are pinned here and nowhere else: the newest stable releases that
# PyPI serves (ziglang, deno). pip --target unpacks the wheels into a folder of
# their own per version, so changing a pin installs beside the old one and a
# half-finished install (no .complete marker) is redone, never used.

RELIAB_DENO_VERSION="2.9.8"
RELIAB_ZIG_VERSION="0.17.1"

: "${root:?toolchain.sh needs \$root}"
RELIAB_TOOLCHAIN="$root/.toolchain"
RELIAB_LIB="$root/zig-out/lib/libreliab.so"
export RELIAB_LIB
# Deno's module and compile caches stay inside the project too.
export DENO_DIR="$RELIAB_TOOLCHAIN/deno-dir"
export DENO_NO_UPDATE_CHECK=1

reliab_say() { printf 'reliab: %s\n' "$*" >&2; }

# Installs one PyPI package at a pinned version into .toolchain/NAME-VERSION.
reliab_pip_install() {
  local name="$1" version="$2" dir="$RELIAB_TOOLCHAIN/$1-$2"
  [[ -f "$dir/.complete" ]] && return 0
  if ! python3 -m pip --version >/dev/null 2>&1; then
    reliab_say "installing python3-pip with apt-get (needed once to fetch toolchains)"
    if ! { apt-get update -qq && apt-get install -y -qq python3-pip; } >/dev/null 2>&1; then
      reliab_say "cannot install python3-pip: run 'apt-get install python3-pip' as root, then retry"
      exit 1
    fi
  fi
  reliab_say "installing $name $version into .toolchain/ (once)"
  rm -rf "$dir"
  if ! python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
      --target "$dir" "$name==$version" >"$RELIAB_TOOLCHAIN/pip-$name.log" 2>&1; then
    reliab_say "cannot install $name $version from PyPI: see .toolchain/pip-$name.log"
    exit 1
  fi
  touch "$dir/.complete"
}

# Puts deno and zig on PATH: a matching one already on PATH is used as it is.
reliab_toolchain_ensure() {
  mkdir -p "$RELIAB_TOOLCHAIN/bin"
  local have
  have="$(command -v deno >/dev/null 2>&1 && deno --version 2>/dev/null | head -n1 | awk '{print $2}')" || true
  if [[ "$have" != "$RELIAB_DENO_VERSION" ]]; then
    reliab_pip_install deno "$RELIAB_DENO_VERSION"
    ln -sf "$RELIAB_TOOLCHAIN/deno-$RELIAB_DENO_VERSION/bin/deno" "$RELIAB_TOOLCHAIN/bin/deno"
  fi
  have="$(command -v zig >/dev/null 2>&1 && zig version 2>/dev/null)" || true
  if [[ "$have" != "$RELIAB_ZIG_VERSION" ]]; then
    reliab_pip_install ziglang "$RELIAB_ZIG_VERSION"
    ln -sf "$RELIAB_TOOLCHAIN/ziglang-$RELIAB_ZIG_VERSION/ziglang/zig" "$RELIAB_TOOLCHAIN/bin/zig"
  fi
  export PATH="$RELIAB_TOOLCHAIN/bin:$PATH"
}

# Rebuilds libreliab.so when any native source is newer than it.
reliab_native_ensure() {
  if [[ -n "${RELIAB_LIB_OVERRIDE:-}" ]]; then
    RELIAB_LIB="$RELIAB_LIB_OVERRIDE"
    export RELIAB_LIB
    return 0
  fi
  if [[ -f "$RELIAB_LIB" ]] && [[ -z "$(find "$root/native" "$root/build.zig" -newer "$RELIAB_LIB" -type f -print -quit)" ]]; then
    return 0
  fi
  reliab_say "building the native core (zig build)"
  if ! (cd "$root" && zig build >"$RELIAB_TOOLCHAIN/zig-build.log" 2>&1); then
    cat "$RELIAB_TOOLCHAIN/zig-build.log" >&2
    reliab_say "native build failed: see the errors above (log in .toolchain/zig-build.log)"
    exit 1
  fi
  # zig build leaves an unchanged library's mtime alone; mark the check as
  # done, or an edit that did not change libreliab.so rebuilds on every run.
  touch "$RELIAB_LIB"
}
