"""What the HTML report is made of: SVG plots, cached thumbnails, per-query comparisons, the page."""
