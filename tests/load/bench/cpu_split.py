"""Runs a command (a load run) and says where the machine's CPU went meanwhile.

    cpu_split.py OUT.json -- COMMAND [ARGS...]

Reads every process's user and system time (/proc/PID/stat) before and after, and the
command's own (and its children's) from getrusage, and writes to OUT.json the CPU used
by each kind of process, in cores (CPU seconds per second of the run): the Aiguillage
server, the load generator, PostgreSQL (every backend), RabbitMQ (the Erlang VM), the
capture servers (Python), the rest, and the machine as a whole (/proc/stat, which also
counts what the kernel does for them). Processes that start and end between the two
readings count only in the machine's total. The command's exit status is passed on.
"""
import json
import os
import resource
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = {
    "aiguillage": "server",
    "aiguillage-loa": "generator",
    "postgres": "postgres",
    "beam.smp": "rabbitmq",
    "python3": "capture servers",
}


def processes():
    """CPU seconds so far, by pid, with the process's group."""
    seen = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICKS
        seen[pid] = (GROUPS.get(comm[:14], "other"), seconds)
    return seen


def machine():
    """Busy and total CPU seconds of the whole machine."""
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def main():
    out, command = sys.argv[1], sys.argv[sys.argv.index("--") + 1 :]
    before, (busy0, total0), started = processes(), machine(), time.monotonic()
    status = subprocess.call(command)
    after, (busy1, total1), elapsed = processes(), machine(), time.monotonic() - started
    used = {}
    for pid, (group, seconds) in after.items():
        if pid in before and group != "generator":
            used[group] = used.get(group, 0.0) + seconds - before[pid][1]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["generator"] = children.ru_utime + children.ru_stime
    cores = os.cpu_count() or 1
    report = {
        "seconds": round(elapsed, 1),
        "cores": {g: round(s / elapsed, 3) for g, s in sorted(used.items())},
        "machine_busy": round((busy1 - busy0) / (total1 - total0), 3),
        "machine_cores": cores,
    }
    json.dump(report, open(out, "w"), indent=2)
    sys.exit(status)


if __name__ == "__main__":
    main()
