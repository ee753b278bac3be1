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
