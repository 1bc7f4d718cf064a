"""What the reconciler records when it acts and watches (placement/reconciler.py), beyond tests/test_reconciler.py.

Written against the mutants mutmut left alive (docs/mutation.md). The store is the real SQLite store; the
provider doubles are those of tests/test_reconciler.py.
"""

from __future__ import annotations

from placement.reconciler import brief


def test_a_long_failure_message_keeps_its_first_line_and_its_last_lines_within_the_limit():
    message = "\n".join(["first", "", *(f"line {i}" for i in range(8))])
    assert brief(message) == "first\n...\nline 5\nline 6\nline 7"
    assert brief("a\nb\nc\nd") == "a\nb\nc\nd"  # first line + three more: nothing to cut
    assert brief("x" * 500) == "x" * 397 + "..."
    assert len(brief("y" * 400)) == 400 and brief("y" * 400) == "y" * 400
