"""The SQL of each report, built from Filters as (sql, params): pure, nothing runs here.

One module per family of reports: referers (referers, broken-links), pages, series
(status, traffic), clients (offenders, agents). run.QUERIES maps names to them.
"""
