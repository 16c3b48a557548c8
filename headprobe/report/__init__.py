"""What a run leaves behind: failure diagrams (`figures`), report.json and index.html (`store`,
`html`). Importing this package is cheap: matplotlib is imported only when a figure is drawn.
"""
