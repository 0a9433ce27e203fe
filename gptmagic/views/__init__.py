"""What a person sees: Markdown safety, tables, reply views and the widgets.

Owns rendering only: :mod:`.markdown` (escaping model text), :mod:`.text`
(terminal-safe text forms), :mod:`.tables`
(history, dry-run and error tables), :mod:`.reply` (reply, stream and
side-by-side views), :mod:`.steps` (a tool loop's steps), :mod:`.calllog` (``%chat
log``'s table) and :mod:`.widgets`
(token counter, token view, logprob heatmap: state, static HTML, anywidget
classes and their JavaScript).

May import: :mod:`gptmagic.eval` results, :mod:`gptmagic.catalog`,
:mod:`gptmagic.core`, anywidget and ipywidgets. Never the client or the
engine: a view that needs a count or the engine's tokens is handed a function
that gets them.
"""
