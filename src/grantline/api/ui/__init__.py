"""The auditor pages (``/ui``): the lineage of a request, checked in the browser, and a search.

``timeline`` turns records into page rows (pure), ``lineage`` and ``search`` gather what a page
shows, ``session`` authenticates a browser, ``pages`` renders and guards every response.
"""
