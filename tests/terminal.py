"""Children started as a terminal starts them, for tests that send Ctrl-C.

A test run started in the background (`pytest &` in a script, `nohup`)
inherits SIGINT ignored, and so would every process it starts: Python then
installs no KeyboardInterrupt handler and Ctrl-C tests would test nothing.
"""

from __future__ import annotations

import signal


def restore_ctrl_c() -> None:
    """`preexec_fn` for Popen: SIGINT back to its default in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
