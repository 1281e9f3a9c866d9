"""What stops `make demo`: a step of the case that did not happen (shared by the demo's scenes)."""


class DemoFailed(Exception):
    """A step of the case did not happen."""
