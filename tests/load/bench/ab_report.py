"""What tests/load/bench/appointments-ab.sh prints of its runs (aiguillage-load's JSON).

    ab_report.py run LABEL FILE      one line for one run
    ab_report.py summary DIR ROUNDS  the medians of the A and B runs, and their ratio
"""
import json
import os
import statistics
import sys


def run(label, path):
    r = json.load(open(path))
    o = r["submit_to_offered_ms"]
    line = f"{label}: submit→offered p50 {o['p50']} ms, p99 {o['p99']} ms (n={o['count']}), consistent {r.get('consistent')}"
    a = r.get("appointments") or {}
    line += f"; accepted {a.get('accepted')}"
    if not a.get("accept_only"):
        m = a.get("person_messages") or {}
        line += (f", appointments {a.get('appointed')}, person messages {m.get('by_kind_and_status')}, "
                 f"due ones drained {m.get('due_drained_after_s')} s after the run")
    print(line)
    cpu = path.removesuffix(".json") + ".cpu.json"
    if os.path.exists(cpu):
        c = json.load(open(cpu))
        split = ", ".join(f"{g} {v:.2f}" for g, v in sorted(c["cores"].items(), key=lambda kv: -kv[1]))
        print(f"    cores used over {c['seconds']} s: {split}; the machine {c['machine_busy'] * 100:.0f} % busy "
              f"({c['machine_cores']} cores)")


def summary(work, rounds):
    for q in ("p50", "p99"):
        side = lambda l: [json.load(open(f"{work}/{l}{n}.json"))["submit_to_offered_ms"][q] for n in range(1, rounds + 1)]
        a, b = statistics.median(side("A")), statistics.median(side("B"))
        print(f"median submit→offered {q}: without appointments {a} ms, with {b} ms: ratio {b / a:.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3])
    else:
        summary(sys.argv[2], int(sys.argv[3]))
