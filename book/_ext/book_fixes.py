"""Sphinx fixes for the book's theme stack (jupyter-book 1.0), each found by the browser check of the book.

- sphinx-thebe 0.3.1 adds its inline configuration script twice; the second ``const THEBE_JS_URL``
  throws "Identifier 'THEBE_JS_URL' has already been declared" on every page. Each page keeps the
  first of identical script entries.
- pydata-sphinx-theme logs "Got invalid theme mode" on a reader's first visit when no default mode
  is set; the book's default is ``auto`` (follow the reader's system setting).
"""

from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts, seen = [], set()
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", script) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"] = scripts


def _default_mode(app, config) -> None:
    config.html_context.setdefault("default_mode", "auto")


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
