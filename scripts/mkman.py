#!/usr/bin/env python3
"""mkman.py: writes a man page from one of the docs' Markdown files, so the man page and the
Markdown reference are one text (docs/cli.md -> facenames(1), docs/configuration.md ->
facenames.conf(5)). meson builds the pages with it (docs/meson.build).

  mkman.py --name NAME --section N --summary TEXT --version V [--see-also REF]...
           [--program PATH] MARKDOWN OUTPUT

With --program, the page also gets a COMMAND REFERENCE section holding `PROGRAM help COMMAND` for
every command `PROGRAM --help` lists, so each command's options come from the program itself and
a command added to the program appears without editing the Markdown or this script.

It understands the Markdown the docs use: headings (# is the title, ## a section, ### a
subsection), paragraphs, `code`, **bold**, [links](target), fenced code blocks, tables (each row
becomes a tagged paragraph), and bullet and numbered lists.
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile

# Links between the docs become references to the man pages that carry them.
PAGE_OF = {"cli.md": "facenames(1)", "configuration.md": "facenames.conf(5)"}


def esc(text):
    """Escapes roff's specials in plain text; characters beyond ASCII become \\[uXXXX] (troff
    reads its input as Latin-1 unless a preprocessor converts it)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


def inline(text):
    """Markdown inline markup to roff font changes, the rest escaped."""
    out = []
    pos = 0
    pattern = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)]+)\)")
    for m in pattern.finditer(text):
        out.append(esc(text[pos:m.start()]))
        if m.group(1) is not None:
            out.append("\\fB" + esc(m.group(1)) + "\\fR")
        elif m.group(2) is not None:
            out.append("\\fB" + esc(m.group(2)) + "\\fR")
        else:
            label, target = m.group(3), m.group(4)
            page = PAGE_OF.get(os.path.basename(target.split("#")[0]))
            label_roff = inline(label)
            if page and label.strip("`").endswith(".md"):
                out.append(esc(page))  # "see configuration.md" reads "see facenames.conf(5)"
            elif page and page not in label:
                out.append(f"{label_roff} (see {esc(page)})")
            else:
                out.append(label_roff)
        pos = m.end()
    out.append(esc(text[pos:]))
    return "".join(out)


def line(s):
    """A text line: one starting with a dot or a quote would be a request, so guard it."""
    return "\\&" + s if s.startswith((".", "'")) else s


def table_cells(row):
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|"):
        row = row[:-1]
    # A "\|" inside a cell (an escaped pipe) stays a pipe.
    cells = re.split(r"(?<!\\)\|", row)
    return [c.strip().replace("\\|", "|") for c in cells]


def convert(md):
    """The Markdown body as roff, and the first code block before any section (the synopsis)."""
    out = []
    lines = md.splitlines()
    i = 0
    para = []
    synopsis = None
    seen_section = False

    def flush():
        if para:
            out.append(".PP")
            out.append(line(inline(" ".join(p.strip() for p in para))))
            para.clear()

    while i < len(lines):
        ln = lines[i]
        stripped = ln.strip()
        if stripped.startswith("```"):
            flush()
            block = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                block.append(lines[i])
                i += 1
            i += 1
            indent = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
            block = [b[indent:] for b in block]
            if not seen_section and synopsis is None:
                synopsis = block
                continue
            out += [".PP", ".RS 4", ".nf"] + [line(esc(b)) for b in block] + [".fi", ".RE"]
            continue
        if stripped.startswith("#"):
            flush()
            level = len(stripped) - len(stripped.lstrip("#"))
            title = stripped[level:].strip()
            if level == 1:
                pass  # the page's name and summary replace the title
            elif level == 2:
                seen_section = True
                out.append('.SH "' + inline(title).upper().replace('"', "") + '"')
            else:
                out.append('.SS "' + inline(title).replace('"', "") + '"')
            i += 1
            continue
        if stripped.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(table_cells(lines[i]))
                i += 1
            header, body = rows[0], [r for r in rows[1:] if not all(re.fullmatch(r":?-+:?", c)
                                                                     for c in r)]
            for r in body:
                out.append(".TP")
                out.append(line(inline(r[0])))
                parts = []
                for h, c in zip(header[1:-1], r[1:-1]):
                    parts.append(f"{h}: {c}.".replace("..", "."))
                parts.append(r[-1] if len(r) > 1 else "")
                out.append(line(inline(" ".join(p for p in parts if p))))
            continue
        m = re.match(r"^(\s*)(-|\d+\.)\s+(.*)", ln)
        if m and not (para and m.group(1)):
            flush()
            mark = "\\(bu" if m.group(2) == "-" else m.group(2)
            item = [m.group(3)]
            i += 1
            nested = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^\s*(-|\d+\.)\s", lines[i]):
                if lines[i].strip().startswith("```"):
                    break
                item.append(lines[i].strip())
                i += 1
            out.append(f".IP {mark} 4")
            out.append(line(inline(" ".join(item))))
            # A code block indented under the item belongs to it.
            if i < len(lines) and lines[i].strip().startswith("```") and lines[i].startswith(" "):
                i += 1
                while i < len(lines) and not lines[i].strip().startswith("```"):
                    nested.append(lines[i].strip())
                    i += 1
                i += 1
                out += [".RS 4", ".nf"] + [line(esc(b)) for b in nested] + [".fi", ".RE"]
            continue
        if not stripped:
            flush()
            i += 1
            continue
        para.append(ln)
        i += 1
    flush()
    return out, synopsis


