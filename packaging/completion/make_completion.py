#!/usr/bin/env python3
"""Bash completion for imgtool or bootsrv, generated from their --help.

    make_completion.py PROGRAM BINARY OUT

Design note. The commands, subcommands and options live in one place each:
imgtool's command table (imgtool/cli.cc) and every command's
boost::program_options description, which is what `--help` prints. Reading
them back from the built binary at build time keeps the completion from
drifting: a new option is completed the day it is added. The script it
writes is static (no program runs at TAB time), so completion works for a
user who cannot read the store. An option whose help shows "arg" takes a
value, which completes as a file name (bash's default), as does any word
that is not an option, a command or a subcommand.
"""
import re
import subprocess
import sys

OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def run_help(binary, *words):
    r = subprocess.run([binary, *words, "--help"], capture_output=True, text=True)
    if r.returncode not in (0, 2) or not (r.stdout or r.stderr):
        sys.exit(f"make_completion.py: '{binary} {' '.join(words)} --help' failed ({r.returncode}): {r.stderr}")
    return r.stdout + r.stderr


def options(text):
    """(all options, options taking a value) from a program_options table:
    lines like "  -m [ --message ] arg   text" or "  --json   text"."""
    names, valued = [], []
    for line in text.splitlines():
        m = re.match(r"^\s+(-\S.*?)(?:\s{2,}|$)", line)
        if not m:
            continue
        column = m.group(1)
        takes = re.search(r"(^|\s)arg(\s|$)", column) is not None
        for o in OPTION.finditer(column):
            if o.group(1) not in names:
                names.append(o.group(1))
            if takes and o.group(1) not in valued:
                valued.append(o.group(1))
    return names, valued


def subcommands(program, command, text):
    subs = []
    for m in re.finditer(rf"^(?:Usage:)?\s+{program} {re.escape(command)} ([a-z][a-z0-9-]*)\b", text, re.M):
        if m.group(1) not in subs:
            subs.append(m.group(1))
    return subs


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    program, binary, out = sys.argv[1:]
    top = run_help(binary)
    if program == "imgtool":
        commands = []
        inside = False
        for line in top.splitlines():
            if line.startswith("Commands:"):
                inside = True
            elif inside:
                m = re.match(r"^  (\S+)\s", line)
                if not m:
                    break
                commands.append(m.group(1))
        global_valued = ["--store", "--server", "--token-file", "--ca-file"]
    else:
        commands = []
        for m in re.finditer(rf"^(?:Usage:)?\s+{program} ([a-z][a-z0-9-]*)\b", top, re.M):
            if m.group(1) not in commands:
                commands.append(m.group(1))
        global_valued = ["--config", "-c", "--store"]
    if not commands:
        sys.exit(f"make_completion.py: no commands found in '{binary} --help'")

    table = {"": (commands + ["--help", "--version"] + [o for o in global_valued if o.startswith("--")], [])}
    valued = set(global_valued)
    for c in commands:
        text = run_help(binary, c)
        subs = subcommands(program, c, text)
        names, takes = options(text)
        valued.update(takes)
        table[c] = (subs + names if subs else names or ["--help"], subs)
        for s in subs:
            names, takes = options(run_help(binary, c, s))
            valued.update(takes)
            table[c + " " + s] = (names or ["--help"], [])

    fn = "_bootfleet_" + program.replace("-", "_")
    has_subs = sorted(c for c in commands if table[c][1])
    lines = [
        f"# bash completion for {program}, generated from '{program} --help' by",
        "# packaging/completion/make_completion.py at build time; do not edit.",
        f"{fn}() {{",
        "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
        "  case $prev in",
        f"    {'|'.join(sorted(valued))}) return 0 ;;  # a value: bash completes file names",
        "  esac",
        "  local i w key= cmd= sub=",
        "  for ((i = 1; i < COMP_CWORD; i++)); do",
        "    w=${COMP_WORDS[i]}",
        "    case $w in",
        f"      {'|'.join(sorted(valued))}) ((i++)) ;;",
        "      -*) ;;",
        "      *) if [ -z \"$cmd\" ]; then cmd=$w",
        f"         elif [ -z \"$sub\" ] && [[ \" {' '.join(has_subs)} \" == *\" $cmd \"* ]]; then sub=$w",
        "         fi ;;",
        "    esac",
        "  done",
        "  key=$cmd${sub:+ $sub}",
        "  local words=",
        "  case $key in",
    ]
    for key, (words, subs) in table.items():
        lines.append(f"    '{key}') words='{' '.join(words)}' ;;")
    lines += [
        "    *) return 0 ;;",
        "  esac",
        "  if [[ $cur != -* && -n $key && -z $sub ]]; then",
        "    # a command with subcommands offers them; others complete files",
        "    words=$(printf '%s\\n' $words | grep -v '^-' | tr '\\n' ' ')",
        "    [ -n \"$words\" ] || return 0",
        "  elif [[ $cur != -* && -n $key ]]; then",
        "    return 0",
        "  fi",
        "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))",
        "}",
        f"complete -o bashdefault -o default -F {fn} {program}",
        "",
    ]
    with open(out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
