#!/usr/bin/env python3
"""Man pages from docs/, with pandoc: one definition of each page's text.

    make_man.py --docs DOCS_DIR --imgtool IMGTOOL --pandoc PANDOC --version V --out DIR

writes DIR/imgtool.1, DIR/imgtool-COMMAND.1 (one per command imgtool --help
lists), DIR/bootsrv.8 and DIR/bootsrv.yaml.5.

Design note. docs/imgtool.md and docs/bootsrv.md are written as manuals
already (docs/bootsrv.md even has NAME, SYNOPSIS, ... headings), so the man
pages are cut out of them rather than written twice: imgtool-COMMAND(1) is
the "### imgtool COMMAND" section (all "### imgtool COMMAND SUB" sections for
commands with subcommands, with their "##" group's introduction),
imgtool(1) is the introduction, the conventions and each group's
introduction, bootsrv(8) is docs/bootsrv.md and bootsrv.yaml(5) its
CONFIGURATION FILE section with the reload rules of SIGNALS. Each page's
one-line NAME comes from `imgtool --help` (the command table in
imgtool/cli.cc), so a command added there without a docs section fails the
build here, naming it, instead of shipping without a page.
"""
import argparse
import os
import re
import subprocess
import sys


def fail(message):
    sys.stderr.write("make_man.py: " + message + "\n")
    sys.exit(1)


def headings(lines):
    """(index, level, title) of every markdown heading outside code blocks."""
    out, fence = [], None
    for i, line in enumerate(lines):
        m = re.match(r"^(```+|~~~+)", line)
        if m:
            if fence is None:
                fence = m.group(1)[0] * 3
            elif line.startswith(fence):
                fence = None
            continue
        if fence is None:
            h = re.match(r"^(#{1,6}) (.*)$", line)
            if h:
                out.append((i, len(h.group(1)), h.group(2).strip()))
    return out


def section(lines, marks, index):
    """The body of heading `index` (its lines up to the next heading of the same or a higher level)."""
    start, level, _ = marks[index]
    end = len(lines)
    for i, lv, _ in marks[index + 1:]:
        if lv <= level:
            end = i
            break
    return lines[start + 1:end]


def shift(lines, by):
    """Moves every heading (outside code blocks) `by` levels; level 1 is the least."""
    lines = list(lines)
    for i, level, title in headings(lines):
        lines[i] = "#" * max(1, level + by) + " " + title
    return lines


def relink(lines):
    """docs/ links point at files beside the page; a man page names them."""
    text = "\n".join(lines)
    text = re.sub(r"\[([^\]]+)\]\(#[^)]*\)", r"\1", text)                 # in-page anchors
    text = re.sub(r"\[([^\]]+)\]\(([a-z0-9_-]+\.md)(#[^)]*)?\)", r"\1 (docs/\2)", text)
    return text.split("\n")


def render(pandoc, out_path, title, section_no, version, body):
    meta = ["---", "title: " + title, "section: " + str(section_no), "header: bootfleet manual",
            "footer: bootfleet " + version, "---", ""]
    source = "\n".join(meta + relink(body)) + "\n"
    result = subprocess.run([pandoc, "-s", "-f", "markdown-smart", "-t", "man", "-o", out_path],
                            input=source.encode(), capture_output=True)
    if result.returncode != 0:
        fail(f"pandoc failed on {os.path.basename(out_path)}: {result.stderr.decode().strip()}")


def imgtool_commands(imgtool):
    """[(name, summary)] from `imgtool --help`'s command list."""
    text = subprocess.run([imgtool, "--help"], capture_output=True, text=True, check=True).stdout
    commands, inside = [], False
    for line in text.splitlines():
        if line.startswith("Commands:"):
            inside = True
            continue
        if inside:
            m = re.match(r"^  (\S+)\s+(.*)$", line)
            if not m:
                break
            commands.append((m.group(1), m.group(2)))
    if not commands:
        fail(f"no command list in the output of '{imgtool} --help'")
    return commands