def program_help(program):
    """`PROGRAM help COMMAND` for every command under "Commands:" in `PROGRAM --help`."""
    with tempfile.TemporaryDirectory() as home:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LC_ALL": "C",
               "COLUMNS": "100", "ASAN_OPTIONS": "detect_leaks=0"}
        run = lambda *a: subprocess.run([program, *a], env=env, cwd=home, check=True,
                                        stdout=subprocess.PIPE, text=True).stdout
        top = run("--help")
        commands, on = [], False
        for ln in top.splitlines():
            if ln.startswith("Commands:"):
                on = True
            elif on and not ln.strip():
                break
            elif on and re.match(r"^  [a-z]", ln):
                name = ln.split()[0]
                if name != "help" and name not in commands:  # a command may take two lines
                    commands.append(name)
        return [(c, run("help", c)) for c in commands]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--section", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--see-also", action="append", default=[])
    ap.add_argument("--program")
    ap.add_argument("markdown")
    ap.add_argument("output")
    a = ap.parse_args()

    with open(a.markdown, encoding="utf-8") as f:
        md = f.read()
    body, synopsis = convert(md)
    # A reproducible date: the package's (SOURCE_DATE_EPOCH), else the Markdown file's.
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", os.stat(a.markdown).st_mtime))
    date = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d")
    title = {"1": "User Commands", "5": "File Formats"}.get(a.section, "")
    out = [f'.\\" Generated by scripts/mkman.py from docs/{os.path.basename(a.markdown)}; '
           "edit that file, not this one.",
           f'.TH "{a.name.upper()}" "{a.section}" "{date}" "facenames {a.version}" "{title}"',
           ".SH NAME", f"{esc(a.name)} \\- {esc(a.summary)}"]
    if synopsis:
        out += [".SH SYNOPSIS", ".nf"] + [line(esc(s)) for s in synopsis] + [".fi"]
    if not body or not body[0].startswith(".SH"):
        out.append(".SH DESCRIPTION")
    out += body
    if a.program:
        out.append('.SH "COMMAND REFERENCE"')
        out.append(".PP")
        out.append("What \\fBfacenames help\\fR \\fICOMMAND\\fR prints for each command.")
        for name, text in program_help(a.program):
            out.append(f'.SS "{esc(name)}"')
            out += [".nf"] + [line(esc(t)) for t in text.rstrip("\n").splitlines()] + [".fi"]
    if a.see_also:
        out += [".SH \"SEE ALSO\"", ", ".join(
            re.sub(r"^(.*)\((\d)\)$", r"\\fB\1\\fR(\2)", esc(s)) for s in a.see_also)]
    text = "\n".join(out) + "\n"
    text = re.sub(r"\n\.PP\n(\.SH|\.SS)", r"\n\1", text)
    with open(a.output, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
