"""``--approve``: the Yes/No question before each tool call, and its transcript cleared.

The question goes to the front end's input box: the kernel's ``input()``, which
JupyterLab, Notebook 7 and VS Code show as a text field under the cell and a
terminal IPython as a prompt. A widget's button could not be used: its click is a
comm message, and the kernel reads none while the cell runs (the main thread waits
here). The input request is the one channel a front end answers while a cell
runs, and Kernel ▸ Interrupt reaches it.

Once answered, a notebook front end keeps the question and the answer typed as a
line of the cell's output (JupyterLab adds it as a ``stdin`` stream: ``Run
get_weather({"city": "Paris"})? [y/N] y``), above the reply. A kernel removes an
output only by clearing the cell's whole output area (``clear_output``), so the
live view clears it after each answer only while the cell shows nothing else that
would be lost with it: :class:`OutputWatch` notes anything printed (a tool's
``print``, a notice on stderr) or displayed besides the live view itself.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gptmagic.core.types import ToolCall
from gptmagic.errors import RequestError
from gptmagic.views import steps as views

__all__ = ["Approval", "OutputWatch"]

#: Answers to the approval question; anything else is asked again (then No).
_YES, _NO = ("y", "yes"), ("n", "no", "")
_ASKS = 3


class Approval:
    """``--approve``: asks Yes/No before each call, on the kernel's main thread.

    The question goes to ``input()`` as it is when asked (the kernel replaces it
    while a cell runs, with its input request); ``show`` puts what is asked about on
    screen first (the live step view in a notebook, a line in a terminal), and
    ``answered`` is told the answer (the live view then clears the transcript)."""

    def __init__(self, show: Callable[[ToolCall], None] | None = None,
                 answered: Callable[[ToolCall, bool], None] | None = None) -> None:
        self.show = show
        self.answered = answered

    def __call__(self, call: ToolCall) -> bool:
        from IPython.core.error import StdinNotImplementedError

        if self.show is not None:
            self.show(call)
        read = builtins.input
        asked = f"Run {views.call_text(call)}? [y/N] "
        question = asked
        answer = False
        try:
            for _ in range(_ASKS):
                said = read(question).strip().lower()
                if said in _YES or said in _NO:
                    answer = said in _YES
                    break
                question = f"Please answer y or n. {asked}"
        except (StdinNotImplementedError, EOFError):
            raise RequestError("--approve asks Yes/No in the front end's input box, and this "
                               "one takes no input (a headless run such as nbclient or "
                               "papermill); run the cell in JupyterLab, Notebook, VS Code or a "
                               "terminal IPython, or without --approve", param="--approve") \
                from None
        if self.answered is not None:
            self.answered(call, answer)
        return answer


class OutputWatch:
    """While entered, notes whether anything but the live view reaches the cell's output:
    ``sys.stdout`` and ``sys.stderr`` (from any thread) and the shell's display
    publisher are wrapped, as IPython's ``capture_output`` does, and pass everything
    on. The live view draws inside :meth:`own`, which is not noted."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        #: Something else was printed or displayed: clearing the cell would lose it.
        self.seen = False
        self._own = 0
        self._saved: tuple[Any, Any, Any] | None = None

    def __enter__(self) -> OutputWatch:
        self._saved = (sys.stdout, sys.stderr, self.shell.display_pub)
        sys.stdout = _Noting(sys.stdout, self, ("write", "writelines"))
        sys.stderr = _Noting(sys.stderr, self, ("write", "writelines"))
        self.shell.display_pub = _Noting(self.shell.display_pub, self, ("publish",))
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._saved is not None
        sys.stdout, sys.stderr, self.shell.display_pub = self._saved

    @contextmanager
    def own(self) -> Iterator[None]:
        """The live view draws: its output is not something else's."""
        self._own += 1
        try:
            yield
        finally:
            self._own -= 1

    def _note(self) -> None:
        if not self._own:
            self.seen = True


class _Noting:
    """A stream or display publisher that tells its watch when ``methods`` are called."""

    def __init__(self, inner: Any, watch: OutputWatch, methods: tuple[str, ...]) -> None:
        self._inner, self._watch, self._methods = inner, watch, methods

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in self._methods:
            return value

        def noted(*args: Any, **kwargs: Any) -> Any:
            self._watch._note()
            return value(*args, **kwargs)

        return noted
