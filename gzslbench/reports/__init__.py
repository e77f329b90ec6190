"""What a paper shows: Table 2 / Table 3 in Markdown, LaTeX and CSV, the reported numbers they
sit beside, and figures.

May import: everything below it (core .. studies, methods, datasets).
"""
