#!/usr/bin/env bash
# The Debian package: target/debian/levee_<version>_<arch>.deb, built with
# cargo-deb (pinned; installed under the tools directory if missing) from
# [package.metadata.deb] in controlplane/Cargo.toml: /usr/bin/levee, the
# systemd unit, /etc/levee/levee.toml (a conffile), the hugepage sysctl, the
# bare-metal script, the man page and shell completions.
#
#   scripts/package.sh                 release build, then the package
#   scripts/package.sh --profile dev   package the debug build (the tests)
#   scripts/package.sh --tool          only make sure cargo-deb is installed
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
LEVEE_TOOLS="${LEVEE_TOOLS:-/opt/levee-tools}"
cargo_deb="$LEVEE_TOOLS/cargo-deb/bin/cargo-deb"
if ! "$cargo_deb" --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "package: installing cargo-deb $CARGO_DEB_VERSION into $LEVEE_TOOLS/cargo-deb"
  cargo install -q cargo-deb --version "$CARGO_DEB_VERSION" --locked --root "$LEVEE_TOOLS/cargo-deb"
fi
[ "${1:-}" = "--tool" ] && exit 0

profile=release
if [ "${1:-}" = "--profile" ]; then profile="${2:?--profile needs a name}"; shift 2; fi
dir="$profile"
[ "$profile" = dev ] && dir=debug

cargo build -q --profile "$profile" -p levee-controlplane --bin levee
bin="target/$dir/levee"

# The man page and completions come from the CLI's own definition.
mkdir -p target/package/completions
"$bin" manpage | gzip -9n > target/package/levee.1.gz
"$bin" completions bash > target/package/completions/levee
"$bin" completions zsh > target/package/completions/_levee
"$bin" completions fish > target/package/completions/levee.fish

"$cargo_deb" -q -p levee-controlplane --no-build --profile "$profile" --no-strip --fast \
  -o target/debian/ "$@"
ls target/debian/levee_*.deb
