"""Transparency (Principle 11): the figures a trust-and-safety lead reads every morning and the periodic reports
regulators and the public read, computed from the records the system already keeps (docs/transparency.md).

Layout, bottom up:

- :mod:`periods` — a reporting period (``2026-H1``, ``2026-Q3``, ``2026-11``, ``2026``, ``2026-11-01..2026-11-30``),
  half-open and in UTC;
- :mod:`figures` — the catalogue of figures (what each one counts, its columns, how to trace it to records) and the
  :class:`~figures.FigureSet` every surface and every report is built from: the overview, the API and the report
  formats never query the store themselves, so the same period gives the same numbers everywhere;
- :mod:`engine` — daily facts rolled up from cases, signals, decisions, actions, reports, scans, searches,
  exchanges and the audit log, refreshed incrementally; figures for a period are summed from them, and the records
  behind any figure's row are listed from the same predicates (drill-down, no row caps);
- :mod:`privacy` — the small-cell rule applied to everything that leaves the system;
- :mod:`charts` — one chart model drawn as SVG on the server (console, HTML report) and as vector graphics in the
  PDF: no script, no CDN;
- :mod:`formats` — the report formats (EU DSA harmonised templates, EU Regulation 2021/1232, the Tech Coalition
  TRUST framework, HTML, PDF, JSON), each a pure function of a figure set;
- :mod:`service` — stored reports: generated once, kept with the figure set and the definitions version they used,
  so a published report can be reproduced and checked against the records later.
"""
