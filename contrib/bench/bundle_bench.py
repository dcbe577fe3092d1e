#!/usr/bin/env python3
"""The bundle library's own figures, no testbed needed (issue 13):

    python3 contrib/bench/bundle_bench.py [--dir /dev/shm] [--gb 1]

  extract   MB/s of safe_extract for an archive of large files (64 MiB
            each), read from a file and through a pipe fed by pack (GNU
            tar, then the stdlib writer), next to GNU tar's own extract
  snapshot  ms of tree_changes.snapshot and changes for 20,000 entries
  probe     us of tree_probe.digest for a busybox-like tree (~400 entries)
            and for the 20,000-entry tree

Each figure is the best of 3 runs. --dir is where the trees go (tmpfs
by default, so that the disk does not set the pace).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from scrun_rest.bundle import pack, safe_extract, tree_changes, tree_probe  # noqa: E402

FILE_MIB = 64


def best_of(runs, work, before=None):
    times = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def big_files(root, total_bytes):
    os.makedirs(root)
    block = os.urandom(1 << 20)
    for index in range(max(1, total_bytes // (FILE_MIB << 20))):
        with open(os.path.join(root, "f%02d" % index), "wb") as handle:
            for _ in range(FILE_MIB):
                handle.write(block)


def many_entries(root, count):
    """count entries: 20 dirs of 50 dirs of files, like a rootfs's spread."""
    made = 0
    for top in range(20):
        for sub in range(50):
            path = os.path.join(root, "d%02d" % top, "s%02d" % sub)
            os.makedirs(path)
            made += 1 + (sub == 0)
            for name in range(count // 1000 - 1):
                with open(os.path.join(path, "f%d" % name), "w") as handle:
                    handle.write("x" * (name * 37 % 4000))
                made += 1
    return made


def busybox_like(root):
    os.makedirs(os.path.join(root, "bin"))
    with open(os.path.join(root, "bin", "busybox"), "wb") as handle:
        handle.write(os.urandom(1100000))
    for index in range(390):
        os.symlink("busybox", os.path.join(root, "bin", "tool%d" % index))
    for name in ("etc", "home", "root", "tmp", "usr", "var", "dev", "proc", "sys"):
        os.mkdir(os.path.join(root, name))
    for name in ("passwd", "group", "hosts", "hostname", "resolv.conf", "shadow"):
        with open(os.path.join(root, "etc", name), "w") as handle:
            handle.write(name + "\n")


def extract_from_pack(src, dest, tar_program):
    saved = pack.tar_program
    pack.tar_program = tar_program
    read_fd, write_fd = os.pipe()

    def writer():
        try:
            pack.pack(src, write_fd)
        finally:
            os.close(write_fd)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        safe_extract.extract(read_fd, dest)
    finally:
        os.close(read_fd)
        thread.join()
        pack.tar_program = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/dev/shm")
    parser.add_argument("--gb", type=float, default=1.0)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bundle-bench-", dir=args.dir)
    try:
        run(work, int(args.gb * (1 << 30)))
    finally:
        shutil.rmtree(work)


def run(work, total_bytes):
    src = os.path.join(work, "big")
    dest = os.path.join(work, "dest")
    big_files(src, total_bytes)
    archive = os.path.join(work, "big.tar")
    with open(archive, "wb") as handle:
        pack.pack(src, handle.fileno())
    megabytes = total_bytes / 1e6

    def fresh_dest():
        shutil.rmtree(dest, ignore_errors=True)
        os.mkdir(dest)

    def from_file():
        with open(archive, "rb") as handle:
            safe_extract.extract(handle.fileno(), dest)
    print("extract  %.0f MB of %d MiB files into %s" % (megabytes, FILE_MIB, work))
    print("  safe_extract from a file      %6.0f MB/s" % (megabytes / best_of(3, from_file, fresh_dest)))
    gnu = pack.tar_program()
    if gnu:
        print("  safe_extract from pack (tar)  %6.0f MB/s" % (megabytes / best_of(
            3, lambda: extract_from_pack(src, dest, lambda: gnu), fresh_dest)))
    print("  safe_extract from pack (py)   %6.0f MB/s" % (megabytes / best_of(
        3, lambda: extract_from_pack(src, dest, lambda: None), fresh_dest)))
    if gnu:
        print("  GNU tar -x from a file        %6.0f MB/s" % (megabytes / best_of(
            3, lambda: subprocess.check_call([gnu.path, "-xf", archive, "-C", dest]), fresh_dest)))
    shutil.rmtree(src)
    os.remove(archive)
    shutil.rmtree(dest, ignore_errors=True)

    tree = os.path.join(work, "tree")
    os.mkdir(tree)
    count = many_entries(tree, 20000)
    snap = tree_changes.snapshot(tree)
    print("snapshot %d entries" % len(snap))
    print("  snapshot                      %6.1f ms" % (1000 * best_of(3, lambda: tree_changes.snapshot(tree))))
    print("  changes                       %6.1f ms" % (1000 * best_of(3, lambda: tree_changes.changes(tree, snap))))
    box = os.path.join(work, "busybox")
    busybox_like(box)
    print("probe")
    print("  digest, busybox-like (%d)    %6.0f us" % (
        len(tree_changes.snapshot(box)), 1e6 * best_of(5, lambda: tree_probe.digest(box))))
    print("  digest, %d entries        %6.0f us" % (
        count, 1e6 * best_of(5, lambda: tree_probe.digest(tree))))
    print("  size, %d entries          %6.0f us" % (
        count, 1e6 * best_of(5, lambda: tree_probe.size(tree, 1 << 60))))


if __name__ == "__main__":
    main()
