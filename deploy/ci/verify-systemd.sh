#!/usr/bin/env bash
# `systemd-analyze verify` on every unit in deploy/systemd must print nothing: a warning (an
# unknown key, a value systemd cannot parse, a unit that does not exist) fails like an error.
# Then `systemd-analyze security --offline` must rate the exposure of each service at most 2.0.
#
# Nothing is installed on the machine beyond the systemd package (when systemd-analyze is
# missing): the units are checked in a throwaway root, <root>/etc/systemd/system, beside a copy of
# the host's own units (verify loads sysinit.target, network-online.target, ...), with the binary
# that `cargo build` made as <root>/usr/local/bin/easytier-probe, because verify checks that
# ExecStart= names an executable. The command lines themselves are checked by tests/deploy.rs.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "verify-systemd: systemd-analyze is missing; installing the systemd package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

binary=${CARGO_TARGET_DIR:-target}/debug/easytier-probe
[ -x "$binary" ] || cargo build --bin easytier-probe

host_units=
for dir in /usr/lib/systemd/system /lib/systemd/system; do
  if [ -e "$dir/sysinit.target" ]; then host_units=$dir; break; fi
done
[ -n "$host_units" ] || { echo "verify-systemd: no systemd unit directory on this machine" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/usr/local/bin"
cp -a "$host_units" "$root/usr/lib/systemd/system"
cp deploy/systemd/*.service deploy/systemd/*.timer deploy/systemd/*.target "$root/etc/systemd/system/"
ln "$binary" "$root/usr/local/bin/easytier-probe" 2>/dev/null || cp "$binary" "$root/usr/local/bin/easytier-probe"

units=("$root"/etc/systemd/system/*)
if ! out=$(systemd-analyze verify --man=no --root="$root" "${units[@]}" 2>&1); then
  printf '%s\n' "$out" >&2
  echo "verify-systemd: systemd-analyze verify failed" >&2
  exit 1
fi
if [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  echo "verify-systemd: systemd-analyze verify printed warnings (they count as failures)" >&2
  exit 1
fi
echo "verify-systemd: systemd-analyze verify: ${#units[@]} units, nothing to report"

# The drop-ins (<unit>.service.d/*.conf) hold keys newer than Debian 12's systemd 252
# (RestartSteps=, RestartMaxDelaySec=: 254). With a systemd that knows them, the units are
# verified again with the drop-ins in place and must still print nothing. With an older one,
# verify must complain of those keys alone ("Unknown key"), and of nothing else in the drop-ins.
newer_keys='RestartSteps|RestartMaxDelaySec'
version=$(systemd-analyze --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
dropins=(deploy/systemd/*.service.d/*.conf)
for conf in "${dropins[@]}"; do
  dir=$(basename "$(dirname "$conf")")
  mkdir -p "$root/etc/systemd/system/$dir"
  cp "$conf" "$root/etc/systemd/system/$dir/"
done
out=$(systemd-analyze verify --man=no --root="$root" "${units[@]}" 2>&1) || {
  printf '%s\n' "$out" >&2
  echo "verify-systemd: systemd-analyze verify failed with the drop-ins" >&2
  exit 1
}
if [ "${version:-0}" -ge 254 ]; then
  if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    echo "verify-systemd: systemd $version printed warnings for the drop-ins" >&2
    exit 1
  fi
  echo "verify-systemd: drop-ins: ${#dropins[@]}, verified with systemd $version, nothing to report"
else
  unexpected=$(printf '%s\n' "$out" | grep -Ev "\.conf:[0-9]+: Unknown key '($newer_keys)' in section \[Service\], ignoring\.$" | grep -v '^$' || true)
  if [ -n "$unexpected" ]; then
    printf '%s\n' "$unexpected" >&2
    echo "verify-systemd: the drop-ins have problems beyond the keys systemd $version does not know" >&2
    exit 1
  fi
  echo "verify-systemd: drop-ins: ${#dropins[@]}, for systemd >= 254; systemd $version knows all but ${newer_keys/|/ and }, as expected"
fi

for unit in "$root"/etc/systemd/system/*.service; do
  if ! out=$(systemd-analyze security --offline=true --threshold=20 --root="$root" "$unit" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "verify-systemd: $(basename "$unit") is exposed above 2.0" >&2
    exit 1
  fi
  printf 'verify-systemd: %s\n' "$(printf '%s\n' "$out" | grep 'Overall exposure' | sed 's/^→ //')"
done
