#!/usr/bin/env bash
# Installs Debian's SLURM and munge for the integration tests (tests/test_launch_slurm.py) when
# they are missing. Idempotent and quick when everything is installed. Never fails the build: when
# it cannot install (not root, no apt-get, no network), it says why and exits 0, and the SLURM
# tests skip with the reason.
set -u

PACKAGES=(slurmctld slurmd slurm-client munge)
BINARIES=(slurmctld slurmd sbatch srun scontrol squeue scancel munged mungekey)

export PATH="$PATH:/usr/sbin:/sbin"  # the daemons live in sbin, not on a user's PATH
missing=()
for binary in "${BINARIES[@]}"; do
    command -v "$binary" >/dev/null 2>&1 || missing+=("$binary")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "slurm-deps: SLURM and munge are installed"
    exit 0
fi

echo "slurm-deps: missing ${missing[*]}"
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
    echo "slurm-deps: apt-get update failed; the SLURM integration tests will skip"
    exit 0
fi
# Installing must not start the packaged services (the tests start their own daemons with a
# temporary configuration): policy-rc.d answers 101 ("action forbidden") for the duration.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
if apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; then
    echo "slurm-deps: installed ${PACKAGES[*]}"
else
    echo "slurm-deps: apt-get install ${PACKAGES[*]} failed; the SLURM integration tests will skip"
fi
[ "$created_policy" -eq 1 ] && rm -f "$policy"
exit 0