def see_also(pages):
    return ["# SEE ALSO", "", ", ".join(f"**{n}**({s})" for n, s in pages), ""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", required=True)
    ap.add_argument("--imgtool", required=True)
    ap.add_argument("--pandoc", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    # --- imgtool ---
    path = os.path.join(a.docs, "imgtool.md")
    lines = open(path, encoding="utf-8").read().split("\n")
    marks = headings(lines)
    commands = imgtool_commands(a.imgtool)
    group_of = {}  # "### imgtool X" index -> its "##" group's index
    group = None
    for n, (_, level, title) in enumerate(marks):
        if level == 2:
            group = n
        elif level == 3:
            group_of[n] = group

    for name, summary in commands:
        parts = [n for n, (_, lv, t) in enumerate(marks)
                 if lv == 3 and (t == "imgtool " + name or t.startswith("imgtool " + name + " "))]
        if not parts:
            fail(f"{path}: no '### imgtool {name}' section for the command '{name}' that imgtool --help lists; "
                 "document it there (its man page is made from that section)")
        body = ["# NAME", "", f"imgtool-{name} - {summary}", ""]
        if len(parts) == 1 and marks[parts[0]][2] == "imgtool " + name:
            body += ["# DESCRIPTION", ""] + shift(section(lines, marks, parts[0]), -2)
        else:
            # A command with subcommands: its group's introduction, then one
            # section per subcommand.
            g = group_of[parts[0]]
            intro = section(lines, marks, g)
            first_sub = next((i for i, (at, lv, _) in enumerate(headings(intro)) if lv <= 3), None)
            if first_sub is not None:
                intro = intro[:headings(intro)[first_sub][0]]
            body += ["# DESCRIPTION", ""] + intro
            for p in parts:
                body += ["", "# " + marks[p][2].upper(), ""] + shift(section(lines, marks, p), -2)
        body += [""] + see_also([("imgtool", 1)])
        render(a.pandoc, os.path.join(a.out, f"imgtool-{name}.1"), f"IMGTOOL-{name.upper()}", 1, a.version, body)

    intro_end = next(i for i, lv, _ in marks if lv == 2)
    body = ["# NAME", "", "imgtool - build, version, publish and inspect bootfleet disk images", "",
            "# SYNOPSIS", ""] + lines[marks[0][0] + 1:intro_end]
    for n, (_, level, title) in enumerate(marks):
        if level != 2:
            continue
        sub = section(lines, marks, n)
        first = next((i for i, lv, _ in headings(sub) if lv == 3), None)
        body += ["", "# " + title.upper(), ""] + shift(sub[:first] if first is not None else sub, -1)
    body += ["", "# COMMANDS", ""]
    for name, summary in commands:
        body += [f"**imgtool-{name}**(1)", f":   {summary}", ""]
    body += see_also([("bootsrv", 8), ("bootsrv.yaml", 5)] + [(f"imgtool-{n}", 1) for n, _ in commands])
    render(a.pandoc, os.path.join(a.out, "imgtool.1"), "IMGTOOL", 1, a.version, body)

    # --- bootsrv ---
    path = os.path.join(a.docs, "bootsrv.md")
    lines = open(path, encoding="utf-8").read().split("\n")
    marks = headings(lines)
    if not marks or marks[0][1] != 1:
        fail(f"{path}: expected a '# bootsrv' title first")
    body = shift(lines[marks[0][0] + 1:], -1)
    # whatis(1) and lintian read NAME as "name - summary"; docs/ writes a dash.
    for i, line in enumerate(body):
        if line.startswith("bootsrv — "):
            body[i] = line.replace(" — ", " - ", 1)
            break
    body += [""] + see_also([("bootsrv.yaml", 5), ("imgtool", 1), ("systemd.service", 5)])
    render(a.pandoc, os.path.join(a.out, "bootsrv.8"), "BOOTSRV", 8, a.version, body)

    def named(title):
        for n, (_, lv, t) in enumerate(marks):
            if lv == 2 and t == title:
                return section(lines, marks, n)
        fail(f"{path}: no '## {title}' section (bootsrv.yaml(5) is made from it)")

    signals = "\n".join(named("SIGNALS"))
    sighup = re.search(r"^`SIGHUP`\n(.*?)(?=\n\n`|\Z)", signals, re.S | re.M)
    if not sighup:
        fail(f"{path}: no `SIGHUP` entry under SIGNALS (bootsrv.yaml(5) quotes it as RELOAD)")
    reload_text = re.sub(r"^: ?", "", sighup.group(1), flags=re.M).split("\n")
    body = ["# NAME", "", "bootsrv.yaml - the configuration file of bootsrv(8)", "",
            "# SYNOPSIS", "", "/etc/bootfleet/bootsrv.yaml (bootsrv --config FILE serve)", "",
            "# DESCRIPTION", ""] + shift(named("CONFIGURATION FILE"), -1) + \
           ["", "# RELOAD", "", "On SIGHUP (`systemctl reload bootsrv`):", ""] + reload_text + \
           ["", "# FILES", "", "/etc/bootfleet/bootsrv.yaml", ": the file bootsrv.service starts bootsrv with.", ""] + \
           see_also([("bootsrv", 8), ("imgtool", 1)])
    render(a.pandoc, os.path.join(a.out, "bootsrv.yaml.5"), "BOOTSRV.YAML", 5, a.version, body)


if __name__ == "__main__":
    main()
