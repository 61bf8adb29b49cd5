"""The demo's one error."""


class StepError(Exception):
    """A step did not do what it should (the message says what; `Demo.step` names it)."""
