#!/usr/bin/env python3
"""Summarises a spin trail: one line per model step (`spin -t -p` output on stdin), the process and what it did.

Book-keeping lines (loop counters of FOR_USED, `else`, `(1)`, `goto`) are left out; the assertion that failed and the
final values of the variables that matter are printed at the end.
"""
import re
import sys

STEP = re.compile(r"^\s*(\d+):\s+proc\s+\d+\s+\(([A-Za-z]+)[^)]*\)\s+\S+\s+\(state \d+\)\s+\[(.*)\]\s*$")
NOISE = re.compile(r"^(\(1\)|else|goto .*|c = \(c\+1\)|c = 0|\(\(c<3\)\)|\(\(c==\d\)\)|.*run .*)$")
KEEP = ("now", "tStat", "tCancel", "proc", "launches", "rep", "jAtt", "jCancel", "starting", "deliverBy",
        "stopAnswered", "wantStart", "wantStop", "stopping", "bEp[", "agEp[", "out[", "pend[", "p_")

steps = []
finals = []
ended = False
for line in sys.stdin:
    m = STEP.match(line)
    if m:
        n, proc, stmt = m.groups()
        if NOISE.match(stmt):
            continue
        if steps and steps[-1][0] == n:
            steps[-1][2].append(stmt)
        else:
            steps.append((n, proc, [stmt]))
        continue
    if "assertion violated" in line or "invalid end state" in line or "trail ends" in line:
        finals.append(line.strip())
        ended = True
    elif ended and re.match(r"^\s*[A-Za-z_]+(\[\d\])? = \S+$", line) and line.strip().startswith(KEEP):
        finals.append(line.strip())
for n, proc, stmts in steps:
    text = " ; ".join(stmts)
    print(f"{n:>4} {proc:<9} {text[:220]}")
for line in finals:
    print("     " + line)
