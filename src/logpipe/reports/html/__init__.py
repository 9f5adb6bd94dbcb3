"""The HTML dashboard: `logpipe report html` writes it as one file, `logpipe serve` serves
it live. data.py gathers the numbers from the report queries, page.py makes the page
from template.html, style.css, app.js and vendor/ (uPlot, MIT), command.py is the
command line."""
