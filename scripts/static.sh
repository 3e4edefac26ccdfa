# Sourced by scripts/install and bench/run: decides how final-pm's executable
# is linked.
#
# On Linux with glibc, final-pm is linked statically when the C library's
# static archives are installed (Debian/Ubuntu: libc6-dev, Fedora:
# glibc-static). A static executable starts without the dynamic loader
# opening, mapping and binding libc, libm and libgcc_s: about 1.3 ms less for
# every `final-pm show` (bench/README.md, "The executable"). It is also not
# position-independent, so it has no relocations to apply at start either
# (about 0.2 ms more): like Go's executables, its code is at a fixed
# address, while its stack, heap and mappings are still randomised.
# Elsewhere it is linked the usual way.
#
# Sets STATIC_TARGET (the host triple, or empty) and STATIC_ENV (the
# variable that adds the static flag, for `env`, or empty); a static build is
# `env "$STATIC_ENV" cargo build --target "$STATIC_TARGET" ...`. The target is
# named explicitly so that the flag reaches only what is built for it, not the
# build scripts and proc-macros cargo builds for the host, which cannot be
# linked statically.
STATIC_TARGET=""
STATIC_ENV=""
static_host="$(rustc -vV | sed -n 's/^host: //p')"
case "$static_host" in
  *-linux-gnu*)
    static_probe="$(mktemp)"
    if printf 'int main(void) { return 0; }\n' | cc -x c -static -o "$static_probe" - 2>/dev/null; then
      STATIC_TARGET="$static_host"
      STATIC_ENV="CARGO_TARGET_$(echo "$static_host" | tr 'a-z-' 'A-Z_')_RUSTFLAGS=-C target-feature=+crt-static -C relocation-model=static"
    else
      echo "final-pm: no static C library here (libc6-dev / glibc-static); linking dynamically" >&2
    fi
    rm -f "$static_probe"
    ;;
esac
