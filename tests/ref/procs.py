"""Killing an MPI run as a whole. Open MPI's mpirun puts each rank in a process
group of its own, so killing mpirun's group leaves the ranks running; started
with start_new_session=True, mpirun and every rank share one session, which
this kills process by process (SIGKILL: the `kill -9` of the resume tests)."""
import os
import signal


def kill_session(sid, sig=signal.SIGKILL):
    """Sends sig to every process of session sid; returns how many."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # field 6 of stat: the session id
                os.kill(int(pid), sig)
                n += 1
        except (OSError, ValueError, IndexError):
            pass
    return n


def block_stop_signals():
    """preexec_fn of a launcher started with SIGUSR1 and SIGTERM blocked, as a
    CI machine started ours: Open MPI 4.1's mpirun then passes neither on (and
    its ranks inherit the mask), so a test that passes with it relies on no
    launcher's forwarding."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})


def signal_ranks(sid, exe, sig):
    """Sends sig to the processes of session sid that run the program exe (the
    ranks, not the launcher), as Slurm's --signal without B: does; returns how
    many."""
    n = 0
    exe = os.path.realpath(exe)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and os.path.realpath(f"/proc/{pid}/exe") == exe:
                os.kill(int(pid), sig)
                n += 1
        except (OSError, ValueError, IndexError):
            pass
    return n


def wait_for_line(proc, needle, timeout):
    """Reads proc's stdout line by line until one contains needle (True), or
    the stream ends or timeout seconds pass (False). Returns (found, lines)."""
    import selectors
    import time
    lines, buf = [], ""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if not sel.select(timeout=1.0):
            continue
        line = proc.stdout.readline()
        if not line:
            return False, lines
        lines.append(line)
        if needle in line:
            return True, lines
    return False, lines
