"""The evidence report: figures of a verified log for a period, as HTML and JSON.

``figures`` reads parsed records into a typed summary, ``plots`` draws it as inline SVG,
``controls`` maps what the log evidences to the frameworks auditors use, ``render`` writes
the page, and ``build`` ties them to a verified export file.
"""
