#!/usr/bin/env bash
# Installs Debian's SLURM and munge for the integration tests (tests/test_launch_slurm.py) when
# they are missing. Idempotent and quick when everything is installed.
#
# Exit status:
#   0  installed (now or before), or it cannot install on this machine: not root, no apt-get, or
#      apt-get update refused (no reachable package repository). The reason is printed and the SLURM
#      tests skip with it: SLURM cannot run here at all.
#   1  it could install (root, apt-get, repositories answer) but the install failed, or the binaries
#      are still missing afterwards: a broken CI machine, reported as a failure.
set -u

PACKAGES=(slurmctld slurmd slurm-client munge)
BINARIES=(slurmctld slurmd sbatch srun scontrol squeue scancel sinfo munged mungekey)

export PATH="$PATH:/usr/sbin:/sbin"  # the daemons live in sbin, not on a user's PATH

missing_binaries() {
    local binary missing=()
    for binary in "${BINARIES[@]}"; do
        command -v "$binary" >/dev/null 2>&1 || missing+=("$binary")
    done
    echo "${missing[*]}"
}

missing=$(missing_binaries)
if [ -z "$missing" ]; then
    echo "slurm-deps: SLURM and munge are installed"
    exit 0
fi

echo "slurm-deps: missing $missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-deps: not root, cannot install ${PACKAGES[*]}; the SLURM integration tests will skip"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "slurm-deps: no apt-get on this machine; the SLURM integration tests will skip"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -q; then
    echo "slurm-deps: apt-get update refused (no reachable package repository);" \
        "the SLURM integration tests will skip"
    exit 0
fi
# Installing must not start the packaged services (the tests start their own daemons with a
# temporary configuration): policy-rc.d answers 101 ("action forbidden") for the duration.
policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}  # overridable for tests/test_launch_testbed.py
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && trap 'rm -f "$policy"' EXIT
fi
if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; then
    echo "slurm-deps: apt-get install ${PACKAGES[*]} failed (root, apt-get and repositories available)" >&2
    exit 1
fi
missing=$(missing_binaries)
if [ -n "$missing" ]; then
    echo "slurm-deps: installed ${PACKAGES[*]} but still missing $missing" >&2
    exit 1
fi
echo "slurm-deps: installed ${PACKAGES[*]}"
exit 0
