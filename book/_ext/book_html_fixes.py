"""Two fixes to the HTML that sphinx-book-theme writes, found by the browser test (tests/browser).

- sphinx-thebe's inline configuration script (``const THEBE_JS_URL = ...``) is added twice to
  every page; the second copy throws "Identifier 'THEBE_JS_URL' has already been declared".
- pydata-sphinx-theme reads the colour mode from the ``default_mode`` template variable, which
  nothing sets here, and logs "Got invalid theme mode: ." on every page.
"""
from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):
        context["default_mode"] = "auto"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", js) or "", attrs.get("body"), attrs.get("src"))  # None and "" both mean inline
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
