# Mounting helpers for the QGIS chroots (sourced by setup_qgis_chroot.sh and run_qgis_tests.sh).
#
# chroot_mount ROOT REPO: /proc, /sys, /dev, /dev/pts, the repository at its own path and, when it exists, the
#   shared data folder beside it (../shared, what tests_qgis reads) at its own path. Idempotent.
# chroot_umount ROOT: undoes it (lazy unmounts, deepest first), so that the chroot can be removed.

_chroot_bind() {  # SRC DST [ro]
    local src="$1" dst="$2"
    mkdir -p "$dst"
    # a bind left by an earlier run that was killed may show a directory since deleted and made again (a
    # re-cloned checkout): same path, another inode. Replace it, or the chroot sees the old, empty tree.
    if mountpoint -q "$dst" && [ "$(stat -c %d:%i "$src")" != "$(stat -c %d:%i "$dst")" ]; then
        umount -l "$dst" || true
    fi
    if ! mountpoint -q "$dst"; then
        mount --bind "$src" "$dst"
        if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$dst"; fi
    fi
}

chroot_mount() {
    local root="$1" repo="$2"
    mkdir -p "$root/proc" "$root/sys" "$root/dev"
    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
    mountpoint -q "$root/sys" || mount -t sysfs sysfs "$root/sys"
    _chroot_bind /dev "$root/dev"
    _chroot_bind /dev/pts "$root/dev/pts"
    _chroot_bind "$repo" "$root$repo"
    local shared
    shared="$(cd "$repo/.." && pwd)/shared"
    if [ -d "$shared" ]; then _chroot_bind "$shared" "$root$shared" ro; fi
    if [ -n "${HADCORE_DATA:-}" ] && [ -d "$HADCORE_DATA" ]; then _chroot_bind "$HADCORE_DATA" "$root$HADCORE_DATA" ro; fi
    # name resolution for pip inside the chroot
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

chroot_mounted() {  # ROOT: true while anything is mounted under ROOT
    awk -v r="$1" '$2 == r || index($2, r "/") == 1 {f = 1} END {exit !f}' /proc/mounts
}

chroot_umount() {
    local root="$1"
    [ -d "$root" ] || return 0
    # every mount point under ROOT, deepest first
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r)
}
