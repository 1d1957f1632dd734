"""The error types a b2m command reports without a traceback: bad input (naming the file, the problem and the
fix), a config whose keys contradict each other or the data, and an output the disk had no room for."""


class InputError(ValueError):
    """Bad input found by b2m; the message names the offending file and how to fix it."""

    def __init__(self, path, problem: str, fix: str):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}\n  fix: {fix}")


class ConfigError(ValueError):
    """A config whose keys contradict each other or the data; the message names the keys and the fix."""


class NoSpaceError(OSError):
    """An output the disk had no room for (ENOSPC); nothing is left at its name. The message names the output,
    the bytes it needed (when known up front) and the bytes free."""

    def __init__(self, path, needed: int | None, free: int | None):
        self.path, self.needed, self.free = str(path), needed, free
        size = f"it needs {needed:,} bytes" if needed is not None else "its size is not known before it is written"
        room = f"{free:,} bytes are free there" if free is not None else "the free space is unknown"
        super().__init__(f"{self.path}: no room left on the device ({size}; {room}); nothing was written\n"
                         f"  fix: free space on that disk, or point `results` (or the output) at one with room, "
                         f"and run again")
