#!/usr/bin/env python3
"""models.py: copies the pinned face-api model files for installation, checking each against
models/SHA256SUMS, and checks an installed copy again (meson runs both; see models/meson.build).

  models.py copy SUMS SRC_DIR OUT_DIR   copy every file SUMS lists from SRC_DIR to OUT_DIR, plus
                                        SUMS itself; a missing or different file is an error
  models.py verify REL_DIR              check $MESON_INSTALL_DESTDIR_PREFIX/REL_DIR (meson install)
"""
import hashlib
import os
import shutil
import sys


def read_sums(path):
    sums = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or len(parts[0]) != 64:
                sys.exit(f"{path}:{n}: expected '<sha256>  <file>'")
            sums.append((parts[1].lstrip("*"), parts[0].lower()))
    return sums


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check(sums, directory, what):
    bad = []
    for name, want in sums:
        p = os.path.join(directory, name)
        if not os.path.isfile(p):
            bad.append(f"{p}: missing")
        elif sha256(p) != want:
            bad.append(f"{p}: SHA-256 differs from models/SHA256SUMS")
    if bad:
        sys.exit(f"models: {what}:\n  " + "\n  ".join(bad) +
                 "\n(run scripts/bootstrap in the source tree to install the pinned models)")


def main(argv):
    if len(argv) == 5 and argv[1] == "copy":
        sums_path, src, out = argv[2], argv[3], argv[4]
        sums = read_sums(sums_path)
        check(sums, src, f"the model files in {src} are not the pinned ones")
        os.makedirs(out, exist_ok=True)
        for name, _ in sums:
            shutil.copyfile(os.path.join(src, name), os.path.join(out, name))
        shutil.copyfile(sums_path, os.path.join(out, "SHA256SUMS"))
        check(sums, out, "copying the model files failed")
        return 0
    if len(argv) == 3 and argv[1] == "verify":
        prefix = os.environ.get("MESON_INSTALL_DESTDIR_PREFIX", "")
        d = os.path.join(prefix, argv[2]) if not os.path.isabs(argv[2]) else \
            os.environ.get("DESTDIR", "") + argv[2]
        check(read_sums(os.path.join(d, "SHA256SUMS")), d, "installed model files")
        print(f"models: {d}: every file matches SHA256SUMS")
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
