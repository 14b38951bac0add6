"""Twenty items of about 0.1 s each; item 13 is killed with SIGKILL, like an OOM kill."""

import os
import signal
import time


def process(item):
    time.sleep(0.1)
    if item == 13:
        # What the OOM killer does: no exception, no cleanup, the process is just gone.
        os.kill(os.getpid(), signal.SIGKILL)
    return item * item
