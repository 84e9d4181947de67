"""python3 -m facenames.app [--library DIR] [--threads N] [--set KEY=VALUE]...

Opens the library (default: $FACENAMES_LIBRARY, else ~/.local/share/facenames), runs its jobs on
N worker threads in this process (default workers.cpu_max; 0 leaves them to a `facenames worker`)
and shows the jobs panel, the people view and the photo view."""
import argparse
import signal
import sys

from PyQt5.QtWidgets import QApplication, QMessageBox

from ..errors import FacenamesError
from .context import AppContext, default_library
from .window import MainWindow


def main(argv=None):
    ap = argparse.ArgumentParser(prog="facenames-app", description=__doc__.split("\n\n")[1])
    ap.add_argument("--library", default=None, help="library folder")
    ap.add_argument("--threads", type=int, default=-1, help="worker threads (-1: workers.cpu_max)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a configuration value (docs/configuration.md)")
    args = ap.parse_args(argv)
    values = {}
    for kv in args.set:
        if "=" not in kv:
            ap.error(f"--set wants KEY=VALUE, not {kv!r}")
        k, v = kv.split("=", 1)
        values[k.strip()] = v.strip()
    app = QApplication(sys.argv[:1])
    app.setApplicationName("facenames")
    try:
        ctx = AppContext(args.library or default_library(), args.threads, values)
    except FacenamesError as exc:
        QMessageBox.critical(None, "facenames", exc.message)
        print(f"facenames-app: {exc.message}", file=sys.stderr)
        return 1
    win = MainWindow(ctx)
    win.show()
    signal.signal(signal.SIGINT, lambda *_: win.close())
    return app.exec_()


if __name__ == "__main__":
    sys.exit(main())
