"""Decision events and their trace (RFC 0006 §4): what a copilot decision read, called and
wrote, recorded on `copilot.decisions`, and each of those links followed back."""
