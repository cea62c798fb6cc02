#!/usr/bin/env python3
"""The README's config table is train_gpt --print-config, row for row.

    /usr/bin/python3 tests/config/check_config_table.py ROOT BUILD          check
    /usr/bin/python3 tests/config/check_config_table.py ROOT BUILD --fix    rewrite the README's table

Every key's default and meaning come from one place (config_fields() in
src/config/config.cpp); this check fails, printing the table to paste, when
the README says otherwise.
"""
import re
import subprocess
import sys

HEADER = ["| key | default | meaning |", "|---|---|---|"]


def rows_from_binary(build):
    text = subprocess.run([f"{build}/train_gpt", "--print-config"], check=True, capture_output=True,
                          text=True).stdout
    rows, section = [], None
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if not line.startswith(" "):
            section = line.rstrip(":")
            continue
        match = re.fullmatch(r'  (\w+): ("[^"]*"|\S+)  # (.+)', line)
        if not match:
            sys.exit(f"FAIL: --print-config line without a value and a meaning: {line!r}")
        key, value, doc = match.groups()
        if value.startswith('"'):
            value = value[1:-1]
            value = f"`{value}`" if value else ""
        rows.append(f"| `{section}.{key}` | {value} | {doc} |")
    return rows


def main():
    root, build = sys.argv[1], sys.argv[2]
    expected = HEADER + rows_from_binary(build)
    readme = open(f"{root}/README.md").read().split("\n")
    start = readme.index(HEADER[0])
    end = start
    while end < len(readme) and readme[end].startswith("|"):
        end += 1
    if "--fix" in sys.argv:
        open(f"{root}/README.md", "w").write("\n".join(readme[:start] + expected + readme[end:]))
        print(f"README.md: config table rewritten ({len(expected) - 2} keys)")
        return
    actual = readme[start:end]
    if actual != expected:
        missing = [r for r in expected if r not in actual]
        extra = [r for r in actual if r not in expected]
        sys.exit("FAIL: README.md's config table differs from train_gpt --print-config\n"
                 + "".join(f"  README lacks: {r}\n" for r in missing)
                 + "".join(f"  README has:   {r}\n" for r in extra)
                 + f"  rewrite it with: /usr/bin/python3 {sys.argv[0]} ROOT BUILD --fix")
    print(f"README.md's config table: {len(expected) - 2} keys, each as train_gpt --print-config says")


if __name__ == "__main__":
    main()
