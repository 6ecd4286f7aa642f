"""Formats `touchstone ... --format json` output for tools/demo. Reads JSON on stdin.

  capacity  server list -> "gpu-01 2/2  gpu-02 1/1", exit 3 if any server is booked past max-tasks
  counts    task list   -> "queued=3 running=3"
  done      task list   -> exit 0 when every task has ended, 1 otherwise
  table     task list   -> the task table with each model's test accuracy
  failed    task list   -> the number of tasks that did not succeed
"""

import collections
import json
import sys
from datetime import datetime

TERMINAL = ("succeeded", "failed", "cancelled", "lost")


def parse(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def main(mode):
    data = json.load(sys.stdin)
    if mode == "capacity":
        over = [s["serverID"] for s in data if len(s["booked"]) > s["maxTasks"]]
        line = "  ".join("%s %d/%d" % (s["serverID"], len(s["booked"]), s["maxTasks"]) for s in data)
        print(line + ("  OVER CAPACITY: " + ",".join(over) if over else ""))
        return 3 if over else 0
    if mode == "counts":
        counts = collections.Counter(t["status"] for t in data)
        print(" ".join("%s=%d" % (k, v) for k, v in sorted(counts.items())))
        return 0
    if mode == "done":
        return 0 if data and all(t["status"] in TERMINAL for t in data) else 1
    if mode == "failed":
        print(sum(1 for t in data if t["status"] != "succeeded"))
        return 0
    if mode == "table":
        header = ["TASK", "NAME", "SERVER", "STATUS", "DURATION", "TEST ACCURACY"]
        rows = []
        for t in data:
            metrics = json.loads(t.get("outputs", {}).get("metrics.json") or "{}")
            start, end = parse(t.get("startedAt")), parse(t.get("finishedAt"))
            duration = "%.1fs" % (end - start).total_seconds() if start and end else "-"
            accuracy = "%.4f" % metrics["test_accuracy"] if "test_accuracy" in metrics else "-"
            rows.append([t["taskID"], t.get("name") or "-", t.get("serverID") or "-", t["status"], duration, accuracy])
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        for row in [header] + rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        return 0
    print("unknown mode %r" % mode, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
