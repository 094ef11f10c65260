"""PID 1 of the test bed's deis-controller stand-in: waits, reaps what `docker exec` leaves
behind, and exits at once on SIGTERM (`docker stop`)."""
import os
import signal
import sys


def reap(*_):
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGCHLD, reap)
sys.stdout.write("deis-controller stand-in up\n")
sys.stdout.flush()
while True:
    signal.pause()
