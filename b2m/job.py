"""How a b2m command runs as a workflow job: it dies with the job's shell, which is what Snakemake kills.

Snakemake kills a job's shell only; its b2m child would otherwise run on and write outputs after Snakemake marked
the job failed, and the next run would trust them. Light on imports: the Snakefile reads ``JOB_SHELL_PREFIX``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

log = logging.getLogger("b2m")

# The workflow's shell prefix (Snakefile): a job's shell names itself, and its b2m command dies with it.
DIE_WITH_SHELL = "B2M_DIE_WITH_SHELL"
JOB_SHELL_PREFIX = f"export {DIE_WITH_SHELL}=$$; "
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Where ``$B2M_DIE_WITH_SHELL`` names the job's shell (the workflow's jobs; Linux only), ask the kernel to
    SIGKILL this process when its parent dies. A shell that died before the request was made leaves this process
    to init: it is killed at once. Elsewhere (an interactive ``b2m``, ``nohup``) nothing changes."""
    shell = os.environ.get(DIE_WITH_SHELL, "")
    if not shell.isdigit() or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): this command outlives its job", ctypes.get_errno())
        return
    if os.getppid() != int(shell) and not process_running(int(shell)):  # the shell died before the request
        os.kill(os.getpid(), signal.SIGKILL)


def process_running(pid: int) -> bool:
    """Whether there is a process ``pid`` (ours or another user's)."""
    try:
        os.kill(pid, 0)  # signal 0: is there such a process?
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
