"""The facenames desktop app (PyQt5): python3 -m facenames.app [--library DIR]."""
