"""The one error type for bad input: it names the file, the problem and the fix."""


class InputError(ValueError):
    """Bad input found by b2m; the message names the offending file and how to fix it."""

    def __init__(self, path, problem: str, fix: str):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}\n  fix: {fix}")
